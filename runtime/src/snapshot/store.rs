//! Where snapshots are kept. One trait; a local directory for now.

use std::path::PathBuf;

use async_trait::async_trait;

use super::{Snapshot, SnapshotError, SnapshotMeta};

/// Snapshot storage for any number of jobs.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Stores a snapshot durably (all or nothing), then drops the oldest
    /// beyond `retain` (never the one just written).
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<(), SnapshotError>;
    /// Ids of a job's snapshots, oldest first.
    async fn list(&self, job: &str) -> Result<Vec<String>, SnapshotError>;
    async fn get(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError>;

    /// The newest snapshot that reads back intact; damaged newer ones are
    /// skipped with a warning naming them.
    async fn latest(&self, job: &str) -> Result<Option<Snapshot>, SnapshotError> {
        for id in self.list(job).await?.iter().rev() {
            match self.get(job, id).await {
                Ok(s) => return Ok(Some(s)),
                Err(e @ SnapshotError::Corrupt { .. }) => {
                    tracing::warn!(job, snapshot = %id, "skipping a damaged snapshot: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// `<dir>/<job>/<id>.snapshot`, written to a temporary file, synced, then
/// renamed into place.
pub struct LocalSnapshotStore {
    dir: PathBuf,
}

impl LocalSnapshotStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalSnapshotStore { dir: dir.into() }
    }

    fn error(&self, e: impl std::fmt::Display) -> SnapshotError {
        SnapshotError::Storage { location: self.dir.display().to_string(), message: e.to_string() }
    }
}

#[async_trait]
impl SnapshotStore for LocalSnapshotStore {
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<(), SnapshotError> {
        let meta: &SnapshotMeta = &snapshot.meta;
        let dir = self.dir.join(&meta.job);
        let bytes = snapshot.encode();
        let (tmp, path) = (dir.join(format!(".{}.tmp", meta.id)), dir.join(format!("{}.snapshot", meta.id)));
        let write = {
            let (dir, tmp, path) = (dir.clone(), tmp.clone(), path.clone());
            move || -> std::io::Result<()> {
                use std::io::Write;
                std::fs::create_dir_all(&dir)?;
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(&dir)?.sync_all()
            }
        };
        tokio::task::spawn_blocking(write).await.map_err(|e| self.error(e))?.map_err(|e| self.error(e))?;
        let ids = self.list(&meta.job).await?;
        for old in ids.iter().take(ids.len().saturating_sub(retain.max(1))).filter(|id| **id != meta.id) {
            let _ = tokio::fs::remove_file(dir.join(format!("{old}.snapshot"))).await;
        }
        Ok(())
    }

    async fn list(&self, job: &str) -> Result<Vec<String>, SnapshotError> {
        let mut ids = Vec::new();
        let mut entries = match tokio::fs::read_dir(self.dir.join(job)).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(self.error(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(|e| self.error(e))? {
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.strip_suffix(".snapshot")) {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn get(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError> {
        let path = self.dir.join(job).join(format!("{id}.snapshot"));
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SnapshotError::NotFound { job: job.to_owned(), id: id.to_owned() });
            }
            Err(e) => return Err(self.error(e)),
        };
        Snapshot::decode(&path.display().to_string(), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{SnapshotMeta, Trigger};

    fn snapshot(id: &str) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                id: id.into(),
                job: "j".into(),
                job_version: "v".into(),
                created_ms: 0,
                trigger: Trigger::Periodic,
                positions: Vec::new(),
            },
            state: Vec::new(),
            timers: Vec::new(),
            event_times: Vec::new(),
            watermark: None,
        }
    }

    #[tokio::test]
    async fn keeps_the_last_n_and_skips_a_damaged_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalSnapshotStore::new(dir.path());
        for id in ["1-1", "1-2", "1-3", "1-4"] {
            store.put(&snapshot(id), 3).await.unwrap();
        }
        assert_eq!(store.list("j").await.unwrap(), ["1-2", "1-3", "1-4"]);

        // A torn write of the newest: cut in half.
        let newest = dir.path().join("j/1-4.snapshot");
        let bytes = std::fs::read(&newest).unwrap();
        std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(store.get("j", "1-4").await, Err(SnapshotError::Corrupt { .. })));
        assert_eq!(store.latest("j").await.unwrap().unwrap().meta.id, "1-3", "falls back to the previous good one");
        assert!(store.latest("other").await.unwrap().is_none());
        assert!(matches!(store.get("j", "9-9").await, Err(SnapshotError::NotFound { .. })));
    }
}
