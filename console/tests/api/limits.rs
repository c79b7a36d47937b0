//! The API's own limits (docs/SECURITY.md, "API and uploads"): uploads are
//! read only once their sender may upload, bodies are bounded per route,
//! compiles and requests wait their turn, requests and headers have time
//! limits.

use std::time::Duration;

use serde_json::json;
use sluice_console::api::ApiSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{component, raw_post, spawn_app, spawn_app_with_api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_refused_before_its_body_is_read_when_the_sender_may_not_upload() {
    let app = spawn_app().await;
    app.project("up").await;
    app.admin.post("/projects/up/jobs", json!({ "name": "job" })).await.expect(201);
    let viewer = app.member("vic", Some("up"), "viewer").await;
    let cookie = format!("Cookie: {}", viewer.cookie().unwrap());
    let fifty_mib = 50 * 1024 * 1024;

    // Nobody, and a viewer: answered without the server asking for the body.
    for path in ["/api/v1/validate", "/api/v1/projects/up/jobs/job/versions"] {
        let anonymous = raw_post(&app.address, path, &[], fifty_mib).await;
        assert_eq!((anonymous.status, anonymous.continued), (401, false), "{path}: {anonymous:?}");
        assert!(anonymous.body.contains("sign in"), "{path}: {anonymous:?}");
    }
    let viewer_upload = raw_post(&app.address, "/api/v1/projects/up/jobs/job/versions", &[&cookie], fifty_mib).await;
    assert_eq!((viewer_upload.status, viewer_upload.continued), (403, false), "{viewer_upload:?}");
    assert!(viewer_upload.body.contains("needs the developer role"), "{viewer_upload:?}");
    // Validating compiles: it needs the developer role in some project.
    let viewer_validate = raw_post(&app.address, "/api/v1/validate", &[&cookie], fifty_mib).await;
    assert_eq!((viewer_validate.status, viewer_validate.continued), (403, false), "{viewer_validate:?}");
    assert!(
        viewer_validate.body.contains("validating a component needs the developer role in at least one project"),
        "{viewer_validate:?}"
    );
    // A sender without `Expect` gets the answer too, not a reset connection.
    assert_eq!(viewer.post_bytes("/validate", component("hourly_premium")).await.status, 403);

    let developer = app.member("dev", Some("up"), "developer").await;
    let checked = developer.post_bytes("/validate", component("hourly_premium")).await.expect(200);
    assert_eq!(checked["size"].as_u64(), Some(component("hourly_premium").len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_per_route_with_a_413_that_names_the_limit() {
    let app = spawn_app_with_api(ApiSettings { max_upload_mb: 1, ..Default::default() }).await;
    let cookie = format!("Cookie: {}", app.admin.cookie().unwrap());
    // An upload over the operator's ceiling, refused from its declared length.
    let upload = raw_post(&app.address, "/api/v1/validate", &[&cookie], 2 * 1024 * 1024).await;
    assert_eq!((upload.status, upload.continued), (413, false), "{upload:?}");
    assert!(upload.body.contains("larger than 1 MiB") && upload.body.contains("--max-upload-mb"), "{upload:?}");
    // Other routes take 1 MiB of JSON; sign-in is not read before that.
    let json = "Content-Type: application/json";
    let login = raw_post(&app.address, "/api/v1/login", &[json], 2 * 1024 * 1024).await;
    assert_eq!(login.status, 413, "{login:?}");
    assert!(login.body.contains("larger than the 1024 KiB this route accepts"), "{login:?}");
    let project = raw_post(&app.address, "/api/v1/projects", &[json, &cookie], 2 * 1024 * 1024).await;
    assert_eq!(project.status, 413, "{project:?}");
    // Under the ceiling, an upload is read and checked.
    let small = app.admin.post_bytes("/validate", vec![0u8; 512 * 1024]).await;
    assert!(small.error(400).contains("not a WebAssembly file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiles_and_requests_wait_their_turn_then_are_told_the_console_is_busy() {
    let settings = ApiSettings { max_compiles: 1, queue_wait_secs: 1, ..Default::default() };
    let app = spawn_app_with_api(settings).await;
    // Every compile turn taken (as by long compiles): an upload waits, then 503.
    let compiling = app.guards.compiles.clone().acquire_many_owned(1).await.unwrap();
    let busy = app.admin.post_bytes("/validate", component("hourly_premium")).await;
    assert_eq!(busy.status, 503, "{}", busy.text);
    assert!(busy.text.contains("busy compiling other components"), "{}", busy.text);
    drop(compiling);
    app.admin.post_bytes("/validate", component("hourly_premium")).await.expect(200);

    // Every request slot taken: the next request waits, then 503 with Retry-After.
    let all = app.guards.requests.available_permits() as u32;
    let answering = app.guards.requests.clone().acquire_many_owned(all).await.unwrap();
    let response = reqwest::get(format!("{}/api/v1/me", app.address)).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(response.text().await.unwrap().contains("busy answering other requests"));
    // Health checks do not queue behind the API.
    assert_eq!(app.anonymous().get_raw("/healthz").await.status, 200);
    drop(answering);
    app.admin.get("/me").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_too_long_is_stopped_with_a_503() {
    let settings = ApiSettings { max_compiles: 1, queue_wait_secs: 30, request_timeout_secs: 1, ..Default::default() };
    let app = spawn_app_with_api(settings).await;
    let _compiling = app.guards.compiles.clone().acquire_many_owned(1).await.unwrap();
    let slow = app.admin.post_bytes("/validate", component("hourly_premium")).await;
    assert_eq!(slow.status, 503, "{}", slow.text);
    assert!(slow.text.contains("the request took longer than 1 s and was stopped"), "{}", slow.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_finish_its_headers_is_disconnected() {
    let app = spawn_app_with_api(ApiSettings { header_timeout_secs: 1, ..Default::default() }).await;
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // The server closes the connection (after at most a 408) instead of
    // waiting for the rest of the headers for ever.
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut seen)).await;
    assert!(closed.is_ok(), "the connection is still open after 30 s");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}
