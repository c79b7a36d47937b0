//! Jobs, versions (uploads), validation and deployments.

use serde_json::json;

use crate::fixtures::file_spec;
use crate::helpers::{assert_audited, component, events, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_gets_versions_and_a_deployment() {
    let app = spawn_app().await;
    app.project("alpha").await;
    let a = &app.admin;
    a.put(
        "/projects/alpha/connections/warehouse",
        json!({ "kind": "database", "url": app.sqlite_url("alpha", "w.db") }),
    )
    .await
    .expect(204);
    let job =
        a.post("/projects/alpha/jobs", json!({ "name": "hourly", "description": "hourly premium" })).await.expect(201);
    assert_eq!((job["name"].as_str(), job["description"].as_str()), (Some("hourly"), Some("hourly premium")));
    assert!(a.post("/projects/alpha/jobs", json!({ "name": "hourly" })).await.error(409).contains("already has a job"));
    assert!(a.post("/projects/alpha/jobs", json!({ "name": "Hourly" })).await.error(400).contains("lowercase"));
    assert_eq!(a.get("/projects/alpha/jobs/nope").await.status, 404);
    assert_eq!(a.post("/projects/nope/jobs", json!({ "name": "x" })).await.status, 404);

    let listed = a.get("/projects/alpha/jobs").await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["job"]["name"], "hourly");
    assert_eq!(listed[0]["state"], "new");
    assert!(listed[0]["version"].is_null() && listed[0]["run_id"].is_null());

    let bytes = component("hourly_premium");
    let checked = a.post_bytes("/validate", bytes.clone()).await.expect(200);
    assert_eq!(checked["size"], bytes.len());
    let hash = checked["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64, "a SHA-256: {checked}");

    let v1 = a.post_bytes("/projects/alpha/jobs/hourly/versions?note=first%20cut", bytes.clone()).await.expect(201);
    assert_eq!(v1["number"], 1);
    assert_eq!(v1["hash"], hash.as_str(), "the version is the validated component");
    assert_eq!(v1["size"], bytes.len());
    assert_eq!(v1["note"], "first cut");
    assert_eq!(v1["created_by"], "admin");
    let v2 = a.post_bytes("/projects/alpha/jobs/hourly/versions", bytes.clone()).await.expect(201);
    assert_eq!(v2["number"], 2);
    let versions = a.get("/projects/alpha/jobs/hourly/versions").await.expect(200);
    let numbers: Vec<i64> = versions.as_array().unwrap().iter().map(|v| v["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [2, 1], "newest first");

    let detail = a.get("/projects/alpha/jobs/hourly").await.expect(200);
    assert!(detail["deployment"].is_null() && detail["version"].is_null() && detail["run"].is_null(), "{detail}");
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);

    let input = app.project_file("alpha", "orders.jsonl");
    let deployment = a
        .put(
            "/projects/alpha/jobs/hourly/deployment",
            json!({
                "version": 1, "spec": file_spec(&input), "parameters": { "since_ms": "0" },
                "parallelism": 1, "memory_mb": 64, "cpu_ms": 2000, "schedule": null,
            }),
        )
        .await
        .expect(200);
    assert_eq!(deployment["version_id"], v1["id"]);
    assert_eq!(deployment["parameters"], json!({ "since_ms": "0" }));
    assert_eq!((deployment["memory_mb"].as_i64(), deployment["cpu_ms"].as_i64()), (Some(64), Some(2000)));

    let detail = a.get("/projects/alpha/jobs/hourly").await.expect(200);
    assert_eq!(detail["version"]["number"], 1, "the deployed version");
    assert_eq!(detail["deployment"]["spec"], file_spec(&input));
    assert_eq!(a.get("/projects/alpha/jobs").await.expect(200)[0]["version"], 1);

    // Without `version` the newest is deployed.
    let newest =
        a.put("/projects/alpha/jobs/hourly/deployment", json!({ "spec": file_spec(&input) })).await.expect(200);
    assert_eq!(newest["version_id"], v2["id"]);
    assert_eq!(newest["parallelism"], 1);

    let log = events(a, "alpha", "job=hourly").await;
    for action in ["job.create", "version.upload", "deployment.put"] {
        assert_audited(&log, action, "admin");
    }
    assert!(log.iter().any(|(a, _, d)| a == "version.upload" && d.contains("v2") && d.contains(&hash)), "{log:?}");
}
