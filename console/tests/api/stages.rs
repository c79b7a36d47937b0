//! A job in repartition stages on the platform (issue 19): hourly-premium's
//! staged form (`jobs/hourly-premium-staged`: the last order per user id,
//! then totals per hour through a repartition topic) gives the seed's SQL
//! into PostgreSQL at parallelism 1, rescaled to 4 and to 2 mid-stream from
//! snapshots, and again when started afresh, which makes new repartition
//! topics and deletes the old ones.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sluice_gen::insurance::InsuranceOrders;
use sluice_gen::{GenOptions, Scenario};
use sluice_tests::kafka::{create_topic, produce_unbatched, unique_topic};
use sluice_tests::services::{kafka_brokers, postgres_url};
use sqlx::Row;

use crate::helpers::{Client, PATIENCE, TestApp, component, group_map, left_run, spawn_app, wait_for, wait_for_run};

const JOB: &str = "/projects/staged/jobs/hourly";

/// Generated orders (no malformed ones), each with its user id as key.
fn orders() -> Vec<(u64, Value)> {
    let options =
        GenOptions { seed: 23, count: 2400, step_ms: 6 * 3_600_000 / 2400, malformed: 0.0, ..GenOptions::default() };
    InsuranceOrders
        .generate(&options)
        .into_iter()
        .map(|e| (e.key.parse().expect("user ids"), serde_json::from_slice(&e.value).expect("JSON orders")))
        .collect()
}

fn spec(topic: &str, table: &str) -> String {
    spec_since(topic, table, 0)
}

/// `spec`, passing only orders modified at or after `since_ms`.
fn spec_since(topic: &str, table: &str, since_ms: i64) -> String {
    format!(
        r#"[parameters]
utc_offset_minutes = "480"
since_ms = "{since_ms}"

[sources.user_order]
kind = "kafka"
connection = "events"
topic = "{topic}"
start = "earliest"

[sinks.hs_order]
kind = "sql"
connection = "warehouse"
table = "{table}"
primary_key = ["biz_date"]
create_table = true
columns = {{ biz_date = "varchar(10)", total_premium = "decimal(18,2)", policy_cnt = "bigint", policy_holder_cnt = "bigint" }}

[batch]
max_records = 200
"#
    )
}

/// Orders to partition `user id % 4`, as Kafka's partitioner keeps a key's.
async fn produce_orders(topic: &str, orders: &[(u64, Value)]) {
    let keys: Vec<String> = orders.iter().map(|(k, _)| k.to_string()).collect();
    let messages = orders.iter().zip(&keys).map(|((k, v), key)| ((k % 4) as i32, key.as_str(), v.to_string()));
    produce_unbatched(&kafka_brokers(), topic, messages).await;
}

/// Waits until the sink table holds `expected` (rows as text, by biz_date).
async fn table_is(table: &str, expected: &[Vec<String>]) {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("PostgreSQL");
    wait_for(&format!("{table} to equal the seed SQL"), PATIENCE, || async {
        let rows = rows_of(&pool, table).await?;
        if rows == expected { Ok(()) } else { Err(format!("{rows:?}")) }
    })
    .await;
}

/// The sink table's rows as text, by biz_date.
async fn rows_of(pool: &sqlx::PgPool, table: &str) -> Result<Vec<Vec<String>>, String> {
    let sql = format!(
        "select biz_date, total_premium::text, policy_cnt::text, policy_holder_cnt::text from {table} order by biz_date"
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await.map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| (0..4).map(|i| r.get::<String, _>(i)).collect()).collect())
}

/// Records in and replays dropped of the running job's tasks of `stage`.
async fn stage_counts(a: &Client, stage: u64) -> (u64, u64) {
    let m = a.get(&format!("{JOB}/metrics")).await.expect(200);
    let tasks: Vec<&Value> = m["tasks"].as_array().into_iter().flatten().filter(|t| t["stage"] == stage).collect();
    let sum = |f: &str| tasks.iter().map(|t| t[f].as_u64().unwrap_or(0)).sum();
    (sum("records_in"), sum("replays_dropped"))
}

async fn drop_table(table: &str) {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("PostgreSQL");
    let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
}

async fn topics(a: &Client) -> Vec<String> {
    let listed = a.get("/projects/staged/connections/events/topics").await.expect(200);
    listed.as_array().unwrap().iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()
}

/// A console with project `staged`: connections `events` (Tansu) and
/// `warehouse` (PostgreSQL), and job `hourly` with the staged component
/// as version 1.
async fn staged_console() -> TestApp {
    let app = spawn_app().await;
    let a = &app.admin;
    app.project("staged").await;
    a.put("/projects/staged/connections/events", json!({ "kind": "kafka", "url": kafka_brokers() })).await.expect(204);
    a.put("/projects/staged/connections/warehouse", json!({ "kind": "database", "url": postgres_url() }))
        .await
        .expect(204);
    a.post("/projects/staged/jobs", json!({ "name": "hourly" })).await.expect(201);
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium_staged")).await.expect(201);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_job_gives_the_seed_sql_at_every_parallelism_and_rescale() {
    let orders = orders();
    let topic = unique_topic("api-staged");
    create_topic(&kafka_brokers(), &topic, 4).await;
    let table = format!("staged_hs_order_{}", std::process::id());
    let app = staged_console().await;
    let a = &app.admin;
    let validated = a.post_bytes("/validate", component("hourly_premium_staged")).await.expect(200);
    assert_eq!(validated["stages"], json!(["last_order", "hour_totals"]), "{validated}");
    a.put(&format!("{JOB}/deployment"), json!({ "spec": spec(&topic, &table), "parallelism": 1 })).await.expect(200);

    // Parallelism 1: one task runs both stages' four shards.
    let (first, rest) = orders.split_at(1200);
    let (second, third) = rest.split_at(600);
    produce_orders(&topic, first).await;
    a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    table_is(&table, &sluice_tests::seed_sql::hourly_premium(first).await).await;
    let map = wait_for("eight groups in one task", PATIENCE, || group_map(a, JOB, 8)).await;
    let expected: Vec<(u64, u64, u64)> = (0..2).flat_map(|stage| (0..4).map(move |shard| (0, stage, shard))).collect();
    assert_eq!(map, expected);
    let run = a.get(JOB).await.expect(200)["run"].clone();
    assert_eq!((run["task_groups"].as_i64(), run["stages"].as_i64()), (Some(4), Some(2)), "{run}");
    let prefix = run["stage_topics"].as_str().expect("repartition topics").to_owned();
    assert!(prefix.starts_with("sluice.staged.hourly."), "{prefix}");
    assert!(topics(a).await.contains(&format!("{prefix}-s1")), "the platform made the repartition topic");

    // Rescale 1 -> 4 mid-stream: each group restores its own snapshot.
    a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 4 })).await.expect(200);
    wait_for_run(a, "staged", "hourly", "running").await;
    let map = wait_for("two groups in each of four tasks", PATIENCE, || group_map(a, JOB, 8)).await;
    let expected: Vec<(u64, u64, u64)> =
        (0..2).flat_map(|stage| (0..4).map(move |shard| ((stage * 4 + shard) % 4, stage, shard))).collect();
    assert_eq!(map, expected);
    produce_orders(&topic, second).await;
    table_is(&table, &sluice_tests::seed_sql::hourly_premium(&orders[..1800]).await).await;
    // Every group went on from its snapshot: the first stage read only the
    // new orders, and the second applied nothing twice.
    assert_eq!(stage_counts(a, 0).await, (second.len() as u64, 0));
    assert_eq!(stage_counts(a, 1).await.1, 0);

    // Rescale 4 -> 2, then the rest of the orders.
    a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 2 })).await.expect(200);
    wait_for_run(a, "staged", "hourly", "running").await;
    wait_for("four groups in each of two tasks", PATIENCE, || group_map(a, JOB, 8)).await;
    produce_orders(&topic, third).await;
    let all = sluice_tests::seed_sql::hourly_premium(&orders).await;
    table_is(&table, &all).await;
    let run = a.get(JOB).await.expect(200)["run"].clone();
    assert_eq!(run["stage_topics"], prefix.as_str(), "restoring runs keep the state's topics: {run}");

    // The snapshot list covers both stages' shards.
    let snapshots = a.get(&format!("{JOB}/snapshots")).await.expect(200);
    let stages: std::collections::BTreeSet<u64> =
        snapshots.as_array().unwrap().iter().filter_map(|s| s["stage"].as_u64()).collect();
    assert_eq!(stages, [0, 1].into_iter().collect(), "{snapshots}");

    // A start from empty state reads the input again into new topics, and
    // the old ones are deleted; the table (made anew) ends the same.
    a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.expect(200);
    wait_for_run(a, "staged", "hourly", "stopped").await;
    drop_table(&table).await;
    a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    wait_for_run(a, "staged", "hourly", "running").await;
    let run = a.get(JOB).await.expect(200)["run"].clone();
    let fresh = run["stage_topics"].as_str().expect("repartition topics").to_owned();
    assert_ne!(fresh, prefix, "empty state, new topics");
    let listed = topics(a).await;
    assert!(listed.contains(&format!("{fresh}-s1")) && !listed.contains(&format!("{prefix}-s1")), "{listed:?}");
    wait_for("the fresh run to read every order", PATIENCE, || async {
        let m = a.get(&format!("{JOB}/metrics")).await.expect(200);
        let stage0: u64 = m["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["stage"] == 0)
            .map(|t| t["records_in"].as_u64().unwrap_or(0))
            .sum();
        if stage0 >= orders.len() as u64 { Ok(()) } else { Err(m.to_string()) }
    })
    .await;
    table_is(&table, &all).await;
    let (changes, dropped) = stage_counts(a, 1).await;
    assert!(changes >= orders.len() as u64 && dropped == 0, "the second stage applied every change once: {changes}");

    // Restoring a snapshot of the state whose topics were deleted is
    // refused before the job stops.
    let old = snapshots.as_array().unwrap().iter().find_map(|s| s["id"].as_str()).unwrap().to_owned();
    let refused = a.post(&format!("{JOB}/restore"), json!({ "snapshot": old })).await.error(400);
    assert!(refused.contains("a later start replaced"), "{refused}");
    wait_for_run(a, "staged", "hourly", "running").await;

    // A version of one stage (keyed by the record key, so parallelism and
    // shards are no objection) cannot take over state kept in two stages:
    // refused before the job stops.
    a.post_bytes(&format!("{JOB}/versions"), component("guest_keyed_count")).await.expect(201);
    let refused = a.post(&format!("{JOB}/upgrade"), json!({ "version": 2 })).await.error(400);
    assert!(refused.contains("keeps its state in 2 stage(s)") && refused.contains("restore `none`"), "{refused}");
    wait_for_run(a, "staged", "hourly", "running").await;

    // The fresh state stops without a snapshot; `latest` then finds only the
    // earlier state's snapshots, which go with topics that are gone: none of
    // them is restored, and every group starts from its start again.
    a.post(&format!("{JOB}/stop"), json!({ "snapshot": false })).await.expect(200);
    wait_for_run(a, "staged", "hourly", "stopped").await;
    drop_table(&table).await;
    a.post(&format!("{JOB}/start"), json!({ "restore": "latest" })).await.expect(201);
    wait_for_run(a, "staged", "hourly", "running").await;
    let run = a.get(JOB).await.expect(200)["run"].clone();
    assert_eq!(run["stage_topics"], fresh.as_str(), "it goes on with the fresh state's topics: {run}");
    wait_for("the first stage to read every order again", PATIENCE, || async {
        let (read, _) = stage_counts(a, 0).await;
        if read >= orders.len() as u64 { Ok(()) } else { Err(format!("{read} read")) }
    })
    .await;
    table_is(&table, &all).await;
    drop_table(&table).await;
}

/// Restoring an older snapshot of a staged job with another spec: a later
/// `since_ms`, with which the first stage passes fewer orders on. The
/// second stage drops the rows the first run's first stage wrote past the
/// snapshot it restores (the restore's cut) and applies the restoring run's
/// for that span instead, so every hour it writes again has the seed SQL's
/// totals over the orders each run passed. Without the cut it applied the
/// old rows and dropped the new ones as replays: the first run's totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_an_older_snapshot_with_another_spec_gives_that_specs_rows_past_it() {
    let app = staged_console().await;
    let a = &app.admin;
    let older = run_past_a_snapshot(&app, "cut").await;
    a.post(&format!("{JOB}/restore"), json!({ "snapshot": older.chosen })).await.expect(201);
    older.check_restored(&app).await;
}

/// The same restore, when the console that ran it stopped before any of
/// its groups stored a snapshot: the recovered run goes on with what that
/// run restored, not with the job's newest snapshots (the first run's, past
/// the snapshot it had left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_restore_goes_on_from_the_snapshot_it_restored() {
    let app = staged_console().await;
    let a = &app.admin;
    let older = run_past_a_snapshot(&app, "recover").await;
    // As a stopped console leaves it: the restore's run, running, held by
    // no live worker, none of its groups started.
    let version = a.get(&format!("{JOB}/runs")).await.expect(200)[0]["version_id"].as_str().unwrap().to_owned();
    let left = left_run(&app, "staged", "hourly", &version, &older.chosen).await;
    app.store.set_task_groups(&left.id, 4, Some(2)).await.unwrap();
    app.store.set_stages(&left.id, Some(2), Some(&older.prefix)).await.unwrap();
    app.store.set_run_state(&left.id, sluice_console::store::RunState::Running, None).await.unwrap();
    sluice_console::worker::scheduler::recover(&app.worker, &app.store, false).await.unwrap();
    let resumed = wait_for_run(a, "staged", "hourly", "running").await;
    assert_eq!(resumed["created_by"], "recovery", "{resumed}");
    assert!(resumed["restore_from"].as_str().is_some_and(|r| r.ends_with(&older.chosen)), "{resumed}");
    older.check_restored(&app).await;
}

/// A staged job run past a snapshot and stopped, with another spec
/// deployed to restore it with, and what the restore must give.
struct Older {
    chosen: String,
    prefix: String,
    table: String,
    second: usize,
    /// The table's rows by hour the restored run must give, and the hours
    /// it must write (those the snapshot's totals differ in).
    want: BTreeMap<String, Vec<String>>,
    changed: Vec<String>,
}

/// hourly-premium-staged at parallelism 2 (4 shards in 2 stages) reads
/// 1,200 orders, takes a snapshot, reads 600 more and stops with a
/// snapshot; then a spec whose `since_ms` filters out orders before the
/// middle of the 600 is deployed, and the sink table emptied: an upsert
/// table keeps what the abandoned run wrote (as with a Flink savepoint
/// restore), so the table holds what the restored run writes.
async fn run_past_a_snapshot(app: &TestApp, name: &str) -> Older {
    let a = &app.admin;
    let orders = orders();
    let topic = unique_topic(&format!("api-staged-{name}"));
    create_topic(&kafka_brokers(), &topic, 4).await;
    let table = format!("staged_{name}_hs_order_{}", std::process::id());
    let deploy = |since_ms: i64| json!({ "spec": spec_since(&topic, &table, since_ms), "parallelism": 2 });
    a.put(&format!("{JOB}/deployment"), deploy(0)).await.expect(200);
    let (first, second) = orders.split_at(1200);
    produce_orders(&topic, first).await;
    a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    let at_snapshot = sluice_tests::seed_sql::hourly_premium(first).await;
    table_is(&table, &at_snapshot).await;
    let taken = a.post(&format!("{JOB}/snapshots"), json!({})).await.expect(201);
    let chosen = taken.as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).max().unwrap().to_owned();
    produce_orders(&topic, second).await;
    let all = sluice_tests::seed_sql::hourly_premium(&orders).await;
    table_is(&table, &all).await;
    let prefix = a.get(JOB).await.expect(200)["run"]["stage_topics"].as_str().unwrap().to_owned();
    a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.expect(200);
    wait_for_run(a, "staged", "hourly", "stopped").await;

    let gmt = |order: &Value| order["gmt_modified"].as_i64().expect("gmt_modified");
    let since_ms = gmt(&second[second.len() / 2].1);
    let passed: Vec<(u64, Value)> =
        first.iter().chain(second.iter().filter(|(_, o)| gmt(o) >= since_ms)).cloned().collect();
    let want = by_hour(&sluice_tests::seed_sql::hourly_premium(&passed).await);
    let (at_snapshot, all) = (by_hour(&at_snapshot), by_hour(&all));
    let changed: Vec<String> =
        want.keys().chain(at_snapshot.keys()).filter(|h| want.get(*h) != at_snapshot.get(*h)).cloned().collect();
    assert!(
        changed.iter().any(|h| want.get(h).is_some_and(|w| all.get(h).is_some_and(|a| a != w))),
        "some hour the restored run changes has other totals than the first run gave it: {want:?} {all:?}"
    );
    drop_table(&table).await;
    a.put(&format!("{JOB}/deployment"), deploy(since_ms)).await.expect(200);
    Older { chosen, prefix, table, second: second.len(), want, changed }
}

impl Older {
    /// Waits for every hour the restored run changes to have the SQL's
    /// totals over the orders each run passed, and for no other totals.
    async fn check_restored(&self, app: &TestApp) {
        let a = &app.admin;
        wait_for_run(a, "staged", "hourly", "running").await;
        let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("PostgreSQL");
        let (want, changed) = (&self.want, &self.changed);
        wait_for("the hours the restored run changed to have the SQL's totals", PATIENCE, || async {
            let written = by_hour(&rows_of(&pool, &self.table).await.unwrap_or_default());
            let wrong = written.iter().any(|(h, row)| want.get(h) != Some(row));
            let missing = changed.iter().any(|h| written.get(h) != want.get(h));
            if wrong || missing { Err(format!("{written:?}, want {want:?}")) } else { Ok(()) }
        })
        .await;
        assert_eq!(stage_counts(a, 0).await.0, self.second as u64, "the first stage read the rest again");
        assert!(stage_counts(a, 1).await.1 > 0, "the second stage dropped the first run's rows past the snapshot");
        drop_table(&self.table).await;
    }
}

/// Rows (biz_date first) by biz_date.
fn by_hour(rows: &[Vec<String>]) -> BTreeMap<String, Vec<String>> {
    rows.iter().map(|r| (r[0].clone(), r.clone())).collect()
}

/// A staged job keeps its repartition topics on its input's Kafka cluster:
/// one that reads no Kafka topic is refused at start, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_job_without_a_kafka_input_is_refused_with_the_reason() {
    let app = spawn_app().await;
    let a = &app.admin;
    app.project("staged").await;
    let warehouse = app.sqlite_url("staged", "warehouse.db");
    a.put("/projects/staged/connections/warehouse", json!({ "kind": "database", "url": warehouse })).await.expect(204);
    a.post("/projects/staged/jobs", json!({ "name": "hourly" })).await.expect(201);
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium_staged")).await.expect(201);
    let spec = crate::fixtures::datagen_spec(Some(100));
    a.put(&format!("{JOB}/deployment"), json!({ "spec": spec, "parallelism": 1 })).await.expect(200);
    let refused = a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.error(400);
    assert!(refused.contains("read the input from Kafka"), "{refused}");
}

/// A staged run started at a later time goes through the control plane:
/// the leader plans it (`plan_for_assignment`: topics made, groups
/// planned) and hands its groups to the worker, which launches each
/// (`launch_assigned`). The table equals the seed's SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_run_planned_by_the_control_plane_gives_the_seed_sql() {
    let orders = &orders()[..600];
    let topic = unique_topic("api-staged-at");
    create_topic(&kafka_brokers(), &topic, 4).await;
    produce_orders(&topic, orders).await;
    let table = format!("staged_at_hs_order_{}", std::process::id());
    let app = staged_console().await;
    let a = &app.admin;
    a.put(&format!("{JOB}/deployment"), json!({ "spec": spec(&topic, &table), "parallelism": 2 })).await.expect(200);

    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let run = a.post(&format!("{JOB}/start"), json!({ "restore": "none", "at": at.to_rfc3339() })).await.expect(201);
    assert_eq!(run["state"], "scheduled", "{run}");
    table_is(&table, &sluice_tests::seed_sql::hourly_premium(orders).await).await;
    let map = wait_for("eight groups in two tasks", PATIENCE, || group_map(a, JOB, 8)).await;
    assert!(map.iter().all(|(task, _, _)| *task < 2), "{map:?}");
    let run = a.get(JOB).await.expect(200)["run"].clone();
    let prefix = run["stage_topics"].as_str().expect("repartition topics").to_owned();
    assert!(topics(a).await.contains(&format!("{prefix}-s1")), "the leader made the repartition topic");
    drop_table(&table).await;
}
