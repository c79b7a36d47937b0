//! Debug runs over pasted JSON lines and previews of live sources: the
//! job's rows and dead letters come back, and no sink is written.

use serde_json::json;
use sluice_tests::kafka::{create_topic, produce_unbatched, unique_topic};
use sluice_tests::services::kafka_brokers;

use crate::fixtures::{expected_hs_order, file_spec, hs_order, kafka_spec, orders};
use crate::helpers::{assert_audited, component, events, spawn_app};

const JOB: &str = "/projects/dbg/jobs/hourly";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_run_returns_rows_and_dead_letters_and_writes_nothing() {
    let app = spawn_app().await;
    app.project("dbg").await;
    let a = &app.admin;
    let warehouse = app.sqlite_url("dbg", "warehouse.db");
    a.put("/projects/dbg/connections/warehouse", json!({ "kind": "database", "url": warehouse })).await.expect(204);
    a.post("/projects/dbg/jobs", json!({ "name": "hourly" })).await.expect(201);
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await.expect(201);
    let spec = file_spec(&app.project_file("dbg", "never-read.jsonl"));
    let nothing = a.post(&format!("{JOB}/debug"), json!({ "records": "{}" })).await.error(400);
    assert!(nothing.contains("no deployment yet") && nothing.contains("spec"), "{nothing}");
    a.put(&format!("{JOB}/deployment"), json!({ "spec": spec, "parameters": { "since_ms": "0" } })).await.expect(200);

    // Users 1, 2, 3, then user 1 again an hour later: its premium moves.
    let mut sample = orders(0, 3, 3);
    let mut later = orders(61, 62, 3)[0].clone();
    later.id = sample[0].id;
    later.tel = sample[0].tel.clone();
    sample.push(later);
    let mut lines: Vec<String> = sample.iter().map(|o| o.json()).collect();
    lines.insert(2, "this is not an order".to_owned());
    let answer = a.post(&format!("{JOB}/debug"), json!({ "records": lines.join("\n") + "\n\n" })).await.expect(200);

    assert_eq!(answer["records_in"], 5, "{answer}");
    let rows = answer["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["sink"] == "hs_order"), "{answer}");
    // The last row per hour is what the table would hold.
    let mut table = std::collections::BTreeMap::new();
    for r in rows {
        let v = &r["value"];
        let hour = v["biz_date"].as_str().unwrap().to_owned();
        match r["op"].as_str().unwrap() {
            "upsert" => {
                let cents = (v["total_premium"].as_f64().unwrap() * 100.0).round() as i64;
                table
                    .insert(hour, (cents, v["policy_cnt"].as_i64().unwrap(), v["policy_holder_cnt"].as_i64().unwrap()));
            }
            "delete" => {
                table.remove(&hour);
            }
            other => panic!("op {other}"),
        }
    }
    assert_eq!(table, expected_hs_order(&sample), "{answer}");

    let dead = answer["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{answer}");
    assert_eq!(dead[0]["value"], "this is not an order");
    assert_eq!(dead[0]["offset"], 2, "the line's position");
    assert!(dead[0]["reason"].as_str().unwrap().to_lowercase().contains("json"), "the reason: {}", dead[0]);

    assert!(hs_order(&warehouse).await.is_empty(), "a debug run writes nothing to the sink table");
    assert!(!app.project_file("dbg", "never-read.jsonl").exists());

    // A spec and parameters of the request's own, on records of a named source.
    let custom = a
        .post(
            &format!("{JOB}/debug"),
            json!({ "version": 1, "spec": spec, "source": "user_order", "records": sample[0].json(), "parameters": { "since_ms": "9999999999999" } }),
        )
        .await
        .expect(200);
    assert_eq!(
        (custom["records_in"].as_u64(), custom["rows"].as_array().unwrap().len()),
        (Some(1), 0),
        "filtered: {custom}"
    );

    let wrong_source = a.post(&format!("{JOB}/debug"), json!({ "records": "{}", "source": "orders" })).await.error(400);
    assert!(wrong_source.contains("no source `orders`") && wrong_source.contains("user_order"), "{wrong_source}");
    let both = a.post(&format!("{JOB}/debug"), json!({ "records": "{}", "from_topic": 3 })).await.error(400);
    assert!(both.contains("either `records`"), "{both}");
    let bad_spec = a.post(&format!("{JOB}/debug"), json!({ "records": "{}", "spec": "[sources.x]\nkind = 1" })).await;
    assert!(bad_spec.error(400).contains("spec"));

    assert_audited(&events(a, "dbg", "job=hourly&kind=audit").await, "job.debug", "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_reads_the_first_records_of_a_kafka_deployment() {
    let brokers = kafka_brokers();
    let topic = unique_topic("api-preview");
    create_topic(&brokers, &topic, 1).await;
    let data = orders(0, 30, 10);
    produce_unbatched(&brokers, &topic, data.iter().map(|o| (0, "order", o.json()))).await;

    let app = spawn_app().await;
    app.project("dbg").await;
    let a = &app.admin;
    let warehouse = app.sqlite_url("dbg", "warehouse.db");
    a.put("/projects/dbg/connections/events", json!({ "kind": "kafka", "url": brokers })).await.expect(204);
    a.put("/projects/dbg/connections/warehouse", json!({ "kind": "database", "url": warehouse })).await.expect(204);
    a.post("/projects/dbg/jobs", json!({ "name": "hourly" })).await.expect(201);
    a.post_bytes(&format!("{JOB}/versions"), component("hourly_premium")).await.expect(201);
    a.put(&format!("{JOB}/deployment"), json!({ "spec": kafka_spec(&topic), "parameters": { "since_ms": "0" } }))
        .await
        .expect(200);

    let preview = a.post(&format!("{JOB}/preview"), json!({ "limit": 10 })).await.expect(200);
    assert_eq!(preview["records_in"], 10, "{preview}");
    let rows = preview["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "{preview}");
    let first = &rows[0]["value"];
    assert_eq!(first["biz_date"], "2024031500", "{preview}");
    assert!(preview["dead_letters"].as_array().unwrap().is_empty());

    let debug = a.post(&format!("{JOB}/debug"), json!({ "from_topic": 30 })).await.expect(200);
    assert_eq!(debug["records_in"], 30, "{debug}");
    let mut table = std::collections::BTreeMap::new();
    for r in debug["rows"].as_array().unwrap() {
        let v = &r["value"];
        let hour = v["biz_date"].as_str().unwrap().to_owned();
        if r["op"] == "delete" {
            table.remove(&hour);
        } else {
            let cents = (v["total_premium"].as_f64().unwrap() * 100.0).round() as i64;
            table.insert(hour, (cents, v["policy_cnt"].as_i64().unwrap(), v["policy_holder_cnt"].as_i64().unwrap()));
        }
    }
    assert_eq!(table, expected_hs_order(&data));
    assert!(hs_order(&warehouse).await.is_empty(), "a preview writes nothing to the sink table");
    assert_audited(&events(a, "dbg", "job=hourly").await, "job.preview", "admin");
}
