//! Role boundaries of the deployment: a developer sets what runs (version,
//! spec, parameters); when it starts (the cron schedule) and what it may
//! use (parallelism, memory and CPU limits, the spec's `[limits]`) are an
//! operator's, as starting is.

use serde_json::{Value, json};

use crate::fixtures::file_spec;
use crate::helpers::{TestApp, spawn_app};

const DEPLOYMENT: &str = "/projects/roles/jobs/hourly/deployment";

fn spec(app: &TestApp, extra: &str) -> String {
    format!("{}{extra}", file_spec(&app.project_file("roles", "orders.jsonl")))
}

#[track_caller]
fn operator_needed(answer: crate::helpers::Answer, what: &str) {
    let message = answer.error(403);
    assert!(
        message.contains(&format!("changing {what} needs the operator role in project `roles`; you are developer")),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_cannot_schedule_a_job_or_set_its_resources() {
    let app = spawn_app().await;
    app.project_with_job("roles", "hourly").await;
    let developer = app.member("dev", Some("roles"), "developer").await;
    let base = |extra: Value| {
        let mut body = json!({ "spec": spec(&app, ""), "parameters": { "since_ms": "0" } });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    // A first deployment with the operator's settings left at their defaults.
    developer.put(DEPLOYMENT, base(json!({}))).await.expect(200);
    operator_needed(developer.put(DEPLOYMENT, base(json!({ "schedule": "0 0 2 * * *" }))).await, "the schedule");
    operator_needed(developer.put(DEPLOYMENT, base(json!({ "parallelism": 4 }))).await, "parallelism");
    operator_needed(developer.put(DEPLOYMENT, base(json!({ "memory_mb": 4096 }))).await, "memory_mb");
    operator_needed(developer.put(DEPLOYMENT, base(json!({ "cpu_ms": 120000 }))).await, "cpu_ms");
    let limits = json!({ "spec": spec(&app, "\n[limits]\ncpu_per_batch = \"120s\"\n") });
    operator_needed(developer.put(DEPLOYMENT, base(limits)).await, "the spec's [limits]");
    let both = developer.put(DEPLOYMENT, base(json!({ "schedule": "0 0 2 * * *", "memory_mb": 64 }))).await;
    operator_needed(both, "the schedule, memory_mb");

    // An operator sets them; the developer then changes what runs, keeping them.
    let operator = app.member("opal", Some("roles"), "operator").await;
    // (Parallelism stays 1: hourly premium's state is global, so 2 is refused for that.)
    let settings = json!({ "schedule": "0 0 2 * * *", "memory_mb": 64, "cpu_ms": 5000 });
    operator.put(DEPLOYMENT, base(settings.clone())).await.expect(200);
    let mut changed = base(settings.clone());
    changed["parameters"] = json!({ "since_ms": "1" });
    changed["spec"] = spec(&app, "\n[batch]\nmax_records = 10\n").into();
    let saved = developer.put(DEPLOYMENT, changed).await.expect(200);
    assert_eq!(saved["parameters"], json!({ "since_ms": "1" }));
    assert_eq!((saved["schedule"].as_str(), saved["memory_mb"].as_i64()), (Some("0 0 2 * * *"), Some(64)));
    // Leaving the schedule out removes it: an operator's change too.
    let mut unscheduled = base(settings);
    unscheduled["schedule"] = Value::Null;
    operator_needed(developer.put(DEPLOYMENT, unscheduled).await, "the schedule");

    let job = app.admin.get("/projects/roles/jobs/hourly").await.expect(200);
    assert_eq!(job["deployment"]["schedule"], "0 0 2 * * *", "the refused changes left the deployment as it was");
}
