//! The lending reports in four repartition stages on the platform (issue
//! 19): `jobs/lending-report-staged` (records routed, loans by loan id,
//! borrowers by user id, report cells) gives the batch SQL's four tables in
//! PostgreSQL (`sluice_tests::seed_sql::lending_reports`) at parallelism
//! 1, rescaled to 4 and to 2 mid-stream, each group going on from its
//! snapshot.

use serde_json::json;
use sluice_gen::lending::{LOAN_STREAM, Lending, REPAY_STREAM, USER_STREAM};
use sluice_gen::{Event, GenOptions, Scenario};
use sluice_tests::kafka::{create_topic, produce_unbatched, unique_topic};
use sluice_tests::services::{kafka_brokers, postgres_url};
use sqlx::Row;

use crate::helpers::{Client, PATIENCE, component, group_map, spawn_app, wait_for, wait_for_run};

const JOB: &str = "/projects/lending/jobs/reports";
const STREAMS: [&str; 3] = [USER_STREAM, LOAN_STREAM, REPAY_STREAM];

/// The tables: name, key columns, the other columns, column types.
const TABLES: [(&str, &str, &str, &str); 4] = [
    (
        "loan_funnel",
        "reg_date, channel",
        "registered, applied, approved, disbursed, pass_rate, conversion_rate",
        r#"reg_date = "varchar(10)", channel = "varchar(32)", registered = "bigint", applied = "bigint", approved = "bigint", disbursed = "bigint", pass_rate = "decimal(9,4)", conversion_rate = "decimal(9,4)""#,
    ),
    (
        "loan_approval",
        "apply_date, prod_type",
        "applied, auditing, rejected, approved, pass_rate",
        r#"apply_date = "varchar(10)", prod_type = "bigint", applied = "bigint", auditing = "bigint", rejected = "bigint", approved = "bigint", pass_rate = "decimal(9,4)""#,
    ),
    (
        "loan_disbursement",
        "lend_date, prod_type",
        "loans, first_loans, amount",
        r#"lend_date = "varchar(10)", prod_type = "bigint", loans = "bigint", first_loans = "bigint", amount = "decimal(18,2)""#,
    ),
    (
        "loan_vintage",
        "lend_month, mob",
        "loans, overdue_1, overdue_30, overdue_1_rate, overdue_30_rate",
        r#"lend_month = "varchar(7)", mob = "bigint", loans = "bigint", overdue_1 = "bigint", overdue_30 = "bigint", overdue_1_rate = "decimal(9,4)", overdue_30_rate = "decimal(9,4)""#,
    ),
];

fn spec(topics: &[String; 3], tables: &[String; 4]) -> String {
    let times = ["updatetime", "updatetime", "create_time"];
    let mut spec = String::new();
    for ((stream, topic), time) in STREAMS.iter().zip(topics).zip(times) {
        spec.push_str(&format!(
            "[sources.{stream}]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nstart = \"earliest\"\n\
             event_time_field = \"{time}\"\n\n"
        ));
    }
    for ((sink, keys, _, columns), table) in TABLES.iter().zip(tables) {
        let keys: Vec<String> = keys.split(", ").map(|k| format!("{k:?}")).collect();
        spec.push_str(&format!(
            "[sinks.{sink}]\nkind = \"sql\"\nconnection = \"warehouse\"\ntable = \"{table}\"\nprimary_key = [{}]\n\
             create_table = true\ncolumns = {{ {columns} }}\n\n",
            keys.join(", ")
        ));
    }
    spec.push_str("[batch]\nmax_records = 200\n");
    spec
}

/// Each feed's events to partition `key % 4` of its topic (user ids and
/// loan ids are numbers), in generation order.
async fn produce(topics: &[String; 3], events: &[Event]) {
    for (stream, topic) in STREAMS.iter().zip(topics) {
        let messages: Vec<(i32, &str, String)> = events
            .iter()
            .filter(|e| e.stream == *stream)
            .map(|e| {
                let partition = (e.key.parse::<u64>().expect("numeric keys") % 4) as i32;
                (partition, e.key.as_str(), String::from_utf8(e.value.clone()).expect("UTF-8"))
            })
            .collect();
        produce_unbatched(&kafka_brokers(), topic, messages).await;
    }
}

/// The batch SQL's tables over `events`.
async fn expected(events: &[Event]) -> [Vec<Vec<String>>; 4] {
    let values =
        |stream: &str| events.iter().filter(|e| e.stream == stream).map(|e| e.value.as_slice()).collect::<Vec<_>>();
    sluice_tests::seed_sql::lending_reports(&values(USER_STREAM), &values(LOAN_STREAM), &values(REPAY_STREAM)).await
}

/// Waits until the four tables hold `expected`.
async fn tables_are(pool: &sqlx::PgPool, tables: &[String; 4], expected: &[Vec<Vec<String>>; 4]) {
    for (((_, keys, columns, _), table), expected) in TABLES.iter().zip(tables).zip(expected) {
        let all: Vec<String> =
            keys.split(", ").chain(columns.split(", ")).map(|c| format!("coalesce({c}::text, '∅')")).collect();
        let sql = format!("select {} from {table} order by {keys}", all.join(", "));
        wait_for(&format!("{table} to equal the batch SQL ({} rows)", expected.len()), PATIENCE, || async {
            let rows = sqlx::query(&sql).fetch_all(pool).await.map_err(|e| e.to_string())?;
            let rows: Vec<Vec<String>> =
                rows.iter().map(|r| (0..r.len()).map(|i| r.get::<String, _>(i)).collect()).collect();
            if &rows == expected { Ok(()) } else { Err(format!("{} rows", rows.len())) }
        })
        .await;
    }
}

/// Records the first stage read since the run started.
async fn first_stage_read(a: &Client) -> u64 {
    let m = a.get(&format!("{JOB}/metrics")).await.expect(200);
    m["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["stage"] == 0)
        .map(|t| t["records_in"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_lending_reports_give_the_sql_through_rescales() {
    let options =
        GenOptions { seed: 45, count: 4000, late: 0.03, duplicated: 0.03, malformed: 0.0, ..GenOptions::default() };
    let events = Lending.generate(&options);
    let topics = [unique_topic("api-u-user"), unique_topic("api-loan-list"), unique_topic("api-repay-log")];
    for topic in &topics {
        create_topic(&kafka_brokers(), topic, 4).await;
    }
    let pid = std::process::id();
    let tables: [String; 4] = TABLES.map(|(name, ..)| format!("staged_{name}_{pid}"));
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("PostgreSQL");

    let app = spawn_app().await;
    let a = &app.admin;
    app.project("lending").await;
    a.put("/projects/lending/connections/events", json!({ "kind": "kafka", "url": kafka_brokers() })).await.expect(204);
    a.put("/projects/lending/connections/warehouse", json!({ "kind": "database", "url": postgres_url() }))
        .await
        .expect(204);
    a.post("/projects/lending/jobs", json!({ "name": "reports" })).await.expect(201);
    let validated = a.post_bytes("/validate", component("lending_report_staged")).await.expect(200);
    assert_eq!(validated["stages"], json!(["route", "loans", "borrowers", "cells"]), "{validated}");
    a.post_bytes(&format!("{JOB}/versions"), component("lending_report_staged")).await.expect(201);
    a.put(&format!("{JOB}/deployment"), json!({ "spec": spec(&topics, &tables), "parallelism": 1 })).await.expect(200);

    // Parallelism 1: one task runs the four stages' four shards.
    let (first, rest) = events.split_at(2000);
    let (second, third) = rest.split_at(1000);
    produce(&topics, first).await;
    a.post(&format!("{JOB}/start"), json!({ "restore": "none" })).await.expect(201);
    tables_are(&pool, &tables, &expected(first).await).await;
    let map = wait_for("sixteen groups in one task", PATIENCE, || group_map(a, JOB, 16)).await;
    assert!(map.iter().all(|(task, _, _)| *task == 0), "{map:?}");

    // Rescale 1 -> 4 mid-stream: each group restores its own snapshot.
    a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 4 })).await.expect(200);
    wait_for_run(a, "lending", "reports", "running").await;
    let map = wait_for("sixteen groups in four tasks", PATIENCE, || group_map(a, JOB, 16)).await;
    let expected_map: Vec<(u64, u64, u64)> =
        (0..4).flat_map(|stage| (0..4).map(move |shard| ((stage * 4 + shard) % 4, stage, shard))).collect();
    assert_eq!(map, expected_map);
    produce(&topics, second).await;
    tables_are(&pool, &tables, &expected(&events[..3000]).await).await;
    assert_eq!(first_stage_read(a).await, second.len() as u64, "the first stage went on from its snapshots");

    // Rescale 4 -> 2, then the rest.
    a.post(&format!("{JOB}/rescale"), json!({ "parallelism": 2 })).await.expect(200);
    wait_for_run(a, "lending", "reports", "running").await;
    let map = wait_for("sixteen groups in two tasks", PATIENCE, || group_map(a, JOB, 16)).await;
    assert!(map.iter().all(|(task, _, _)| *task < 2), "{map:?}");
    produce(&topics, third).await;
    tables_are(&pool, &tables, &expected(&events).await).await;
    assert_eq!(first_stage_read(a).await, third.len() as u64, "the first stage went on from its snapshots");

    a.post(&format!("{JOB}/stop"), json!({ "snapshot": false })).await.expect(200);
    for table in &tables {
        let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    }
}
