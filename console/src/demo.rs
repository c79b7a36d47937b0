//! The demo project `sluice serve` creates on a fresh store, so that a
//! newcomer sees live jobs a minute after the README's first command:
//! `order-feed` generates insurance orders into the `user_order` topic of
//! the embedded broker, and `hourly-premium` (seed 001) reads them and
//! keeps hourly premium totals in the `hs_order` table of a SQLite
//! warehouse; `lending-report` (seed 004) builds the risk report tables
//! from generated lending events (`sluice gen lending`, loaded once).
//! `large-tx-alert` (seed 003) and `jinpan-sync` (seed 000) are uploaded
//! and deployed with their Kafka specs but not started: they need a Redis
//! connection and tables created beforehand (docs/jobs/), which the
//! embedded defaults do not have. Without a broker, `hourly-premium`
//! reads generated orders directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_runtime::job::state_keying_name;

use crate::store::{Connection, Deployment, NewRun, RunState, Store, now_ms};
use crate::worker::Worker;

pub const PROJECT: &str = "demo";

/// Generated insurance orders (as `jobs/hourly-premium/live.toml`).
const ORDERS: &str = r#"
kind = "datagen"
rate = 200
keys = 5000
seed = 42
[fields]
id = { gen = "key" }
order_no = { gen = "sequence", prefix = "PO" }
order_type = { gen = "choice", values = [1, 2, 3] }
customer_tel = { gen = "key_text", prefix = "1380000" }
account_payble = { gen = "float", min = 100.0, max = 5000.0 }
gmt_modified = { gen = "event_time" }
"#;

const FEED_SINK: &str = r#"
[sinks.out]
kind = "kafka"
connection = "events"
topic = "user_order"
"#;

const HOURLY_KAFKA_SOURCE: &str = r#"
[sources.user_order]
kind = "kafka"
connection = "events"
topic = "user_order"
start = "earliest"
event_time_field = "gmt_modified"
"#;

const HOURLY_REST: &str = r#"
[parameters]
utc_offset_minutes = "480"

[sinks.hs_order]
kind = "sql"
connection = "warehouse"
table = "hs_order"
primary_key = ["biz_date"]
create_table = true
columns = { biz_date = "varchar(10)", total_premium = "decimal(18,2)", policy_cnt = "bigint", policy_holder_cnt = "bigint" }

[snapshot]
interval = "30s"
"#;

struct DemoJob {
    name: &'static str,
    component: &'static str,
    description: &'static str,
    spec: String,
    /// Started with the demo (else only deployed).
    start: bool,
    /// The demo works without it (its component may be missing).
    optional: bool,
}

/// Lending events loaded into the demo's topics once.
const LENDING_EVENTS: u64 = 5000;

fn demo_jobs(with_broker: bool) -> Vec<DemoJob> {
    let orders_source = |name: &str| {
        let mut text = format!("[sources.{name}]\n");
        for line in ORDERS.trim().lines() {
            // `[fields]` belongs under the source.
            text.push_str(&line.replace("[fields]", &format!("[sources.{name}.fields]")));
            text.push('\n');
        }
        text
    };
    if with_broker {
        vec![
            DemoJob {
                name: "order-feed",
                component: "forward",
                description: "Generated insurance orders (200/s) into the user_order topic",
                spec: format!("{}\n{FEED_SINK}", orders_source("orders")),
                start: true,
                optional: false,
            },
            DemoJob {
                name: "hourly-premium",
                component: "hourly_premium",
                description: "Seed 001: hourly premium totals, last value per user, into hs_order",
                spec: format!("{HOURLY_KAFKA_SOURCE}\n{HOURLY_REST}"),
                start: true,
                optional: false,
            },
            DemoJob {
                name: "lending-report",
                component: "lending_report",
                description: "Seed 004: funnel, approvals, disbursements and vintage tables from lending events",
                spec: include_str!("../../jobs/lending-report/kafka.toml").to_owned(),
                start: true,
                optional: true,
            },
            DemoJob {
                name: "large-tx-alert",
                component: "large_tx_alert",
                description: "Seed 003: large-transaction alerts (needs a `profiles` Redis connection and the customer table, docs/jobs/large-tx.md)",
                spec: include_str!("../../jobs/large-tx-alert/kafka.toml").to_owned(),
                start: false,
                optional: true,
            },
            DemoJob {
                name: "jinpan-sync",
                component: "jinpan_sync",
                description: "Seed 000: order and credit-report sync into normalised tables (needs PostgreSQL tables, docs/jobs/jinpan.md)",
                spec: include_str!("../../jobs/jinpan-sync/kafka.toml").to_owned(),
                start: false,
                optional: true,
            },
        ]
    } else {
        let rest = HOURLY_REST.replace("[snapshot]\ninterval = \"30s\"\n", "");
        vec![DemoJob {
            name: "hourly-premium",
            component: "hourly_premium",
            description: "Seed 001: hourly premium totals over generated orders, into hs_order",
            spec: format!("{}\n{rest}", orders_source("user_order")),
            start: true,
            optional: false,
        }]
    }
}

/// Creates and starts the demo project, or, when it exists, starts its
/// jobs again (`resume`). Missing components are reported, not fatal: the
/// console runs without the demo. `fresh_broker`: the brokers are the
/// embedded broker just started, with no topics.
pub async fn seed(
    store: &Store,
    worker: &Arc<Worker>,
    components: &Path,
    brokers: Option<&str>,
    fresh_broker: bool,
    data_dir: &Path,
) -> anyhow::Result<()> {
    if let Some(project) = store.project(PROJECT).await? {
        move_old_warehouse(store, &project.id, data_dir).await?;
        return resume(store, worker, &project.id, brokers, fresh_broker).await;
    }
    let mut jobs = Vec::new();
    let mut loaded = Vec::new();
    for job in demo_jobs(brokers.is_some()) {
        let path = components.join(format!("{}.wasm", job.component));
        match std::fs::read(&path) {
            Ok(bytes) => {
                loaded.push(bytes);
                jobs.push(job);
            }
            Err(_) if job.optional => {
                eprintln!("sluice: demo job {} left out: {} is missing", job.name, path.display())
            }
            Err(_) => {
                eprintln!(
                    "sluice: no demo project: {} is missing (scripts/run.sh builds the demo components into target/demo)",
                    path.display()
                );
                return Ok(());
            }
        }
    }
    let project = store.create_project(PROJECT, "Example jobs on generated data").await?;
    if let Some(admin) = store.user_by_name("admin").await? {
        store.set_member(&project.id, &admin.id, "admin").await?;
    }
    if let Some(brokers) = brokers {
        prepare_broker(store, &project.id, brokers, jobs.iter().any(|j| j.name == "lending-report")).await?;
    }
    // In the project's file area, where its SQLite connections must be.
    put_connection(store, &project.id, "warehouse", "database", WAREHOUSE).await?;
    for (job, bytes) in jobs.iter().zip(loaded) {
        let created = store.create_job(&project.id, job.name, job.description).await?;
        let component = worker.load(&bytes).await?;
        let version = store.add_version(&created.id, &component.hash, &bytes, "demo", "sluice").await?;
        store.set_state_keying(&component.hash, state_keying_name(component.state_keying)).await?;
        store
            .put_deployment(&Deployment {
                job_id: created.id.clone(),
                version_id: version.id.clone(),
                spec: job.spec.clone(),
                parameters: Default::default(),
                parallelism: 1,
                memory_mb: None,
                cpu_ms: None,
                schedule: None,
                updated_ms: now_ms(),
            })
            .await?;
        if !job.start {
            continue;
        }
        start_job(store, worker, job.name, &created.id, &version.id, "none").await?;
    }
    let started: Vec<&str> = jobs.iter().filter(|j| j.start).map(|j| j.name).collect();
    println!("sluice: demo project `{PROJECT}` is running: {}", started.join(", "));
    Ok(())
}

/// The demo warehouse: `DATA/files/demo/demo-warehouse.db`.
const WAREHOUSE: &str = "sqlite:demo-warehouse.db?mode=rwc";

/// Data directories made before SQLite connections were confined to their
/// project's file area kept the demo warehouse at `DATA/demo-warehouse.db`:
/// it moves into the area and the connection follows.
async fn move_old_warehouse(store: &Store, project_id: &str, data_dir: &Path) -> anyhow::Result<()> {
    let old = data_dir.join("demo-warehouse.db");
    let old_url = format!("sqlite://{}?mode=rwc", old.display());
    let Some(connection) = store.connection(project_id, "warehouse").await? else { return Ok(()) };
    if connection.url != old_url {
        return Ok(());
    }
    let area = crate::worker::plan::project_files(data_dir, PROJECT);
    std::fs::create_dir_all(&area)?;
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", old.display()));
        if from.exists() {
            std::fs::rename(&from, area.join(format!("demo-warehouse.db{suffix}")))?;
        }
    }
    put_connection(store, project_id, "warehouse", "database", WAREHOUSE).await
}

/// Points the demo's `events` connection at `brokers` and creates the
/// demo topics there, with the lending events when `lending` says so.
async fn prepare_broker(store: &Store, project_id: &str, brokers: &str, lending: bool) -> anyhow::Result<()> {
    put_connection(store, project_id, "events", "kafka", brokers).await?;
    let events = store.connection(project_id, "events").await?.expect("just stored");
    for topic in ["user_order", "u_user", "loan_list", "repay_log"] {
        if let Err(e) = crate::topics::create(&events, topic, 3).await {
            // It may exist already (an external cluster).
            tracing::warn!(error = format!("{e:#}"), topic, "demo topic");
        }
    }
    if lending {
        load_lending_events(brokers).await?;
    }
    Ok(())
}

/// A later start with the demo project in place: brings its jobs that
/// start with the demo back up (from their latest snapshot, or from
/// scratch on a fresh embedded broker, whose topics were in memory), as a
/// platform restart brings back its running jobs. A fresh embedded broker
/// listens on a new port and holds no topics, so the `events` connection
/// is pointed at it and its topics are made again first.
async fn resume(
    store: &Store,
    worker: &Arc<Worker>,
    project_id: &str,
    brokers: Option<&str>,
    fresh_broker: bool,
) -> anyhow::Result<()> {
    let demo = demo_jobs(brokers.is_some());
    if let (Some(brokers), true) = (brokers, fresh_broker) {
        let lending = store.job(project_id, "lending-report").await?.is_some();
        prepare_broker(store, project_id, brokers, lending).await?;
    }
    let mut resumed = Vec::new();
    for job in demo.iter().filter(|j| j.start) {
        let Some(stored) = store.job(project_id, job.name).await? else { continue };
        let Some(deployment) = store.deployment(&stored.id).await? else { continue };
        // Left active by a process that died: the recovery resumes it.
        if store.active_run(&stored.id).await?.is_some() {
            continue;
        }
        let restore = if fresh_broker { "none" } else { "latest" };
        if start_job(store, worker, job.name, &stored.id, &deployment.version_id, restore).await? {
            resumed.push(job.name);
        }
    }
    println!("sluice: demo project `{PROJECT}` is running again: {}", resumed.join(", "));
    Ok(())
}

/// Starts a demo job now, restoring `restore` (`none` or `latest`); says
/// whether it started (a job that does not is reported, not fatal).
async fn start_job(
    store: &Store,
    worker: &Arc<Worker>,
    name: &str,
    job_id: &str,
    version_id: &str,
    restore: &str,
) -> anyhow::Result<bool> {
    let run = store
        .create_run(NewRun {
            job_id,
            version_id,
            state: RunState::Starting,
            restore_from: Some(restore),
            start_position: None,
            scheduled_ms: None,
            created_by: "sluice",
            worker: worker.takes_runs.then_some(worker.id.as_str()),
        })
        .await?;
    if !worker.takes_runs {
        return Ok(true); // The leader assigns it to a worker.
    }
    match worker.launch(run).await {
        Ok(()) => Ok(true),
        Err(e) => {
            eprintln!("sluice: demo job {name} did not start: {e}");
            Ok(false)
        }
    }
}

async fn put_connection(store: &Store, project: &str, name: &str, kind: &str, url: &str) -> anyhow::Result<()> {
    let connection = Connection {
        name: name.into(),
        kind: kind.into(),
        url: url.into(),
        secret: None,
        properties: "{}".into(),
        updated_ms: now_ms(),
    };
    Ok(store.put_connection(project, &connection).await?)
}

/// Loads generated lending events (seed 004) into the demo topics.
async fn load_lending_events(brokers: &str) -> anyhow::Result<()> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let scenario = sluice_gen::scenario("lending").expect("the lending scenario is registered");
    let options = sluice_gen::GenOptions { count: LENDING_EVENTS, ..sluice_gen::GenOptions::default() };
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "5").create()?;
    let sends = scenario.generate(&options).into_iter().map(|event| {
        let producer = producer.clone();
        async move {
            let record =
                FutureRecord::to(event.stream).key(&event.key).payload(&event.value).timestamp(event.event_time_ms);
            producer.send(record, std::time::Duration::from_secs(30)).await.map_err(|(e, _)| e)
        }
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|e| anyhow::anyhow!("loading the demo's lending events: {e}"))?;
    }
    Ok(())
}
