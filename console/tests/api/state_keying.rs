//! Parallelism that cannot change a result (issue 19): a job whose state is
//! keyed by the record key keeps it in shards, one per input partition,
//! each key's records in one shard; rescaling packs the shards into more
//! or fewer tasks, each shard restoring its own snapshots, so the counts
//! equal one task's whatever the parallelism. A job whose state combines
//! keys is refused above parallelism 1 (see `lifecycle.rs` for
//! hourly-premium's refusal at save, start and upgrade).

use std::collections::BTreeMap;

use serde_json::json;
use sluice_tests::kafka::{create_topic, produce_unbatched, unique_topic};
use sluice_tests::services::kafka_brokers;
use sqlx::Row;

use crate::helpers::{
    PATIENCE, component, run_records_in, shard_map, spawn_app, wait_for, wait_for_records_in, wait_for_run,
};

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
async fn a_job_keyed_by_the_record_key_keeps_its_state_in_shards_through_every_rescale() {
    let brokers = kafka_brokers();
    let topic = unique_topic("api-keyed");
    create_topic(&brokers, &topic, 4).await;
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
    let deployment = json!({ "spec": counts_spec(&topic), "parallelism": 1 });
    a.put(&format!("{JOB}/deployment"), deployment).await.expect(200);

    // Each user's clicks on one partition, as Kafka's partitioner puts a key's.
    let users = ["ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal"];
    let wave = |n: usize, from: usize| -> Vec<(i32, &str, String)> {
        (0..n).map(|i| ((i % 4) as i32, users[i % users.len()], json!({ "n": from + i }).to_string())).collect()
    };
    let counts_are = |each: i64| {
        let expected: BTreeMap<String, i64> = users.iter().map(|u| (u.to_string(), each)).collect();
        let warehouse = warehouse.clone();
        async move {
            wait_for(&format!("every user counted {each} times"), PATIENCE, || async {
                let now = counts(&warehouse).await;
                if now == expected { Ok(()) } else { Err(format!("{now:?}")) }
            })
            .await
        }
    };
    produce_unbatched(&brokers, &topic, wave(160, 0)).await;

    // Parallelism 1: one task runs the four shards (one per partition).
    a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    counts_are(20).await;
    let map = wait_for("four shards in one task", PATIENCE, || shard_map(a, JOB, 4)).await;
    assert_eq!(map, [(0, 0), (0, 1), (0, 2), (0, 3)]);
    let run = a.get(JOB).await.expect(200)["run"].clone();
    assert_eq!((run["task_groups"].as_i64(), run["parallelism"].as_i64()), (Some(4), Some(1)), "{run}");

    // Rescale 1 -> 4: stopped with a snapshot per shard, each restored in a task of its own.
    let answer = a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 4 })).await.expect(200);
    assert_eq!(answer["deployment"]["parallelism"], 4, "{answer}");
    assert_eq!((answer["shards"].as_u64(), answer["tasks"].as_u64()), (Some(4), Some(4)), "{answer}");
    assert_eq!(answer["run"]["restore_from"], "latest", "{answer}");
    wait_for_run(a, "keyed", "counts", "running").await;
    let map = wait_for("each shard in a task of its own", PATIENCE, || shard_map(a, JOB, 4)).await;
    assert_eq!(map, [(0, 0), (1, 1), (2, 2), (3, 3)]);
    produce_unbatched(&brokers, &topic, wave(8, 1000)).await;
    counts_are(21).await;
    assert_eq!(run_records_in(a, JOB).await, 8, "each shard went on from its snapshot");

    // Rescale 4 -> 2: shards s and s + 2 share task s.
    a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 2 })).await.expect(200);
    wait_for_run(a, "keyed", "counts", "running").await;
    let map = wait_for("two shards in each of two tasks", PATIENCE, || shard_map(a, JOB, 4)).await;
    assert_eq!(map, [(0, 0), (1, 1), (0, 2), (1, 3)]);
    produce_unbatched(&brokers, &topic, wave(8, 2000)).await;
    counts_are(22).await;
    assert_eq!(run_records_in(a, JOB).await, 8, "each shard went on from its snapshot");

    // The snapshot list covers every shard.
    let snapshots = a.get(&format!("{JOB}/snapshots")).await.expect(200);
    let shards: std::collections::BTreeSet<u64> =
        snapshots.as_array().unwrap().iter().filter_map(|s| s["shard"].as_u64()).collect();
    assert_eq!(shards, [0, 1, 2, 3].into_iter().collect(), "{snapshots}");

    // More tasks than shards: the job runs one task per shard.
    let answer = a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 8 })).await.expect(200);
    assert_eq!((answer["shards"].as_u64(), answer["tasks"].as_u64()), (Some(4), Some(4)), "{answer}");
    wait_for_run(a, "keyed", "counts", "running").await;
    let run = a.get(JOB).await.expect(200)["run"].clone();
    assert_eq!((run["task_groups"].as_i64(), run["parallelism"].as_i64()), (Some(4), Some(4)), "{run}");
    produce_unbatched(&brokers, &topic, wave(8, 3000)).await;
    counts_are(23).await;
    assert_eq!(run_records_in(a, JOB).await, 8, "each shard went on from its snapshot");
    let refused = a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 65 })).await.error(400);
    assert!(refused.contains("between 1 and 64"), "{refused}");

    // A snapshot taken now covers every shard; restoring it restores each
    // shard's, and the counts go back to what they were then.
    let taken = a.post(&format!("{JOB}/snapshots"), json!({})).await.expect(201);
    let taken: Vec<(u64, String)> = taken
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["shard"].as_u64().unwrap(), s["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(taken.iter().map(|(shard, _)| *shard).collect::<Vec<_>>(), [0, 1, 2, 3], "{taken:?}");
    produce_unbatched(&brokers, &topic, wave(8, 4000)).await;
    counts_are(24).await;
    a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.expect(200);
    let (_, chosen) = taken.last().unwrap();
    a.post(&format!("{JOB}/restore"), json!({ "snapshot": chosen })).await.expect(201);
    // Every shard went back to before the last wave (23 each) and reads it
    // again: eight records in, and the counts end as they were.
    wait_for_records_in(a, "keyed", "counts", 8).await;
    counts_are(24).await;
    assert_eq!(run_records_in(a, JOB).await, 8, "every shard restored a snapshot from before the last wave");
    let errors = a.get("/projects/keyed/events?kind=error").await.expect(200);
    assert!(!errors.to_string().contains("run.shard_without_snapshot"), "{errors}");

    // A version whose state is global cannot restore four shards: refused
    // before the running job stops, not after.
    a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 1 })).await.expect(200);
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await.expect(201);
    let refused = a.post(&format!("{JOB}/upgrade"), json!({ "version": 2 })).await.error(400);
    assert!(refused.contains("keeps its state in 4 shards") && refused.contains("restore `none`"), "{refused}");
    wait_for_run(a, "keyed", "counts", "running").await;
}
