//! `sluice worker`: a process that runs jobs for the consoles sharing its
//! PostgreSQL metadata store (docs/OPERATIONS.md). It registers, heartbeats,
//! launches the runs assigned to it and renews their leases; on SIGTERM it
//! drains: its runs stop with a snapshot and go to other workers.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::{WorkerSettings, open_store, shutdown_signal};
use crate::worker::Worker;

#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The shared metadata store: `postgres://…` (the consoles' own).
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    pub database: String,
    /// The consoles' key file that seals connections in the metadata store.
    #[arg(long, env = "SLUICE_SECRET_KEY_FILE")]
    pub secret_key_file: PathBuf,
    /// Shared snapshot storage: `postgres://…` (fenced: a worker that lost
    /// a run cannot store a snapshot of it) or `s3://BUCKET/PREFIX`.
    #[arg(long, env = "SLUICE_SNAPSHOTS")]
    pub snapshots: String,
    /// The name it registers under; unique among live workers (default
    /// `HOST:PID`; in Kubernetes, the pod's name). A worker restarted under
    /// its old name resumes the runs it held at once.
    #[arg(long, env = "SLUICE_WORKER_NAME")]
    pub name: Option<String>,
    /// Runs it holds at once.
    #[arg(long, env = "SLUICE_WORKER_SLOTS", default_value_t = 4)]
    pub slots: u32,
    /// Its compile cache and the projects' files.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "sluice-data")]
    pub data_dir: PathBuf,
    /// Serves `/healthz` here, for probes.
    #[arg(long, env = "SLUICE_WORKER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The platform's Kafka brokers, reachable whatever `--allow-hosts`
    /// says (as a console's `--kafka`).
    #[arg(long, env = "SLUICE_KAFKA")]
    pub kafka: Option<String>,
    #[command(flatten)]
    pub worker: WorkerSettings,
}

pub async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    if !(args.database.starts_with("postgres://") || args.database.starts_with("postgresql://")) {
        bail!(
            "`sluice worker --database` must be the consoles' PostgreSQL store (postgres://…); \
             with SQLite, `sluice serve` runs the jobs itself"
        );
    }
    if !(args.snapshots.starts_with("postgres") || args.snapshots.starts_with("s3://")) {
        bail!(
            "`sluice worker --snapshots` must be storage every worker reaches (postgres://… or s3://…), \
             so another worker can resume a run from its snapshots"
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
    let store = open_store(&args.database, &args.secret_key_file).await?;
    let snapshots = sluice_runtime::snapshot::open_store(&args.snapshots).await?;
    let options = args.worker.options(args.name.clone(), true, args.slots);
    let worker = Worker::new(store, snapshots, args.data_dir.clone(), options)?;
    if let Some(brokers) = &args.kafka {
        worker.rules.allow_platform_brokers(brokers);
    }
    tokio::spawn(worker.clone().keep_leases());
    if let Some(listen) = args.listen {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    // Tests and scripts read this line.
    println!("sluice worker {} running ({} slots)", worker.id, worker.slots);
    shutdown_signal().await;
    eprintln!("sluice: worker {} draining (runs stop with a snapshot and move to other workers)", worker.id);
    worker.drain().await;
    Ok(())
}
