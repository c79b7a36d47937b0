//! The lease a task runs under, when a worker of a shared deployment runs
//! it: a worker holds each run by a lease it renews in the metadata store,
//! and another worker may take the run over once the lease has expired. A
//! task must not write anything (sink rows, snapshots, dimension commits)
//! once its worker can no longer be sure it still holds the lease, so the
//! worker keeps a deadline here — a little before the lease can expire
//! for anyone else, measured on the monotonic clock, which keeps running
//! while a process is paused — and the task checks it before every write.
//!
//! The gate cannot stop a write already under way when the process froze.
//! The stores that can refuse one do, by the lease's fencing epoch: the
//! snapshot store (`FencedSnapshots`) and the dimension stores with
//! `writes = "snapshot"` (`TaskBuilder::lease_fences`: a job fence at the
//! run's floor epoch and a task fence at the task's own); their refusal is
//! a [`LeaseLost`] too.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A deadline after which the task holding this gate writes nothing more.
/// Shared between the worker (which extends it on every renewal) and the
/// task (which checks it).
#[derive(Debug)]
pub struct LeaseGate {
    /// Microseconds since [`origin`] until which writes are allowed;
    /// `u64::MAX` for a task without a lease (`sluice run`, tests).
    valid_until_us: AtomicU64,
    /// Set when the worker learns that the lease went to someone else.
    revoked: std::sync::atomic::AtomicBool,
}

/// The process-wide origin of the deadlines.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn micros_since_origin(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin()).as_micros()).unwrap_or(u64::MAX)
}

impl Default for LeaseGate {
    fn default() -> Self {
        LeaseGate::unbounded()
    }
}

impl LeaseGate {
    /// A gate that never closes: the task runs without a lease.
    pub fn unbounded() -> LeaseGate {
        LeaseGate { valid_until_us: AtomicU64::new(u64::MAX), revoked: false.into() }
    }

    /// A gate open until `valid_for` after `renewed_at` (the instant the
    /// renewal that granted it was sent).
    pub fn until(renewed_at: Instant, valid_for: Duration) -> LeaseGate {
        let gate = LeaseGate { valid_until_us: AtomicU64::new(0), revoked: false.into() };
        gate.extend(renewed_at, valid_for);
        gate
    }

    /// Moves the deadline to `valid_for` after `renewed_at`, never back.
    pub fn extend(&self, renewed_at: Instant, valid_for: Duration) {
        origin();
        // A deadline before the origin is 0: closed.
        let until = renewed_at.checked_add(valid_for).map_or(u64::MAX, micros_since_origin);
        self.valid_until_us.fetch_max(until, Ordering::SeqCst);
    }

    /// Closes the gate for good: the lease went to another worker.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    /// Whether writes are still allowed now.
    pub fn is_open(&self) -> bool {
        !self.revoked.load(Ordering::SeqCst)
            && micros_since_origin(Instant::now()) < self.valid_until_us.load(Ordering::SeqCst)
    }

    /// `Ok` while writes are allowed, else why not.
    pub fn check(&self) -> Result<(), LeaseLost> {
        if self.is_open() {
            Ok(())
        } else if self.revoked.load(Ordering::SeqCst) {
            Err(LeaseLost::Revoked)
        } else {
            Err(LeaseLost::Expired)
        }
    }
}

/// Why a task may no longer write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    #[error("the worker's lease on the run went to another worker")]
    Revoked,
    #[error("the worker could not renew its lease on the run in time")]
    Expired,
    /// A store's fence refused a commit: another worker holds the job under
    /// a newer lease epoch, though this worker's gate was still open (a
    /// commit under way when the process froze, or a takeover the worker
    /// has not heard of yet).
    #[error(
        "{store} refused a commit under lease epoch {epoch}: another worker took the job over under epoch {fenced_at}"
    )]
    Fenced {
        /// The store, e.g. "redis dimension `users`".
        store: String,
        epoch: u64,
        fenced_at: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unbounded_gate_stays_open() {
        assert!(LeaseGate::unbounded().is_open());
    }

    #[test]
    fn a_gate_closes_at_its_deadline_and_renewals_move_it() {
        let gate = LeaseGate::until(Instant::now(), Duration::from_secs(2));
        assert!(gate.is_open());
        let gate = LeaseGate::until(Instant::now() - Duration::from_secs(3), Duration::from_secs(2));
        assert_eq!(gate.check(), Err(LeaseLost::Expired));
        gate.extend(Instant::now(), Duration::from_secs(5));
        assert!(gate.is_open());
        // A late renewal answer does not move it back.
        gate.extend(Instant::now() - Duration::from_secs(10), Duration::from_secs(1));
        assert!(gate.is_open());
    }

    #[test]
    fn a_deadline_already_past_is_closed() {
        assert!(!LeaseGate::until(Instant::now() - Duration::from_secs(10), Duration::from_secs(1)).is_open());
    }

    #[test]
    fn a_revoked_gate_stays_closed() {
        let gate = LeaseGate::until(Instant::now(), Duration::from_secs(60));
        gate.revoke();
        assert_eq!(gate.check(), Err(LeaseLost::Revoked));
        gate.extend(Instant::now(), Duration::from_secs(60));
        assert!(!gate.is_open());
    }
}
