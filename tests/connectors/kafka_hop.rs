//! Two jobs chained through a topic on the real broker (Tansu): the upstream
//! job's Kafka sink stamps row ids (`row_id_header`), the downstream job's
//! source drops rows it applied before (`dedup_by_row_id`). An upstream
//! restore that writes rows again then changes nothing downstream, across
//! the downstream job's own snapshots and restores.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::memory::MemorySink;
use sluice_runtime::connectors::registry::SinkSpec;
use sluice_runtime::job::origin_dedup::TABLE;
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::snapshot::{LocalSnapshotStore, Snapshot, SnapshotStore};
use sluice_tests::kafka::{create_topic, produce, read_topic, unique_topic};
use sluice_tests::services::kafka_brokers;

fn connections(brokers: &str) -> Connections {
    let mut c = Connections::default();
    c.apply_override(&format!("events={brokers}")).unwrap();
    c
}

/// The upstream job: forwards `input` to `mid`, stamping row ids.
fn upstream(input: &str, mid: &str) -> JobSpec {
    let text = format!(
        "name = \"hop_up\"\ncomponent = \"unused.wasm\"\n\
         [sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{input}\"\nbounded = true\n\
         [sinks.out]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{mid}\"\nrow_id_header = true\n"
    );
    JobSpec::parse(&text, Path::new(".")).expect("upstream spec")
}

/// The downstream job: forwards `mid` to memory, dropping replays or not.
fn downstream(mid: &str, dedup: bool) -> JobSpec {
    let text = format!(
        "name = \"hop_down\"\ncomponent = \"unused.wasm\"\n\
         [sources.mid]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{mid}\"\nbounded = true\n\
         dedup_by_row_id = {dedup}\n[sinks.out]\nkind = \"memory\"\n"
    );
    JobSpec::parse(&text, Path::new(".")).expect("downstream spec")
}

/// What a bounded run of a job gave: its final snapshot, the values it
/// wrote to memory, and how many replays it dropped.
struct Ran {
    snapshot: Snapshot,
    values: Vec<String>,
    replays_dropped: u64,
}

/// Runs `spec` (the passthrough job) to the end of its input, from `restore`.
async fn run(spec: &JobSpec, brokers: &str, store: &Arc<LocalSnapshotStore>, restore: Option<Snapshot>) -> Ran {
    let component = sluice_tests::load("bench_passthrough").await.unwrap();
    let metrics = Arc::new(TaskMetrics::default());
    let memory = MemorySink::default();
    let mut builder = TaskBuilder::new(spec)
        .connections(connections(brokers))
        .snapshots(store.clone())
        .metrics(metrics.clone())
        .dead_letter(Box::new(MemorySink::default()));
    if matches!(spec.sinks["out"], SinkSpec::Memory(_)) {
        builder = builder.sink("out", Box::new(memory.clone()));
    }
    if let Some(snapshot) = restore {
        builder = builder.restore(snapshot);
    }
    let task = builder.build(sluice_tests::engine(), &component).await.expect("task");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let end = tokio::time::timeout(Duration::from_secs(90), task.run(rx)).await.expect("a bounded run ends");
    assert_eq!(end.expect("the run succeeds"), TaskEnd::Finished);
    let snapshot = store.latest(&spec.name).await.unwrap().expect("a final snapshot");
    Ran {
        snapshot,
        values: memory.rows().iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect(),
        replays_dropped: metrics.replays_dropped.load(Ordering::Relaxed),
    }
}

fn wave(from: usize, to: usize) -> Vec<(i32, String, String)> {
    (from..to).map(|i| ((i % 2) as i32, format!("k{i}"), format!(r#"{{"i":{i}}}"#))).collect()
}

async fn produce_wave(brokers: &str, topic: &str, from: usize, to: usize) {
    produce(brokers, topic, wave(from, to).iter().map(|(p, k, v)| (*p, k.as_str(), v.clone()))).await;
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

fn expected(from: usize, to: usize) -> Vec<String> {
    sorted(wave(from, to).into_iter().map(|(_, _, v)| v).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_replay_is_applied_once_downstream_across_restores() {
    let brokers = kafka_brokers();
    let (input, mid) = (unique_topic("hop-in"), unique_topic("hop-mid"));
    create_topic(&brokers, &input, 2).await;
    create_topic(&brokers, &mid, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let up_store = Arc::new(LocalSnapshotStore::new(dir.path().join("up")));
    let down_store = Arc::new(LocalSnapshotStore::new(dir.path().join("down")));
    let (up, down) = (upstream(&input, &mid), downstream(&mid, true));

    // The upstream job handles 0..100, snapshots (s1), then 100..200.
    produce_wave(&brokers, &input, 0, 100).await;
    let s1 = run(&up, &brokers, &up_store, None).await.snapshot;
    produce_wave(&brokers, &input, 100, 200).await;
    run(&up, &brokers, &up_store, Some(s1.clone())).await;

    // The downstream job applies all 200 and snapshots.
    let first = run(&down, &brokers, &down_store, None).await;
    assert_eq!(sorted(first.values), expected(0, 200));
    let marks = first.snapshot.state.iter().find(|t| t.name == TABLE).expect("the marks are in the snapshot");
    let keys: Vec<String> = marks.values.iter().map(|(k, _, _)| String::from_utf8_lossy(k).into_owned()).collect();
    assert_eq!(keys.len(), 6, "a mark per (partition of mid, upstream partition): {keys:?}");
    assert!(keys.iter().all(|k| k.contains(r#","hop_up","in","#)), "named with the upstream job and source: {keys:?}");

    // The upstream job fails before its second snapshot and restores s1:
    // it writes the rows of 100..200 again.
    run(&up, &brokers, &up_store, Some(s1)).await;
    // (`read_topic` stops at the count: this shows at least 300 are there.)
    let written = read_topic(&brokers, &mid, 3, 300, Duration::from_secs(30));
    assert_eq!(written.len(), 300, "the replay wrote 100 rows again");

    // The downstream job, restored from its snapshot, applies none of them.
    let second = run(&down, &brokers, &down_store, Some(first.snapshot)).await;
    assert_eq!(second.values, Vec::<String>::new(), "replayed rows are not applied again");
    assert_eq!(second.replays_dropped, 100);

    // New input goes through once.
    produce_wave(&brokers, &input, 200, 250).await;
    let latest = up_store.latest(&up.name).await.unwrap();
    run(&up, &brokers, &up_store, latest).await;
    let third = run(&down, &brokers, &down_store, Some(second.snapshot)).await;
    assert_eq!(sorted(third.values), expected(200, 250));
    assert_eq!(third.replays_dropped, 0);

    // Without dedup the same topic gives the replay twice.
    let plain_store = Arc::new(LocalSnapshotStore::new(dir.path().join("plain")));
    let plain = run(&downstream(&mid, false), &brokers, &plain_store, None).await;
    assert_eq!(plain.values.len(), 350, "100 rows of the replay twice");
}
