//! Project b is not project a's developer's to read or change: its jobs,
//! runs, metrics, logs, dead letters, connections and events are refused
//! (403, naming the membership the caller lacks), nothing of it shows up
//! in what a's developer can list, and b's job runs on untouched.

use reqwest::Method;
use serde_json::{Value, json};

use crate::platform::{B_SECRET, Platform, component};

const LEDGER: &str = "/projects/b/jobs/ledger";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_b_is_neither_readable_nor_changeable_by_a_developer_of_project_a() {
    let platform = Platform::start().await;
    let b_before = platform.b_ledger().await;
    let admin = &platform.admin;
    let b_connections = admin.get("/projects/b/connections").await.expect(200);
    let b_job = admin.get(LEDGER).await.expect(200);
    // b rejects rows, and keeps them as its dead letters.
    let dead = crate::platform::wait_for("b's dead letters", crate::platform::PATIENCE, || async {
        let exceptions = admin.get(&format!("{LEDGER}/exceptions")).await.expect(200);
        let kept = exceptions["dead_letters"].as_array().map_or(0, |d| d.len());
        if kept > 0 { Ok(exceptions) } else { Err(exceptions.to_string()) }
    })
    .await;
    assert!(dead.to_string().contains(B_SECRET), "b's dead letters hold its memo: {dead}");

    let dev = &platform.dev;
    let reads = [
        "/projects/b".to_owned(),
        "/projects/b/jobs".into(),
        "/projects/b/connections".into(),
        "/projects/b/events".into(),
        "/projects/b/events?job=ledger&kind=error".into(),
        "/projects/b/connections/warehouse/topics".into(),
        LEDGER.into(),
        format!("{LEDGER}/versions"),
        format!("{LEDGER}/runs"),
        format!("{LEDGER}/snapshots"),
        format!("{LEDGER}/metrics?seconds=60"),
        format!("{LEDGER}/exceptions"),
        format!("{LEDGER}/logs"),
    ];
    for path in &reads {
        let answer = dev.get(path).await;
        assert!(!answer.text.contains(B_SECRET) && !answer.text.contains("b-warehouse"), "{path}: {}", answer.text);
        answer.refused(403, &["you are not a member of project `b`"]);
    }
    let changes: [(Method, String, Option<Value>); 16] = [
        (Method::POST, "/projects/b/jobs".into(), Some(json!({ "name": "planted" }))),
        (
            Method::PUT,
            format!("{LEDGER}/deployment"),
            Some(json!({ "spec": "[sources.x]\nkind = \"file\"\npath = \"x\"\n" })),
        ),
        (Method::POST, format!("{LEDGER}/start"), Some(json!({ "restore": "none" }))),
        (Method::POST, format!("{LEDGER}/stop"), Some(json!({ "snapshot": false }))),
        (Method::POST, format!("{LEDGER}/snapshots"), Some(json!({}))),
        (Method::POST, format!("{LEDGER}/restore"), Some(json!({ "snapshot": "latest" }))),
        (Method::POST, format!("{LEDGER}/upgrade"), Some(json!({ "version": 1 }))),
        (Method::POST, format!("{LEDGER}/rescale"), Some(json!({ "parallelism": 1 }))),
        (Method::POST, format!("{LEDGER}/parameters"), Some(json!({ "parameters": { "x": "1" } }))),
        (Method::POST, format!("{LEDGER}/debug"), Some(json!({ "from_topic": 100 }))),
        (Method::POST, format!("{LEDGER}/preview"), Some(json!({ "limit": 100 }))),
        (
            Method::PUT,
            "/projects/b/connections/warehouse".into(),
            Some(json!({ "kind": "database", "url": "sqlite:x.db" })),
        ),
        (Method::DELETE, "/projects/b/connections/warehouse".into(), None),
        (Method::POST, "/projects/b/connections/warehouse/topics".into(), Some(json!({ "name": "t" }))),
        (Method::PUT, "/projects/b/members/mallory".into(), Some(json!({ "role": "viewer" }))),
        (Method::DELETE, "/projects/b/members/admin".into(), None),
    ];
    for (method, path, body) in changes {
        let answer = dev.call(method, &path, body).await;
        assert!(!answer.text.contains(B_SECRET), "{path}: {}", answer.text);
        answer.refused(403, &["you are not a member of project `b`"]);
    }
    let upload = dev.post_bytes(&format!("{LEDGER}/versions"), component("forward")).await;
    upload.refused(403, &["you are not a member of project `b`"]);

    // Nothing of b in what the developer may list.
    let projects = dev.get("/projects").await.expect(200);
    let names: Vec<&str> = projects.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["a"], "{projects}");
    let mine = dev.get("/projects/a/jobs").await;
    assert!(!mine.text.contains("ledger"), "{}", mine.text);

    // b is as it was.
    assert_eq!(admin.get("/projects/b/connections").await.expect(200), b_connections);
    let job = admin.get(LEDGER).await.expect(200);
    assert_eq!((&job["deployment"], &job["versions"]), (&b_job["deployment"], &b_job["versions"]));
    let events = admin.get("/projects/b/events").await.expect(200);
    assert!(!events.to_string().contains("mallory"), "nothing was done in b as a's developer: {events}");
    platform.assert_dev_has_no_more_power().await;
    platform.assert_b_kept_producing(&b_before).await;
}
