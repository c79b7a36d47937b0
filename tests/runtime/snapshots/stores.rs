//! The shared snapshot stores (PostgreSQL, S3-compatible object store) keep
//! the same contract as the directory one, checked by one function against
//! the real services.

use sluice_runtime::snapshot::{ObjectSnapshotStore, PgSnapshotStore, Snapshot, SnapshotError, SnapshotStore};
use sluice_runtime::state::StateBackend;
use sluice_runtime::wasm::bindings::StateKind;

use crate::s3_server::S3Server;

/// Full and incremental snapshots of one value state through `store`:
/// increments load on their chain of bases, retention keeps the bases a
/// kept snapshot needs (and frees them after a full one), `list` is oldest
/// first, and `latest` skips a damaged newest snapshot, then everything
/// built on a damaged base. `damage(id)` corrupts a stored snapshot in the
/// store's own medium.
async fn keeps_the_store_contract(store: &dyn SnapshotStore, job: &str, damage: impl AsyncFn(&str)) {
    let snapshot = |id: &str, base: Option<&str>, state| Snapshot {
        base: base.map(str::to_owned),
        state,
        ..Snapshot::empty(job, id)
    };
    let mut state = StateBackend::default();
    let h = state.declare("s", StateKind::Value, None).unwrap();
    state.set(h, b"a", b"1").unwrap();
    store.put(&snapshot("1-1", None, state.image(0)), 1).await.unwrap();
    state.set(h, b"b", b"2").unwrap();
    store.put(&snapshot("1-2", Some("1-1"), state.image_changes(0).unwrap()), 1).await.unwrap();
    assert_eq!(store.list(job).await.unwrap(), ["1-1", "1-2"], "the increment's base is kept");
    state.set(h, b"a", b"3").unwrap();
    store.put(&snapshot("1-3", None, state.image(0)), 1).await.unwrap();
    assert_eq!(store.list(job).await.unwrap(), ["1-3"], "a full snapshot frees the older chain");
    state.set(h, b"c", b"4").unwrap();
    store.put(&snapshot("1-4", Some("1-3"), state.image_changes(0).unwrap()), 3).await.unwrap();
    state.set(h, b"d", b"5").unwrap();
    store.put(&snapshot("1-5", Some("1-4"), state.image_changes(0).unwrap()), 3).await.unwrap();
    assert_eq!(store.list(job).await.unwrap(), ["1-3", "1-4", "1-5"], "oldest first");

    let values = |snapshot: Snapshot| {
        let mut restored = StateBackend::restore(snapshot.state);
        let h = restored.declare("s", StateKind::Value, None).unwrap();
        let get = |k: &[u8]| restored.get(h, k).unwrap().map(|v| String::from_utf8(v.to_vec()).unwrap());
        [get(b"a"), get(b"b"), get(b"c"), get(b"d")]
    };
    let latest = store.latest(job).await.unwrap().unwrap();
    assert_eq!((latest.meta.id.as_str(), latest.base.as_deref()), ("1-5", None), "loaded down its chain");
    assert_eq!(values(latest), [Some("3".into()), Some("2".into()), Some("4".into()), Some("5".into())]);
    assert!(matches!(store.get(job, "9-9").await, Err(SnapshotError::NotFound { .. })));
    assert!(store.latest(&format!("{job}_other")).await.unwrap().is_none(), "no snapshots of another job");

    // A damaged newest snapshot: the previous good one (an increment) is used.
    damage("1-5").await;
    assert!(matches!(store.get(job, "1-5").await, Err(SnapshotError::Corrupt { .. })));
    let latest = store.latest(job).await.unwrap().unwrap();
    assert_eq!(latest.meta.id, "1-4", "falls back to the previous good one");
    assert_eq!(values(latest), [Some("3".into()), Some("2".into()), Some("4".into()), None]);
    // A damaged base makes every increment on it unusable: nothing to restore.
    damage("1-3").await;
    assert!(store.latest(job).await.unwrap().is_none());
}

#[tokio::test]
async fn postgres_store_chains_increments_keeps_bases_and_skips_damage() {
    let url = sluice_tests::services::postgres_url();
    let store = PgSnapshotStore::connect(&url).await.unwrap();
    let job = format!("pg_store_test_{}", std::process::id());
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let damage = async |id: &str| {
        sqlx::query("update sluice_snapshots set body = substring(body from 1 for 40) where job = $1 and id = $2")
            .bind(&job)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    };
    keeps_the_store_contract(&store, &job, damage).await;
    sqlx::query("delete from sluice_snapshots where job = $1").bind(&job).execute(&pool).await.unwrap();
}

/// Fencing (scale-out): once a worker taking a job over raised the fence
/// to its epoch, a put by the previous owner (an older epoch) is refused
/// and stores nothing; the new owner's put lands. A put of an equal or
/// newer epoch raises the fence itself.
#[tokio::test]
async fn postgres_store_refuses_a_snapshot_from_an_older_lease_epoch() {
    use sluice_runtime::snapshot::FencedSnapshots;
    use std::sync::Arc;
    let url = sluice_tests::services::postgres_url();
    let store: Arc<dyn SnapshotStore> = Arc::new(PgSnapshotStore::connect(&url).await.unwrap());
    assert!(store.fences());
    let job = format!("pg_fence_test_{}", std::process::id());
    let (old_owner, new_owner) = (FencedSnapshots::new(store.clone(), 3), FencedSnapshots::new(store.clone(), 4));
    old_owner.put(&Snapshot::empty(&job, "1-1"), 5).await.unwrap();
    store.raise_fence(&job, 4).await.unwrap();
    let refused = old_owner.put(&Snapshot::empty(&job, "1-2"), 5).await;
    assert!(
        matches!(refused, Err(SnapshotError::Fenced { epoch: 3, fence: 4, .. })),
        "the zombie's write is refused: {refused:?}"
    );
    new_owner.put(&Snapshot::empty(&job, "1-3"), 5).await.unwrap();
    assert_eq!(store.list(&job).await.unwrap(), ["1-1", "1-3"], "nothing of the refused put was stored");
    // A later owner's first put fences out the one before it, too.
    FencedSnapshots::new(store.clone(), 7).put(&Snapshot::empty(&job, "1-4"), 5).await.unwrap();
    assert!(matches!(new_owner.put(&Snapshot::empty(&job, "1-5"), 5).await, Err(SnapshotError::Fenced { .. })));
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("delete from sluice_snapshots where job = $1").bind(&job).execute(&pool).await.unwrap();
    sqlx::query("delete from sluice_snapshot_fences where job = $1").bind(&job).execute(&pool).await.unwrap();
}

/// Against a real S3-protocol server: objects `PREFIX/<job>/<id>[.delta].snapshot`.
#[tokio::test]
async fn object_store_chains_increments_keeps_bases_and_skips_damage() {
    let server = S3Server::start().await;
    let url = format!("s3://{}/team/snaps", server.bucket);
    let store = ObjectSnapshotStore::connect_with(&url, server.options()).await.unwrap();
    let job = "orders__count";
    let damage = async |id: &str| {
        // Cut the stored object in half, as a torn or corrupt upload would.
        let dir = server.object_file(&format!("team/snaps/{job}"));
        let file = [format!("{id}.snapshot"), format!("{id}.delta.snapshot")]
            .map(|name| dir.join(name))
            .into_iter()
            .find(|f| f.exists())
            .unwrap_or_else(|| panic!("no object for snapshot {id} in {}", dir.display()));
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    };
    keeps_the_store_contract(&store, job, damage).await;
    let mut objects: Vec<_> = std::fs::read_dir(server.object_file(&format!("team/snaps/{job}")))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    objects.sort();
    assert_eq!(objects, ["1-3.snapshot", "1-4.delta.snapshot", "1-5.delta.snapshot"], "the local layout");
}

/// Fencing on S3, as on PostgreSQL above: once the fence is raised to 2,
/// a put of epoch 1 is refused and the put of epoch 2 lands. S3 cannot
/// refuse a write that passed the check before the raise and lands after
/// it, so the store hides it instead: such a write (made here straight in
/// the bucket) is never listed nor restored. A zombie that stalled between
/// check and write is refused once it reads the raised fence, deletes
/// nothing (its object stays hidden until the new owner's retention), and
/// expires none of the new owner's snapshots. Snapshots from before
/// fencing still load.
#[tokio::test]
async fn object_store_fences_out_an_older_lease_epoch() {
    use sluice_runtime::snapshot::FencedSnapshots;
    use std::sync::Arc;
    let server = S3Server::start().await;
    let url = format!("s3://{}/team/snaps", server.bucket);
    let s3 = Arc::new(ObjectSnapshotStore::connect_with(&url, server.options()).await.unwrap());
    let store: Arc<dyn SnapshotStore> = s3.clone();
    assert!(store.fences());
    let job = "orders__count";
    let dir = server.object_file(&format!("team/snaps/{job}"));
    let objects = || {
        let mut names: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };

    // Before fencing: an unfenced put, named as snapshots were before.
    store.put(&Snapshot::empty(job, "1-1"), 5).await.unwrap();
    assert_eq!(objects(), ["1-1.snapshot"]);
    let (old_owner, new_owner) = (FencedSnapshots::new(store.clone(), 1), FencedSnapshots::new(store.clone(), 2));
    store.raise_fence(job, 1).await.unwrap();
    old_owner.put(&Snapshot::empty(job, "1-2"), 5).await.unwrap();

    // The takeover: what was visible stays visible, and the old owner is refused.
    store.raise_fence(job, 2).await.unwrap();
    let fence: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("_fence.json")).unwrap()).unwrap();
    let listed = serde_json::json!([{"id": "1-1", "epoch": 0}, {"id": "1-2", "epoch": 1}]);
    assert_eq!(fence, serde_json::json!({"epoch": 2, "valid": listed}));
    let refused = old_owner.put(&Snapshot::empty(job, "1-3"), 5).await;
    assert!(
        matches!(refused, Err(SnapshotError::Fenced { epoch: 1, fence: 2, .. })),
        "the zombie's write is refused: {refused:?}"
    );
    new_owner.put(&Snapshot::empty(job, "1-4"), 5).await.unwrap();
    assert_eq!(store.list(job).await.unwrap(), ["1-1", "1-2", "1-4"], "nothing of the refused put is listed");

    // An epoch-1 write that passed its check before the raise lands after it.
    std::fs::write(dir.join("1-5.e1.snapshot"), Snapshot::empty(job, "1-5").encode()).unwrap();
    assert_eq!(store.list(job).await.unwrap(), ["1-1", "1-2", "1-4"], "the late write is hidden");
    assert_eq!(store.latest(job).await.unwrap().unwrap().meta.id, "1-4", "and never restored");
    assert!(matches!(store.get(job, "1-5").await, Err(SnapshotError::NotFound { .. })));
    assert_eq!(store.load(job, "1-1").await.unwrap().meta.id, "1-1", "a snapshot without an epoch still loads");
    assert_eq!(store.load(job, "1-2").await.unwrap().meta.id, "1-2");

    // A zombie that stalled between its check and its write, keeping only
    // one snapshot: refused once it sees the fence, and it deletes nothing.
    let stalled = s3.put_after_check(&Snapshot::empty(job, "1-6"), 1, 1).await;
    assert!(matches!(stalled, Err(SnapshotError::Fenced { epoch: 1, fence: 2, .. })), "{stalled:?}");
    assert_eq!(store.list(job).await.unwrap(), ["1-1", "1-2", "1-4"], "the new owner's snapshots are kept");
    assert!(objects().contains(&"1-6.e1.snapshot".to_owned()), "the stalled write stays, hidden");

    // The new owner's retention drops the hidden late writes.
    new_owner.put(&Snapshot::empty(job, "1-7"), 2).await.unwrap();
    assert_eq!(objects(), ["1-4.e2.snapshot", "1-7.e2.snapshot", "_fence.json"]);

    // A later owner's first put fences out the one before it, too.
    FencedSnapshots::new(store.clone(), 3).put(&Snapshot::empty(job, "1-8"), 5).await.unwrap();
    assert!(matches!(new_owner.put(&Snapshot::empty(job, "1-9"), 5).await, Err(SnapshotError::Fenced { .. })));
    store.raise_fence(job, 2).await.unwrap();
    assert_eq!(store.list(job).await.unwrap(), ["1-4", "1-7", "1-8"], "a fence is never lowered");
}

/// The race a one-step raise lost: a zombie's put that lands between the
/// new owner's listing and its fence write must not succeed while the
/// fence then hides it. With the two-step raise, a put that reads the
/// pending fence (step A) is refused and deletes nothing; the listing of
/// step B comes after its write, so the new owner keeps and restores it.
/// A raiser that finds a pending fence (its raiser died between the
/// steps) keeps what that fence showed.
#[tokio::test]
async fn object_store_refuses_a_zombie_put_during_a_pending_raise() {
    use sluice_runtime::snapshot::FencedSnapshots;
    use std::sync::Arc;
    let server = S3Server::start().await;
    let url = format!("s3://{}/team/snaps", server.bucket);
    let s3 = Arc::new(ObjectSnapshotStore::connect_with(&url, server.options()).await.unwrap());
    let store: Arc<dyn SnapshotStore> = s3.clone();
    let job = "orders__race";
    let dir = server.object_file(&format!("team/snaps/{job}"));
    let fence =
        || -> serde_json::Value { serde_json::from_slice(&std::fs::read(dir.join("_fence.json")).unwrap()).unwrap() };
    let zombie = FencedSnapshots::new(store.clone(), 1);
    zombie.put(&Snapshot::empty(job, "2-1"), 5).await.unwrap();

    // The new owner's step A: epoch 2 is published, showing what epoch 1 did.
    s3.raise_pending(job, 2).await.unwrap();
    let prior = serde_json::json!({"epoch": 1, "valid": []});
    assert_eq!(fence(), serde_json::json!({"epoch": 2, "valid": [], "prior": prior}));
    assert_eq!(store.list(job).await.unwrap(), ["2-1"], "a pending fence hides nothing new");

    // The zombie, past its check, lands its object now: refused, kept.
    let stalled = s3.put_after_check(&Snapshot::empty(job, "2-2"), 1, 1).await;
    assert!(matches!(stalled, Err(SnapshotError::Fenced { epoch: 1, fence: 2, .. })), "{stalled:?}");
    assert!(dir.join("2-2.e1.snapshot").exists(), "a refused put deletes nothing");
    assert!(dir.join("2-1.e1.snapshot").exists(), "nor expires anything");
    let checked = zombie.put(&Snapshot::empty(job, "2-3"), 5).await;
    assert!(matches!(checked, Err(SnapshotError::Fenced { epoch: 1, fence: 2, .. })), "{checked:?}");
    assert!(!dir.join("2-3.e1.snapshot").exists(), "a put that checks the pending fence writes nothing");

    // Step B lists after the zombie's write: the new owner keeps and restores it.
    store.raise_fence(job, 2).await.unwrap();
    let listed = serde_json::json!([{"id": "2-1", "epoch": 1}, {"id": "2-2", "epoch": 1}]);
    assert_eq!(fence(), serde_json::json!({"epoch": 2, "valid": listed}));
    assert_eq!(store.latest(job).await.unwrap().unwrap().meta.id, "2-2", "restored by the new owner");
    // A write after the listing is hidden.
    let late = s3.put_after_check(&Snapshot::empty(job, "2-4"), 1, 1).await;
    assert!(matches!(late, Err(SnapshotError::Fenced { .. })), "{late:?}");
    assert_eq!(store.list(job).await.unwrap(), ["2-1", "2-2"], "the write after step B is hidden");

    // An owner of epoch 3 dies between its steps; the pending fence still
    // shows what epoch 2 did, refuses epoch 2, and the next owner's first
    // put raises past it, keeping that.
    s3.raise_pending(job, 3).await.unwrap();
    assert_eq!(store.list(job).await.unwrap(), ["2-1", "2-2"], "pending: epoch 2's rule");
    let owner_2 = FencedSnapshots::new(store.clone(), 2);
    assert!(matches!(owner_2.put(&Snapshot::empty(job, "2-5"), 5).await, Err(SnapshotError::Fenced { fence: 3, .. })));
    FencedSnapshots::new(store.clone(), 4).put(&Snapshot::empty(job, "2-6"), 5).await.unwrap();
    let listed = serde_json::json!([{"id": "2-1", "epoch": 1}, {"id": "2-2", "epoch": 1}]);
    assert_eq!(fence(), serde_json::json!({"epoch": 4, "valid": listed}));
    assert_eq!(store.list(job).await.unwrap(), ["2-1", "2-2", "2-6"]);

    // An owner whose own raise stopped at step A finishes it with its first put.
    s3.raise_pending(job, 5).await.unwrap();
    FencedSnapshots::new(store.clone(), 5).put(&Snapshot::empty(job, "2-7"), 5).await.unwrap();
    let listed = serde_json::json!([
        {"id": "2-1", "epoch": 1}, {"id": "2-2", "epoch": 1}, {"id": "2-6", "epoch": 4}
    ]);
    assert_eq!(fence(), serde_json::json!({"epoch": 5, "valid": listed}));
    assert_eq!(store.list(job).await.unwrap(), ["2-1", "2-2", "2-6", "2-7"]);
}

/// A bucket that does not exist fails the start, naming the URL.
#[tokio::test]
async fn object_store_with_a_missing_bucket_fails_at_start() {
    let server = S3Server::start().await;
    let err = ObjectSnapshotStore::connect_with("s3://no-such-bucket/snaps", server.options())
        .await
        .err()
        .expect("the bucket is missing");
    let text = err.to_string();
    assert!(text.starts_with("snapshot storage s3://no-such-bucket/snaps: cannot list the bucket"), "{text}");
    assert!(text.contains("NoSuchBucket"), "{text}");
}
