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

/// A dimension store whose upserts wait in memory until [`commit`](Self::commit).
pub struct StagedDimension {
    store: Arc<dyn DimensionStore>,
    pending: Mutex<HeldRows>,
}

impl StagedDimension {
    pub fn new(store: Arc<dyn DimensionStore>) -> Self {
        StagedDimension { store, pending: Mutex::default() }
    }

    /// The writes not yet applied to the store, in key order.
    pub fn pending(&self) -> PendingWrites {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Applies `writes` to the store and forgets them as pending (a pending
    /// write of the same key made since is kept).
    pub async fn commit(&self, writes: &PendingWrites) -> Result<(), ConnectorError> {
        for (key, row) in writes {
            self.store.upsert(key, row).await?;
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
}
