//! hourly-premium at parallelism 1 and 2 (issue 19), in one run on the
//! real broker: the one-stage job (`jobs/hourly-premium`, one task: its
//! totals combine every user) against its two-stage form
//! (`jobs/hourly-premium-staged`: last order per user id, then totals per
//! hour through a repartition topic) with one task per stage and with two.
//! The input is 1,000,000 generated orders (`BENCH_RECORDS`) in a topic of
//! two partitions; each run reads it from the start to its end (bounded
//! sources; a later stage starts once the stage before has finished, which
//! is how the time splits in the table), and the tables must be equal.
//!
//! `cargo bench -p sluice-tests --bench stages` (starts Tansu through
//! scripts/tansu.sh when it is not up).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_gen::insurance::InsuranceOrders;
use sluice_gen::{GenOptions, Scenario};
use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::RowOp;
use sluice_runtime::connectors::memory::MemorySink;
use sluice_runtime::job::stages::{StageTopics, stage_job_name, stage_spec};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::kafka_brokers;
use sluice_tests::{engine, load};

const PARTITIONS: u32 = 2;

fn spec(input: &str) -> JobSpec {
    let text = format!(
        "name = \"bench_hourly\"\ncomponent = \"unused.wasm\"\n\
         [parameters]\nsince_ms = \"0\"\n[batch]\nmax_records = 4096\n\
         [sources.user_order]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{input}\"\nbounded = true\n\
         [sinks.hs_order]\nkind = \"memory\"\n[dead_letter]\nkind = \"memory\"\n"
    );
    JobSpec::parse(&text, std::path::Path::new(".")).unwrap()
}

/// The `hs_order` table from the rows the sinks got, in order per task
/// (every hour is one task's).
fn table(sinks: &[MemorySink]) -> BTreeMap<String, String> {
    let mut table = BTreeMap::new();
    for sink in sinks {
        for row in sink.rows() {
            let value: serde_json::Value = serde_json::from_slice(&row.value).unwrap();
            let hour = value["biz_date"].as_str().unwrap().to_owned();
            match row.op {
                RowOp::Delete => table.remove(&hour),
                _ => table.insert(hour, value.to_string()),
            };
        }
    }
    table
}

/// Runs `component` over `spec` as `tasks` tasks (each a share of the
/// partitions), side by side, to the end of the input; the sinks they
/// wrote to and their records in.
async fn run_tasks(component: &str, spec: &JobSpec, stage: u32, tasks: u32) -> (Vec<MemorySink>, u64) {
    let component = load(component).await.unwrap();
    let metrics = Arc::new(TaskMetrics::default());
    let mut sinks = Vec::new();
    let mut running = Vec::new();
    for task in 0..tasks {
        let sink = MemorySink::default();
        sinks.push(sink.clone());
        let mut connections = Connections::default();
        connections.apply_override(&format!("events={}", kafka_brokers())).unwrap();
        let built = TaskBuilder::new(spec)
            .connections(connections)
            .metrics(metrics.clone())
            .sink("hs_order", Box::new(sink))
            .stage(stage)
            .partition_group(task, tasks)
            .build(engine(), &component)
            .await
            .unwrap();
        // A task of its own on the runtime: tasks run on both cores.
        running.push(tokio::spawn(async move {
            let (_stop, rx) = tokio::sync::watch::channel(false);
            built.run(rx).await
        }));
    }
    for task in running {
        assert_eq!(task.await.unwrap().unwrap(), TaskEnd::Finished);
    }
    (sinks, TaskMetrics::get(&metrics.records_in))
}

/// The staged job at `tasks` tasks per stage: each stage's time and the table.
async fn staged(spec: &JobSpec, tasks: u32) -> (Duration, Duration, BTreeMap<String, String>) {
    let topics = StageTopics { connection: "events".into(), prefix: unique_topic("bench-stages"), bounded: true };
    create_topic(&kafka_brokers(), &topics.topic(1), PARTITIONS as i32).await;
    let mut first = stage_spec(spec, 0, 2, &topics).unwrap();
    first.name = stage_job_name(&spec.name, 0);
    let mut second = stage_spec(spec, 1, 2, &topics).unwrap();
    second.name = stage_job_name(&spec.name, 1);
    let started = Instant::now();
    run_tasks("hourly_premium_staged", &first, 0, tasks).await;
    let first_done = started.elapsed();
    let (sinks, _) = run_tasks("hourly_premium_staged", &second, 1, tasks).await;
    (first_done, started.elapsed() - first_done, table(&sinks))
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let options = GenOptions { seed: 3, count: n as u64, malformed: 0.0, ..GenOptions::default() };
    let events = InsuranceOrders.generate(&options);
    let input = unique_topic("bench-orders");
    create_topic(&kafka_brokers(), &input, PARTITIONS as i32).await;
    let messages = events.iter().map(|e| {
        let partition = (e.key.parse::<u64>().unwrap() % u64::from(PARTITIONS)) as i32;
        (partition, e.key.as_str(), String::from_utf8_lossy(&e.value).into_owned())
    });
    produce(&kafka_brokers(), &input, messages).await;
    println!("{} orders in {PARTITIONS} partitions, keyed by user id\n", events.len());
    let spec = spec(&input);

    let started = Instant::now();
    let (sinks, records_in) = run_tasks("hourly_premium", &spec, 0, 1).await;
    let one_stage = started.elapsed();
    assert_eq!(records_in as usize, events.len(), "the one-stage job read every order");
    let expected = table(&sinks);
    let (p1_first, p1_second, p1) = staged(&spec, 1).await;
    let (p2_first, p2_second, p2) = staged(&spec, 2).await;
    assert_eq!(p1, expected, "one task per stage gives the one-stage table");
    assert_eq!(p2, expected, "two tasks per stage give the one-stage table");

    let n = events.len();
    println!("| run | stage 0 | stage 1 | total | orders/s | vs one stage |");
    println!("|---|---|---|---|---|---|");
    println!("| hourly-premium, one stage, 1 task | | | {one_stage:.1?} | {:.0} | 1.00 |", rate(n, one_stage));
    for (label, first, second) in [("1 task", p1_first, p1_second), ("2 tasks", p2_first, p2_second)] {
        let total = first + second;
        println!(
            "| hourly-premium-staged, {label} per stage | {first:.1?} | {second:.1?} | {total:.1?} | {:.0} | {:.2} |",
            rate(n, total),
            one_stage.as_secs_f64() / total.as_secs_f64()
        );
    }
    let (p1_total, p2_total) = (p1_first + p1_second, p2_first + p2_second);
    println!("\nparallelism 2 / parallelism 1 (staged): {:.2}x", p1_total.as_secs_f64() / p2_total.as_secs_f64());
}
