//! Feeds from `sluice_gen` scenarios: their events into Tansu topics (keyed
//! partitioning, as a producer's default partitioner would), and runs of a
//! WASM job with more connections than the harness's two, in parallel
//! tasks, or stage by stage. (The batch queries they are checked against
//! are in `sluice_tests::seed_sql`.)

use std::sync::Arc;
use std::time::Duration;

use sluice_gen::Event;
use sluice_runtime::connectors::memory::MemorySink;
use sluice_runtime::job::stages::{StageTopics, stage_job_name, stage_spec};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::kafka_brokers;
use sluice_tests::{engine, load};

use crate::harness::{Db, connections};

/// The partition of a key: FNV-1a, so all events of one key land in one
/// partition, in the order they were generated.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % partitions as u64) as i32
}

/// A new topic with `partitions` partitions holding `events` (raw values,
/// malformed ones included), keyed as generated.
pub async fn topic_of(prefix: &str, partitions: i32, events: &[&Event]) -> String {
    let brokers = kafka_brokers();
    let topic = unique_topic(prefix);
    create_topic(&brokers, &topic, partitions).await;
    let messages = events.iter().map(|e| {
        let value = String::from_utf8(e.value.clone()).expect("generated values are UTF-8");
        (partition_of(&e.key, partitions), e.key.as_str(), value)
    });
    produce(&brokers, &topic, messages).await;
    topic
}

/// The events of one stream, in sending order.
pub fn stream<'a>(events: &'a [Event], name: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.stream == name).collect()
}

/// Events as the seed-001 tests produce them (`harness::topic_with`): a
/// numeric key and a JSON value. For clean feeds only (no malformed values).
pub fn keyed_json(events: &[&Event]) -> Vec<(u64, serde_json::Value)> {
    events
        .iter()
        .map(|e| {
            let key = e.key.parse().expect("a numeric key");
            (key, serde_json::from_slice(&e.value).expect("a clean feed: JSON values only"))
        })
        .collect()
}

/// Events whose value is not JSON: what the job must dead-letter.
pub fn malformed(events: &[&Event]) -> usize {
    events.iter().filter(|e| serde_json::from_slice::<serde_json::Value>(&e.value).is_err()).count()
}

/// Runs the WASM job `component` with `spec` until its bounded sources are
/// read, with the harness's `events` and `warehouse` connections plus
/// `extra` (`NAME=URL`); returns the dead letters.
pub async fn run_job_with(component: &str, spec: &str, db: Db, extra: &[String]) -> Vec<serde_json::Value> {
    run_job_in_tasks(component, spec, db, extra, 1).await
}

/// [`run_job_with`] as `tasks` parallel tasks, task `i` reading the
/// partitions `p % tasks == i` of every source (as the platform packs a
/// job's shards); the dead letters of them all.
pub async fn run_job_in_tasks(
    component: &str,
    spec: &str,
    db: Db,
    extra: &[String],
    tasks: u32,
) -> Vec<serde_json::Value> {
    let spec = JobSpec::parse(spec, std::path::Path::new(".")).expect("spec");
    let mut connections = connections(db);
    for e in extra {
        connections.apply_override(e).expect("connection override");
    }
    let loaded = load(component).await.expect("component");
    let dead = MemorySink::default();
    let runs = (0..tasks).map(|index| {
        let (spec, connections, loaded, dead) = (&spec, connections.clone(), &loaded, dead.clone());
        async move {
            let task = TaskBuilder::new(spec)
                .connections(connections)
                .dead_letter(Box::new(dead))
                .partition_group(index, tasks)
                .build(engine(), loaded)
                .await
                .expect("task");
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let end = tokio::time::timeout(Duration::from_secs(300), task.run(stop_rx))
                .await
                .expect("job finished within 300 s")
                .expect("job ran without error");
            assert_eq!(end, TaskEnd::Finished);
        }
    });
    futures::future::join_all(runs).await;
    dead.rows().iter().map(|r| serde_json::from_slice(&r.value).unwrap()).collect()
}

/// The spec files of a job parse (they are not run here: their topics and
/// tables are fixed names).
pub fn specs_parse(job_dir: &str) {
    let dir = sluice_tests::services::repo_root().join("jobs").join(job_dir);
    for file in ["job.toml", "kafka.toml"] {
        JobSpec::load(&dir.join(file)).unwrap_or_else(|e| panic!("jobs/{job_dir}/{file}: {e}"));
    }
}

#[test]
fn keys_keep_their_partition() {
    assert_eq!(partition_of("C150100010111", 3), partition_of("C150100010111", 3));
    let spread: std::collections::HashSet<i32> = (0..100).map(|i| partition_of(&format!("k{i}"), 3)).collect();
    assert_eq!(spread.len(), 3);
}

/// The seed-job bench's specs (`scripts/bench-jobs.sh`, run by hand, not
/// here) parse, so a spec change does not first break at benchmark time.
#[test]
fn bench_specs_parse() {
    for job in ["hourly-premium", "premium-drop", "last-page", "large-tx-alert", "lending-report"] {
        let path = sluice_tests::services::repo_root().join("jobs").join(job).join("bench.toml");
        JobSpec::load(&path).unwrap_or_else(|e| panic!("jobs/{job}/bench.toml: {e}"));
    }
}

/// What the tasks of one stage did: records read, rows sent on (to every
/// sink), replayed rows dropped, and records rejected (dead letters).
#[derive(Debug, Clone, Copy)]
pub struct StageCounts {
    pub read: u64,
    pub sent: u64,
    pub dropped: u64,
    pub rejected: usize,
}

/// Runs stage `stage` of the `stages` of the staged job `component` with
/// `spec` as `tasks` tasks, each a share of the stage's input partitions,
/// to the end of that input (PostgreSQL as `warehouse`).
pub async fn run_stage(
    component: &str,
    spec: &JobSpec,
    topics: &StageTopics,
    (stage, stages): (u32, u32),
    tasks: u32,
) -> StageCounts {
    let mut staged = stage_spec(spec, stage, stages, topics).expect("the stage's spec");
    staged.name = stage_job_name(&spec.name, stage);
    let component = load(component).await.expect("component");
    let metrics = Arc::new(TaskMetrics::default());
    let dead = MemorySink::default();
    let runs = (0..tasks).map(|task| {
        let (staged, component, metrics, dead) = (&staged, &component, metrics.clone(), dead.clone());
        async move {
            let built = TaskBuilder::new(staged)
                .connections(connections(Db::Postgres))
                .dead_letter(Box::new(dead))
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
        rejected: dead.rows().len(),
    }
}
