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

/// The fence a task commits under when it runs under a worker's lease:
/// the store refuses commits of an older epoch than the newest it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionFence {
    /// [`fence_name`] of the job and the dimension.
    pub name: String,
    /// The lease epoch the task holds the job at.
    pub epoch: u64,
}

impl DimensionFence {
    /// The fence of dimension `dimension` of job `job` (the same for all
    /// its partition groups), under lease `epoch`.
    pub fn new(job: &str, dimension: &str, epoch: u64) -> Self {
        DimensionFence { name: fence_name(job, dimension), epoch }
    }
}

/// The name of a dimension's fence in its store: the job (one fence for
/// all its partition groups, which hold one epoch) and the dimension's
/// name (a checked identifier, so the last `:` splits them).
pub fn fence_name(job: &str, dimension: &str) -> String {
    format!("{job}:{dimension}")
}

/// A dimension store whose upserts wait in memory until [`commit`](Self::commit).
pub struct StagedDimension {
    store: Arc<dyn DimensionStore>,
    pending: Mutex<HeldRows>,
    /// Set under a lease: commits go through the store's fence.
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
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Applies `writes` to the store and forgets them as pending (a pending
    /// write of the same key made since is kept). Under a fence the store
    /// applies them all or, when the job has a newer owner, none
    /// ([`ConnectorError::Fenced`]); the first fenced commit goes to the
    /// store even with nothing to write, to raise the fence.
    pub async fn commit(&self, writes: &[(Vec<u8>, Vec<u8>)]) -> Result<(), ConnectorError> {
        match &self.fence {
            Some(fence) => {
                if writes.is_empty() && self.fence_raised.load(Ordering::SeqCst) {
                    return Ok(());
                }
                self.store.commit_fenced(&fence.name, fence.epoch, writes).await?;
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

    /// Records the fenced commits that reach it.
    #[derive(Default)]
    struct Fenced {
        inner: MemoryDimension,
        commits: Mutex<Vec<(String, u64, usize)>>,
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
            fence: &str,
            epoch: u64,
            writes: &[(Vec<u8>, Vec<u8>)],
        ) -> Result<(), ConnectorError> {
            self.commits.lock().unwrap().push((fence.to_owned(), epoch, writes.len()));
            for (key, row) in writes {
                self.inner.upsert(key, row).await?;
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn under_a_fence_commits_go_through_the_stores_fence_and_the_first_raises_it() {
        let store = Arc::new(Fenced::default());
        let fence = DimensionFence::new("demo__premium-drop__p0-of-2", "users", 7);
        assert_eq!(fence.name, "demo__premium-drop__p0-of-2:users");
        let staged = StagedDimension::fenced(store.clone(), Some(fence));

        staged.commit(&[]).await.unwrap();
        staged.commit(&[]).await.unwrap();
        staged.upsert(b"a", b"1").await.unwrap();
        staged.commit(&staged.pending()).await.unwrap();
        let commits = store.commits.lock().unwrap().clone();
        let name = "demo__premium-drop__p0-of-2:users".to_owned();
        assert_eq!(commits, vec![(name.clone(), 7, 0), (name, 7, 1)], "an empty commit once raised is skipped");
        assert_eq!(store.inner.lookup(b"a").await.unwrap(), Some(b"1".to_vec()));
        assert!(staged.pending().is_empty());

        let unfenced = StagedDimension::new(store.clone());
        unfenced.upsert(b"b", b"2").await.unwrap();
        unfenced.commit(&unfenced.pending()).await.unwrap();
        assert_eq!(store.commits.lock().unwrap().len(), 2, "without a fence: plain upserts");
        assert_eq!(store.inner.lookup(b"b").await.unwrap(), Some(b"2".to_vec()));
    }
}
