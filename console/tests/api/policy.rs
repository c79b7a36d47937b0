//! Multi-tenant rules (issue 16) through the API: spec text never becomes
//! SQL or client settings, connections point only where the operator
//! allows (SQLite inside the project's folder), secrets never follow a
//! connection elsewhere, and viewers see no secret.

use serde_json::json;
use sluice_console::store::{Connection, Deployment, now_ms};
use sluice_console::worker::WorkerOptions;

use crate::helpers::{TestApp, component, spawn_app, spawn_app_with, wait_for_run};

/// Project `p` with `dev` as a developer, a warehouse in its folder and
/// job `j` (the forward job) with a version.
async fn project(app: &TestApp) -> crate::helpers::Client {
    app.project("p").await;
    let dev = app.member("dev", Some("p"), "developer").await;
    let a = &app.admin;
    a.put("/projects/p/connections/warehouse", json!({ "kind": "database", "url": "sqlite:warehouse.db?mode=rwc" }))
        .await
        .expect(204);
    a.post("/projects/p/jobs", json!({ "name": "j" })).await.expect(201);
    a.post_bytes("/projects/p/jobs/j/versions", component("forward")).await.expect(201);
    dev
}

fn spec_with_column_type(column_type: &str, metadata: &std::path::Path) -> String {
    let column_type = column_type.replace("{metadata}", &metadata.display().to_string());
    format!(
        "[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n\
         [sinks.out]\nkind = \"sql\"\nconnection = \"warehouse\"\ntable = \"notes\"\nprimary_key = [\"id\"]\n\
         create_table = true\ncolumns = {{ id = \"bigint\", note = {} }}\n",
        toml::Value::String(column_type)
    )
}

const ATTACK: &str = "text); ATTACH DATABASE '{metadata}' AS m; UPDATE m.users SET is_admin = 1; --";

/// Issue 16's attack as a developer: refused at deploy with the accepted
/// types; a deployment stored before the check fails at start with the
/// same message; the developer is not an admin afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_column_type_never_reaches_the_database() {
    let app = spawn_app().await;
    let dev = project(&app).await;
    std::fs::write(app.project_file("p", "in.jsonl"), "{\"id\": 1, \"note\": \"x\"}\n").unwrap();
    let spec = spec_with_column_type(ATTACK, &app.path("sluice.db"));
    let refused = dev.put("/projects/p/jobs/j/deployment", json!({ "spec": spec })).await.error(400);
    assert!(
        refused.contains("the spec is not valid")
            && refused.contains("column `note`: column type `text); ATTACH DATABASE")
            && refused.contains("is not an accepted column type")
            && refused.contains("numeric(P,S)"),
        "{refused}"
    );

    // Stored by an older console: the run fails before any SQL.
    let job = app.store.job(&app.store.project("p").await.unwrap().unwrap().id, "j").await.unwrap().unwrap();
    let version = app.store.versions(&job.id).await.unwrap().remove(0);
    let deployment = Deployment {
        job_id: job.id.clone(),
        version_id: version.id.clone(),
        spec,
        parameters: Default::default(),
        parallelism: 1,
        memory_mb: None,
        cpu_ms: None,
        schedule: None,
        updated_ms: now_ms(),
    };
    app.store.put_deployment(&deployment).await.unwrap();
    let failed = app.admin.post("/projects/p/jobs/j/start", json!({ "restore": "none" })).await.error(400);
    assert!(failed.contains("is not an accepted column type"), "{failed}");
    assert_eq!(dev.get("/me").await.expect(200)["user"]["is_admin"], false, "the developer is not an admin");
}

/// SQLite connections are files in the project's folder: the metadata
/// database, other projects' folders, absolute paths elsewhere, `..`,
/// links out and in-memory databases are refused, at create and (for a
/// connection stored by an older console) at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_stay_in_the_project_folder() {
    let app = spawn_app().await;
    project(&app).await;
    app.project("other").await;
    let a = &app.admin;
    let metadata = format!("sqlite://{}?mode=rwc", app.path("sluice.db").display());
    let other = format!("sqlite://{}", app.project_file("other", "w.db").display());
    std::os::unix::fs::symlink(app.path("sluice.db"), app.project_file("p", "link.db")).unwrap();
    for url in
        [metadata.as_str(), &other, "sqlite:../other/w.db", "sqlite:/etc/passwd", "sqlite:link.db", "sqlite::memory:"]
    {
        let refused = a.put("/projects/p/connections/db", json!({ "kind": "database", "url": url })).await.error(400);
        assert!(refused.contains("a SQLite connection is a file in the project's folder"), "{url}: {refused}");
    }
    a.put("/projects/p/connections/db", json!({ "kind": "database", "url": "sqlite:sub/w.db" })).await.expect(204);

    let project = app.store.project("p").await.unwrap().unwrap();
    let stored = Connection {
        name: "warehouse".into(),
        kind: "database".into(),
        url: metadata.clone(),
        secret: None,
        properties: "{}".into(),
        updated_ms: now_ms(),
    };
    app.store.put_connection(&project.id, &stored).await.unwrap();
    std::fs::write(app.project_file("p", "in.jsonl"), "{\"id\": 1, \"note\": \"x\"}\n").unwrap();
    a.put("/projects/p/jobs/j/deployment", json!({ "spec": spec_with_column_type("text", &app.path("x")) }))
        .await
        .expect(200);
    let failed = a.post("/projects/p/jobs/j/start", json!({ "restore": "none" })).await.error(400);
    assert!(failed.contains("connection `warehouse`") && failed.contains("project's folder"), "{failed}");
}

/// With no `--allow-hosts`, connections may not point at this machine or
/// its link (cloud metadata); with it, only where it says. The platform's
/// own broker is allowed either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_point_only_where_the_operator_allows() {
    let app = spawn_app_with(WorkerOptions::default()).await;
    app.project("p").await;
    let a = &app.admin;
    let cases = [
        ("database", "postgres://postgres@127.0.0.1:5432/test"),
        ("database", "mysql://root@localhost:3306/test"),
        ("database", "postgres://u@169.254.169.254/db"),
        ("redis", "redis://127.0.0.1:6379"),
        ("kafka", "127.0.0.1:19092"),
        ("kafka", "[::1]:9092"),
    ];
    for (kind, url) in cases {
        let refused = a.put("/projects/p/connections/c", json!({ "kind": kind, "url": url })).await.error(400);
        assert!(refused.contains("is not allowed") && refused.contains("--allow-hosts"), "{url}: {refused}");
    }
    let refused = a
        .put(
            "/projects/p/connections/c",
            json!({ "kind": "database", "url": "postgres://u@203.0.113.9/db?host=/run/postgresql" }),
        )
        .await
        .error(400);
    assert!(refused.contains("url parameter `host` is not allowed"), "{refused}");
    a.put("/projects/p/connections/c", json!({ "kind": "database", "url": "postgres://u@203.0.113.9/db" }))
        .await
        .expect(204);

    app.worker.rules.allow_platform_brokers("127.0.0.1:19092");
    a.put("/projects/p/connections/c", json!({ "kind": "kafka", "url": "127.0.0.1:19092" })).await.expect(204);
}

/// Kafka settings that read files, load code or point elsewhere are not a
/// connection's (unless the operator allows them by name); a spec may only
/// tune.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_connections_and_specs_set_only_allowed_settings() {
    let app = spawn_app().await;
    let dev = project(&app).await;
    let a = &app.admin;
    for (key, value) in [
        ("plugin.library.paths", "/tmp/evil.so"),
        ("ssl.ca.location", "/etc/sluice/secret.key"),
        ("sasl.kerberos.kinit.cmd", "touch /tmp/pwned"),
        ("bootstrap.servers", "attacker.example:9092"),
        ("group.id", "payments"),
    ] {
        let body = json!({ "kind": "kafka", "url": "127.0.0.1:19092", "properties": { key: value } });
        let refused = a.put("/projects/p/connections/events", body).await.error(400);
        assert!(refused.contains(&format!("Kafka property `{key}` is not allowed on a connection")), "{refused}");
    }
    let body = json!({ "kind": "kafka", "url": "127.0.0.1:19092",
        "properties": { "security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN", "linger.ms": "5" } });
    a.put("/projects/p/connections/events", body).await.expect(204);

    for property in ["bootstrap.servers", "security.protocol", "sasl.password", "plugin.library.paths", "group.id"] {
        let spec = format!(
            "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"t\"\n\
             properties = {{ \"{property}\" = \"x\" }}\n[sinks.out]\nkind = \"memory\"\n"
        );
        let refused = dev.put("/projects/p/jobs/j/deployment", json!({ "spec": spec })).await.error(400);
        assert!(refused.contains(&format!("Kafka property `{property}` cannot be set in a spec")), "{refused}");
    }
}

/// Viewers never see a secret: not a private key or OAuth configuration
/// among the properties, nor a password in a URL's user info or query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_see_no_secret_of_a_connection() {
    let app = spawn_app().await;
    app.project("p").await;
    let viewer = app.member("viewer", Some("p"), "viewer").await;
    let a = &app.admin;
    let key = "-----BEGIN PRIVATE KEY-----\nMIIsecret\n-----END PRIVATE KEY-----";
    a.put(
        "/projects/p/connections/events",
        json!({ "kind": "kafka", "url": "broker.example:9093", "properties": {
            "ssl.key.pem": key, "sasl.oauthbearer.config": "clientSecret=oauth-secret", "ssl.certificate.pem": "CERT" } }),
    )
    .await
    .expect(204);
    a.put(
        "/projects/p/connections/db",
        json!({ "kind": "database", "url": "postgres://u:url-secret@db.example/wh?sslmode=require&password=query-secret" }),
    )
    .await
    .expect(204);
    let listed = viewer.get("/projects/p/connections").await;
    for secret in ["MIIsecret", "oauth-secret", "url-secret", "query-secret"] {
        assert!(!listed.text.contains(secret), "{secret} shown: {}", listed.text);
    }
    let listed = listed.expect(200);
    assert_eq!(listed[1]["properties"]["ssl.key.pem"], "***");
    assert_eq!(listed[1]["properties"]["sasl.oauthbearer.config"], "***");
    assert_eq!(listed[1]["properties"]["ssl.certificate.pem"], "CERT", "a certificate is public");
    assert_eq!(listed[0]["url"], "postgres://u:***@db.example/wh?sslmode=require&password=***");
}

/// A run whose connection points where the rules forbid fails at start
/// with the reason, even when the connection was stored before the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_connections_are_checked_again_when_a_job_starts() {
    let app = spawn_app_with(WorkerOptions::default()).await;
    app.project("p").await;
    let a = &app.admin;
    a.post("/projects/p/jobs", json!({ "name": "j" })).await.expect(201);
    a.post_bytes("/projects/p/jobs/j/versions", component("forward")).await.expect(201);
    let project = app.store.project("p").await.unwrap().unwrap();
    let stored = Connection {
        name: "warehouse".into(),
        kind: "database".into(),
        url: "postgres://postgres@127.0.0.1:5432/test".into(),
        secret: None,
        properties: "{}".into(),
        updated_ms: now_ms(),
    };
    app.store.put_connection(&project.id, &stored).await.unwrap();
    std::fs::write(app.project_file("p", "in.jsonl"), "{\"id\": 1}\n").unwrap();
    let spec = "[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n[sinks.out]\nkind = \"sql\"\n\
                connection = \"warehouse\"\ntable = \"t\"\nprimary_key = [\"id\"]\n";
    a.put("/projects/p/jobs/j/deployment", json!({ "spec": spec })).await.expect(200);
    let failed = a.post("/projects/p/jobs/j/start", json!({ "restore": "none" })).await.error(400);
    assert!(failed.contains("127.0.0.1") && failed.contains("--allow-hosts"), "{failed}");
    let run = wait_for_run(a, "p", "j", "failed").await;
    assert!(run["error"].as_str().unwrap_or_default().contains("--allow-hosts"), "{run}");
}
