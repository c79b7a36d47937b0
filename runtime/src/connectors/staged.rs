//! Dimension writes held back until a snapshot commits them.
//!
//! A job that looks a key up and then updates it (premium-drop) reads what
//! it wrote itself. If those writes reached the store at once, a replay after
//! a restore would look up values newer than the snapshot and decide
//! differently from a run without failure. With `writes = "snapshot"` the
//! writes stay in a [`StagedDimension`] (visible to the job's own lookups),
//! go into the next snapshot, and are applied to the store once that
//! snapshot is stored; a restore applies the snapshot's writes again
//! (upserts are idempotent), so the store always matches the state the job
//! resumes from. This is Flink's two-phase-commit sink pattern: other readers
//! of the store see the job's writes at each snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::held_rows::HeldRows;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ConnectorError, DimensionStore};

/// When a dimension store's upserts reach the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// At once (written through the cache).
    #[default]
    Immediate,
    /// With the next snapshot, so a restore replays against the store as the
    /// snapshot saw it (effectively once). Needs a snapshot store.
    Snapshot,
}

/// Upserts since the last snapshot, by key: the last write of a key wins.
pub type PendingWrites = Vec<(Vec<u8>, Vec<u8>)>;

/// The fences a task commits under when it runs under a worker's lease:
/// the store refuses a commit when any of them stands above the epoch the
/// task holds it at (a newer owner raised it), and otherwise raises them
/// all to those epochs with the writes ([`DimensionStore::commit_fenced`]).
///
/// A task commits under two fences, because the partition groups of a run
/// each hold their own lease, with their own epoch:
/// - the job's ([`fence_name`]) at the run's *floor* epoch, the same for
///   all tasks of the run and above every epoch of the job's earlier runs:
///   it refuses every task of an older run, at whatever parallelism, yet
///   never a sibling task of the same run (whose own epoch may be higher);
/// - the task's ([`task_fence_name`]) at the task's own lease epoch: it
///   refuses the task's previous holder after a takeover within the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionFence {
    /// Each fence's name in the store and the epoch the task holds it at;
    /// the names are distinct.
    pub fences: Vec<(String, u64)>,
}

impl DimensionFence {
    /// The fences of dimension `dimension` for the task `task_key` of job
    /// `job` (its snapshot key; with one partition group it equals `job`),
    /// which holds lease `epoch` in a run whose floor epoch is `run_floor`.
    pub fn for_task(job: &str, run_floor: u64, task_key: &str, epoch: u64, dimension: &str) -> Self {
        DimensionFence {
            fences: vec![(fence_name(job, dimension), run_floor), (task_fence_name(task_key, dimension), epoch)],
        }
    }
}

/// The name of a dimension's job fence in its store: the job (one fence
/// for all its partition groups and runs) and the dimension's name (a
/// checked identifier, so the last `:` splits them).
pub fn fence_name(job: &str, dimension: &str) -> String {
    format!("{job}:{dimension}")
}

/// The name of a dimension's task fence in its store: `{task_key}@task:{dimension}`.
/// Job and task keys are letters, digits, `-` and `_`, so the first other
/// character of a fence's name is `:` in a job fence and `@` in a task
/// fence: the two never share a name, even when the task key is the job's
/// (a run of one partition group).
pub fn task_fence_name(task_key: &str, dimension: &str) -> String {
    format!("{task_key}@task:{dimension}")
}

/// A dimension store whose upserts wait in memory until [`commit`](Self::commit).
pub struct StagedDimension {
    store: Arc<dyn DimensionStore>,
    pending: Mutex<HeldRows>,
    /// Set under a lease: commits go through the store's fences.
    fence: Option<DimensionFence>,
    /// Whether a fenced commit went through (and so raised the fence): a
    /// commit with nothing to write can then skip the store.
    fence_raised: AtomicBool,
}

impl StagedDimension {
    pub fn new(store: Arc<dyn DimensionStore>) -> Self {
        StagedDimension::fenced(store, None)
    }

    /// A staged dimension whose commits, with `fence`, are fenced
    /// ([`DimensionStore::commit_fenced`]); without, plain upserts as
    /// [`new`](Self::new) (a task without a lease).
    pub fn fenced(store: Arc<dyn DimensionStore>, fence: Option<DimensionFence>) -> Self {
        StagedDimension { store, pending: Mutex::default(), fence, fence_raised: AtomicBool::new(false) }
    }

    /// The writes not yet applied to the store, in key order.
    pub fn pending(&self) -> PendingWrites {
        self.lock().sorted().into_iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Applies `writes` to the store and forgets them as pending (a pending
    /// write of the same key made since is kept). Under a fence the store
    /// applies them all or, when the job or the task has a newer owner,
    /// none ([`ConnectorError::Fenced`]); the first fenced commit goes to
    /// the store even with nothing to write, to raise the fences.
    pub async fn commit(&self, writes: &[(Vec<u8>, Vec<u8>)]) -> Result<(), ConnectorError> {
        match &self.fence {
            Some(fence) => {
                if writes.is_empty() && self.fence_raised.load(Ordering::SeqCst) {
                    return Ok(());
                }
                self.store.commit_fenced(&fence.fences, writes).await?;
                self.fence_raised.store(true, Ordering::SeqCst);
            }
            None => {
                for (key, row) in writes {
                    self.store.upsert(key, row).await?;
                }
            }
        }
        let mut pending = self.lock();
        for (key, row) in writes {
            if pending.get(key) == Some(row) {
                pending.remove(key);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HeldRows> {
        self.pending.lock().expect("staged writes lock")
    }
}

#[async_trait]
impl DimensionStore for StagedDimension {
    async fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError> {
        if let Some(row) = self.lock().get(key) {
            return Ok(Some(row.clone()));
        }
        self.store.lookup(key).await
    }

    async fn upsert(&self, key: &[u8], row: &[u8]) -> Result<(), ConnectorError> {
        self.lock().insert(key.to_vec(), row.to_vec());
        Ok(())
    }

    /// The store's rows as the job sees them: with the pending writes.
    async fn rows(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ConnectorError> {
        let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = self.store.rows().await?.into_iter().collect();
        rows.extend(self.pending());
        Ok(rows.into_iter().collect())
    }

    fn held_bytes(&self) -> usize {
        self.lock().bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::memory::MemoryDimension;

    #[tokio::test]
    async fn writes_are_seen_by_the_job_and_reach_the_store_on_commit() {
        let store = Arc::new(MemoryDimension::default());
        store.upsert(b"a", b"1").await.unwrap();
        let staged = StagedDimension::new(store.clone());

        staged.upsert(b"a", b"2").await.unwrap();
        staged.upsert(b"b", b"3").await.unwrap();
        assert_eq!(staged.lookup(b"a").await.unwrap(), Some(b"2".to_vec()), "reads its own write");
        assert_eq!(store.lookup(b"a").await.unwrap(), Some(b"1".to_vec()), "the store is untouched");
        assert_eq!(staged.rows().await.unwrap(), vec![(b"a".to_vec(), b"2".to_vec()), (b"b".to_vec(), b"3".to_vec())]);

        let writes = staged.pending();
        staged.upsert(b"b", b"4").await.unwrap(); // after the snapshot was cut
        staged.commit(&writes).await.unwrap();
        assert_eq!(store.rows().await.unwrap(), vec![(b"a".to_vec(), b"2".to_vec()), (b"b".to_vec(), b"3".to_vec())]);
        assert_eq!(staged.pending(), vec![(b"b".to_vec(), b"4".to_vec())], "a newer write stays pending");
        assert_eq!(staged.held_bytes(), 2, "only what is pending is held (and counted against the state limit)");
        assert_eq!(staged.lookup(b"b").await.unwrap(), Some(b"4".to_vec()));
    }

    #[test]
    fn a_task_fence_never_shares_a_name_with_a_job_fence() {
        // One partition group: the task's key is the job's.
        let fence = DimensionFence::for_task("demo__premium-drop", 3, "demo__premium-drop", 4, "users");
        let names: Vec<&str> = fence.fences.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["demo__premium-drop:users", "demo__premium-drop@task:users"]);
    }

    /// A fenced commit's fences and how many rows it wrote.
    type Commit = (Vec<(String, u64)>, usize);

    /// Records the fenced commits that reach it.
    #[derive(Default)]
    struct Fenced {
        inner: MemoryDimension,
        commits: Mutex<Vec<Commit>>,
    }

    #[async_trait]
    impl DimensionStore for Fenced {
        async fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError> {
            self.inner.lookup(key).await
        }
        async fn upsert(&self, key: &[u8], row: &[u8]) -> Result<(), ConnectorError> {
            self.inner.upsert(key, row).await
        }
        async fn rows(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ConnectorError> {
            self.inner.rows().await
        }
        async fn commit_fenced(
            &self,
            fences: &[(String, u64)],
            writes: &[(Vec<u8>, Vec<u8>)],
        ) -> Result<(), ConnectorError> {
            self.commits.lock().unwrap().push((fences.to_vec(), writes.len()));
            for (key, row) in writes {
                self.inner.upsert(key, row).await?;
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn under_a_fence_commits_go_through_the_stores_fence_and_the_first_raises_it() {
        let store = Arc::new(Fenced::default());
        let fence = DimensionFence::for_task("demo__premium-drop", 5, "demo__premium-drop__p0-of-2", 7, "users");
        let fences =
            vec![("demo__premium-drop:users".to_owned(), 5), ("demo__premium-drop__p0-of-2@task:users".to_owned(), 7)];
        assert_eq!(fence.fences, fences, "the job's fence at the run's floor, the task's at its epoch");
        let staged = StagedDimension::fenced(store.clone(), Some(fence));

        staged.commit(&[]).await.unwrap();
        staged.commit(&[]).await.unwrap();
        staged.upsert(b"a", b"1").await.unwrap();
        staged.commit(&staged.pending()).await.unwrap();
        let commits = store.commits.lock().unwrap().clone();
        assert_eq!(commits, vec![(fences.clone(), 0), (fences, 1)], "an empty commit once raised is skipped");
        assert_eq!(store.inner.lookup(b"a").await.unwrap(), Some(b"1".to_vec()));
        assert!(staged.pending().is_empty());

        let unfenced = StagedDimension::new(store.clone());
        unfenced.upsert(b"b", b"2").await.unwrap();
        unfenced.commit(&unfenced.pending()).await.unwrap();
        assert_eq!(store.commits.lock().unwrap().len(), 2, "without a fence: plain upserts");
        assert_eq!(store.inner.lookup(b"b").await.unwrap(), Some(b"2".to_vec()));
    }
}
