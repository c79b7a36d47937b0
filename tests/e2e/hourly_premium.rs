//! Hourly premium totals with last-value de-duplication per user.

use std::time::Duration;

use sluice_gen::insurance::InsuranceOrders;
use sluice_gen::{GenOptions, Scenario};
use sluice_runtime::job::stages::StageTopics;
use sluice_runtime::job::{JobSpec, TaskBuilder};
use sluice_tests::kafka::{create_topic, read_topic, unique_topic};
use sluice_tests::services::kafka_brokers;
use sluice_tests::{engine, load};

use crate::feeds::{keyed_json, run_stage, stream};
use crate::harness::{Db, connections, drop_tables, run_job, text_rows, topic_with, unique_table};

/// Orders (`sluice gen insurance-orders`) over six hours: 300 users order
/// ten times each on average (the last order counts), order numbers and
/// phones repeat (distinct counts); duplicates and late orders included,
/// nothing malformed (the test expects no dead letters).
fn orders() -> Vec<(u64, serde_json::Value)> {
    let options = GenOptions {
        seed: 11,
        count: 3000,
        step_ms: 6 * 3_600_000 / 3000,
        late: 0.02,
        duplicated: 0.02,
        malformed: 0.0,
        ..GenOptions::default()
    };
    let events = InsuranceOrders.generate(&options);
    keyed_json(&stream(&events, "user_order"))
}

/// The job over `topic` into table `sink` (connections `events`, `warehouse`).
fn spec(topic: &str, sink: &str) -> String {
    format!(
        r#"
        name = "hourly_premium"
        component = "unused.wasm"
        [parameters]
        utc_offset_minutes = "480"
        since_ms = "0"
        [sources.user_order]
        kind = "kafka"
        connection = "events"
        topic = "{topic}"
        bounded = true
        event_time_field = "gmt_modified"
        [sinks.hs_order]
        kind = "sql"
        connection = "warehouse"
        table = "{sink}"
        primary_key = ["biz_date"]
        create_table = true
        batch_size = 500
        columns = {{ biz_date = "varchar(10)", total_premium = "decimal(18,2)", policy_cnt = "bigint", policy_holder_cnt = "bigint" }}
        "#
    )
}

#[tokio::test]
async fn hourly_premium_into_postgres_and_mariadb() {
    let events = orders();
    let topic = topic_with("user-order", 3, &events).await;
    let expected = sluice_tests::seed_sql::hourly_premium(&events).await;
    assert!(expected.len() >= 6, "the events span six hours: {expected:?}");

    for db in Db::ALL {
        let sink = unique_table("hs_order");
        let spec = spec(&topic, &sink);
        let dead = run_job("hourly_premium", &spec, db).await;
        assert!(dead.is_empty(), "{db:?}: no dead letters: {dead:?}");
        let pool = db.pool().await;
        let actual = text_rows(
            &pool,
            &format!(
                "select biz_date, {}, {}, {} from {sink} order by biz_date",
                db.text("total_premium"),
                db.text("policy_cnt"),
                db.text("policy_holder_cnt")
            ),
        )
        .await;
        drop_tables(&pool, &[&sink]).await;
        assert_eq!(actual, expected, "{db:?}: hs_order equals the seed SQL over the same events");
    }
}

/// The staged job (`jobs/hourly-premium-staged`: last order per user, then
/// totals per hour through a repartition topic) gives the seed's SQL at 1,
/// 2 and 4 tasks per stage, and when its first stage writes everything
/// again (a replay), its second applies none of it twice.
#[tokio::test]
async fn staged_hourly_premium_gives_the_sql_at_every_parallelism() {
    let events = orders();
    let input = topic_with("user-order", 4, &events).await;
    let expected = sluice_tests::seed_sql::hourly_premium(&events).await;
    assert!(expected.len() >= 6, "the events span six hours: {expected:?}");
    let pool = Db::Postgres.pool().await;

    // The job's own spec is no stage's: refused with what to do.
    let plain = JobSpec::parse(&spec(&input, "unused"), std::path::Path::new(".")).expect("spec");
    let component = load("hourly_premium_staged").await.expect("component");
    let built = TaskBuilder::new(&plain).connections(connections(Db::Postgres)).build(engine(), &component).await;
    let Err(refused) = built else { panic!("a staged component needs a stage's spec") };
    let refused = refused.to_string();
    assert!(refused.contains("not one stage's") && refused.contains("--stage-topics"), "{refused}");

    for (tasks, replay) in [(1, false), (2, false), (4, false), (2, true)] {
        let sink = unique_table("hs_order");
        let spec = JobSpec::parse(&spec(&input, &sink), std::path::Path::new(".")).expect("spec");
        let topics = StageTopics { connection: "events".into(), prefix: unique_topic("hp-stages"), bounded: true };
        create_topic(&kafka_brokers(), &topics.topic(1), 4).await;
        let first = run_stage("hourly_premium_staged", &spec, &topics, (0, 2), tasks).await;
        // Every row the first stage sent is in the repartition topic (the
        // broker acknowledged each one) before the second stage reads it:
        // `read_topic` fails saying how many it found when rows are missing.
        let topic = topics.topic(1);
        tokio::task::spawn_blocking(move || {
            read_topic(&kafka_brokers(), &topic, 4, first.sent as usize, Duration::from_secs(60))
        })
        .await
        .expect("read the repartition topic");
        if replay {
            // From empty state the first stage writes every change again,
            // with the same row ids.
            run_stage("hourly_premium_staged", &spec, &topics, (0, 2), tasks).await;
        }
        let second = run_stage("hourly_premium_staged", &spec, &topics, (1, 2), tasks).await;
        let actual = text_rows(
            &pool,
            &format!(
                "select biz_date, total_premium::text, policy_cnt::text, policy_holder_cnt::text from {sink} \
                 order by biz_date"
            ),
        )
        .await;
        drop_tables(&pool, &[&sink]).await;
        // Which side lost rows, if any, before what it did to the table.
        if replay {
            assert!(second.dropped > events.len() as u64 / 2, "the replayed changes were dropped: {second:?}");
        } else {
            assert_eq!((second.read, second.dropped), (first.sent, 0), "{tasks} tasks: all read, nothing dropped");
        }
        assert_eq!(actual, expected, "{tasks} tasks per stage (replay: {replay}): hs_order equals the seed SQL");
    }
}
