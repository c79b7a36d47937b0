//! Projects' quotas (docs/SECURITY.md, "Resources"): a global admin sets
//! them; a start that would take a project past one is refused, naming it;
//! other projects are not affected.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fixtures::datagen_spec;
use crate::helpers::{TestApp, assert_audited, component, events, spawn_app, wait_for};

/// Job `job` of project `project` on generated orders, deployed with
/// `memory_mb` per task.
async fn deployed_job(app: &TestApp, project: &str, job: &str, memory_mb: u64) {
    let a = &app.admin;
    let base = format!("/projects/{project}/jobs/{job}");
    a.post(&format!("/projects/{project}/jobs"), json!({ "name": job })).await.expect(201);
    a.post_bytes(&format!("{base}/versions"), component("hourly_premium")).await.expect(201);
    a.put(&format!("{base}/deployment"), json!({ "spec": datagen_spec(None), "memory_mb": memory_mb }))
        .await
        .expect(200);
}

async fn project_with_warehouse(app: &TestApp, project: &str) {
    app.project(project).await;
    let warehouse = json!({ "kind": "database", "url": app.sqlite_url(project, "w.db") });
    app.admin.put(&format!("/projects/{project}/connections/warehouse"), warehouse).await.expect(204);
}

fn start() -> Value {
    json!({ "restore": "none" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_past_the_project_quota_is_refused_naming_it() {
    let app = spawn_app().await;
    project_with_warehouse(&app, "q").await;
    project_with_warehouse(&app, "other").await;
    for job in ["one", "two"] {
        deployed_job(&app, "q", job, 64).await;
    }
    deployed_job(&app, "other", "one", 64).await;
    let a = &app.admin;

    // Only a global admin sets a quota, a project admin included not.
    let project_admin = app.member("padmin", Some("q"), "admin").await;
    let refused = project_admin.put("/projects/q/quota", json!({ "max_tasks": 100 })).await.error(403);
    assert!(refused.contains("needs a global admin"), "{refused}");
    let out_of_range = a.put("/projects/q/quota", json!({ "max_tasks": -1 })).await.error(400);
    assert!(out_of_range.contains("`max_tasks` = -1 is out of range"), "{out_of_range}");

    let set = a.put("/projects/q/quota", json!({ "max_tasks": 1 })).await.expect(200);
    assert_eq!(set["own"]["max_tasks"], 1, "{set}");
    assert_eq!(set["own"]["max_memory_mb"], Value::Null, "unset is the platform's default: {set}");
    assert_eq!(set["quota"]["max_memory_mb"], 16 * 1024, "{set}");

    a.post("/projects/q/jobs/one/start", start()).await.expect(201);
    let seen = project_admin.get("/projects/q/quota").await.expect(200);
    assert_eq!((seen["usage"]["tasks"].as_u64(), seen["usage"]["memory_mb"].as_u64()), (Some(1), Some(64)), "{seen}");
    let over = a.post("/projects/q/jobs/two/start", start()).await.error(400);
    assert!(
        over.contains("project `q` is over its quota: 1 task(s) with 1 already running would pass max_tasks = 1"),
        "{over}"
    );
    assert!(over.contains("PUT /api/v1/projects/q/quota"), "says who can raise it: {over}");
    let runs = a.get("/projects/q/jobs/two/runs").await.expect(200);
    assert_eq!(runs[0]["state"], "failed", "the refused run holds nothing: {runs}");
    // Another project's quota is its own.
    a.post("/projects/other/jobs/one/start", start()).await.expect(201);

    // Memory counts the same way: 64 MiB held, 64 more would pass 100.
    a.put("/projects/q/quota", json!({ "max_memory_mb": 100 })).await.expect(200);
    let over = a.post("/projects/q/jobs/two/start", start()).await.error(400);
    assert!(over.contains("64 MiB of guest memory with 64 MiB already held would pass max_memory_mb = 100"), "{over}");

    // Once the first job stops, the second fits.
    a.post("/projects/q/jobs/one/stop", json!({ "snapshot": false })).await.expect(200);
    let run = a.post("/projects/q/jobs/two/start", start()).await.expect(201);
    assert_eq!(run["state"], "running", "{run}");
    assert_audited(&events(a, "q", "kind=audit").await, "project.quota", "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_runs_past_the_project_quota_are_refused() {
    let app = spawn_app().await;
    project_with_warehouse(&app, "dq").await;
    deployed_job(&app, "dq", "job", 64).await;
    let developer = app.member("dev", Some("dq"), "developer").await;
    let debug = || developer.post("/projects/dq/jobs/job/debug", json!({ "records": "{}" }));

    app.admin.put("/projects/dq/quota", json!({ "max_debug_runs": 0 })).await.expect(200);
    let refused = debug().await.error(409);
    assert!(refused.contains("project `dq` already has 0 debug run(s) in progress, its max_debug_runs"), "{refused}");

    // A finished debug run gives its place back.
    app.admin.put("/projects/dq/quota", json!({ "max_debug_runs": 1 })).await.expect(200);
    for _ in 0..3 {
        let answer = debug().await.expect(200);
        assert_eq!(answer["records_in"], 1, "{answer}");
    }
}

/// A caller that hangs up does not free its debug run's place while the
/// run goes on (else a client could start runs without end by hanging up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_run_keeps_its_place_when_its_caller_hangs_up() {
    let app = spawn_app().await;
    project_with_warehouse(&app, "hq").await;
    let a = &app.admin;
    a.post("/projects/hq/jobs", json!({ "name": "job" })).await.expect(201);
    a.post_bytes("/projects/hq/jobs/job/versions", component("guest_hostile")).await.expect(201);
    let spec = "[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n\n[sinks.out]\nkind = \"memory\"\n\n\
                [limits]\ncpu_per_batch = \"3s\"\n";
    a.put("/projects/hq/jobs/job/deployment", json!({ "spec": spec })).await.expect(200);
    a.put("/projects/hq/quota", json!({ "max_debug_runs": 1 })).await.expect(200);
    let developer = app.member("dev", Some("hq"), "developer").await;

    // A loop, whose caller gives up after half a second.
    let hasty = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let gone = hasty
        .post(format!("{}/api/v1/projects/hq/jobs/job/debug", app.address))
        .header("Cookie", developer.cookie().expect("signed in"))
        .json(&json!({ "records": "loop" }))
        .send()
        .await;
    assert!(gone.is_err(), "the caller hung up: {gone:?}");
    let refused = developer.post("/projects/hq/jobs/job/debug", json!({ "records": "ok" })).await.error(409);
    assert!(refused.contains("already has 1 debug run(s) in progress"), "the loop still holds its place: {refused}");

    // Its CPU limit ends it, and the place comes back.
    wait_for("the loop's place to come back", Duration::from_secs(30), || async {
        let answer = developer.post("/projects/hq/jobs/job/debug", json!({ "records": "ok" })).await;
        if answer.status == 200 { Ok(()) } else { Err(format!("{}: {}", answer.status, answer.text)) }
    })
    .await;
}
