//! Bad input is refused with a message that says what to fix.

use serde_json::json;

use crate::fixtures::file_spec;
use crate::helpers::{TestApp, component, spawn_app};

const JOB: &str = "/projects/val/jobs/hourly";

async fn project(app: &TestApp) {
    app.project("val").await;
    app.admin
        .put("/projects/val/connections/warehouse", json!({ "kind": "database", "url": app.sqlite_url("val", "w.db") }))
        .await
        .expect(204);
    app.admin.post("/projects/val/jobs", json!({ "name": "hourly" })).await.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_are_not_jobs_are_refused_with_the_reason() {
    let app = spawn_app().await;
    project(&app).await;
    let a = &app.admin;
    let text = a.post_bytes(&format!("{JOB}/versions"), b"hello, world".to_vec()).await.error(400);
    assert!(text.contains("not a valid job component") && text.contains("magic bytes"), "{text}");
    let core = a.post_bytes(&format!("{JOB}/versions"), b"\0asm\x01\0\0\0".to_vec()).await.error(400);
    assert!(core.contains("wasm32-wasip2"), "a core module is told how to build a component: {core}");
    let mut truncated = component("hourly_premium");
    truncated.truncate(truncated.len() / 2);
    let cut = a.post_bytes(&format!("{JOB}/versions"), truncated.clone()).await.error(400);
    assert!(cut.contains("not a valid job component"), "{cut}");
    let foreign = a.post_bytes(&format!("{JOB}/versions"), component("guest_foreign_import")).await.error(400);
    assert!(foreign.contains("import"), "{foreign}");
    assert!(a.post_bytes("/validate", truncated).await.error(400).contains("not a valid job component"));
    assert_eq!(a.get(&format!("{JOB}/versions")).await.expect(200), json!([]), "nothing was stored");

    let deploy = a.put(&format!("{JOB}/deployment"), json!({ "spec": "" })).await.error(400);
    assert!(deploy.contains("no version yet") && deploy.contains("upload"), "{deploy}");
    let start = a.post(&format!("{JOB}/start"), json!({})).await.error(400);
    assert!(start.contains("no deployment yet"), "{start}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deployments_name_what_is_wrong() {
    let app = spawn_app().await;
    project(&app).await;
    let a = &app.admin;
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await.expect(201);
    let spec = file_spec(&app.project_file("val", "orders.jsonl"));
    let put = |body: serde_json::Value| async move { a.put(&format!("{JOB}/deployment"), body).await };

    let unknown = put(json!({ "spec": spec.replace("event_time_field", "batch_size = 3\nevent_time_field") })).await;
    let unknown = unknown.error(400);
    assert!(unknown.contains("batch_size"), "the unknown spec field is named: {unknown}");
    let syntax = put(json!({ "spec": "[sources.user_order\nkind = " })).await.error(400);
    assert!(syntax.contains("spec"), "{syntax}");
    let kind = put(json!({ "spec": spec.replace("kind = \"file\"", "kind = \"ftp\"") })).await.error(400);
    assert!(kind.contains("ftp"), "{kind}");
    // Settings a source refuses are refused on save, not when the job starts.
    let datagen = "[sources.user_order]\nkind = \"datagen\"\npartitions = 4\nkeys = 2\n\
                   [sources.user_order.fields]\nid = { gen = \"key\" }\n\n[sinks.hs_order]\nkind = \"memory\"\n";
    let datagen = put(json!({ "spec": datagen })).await.error(400);
    assert!(
        datagen.contains("the spec is not valid") && datagen.contains("`keys` must be at least `partitions`"),
        "{datagen}"
    );

    let cron = put(json!({ "spec": spec, "schedule": "every day at 2" })).await.error(400);
    assert!(cron.contains("not a cron expression") && cron.contains("0 0 2 * * *"), "{cron}");
    let five_fields = put(json!({ "spec": spec, "schedule": "0 2 * * *" })).await.error(400);
    assert!(five_fields.contains("seconds first"), "{five_fields}");

    let missing = spec.replace("[sinks.hs_order]", "[dimensions.rates]\nkind = \"sql\"\nconnection = \"rates-db\"\ntable = \"rates\"\nkey = [\"id\"]\n\n[sinks.hs_order]");
    let missing = put(json!({ "spec": missing })).await.error(400);
    assert!(missing.contains("connection `rates-db`") && missing.contains("does not have"), "{missing}");
    let kafka = crate::fixtures::kafka_spec("orders");
    let kafka = put(json!({ "spec": kafka })).await.error(400);
    assert!(kafka.contains("connection `events`"), "{kafka}");

    let version = put(json!({ "spec": spec, "version": 9 })).await.error(400);
    assert!(version.contains("has no version 9"), "{version}");
    let parallelism = put(json!({ "spec": spec, "parallelism": 0 })).await.error(400);
    assert!(parallelism.contains("parallelism"), "{parallelism}");
    let field = put(json!({ "spec": spec, "paralelism": 2 })).await.error(400);
    assert!(field.contains("paralelism"), "an unknown request field is named: {field}");
    let not_json = a.call(reqwest::Method::PUT, &format!("{JOB}/deployment"), None).await;
    assert_eq!(not_json.status.as_u16(), 400, "{}", not_json.text);
    assert!(not_json.json()["error"].is_string(), "errors are JSON: {}", not_json.text);

    assert!(a.get(JOB).await.expect(200)["deployment"].is_null(), "no bad deployment was saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_starts_say_what_to_give_instead() {
    let app = spawn_app().await;
    project(&app).await;
    let a = &app.admin;
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await.expect(201);
    a.put(&format!("{JOB}/deployment"), json!({ "spec": file_spec(&app.project_file("val", "orders.jsonl")) }))
        .await
        .expect(200);
    let start = |body: serde_json::Value| async move { a.post(&format!("{JOB}/start"), body).await };

    let at = start(json!({ "at": "next tuesday" })).await.error(400);
    assert!(at.contains("not an RFC 3339 time") && at.contains("2026-11-23T02:00:00+08:00"), "{at}");
    let position = start(json!({ "restore": "none", "start_position": "yesterday" })).await.error(400);
    assert!(position.contains("earliest, latest, an RFC 3339 time or epoch milliseconds"), "{position}");
    let snapshot = start(json!({ "restore": "1710432000000-1" })).await.error(400);
    assert!(snapshot.contains("is not a snapshot of job `hourly`") && snapshot.contains("latest"), "{snapshot}");
    let field = start(json!({ "restor": "none" })).await.error(400);
    assert!(field.contains("restor"), "{field}");
    // The input file does not exist: the start fails and says which file.
    let missing = start(json!({ "restore": "none" })).await.error(400);
    assert!(missing.contains("could not start") && missing.contains("orders.jsonl"), "{missing}");
    let runs = a.get(&format!("{JOB}/runs")).await.expect(200);
    assert_eq!(runs.as_array().unwrap().len(), 1, "only the start that got past the checks made a run: {runs}");
    assert_eq!(runs[0]["state"], "failed");
    assert!(runs[0]["error"].as_str().unwrap().contains("orders.jsonl"));

    let stop = a.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await.error(409);
    assert!(stop.contains("not running"), "{stop}");
    let snap = a.post(&format!("{JOB}/snapshots"), json!({})).await.error(409);
    assert!(snap.contains("not running"), "{snap}");
    let restore = a.post(&format!("{JOB}/restore"), json!({ "snapshot": "nope" })).await.error(400);
    assert!(restore.contains("not a snapshot"), "{restore}");
    let upgrade = a.post(&format!("{JOB}/upgrade"), json!({ "version": 7 })).await.error(400);
    assert!(upgrade.contains("has no version 7"), "{upgrade}");
}
