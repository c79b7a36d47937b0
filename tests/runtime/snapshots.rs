//! Snapshots and restore in the real runtime: positions, state and the
//! upgrade check for state a new job version no longer declares.

use std::sync::Arc;

use sluice_runtime::connectors::memory::MemorySink;
use sluice_runtime::job::{BuildError, JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::snapshot::{LocalSnapshotStore, SnapshotStore};
use sluice_tests::{engine, load};

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

/// The PostgreSQL store: the same contract as the directory one.
#[tokio::test]
async fn postgres_store_chains_increments_keeps_bases_and_skips_damage() {
    use sluice_runtime::snapshot::{PgSnapshotStore, Snapshot, SnapshotMeta, Trigger};
    use sluice_runtime::state::StateBackend;
    use sluice_runtime::wasm::bindings::StateKind;

    let url = sluice_tests::services::postgres_url();
    let store = PgSnapshotStore::connect(&url).await.unwrap();
    let job = format!("pg_store_test_{}", std::process::id());
    let snapshot = |id: &str, base: Option<&str>, state| Snapshot {
        meta: SnapshotMeta {
            id: id.into(),
            job: job.clone(),
            job_version: "v".into(),
            created_ms: 0,
            trigger: Trigger::Periodic,
            positions: Vec::new(),
        },
        base: base.map(str::to_owned),
        state,
        timers: Vec::new(),
        event_times: Vec::new(),
        watermark: None,
    };
    let mut state = StateBackend::default();
    let h = state.declare("s", StateKind::Value, None).unwrap();
    state.set(h, b"a".to_vec(), b"1".to_vec(), 0).unwrap();
    store.put(&snapshot("1-1", None, state.image(0)), 1).await.unwrap();
    state.set(h, b"b".to_vec(), b"2".to_vec(), 0).unwrap();
    store.put(&snapshot("1-2", Some("1-1"), state.image_changes(0).unwrap()), 1).await.unwrap();
    assert_eq!(store.list(&job).await.unwrap(), ["1-1", "1-2"], "the increment's base is kept");
    state.set(h, b"a".to_vec(), b"3".to_vec(), 0).unwrap();
    store.put(&snapshot("1-3", None, state.image(0)), 1).await.unwrap();
    assert_eq!(store.list(&job).await.unwrap(), ["1-3"], "a full snapshot frees the older chain");
    state.set(h, b"c".to_vec(), b"4".to_vec(), 0).unwrap();
    store.put(&snapshot("1-4", Some("1-3"), state.image_changes(0).unwrap()), 2).await.unwrap();

    let latest = store.latest(&job).await.unwrap().unwrap();
    let mut restored = StateBackend::restore(latest.state);
    let h = restored.declare("s", StateKind::Value, None).unwrap();
    let get = |k: &[u8]| restored.get(h, k, 0).unwrap().map(<[u8]>::to_vec);
    assert_eq!((get(b"a"), get(b"b"), get(b"c")), (Some(b"3".to_vec()), Some(b"2".to_vec()), Some(b"4".to_vec())));

    // A damaged newest row: the previous good snapshot is used.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("update sluice_snapshots set body = substring(body from 1 for 40) where job = $1 and id = '1-4'")
        .bind(&job)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(store.latest(&job).await.unwrap().unwrap().meta.id, "1-3");
    sqlx::query("delete from sluice_snapshots where job = $1").bind(&job).execute(&pool).await.unwrap();
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
