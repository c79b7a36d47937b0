//! Large-transaction alerts (seed 003): generated movements through a Tansu
//! topic; customers in a SQL dimension table of the sink database, segment
//! thresholds in Redis hashes; alerts into a Kafka topic and an upsert table
//! (PostgreSQL, then MariaDB). Both must hold exactly the alerts a batch SQL
//! query finds over the raw movements in PostgreSQL
//! (`sluice_tests::seed_sql::large_tx_alerts`), at parallelism 1, 2 and 4.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use sluice_gen::large_tx::{CUSTOMER_STREAM, LargeTx, SEGMENT_STREAM, TXN_STREAM};
use sluice_gen::{Event, GenOptions, Scenario};
use sluice_tests::kafka::{create_topic, read_topic, unique_topic};
use sluice_tests::services::{kafka_brokers, redis_url};
use sqlx::AnyPool;

use crate::feeds::{malformed, run_job_in_tasks, specs_parse, stream, topic_of};
use crate::harness::{Db, drop_tables, text_rows, unique_table};

/// The generated feeds: 8000 movements (3% duplicated, 2% late, 0.5%
/// malformed) of customers keyed by customer id, and their reference rows.
struct Feeds {
    events: Vec<Event>,
}

impl Feeds {
    fn generate() -> Feeds {
        let options = GenOptions {
            seed: 31,
            count: 8000,
            late: 0.02,
            duplicated: 0.03,
            malformed: 0.005,
            ..GenOptions::default()
        };
        Feeds { events: LargeTx.generate(&options) }
    }

    fn txns(&self) -> Vec<&Event> {
        stream(&self.events, TXN_STREAM)
    }

    fn customers(&self) -> Vec<&Event> {
        stream(&self.events, CUSTOMER_STREAM)
    }

    fn segments(&self) -> Vec<&Event> {
        stream(&self.events, SEGMENT_STREAM)
    }

    /// The alerts the rules' SQL finds over the movements.
    async fn expected(&self) -> Vec<Vec<String>> {
        sluice_tests::seed_sql::large_tx_alerts(
            &values(self.txns()),
            &values(self.customers()),
            &values(self.segments()),
        )
        .await
    }

    /// The segment thresholds in Redis hashes under a new prefix, as an
    /// operations team keeps them.
    async fn thresholds_in_redis(&self, redis: &mut MultiplexedConnection, name: &str) -> String {
        let prefix = format!("sluice-e2e:{}:{name}:segment:", std::process::id());
        for s in self.segments() {
            let row: serde_json::Value = serde_json::from_slice(&s.value).unwrap();
            let fields: Vec<(String, String)> =
                row.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
            let _: () = redis.hset_multiple(format!("{prefix}{}", s.key), &fields).await.unwrap();
        }
        prefix
    }

    /// A new customer table in `pool`'s database, holding the reference rows.
    async fn customer_table(&self, pool: &AnyPool) -> String {
        let table = unique_table("customer");
        sqlx::query(&format!(
            "create table {table} (customer_id varchar(32) primary key, name varchar(32), segment varchar(32), \
             branch_id varchar(16), manager_id varchar(32))"
        ))
        .execute(pool)
        .await
        .unwrap();
        for c in self.customers() {
            let row: serde_json::Value = serde_json::from_slice(&c.value).unwrap();
            let text = |f: &str| row[f].as_str().unwrap().to_owned();
            sqlx::query(&format!(
                "insert into {table} values ('{}', '{}', '{}', '{}', '{}')",
                text("customer_id"),
                text("name"),
                text("segment"),
                text("branch_id"),
                text("manager_id")
            ))
            .execute(pool)
            .await
            .unwrap();
        }
        table
    }
}

fn values(events: Vec<&Event>) -> Vec<&[u8]> {
    events.into_iter().map(|e| e.value.as_slice()).collect()
}

async fn delete_prefix(redis: &mut MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
}

/// The job over the movements of `topic`, the customers of `dimension`
/// and the thresholds under `prefix`, into `alert_topic` and `sink`.
fn spec(topic: &str, dimension: &str, prefix: &str, alert_topic: &str, sink: &str) -> String {
    format!(
        r#"
        name = "large_tx_alert"
        component = "unused.wasm"
        [sources.account_txn]
        kind = "kafka"
        connection = "events"
        topic = "{topic}"
        bounded = true
        event_time_field = "txn_time"
        [dimensions.customer]
        kind = "sql"
        connection = "warehouse"
        table = "{dimension}"
        key = ["customer_id"]
        cache = {{ max_entries = 100000, ttl = "10m" }}
        [dimensions.segment_threshold]
        kind = "redis"
        connection = "profiles"
        key_prefix = "{prefix}"
        layout = "hash"
        [sinks.alert_topic]
        kind = "kafka"
        connection = "events"
        topic = "{alert_topic}"
        row_id_header = true
        [sinks.alert_table]
        kind = "sql"
        connection = "warehouse"
        table = "{sink}"
        primary_key = ["alert_id"]
        create_table = true
        batch_size = 500
        columns = {{ alert_id = "varchar(64)", rule = "varchar(16)", txn_id = "varchar(32)", customer_id = "varchar(32)", account_no = "varchar(32)", segment = "varchar(32)", manager_id = "varchar(32)", branch_id = "varchar(16)", direction = "varchar(4)", channel = "varchar(32)", amount = "decimal(18,2)", reference_amount = "decimal(18,2)", txn_time = "bigint" }}
        "#
    )
}

/// The alert table's rows as text, by alert id, in the columns of
/// [`sluice_tests::seed_sql::large_tx_alerts`].
async fn alert_rows(pool: &AnyPool, db: Db, sink: &str) -> Vec<Vec<String>> {
    let columns = [
        "alert_id",
        "rule",
        "txn_id",
        "customer_id",
        "account_no",
        "segment",
        "manager_id",
        "branch_id",
        "direction",
        "channel",
    ]
    .join(", ");
    let sql = format!(
        "select {columns}, {}, {}, {} from {sink} order by alert_id",
        db.text("amount"),
        db.text("reference_amount"),
        db.text("txn_time")
    );
    text_rows(pool, &sql).await
}

#[tokio::test]
async fn large_tx_alerts_into_kafka_and_postgres_and_mariadb() {
    specs_parse("large-tx-alert");
    let feeds = Feeds::generate();
    let txns = feeds.txns();
    let topic = topic_of("account-txn", 3, &txns).await;
    let expected = feeds.expected().await;
    let rules = |rule: &str| expected.iter().filter(|r| r[1] == rule).count();
    assert!(rules("large_amount") > 50 && rules("sudden_outflow") > 20, "both rules fire: {}", expected.len());
    let mut ids: Vec<String> = txns
        .iter()
        .filter_map(|e| serde_json::from_slice::<serde_json::Value>(&e.value).ok())
        .filter_map(|v| v["txn_id"].as_str().map(str::to_owned))
        .collect();
    let valid = ids.len();
    ids.sort();
    ids.dedup();
    assert!(valid - ids.len() > 100, "the feed has duplicates: {}", valid - ids.len());

    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let prefix = feeds.thresholds_in_redis(&mut redis, "large-tx").await;
    for db in Db::ALL {
        let pool = db.pool().await;
        let (dimension, sink) = (feeds.customer_table(&pool).await, unique_table("large_tx_alert"));
        let alert_topic = unique_topic("large-tx-alert");
        create_topic(&kafka_brokers(), &alert_topic, 1).await;
        let spec = spec(&topic, &dimension, &prefix, &alert_topic, &sink);
        let dead = run_job_in_tasks("large_tx_alert", &spec, db, &[format!("profiles={}", redis_url())], 1).await;
        assert_eq!(dead.len(), malformed(&txns), "{db:?}: the malformed movements, and only they, are dead letters");

        let actual = alert_rows(&pool, db, &sink).await;
        drop_tables(&pool, &[&sink, &dimension]).await;
        assert_eq!(actual.len(), expected.len(), "{db:?}: one row per alert");
        assert_eq!(actual, expected, "{db:?}: the alert table equals the batch SQL over the same movements");

        // The topic: the same alerts, each once, keyed by alert id.
        let messages = read_topic(&kafka_brokers(), &alert_topic, 1, expected.len(), Duration::from_secs(60));
        let mut from_topic: Vec<(String, String, String)> = messages
            .iter()
            .map(|(_, _, key, value)| {
                let v: serde_json::Value = serde_json::from_str(value.as_deref().unwrap()).unwrap();
                assert_eq!(key.as_deref(), v["alert_id"].as_str());
                (
                    v["alert_id"].as_str().unwrap().to_owned(),
                    format!("{:.2}", v["amount"].as_f64().unwrap()),
                    v["rule"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        from_topic.sort();
        let wanted: Vec<(String, String, String)> =
            expected.iter().map(|r| (r[0].clone(), r[10].clone(), r[1].clone())).collect();
        assert_eq!(from_topic, wanted, "{db:?}: the alert topic holds the same alerts");
    }
    delete_prefix(&mut redis, &prefix).await;
}

/// Split by partition (issue 19): the job declares its state keyed by the
/// record key (customer id), so 1, 2 and 4 tasks, each reading a share of
/// a 4-partition topic with its own state, give the same alerts, and those
/// of the rules' SQL, with the same dead letters.
#[tokio::test]
async fn large_tx_alerts_are_the_same_at_every_parallelism() {
    let feeds = Feeds::generate();
    let txns = feeds.txns();
    let topic = topic_of("account-txn-split", 4, &txns).await;
    let expected = feeds.expected().await;
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let prefix = feeds.thresholds_in_redis(&mut redis, "large-tx-split").await;
    let db = Db::Postgres;
    let pool = db.pool().await;
    let dimension = feeds.customer_table(&pool).await;
    let alert_topic = unique_topic("large-tx-alert-split");
    create_topic(&kafka_brokers(), &alert_topic, 1).await;
    for tasks in [1, 2, 4] {
        let sink = unique_table("large_tx_alert");
        let spec = spec(&topic, &dimension, &prefix, &alert_topic, &sink);
        let dead = run_job_in_tasks("large_tx_alert", &spec, db, &[format!("profiles={}", redis_url())], tasks).await;
        let actual = alert_rows(&pool, db, &sink).await;
        drop_tables(&pool, &[&sink]).await;
        assert_eq!(dead.len(), malformed(&txns), "{tasks} tasks: the malformed movements are the dead letters");
        assert_eq!(actual.len(), expected.len(), "{tasks} tasks: one row per alert");
        assert_eq!(actual, expected, "{tasks} tasks: the alert table equals the batch SQL");
    }
    drop_tables(&pool, &[&dimension]).await;
    delete_prefix(&mut redis, &prefix).await;
}
