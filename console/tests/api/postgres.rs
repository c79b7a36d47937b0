//! The metadata store on PostgreSQL: migrations on a fresh database, the
//! store's roundtrips, and the console answering on top of it.

use serde_json::json;
use sluice_console::store::{Deployment, EventFilter, NewRun, RunState, SecretKey, Store, now_ms};

use crate::fixtures::{file_spec, orders};
use crate::helpers::{PATIENCE, component, spawn_app_on, wait_for, wait_for_run, warehouse_connection};

use crate::fresh_database::FreshDatabase;

/// Consoles and workers on other machines reach the store over the
/// network: a URL with `sslmode=require` (or `verify-full` and the
/// operator's CA) gets encrypted connections. (Debian's PostgreSQL serves
/// TLS with its own certificate, so `require`, which does not verify it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_store_connects_over_tls_when_its_url_asks() {
    let db = FreshDatabase::create("sluice_api").await;
    let store = Store::connect(&format!("{}?sslmode=require", db.url), SecretKey::generate())
        .await
        .expect("a TLS connection to the local server");
    let encrypted: bool = sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(&store.pool)
        .await
        .expect("the connection's TLS state");
    assert!(encrypted, "the store's connection is encrypted");
    store.pool.close().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_store_runs_on_postgresql() {
    let db = FreshDatabase::create("sluice_api").await;
    let key = SecretKey::generate();
    let store = Store::connect(&db.url, key.clone()).await.expect("migrations run on a fresh database");
    assert_eq!(store.dialect, sluice_console::store::Dialect::Postgres);
    Store::connect(&db.url, key).await.expect("and again on a migrated one").pool.close().await;
    let refused = Store::connect(&db.url, SecretKey::generate()).await.expect_err("another secret key");
    assert!(refused.to_string().contains("not the one"), "{refused}");

    // The store's own roundtrips.
    let user = store.create_user("pat", "hash", false).await.unwrap();
    assert!(!store.user_by_name("pat").await.unwrap().unwrap().is_admin);
    let project = store.create_project("pg", "on postgres").await.unwrap();
    store.set_member(&project.id, &user.id, "operator").await.unwrap();
    assert_eq!(store.role_of(&project.id, &user.id).await.unwrap().as_deref(), Some("operator"));
    assert!(matches!(store.create_project("pg", "").await, Err(sluice_console::store::StoreError::Conflict(_))));
    let warehouse = warehouse_connection();
    store.put_connection(&project.id, &warehouse).await.unwrap();
    let read = store.connection(&project.id, "warehouse").await.unwrap().unwrap();
    assert_eq!(
        (read.url.as_str(), read.secret.as_deref()),
        (warehouse.url.as_str(), Some("s3cr3t-pw")),
        "sealed roundtrip"
    );
    let job = store.create_job(&project.id, "hourly", "").await.unwrap();
    let bytes = component("hourly_premium");
    let version = store.add_version(&job.id, "hash-1", &bytes, "first", "pat").await.unwrap();
    assert_eq!((version.number, version.size), (1, bytes.len() as i64));
    assert_eq!(store.component("hash-1").await.unwrap().as_deref(), Some(bytes.as_slice()), "bytea roundtrip");
    let deployment = Deployment {
        job_id: job.id.clone(),
        version_id: version.id.clone(),
        spec: "[sources.x]".into(),
        parameters: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
        parallelism: 2,
        memory_mb: None,
        cpu_ms: Some(100),
        schedule: Some("0 0 2 * * *".into()),
        updated_ms: now_ms(),
    };
    store.put_deployment(&deployment).await.unwrap();
    let read = store.deployment(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (read.parameters, read.parallelism, read.memory_mb, read.cpu_ms),
        (deployment.parameters, 2, None, Some(100))
    );
    assert_eq!(store.scheduled_deployments().await.unwrap().len(), 1);
    let run = store
        .create_run(NewRun {
            job_id: &job.id,
            version_id: &version.id,
            state: RunState::Scheduled,
            restore_from: Some("latest"),
            start_position: None,
            scheduled_ms: Some(now_ms() + 60_000),
            created_by: "pat",
            worker: None,
        })
        .await
        .unwrap();
    assert_eq!(store.active_run(&job.id).await.unwrap().map(|r| r.id), Some(run.id.clone()));
    let second = store
        .create_run(NewRun {
            job_id: &job.id,
            version_id: &version.id,
            state: RunState::Starting,
            restore_from: Some("none"),
            start_position: None,
            scheduled_ms: None,
            created_by: "pat",
            worker: None,
        })
        .await;
    assert!(
        matches!(second, Err(sluice_console::store::StoreError::Conflict(_))),
        "one active run per job on PostgreSQL too: {second:?}"
    );
    assert!(!store.move_run(&run.id, RunState::Starting, RunState::Cancelled).await.unwrap(), "not in that state");
    store.set_run_state(&run.id, RunState::Cancelled, None).await.unwrap();
    let ended = store.run(&run.id).await.unwrap().unwrap();
    assert_eq!(ended.state, RunState::Cancelled);
    assert!(ended.ended_ms.is_some() && ended.start_position.is_none());
    assert!(store.active_run(&job.id).await.unwrap().is_none());
    store.record_event(None, Some(&job.id), "run", None, "run.test", "detail").await.unwrap();
    let events =
        store.events(EventFilter { project_id: Some(&project.id), job_id: None, kind: None, limit: 10 }).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].project_id.as_deref(), Some(project.id.as_str()), "an event of a job belongs to its project");
    assert_eq!(store.events(EventFilter { limit: 10, ..Default::default() }).await.unwrap().len(), 1);

    // The console on it: sign-in, projects, jobs, a run.
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(store, dir).await;
    let a = &app.admin;
    let token = a.post("/tokens", json!({ "name": "pg" })).await.expect(201)["token"].as_str().unwrap().to_owned();
    let a = a.with_token(&token);
    a.post("/projects", json!({ "name": "web" })).await.expect(201);
    a.put("/projects/web/connections/warehouse", json!({ "kind": "database", "url": app.sqlite_url("web", "w.db") }))
        .await
        .expect(204);
    a.post("/projects/web/jobs", json!({ "name": "hourly" })).await.expect(201);
    a.post_bytes("/projects/web/jobs/hourly/versions", component("hourly_premium")).await.expect(201);
    let input = app.project_file("web", "orders.jsonl");
    std::fs::write(&input, orders(0, 50, 7).iter().map(|o| o.json() + "\n").collect::<String>()).unwrap();
    a.put(
        "/projects/web/jobs/hourly/deployment",
        json!({ "spec": file_spec(&input), "parameters": { "since_ms": "0" } }),
    )
    .await
    .expect(200);
    a.post("/projects/web/jobs/hourly/start", json!({ "restore": "none" })).await.expect(201);
    wait_for_run(&a, "web", "hourly", "finished").await;
    assert_eq!(
        crate::fixtures::hs_order(&app.sqlite_url("web", "w.db")).await,
        crate::fixtures::expected_hs_order(&orders(0, 50, 7))
    );
    // The run's end is committed before its event is written: wait for it.
    let log = wait_for("the run.finished event", PATIENCE, || async {
        let log = crate::helpers::events(&a, "web", "").await;
        if log.iter().any(|(action, _, _)| action == "run.finished") { Ok(log) } else { Err(format!("{log:?}")) }
    })
    .await;
    crate::helpers::assert_audited(&log, "job.start", "admin");
    drop(app);
    db.remove().await;
}
