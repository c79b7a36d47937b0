//! Health, readiness and the OpenAPI document (Prometheus is read in the
//! lifecycle test, with a job running).

use serde_json::Value;

use crate::helpers::spawn_app;

/// Every route of docs/API.md with its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/login", &["post"]),
    ("/logout", &["post"]),
    ("/me", &["get"]),
    ("/me/password", &["post"]),
    ("/me/sessions", &["delete"]),
    ("/tokens", &["get", "post"]),
    ("/tokens/{id}", &["delete"]),
    ("/users", &["get", "post"]),
    ("/users/{name}", &["patch"]),
    ("/users/{name}/password", &["put"]),
    ("/users/{name}/credentials", &["delete"]),
    ("/projects", &["get", "post"]),
    ("/projects/{p}", &["get"]),
    ("/projects/{p}/members/{user}", &["put", "delete"]),
    ("/projects/{p}/quota", &["get", "put"]),
    ("/workers", &["get"]),
    ("/projects/{p}/connections", &["get"]),
    ("/projects/{p}/connections/{name}", &["put", "delete"]),
    ("/projects/{p}/connections/{name}/topics", &["get", "post"]),
    ("/projects/{p}/events", &["get"]),
    ("/projects/{p}/jobs", &["get", "post"]),
    ("/projects/{p}/jobs/{j}", &["get"]),
    ("/projects/{p}/jobs/{j}/versions", &["get", "post"]),
    ("/validate", &["post"]),
    ("/projects/{p}/jobs/{j}/deployment", &["put"]),
    ("/projects/{p}/jobs/{j}/debug", &["post"]),
    ("/projects/{p}/jobs/{j}/preview", &["post"]),
    ("/projects/{p}/jobs/{j}/start", &["post"]),
    ("/projects/{p}/jobs/{j}/stop", &["post"]),
    ("/projects/{p}/jobs/{j}/snapshots", &["get", "post"]),
    ("/projects/{p}/jobs/{j}/restore", &["post"]),
    ("/projects/{p}/jobs/{j}/upgrade", &["post"]),
    ("/projects/{p}/jobs/{j}/rescale", &["post"]),
    ("/projects/{p}/jobs/{j}/parameters", &["post"]),
    ("/projects/{p}/jobs/{j}/runs", &["get"]),
    ("/projects/{p}/jobs/{j}/metrics", &["get"]),
    ("/projects/{p}/jobs/{j}/exceptions", &["get"]),
    ("/projects/{p}/jobs/{j}/logs", &["get"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_without_signing_in() {
    let app = spawn_app().await;
    let anonymous = app.anonymous();
    let health = anonymous.get_raw("/healthz").await;
    assert_eq!((health.status.as_u16(), health.text.as_str()), (200, "ok"));
    let ready = anonymous.get_raw("/readyz").await;
    assert_eq!((ready.status.as_u16(), ready.text.as_str()), (200, "ready"));
    // Prometheus's exposition names every project and job: not for anyone.
    assert_eq!(anonymous.get_raw("/metrics").await.status, 401);
    let metrics = app.admin.get_raw("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.trim_end().ends_with("# EOF"), "OpenMetrics text: {}", metrics.text);

    // With the metadata store gone, the console is not ready.
    app.store.pool.close().await;
    let ready = anonymous.get_raw("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.text.contains("metadata store unreachable"), "{}", ready.text);
    assert_eq!(anonymous.get_raw("/healthz").await.status, 200, "the process is still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let doc = app.anonymous().get_raw("/api/openapi.json").await;
    assert_eq!(doc.status, 200);
    let doc: Value = serde_json::from_str(&doc.text).expect("valid JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    for (route, methods) in ROUTES {
        let path = format!("/api/v1{route}");
        let entry =
            paths.get(&path).unwrap_or_else(|| panic!("{path} is not in the OpenAPI paths: {:?}", paths.keys()));
        for method in *methods {
            assert!(entry.get(*method).is_some(), "{method} {path} is not described: {entry}");
        }
    }
    assert_eq!(paths.len(), ROUTES.len(), "documented routes beyond docs/API.md: {:?}", paths.keys());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}
