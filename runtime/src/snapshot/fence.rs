//! A snapshot store seen through one lease: every put carries the lease's
//! epoch, so a store that fences refuses it once the job was taken over.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Snapshot, SnapshotError, SnapshotStore};

/// `inner`, with puts made by the owner of lease `epoch`.
pub struct FencedSnapshots {
    inner: Arc<dyn SnapshotStore>,
    epoch: u64,
}

impl FencedSnapshots {
    pub fn new(inner: Arc<dyn SnapshotStore>, epoch: u64) -> FencedSnapshots {
        FencedSnapshots { inner, epoch }
    }
}

#[async_trait]
impl SnapshotStore for FencedSnapshots {
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<u64, SnapshotError> {
        self.inner.put_fenced(snapshot, retain, self.epoch).await
    }

    fn fences(&self) -> bool {
        self.inner.fences()
    }

    async fn raise_fence(&self, job: &str, epoch: u64) -> Result<(), SnapshotError> {
        self.inner.raise_fence(job, epoch).await
    }

    async fn put_fenced(&self, snapshot: &Snapshot, retain: usize, epoch: u64) -> Result<u64, SnapshotError> {
        self.inner.put_fenced(snapshot, retain, epoch).await
    }

    async fn list(&self, job: &str) -> Result<Vec<String>, SnapshotError> {
        self.inner.list(job).await
    }

    async fn get(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError> {
        self.inner.get(job, id).await
    }
}
