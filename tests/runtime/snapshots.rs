//! Snapshots and restore in the real runtime: positions, state, the
//! upgrade check for state a new job version no longer declares, and
//! snapshots and stops on command (`Task::run_controlled`); the shared
//! stores' contract is in `stores`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sluice_runtime::connectors::memory::MemorySink;
use sluice_runtime::connectors::{ConnectorError, Source, SourceStatus};
use sluice_runtime::job::batch::{NewRecord, RecordBatch};
use sluice_runtime::job::{BuildError, JobSpec, TaskBuilder, TaskCommand, TaskEnd, TaskError};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::snapshot::{LocalSnapshotStore, SnapshotMeta, SnapshotStore, SourcePosition, Trigger};
use sluice_tests::{engine, load};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod stores;

fn spec(dir: &std::path::Path) -> JobSpec {
    let text = "name = \"keyed_count\"\ncomponent = \"unused.wasm\"\n\
                [sources.orders]\nkind = \"file\"\npath = \"orders.jsonl\"\n\
                [sinks.counts]\nkind = \"memory\"\n[batch]\nmax_records = 2\n[snapshot]\ninterval = \"1ms\"\n";
    JobSpec::parse(text, dir).unwrap()
}

fn lines(keys: &[&str]) -> String {
    keys.iter().map(|k| format!("{{\"user\":\"{k}\"}}\n")).collect()
}

/// Runs the keyed count over orders.jsonl (the file source keys records by
/// `user`), from the latest snapshot when there is one; returns the counts
/// it emitted, last per user.
async fn run(dir: &std::path::Path, store: Arc<dyn SnapshotStore>) -> Vec<(String, u64)> {
    let mut spec = spec(dir);
    if let sluice_runtime::connectors::registry::SourceSpec::File(f) = &mut spec.sources["orders"] {
        f.key_field = Some("user".into());
    }
    let sink = MemorySink::default();
    let mut builder = TaskBuilder::new(&spec).sink("counts", Box::new(sink.clone())).snapshots(store.clone());
    if let Some(s) = store.latest("keyed_count").await.unwrap() {
        builder = builder.restore(s);
    }
    let component = load("guest_keyed_count").await.unwrap();
    let task = builder.dead_letter(Box::new(MemorySink::default())).build(engine(), &component).await.unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    assert_eq!(task.run(rx).await.unwrap(), TaskEnd::Finished);
    let mut last = std::collections::BTreeMap::new();
    for row in sink.rows() {
        let v: serde_json::Value = serde_json::from_slice(&row.value).unwrap();
        last.insert(v["user"].as_str().unwrap().to_owned(), v["events"].as_u64().unwrap());
    }
    last.into_iter().collect()
}

#[tokio::test]
async fn a_restored_run_resumes_after_the_last_position_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SnapshotStore> = Arc::new(LocalSnapshotStore::new(dir.path().join("snapshots")));
    std::fs::write(dir.path().join("orders.jsonl"), lines(&["a", "b", "a", "c", "a"])).unwrap();
    assert_eq!(run(dir.path(), store.clone()).await, [("a".into(), 3), ("b".into(), 1), ("c".into(), 1)]);

    // More input arrives; the next run reads only it, with the counts so far.
    let mut all = lines(&["a", "b", "a", "c", "a"]);
    all.push_str(&lines(&["b", "a", "d"]));
    std::fs::write(dir.path().join("orders.jsonl"), all).unwrap();
    assert_eq!(
        run(dir.path(), store.clone()).await,
        [("a".into(), 4), ("b".into(), 2), ("d".into(), 1)],
        "only the new lines are processed, counting on from the snapshot"
    );
    let latest = store.latest("keyed_count").await.unwrap().unwrap();
    assert_eq!(latest.positions_of("orders"), vec![(0, 8)]);
}

#[tokio::test]
async fn state_a_new_version_drops_needs_an_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SnapshotStore> = Arc::new(LocalSnapshotStore::new(dir.path().join("snapshots")));
    std::fs::write(dir.path().join("orders.jsonl"), lines(&["a", "b"])).unwrap();
    run(dir.path(), store.clone()).await;
    let snapshot = store.latest("keyed_count").await.unwrap().unwrap();

    // "Version 2" of the job is another component that declares other state.
    let spec = spec(dir.path());
    let v2 = load("guest_windows").await.unwrap();
    let build = |allow| {
        TaskBuilder::new(&spec)
            .sink("counts", Box::new(MemorySink::default()))
            .dead_letter(Box::new(MemorySink::default()))
            .restore(snapshot.clone())
            .allow_non_restored_state(allow)
            .build(engine(), &v2)
    };
    let err = build(false).await.err().expect("refused without the flag");
    assert!(matches!(err, BuildError::NonRestoredState { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("`counts` (2 keys)") && text.contains("--allow-non-restored-state"), "{text}");
    assert!(build(true).await.is_ok(), "with the flag the dropped state is let go");
}

#[tokio::test]
async fn a_version_whose_state_type_changed_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SnapshotStore> = Arc::new(LocalSnapshotStore::new(dir.path().join("snapshots")));
    std::fs::write(dir.path().join("orders.jsonl"), lines(&["a", "b"])).unwrap();
    run(dir.path(), store.clone()).await;
    let snapshot = store.latest("keyed_count").await.unwrap().unwrap();

    let mut spec = spec(dir.path());
    spec.parameters.insert("v2_counts_as_text".into(), "true".into());
    let component = load("guest_keyed_count").await.unwrap();
    let err = TaskBuilder::new(&spec)
        .sink("counts", Box::new(MemorySink::default()))
        .dead_letter(Box::new(MemorySink::default()))
        .restore(snapshot)
        .build(engine(), &component)
        .await
        .err()
        .expect("an incompatible state type is refused at start")
        .to_string();
    assert!(err.contains("state `counts` holds values that do not decode as") && err.contains("String"), "{err}");
    assert!(err.contains("incompatible with the restored state"), "{err}");
}

/// An endless source fed by the test: records (keyed by their text) are
/// read as they are pushed; its lag is what is still queued.
#[derive(Clone, Default)]
struct Feed {
    queue: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

struct FeedSource {
    feed: Feed,
    next: i64,
}

impl Feed {
    fn push(&self, keys: &[&str]) {
        self.queue.lock().unwrap().extend(keys.iter().map(|k| (*k).to_owned()));
    }
}

#[async_trait::async_trait]
impl Source for FeedSource {
    async fn poll(
        &mut self,
        batch: &mut RecordBatch,
        max: usize,
        max_wait: Duration,
    ) -> Result<SourceStatus, ConnectorError> {
        let taken: Vec<String> = {
            let mut queue = self.feed.queue.lock().unwrap();
            let n = queue.len().min(max);
            queue.drain(..n).collect()
        };
        if taken.is_empty() {
            tokio::time::sleep(max_wait).await;
        }
        for key in taken {
            let value = format!("{{\"user\":\"{key}\"}}");
            let headers: &[(&str, &[u8])] = &[];
            batch.push(NewRecord {
                key: Some(key.as_bytes()),
                value: value.as_bytes(),
                event_time: None,
                headers,
                source: 0,
                partition: 0,
                offset: self.next,
            });
            self.next += 1;
        }
        Ok(SourceStatus::Open)
    }

    fn positions(&self) -> Option<Vec<(i32, i64)>> {
        Some(vec![(0, self.next)])
    }

    fn lag(&self) -> Option<i64> {
        Some(self.feed.queue.lock().unwrap().len() as i64)
    }
}

/// The keyed count over a [`Feed`], run with commands; no periodic snapshots.
async fn controlled(
    dir: &std::path::Path,
    feed: &Feed,
    store: Option<Arc<dyn SnapshotStore>>,
) -> (Arc<TaskMetrics>, MemorySink, mpsc::Sender<TaskCommand>, JoinHandle<Result<TaskEnd, TaskError>>) {
    let text = "name = \"controlled\"\ncomponent = \"unused.wasm\"\n\
                [sources.orders]\nkind = \"file\"\npath = \"orders.jsonl\"\n\
                [sinks.counts]\nkind = \"memory\"\n[batch]\nmax_wait = \"20ms\"\n";
    let spec = JobSpec::parse(text, dir).unwrap();
    let sink = MemorySink::default();
    let mut builder = TaskBuilder::new(&spec)
        .source("orders", Box::new(FeedSource { feed: feed.clone(), next: 0 }))
        .sink("counts", Box::new(sink.clone()))
        .dead_letter(Box::new(MemorySink::default()));
    if let Some(store) = store {
        builder = builder.snapshots(store);
    }
    let component = load("guest_keyed_count").await.unwrap();
    let task = builder.build(engine(), &component).await.unwrap();
    let metrics = task.metrics();
    let (tx, rx) = mpsc::channel(4);
    (metrics, sink, tx, tokio::spawn(task.run_controlled(rx)))
}

/// Waits (up to 20 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn request_snapshot(control: &mpsc::Sender<TaskCommand>) -> Result<SnapshotMeta, String> {
    let (reply, answer) = oneshot::channel();
    control.send(TaskCommand::Snapshot { reply }).await.expect("the task is running");
    tokio::time::timeout(Duration::from_secs(20), answer).await.expect("answered in time").expect("a reply")
}

#[tokio::test]
async fn controlled_snapshots_are_stored_and_stop_without_one_adds_none() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SnapshotStore> = Arc::new(LocalSnapshotStore::new(dir.path().join("snapshots")));
    let feed = Feed::default();
    let (metrics, sink, control, task) = controlled(dir.path(), &feed, Some(store.clone())).await;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);

    feed.push(&["a", "b", "a"]);
    eventually("3 records are in", || get(&metrics.records_in) == 3).await;
    eventually("the lag is 0", || metrics.lag.load(Relaxed) == 0).await;
    assert!(get(&metrics.last_batch_latency_us) > 0, "a batch's processing time is recorded");
    assert_eq!(get(&metrics.last_snapshot_bytes), 0, "no snapshot yet");

    let meta = request_snapshot(&control).await.expect("a snapshot");
    assert_eq!(meta.trigger, Trigger::Manual);
    assert_eq!(meta.positions, [SourcePosition { source: "orders".into(), partition: 0, next_offset: 3 }]);
    assert_eq!(store.list("controlled").await.unwrap(), vec![meta.id.clone()], "the snapshot is in the store");
    assert_eq!(store.load("controlled", &meta.id).await.unwrap().meta, meta);
    assert!(get(&metrics.last_snapshot_bytes) > 0, "its size is recorded");
    assert_eq!(get(&metrics.snapshots), 1);

    feed.push(&["c", "a"]);
    eventually("5 records are in", || get(&metrics.records_in) == 5).await;
    control.send(TaskCommand::Stop { snapshot: false }).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(20), task).await.expect("stops in time").unwrap();
    assert_eq!(end.unwrap(), TaskEnd::Stopped);
    assert_eq!(store.list("controlled").await.unwrap(), vec![meta.id.clone()], "a stop without a snapshot adds none");
    assert_eq!(sink.rows().len(), 5, "the sinks were flushed");

    // Stopping with a snapshot adds one, taken at the stop.
    let (_, _, control, task) = controlled(dir.path(), &feed, Some(store.clone())).await;
    control.send(TaskCommand::Stop { snapshot: true }).await.unwrap();
    assert_eq!(task.await.unwrap().unwrap(), TaskEnd::Stopped);
    let ids = store.list("controlled").await.unwrap();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(store.get("controlled", &ids[1]).await.unwrap().meta.trigger, Trigger::Stop);
}

#[tokio::test]
async fn a_snapshot_request_without_a_store_gets_an_error_and_the_task_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::default();
    let (metrics, sink, control, task) = controlled(dir.path(), &feed, None).await;
    let err = request_snapshot(&control).await.expect_err("no store");
    assert_eq!(err, "the job has no snapshot store");

    feed.push(&["a"]);
    eventually("the record is in", || metrics.records_in.load(Relaxed) == 1).await;
    control.send(TaskCommand::Stop { snapshot: true }).await.unwrap();
    assert_eq!(task.await.unwrap().unwrap(), TaskEnd::Stopped, "a stop with a snapshot and no store only flushes");
    assert_eq!(sink.rows().len(), 1);
    assert_eq!(metrics.snapshots.load(Relaxed), 0);
}

/// A dimension with `writes = "snapshot"` needs a snapshot store; a
/// restored snapshot's pending dimension writes reach the store when the
/// task is built, before any record.
#[tokio::test]
async fn snapshot_committed_dimension_writes_need_a_store_and_are_applied_on_restore() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.jsonl"), "").unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("dims.db").display());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT)").execute(&pool).await.unwrap();
    let mut spec = spec(dir.path());
    spec.dimensions = JobSpec::parse(
        "name = \"x\"\ncomponent = \"x.wasm\"\n[sources.s]\nkind = \"file\"\npath = \"x\"\n\
         [dimensions.users]\nkind = \"sql\"\nconnection = \"db\"\ntable = \"users\"\nkey = [\"id\"]\nwrites = \"snapshot\"\n",
        dir.path(),
    )
    .unwrap()
    .dimensions;
    let mut connections = sluice_runtime::connections::Connections::default();
    connections.apply_override(&format!("db={url}")).unwrap();
    let component = load("guest_keyed_count").await.unwrap();
    let builder = || {
        TaskBuilder::new(&spec)
            .connections(connections.clone())
            .sink("counts", Box::new(MemorySink::default()))
            .dead_letter(Box::new(MemorySink::default()))
    };

    let err = builder().build(engine(), &component).await.err().expect("refused without a store").to_string();
    assert!(err.contains("`writes = \"snapshot\"`") && err.contains("needs a snapshot"), "{err}");

    let mut snapshot = sluice_runtime::snapshot::Snapshot::empty("keyed_count", "1-0");
    snapshot.dimension_writes =
        vec![("users".into(), vec![(b"7".to_vec(), br#"{"id":7,"name":"restored"}"#.to_vec())])];
    let store: Arc<dyn SnapshotStore> = Arc::new(LocalSnapshotStore::new(dir.path().join("snapshots")));
    builder().snapshots(store).restore(snapshot).build(engine(), &component).await.expect("task");
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM users").fetch_all(&pool).await.unwrap();
    assert_eq!(rows, vec![(7, "restored".to_owned())], "the snapshot's write was applied");
}

/// A file sink keeps what it wrote before a restore: the file is cut back
/// to its length at the snapshot (dropping a row written after it, which
/// the replay writes again) and the rows after the snapshot are appended,
/// so the file holds every row once.
#[tokio::test]
async fn a_restored_file_sink_keeps_its_rows_and_drops_those_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SnapshotStore> = Arc::new(LocalSnapshotStore::new(dir.path().join("snapshots")));
    let counts = dir.path().join("counts.jsonl");
    let orders = dir.path().join("orders.jsonl");
    std::fs::write(&orders, lines(&["a", "b", "a"])).unwrap();
    run_file_counts(dir.path(), &store).await;
    let at_snapshot = std::fs::metadata(&counts).unwrap().len();
    let latest = store.latest("file_counts").await.unwrap().expect("the final snapshot");
    assert_eq!(latest.sink_position("counts"), Some(at_snapshot), "the snapshot records the sink's length");

    // A row written after the final snapshot, before a crash.
    let mut after = std::fs::OpenOptions::new().append(true).open(&counts).unwrap();
    std::io::Write::write_all(&mut after, b"{\"after\":\"crash\"}\n").unwrap();
    drop(after);
    let mut more = std::fs::OpenOptions::new().append(true).open(&orders).unwrap();
    std::io::Write::write_all(&mut more, lines(&["b", "c"]).as_bytes()).unwrap();
    drop(more);
    run_file_counts(dir.path(), &store).await;

    let written: Vec<serde_json::Value> =
        std::fs::read_to_string(&counts).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(String, u64)> = written
        .iter()
        .map(|v| (v["user"].as_str().unwrap_or("?").to_owned(), v["events"].as_u64().unwrap_or(0)))
        .collect();
    let expected: Vec<(String, u64)> =
        [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("c", 1)].iter().map(|(u, n)| (u.to_string(), *n)).collect();
    assert_eq!(got, expected, "every row once, the rows before the restore kept: {written:?}");
}

/// The keyed count over `orders.jsonl` into the file `counts.jsonl`, from
/// the latest snapshot when there is one, to the end of the file.
async fn run_file_counts(dir: &std::path::Path, store: &Arc<dyn SnapshotStore>) {
    let text = "name = \"file_counts\"\ncomponent = \"unused.wasm\"\n\
                [sources.orders]\nkind = \"file\"\npath = \"orders.jsonl\"\nkey_field = \"user\"\n\
                [sinks.counts]\nkind = \"file\"\npath = \"counts.jsonl\"\n[batch]\nmax_records = 2\n";
    let spec = JobSpec::parse(text, dir).unwrap();
    let mut builder = TaskBuilder::new(&spec).snapshots(store.clone());
    if let Some(s) = store.latest("file_counts").await.unwrap() {
        builder = builder.restore(s);
    }
    let component = load("guest_keyed_count").await.unwrap();
    let task = builder.dead_letter(Box::new(MemorySink::default())).build(engine(), &component).await.unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    assert_eq!(task.run(rx).await.unwrap(), TaskEnd::Finished);
}
