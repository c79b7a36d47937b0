//! Who may do what: each role of a project against the actions of the role
//! above it, non-members, non-admins and requests without a credential.

use serde_json::{Value, json};

use crate::fixtures::{file_spec, orders};
use crate::helpers::{Client, TestApp, component, spawn_app, wait_for_run};

const JOB: &str = "/projects/perm/jobs/hourly";

/// Project `perm` with job `hourly` (v1, deployed on a JSON-lines file
/// of orders) and a SQLite warehouse.
async fn project(app: &TestApp) {
    app.project("perm").await;
    let a = &app.admin;
    a.put("/projects/perm/connections/warehouse", json!({ "kind": "database", "url": app.sqlite_url("perm", "w.db") }))
        .await
        .expect(204);
    a.post("/projects/perm/jobs", json!({ "name": "hourly" })).await.expect(201);
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await.expect(201);
    let input = app.project_file("perm", "orders.jsonl");
    let lines: Vec<String> = orders(0, 20, 5).iter().map(|o| o.json()).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    a.put(&format!("{JOB}/deployment"), json!({ "spec": file_spec(&input), "parameters": { "since_ms": "0" } }))
        .await
        .expect(200);
}

fn deployment(app: &TestApp) -> Value {
    json!({ "spec": file_spec(&app.project_file("perm", "orders.jsonl")), "parameters": { "since_ms": "0" } })
}

/// Asserts a 403 whose message names the role needed and the caller's.
#[track_caller]
fn denied(answer: crate::helpers::Answer, needed: &str, have: &str) {
    let what = answer.what.clone();
    let message = answer.error(403);
    assert!(
        message.contains(&format!("needs the {needed} role")) && message.contains(&format!("you are {have}")),
        "{what}: {message}"
    );
}

async fn operator_actions(client: &Client, have: &str) {
    denied(client.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await, "operator", have);
    denied(client.post(&format!("{JOB}/stop"), json!({ "snapshot": true })).await, "operator", have);
    denied(client.post(&format!("{JOB}/snapshots"), json!({})).await, "operator", have);
    denied(client.post(&format!("{JOB}/restore"), json!({ "snapshot": "1-0" })).await, "operator", have);
    denied(client.post(&format!("{JOB}/upgrade"), json!({ "version": 1 })).await, "operator", have);
    denied(client.post(&format!("{JOB}/rescale"), json!({ "parallelism": 1 })).await, "operator", have);
    denied(client.post(&format!("{JOB}/parameters"), json!({ "parameters": {} })).await, "operator", have);
}

async fn admin_actions(client: &Client, have: &str) {
    denied(client.put("/projects/perm/members/admin", json!({ "role": "viewer" })).await, "admin", have);
    denied(client.delete("/projects/perm/members/admin").await, "admin", have);
    denied(
        client.put("/projects/perm/connections/other", json!({ "kind": "redis", "url": "redis://127.0.0.1" })).await,
        "admin",
        have,
    );
    denied(client.delete("/projects/perm/connections/warehouse").await, "admin", have);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_its_own_actions_and_no_more() {
    let app = spawn_app().await;
    project(&app).await;

    // A viewer reads, and nothing else.
    let viewer = app.member("vera", Some("perm"), "viewer").await;
    assert_eq!(viewer.get("/projects/perm/jobs").await.expect(200)[0]["job"]["name"], "hourly");
    viewer.get(JOB).await.expect(200);
    viewer.get(&format!("{JOB}/runs")).await.expect(200);
    viewer.get(&format!("{JOB}/snapshots")).await.expect(200);
    viewer.get(&format!("{JOB}/metrics")).await.expect(200);
    viewer.get("/projects/perm/connections").await.expect(200);
    viewer.get("/projects/perm/events").await.expect(200);
    denied(viewer.post("/projects/perm/jobs", json!({ "name": "mine" })).await, "developer", "viewer");
    denied(viewer.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await, "developer", "viewer");
    denied(viewer.put(&format!("{JOB}/deployment"), deployment(&app)).await, "developer", "viewer");
    denied(viewer.post(&format!("{JOB}/debug"), json!({ "records": "{}" })).await, "developer", "viewer");
    denied(viewer.post(&format!("{JOB}/preview"), json!({ "limit": 1 })).await, "developer", "viewer");
    operator_actions(&viewer, "viewer").await;
    admin_actions(&viewer, "viewer").await;

    // A developer builds and debugs, but does not operate.
    let developer = app.member("dev", Some("perm"), "developer").await;
    developer.post("/projects/perm/jobs", json!({ "name": "devs-job" })).await.expect(201);
    let v2 = developer.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await.expect(201);
    assert_eq!((v2["number"].as_i64(), v2["created_by"].as_str()), (Some(2), Some("dev")));
    developer.put(&format!("{JOB}/deployment"), deployment(&app)).await.expect(200);
    let line = orders(0, 1, 1)[0].json();
    let debugged = developer.post(&format!("{JOB}/debug"), json!({ "records": line })).await.expect(200);
    assert_eq!(debugged["records_in"], 1);
    operator_actions(&developer, "developer").await;
    admin_actions(&developer, "developer").await;

    // An operator runs jobs, but manages neither members nor connections.
    let operator = app.member("opal", Some("perm"), "operator").await;
    let run = operator.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    assert_eq!(run["created_by"], "opal");
    wait_for_run(&operator, "perm", "hourly", "finished").await;
    admin_actions(&operator, "operator").await;
    assert!(
        operator.post("/projects/perm/jobs", json!({ "name": "ops-job" })).await.status.is_success(),
        "each role includes the ones below it"
    );

    // A project admin manages members and connections, not projects or users.
    let padmin = app.member("pat", Some("perm"), "admin").await;
    padmin.put("/projects/perm/members/vera", json!({ "role": "developer" })).await.expect(204);
    padmin
        .put("/projects/perm/connections/cache", json!({ "kind": "redis", "url": "redis://127.0.0.1:6379" }))
        .await
        .expect(204);
    for client in [&viewer, &developer, &operator, &padmin] {
        assert!(client.post("/projects", json!({ "name": "mine" })).await.error(403).contains("global admin"));
        assert!(
            client
                .post("/users", json!({ "name": "eve", "password": "long enough" }))
                .await
                .error(403)
                .contains("global admin")
        );
        assert!(client.get("/users").await.error(403).contains("global admin"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_and_anonymous_callers_are_refused() {
    let app = spawn_app().await;
    project(&app).await;
    let outsider = app.member("olga", None, "viewer").await;
    for path in ["/projects/perm", "/projects/perm/jobs", JOB, "/projects/perm/connections", "/projects/perm/events"] {
        let message = outsider.get(path).await.error(403);
        assert!(message.contains("not a member of project `perm`"), "{path}: {message}");
    }
    assert_eq!(outsider.get("/projects").await.expect(200), json!([]), "an outsider does not see the project");
    assert!(outsider.post(&format!("{JOB}/start"), json!({})).await.error(403).contains("not a member"));

    let nobody = app.anonymous();
    for path in ["/me", "/tokens", "/users", "/projects", "/projects/perm", JOB, &format!("{JOB}/metrics")] {
        let message = nobody.get(path).await.error(401);
        assert!(message.contains("sign in"), "{path}: {message}");
    }
    assert_eq!(nobody.post("/projects", json!({ "name": "x" })).await.status, 401);
    assert_eq!(nobody.post_bytes("/validate", component("hourly_premium")).await.status, 401);
    assert_eq!(nobody.post(&format!("{JOB}/start"), json!({})).await.status, 401);
    assert_eq!(nobody.with_token("slt_forged").get("/me").await.status, 401, "an unknown token");
    let forged = nobody.with_token("sls_forged");
    assert_eq!(forged.get("/projects").await.status, 401);
}
