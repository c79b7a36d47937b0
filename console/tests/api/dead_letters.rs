//! Dead letters are kept in the metadata store (a restart or the end of a
//! run loses none), at most the operator's bound per job with a count of
//! those dropped; rows a SQL sink cannot write are dead letters too.

use serde_json::json;
use sluice_console::worker::WorkerOptions;
use sqlx::Row;

use crate::helpers::{component, spawn_app_with, test_options, wait_for_run};

/// The forward job writes each record to a SQLite table with a bigint
/// column: four rows do not fit, the bound keeps three, the run finishes
/// and the good rows are in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_sink_refuses_are_kept_durably_and_bounded() {
    let app = spawn_app_with(WorkerOptions { dead_letters_kept: 3, ..test_options() }).await;
    app.project("dl").await;
    let a = &app.admin;
    a.put("/projects/dl/connections/warehouse", json!({ "kind": "database", "url": "sqlite:w.db?mode=rwc" }))
        .await
        .expect(204);
    a.post("/projects/dl/jobs", json!({ "name": "fwd" })).await.expect(201);
    a.post_bytes("/projects/dl/jobs/fwd/versions", component("forward")).await.expect(201);
    let lines: Vec<String> = [json!(1), json!("x"), json!("y"), json!("z"), json!("w"), json!(6)]
        .iter()
        .enumerate()
        .map(|(i, n)| json!({ "id": i + 1, "n": n }).to_string())
        .collect();
    std::fs::write(app.project_file("dl", "in.jsonl"), lines.join("\n") + "\n").unwrap();
    let spec = "[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n\
                [sinks.out]\nkind = \"sql\"\nconnection = \"warehouse\"\ntable = \"t\"\nprimary_key = [\"id\"]\n\
                create_table = true\ncolumns = { id = \"bigint\", n = \"bigint\" }\n";
    a.put("/projects/dl/jobs/fwd/deployment", json!({ "spec": spec })).await.expect(200);
    a.post("/projects/dl/jobs/fwd/start", json!({ "restore": "none" })).await.expect(201);
    wait_for_run(a, "dl", "fwd", "finished").await;

    let exceptions = a.get("/projects/dl/jobs/fwd/exceptions").await.expect(200);
    assert_eq!(
        (exceptions["dead_letters_kept"].as_i64(), exceptions["dead_letters_dropped"].as_i64()),
        (Some(3), Some(1))
    );
    let dead = exceptions["dead_letters"].as_array().unwrap();
    let offsets: Vec<i64> = dead.iter().map(|d| d["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, [4, 3, 2], "the newest kept, newest first: {exceptions}");
    for d in dead {
        assert_eq!((d["sink"].as_str(), d["source"].as_str()), (Some("out"), Some("in")), "{d}");
        assert!(
            d["reason"].as_str().unwrap().contains("column `n`")
                && d["reason"].as_str().unwrap().contains("is not an integer"),
            "{d}"
        );
    }

    let url = format!("sqlite://{}", app.project_file("dl", "w.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let ids: Vec<i64> =
        sqlx::query("SELECT id FROM t ORDER BY id").fetch_all(&pool).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 6], "the rows that fit are written");
}
