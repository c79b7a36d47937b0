//! A task run under a worker's lease writes nothing once the lease is gone
//! (scale-out: a paused or cut-off worker whose runs were taken over).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_runtime::connectors::memory::{MemorySink, MemorySource};
use sluice_runtime::job::{LeaseGate, LeaseLost, TaskBuilder, TaskError};
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
