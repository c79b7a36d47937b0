//! A real job through its whole life: hourly-premium reading a Kafka topic
//! (Tansu) into a SQLite table — start, metrics, a snapshot on demand,
//! stop with a snapshot, start from the latest, restore a chosen snapshot,
//! upgrade to a new version and change parameters, each keeping the job's
//! state — and the table always equal to what the orders must give.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::kafka::{create_topic, produce_unbatched, unique_topic};
use sluice_tests::services::kafka_brokers;

use crate::fixtures::{Order, expected_hs_order, file_spec, hs_order, kafka_spec, orders};
use crate::helpers::{
    Client, PATIENCE, TestApp, assert_audited, component, events, left_run, spawn_app, wait_for, wait_for_records_in,
    wait_for_run,
};

const JOB: &str = "/projects/life/jobs/hourly";
/// Users ordering again and again: later orders retract earlier ones.
const USERS: u64 = 40;

async fn produce(brokers: &str, topic: &str, orders: &[Order]) {
    produce_unbatched(brokers, topic, orders.iter().map(|o| (0, "order", o.json()))).await;
}

/// Waits until the warehouse table is what the first `n` orders give.
async fn wait_for_table(url: &str, all: &[Order], n: usize) {
    let expected = expected_hs_order(&all[..n]);
    wait_for(&format!("hs_order to hold the first {n} orders"), PATIENCE, || async {
        let now = hs_order(url).await;
        if now == expected { Ok(()) } else { Err(format!("{now:?}\nexpected {expected:?}")) }
    })
    .await
}

/// The metrics of the job's current run, once it has read exactly `n`
/// records (more would mean it re-read input its state already holds).
async fn read_exactly(client: &Client, n: u64) -> Value {
    wait_for_records_in(client, "life", "hourly", n).await;
    // Give it the time to read anything beyond: nothing more is there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = client.get(&format!("{JOB}/metrics")).await.expect(200);
    assert_eq!(metrics["totals"]["records_in"], n, "{metrics}");
    metrics
}

/// Project `life` with its connections (the broker, a SQLite warehouse)
/// and job `hourly` at its first version; returns the warehouse's URL and
/// that version.
async fn hourly_job(app: &TestApp, brokers: &str) -> (String, Value) {
    let a = &app.admin;
    app.project("life").await;
    let warehouse = app.sqlite_url("life", "warehouse.db");
    a.put("/projects/life/connections/events", json!({ "kind": "kafka", "url": brokers })).await.expect(204);
    a.put("/projects/life/connections/warehouse", json!({ "kind": "database", "url": warehouse })).await.expect(204);
    a.post("/projects/life/jobs", json!({ "name": "hourly" })).await.expect(201);
    let v1 = a.post_bytes(&format!("{JOB}/versions?note=first"), component("hourly_premium")).await.expect(201);
    (warehouse, v1)
}

/// Sets the parallelism of job `hourly`'s deployment in the store, as a
/// version before the state-keying check could have saved it (the API now
/// refuses parallelism above 1 for this job, whose state is global).
async fn force_parallelism(app: &TestApp, parallelism: i64) {
    let project = app.store.project("life").await.unwrap().unwrap();
    let job = app.store.job(&project.id, "hourly").await.unwrap().unwrap().id;
    let mut saved = app.store.deployment(&job).await.unwrap().expect("a deployment");
    saved.parallelism = parallelism;
    app.store.put_deployment(&saved).await.unwrap();
}

/// The job's deployment reading `topic` at `parallelism`.
fn deployment(topic: &str, parallelism: u32) -> Value {
    json!({ "spec": kafka_spec(topic), "parameters": { "since_ms": "0" }, "parallelism": parallelism })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_job_runs_snapshots_stops_restores_and_upgrades_with_its_state() {
    let brokers = kafka_brokers();
    let topic = unique_topic("api-lifecycle");
    create_topic(&brokers, &topic, 1).await;
    let all = orders(0, 600, USERS);

    let app = spawn_app().await;
    let a = &app.admin;
    let (warehouse, v1) = hourly_job(&app, &brokers).await;
    a.put(&format!("{JOB}/deployment"), deployment(&topic, 1)).await.expect(200);

    // Start fresh; it reads what is there.
    produce(&brokers, &topic, &all[..200]).await;
    let run = a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    assert_eq!(run["state"], "running", "{run}");
    assert_eq!(run["version_id"], v1["id"]);
    assert_eq!(run["restore_from"], "none");
    let metrics = wait_for_records_in(a, "life", "hourly", 200).await;
    assert_eq!(metrics["run_id"], run["id"]);
    assert_eq!(metrics["state"], "running");
    assert_eq!(metrics["tasks"].as_array().unwrap().len(), 1, "{metrics}");
    wait_for_table(&warehouse, &all, 200).await;
    let metrics = wait_for("the charts to have points", PATIENCE, || async {
        let m = a.get(&format!("{JOB}/metrics?seconds=60")).await.expect(200);
        let points = m["series"]["t_ms"].as_array().map_or(0, Vec::len);
        if points > 0 && m["series"]["in_rate"].as_array().map_or(0, Vec::len) == points {
            Ok(m)
        } else {
            Err(m.to_string())
        }
    })
    .await;
    assert!(metrics["totals"]["records_out"].as_u64().unwrap() > 0, "{metrics}");
    let listed = a.get("/projects/life/jobs").await.expect(200);
    assert_eq!((listed[0]["state"].as_str(), listed[0]["version"].as_i64()), (Some("running"), Some(1)));

    // Prometheus shows the running job (to a global admin).
    let prometheus = a.get_raw("/metrics").await;
    assert_eq!(prometheus.status, 200);
    let line = prometheus
        .text
        .lines()
        .find(|l| l.starts_with("sluice_records_in{") && l.contains("project=\"life\"") && l.contains("job=\"hourly\""))
        .unwrap_or_else(|| panic!("no sluice_records_in of the job: {}", prometheus.text));
    assert!(line.ends_with(" 200"), "{line}");
    let replays =
        prometheus.text.lines().find(|l| l.starts_with("sluice_replays_dropped{") && l.contains("job=\"hourly\""));
    assert!(replays.is_some_and(|l| l.ends_with(" 0")), "no replays dropped by a job without dedup: {replays:?}");

    let twice = a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.error(409);
    assert!(twice.contains("already has a running run") && twice.contains("stop it first"), "{twice}");

    // A snapshot on demand.
    let taken = a.post(&format!("{JOB}/snapshots"), json!({})).await.expect(201);
    let manual = taken[0].clone();
    assert_eq!(manual["trigger"], "manual", "{taken}");
    assert_eq!(manual["positions"], json!(["user_order/0: 200"]));
    let manual_id = manual["id"].as_str().unwrap().to_owned();

    // More input, then stop with a snapshot.
    produce(&brokers, &topic, &all[200..300]).await;
    wait_for_records_in(a, "life", "hourly", 300).await;
    wait_for_table(&warehouse, &all, 300).await;
    let stopped = a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.expect(200);
    assert_eq!((stopped["id"].as_str(), stopped["state"].as_str()), (run["id"].as_str(), Some("stopped")), "{stopped}");
    assert!(stopped["ended_ms"].is_i64());
    let snapshots = a.get(&format!("{JOB}/snapshots")).await.expect(200);
    let snapshots = snapshots.as_array().unwrap().clone();
    assert!(snapshots.len() >= 2, "{snapshots:?}");
    assert_eq!(snapshots[0]["trigger"], "stop", "newest first: {snapshots:?}");
    assert_eq!(snapshots[0]["positions"], json!(["user_order/0: 300"]));
    assert!(snapshots.iter().any(|s| s["id"] == manual_id.as_str()));
    assert_eq!(a.get(&format!("{JOB}/metrics")).await.expect(200)["state"], "stopped");
    assert_eq!(a.post(&format!("{JOB}/stop"), json!({})).await.status, 409);

    // Parallelism 2 would split its state (totals per hour, over every
    // user) between two tasks, each with partial totals: the deployment is
    // refused, saying why and what a job keyed by the record key declares.
    let refused = a.put(&format!("{JOB}/deployment"), deployment(&topic, 2)).await.error(400);
    assert!(
        refused.contains("job `hourly` cannot run at parallelism 2")
            && refused.contains("partial results")
            && refused.contains("const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;"),
        "{refused}"
    );
    // A deployment saved before that check is refused when it starts, as
    // it would be whatever it restores. (A job keyed by the record key
    // rescales with its state: `state_keying.rs`.)
    force_parallelism(&app, 2).await;
    let refused = a.post(&format!("{JOB}/start"), json!({ "restore": "latest" })).await.error(400);
    assert!(refused.contains("job `hourly` cannot run at parallelism 2"), "{refused}");
    let refused = a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.error(400);
    assert!(refused.contains("job `hourly` cannot run at parallelism 2"), "{refused}");
    a.put(&format!("{JOB}/deployment"), deployment(&topic, 1)).await.expect(200);

    // Start from the latest snapshot: only the new orders are read, and the
    // state carries the old ones (retractions land right).
    produce(&brokers, &topic, &all[300..400]).await;
    let resumed = a.post(&format!("{JOB}/start"), json!({ "restore": "latest" })).await.expect(201);
    assert_eq!((resumed["state"].as_str(), resumed["restore_from"].as_str()), (Some("running"), Some("latest")));
    wait_for_table(&warehouse, &all, 400).await;
    read_exactly(a, 100).await;

    // An upgrade restarts at the deployment's parallelism: at one the job
    // cannot run at, it is refused before the job stops.
    force_parallelism(&app, 2).await;
    let refused = a.post(&format!("{JOB}/upgrade"), json!({ "version": 1 })).await.error(400);
    assert!(refused.contains("job `hourly` cannot run at parallelism 2"), "{refused}");
    assert_eq!(a.get(&format!("{JOB}/metrics")).await.expect(200)["state"], "running", "still running");
    a.put(&format!("{JOB}/deployment"), deployment(&topic, 1)).await.expect(200);

    // A snapshot of another job is refused by name.
    a.post("/projects/life/jobs", json!({ "name": "other" })).await.expect(201);
    a.post_bytes("/projects/life/jobs/other/versions", component("hourly_premium")).await.expect(201);
    a.put("/projects/life/jobs/other/deployment", json!({ "spec": file_spec(&app.project_file("life", "o.jsonl")) }))
        .await
        .expect(200);
    let foreign = a.post("/projects/life/jobs/other/start", json!({ "restore": manual_id })).await.error(400);
    assert!(foreign.contains(&format!("`{manual_id}` is not a snapshot of job `other`")), "{foreign}");
    let foreign = a.post("/projects/life/jobs/other/restore", json!({ "snapshot": manual_id })).await.error(400);
    assert!(foreign.contains("not a snapshot of job `other`"), "{foreign}");

    // Restore the snapshot taken on demand: the running job stops, and the
    // orders after it are read again onto its state.
    let restored = a.post(&format!("{JOB}/restore"), json!({ "snapshot": manual_id })).await.expect(201);
    assert_eq!(
        (restored["state"].as_str(), restored["restore_from"].as_str()),
        (Some("running"), Some(manual_id.as_str()))
    );
    let runs = a.get(&format!("{JOB}/runs")).await.expect(200);
    assert_eq!(runs[1]["id"], resumed["id"]);
    assert_eq!(runs[1]["state"], "stopped", "restoring stops the running run: {runs}");
    read_exactly(a, 200).await;
    wait_for_table(&warehouse, &all, 400).await;

    // Upgrade to version 2: stop with a snapshot, start v2 from it.
    let v2 = a.post_bytes(&format!("{JOB}/versions?note=second"), component("hourly_premium")).await.expect(201);
    assert_eq!(v2["number"], 2);
    let upgraded = a.post(&format!("{JOB}/upgrade"), json!({ "version": 2 })).await.expect(200);
    assert_eq!(upgraded["deployment"]["version_id"], v2["id"]);
    let new_run = upgraded["run"].clone();
    assert_eq!(
        (new_run["state"].as_str(), new_run["version_id"].as_str()),
        (Some("running"), v2["id"].as_str()),
        "{upgraded}"
    );
    assert_eq!(a.get(JOB).await.expect(200)["version"]["number"], 2);
    produce(&brokers, &topic, &all[400..500]).await;
    read_exactly(a, 100).await;
    wait_for_table(&warehouse, &all, 500).await;

    // New parameters: the running job restarts from a snapshot.
    let changed = a.post(&format!("{JOB}/parameters"), json!({ "parameters": { "since_ms": "1" } })).await.expect(200);
    assert_eq!(changed["deployment"]["parameters"], json!({ "since_ms": "1" }));
    assert_eq!(changed["run"]["state"], "running", "{changed}");
    assert_ne!(changed["run"]["id"], new_run["id"]);
    produce(&brokers, &topic, &all[500..600]).await;
    read_exactly(a, 100).await;
    wait_for_table(&warehouse, &all, 600).await;

    // A bad record is a dead letter the exceptions view shows.
    produce_unbatched(&brokers, &topic, [(0, "order", "{\"id\": \"not a number\"}".to_owned())]).await;
    let exceptions = wait_for("a dead letter", PATIENCE, || async {
        let e = a.get(&format!("{JOB}/exceptions")).await.expect(200);
        if e["dead_letters"].as_array().is_some_and(|d| !d.is_empty()) { Ok(e) } else { Err(e.to_string()) }
    })
    .await;
    let dead = &exceptions["dead_letters"][0];
    assert_eq!(
        (dead["source"].as_str(), dead["partition"].as_i64(), dead["offset"].as_i64()),
        (Some("user_order"), Some(0), Some(600))
    );
    assert!(dead["reason"].as_str().is_some_and(|r| !r.is_empty()), "{dead}");
    assert_eq!(a.get(&format!("{JOB}/metrics")).await.expect(200)["totals"]["dead_letters"], 1);
    assert!(a.get(&format!("{JOB}/logs")).await.expect(200).is_array());

    let stopped = a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.expect(200);
    assert_eq!(stopped["state"], "stopped");
    wait_for_table(&warehouse, &all, 600).await;
    let runs = a.get(&format!("{JOB}/runs")).await.expect(200);
    let states: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["stopped"; 5], "every run ended as asked: {runs}");
    assert!(app.worker.all_totals().is_empty(), "the worker runs nothing any more");
    let exceptions = a.get(&format!("{JOB}/exceptions")).await.expect(200);
    assert!(exceptions["errors"].as_array().unwrap().is_empty(), "no run failed: {exceptions}");
    let kept = exceptions["dead_letters"].as_array().unwrap();
    assert_eq!((kept.len(), kept[0]["offset"].as_i64()), (1, Some(600)), "kept after the run ended: {exceptions}");

    // Upgrading a stopped job only changes its deployment.
    let back = a.post(&format!("{JOB}/upgrade"), json!({ "version": 1 })).await.expect(200);
    assert!(back["run"].is_null(), "{back}");
    assert_eq!(back["deployment"]["version_id"], v1["id"]);
    assert_eq!(a.get(JOB).await.expect(200)["version"]["number"], 1);

    let log = events(a, "life", "job=hourly").await;
    for action in
        ["job.start", "snapshot.take", "job.stop", "job.upgrade", "job.parameters", "version.upload", "deployment.put"]
    {
        assert_audited(&log, action, "admin");
    }
    assert!(log.iter().any(|(a, who, _)| a == "run.started" && who.is_none()), "job events have no actor: {log:?}");
    assert!(log.iter().any(|(a, _, d)| a == "job.upgrade" && d.contains("v2")));
    assert!(log.iter().any(|(a, _, d)| a == "job.parameters" && d == "set since_ms"), "names, not values: {log:?}");
    let audit_only = events(a, "life", "job=hourly&kind=audit").await;
    assert!(audit_only.iter().all(|(_, who, _)| who.as_deref() == Some("admin")), "{audit_only:?}");
}

/// A run the console's previous process left running resumes at the
/// partition groups it kept its state in, even if the deployment's
/// parallelism was changed meanwhile: it restores its snapshots instead of
/// being refused (or, before, starting from empty state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_run_keeps_its_task_groups_when_the_parallelism_changed() {
    let brokers = kafka_brokers();
    let topic = unique_topic("api-recovery-groups");
    create_topic(&brokers, &topic, 1).await;
    let all = orders(0, 300, USERS);
    let app = spawn_app().await;
    let a = &app.admin;
    let (warehouse, _) = hourly_job(&app, &brokers).await;
    a.put(&format!("{JOB}/deployment"), deployment(&topic, 1)).await.expect(200);
    produce(&brokers, &topic, &all[..200]).await;
    let first = a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    wait_for_table(&warehouse, &all, 200).await;
    a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.expect(200);
    assert_eq!(first["id"], a.get(&format!("{JOB}/runs")).await.expect(200)[0]["id"]);

    // As a previous process would leave it: a run of one group, running,
    // held by no live worker; then the parallelism is changed.
    let left = left_run(&app, "life", "hourly", first["version_id"].as_str().unwrap(), "latest").await;
    app.store.set_task_groups(&left.id, 1, None).await.unwrap();
    app.store.set_run_state(&left.id, sluice_console::store::RunState::Running, None).await.unwrap();
    force_parallelism(&app, 2).await;

    produce(&brokers, &topic, &all[200..]).await;
    sluice_console::worker::scheduler::recover(&app.worker, &app.store, false).await.unwrap();
    let resumed = wait_for_run(a, "life", "hourly", "running").await;
    assert_eq!((resumed["created_by"].as_str(), resumed["task_groups"].as_i64()), (Some("recovery"), Some(1)));
    // Its state came back: the orders before the snapshot retract right.
    wait_for_table(&warehouse, &all, 300).await;
    read_exactly(a, 100).await;
}
