//! Parallelism that cannot change a result (issue 19): a job whose state is
//! keyed by the record key runs split across partition groups, each key's
//! records in one group, and gives the same counts as one task would; a
//! job whose state combines keys is refused above parallelism 1 (see
//! `lifecycle.rs` for hourly-premium's refusal at save, start and upgrade).

use std::collections::BTreeMap;

use serde_json::json;
use sluice_tests::kafka::{create_topic, produce_unbatched, unique_topic};
use sluice_tests::services::kafka_brokers;
use sqlx::Row;

use crate::helpers::{PATIENCE, component, spawn_app, wait_for, wait_for_run};

const JOB: &str = "/projects/keyed/jobs/counts";

/// A keyed count of `topic` into the SQLite table `counts`.
fn counts_spec(topic: &str) -> String {
    format!(
        r#"[sources.clicks]
kind = "kafka"
connection = "events"
topic = "{topic}"
start = "earliest"

[sinks.counts]
kind = "sql"
connection = "warehouse"
table = "counts"
primary_key = ["user"]
create_table = true
columns = {{ user = "varchar(32)", events = "bigint" }}

[batch]
max_records = 50
"#
    )
}

async fn counts(url: &str) -> BTreeMap<String, i64> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(url).await.expect("warehouse");
    let rows = sqlx::query("select user, events from counts").fetch_all(&pool).await.unwrap_or_default();
    rows.iter().map(|r| (r.get("user"), r.get("events"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_keyed_by_the_record_key_runs_split_and_keeps_its_state_at_its_parallelism() {
    let brokers = kafka_brokers();
    let topic = unique_topic("api-keyed");
    create_topic(&brokers, &topic, 2).await;
    let app = spawn_app().await;
    let a = &app.admin;
    app.project("keyed").await;
    let warehouse = app.sqlite_url("keyed", "warehouse.db");
    a.put("/projects/keyed/connections/events", json!({ "kind": "kafka", "url": brokers })).await.expect(204);
    a.put("/projects/keyed/connections/warehouse", json!({ "kind": "database", "url": warehouse })).await.expect(204);
    a.post("/projects/keyed/jobs", json!({ "name": "counts" })).await.expect(201);
    let version = a.post_bytes(&format!("{JOB}/versions"), component("guest_keyed_count")).await.expect(201);
    assert_eq!(version["state_keying"], "by-record-key", "{version}");
    assert_eq!(a.get(&format!("{JOB}/versions")).await.expect(200)[0]["state_keying"], "by-record-key");
    let global = a.post_bytes("/validate", component("hourly_premium")).await.expect(200);
    assert_eq!(global["state_keying"], "global", "{global}");
    // Its component declares `StateKeying::ByRecordKey`: parallelism 2 is accepted.
    let deployment = json!({ "spec": counts_spec(&topic), "parallelism": 2 });
    a.put(&format!("{JOB}/deployment"), deployment).await.expect(200);

    // Each user's clicks on one partition, as Kafka's partitioner puts a key's.
    let users = ["ann", "bob", "cid", "dee", "eve", "fay"];
    let clicks: Vec<(i32, &str, String)> = (0..120)
        .map(|i| {
            let user = users[i % users.len()];
            ((i % users.len() % 2) as i32, user, json!({ "n": i }).to_string())
        })
        .collect();
    produce_unbatched(&brokers, &topic, clicks).await;
    a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    let expected: BTreeMap<String, i64> = users.iter().map(|u| (u.to_string(), 20)).collect();
    wait_for("both groups' counts in the table", PATIENCE, || async {
        let now = counts(&warehouse).await;
        if now == expected { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
    a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.expect(200);

    // Its state is in two groups' snapshots, which one group cannot
    // restore: refused rather than started from empty state.
    a.put(&format!("{JOB}/deployment"), json!({ "spec": counts_spec(&topic), "parallelism": 1 })).await.expect(200);
    let refused = a.post(&format!("{JOB}/start"), json!({ "restore": "latest" })).await.error(400);
    assert!(refused.contains("snapshots taken at parallelism 2, which parallelism 1 cannot restore"), "{refused}");

    // Back at parallelism 2 it resumes with its state: more clicks add up.
    a.put(&format!("{JOB}/deployment"), json!({ "spec": counts_spec(&topic), "parallelism": 2 })).await.expect(200);
    let more: Vec<(i32, &str, String)> =
        users.iter().enumerate().map(|(i, u)| ((i % 2) as i32, *u, json!({ "n": 1000 + i }).to_string())).collect();
    produce_unbatched(&brokers, &topic, more).await;
    a.post(&format!("{JOB}/start"), json!({ "restore": "latest" })).await.expect(201);
    wait_for_run(a, "keyed", "counts", "running").await;
    let expected: BTreeMap<String, i64> = users.iter().map(|u| (u.to_string(), 21)).collect();
    wait_for("the counts to go on from the snapshots", PATIENCE, || async {
        let now = counts(&warehouse).await;
        if now == expected { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
}
