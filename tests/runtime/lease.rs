//! A task run under a worker's lease writes nothing once the lease is gone
//! (scale-out: a paused or cut-off worker whose runs were taken over), and
//! its dimension stores refuse its commits once a newer owner fenced them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::memory::{MemorySink, MemorySource};
use sluice_runtime::job::{JobSpec, LeaseGate, LeaseLost, TaskBuilder, TaskError};
use sluice_runtime::snapshot::LocalSnapshotStore;
use sluice_tests::services::redis_url;
use sluice_tests::{engine, load};

use crate::hostile::{GENEROUS, HOSTILE, ROOMY, ok_batches, spec};

/// Runs 50 records through the forwarding guest under `gate`; returns the
/// task's outcome and the rows its sink received.
async fn run_under(job: &str, gate: Arc<LeaseGate>) -> (Result<sluice_runtime::job::TaskEnd, TaskError>, usize) {
    let spec = spec(job, ROOMY, &[]);
    let component = load(HOSTILE).await.expect("the guest loads");
    let out = MemorySink::default();
    let task = TaskBuilder::new(&spec)
        .source("input", Box::new(MemorySource::new(ok_batches(50, 10))))
        .sink("out", Box::new(out.clone()))
        .lease(gate)
        .build(engine(), &component)
        .await
        .expect("the task builds");
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let result = tokio::time::timeout(GENEROUS, task.run(stop_rx)).await.expect("the task ends");
    (result, out.rows().len())
}

#[tokio::test]
async fn a_task_whose_lease_expired_or_was_revoked_writes_no_row() {
    let (result, rows) =
        run_under("lease-held", Arc::new(LeaseGate::until(Instant::now(), Duration::from_secs(60)))).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(rows, 50, "under a held lease every row is written");

    // Renewed last a while ago: the deadline has passed (a paused worker).
    let expired = Arc::new(LeaseGate::until(Instant::now() - Duration::from_secs(10), Duration::from_secs(1)));
    let (result, rows) = run_under("lease-expired", expired).await;
    assert!(
        matches!(result, Err(TaskError::LeaseLost { reason: LeaseLost::Expired, .. })),
        "the task stops on the lapsed lease: {result:?}"
    );
    assert_eq!(rows, 0, "not one row written after the lease lapsed");

    let revoked = Arc::new(LeaseGate::until(Instant::now(), Duration::from_secs(60)));
    revoked.revoke();
    let (result, rows) = run_under("lease-revoked", revoked).await;
    assert!(matches!(result, Err(TaskError::LeaseLost { reason: LeaseLost::Revoked, .. })), "{result:?}");
    assert_eq!(rows, 0);
}

/// A task's lease, as [`TaskBuilder::lease_fences`] takes it: the job, the
/// floor epoch of its run, the task's key and its own epoch.
#[derive(Clone, Copy)]
struct Lease<'a> {
    job: &'a str,
    run_floor: u64,
    task_key: &'a str,
    epoch: u64,
}

impl<'a> Lease<'a> {
    /// A run of one partition group: the task's key is the job's, and the
    /// run's floor its only epoch.
    fn single(job: &'a str, epoch: u64) -> Self {
        Lease { job, run_floor: epoch, task_key: job, epoch }
    }
}

/// A task of the hostile guest as task `lease.task_key` reading `input` (a
/// file of commands), whose dimension `bomb` is Redis under `prefix` with
/// `writes = "snapshot"`, snapshotting into `dir`, under `gate` and `lease`.
async fn fenced_task(
    dir: &std::path::Path,
    prefix: &str,
    gate: Arc<LeaseGate>,
    lease: Lease<'_>,
) -> Result<sluice_runtime::job::Task, sluice_runtime::job::BuildError> {
    let text = format!(
        "name = \"{}\"\ncomponent = \"unused.wasm\"\n[sources.input]\nkind = \"file\"\npath = \"input.txt\"\n\
         [sinks.out]\nkind = \"memory\"\n\
         [dimensions.bomb]\nkind = \"redis\"\nconnection = \"cache\"\nkey_prefix = \"{prefix}\"\nwrites = \"snapshot\"\n",
        lease.task_key
    );
    let spec = JobSpec::parse(&text, dir).expect("test spec");
    let mut connections = Connections::default();
    connections.apply_override(&format!("cache={}", redis_url())).expect("a valid override");
    let component = load(HOSTILE).await.expect("the guest loads");
    TaskBuilder::new(&spec)
        .connections(connections)
        .sink("out", Box::new(MemorySink::default()))
        .dead_letter(Box::new(MemorySink::default()))
        .snapshots(Arc::new(LocalSnapshotStore::new(dir.join("snapshots"))))
        .lease(gate)
        .lease_fences(lease.job, lease.run_floor, lease.task_key, lease.epoch)
        .build(engine(), &component)
        .await
}

/// The rows under `prefix` as the guest's dimension `bomb` holds them,
/// read from Redis (not the task), and a clean-up of them.
async fn bomb_rows(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    keys.retain(|k| !k.starts_with(&format!("{prefix}sluice-fence:")));
    keys
}

async fn delete_keys(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    if !keys.is_empty() {
        redis.del::<_, ()>(keys).await.unwrap();
    }
}

/// The old owner of a job, its gate still open (it has not heard of the
/// takeover yet), commits its dimension writes after the new owner raised
/// the store's fence: the store refuses them, nothing is written, the task
/// ends as on a lost lease and its gate closes (so the run's other tasks
/// stop too). A task built under the old epoch is refused at once; under
/// the new one it runs and commits.
#[tokio::test]
async fn a_dimension_commit_from_an_older_epoch_is_refused_and_ends_the_task_as_a_lost_lease() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "dimension-bomb 2 8\n").unwrap();
    let prefix = format!("sluice-test:{}:lease-fence:", std::process::id());
    let job = "demo__lease-fence";
    let outcome = tokio::spawn({
        let (dir, prefix) = (dir.path().to_owned(), prefix.clone());
        async move {
            let held = || Arc::new(LeaseGate::until(Instant::now(), Duration::from_secs(60)));
            // Epoch 1 starts (raising the fence to 1).
            let old_gate = held();
            let old =
                fenced_task(&dir, &prefix, old_gate.clone(), Lease::single(job, 1)).await.expect("epoch 1 builds");

            // The takeover: the new owner raises the fence to 2 as it restores.
            let new_gate = held();
            let new =
                fenced_task(&dir, &prefix, new_gate.clone(), Lease::single(job, 2)).await.expect("epoch 2 builds");

            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let result = tokio::time::timeout(GENEROUS, old.run(stop_rx.clone())).await.expect("the task ends");
            match &result {
                Err(TaskError::LeaseLost { reason: LeaseLost::Fenced { store, epoch: 1, fenced_at: 2 }, .. })
                    if store.contains("`bomb`") => {}
                other => panic!("the old owner's commit is refused as a lost lease: {other:?}"),
            }
            assert!(!old_gate.is_open(), "the refusal closes the old owner's gate");
            assert_eq!(bomb_rows(&prefix).await, Vec::<String>::new(), "the old owner wrote nothing");

            let err =
                fenced_task(&dir, &prefix, held(), Lease::single(job, 1)).await.err().expect("epoch 1 is fenced off");
            assert!(err.to_string().contains("`bomb`") && err.to_string().contains("epoch 2"), "{err}");

            let result = tokio::time::timeout(GENEROUS, new.run(stop_rx)).await.expect("the task ends");
            assert!(result.is_ok(), "{result:?}");
            assert!(new_gate.is_open());
            assert_eq!(bomb_rows(&prefix).await.len(), 2, "the new owner's writes are committed");
        }
    })
    .await;
    delete_keys(&prefix).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// The partition groups of one run hold leases of their own, with epochs
/// of their own: a task whose epoch is below a sibling's still builds (its
/// fences raised) and commits, as the job's fence stands at the run's
/// floor; a task of an earlier run is refused, whatever its own epoch.
#[tokio::test]
async fn sibling_tasks_of_a_run_commit_under_their_own_epochs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "dimension-bomb 2 8\n").unwrap();
    let prefix = format!("sluice-test:{}:lease-siblings:", std::process::id());
    let job = "demo__lease-siblings";
    let outcome = tokio::spawn({
        let (dir, prefix) = (dir.path().to_owned(), prefix.clone());
        async move {
            let held = || Arc::new(LeaseGate::until(Instant::now(), Duration::from_secs(60)));
            let group = |task_key, epoch| Lease { job, run_floor: 3, task_key, epoch };
            let first = fenced_task(&dir, &prefix, held(), group("demo__lease-siblings__p0-of-2", 5)).await;
            let first = first.expect("the group at epoch 5 builds");
            let second = fenced_task(&dir, &prefix, held(), group("demo__lease-siblings__p1-of-2", 3)).await;
            let second = second.expect("its sibling at epoch 3 builds too");

            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            for (task, what) in [(second, "the group at epoch 3"), (first, "the group at epoch 5")] {
                let result = tokio::time::timeout(GENEROUS, task.run(stop_rx.clone())).await.expect("the task ends");
                assert!(result.is_ok(), "{what} commits: {result:?}");
            }
            assert_eq!(bomb_rows(&prefix).await.len(), 2, "the groups' writes are committed");

            // A task of the job's earlier run (floor 2), though its own
            // epoch is above both groups'.
            let earlier = Lease { job, run_floor: 2, task_key: "demo__lease-siblings__p0-of-2", epoch: 9 };
            let err = fenced_task(&dir, &prefix, held(), earlier).await.err().expect("an earlier run is fenced off");
            assert!(err.to_string().contains("epoch 2") && err.to_string().contains("epoch 3"), "{err}");
        }
    })
    .await;
    delete_keys(&prefix).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
