//! `sluice serve`: the console, the REST API and a worker in one process
//! (`--workers 0`: no worker; `sluice worker` processes run the jobs).
//! With no configuration it keeps everything under a data directory —
//! SQLite metadata, local snapshots — runs the embedded development broker
//! and seeds a demo project whose example jobs run on generated data.
//! With `--database postgres://…`, `--snapshots postgres://…` (or
//! `s3://…`) and `--kafka BROKERS` it runs against shared infrastructure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sluice_runtime::connections::HostRule;
use sluice_runtime::job::Ceilings;
use sluice_runtime::snapshot::{LocalSnapshotStore, SnapshotStore};

use crate::api::{self, ApiSettings, AppState};
use crate::broker::EmbeddedBroker;
use crate::store::{SecretKey, Store, StoreError};
use crate::worker::plan::PlatformRules;
use crate::worker::{self, Quota, Worker, WorkerOptions};
use crate::{auth, demo};

mod worker_process;
pub use worker_process::{WorkerArgs, run_worker};

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
    /// Workers in this process: 1 (default) runs jobs here too; 0 makes a
    /// console only (API, web console, scheduling), with `sluice worker`
    /// processes sharing its PostgreSQL store running the jobs.
    #[arg(long, env = "SLUICE_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub workers: u8,
    /// Runs this console's worker holds at once.
    #[arg(long, env = "SLUICE_WORKER_SLOTS", default_value_t = 16)]
    pub slots: u32,
    #[command(flatten)]
    pub worker: WorkerSettings,
    /// Directory with the demo jobs' components (`<job>.wasm`); default:
    /// `$SLUICE_DEMO_COMPONENTS`, else `target/demo` when present.
    #[arg(long, env = "SLUICE_DEMO_COMPONENTS")]
    pub demo_components: Option<PathBuf>,
    /// Limits of the API: uploads, compiles, requests, timeouts, sign-in,
    /// tokens, cookies, the metrics token (docs/SECURITY.md).
    #[command(flatten)]
    pub api: ApiSettings,
}

/// What a worker is held to, the same in `sluice serve` and `sluice worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerSettings {
    /// Where the projects' connections (Kafka brokers, database and Redis
    /// hosts) may point: comma-separated CIDRs (`10.0.0.0/8`), addresses
    /// and host names (`kafka.internal`, or `.internal` for a domain).
    /// Unset: anywhere except loopback and link-local addresses (this
    /// machine, cloud metadata); set: only these (list `127.0.0.1` to allow
    /// loopback). The embedded broker and `--kafka` are always allowed.
    #[arg(long, env = "SLUICE_ALLOW_HOSTS", value_parser = parse_allow_hosts)]
    pub allow_hosts: Option<AllowHosts>,
    /// Kafka client settings the projects' connections may use beyond the
    /// standard list (e.g. `ssl.ca.location` for CA files the operator put
    /// on the server), comma-separated; see docs/SECURITY.md.
    #[arg(long, env = "SLUICE_ALLOW_KAFKA_PROPERTIES", value_delimiter = ',')]
    pub allow_kafka_properties: Vec<String>,
    /// Dead letters kept per job in the metadata store (the exceptions
    /// view); beyond it the oldest are dropped, and counted.
    #[arg(long, env = "SLUICE_DEAD_LETTERS_KEPT", default_value_t = crate::worker::DEAD_LETTERS_KEPT)]
    pub dead_letters_kept: usize,
    #[command(flatten)]
    pub ceilings: CeilingArgs,
    #[command(flatten)]
    pub quotas: QuotaArgs,
    /// Lease time of a worker's runs, and of the control plane's leader
    /// lease: a worker (or console) silent this long is replaced. Workers
    /// heartbeat every third of it; set the same on every process.
    #[arg(long, env = "SLUICE_LEASE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub lease: std::time::Duration,
}

impl WorkerSettings {
    /// The worker's options; `name` `None` names it `HOST:PID`.
    pub fn options(&self, name: Option<String>, takes_runs: bool, slots: u32) -> WorkerOptions {
        WorkerOptions {
            rules: PlatformRules::new(
                self.allow_hosts.clone().map(|a| a.0),
                self.allow_kafka_properties.iter().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect(),
            ),
            ceilings: self.ceilings.ceilings(),
            dead_letters_kept: self.dead_letters_kept,
            quotas: self.quotas.quota(),
            name,
            takes_runs,
            slots,
            lease: self.lease,
        }
    }
}

/// The most a deployment's spec may ask for (docs/SPEC.md, `[limits]`):
/// a deployment above one is refused, naming it and its ceiling.
#[derive(Debug, Clone, clap::Args)]
pub struct CeilingArgs {
    /// Largest `limits.memory_mb` (guest memory per task).
    #[arg(long, env = "SLUICE_MAX_MEMORY_MB", default_value_t = Ceilings::default().memory_mb)]
    pub max_memory_mb: u64,
    /// Largest `limits.cpu_per_batch`, e.g. "60s".
    #[arg(long, env = "SLUICE_MAX_CPU_PER_BATCH", default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_cpu_per_batch: std::time::Duration,
    /// Largest `limits.state_mb` (keyed state per task).
    #[arg(long, env = "SLUICE_MAX_STATE_MB", default_value_t = Ceilings::default().state_mb)]
    pub max_state_mb: u64,
    /// Largest `limits.output_mb` (row bytes per guest call).
    #[arg(long, env = "SLUICE_MAX_OUTPUT_MB", default_value_t = Ceilings::default().output_mb)]
    pub max_output_mb: u64,
    /// Largest `limits.timers`.
    #[arg(long, env = "SLUICE_MAX_TIMERS", default_value_t = Ceilings::default().timers)]
    pub max_timers: u64,
    /// Largest `batch.max_records`.
    #[arg(long, env = "SLUICE_MAX_BATCH_RECORDS", default_value_t = Ceilings::default().batch_records)]
    pub max_batch_records: usize,
    /// Largest `batch.max_wait`, e.g. "10s".
    #[arg(long, env = "SLUICE_MAX_BATCH_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub max_batch_wait: std::time::Duration,
    /// Largest `rate` of a `datagen` source (records per second).
    #[arg(long, env = "SLUICE_MAX_DATAGEN_RATE", default_value_t = Ceilings::default().datagen_rate)]
    pub max_datagen_rate: u64,
    /// Most `partitions` of a `datagen` source.
    #[arg(long, env = "SLUICE_MAX_DATAGEN_PARTITIONS", default_value_t = Ceilings::default().datagen_partitions)]
    pub max_datagen_partitions: i32,
    /// Longest `datagen` text field, and most values of a choice field.
    #[arg(long, env = "SLUICE_MAX_DATAGEN_FIELD_SIZE", default_value_t = Ceilings::default().datagen_field_size)]
    pub max_datagen_field_size: usize,
}

impl CeilingArgs {
    pub fn ceilings(&self) -> Ceilings {
        Ceilings {
            memory_mb: self.max_memory_mb,
            cpu_per_batch: self.max_cpu_per_batch,
            state_mb: self.max_state_mb,
            output_mb: self.max_output_mb,
            timers: self.max_timers,
            batch_records: self.max_batch_records,
            batch_wait: self.max_batch_wait,
            datagen_rate: self.max_datagen_rate,
            datagen_partitions: self.max_datagen_partitions,
            datagen_field_size: self.max_datagen_field_size,
        }
    }
}

/// The quota of a project that has none of its own: what all its jobs may
/// hold at once (a global admin sets a project's own with `PUT
/// /api/v1/projects/{p}/quota`).
#[derive(Debug, Clone, clap::Args)]
pub struct QuotaArgs {
    /// Most tasks (partition groups of running jobs) per project.
    #[arg(long, env = "SLUICE_PROJECT_MAX_TASKS", default_value_t = Quota::default().max_tasks)]
    pub project_max_tasks: u64,
    /// Most guest memory of a project's running tasks together, MiB.
    #[arg(long, env = "SLUICE_PROJECT_MAX_MEMORY_MB", default_value_t = Quota::default().max_memory_mb)]
    pub project_max_memory_mb: u64,
    /// Most debug runs and previews of a project at once.
    #[arg(long, env = "SLUICE_PROJECT_MAX_DEBUG_RUNS", default_value_t = Quota::default().max_debug_runs)]
    pub project_max_debug_runs: u64,
}

impl QuotaArgs {
    pub fn quota(&self) -> Quota {
        Quota {
            max_tasks: self.project_max_tasks,
            max_memory_mb: self.project_max_memory_mb,
            max_debug_runs: self.project_max_debug_runs,
        }
    }
}

/// The parsed `--allow-hosts` list.
#[derive(Debug, Clone)]
pub struct AllowHosts(pub Vec<HostRule>);

fn parse_allow_hosts(text: &str) -> Result<AllowHosts, String> {
    HostRule::parse_list(text).map(AllowHosts)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
    let database = match &args.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}?mode=rwc", args.data_dir.join("sluice.db").display()),
    };
    let key_file = args.secret_key_file.clone().unwrap_or_else(|| args.data_dir.join("secret.key"));
    if args.workers == 0 && database.starts_with("sqlite:") {
        anyhow::bail!(
            "`--workers 0` needs a metadata store that `sluice worker` processes share: give \
             `--database postgres://…` (SQLite is one process's store)"
        );
    }
    let store = open_store(&database, &key_file).await?;
    first_admin(&store).await?;
    let snapshots: Arc<dyn SnapshotStore> = match &args.snapshots {
        Some(location) => sluice_runtime::snapshot::open_store(location).await?,
        None => Arc::new(LocalSnapshotStore::new(args.data_dir.join("snapshots"))),
    };
    let options = args.worker.options(None, args.workers > 0, args.slots);
    let worker = Worker::new(store.clone(), snapshots, args.data_dir.clone(), options)?;

    let broker = match (&args.kafka, args.no_broker) {
        (Some(_), _) | (None, true) => None,
        (None, false) => Some(EmbeddedBroker::start(&args.data_dir).await?),
    };
    let brokers = args.kafka.clone().or_else(|| broker.as_ref().map(|b| b.brokers.clone()));
    // The platform's own brokers (started here or named by the operator)
    // are reachable whatever --allow-hosts says.
    if let Some(brokers) = &brokers {
        worker.rules.allow_platform_brokers(brokers);
    }
    if worker.takes_runs {
        tokio::spawn(worker.clone().keep_leases());
    }

    // The demo first: on a new embedded broker its connection must point
    // there before anything of it resumes.
    if !args.no_demo {
        let components = args.demo_components.clone().unwrap_or_else(|| PathBuf::from("target/demo"));
        demo::seed(&store, &worker, &components, brokers.as_deref(), broker.is_some(), &args.data_dir).await?;
    }
    // SQLite is one process's store: runs left active by a process that
    // died resume at once; with the embedded broker (topics in memory, so
    // gone) they start fresh. On PostgreSQL their leases expire and the
    // leading console hands them to live workers.
    if store.dialect == crate::store::Dialect::Sqlite {
        worker::scheduler::recover(&worker, &store, broker.is_some()).await?;
    }
    let console = worker.id.clone();
    tokio::spawn(worker::scheduler::run(worker.clone(), store.clone(), console.clone()));

    let header_timeout = std::time::Duration::from_secs(args.api.header_timeout_secs);
    let app = api::app(AppState::new(store.clone(), worker.clone(), args.api.clone()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("sluice console listening on http://{address}");
    api::server::serve(listener, app, header_timeout, shutdown_signal()).await?;
    worker::scheduler::resign(&store, &console).await;
    if store.dialect == crate::store::Dialect::Postgres {
        // Other workers share the store: this console's tasks are handed
        // over with a snapshot (as a drained worker's), and the runs go on.
        eprintln!("sluice: handing this console's tasks over (with snapshots)");
        worker.drain().await;
    } else {
        eprintln!("sluice: stopping jobs (with snapshots)");
        worker.stop_all().await;
    }
    if let Some(broker) = broker {
        broker.stop().await;
    }
    Ok(())
}

/// Opens the metadata store with the key file (made when missing).
async fn open_store(database: &str, key_file: &std::path::Path) -> anyhow::Result<Store> {
    let (key, created) = SecretKey::load_or_create(key_file)?;
    let store = match Store::connect(database, key).await {
        Ok(store) => store,
        Err(e) => {
            if created {
                // A key made for a store that turned out to have one already
                // is of no use; leave no file that looks like the right one.
                let _ = std::fs::remove_file(key_file);
            }
            return Err(e).with_context(|| {
                format!(
                    "cannot open the metadata store {} with the secret key file {}",
                    sluice_runtime::connections::redact_url(database),
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
    Ok(store)
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
    match store.create_user("admin", &auth::hash_password(&password), true).await {
        Ok(_) => {}
        // Consoles started together on an empty store: another one created
        // it between the count and the insert.
        Err(StoreError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
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
