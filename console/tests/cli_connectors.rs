//! `sluice run` against the real services: a seed job from its Kafka spec
//! (jobs/last-page/kafka.toml) with `--connection` overrides, and the errors
//! for connections that are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::kafka_brokers;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("console/ is in the repo").to_path_buf()
}

fn sluice(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().expect("sluice runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn last_page_runs_from_kafka_into_sqlite_with_connection_overrides() {
    let brokers = kafka_brokers();
    let topic = unique_topic("cli-user-log");
    create_topic(&brokers, &topic, 1).await;
    let views = [
        (0, "1", r#"{"account_id":"acc-1","device_id":"d1","bury_point_type":"page","page_name":"home"}"#),
        (0, "2", r#"{"account_id":null,"device_id":"d9","bury_point_type":"page","page_name":"home"}"#),
        (0, "1", r#"{"account_id":"acc-1","device_id":"d1","bury_point_type":"page","page_name":"claims"}"#),
        (0, "3", r#"{"account_id":"acc-2","device_id":"d2","bury_point_type":"click","page_name":"pay"}"#),
    ];
    produce(&brokers, &topic, views.iter().map(|(p, k, v)| (*p, *k, v.to_string()))).await;

    // The example spec, reading this test's topic to its end.
    let tmp = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(repo().join("jobs/last-page/kafka.toml"))
        .unwrap()
        .replace("topic = \"user_log\"", &format!("topic = \"{topic}\"\nbounded = true"));
    let spec_path = tmp.path().join("kafka.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let component = sluice_tests::wasm("last_page");
    let db = tmp.path().join("warehouse.db");
    let out = sluice(&[
        "run",
        "--quiet",
        "--spec",
        spec_path.to_str().unwrap(),
        "--component",
        component.to_str().unwrap(),
        "--connection",
        &format!("events={brokers}"),
        "--connection",
        &format!("warehouse=sqlite:{}", db.display()),
    ]);
    assert!(out.status.success(), "run: {}", text(&out.stderr));

    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display())).await.unwrap();
    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as("select account_id, device_id, bury_point_type, page_name from user_last_log order by 1, 2")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected = [("acc-1", "d1", "page", "claims"), ("acc-2", "d2", "click", "pay")]
        .map(|(a, b, c, d)| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned()));
    assert_eq!(rows, expected);
}

#[test]
fn a_missing_connection_says_how_to_declare_it() {
    let component = sluice_tests::wasm("last_page");
    let spec = repo().join("jobs/last-page/kafka.toml");
    let out = sluice(&["run", "--quiet", "--spec", spec.to_str().unwrap(), "--component", component.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("`events` is not in the connection registry") && err.contains("--connection events="),
        "{err}"
    );
}
