//! Hourly premium totals with last-value de-duplication per user.

use std::sync::Arc;
use std::time::Duration;

use sluice_gen::insurance::InsuranceOrders;
use sluice_gen::{GenOptions, Scenario};
use sluice_runtime::connectors::memory::MemorySink;
use sluice_runtime::job::stages::{StageTopics, stage_job_name, stage_spec};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_tests::kafka::{create_topic, read_topic, unique_topic};
use sluice_tests::services::kafka_brokers;
use sluice_tests::{engine, load};

use crate::feeds::{keyed_json, stream};
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

/// What the tasks of one stage did: records read, rows sent on (to every
/// sink), and replayed rows dropped.
#[derive(Debug, Clone, Copy)]
struct StageCounts {
    read: u64,
    sent: u64,
    dropped: u64,
}

/// Runs stage `stage` of `spec` (the staged job) as `tasks` tasks, each a
/// share of the stage's input partitions, to the end of that input.
async fn run_stage(spec: &JobSpec, topics: &StageTopics, stage: u32, tasks: u32) -> StageCounts {
    let mut staged = stage_spec(spec, stage, 2, topics).expect("the stage's spec");
    staged.name = stage_job_name(&spec.name, stage);
    let component = load("hourly_premium_staged").await.expect("component");
    let metrics = Arc::new(TaskMetrics::default());
    let runs = (0..tasks).map(|task| {
        let (staged, component, metrics) = (&staged, &component, metrics.clone());
        async move {
            let built = TaskBuilder::new(staged)
                .connections(connections(Db::Postgres))
                .dead_letter(Box::new(MemorySink::default()))
                .stage(stage)
                .partition_group(task, tasks)
                .metrics(metrics)
                .build(engine(), component)
                .await
                .expect("task");
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let end = tokio::time::timeout(Duration::from_secs(120), built.run(stop_rx)).await;
            assert_eq!(end.expect("the stage ends within 120 s").expect("it runs"), TaskEnd::Finished);
        }
    });
    futures::future::join_all(runs).await;
    StageCounts {
        read: TaskMetrics::get(&metrics.records_in),
        sent: TaskMetrics::get(&metrics.records_out),
        dropped: TaskMetrics::get(&metrics.replays_dropped),
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
        let first = run_stage(&spec, &topics, 0, tasks).await;
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
            run_stage(&spec, &topics, 0, tasks).await;
        }
        let second = run_stage(&spec, &topics, 1, tasks).await;
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
