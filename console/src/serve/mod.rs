//! `sluice serve`: the console, the REST API and a worker in one process.
//! With no configuration it keeps everything under a data directory —
//! SQLite metadata, local snapshots — runs the embedded development broker
//! and seeds a demo project whose example jobs run on generated data.
//! With `--database postgres://…`, `--snapshots postgres://…` (or
//! `s3://…`) and `--kafka BROKERS` it runs against shared infrastructure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sluice_runtime::snapshot::{LocalSnapshotStore, SnapshotStore};

use crate::api::{self, ApiSettings, AppState};
use crate::broker::EmbeddedBroker;
use crate::store::{SecretKey, Store};
use crate::worker::{self, Worker};
use crate::{auth, demo};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address of the console and API.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the embedded defaults keep their files.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "sluice-data")]
    pub data_dir: PathBuf,
    /// Metadata store: `postgres://…`; default SQLite in the data directory.
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    pub database: Option<String>,
    /// The key file that seals connections (URLs, properties, secrets) in
    /// the metadata store: 64 hex digits, created with a new key when
    /// missing; consoles sharing a metadata store share it. Default
    /// DATA/secret.key.
    #[arg(long, env = "SLUICE_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Snapshot storage: a directory, `postgres://…` or `s3://BUCKET/PREFIX`
    /// (endpoint and credentials from the `AWS_*` variables); default
    /// DATA/snapshots.
    #[arg(long, env = "SLUICE_SNAPSHOTS")]
    pub snapshots: Option<String>,
    /// An external Kafka cluster for the demo project, instead of the
    /// embedded development broker.
    #[arg(long, env = "SLUICE_KAFKA")]
    pub kafka: Option<String>,
    /// Run without a broker (and without the demo's Kafka jobs).
    #[arg(long)]
    pub no_broker: bool,
    /// Do not create the demo project.
    #[arg(long)]
    pub no_demo: bool,
    /// Directory with the demo jobs' components (`<job>.wasm`); default:
    /// `$SLUICE_DEMO_COMPONENTS`, else `target/demo` when present.
    #[arg(long, env = "SLUICE_DEMO_COMPONENTS")]
    pub demo_components: Option<PathBuf>,
    /// Limits of the API: uploads, compiles, requests, timeouts, sign-in,
    /// tokens, cookies, the metrics token (docs/SECURITY.md).
    #[command(flatten)]
    pub api: ApiSettings,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
    let database = match &args.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}?mode=rwc", args.data_dir.join("sluice.db").display()),
    };
    let key_file = args.secret_key_file.clone().unwrap_or_else(|| args.data_dir.join("secret.key"));
    let (key, created) = SecretKey::load_or_create(&key_file)?;
    let store = match Store::connect(&database, key).await {
        Ok(store) => store,
        Err(e) => {
            if created {
                // A key made for a store that turned out to have one already
                // is of no use; leave no file that looks like the right one.
                let _ = std::fs::remove_file(&key_file);
            }
            return Err(e).with_context(|| {
                format!(
                    "cannot open the metadata store {} with the secret key file {}",
                    sluice_runtime::connections::redact_url(&database),
                    key_file.display()
                )
            });
        }
    };
    if created {
        eprintln!(
            "sluice: created the secret key file {} that seals the connections in the metadata store; \
             back it up: they cannot be read without it",
            key_file.display()
        );
    }
    first_admin(&store).await?;
    let snapshots: Arc<dyn SnapshotStore> = match &args.snapshots {
        Some(location) => sluice_runtime::snapshot::open_store(location).await?,
        None => Arc::new(LocalSnapshotStore::new(args.data_dir.join("snapshots"))),
    };
    let worker = Worker::new(store.clone(), snapshots, args.data_dir.clone())?;

    let broker = match (&args.kafka, args.no_broker) {
        (Some(_), _) | (None, true) => None,
        (None, false) => Some(EmbeddedBroker::start(&args.data_dir).await?),
    };
    let brokers = args.kafka.clone().or_else(|| broker.as_ref().map(|b| b.brokers.clone()));

    // The demo first: on a new embedded broker its connection must point
    // there before anything of it resumes.
    if !args.no_demo {
        let components = args.demo_components.clone().unwrap_or_else(|| PathBuf::from("target/demo"));
        demo::seed(&store, &worker, &components, brokers.as_deref(), broker.is_some(), &args.data_dir).await?;
    }
    // Runs left active by a process that died resume; with the embedded
    // broker (topics in memory, so gone) they start fresh.
    worker::scheduler::recover(&worker, &store, broker.is_some()).await?;
    tokio::spawn(worker::scheduler::run(worker.clone(), store.clone()));

    let header_timeout = std::time::Duration::from_secs(args.api.header_timeout_secs);
    let app = api::app(AppState::new(store, worker.clone(), args.api.clone()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("sluice console listening on http://{address}");
    api::server::serve(listener, app, header_timeout, shutdown_signal()).await?;
    eprintln!("sluice: stopping jobs (with snapshots)");
    worker.stop_all().await;
    if let Some(broker) = broker {
        broker.stop().await;
    }
    Ok(())
}

/// Creates the first admin on a fresh store: `admin`, with the password
/// from SLUICE_ADMIN_PASSWORD or a random one printed once.
async fn first_admin(store: &Store) -> anyhow::Result<()> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match std::env::var("SLUICE_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (hex::encode(rand::random::<[u8; 9]>()), true),
    };
    store.create_user("admin", &auth::hash_password(&password), true).await?;
    if generated {
        println!(
            "sluice: created the first admin: user `admin`, password `{password}` (shown once; change it with \
             `sluice password` or under Account in the console)"
        );
    } else {
        println!("sluice: created the first admin `admin` with the password from SLUICE_ADMIN_PASSWORD");
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(t) => t.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
}
