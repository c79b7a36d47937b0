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

    /// What a tenant may read of it (a run's stored error): the platform's
    /// own failures are logged here and named only generically.
    pub fn for_tenant(&self) -> String {
        match self {
            WorkerError::Store(_) | WorkerError::Snapshots(_) => {
                tracing::error!(error = %self, "a run could not start");
                "the platform's storage failed; an operator finds the details in the worker's log".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// The worker's results.
pub type WorkerResult<T> = Result<T, WorkerError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_reads_its_own_mistakes_but_not_the_platforms_storage() {
        let spec = WorkerError::Invalid("spec: `bogus` is unknown".into());
        assert_eq!(spec.for_tenant(), "spec: `bogus` is unknown");
        let storage = WorkerError::Snapshots(SnapshotError::Storage {
            location: "postgres://sluice:***@db.internal/meta".into(),
            message: "relation sluice_snapshots does not exist".into(),
        });
        let shown = storage.for_tenant();
        assert!(!shown.contains("db.internal") && !shown.contains("relation"), "{shown}");
    }
}
