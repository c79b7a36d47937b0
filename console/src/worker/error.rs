//! What can go wrong when the worker starts, stops or snapshots a job, by
//! who can fix it: the tenant (a spec, a quota, a choice of snapshot), the
//! caller's timing (the job is not running, already running), or the
//! platform (its metadata or snapshot store), whose details are logged and
//! never shown to a tenant.

use sluice_runtime::snapshot::SnapshotError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// What the deployment asks for cannot run as it is: its spec, its
    /// connections, a ceiling or quota it passes, the snapshot it names.
    /// The message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The job's task could not be built or failed as it ran (a connector
    /// that cannot connect, a component that traps); the tenant's to read.
    #[error("{0}")]
    Task(String),
    /// The job is not in a state for this now (not running, already
    /// running, held by another worker, did not stop in time).
    #[error("{0}")]
    Conflict(String),
    /// Something the run needs was deleted meanwhile.
    #[error("{0}")]
    Gone(String),
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    /// The snapshot store failed.
    #[error(transparent)]
    Snapshots(#[from] SnapshotError),
}

impl WorkerError {
    /// A message for a task that failed (kept short: it goes into events).
    pub fn task(e: impl std::fmt::Display) -> WorkerError {
        WorkerError::Task(e.to_string())
    }
}

/// The worker's results.
pub type WorkerResult<T> = Result<T, WorkerError>;
