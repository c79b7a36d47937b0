//! What the end-to-end tests share: topics, a database per run, running a
//! job to the end of its (bounded) Kafka input. The events come from
//! `sluice_gen` (see `feeds.rs`).

use std::time::Duration;

use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::memory::MemorySink;
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::{kafka_brokers, mysql_url, postgres_url};
use sluice_tests::{engine, load};
use sqlx::AnyPool;

/// The sink databases every job runs against.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Postgres,
    MariaDb,
}

impl Db {
    pub const ALL: [Db; 2] = [Db::Postgres, Db::MariaDb];

    pub fn url(self) -> String {
        match self {
            Db::Postgres => postgres_url(),
            Db::MariaDb => mysql_url(),
        }
    }

    pub async fn pool(self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url()).await.expect("connect to the sink database")
    }

    /// SQL that renders a column as text, for comparisons.
    pub fn text(self, column: &str) -> String {
        match self {
            Db::Postgres => format!("{column}::text"),
            Db::MariaDb => format!("cast({column} as char)"),
        }
    }
}

/// A table name no other test run uses.
pub fn unique_table(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("e2e_{prefix}_{}_{nanos}", std::process::id())
}

/// Creates a topic with `partitions` partitions and produces the events,
/// each to partition `key % partitions` so that one key's events keep their
/// order.
pub async fn topic_with(prefix: &str, partitions: i32, events: &[(u64, serde_json::Value)]) -> String {
    let brokers = kafka_brokers();
    let topic = unique_topic(prefix);
    create_topic(&brokers, &topic, partitions).await;
    let keys: Vec<String> = events.iter().map(|(k, _)| k.to_string()).collect();
    let messages =
        events.iter().zip(&keys).map(|((k, v), key)| ((*k % partitions as u64) as i32, key.as_str(), v.to_string()));
    produce(&brokers, &topic, messages).await;
    topic
}

/// `events` (Kafka) and `warehouse` (the sink database).
pub fn connections(db: Db) -> Connections {
    let mut c = Connections::default();
    c.apply_override(&format!("events={}", kafka_brokers())).unwrap();
    c.apply_override(&format!("warehouse={}", db.url())).unwrap();
    c
}

/// Runs the WASM job `component` with `spec` until its bounded source is
/// read; returns the dead letters.
pub async fn run_job(component: &str, spec: &str, db: Db) -> Vec<serde_json::Value> {
    let spec = JobSpec::parse(spec, std::path::Path::new(".")).expect("spec");
    let loaded = load(component).await.expect("component");
    let dead = MemorySink::default();
    let task = TaskBuilder::new(&spec)
        .connections(connections(db))
        .dead_letter(Box::new(dead.clone()))
        .build(engine(), &loaded)
        .await
        .expect("task");
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let end = tokio::time::timeout(Duration::from_secs(120), task.run(stop_rx))
        .await
        .expect("job finished within 120 s")
        .expect("job ran without error");
    assert_eq!(end, TaskEnd::Finished);
    dead.rows().iter().map(|r| serde_json::from_slice(&r.value).unwrap()).collect()
}

/// Loads rows into a fresh PostgreSQL table (for the expected-result query).
pub async fn load_events(table: &str, ddl: &str, columns: &[&str], rows: &[Vec<Option<String>>]) -> AnyPool {
    // PgPool for the binds ($1 placeholders); AnyPool for the queries after.
    let pg = sqlx::PgPool::connect(&postgres_url()).await.expect("connect to PostgreSQL");
    sqlx::query(&format!("create table {table} ({ddl})")).execute(&pg).await.expect("create events table");
    for chunk in rows.chunks(1000) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!("insert into {table} ({}) ", columns.join(", ")));
        q.push_values(chunk, |mut b, row| {
            for cell in row {
                b.push_bind(cell.clone());
            }
        });
        q.build().execute(&pg).await.expect("load events");
    }
    Db::Postgres.pool().await
}

/// Drops tables, ignoring ones that do not exist.
pub async fn drop_tables(pool: &AnyPool, tables: &[&str]) {
    for t in tables {
        let _ = sqlx::query(&format!("drop table if exists {t}")).execute(pool).await;
    }
}

/// Rows of a query, every column as text (NULL as "∅").
pub async fn text_rows(pool: &AnyPool, sql: &str) -> Vec<Vec<String>> {
    use sqlx::Row;
    let rows = sqlx::query(sql).fetch_all(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| {
            (0..r.len()).map(|i| r.try_get::<Option<String>, _>(i).unwrap().unwrap_or_else(|| "∅".into())).collect()
        })
        .collect()
}
