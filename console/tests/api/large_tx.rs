//! A seed job in parallel on the platform (issue 19): large-tx-alert
//! declares its state keyed by the record key (customer id), so it runs
//! in shards, one per partition of its movements topic. Started at
//! parallelism 1 and rescaled to 4 and to 2 mid-stream, each shard going
//! on from its snapshot, its alert table in PostgreSQL equals the rules'
//! SQL over the movements (`sluice_tests::seed_sql::large_tx_alerts`).

use redis::AsyncCommands;
use serde_json::{Value, json};
use sluice_gen::large_tx::{CUSTOMER_STREAM, LargeTx, SEGMENT_STREAM, TXN_STREAM};
use sluice_gen::{Event, GenOptions, Scenario};
use sluice_tests::kafka::{create_topic, produce_unbatched, unique_topic};
use sluice_tests::services::{kafka_brokers, postgres_url, redis_url};
use sqlx::Row;

use crate::helpers::{PATIENCE, component, run_records_in, shard_map, spawn_app, wait_for, wait_for_run};

const JOB: &str = "/projects/split/jobs/alerts";

fn spec(topic: &str, customers: &str, prefix: &str, alert_topic: &str, table: &str) -> String {
    format!(
        r#"[sources.account_txn]
kind = "kafka"
connection = "events"
topic = "{topic}"
start = "earliest"
event_time_field = "txn_time"

[dimensions.customer]
kind = "sql"
connection = "warehouse"
table = "{customers}"
key = ["customer_id"]

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
table = "{table}"
primary_key = ["alert_id"]
create_table = true
columns = {{ alert_id = "varchar(64)", rule = "varchar(16)", txn_id = "varchar(32)", customer_id = "varchar(32)", account_no = "varchar(32)", segment = "varchar(32)", manager_id = "varchar(32)", branch_id = "varchar(16)", direction = "varchar(4)", channel = "varchar(32)", amount = "decimal(18,2)", reference_amount = "decimal(18,2)", txn_time = "bigint" }}

[batch]
max_records = 200
"#
    )
}

/// The movements of a key to one of 4 partitions (any fixed function of the
/// key keeps a customer's movements in order, as Kafka's partitioner does).
fn partition(key: &str) -> i32 {
    (key.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 4) as i32
}

async fn produce_movements(topic: &str, movements: &[&Event]) {
    let messages = movements
        .iter()
        .map(|e| (partition(&e.key), e.key.as_str(), String::from_utf8(e.value.clone()).expect("UTF-8 values")));
    produce_unbatched(&kafka_brokers(), topic, messages).await;
}

fn values<'a>(events: &[&'a Event]) -> Vec<&'a [u8]> {
    events.iter().map(|e| e.value.as_slice()).collect()
}

/// The alerts of the rules' SQL over `movements`.
async fn expected(movements: &[&Event], customers: &[&Event], segments: &[&Event]) -> Vec<Vec<String>> {
    sluice_tests::seed_sql::large_tx_alerts(&values(movements), &values(customers), &values(segments)).await
}

/// Waits until the alert table holds `expected`.
async fn alerts_are(pool: &sqlx::PgPool, table: &str, expected: &[Vec<String>]) {
    let sql = format!(
        "select alert_id, rule, txn_id, customer_id, account_no, coalesce(segment, '∅'), coalesce(manager_id, '∅'), \
         coalesce(branch_id, '∅'), direction, coalesce(channel, '∅'), amount::text, reference_amount::text, \
         txn_time::text from {table} order by alert_id"
    );
    wait_for(&format!("{table} to hold the {} alerts of the SQL", expected.len()), PATIENCE, || async {
        let rows = sqlx::query(&sql).fetch_all(pool).await.map_err(|e| e.to_string())?;
        let rows: Vec<Vec<String>> = rows.iter().map(|r| (0..13).map(|i| r.get::<String, _>(i)).collect()).collect();
        if rows == expected { Ok(()) } else { Err(format!("{} rows", rows.len())) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_tx_alert_gives_the_rules_sql_through_rescales() {
    let options =
        GenOptions { seed: 37, count: 3000, late: 0.02, duplicated: 0.03, malformed: 0.0, ..GenOptions::default() };
    let events = LargeTx.generate(&options);
    let stream = |name: &str| events.iter().filter(|e| e.stream == name).collect::<Vec<&Event>>();
    let (movements, customers, segments) = (stream(TXN_STREAM), stream(CUSTOMER_STREAM), stream(SEGMENT_STREAM));

    // Reference data where the bank keeps it: customers in PostgreSQL,
    // thresholds in Redis hashes.
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("PostgreSQL");
    let pid = std::process::id();
    let (customer_table, table) = (format!("split_customer_{pid}"), format!("split_large_tx_alert_{pid}"));
    sqlx::query(&format!(
        "create table {customer_table} (customer_id varchar(32) primary key, segment varchar(32), \
         manager_id varchar(32))"
    ))
    .execute(&pool)
    .await
    .unwrap();
    for c in &customers {
        let row: Value = serde_json::from_slice(&c.value).unwrap();
        sqlx::query(&format!("insert into {customer_table} values ($1, $2, $3)"))
            .bind(row["customer_id"].as_str())
            .bind(row["segment"].as_str())
            .bind(row["manager_id"].as_str())
            .execute(&pool)
            .await
            .unwrap();
    }
    let prefix = format!("sluice-api:{pid}:split:segment:");
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    for s in &segments {
        let row: Value = serde_json::from_slice(&s.value).unwrap();
        let fields: Vec<(String, String)> =
            row.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
        let _: () = redis.hset_multiple(format!("{prefix}{}", s.key), &fields).await.unwrap();
    }

    let (topic, alert_topic) = (unique_topic("api-split-txn"), unique_topic("api-split-alert"));
    create_topic(&kafka_brokers(), &topic, 4).await;
    create_topic(&kafka_brokers(), &alert_topic, 1).await;
    let app = spawn_app().await;
    let a = &app.admin;
    app.project("split").await;
    a.put("/projects/split/connections/events", json!({ "kind": "kafka", "url": kafka_brokers() })).await.expect(204);
    a.put("/projects/split/connections/warehouse", json!({ "kind": "database", "url": postgres_url() }))
        .await
        .expect(204);
    a.put("/projects/split/connections/profiles", json!({ "kind": "redis", "url": redis_url() })).await.expect(204);
    a.post("/projects/split/jobs", json!({ "name": "alerts" })).await.expect(201);
    let version = a.post_bytes(&format!("{JOB}/versions"), component("large_tx_alert")).await.expect(201);
    assert_eq!(version["state_keying"], "by-record-key", "{version}");
    let spec = spec(&topic, &customer_table, &prefix, &alert_topic, &table);
    a.put(&format!("{JOB}/deployment"), json!({ "spec": spec, "parallelism": 1 })).await.expect(200);

    // Parallelism 1: one task runs the four shards.
    let (first, rest) = movements.split_at(1500);
    let (second, third) = rest.split_at(750);
    let upto = |n: usize| &movements[..n];
    produce_movements(&topic, first).await;
    a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    let expected_first = expected(first, &customers, &segments).await;
    assert!(expected_first.len() > 20, "alerts fire: {}", expected_first.len());
    alerts_are(&pool, &table, &expected_first).await;
    assert_eq!(
        wait_for("four shards in one task", PATIENCE, || shard_map(a, JOB, 4)).await,
        [(0, 0), (0, 1), (0, 2), (0, 3)]
    );

    // Rescale 1 -> 4 mid-stream: each shard restores its own snapshot
    // (its customers' de-duplication and outflow history).
    a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 4 })).await.expect(200);
    wait_for_run(a, "split", "alerts", "running").await;
    assert_eq!(wait_for("a task per shard", PATIENCE, || shard_map(a, JOB, 4)).await, [(0, 0), (1, 1), (2, 2), (3, 3)]);
    produce_movements(&topic, second).await;
    alerts_are(&pool, &table, &expected(upto(2250), &customers, &segments).await).await;
    assert_eq!(run_records_in(a, JOB).await, second.len() as u64, "each shard went on from its snapshot");

    // Rescale 4 -> 2, then the rest.
    a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 2 })).await.expect(200);
    wait_for_run(a, "split", "alerts", "running").await;
    assert_eq!(
        wait_for("two shards per task", PATIENCE, || shard_map(a, JOB, 4)).await,
        [(0, 0), (1, 1), (0, 2), (1, 3)]
    );
    produce_movements(&topic, third).await;
    alerts_are(&pool, &table, &expected(&movements, &customers, &segments).await).await;
    assert_eq!(run_records_in(a, JOB).await, third.len() as u64, "each shard went on from its snapshot");

    a.post(&format!("{JOB}/stop"), json!({ "snapshot": false })).await.expect(200);
    for t in [&table, &customer_table] {
        let _ = sqlx::query(&format!("drop table if exists {t}")).execute(&pool).await;
    }
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
}
