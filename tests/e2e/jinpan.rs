//! 金盘 (seed 000) end to end: generated order messages (with duplicated,
//! late and cut-off ones) through a Tansu topic into the ten normalised
//! PostgreSQL tables by the WASM sync job, compared table by table with the
//! batch SQL of `jinpan/expected.rs` over the same messages; post-loan
//! status pulled from 盘宝's table; and lost messages back-filled by the
//! compensation job from 盘宝's order table.
//!
//! The jobs run with their shipped specs (`kafka.toml`, `daily.toml`),
//! pointed at a schema of the test's own and, for Kafka, a bounded read of
//! a fresh topic.

mod expected;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jinpan_model::tables::{self, TABLES};
use serde_json::Value;
use sluice_gen::jinpan::{Jinpan, ORDER_STREAM, STATUS_STREAM};
use sluice_gen::{Event, GenOptions, Scenario};
use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::memory::MemorySink;
use sluice_runtime::connectors::registry::{DimensionSpec, SinkSpec, SourceSpec};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::snapshot::{LocalSnapshotStore, SnapshotStore};
use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::{kafka_brokers, postgres_url, repo_root};
use sluice_tests::{engine, load};
use sqlx::{AnyPool, PgPool};

use crate::harness::{Db, text_rows};

const PARTITIONS: i32 = 3;

/// A PostgreSQL schema of one test: 金盘's tables, 盘宝's tables, the raw
/// messages and the document tables of the batch SQL. Dropped at the end.
struct Warehouse {
    schema: String,
    pg: PgPool,
    any: AnyPool,
}

impl Warehouse {
    async fn create(test: &str) -> Warehouse {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let schema = format!("e2e_jinpan_{test}_{}_{nanos}", std::process::id());
        let pg = PgPool::connect(&postgres_url()).await.expect("connect to PostgreSQL");
        let dir = repo_root().join("jobs/jinpan-model/schema");
        let mut ddl = format!("CREATE SCHEMA {schema};\n");
        for file in ["postgres.sql", "panbao.sql"] {
            let text = std::fs::read_to_string(dir.join(file)).expect("schema file");
            ddl.push_str(&text.replace("CREATE TABLE IF NOT EXISTS ", &format!("CREATE TABLE {schema}.")));
        }
        // Messages that are not JSON become NULL documents.
        ddl.push_str(&format!(
            "CREATE FUNCTION {schema}.try_jsonb(t text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$ \
             BEGIN RETURN t::jsonb; EXCEPTION WHEN others THEN RETURN NULL; END $$;"
        ));
        sqlx::raw_sql(&ddl).execute(&pg).await.expect("create the schema");
        Warehouse { schema, pg, any: Db::Postgres.pool().await }
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(&self.pg).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn count(&self, sql: &str) -> usize {
        text_rows(&self.any, sql).await[0][0].parse().expect("a count")
    }

    /// Loads messages (as sent, cut-off ones too) into `name (seq, msg)`.
    async fn load_messages(&self, name: &str, messages: &[&Event]) {
        self.exec(&format!("CREATE TABLE {}.{name} (seq bigint PRIMARY KEY, msg text NOT NULL)", self.schema)).await;
        let rows: Vec<(i64, String)> = messages
            .iter()
            .enumerate()
            .map(|(seq, e)| (seq as i64, String::from_utf8(e.value.clone()).expect("UTF-8")))
            .collect();
        for chunk in rows.chunks(1000) {
            let mut q =
                sqlx::QueryBuilder::<sqlx::Postgres>::new(format!("INSERT INTO {}.{name} (seq, msg) ", self.schema));
            q.push_values(chunk, |mut b, (seq, msg)| {
                b.push_bind(*seq).push_bind(msg.clone());
            });
            q.build().execute(&self.pg).await.expect("load messages");
        }
    }

    /// 盘宝's order table: the latest version of every order.
    async fn load_orders_of_record(&self, orders: &[Value]) {
        for chunk in orders.chunks(500) {
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
                "INSERT INTO {}.pb_order (order_id, user_id, gmt_modified, payload) ",
                self.schema
            ));
            q.push_values(chunk, |mut b, o| {
                b.push_bind(o["order_id"].as_str().unwrap().to_owned())
                    .push_bind(o["user_id"].as_i64().unwrap())
                    .push_bind(o["gmt_modified"].as_i64().unwrap())
                    .push_bind(o.to_string())
                    .push_unseparated("::jsonb");
            });
            q.build().execute(&self.pg).await.expect("load the orders of record");
        }
    }

    /// The shipped spec `jobs/<file>`, pointed at this schema and, for a
    /// Kafka source, at a bounded read of `topic`.
    fn spec(&self, file: &str, topic: Option<&str>) -> JobSpec {
        let mut spec = JobSpec::load(&repo_root().join("jobs").join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let s = &self.schema;
        for source in spec.sources.values_mut() {
            match source {
                SourceSpec::Kafka(k) => {
                    k.topic = Some(topic.expect("a topic for the Kafka source").to_owned());
                    k.bounded = true;
                }
                SourceSpec::Sql(q) => {
                    for table in ["pb_order", "pb_repayment_status"] {
                        q.query = q.query.replace(&format!(" {table}"), &format!(" {s}.{table}"));
                    }
                }
                _ => {}
            }
        }
        for sink in spec.sinks.values_mut() {
            if let SinkSpec::Sql(c) = sink {
                c.table = format!("{s}.{}", c.table);
            }
        }
        for dimension in spec.dimensions.values_mut() {
            if let DimensionSpec::Sql(c) = dimension {
                c.table = format!("{s}.{}", c.table);
            }
        }
        spec
    }

    /// Runs the WASM job `component` with `jobs/<file>` to the end of its
    /// bounded input.
    async fn run(&self, file: &str, component: &str, topic: Option<&str>) -> Run {
        self.run_spec(&self.spec(file, topic), component, |builder| builder).await
    }

    /// Runs `component` with `spec`, the task set up further by `configure`.
    async fn run_spec<'a>(
        &self,
        spec: &'a JobSpec,
        component: &str,
        configure: impl FnOnce(TaskBuilder<'a>) -> TaskBuilder<'a>,
    ) -> Run {
        let mut connections = Connections::default();
        for c in [format!("events={}", kafka_brokers()), format!("warehouse={}", postgres_url())] {
            connections.apply_override(&c).unwrap();
        }
        connections.apply_override(&format!("panbao={}", postgres_url())).unwrap();
        let loaded = load(component).await.expect("component");
        let dead = MemorySink::default();
        let builder = TaskBuilder::new(spec).connections(connections).dead_letter(Box::new(dead.clone()));
        let task = configure(builder).build(engine(), &loaded).await.unwrap_or_else(|e| panic!("{component}: {e}"));
        let metrics = task.metrics();
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let end = tokio::time::timeout(Duration::from_secs(300), task.run(stop_rx))
            .await
            .expect("the job finished within 300 s")
            .unwrap_or_else(|e| panic!("{component}: {e}"));
        assert_eq!(end, TaskEnd::Finished);
        Run {
            dead_letters: dead.rows().iter().map(|r| serde_json::from_slice(&r.value).unwrap()).collect(),
            records_in: TaskMetrics::get(&metrics.records_in),
            metrics: metrics.custom().into_iter().map(|m| (m.name, m.value)).collect(),
        }
    }

    /// Every table equals the batch SQL over the documents of table `orders`
    /// (for `jp_repayment`, the plan columns).
    async fn assert_tables(&self, orders: &str, when: &str) {
        for t in TABLES {
            let columns = t.sync_columns();
            let actual = text_rows(&self.any, &expected::actual(&self.schema, t, &columns)).await;
            let expected = text_rows(&self.any, &expected::expected(&self.schema, t, &columns, orders)).await;
            assert!(!expected.is_empty(), "{}: the batch SQL gives rows", t.name);
            assert_rows(&actual, &expected, &format!("{when}: {}", t.name));
        }
    }

    async fn assert_repayment_with_status(&self, orders: &str, when: &str) {
        let t = tables::table(tables::REPAYMENT).unwrap();
        let actual = text_rows(&self.any, &expected::actual(&self.schema, t, t.columns)).await;
        let expected = text_rows(&self.any, &expected::expected_repayment(&self.schema, orders)).await;
        assert_rows(&actual, &expected, &format!("{when}: jp_repayment with status"));
    }

    async fn drop(self) {
        self.exec(&format!("DROP SCHEMA {} CASCADE", self.schema)).await;
    }
}

/// Compares row sets, showing the first differences rather than thousands
/// of rows.
fn assert_rows(actual: &[Vec<String>], expected: &[Vec<String>], what: &str) {
    if actual == expected {
        return;
    }
    let a: BTreeSet<&Vec<String>> = actual.iter().collect();
    let e: BTreeSet<&Vec<String>> = expected.iter().collect();
    let extra: Vec<_> = a.difference(&e).take(5).collect();
    let missing: Vec<_> = e.difference(&a).take(5).collect();
    panic!(
        "{what}: {} rows, the batch SQL gives {}; rows the SQL does not give: {extra:?}; rows missing: {missing:?}",
        actual.len(),
        expected.len()
    );
}

struct Run {
    dead_letters: Vec<Value>,
    records_in: u64,
    metrics: BTreeMap<String, f64>,
}

impl Run {
    fn metric(&self, name: &str) -> u64 {
        self.metrics.get(name).copied().unwrap_or(0.0) as u64
    }
}

/// A new topic holding `messages`, each in the partition of its key (the
/// user id), so one user's messages keep their order.
async fn topic_of(messages: &[&Event]) -> String {
    let brokers = kafka_brokers();
    let topic = unique_topic("jinpan-order");
    create_topic(&brokers, &topic, PARTITIONS).await;
    let produced = messages.iter().map(|e| {
        let partition = (e.key.parse::<i64>().expect("user id key") % i64::from(PARTITIONS)) as i32;
        (partition, e.key.as_str(), String::from_utf8(e.value.clone()).expect("UTF-8"))
    });
    produce(&brokers, &topic, produced).await;
    topic
}

fn stream<'a>(events: &'a [Event], name: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.stream == name).collect()
}

fn is_json(e: &Event) -> bool {
    serde_json::from_slice::<Value>(&e.value).is_ok()
}

fn dirty(seed: u64, count: u64) -> GenOptions {
    GenOptions { seed, count, late: 0.03, duplicated: 0.03, malformed: 0.01, ..GenOptions::default() }
}

/// Sync over every message, then post-loan status, against the batch SQL.
#[tokio::test]
async fn sync_and_postloan_match_the_batch_sql() {
    let events = Jinpan.generate(&dirty(7, 3000));
    let orders = stream(&events, ORDER_STREAM);
    let statuses = stream(&events, STATUS_STREAM);
    let topic = topic_of(&orders).await;
    let w = Warehouse::create("sync").await;
    let s = w.schema.clone();

    let sync = w.run("jinpan-sync/kafka.toml", "jinpan_sync", Some(&topic)).await;
    let cut_off = orders.iter().filter(|e| !is_json(e)).count();
    assert!(cut_off > 0);
    assert_eq!(sync.dead_letters.len(), cut_off, "one dead letter per cut-off message");
    assert_eq!(sync.metric("orders") as usize, orders.len() - cut_off);
    // Duplicates, late versions and the phones listed twice are superseded.
    assert!(sync.metric("rows_superseded") > 100, "{:?}", sync.metrics);
    assert!(sync.metric("rows_without_key") > 10, "{:?}", sync.metrics);

    w.load_messages("raw_order", &orders).await;
    w.exec(&expected::orders_table(&s, "ev", &format!("SELECT seq, {s}.try_jsonb(msg) AS doc FROM {s}.raw_order")))
        .await;
    w.assert_tables(&format!("{s}.ev"), "after sync").await;
    let pending = w.count(&format!("SELECT count(*)::text FROM {s}.jp_repayment WHERE repay_status = 'PENDING'")).await;
    assert_eq!(pending, w.count(&format!("SELECT count(*)::text FROM {s}.jp_repayment")).await);

    // Post-loan: 盘宝's status table holds each installment's latest status.
    w.load_messages("raw_status", &statuses).await;
    w.exec(&format!(
        "INSERT INTO {s}.pb_repayment_status \
         SELECT DISTINCT ON (d->>'order_id', (d->>'period')::int) d->>'order_id', (d->>'period')::int, \
                (d->>'user_id')::bigint, d->>'status', (d->>'repaid_amount')::numeric, (d->>'repaid_time')::bigint, \
                (d->>'updated_at')::bigint \
         FROM (SELECT seq, msg::jsonb AS d FROM {s}.raw_status) r \
         ORDER BY d->>'order_id', (d->>'period')::int, (d->>'updated_at')::bigint DESC, seq DESC"
    ))
    .await;
    let installments = w.count(&format!("SELECT count(*)::text FROM {s}.pb_repayment_status")).await;
    assert!(installments > 100, "{installments}");
    for run in ["after post-loan", "after post-loan again"] {
        let post = w.run("jinpan-postloan/daily.toml", "jinpan_postloan", None).await;
        assert!(post.dead_letters.is_empty(), "{:?}", post.dead_letters);
        assert_eq!(post.metric("statuses_written") as usize, installments);
        w.assert_repayment_with_status(&format!("{s}.ev"), run).await;
    }
    let paid = w.count(&format!("SELECT count(*)::text FROM {s}.jp_repayment WHERE repay_status = 'PAID'")).await;
    assert!(paid > 50, "{paid}");
    w.drop().await;
}

/// Messages get lost: the sync job's tables miss orders; the compensation
/// job, comparing with 盘宝's order table, back-fills them, and the tables
/// then equal the batch SQL over everything that happened.
#[tokio::test]
async fn lost_orders_are_back_filled_by_compensation() {
    let options = dirty(11, 2500);
    let events = Jinpan.generate(&options);
    let orders = stream(&events, ORDER_STREAM);
    // Lose every message of one order in ten, and one message in thirty of
    // the others (a newer version lost leaves an older one synced).
    let order_id =
        |e: &Event| serde_json::from_slice::<Value>(&e.value).ok().map(|v| v["order_id"].as_str().unwrap().to_owned());
    let lost_orders: BTreeSet<String> =
        orders.iter().filter_map(|e| order_id(e)).filter(|id| id[10..].parse::<u64>().unwrap() % 10 == 3).collect();
    let delivered: Vec<&Event> = orders
        .iter()
        .enumerate()
        .filter(|(i, e)| i % 30 != 7 && !order_id(e).is_some_and(|id| lost_orders.contains(&id)))
        .map(|(_, e)| *e)
        .collect();
    assert!(lost_orders.len() > 50 && delivered.len() < orders.len() - lost_orders.len());
    let topic = topic_of(&delivered).await;
    let w = Warehouse::create("compensate").await;
    let s = w.schema.clone();

    w.run("jinpan-sync/kafka.toml", "jinpan_sync", Some(&topic)).await;
    let record = Jinpan.orders_of_record(&options);
    w.load_orders_of_record(&record).await;
    let ids: Vec<&str> = lost_orders.iter().map(String::as_str).collect();
    let lost_synced =
        w.count(&format!("SELECT count(*)::text FROM {s}.jp_order WHERE order_id IN ('{}')", ids.join("', '"))).await;
    assert_eq!(lost_synced, 0, "the lost orders are missing");
    let missing = w
        .count(&format!(
            "SELECT count(*)::text FROM {s}.pb_order p WHERE NOT EXISTS \
             (SELECT 1 FROM {s}.jp_order o WHERE o.order_id = p.order_id)"
        ))
        .await;
    let stale = w
        .count(&format!(
            "SELECT count(*)::text FROM {s}.pb_order p JOIN {s}.jp_order o USING (order_id) \
             WHERE o.gmt_modified < p.gmt_modified"
        ))
        .await;
    assert!(missing >= lost_orders.len() && stale > 0, "missing {missing}, stale {stale}");

    // What happened: every message (the lost ones too) and 盘宝's orders
    // (which hold the cut-off and never-sent ones).
    w.load_messages("raw_order", &orders).await;
    w.exec(&expected::orders_table(
        &s,
        "truth",
        &format!(
            "SELECT seq, {s}.try_jsonb(msg) AS doc FROM {s}.raw_order \
             UNION ALL SELECT -1 AS seq, payload AS doc FROM {s}.pb_order"
        ),
    ))
    .await;
    let order_table = tables::table(tables::ORDER).unwrap();
    let before = text_rows(&w.any, &expected::actual(&s, order_table, order_table.columns)).await;
    let truth =
        text_rows(&w.any, &expected::expected(&s, order_table, order_table.columns, &format!("{s}.truth"))).await;
    assert_eq!(truth.len(), record.len());
    assert!(before.len() < truth.len());

    let compensation = w.run("jinpan-compensate/daily.toml", "jinpan_compensate", None).await;
    assert!(compensation.dead_letters.is_empty(), "{:?}", compensation.dead_letters);
    assert_eq!(compensation.metric("orders_missing") as usize, missing);
    assert_eq!(compensation.metric("orders_stale") as usize, stale);
    assert_eq!(compensation.metric("orders_in_sync") as usize, record.len() - missing - stale);
    w.assert_tables(&format!("{s}.truth"), "after compensation").await;

    // Once the tables are whole, compensation finds nothing to do.
    let again = w.run("jinpan-compensate/daily.toml", "jinpan_compensate", None).await;
    assert_eq!(again.metric("orders_in_sync") as usize, record.len(), "{:?}", again.metrics);
    assert_eq!(again.metric("rows_backfilled"), 0);
    w.assert_tables(&format!("{s}.truth"), "after compensation again").await;
    w.drop().await;
}

/// The `sql` source's positions go into snapshots: a run restored from a
/// snapshot taken part-way reads only the rows after its position, and the
/// table ends up the same.
#[tokio::test]
async fn postloan_resumes_from_a_snapshot_position() {
    let w = Warehouse::create("snapshot").await;
    let s = w.schema.clone();
    w.exec(&format!(
        "INSERT INTO {s}.pb_repayment_status \
         SELECT 'JP2024031500' || lpad(g::text, 5, '0'), 1, 10000000 + g, \
                CASE WHEN g % 3 = 0 THEN 'OVERDUE' ELSE 'PAID' END, \
                CASE WHEN g % 3 = 0 THEN NULL ELSE 100 + g END, 1710432000000 + g, 1710432000000 + g \
         FROM generate_series(1, 50) g"
    ))
    .await;
    let mut spec = w.spec("jinpan-postloan/daily.toml", None);
    spec.batch.max_records = 10;
    // Any interval has passed by the end of a batch, so there is a snapshot
    // after every batch of 10, however fast the machine (1 ms was not always).
    spec.snapshot.interval = Some(Duration::from_nanos(1));
    spec.snapshot.retain = 100;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SnapshotStore> = Arc::new(LocalSnapshotStore::new(dir.path()));
    let first = w.run_spec(&spec, "jinpan_postloan", |b| b.snapshots(store.clone())).await;
    assert_eq!((first.records_in, first.metric("statuses_written")), (50, 50));
    let table =
        format!("SELECT order_id, repay_status, coalesce(repaid_amount::text, '-') FROM {s}.jp_repayment ORDER BY 1");
    let full = text_rows(&w.any, &table).await;
    assert_eq!(full.len(), 50);

    // A snapshot from part-way through: its position is the next row.
    let mut part_way = None;
    for id in store.list(&spec.name).await.unwrap() {
        let snapshot = store.load(&spec.name, &id).await.unwrap();
        let position = snapshot.positions_of("repayment_status");
        if let [(0, next)] = position[..]
            && (1..50).contains(&next)
        {
            part_way = Some((next, snapshot));
        }
    }
    let (next, snapshot) = part_way.expect("a snapshot taken part-way through the rows");
    w.exec(&format!("DELETE FROM {s}.jp_repayment")).await;
    w.exec(&format!(
        "INSERT INTO {s}.jp_repayment (order_id, period, repay_status) \
         SELECT order_id, period, 'GONE' FROM {s}.pb_repayment_status ORDER BY order_id LIMIT {next}"
    ))
    .await;
    let restored = w.run_spec(&spec, "jinpan_postloan", |b| b.restore(snapshot)).await;
    assert_eq!(restored.records_in, 50 - next as u64, "only the rows after the position are read");
    let after = text_rows(&w.any, &table).await;
    assert_eq!(after[next as usize..], full[next as usize..], "the rows after the position are written again");
    assert!(after[..next as usize].iter().all(|r| r[1] == "GONE"), "the rows before it are not read again");
    w.drop().await;
}
