//! Starts that happen later: at a given time, and on a cron schedule.

use serde_json::json;

use crate::fixtures::{datagen_spec, hs_order};
use crate::helpers::{PATIENCE, TestApp, component, spawn_app, wait_for, wait_for_run};

const JOB: &str = "/projects/sched/jobs/hourly";

/// Project `sched` with job `hourly` on generated orders.
async fn project(app: &TestApp, spec: String, schedule: Option<&str>) {
    app.project("sched").await;
    let a = &app.admin;
    a.put(
        "/projects/sched/connections/warehouse",
        json!({ "kind": "database", "url": app.sqlite_url("sched", "w.db") }),
    )
    .await
    .expect(204);
    a.post("/projects/sched/jobs", json!({ "name": "hourly" })).await.expect(201);
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await.expect(201);
    a.put(&format!("{JOB}/deployment"), json!({ "spec": spec, "schedule": schedule })).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_at_a_later_time_is_scheduled_then_runs() {
    let app = spawn_app().await;
    project(&app, datagen_spec(None), None).await;
    let a = &app.admin;

    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let run = a.post(&format!("{JOB}/start"), json!({ "restore": "none", "at": at.to_rfc3339() })).await.expect(201);
    assert_eq!(run["state"], "scheduled", "{run}");
    assert_eq!(run["scheduled_ms"], at.timestamp_millis());
    assert_eq!(a.get("/projects/sched/jobs").await.expect(200)[0]["state"], "scheduled");
    let again = a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.error(409);
    assert!(again.contains("scheduled run"), "a scheduled run holds the job: {again}");

    let running = wait_for_run(a, "sched", "hourly", "running").await;
    assert_eq!(running["id"], run["id"]);
    assert!(running["started_ms"].as_i64().unwrap() >= at.timestamp_millis(), "not before its time: {running}");
    crate::helpers::wait_for_records_in(a, "sched", "hourly", 1).await;
    // A generated source resumes by record index, so it snapshots too.
    let snapshot = a.post(&format!("{JOB}/snapshots"), json!({})).await.expect(201);
    assert!(snapshot[0]["positions"][0].as_str().unwrap().starts_with("user_order/0: "), "{snapshot}");

    let stopped = a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.expect(200);
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert!(!hs_order(&app.sqlite_url("sched", "w.db")).await.is_empty(), "the run wrote rows");

    // Stopping a run that has not started yet cancels it.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let run = a.post(&format!("{JOB}/start"), json!({ "restore": "none", "at": later.to_rfc3339() })).await.expect(201);
    assert_eq!(run["state"], "scheduled");
    let cancelled = a.post(&format!("{JOB}/stop"), json!({})).await.expect(200);
    assert_eq!((cancelled["id"].as_str(), cancelled["state"].as_str()), (run["id"].as_str(), Some("cancelled")));

    // A time in the past starts now.
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let now = a.post(&format!("{JOB}/start"), json!({ "restore": "none", "at": past.to_rfc3339() })).await.expect(201);
    assert_eq!(now["state"], "running", "{now}");
    assert_eq!(a.post(&format!("{JOB}/stop"), json!({ "snapshot": false })).await.expect(200)["state"], "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_starts_bounded_runs() {
    let app = spawn_app().await;
    project(&app, datagen_spec(Some(20)), Some("*/2 * * * * *")).await;
    let a = &app.admin;

    let runs = wait_for("two scheduled runs to finish", PATIENCE, || async {
        let runs = a.get(&format!("{JOB}/runs")).await.expect(200);
        let finished = runs.as_array().unwrap().iter().filter(|r| r["state"] == "finished").count();
        if finished >= 2 { Ok(runs) } else { Err(runs.to_string()) }
    })
    .await;
    for run in runs.as_array().unwrap() {
        assert_eq!(run["created_by"], "schedule", "{run}");
        assert_eq!(run["restore_from"], "none", "a scheduled batch starts fresh: {run}");
        assert!(["finished", "starting", "running"].contains(&run["state"].as_str().unwrap()), "{runs}");
    }
    assert!(!hs_order(&app.sqlite_url("sched", "w.db")).await.is_empty(), "the runs wrote rows");
    let log = crate::helpers::events(a, "sched", "job=hourly&kind=run").await;
    assert!(log.iter().any(|(action, who, _)| action == "run.cron" && who.is_none()), "{log:?}");

    // Without a schedule, no more runs start.
    a.put(&format!("{JOB}/deployment"), json!({ "spec": datagen_spec(Some(20)) })).await.expect(200);
    let settled = wait_for("the last scheduled run to end", PATIENCE, || async {
        let runs = a.get(&format!("{JOB}/runs")).await.expect(200);
        if runs[0]["state"] == "finished" { Ok(runs.as_array().unwrap().len()) } else { Err(runs.to_string()) }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(a.get(&format!("{JOB}/runs")).await.expect(200).as_array().unwrap().len(), settled);
}
