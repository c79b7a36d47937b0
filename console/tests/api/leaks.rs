//! What the console must not tell: `/metrics` (every project and job) only
//! to Prometheus's scrape token or a global admin, `/readyz` without the
//! database's error, the audit log without parameter values.

use serde_json::json;
use sluice_console::api::ApiSettings;

use crate::fixtures::file_spec;
use crate::helpers::{events, spawn_app, spawn_app_with_api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_scrape_token_or_a_global_admin() {
    let settings = ApiSettings { metrics_token: Some("scrape-secret".into()), ..Default::default() };
    let app = spawn_app_with_api(settings).await;
    app.project("mine").await;
    let member = app.member("mo", Some("mine"), "admin").await;

    let anonymous = app.anonymous().get_raw("/metrics").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    let wrong = app.anonymous().with_token("not-the-token").get_raw("/metrics").await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let project_admin = member.get_raw("/metrics").await;
    assert_eq!(project_admin.status, 403);
    assert!(
        project_admin.text.contains("for Prometheus (with the scrape token of `--metrics-token`) and global admins")
    );

    for reader in [app.anonymous().with_token("scrape-secret"), app.admin.clone()] {
        let scraped = reader.get_raw("/metrics").await;
        assert_eq!(scraped.status, 200, "{}", scraped.text);
        assert!(scraped.text.trim_end().ends_with("# EOF"), "{}", scraped.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_does_not_echo_the_database_error() {
    let app = spawn_app().await;
    app.store.pool.close().await;
    let ready = app.anonymous().get_raw("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.text, "metadata store unreachable; the server log has the details");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_changes_are_audited_by_name_without_their_values() {
    let app = spawn_app().await;
    app.project_with_job("quiet", "hourly").await;
    let a = &app.admin;
    let spec = file_spec(&app.project_file("quiet", "orders.jsonl"));
    let parameters = json!({ "since_ms": "0", "api_key": "hunter2-secret" });
    a.put("/projects/quiet/jobs/hourly/deployment", json!({ "spec": spec, "parameters": parameters }))
        .await
        .expect(200);

    let changed = json!({ "parameters": { "since_ms": "5", "region": "south-secret" } });
    a.post("/projects/quiet/jobs/hourly/parameters", changed).await.expect(200);
    let log = events(a, "quiet", "kind=audit").await;
    let detail = &log.iter().find(|(action, _, _)| action == "job.parameters").expect("audited").2;
    assert_eq!(detail, "set region, since_ms; removed api_key");
    for (_, _, detail) in &log {
        assert!(!detail.contains("secret") && !detail.contains("=5"), "a value in the audit log: {detail}");
    }
}
