//! Issue 16, item 3: connections and file paths reach neither the platform
//! itself nor another project. A developer may not add connections at all;
//! project a's admin may, but the operator's policy (the default
//! `--allow-hosts`: no loopback, link-local or cloud metadata addresses;
//! SQLite files only in the project's folder) refuses every one that
//! points at the console's own files, project b's folder or this machine.
//! A spec's file paths are held to the project's folder the same way.

use serde_json::json;

use crate::platform::{Platform, deployment};

/// SQLite URLs that name the metadata database or project b's warehouse,
/// spelled in every way the connector would still open them.
fn sqlite_escapes(platform: &Platform) -> Vec<String> {
    let metadata = platform.path("sluice.db").display().to_string();
    let a_folder = platform.path("files/a").display().to_string();
    vec![
        format!("sqlite://{metadata}?mode=rw"),
        format!("sqlite:{metadata}"),
        "sqlite:../../sluice.db".into(),
        "sqlite:../b/b-warehouse.db".into(),
        format!("sqlite://{a_folder}/../b/b-warehouse.db"),
        // sqlx decodes `%XX` in a SQLite path: `%2e%2e` is `..`.
        "sqlite:%2e%2e/b/b-warehouse.db".into(),
        "sqlite:%2E%2E%2F%2E%2E%2Fsluice.db?mode=rw".into(),
        format!("sqlite://{a_folder}/%2e%2e/%2e%2e/sluice.db"),
        "sqlite:/etc/passwd".into(),
        "sqlite::memory:".into(),
        "sqlite:w.db?mode=memory&cache=shared".into(),
        "sqlite:w.db?vfs=unix-none".into(),
    ]
}

/// Hosts of this machine, its link and the cloud's metadata service,
/// refused by the default policy.
const INTERNAL_HOSTS: [(&str, &str); 16] = [
    ("database", "postgres://postgres@127.0.0.1:5432/test"),
    ("database", "postgres://postgres@localhost/test"),
    ("database", "mysql://root@[::1]:3306/test"),
    ("database", "mysql://root@0.0.0.0:3306/test"),
    ("database", "postgres://u@169.254.169.254/latest"),
    ("database", "postgres://u@[fd00:ec2::254]/latest"),
    ("redis", "redis://100.100.100.200"),
    ("database", "postgres://u@[::ffff:127.0.0.1]/db"),
    ("database", "postgres://u@2130706433/db"),
    ("database", "postgres://u@0177.0.0.1/db"),
    ("database", "postgres://u@127.1/db"),
    ("redis", "redis://127.0.0.1:6379"),
    ("redis", "redis://localhost"),
    ("kafka", "127.0.0.1:9092"),
    ("kafka", "203.0.113.9:9092,localhost:9092"),
    ("kafka", "[fe80::1]:9092"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_of_project_a_reach_neither_the_platform_nor_project_b() {
    let platform = Platform::start().await;
    let b_before = platform.b_ledger().await;
    let connections_before = platform.a_admin.get("/projects/a/connections").await.expect(200);

    // A developer adds no connection, wherever it points.
    for url in ["sqlite:../b/b-warehouse.db", "sqlite:mine.db"] {
        let body = json!({ "kind": "database", "url": url });
        let refused = platform.dev.put("/projects/a/connections/stolen", body).await;
        refused.refused(403, &["this needs the admin role in project `a`; you are developer"]);
    }
    let body = json!({ "kind": "redis", "url": "redis://127.0.0.1:6379" });
    let refused = platform.dev.put("/projects/a/connections/stolen", body).await;
    refused.refused(403, &["needs the admin role"]);

    // Project a's admin is held to the operator's policy.
    let a_admin = &platform.a_admin;
    for url in sqlite_escapes(&platform) {
        let body = json!({ "kind": "database", "url": url });
        let message = a_admin.put("/projects/a/connections/stolen", body).await.error(400);
        assert!(message.contains("a SQLite connection is a file in the project's folder"), "{url}: {message}");
    }
    for (kind, url) in INTERNAL_HOSTS {
        let refused = a_admin.put("/projects/a/connections/stolen", json!({ "kind": kind, "url": url })).await;
        let message = refused.error(400);
        let policy = message.contains("is not allowed") && message.contains("--allow-hosts");
        assert!(policy || message.contains("cannot resolve host"), "{url}: {message}");
    }
    // Parameters that would point a database elsewhere or read server files.
    for url in ["postgres://u@203.0.113.9/db?host=/run/postgresql", "postgres://u@203.0.113.9/db?sslrootcert=/etc/x"] {
        let refused = a_admin.put("/projects/a/connections/stolen", json!({ "kind": "database", "url": url })).await;
        refused.refused(400, &["is not allowed: it could point the connection elsewhere or read files"]);
    }
    // The same policy lets the project use its own folder and other hosts.
    let own = json!({ "kind": "database", "url": "sqlite:sub/own.db?mode=rwc" });
    a_admin.put("/projects/a/connections/own", own).await.expect(204);
    let elsewhere = json!({ "kind": "database", "url": "postgres://u@203.0.113.9/db" });
    a_admin.put("/projects/a/connections/elsewhere", elsewhere).await.expect(204);

    let after = a_admin.get("/projects/a/connections").await.expect(200);
    let names: Vec<&str> = after.as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(!names.contains(&"stolen"), "no refused connection was saved: {after}");
    assert_eq!(names.len(), connections_before.as_array().unwrap().len() + 2, "{after}");
    platform.assert_dev_has_no_more_power().await;
    platform.assert_b_kept_producing(&b_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_paths_in_a_spec_stay_in_project_a_s_folder() {
    let platform = Platform::start().await;
    let b_before = platform.b_ledger().await;
    let metadata = platform.path("sluice.db").display().to_string();
    let key = platform.path("secret.key").display().to_string();
    let escapes = [metadata.as_str(), key.as_str(), "../b/b-warehouse.db", "../../sluice.db", "sub/../../b/x", "-"];
    let inside = "a console job's files must be relative paths inside the project's file area";
    for path in escapes {
        let quoted = toml::Value::String(path.to_owned()).to_string();
        // Read it: a live debug run would hand its lines back as records.
        let read = format!("[sources.in]\nkind = \"file\"\npath = {quoted}\n\n[sinks.out]\nkind = \"memory\"\n");
        let debug = platform.dev.post("/projects/a/jobs/j/debug", json!({ "spec": read, "from_topic": 100 })).await;
        debug.refused(400, &[inside]);
        platform.dev.put("/projects/a/jobs/j/deployment", deployment(&read)).await.refused(400, &[inside]);
        // Write it, or seed a dimension from it.
        let write = format!(
            "[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n\n[sinks.out]\nkind = \"file\"\npath = {quoted}\n"
        );
        platform.dev.put("/projects/a/jobs/j/deployment", deployment(&write)).await.refused(400, &[inside]);
        let seed = format!(
            "[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n\n[sinks.out]\nkind = \"memory\"\n\n\
             [dimensions.d]\nkind = \"memory\"\npath = {quoted}\n"
        );
        let debug = platform.dev.post("/projects/a/jobs/j/debug", json!({ "spec": seed, "records": "{}" })).await;
        debug.refused(400, &[inside]);
    }
    platform.assert_dev_has_no_more_power().await;
    platform.assert_b_kept_producing(&b_before).await;
}
