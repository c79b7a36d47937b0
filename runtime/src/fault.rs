//! Crash points for fault-injection tests. With `SLUICE_CRASH_AT=POINT:N`
//! the process aborts the N-th time it reaches `POINT`: no flush, no
//! snapshot, as if killed there. Tests use it to crash at exact code points
//! (mid-batch, between sink flushes, mid-snapshot write) that a timed
//! SIGKILL only hits by chance. Unset, a crash point costs one load of an
//! already-initialised `OnceLock`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The crash points, named where they are placed.
pub mod points {
    /// After the job processed a batch, before its rows are routed to sinks.
    pub const BATCH_PROCESSED: &str = "batch-processed";
    /// After one sink flushed and before the next (or the snapshot) did.
    pub const SINK_FLUSHED: &str = "sink-flushed";
    /// Half-way through writing a local snapshot's temporary file; in the
    /// PostgreSQL store, after the insert and before the commit.
    pub const SNAPSHOT_WRITTEN: &str = "snapshot-written";
    /// After a snapshot is stored, before its dimension writes are applied.
    pub const SNAPSHOT_STORED: &str = "snapshot-stored";
}

struct Plan {
    point: String,
    at: u64,
    hits: AtomicU64,
}

/// Aborts the process if this is the planned hit of `point`.
pub fn crash_point(point: &str) {
    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    let plan = PLAN.get_or_init(|| {
        let text = std::env::var("SLUICE_CRASH_AT").ok()?;
        let (point, at) = text.rsplit_once(':')?;
        Some(Plan { point: point.to_owned(), at: at.parse().ok()?, hits: AtomicU64::new(0) })
    });
    if let Some(plan) = plan
        && plan.point == point
        && plan.hits.fetch_add(1, Ordering::Relaxed) + 1 == plan.at
    {
        eprintln!("SLUICE_CRASH_AT: crash point `{point}` reached (hit {}), aborting", plan.at);
        std::process::abort();
    }
}
