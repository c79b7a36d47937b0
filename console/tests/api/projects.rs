//! Projects, members, connections (secrets never shown), topics and the
//! event log.

use serde_json::json;
use sluice_console::store::{SecretKey, Store};
use sluice_tests::kafka::unique_topic;
use sluice_tests::services::kafka_brokers;
use sqlx::Row;

use crate::helpers::{assert_audited, events, spawn_app, warehouse_connection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_and_their_members() {
    let app = spawn_app().await;
    let created = app.project("alpha").await;
    assert_eq!(created["name"], "alpha");
    assert_eq!(created["description"], "a test project");
    let again = app.admin.post("/projects", json!({ "name": "alpha" })).await;
    assert!(again.error(409).contains("already exists"));
    let bad = app.admin.post("/projects", json!({ "name": "-alpha" })).await;
    assert!(bad.error(400).contains("not valid"));
    app.project("beta").await;

    let listed = app.admin.get("/projects").await.expect(200);
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta"], "a global admin sees every project");

    let detail = app.admin.get("/projects/alpha").await.expect(200);
    assert_eq!(detail["role"], "admin");
    assert_eq!(detail["members"], json!([{ "user": "admin", "role": "admin" }]), "the creator is its admin");
    assert_eq!(app.admin.get("/projects/gamma").await.status, 404);

    let bob = app.member("bob", Some("alpha"), "developer").await;
    let detail = app.admin.get("/projects/alpha").await.expect(200);
    assert_eq!(
        detail["members"],
        json!([{ "user": "admin", "role": "admin" }, { "user": "bob", "role": "developer" }])
    );
    let bobs = bob.get("/projects").await.expect(200);
    assert_eq!(bobs.as_array().unwrap().len(), 1, "a member sees only their projects: {bobs}");
    assert_eq!(bob.get("/me").await.expect(200)["projects"], json!([{ "name": "alpha", "role": "developer" }]));
    assert_eq!(bob.get("/projects/alpha").await.expect(200)["role"], "developer");

    // A role change replaces the old one.
    app.admin.put("/projects/alpha/members/bob", json!({ "role": "operator" })).await.expect(204);
    assert_eq!(bob.get("/projects/alpha").await.expect(200)["role"], "operator");
    let bad_role = app.admin.put("/projects/alpha/members/bob", json!({ "role": "owner" })).await;
    assert_eq!(bad_role.status.as_u16(), 400, "{}", bad_role.text);
    assert!(bad_role.json()["error"].as_str().unwrap().contains("owner"), "{}", bad_role.text);
    assert_eq!(app.admin.put("/projects/alpha/members/nobody", json!({ "role": "viewer" })).await.status, 404);

    app.admin.delete("/projects/alpha/members/bob").await.expect(204);
    assert!(bob.get("/projects/alpha").await.error(403).contains("not a member"));
    assert_eq!(app.admin.delete("/projects/alpha/members/bob").await.status, 404);

    let log = events(&app.admin, "alpha", "kind=audit").await;
    assert_audited(&log, "project.create", "admin");
    assert_audited(&log, "member.set", "admin");
    assert_audited(&log, "member.remove", "admin");
    assert_eq!(log[0].0, "member.remove", "newest first: {log:?}");
    assert!(events(&app.admin, "beta", "").await.iter().all(|(a, _, d)| a == "project.create" && d == "beta"));
    assert_eq!(events(&app.admin, "alpha", "limit=1").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_never_show_their_secrets() {
    let app = spawn_app().await;
    app.project("alpha").await;
    let base = "/projects/alpha/connections";
    app.admin
        .put(
            &format!("{base}/warehouse"),
            json!({ "kind": "database", "url": "postgres://sluice:hunter2@db.example:5432/wh", "secret": "s3cr3t-pw" }),
        )
        .await
        .expect(204);
    app.admin
        .put(
            &format!("{base}/events"),
            json!({
                "kind": "kafka", "url": "broker-1.example:9092,broker-2.example:9092",
                "properties": { "security.protocol": "sasl_plaintext", "sasl.password": "kafka-pw" },
            }),
        )
        .await
        .expect(204);

    let listed = app.admin.get(base).await;
    for secret in ["hunter2", "s3cr3t", "kafka-pw"] {
        assert!(!listed.text.contains(secret), "{}", listed.text);
    }
    let stored = stored_connection_columns(&app.store).await;
    for secret in ["hunter2", "s3cr3t", "kafka-pw", "db.example", "broker-1.example"] {
        assert!(!stored.contains(secret), "the metadata database holds connections sealed: {stored}");
    }
    let listed = listed.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let events_conn = &listed[0];
    assert_eq!(events_conn["name"], "events");
    assert_eq!(events_conn["kind"], "kafka");
    assert_eq!(events_conn["url"], "broker-1.example:9092,broker-2.example:9092");
    assert_eq!(events_conn["secret_set"], false);
    assert_eq!(
        events_conn["properties"],
        json!({ "security.protocol": "sasl_plaintext", "sasl.password": "***" }),
        "a password among the properties is hidden too"
    );
    let warehouse = &listed[1];
    assert_eq!(warehouse["url"], "postgres://sluice:***@db.example:5432/wh", "the URL's password is redacted");
    assert_eq!(warehouse["secret_set"], true);

    // Editing the URL on the same host without a secret keeps the stored one.
    app.admin
        .put(
            &format!("{base}/warehouse"),
            json!({ "kind": "database", "url": "postgres://sluice@db.example:5432/wh2" }),
        )
        .await
        .expect(204);
    let listed = app.admin.get(base).await.expect(200);
    assert_eq!(listed[1]["url"], "postgres://sluice@db.example:5432/wh2");
    assert_eq!(listed[1]["secret_set"], true);
    let stored = app.store.project("alpha").await.unwrap().unwrap();
    let stored = app.store.connection(&stored.id, "warehouse").await.unwrap().unwrap();
    assert_eq!(stored.secret.as_deref(), Some("s3cr3t-pw"));

    // Pointing it at another host needs the secret again: a stored secret
    // never follows a connection to a new host (nor a hidden property).
    let moved = app
        .admin
        .put(&format!("{base}/warehouse"), json!({ "kind": "database", "url": "postgres://sluice@db2.example/wh" }))
        .await
        .error(400);
    assert!(
        moved.contains("connection `warehouse` now points at db2.example:5432 instead of db.example:5432")
            && moved.contains("give its secret again"),
        "{moved}"
    );
    let moved = app
        .admin
        .put(
            &format!("{base}/events"),
            json!({ "kind": "kafka", "url": "attacker.example:9092", "properties": { "sasl.password": "***" } }),
        )
        .await
        .error(400);
    assert!(moved.contains("give sasl.password and its secret again"), "{moved}");
    app.admin
        .put(
            &format!("{base}/warehouse"),
            json!({ "kind": "database", "url": "postgres://sluice@db2.example/wh", "secret": "new-pw" }),
        )
        .await
        .expect(204);
    let alpha = app.store.project("alpha").await.unwrap().unwrap();
    let stored = app.store.connection(&alpha.id, "warehouse").await.unwrap().unwrap();
    assert_eq!((stored.url.as_str(), stored.secret.as_deref()), ("postgres://sluice@db2.example/wh", Some("new-pw")));

    // Sending back what the list shows keeps the hidden values.
    let shown = app.admin.get(base).await.expect(200);
    for c in shown.as_array().unwrap() {
        let body = json!({ "kind": c["kind"], "url": c["url"], "properties": c["properties"] });
        app.admin.put(&format!("{base}/{}", c["name"].as_str().unwrap()), body).await.expect(204);
    }
    let project = app.store.project("alpha").await.unwrap().unwrap();
    let events_conn = app.store.connection(&project.id, "events").await.unwrap().unwrap();
    assert!(events_conn.properties.contains("kafka-pw"), "{}", events_conn.properties);
    app.admin
        .put(
            &format!("{base}/warehouse"),
            json!({ "kind": "database", "url": "postgres://sluice:hunter2@db.example/wh", "secret": "s3cr3t-pw" }),
        )
        .await
        .expect(204);
    app.admin
        .put(&format!("{base}/warehouse"), json!({ "kind": "database", "url": "postgres://sluice:***@db.example/wh" }))
        .await
        .expect(204);
    let warehouse = app.store.connection(&project.id, "warehouse").await.unwrap().unwrap();
    assert_eq!(warehouse.url, "postgres://sluice:hunter2@db.example/wh");

    // Mistakes say what to fix.
    let kind = app.admin.put(&format!("{base}/cache"), json!({ "kind": "memcached", "url": "x" })).await;
    assert!(kind.error(400).contains("kafka, database or redis"));
    let scheme = app.admin.put(&format!("{base}/events"), json!({ "kind": "kafka", "url": "kafka://b:9092" })).await;
    assert!(scheme.error(400).contains("without a scheme"));
    let db = app.admin.put(&format!("{base}/wh"), json!({ "kind": "database", "url": "oracle://x" })).await;
    assert!(db.error(400).contains("postgres://"));
    let name =
        app.admin.put(&format!("{base}/bad%20name"), json!({ "kind": "redis", "url": "redis://r.example" })).await;
    assert!(name.error(400).contains("letters, digits"));

    app.admin.delete(&format!("{base}/warehouse")).await.expect(204);
    let listed = app.admin.get(base).await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(app.admin.delete(&format!("{base}/warehouse")).await.error(404).contains("no connection"));

    let log = events(&app.admin, "alpha", "kind=audit").await;
    assert_audited(&log, "connection.put", "admin");
    assert_audited(&log, "connection.delete", "admin");
    assert!(log.iter().all(|(_, _, detail)| !detail.contains("hunter2")), "the audit log redacts too: {log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_of_a_kafka_connection_are_listed_and_created() {
    let brokers = kafka_brokers();
    let app = spawn_app().await;
    app.project("alpha").await;
    app.admin.put("/projects/alpha/connections/events", json!({ "kind": "kafka", "url": brokers })).await.expect(204);
    app.admin
        .put(
            "/projects/alpha/connections/warehouse",
            json!({ "kind": "database", "url": app.sqlite_url("alpha", "w.db") }),
        )
        .await
        .expect(204);
    let topic = unique_topic("api-topics");
    app.admin
        .post("/projects/alpha/connections/events/topics", json!({ "name": topic, "partitions": 3 }))
        .await
        .expect(201);
    let listed = app.admin.get("/projects/alpha/connections/events/topics").await.expect(200);
    let found = listed.as_array().unwrap().iter().find(|t| t["name"] == topic.as_str());
    assert_eq!(found.map(|t| t["partitions"].clone()), Some(json!(3)), "{listed}");

    let bad =
        app.admin.post("/projects/alpha/connections/events/topics", json!({ "name": "a b", "partitions": 1 })).await;
    assert!(bad.error(400).contains("not valid"));
    let many =
        app.admin.post("/projects/alpha/connections/events/topics", json!({ "name": "x", "partitions": 0 })).await;
    assert!(many.error(400).contains("partitions"));
    let not_kafka = app.admin.get("/projects/alpha/connections/warehouse/topics").await;
    assert!(not_kafka.error(400).contains("not kafka"));
    assert_eq!(app.admin.get("/projects/alpha/connections/nope/topics").await.status, 404);
    assert_audited(&events(&app.admin, "alpha", "kind=audit").await, "topic.create", "admin");
}

/// Every stored URL, secret and properties column, as the database holds them.
async fn stored_connection_columns(store: &Store) -> String {
    let rows = sqlx::query("select url, secret, properties from connections").fetch_all(&store.pool).await.unwrap();
    rows.iter()
        .flat_map(|r| ["url", "secret", "properties"].map(|c| r.try_get::<Option<String>, _>(c).unwrap()))
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_open_only_with_the_key_they_were_sealed_with() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("sluice.db").display());
    let key = SecretKey::generate();
    let store = Store::connect(&url, key.clone()).await.unwrap();
    let project = store.create_project("alpha", "").await.unwrap();
    let warehouse = warehouse_connection();

    // A row written before sealing existed (as an older console left it).
    sqlx::query(
        "insert into connections (project_id, name, kind, url, secret, properties, updated_ms, sealed)
         values ($1, 'events', 'kafka', 'broker-1:9092', 'kafka-pw', '{}', 0, 0)",
    )
    .bind(&project.id)
    .execute(&store.pool)
    .await
    .unwrap();
    store.put_connection(&project.id, &warehouse).await.unwrap();
    store.pool.close().await;

    let refused = Store::connect(&url, SecretKey::generate()).await.expect_err("another key");
    assert!(refused.to_string().contains("not the one"), "{refused}");

    let store = Store::connect(&url, key).await.unwrap();
    let stored = stored_connection_columns(&store).await;
    assert!(!stored.contains("kafka-pw") && !stored.contains("broker-1"), "the older row is sealed on start: {stored}");
    for file in ["sluice.db", "sluice.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(!bytes.windows(8).any(|w| w == b"kafka-pw"), "{file} keeps no copy of the older row in freed pages");
    }
    let read = store.connections(&project.id).await.unwrap();
    let read: Vec<_> = read.iter().map(|c| (c.name.as_str(), c.url.as_str(), c.secret.as_deref())).collect();
    assert_eq!(
        read,
        [("events", "broker-1:9092", Some("kafka-pw")), ("warehouse", warehouse.url.as_str(), Some("s3cr3t-pw"))]
    );

    // A sealed value moved onto another connection's row does not open there.
    sqlx::query("update connections set secret = (select secret from connections where name = 'warehouse') where name = 'events'")
        .execute(&store.pool)
        .await
        .unwrap();
    let moved = store.connections(&project.id).await.expect_err("a moved secret");
    assert!(moved.to_string().contains("connection `events`: its stored secret does not open"), "{moved}");
}
