//! Where snapshots are kept: one trait, and a local directory (the default).

use std::path::PathBuf;

use async_trait::async_trait;

use super::{Snapshot, SnapshotError, SnapshotMeta};
use crate::state::StateBackend;

/// Snapshot storage for any number of jobs.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Stores a snapshot durably (all or nothing), then drops the oldest
    /// beyond `retain` (never the one just written). Returns the bytes stored.
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<u64, SnapshotError>;

    /// Whether [`put_fenced`](Self::put_fenced) really refuses writes of
    /// older epochs (PostgreSQL and S3 do; a directory does not).
    fn fences(&self) -> bool {
        false
    }

    /// Raises `job`'s fence to `epoch` (a worker taking the job over does
    /// this before it restores): from then on a fenced put of an older
    /// epoch is refused, and a put of an older epoch already under way
    /// either lands before the raise (and is seen by the restore) or is
    /// refused.
    async fn raise_fence(&self, job: &str, epoch: u64) -> Result<(), SnapshotError> {
        let _ = (job, epoch);
        Ok(())
    }

    /// [`put`](Self::put) by the owner of lease `epoch`, refused with
    /// [`SnapshotError::Fenced`] when a newer owner raised the fence.
    async fn put_fenced(&self, snapshot: &Snapshot, retain: usize, epoch: u64) -> Result<u64, SnapshotError> {
        let _ = epoch;
        self.put(snapshot, retain).await
    }
    /// Ids of a job's snapshots, oldest first.
    async fn list(&self, job: &str) -> Result<Vec<String>, SnapshotError>;
    /// One stored snapshot as written (possibly incremental).
    async fn get(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError>;

    /// Snapshot `id` ready to restore: an incremental one is applied on top
    /// of its chain of bases, down to the full snapshot it starts from.
    async fn load(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError> {
        let newest = self.get(job, id).await?;
        let mut deltas = Vec::new();
        let mut base = newest.base.clone();
        while let Some(base_id) = base {
            let older = self.get(job, &base_id).await?;
            base = older.base.clone();
            deltas.push(older);
        }
        if deltas.is_empty() {
            return Ok(newest);
        }
        // deltas: newest's base .. the full one; apply oldest first.
        let full = deltas.pop().expect("a chain ends in a full snapshot");
        let mut state = StateBackend::restore(full.state);
        for delta in deltas.into_iter().rev() {
            state.apply_changes(delta.state);
        }
        let Snapshot { meta, state: changes, timers, event_times, watermark, dimension_writes, sink_positions, .. } =
            newest;
        state.apply_changes(changes);
        // Only the newest snapshot's writes: its bases' were applied before it was taken.
        Ok(Snapshot {
            meta,
            base: None,
            state: state.into_images(),
            timers,
            event_times,
            watermark,
            dimension_writes,
            sink_positions,
        })
    }

    /// The newest snapshot that loads intact; damaged newer ones (or ones
    /// whose base is damaged or gone) are skipped with a warning naming them.
    async fn latest(&self, job: &str) -> Result<Option<Snapshot>, SnapshotError> {
        for id in self.list(job).await?.iter().rev() {
            match self.load(job, id).await {
                Ok(s) => return Ok(Some(s)),
                Err(e @ (SnapshotError::Corrupt { .. } | SnapshotError::NotFound { .. })) => {
                    tracing::warn!(job, snapshot = %id, "skipping a snapshot that cannot be restored: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// `<dir>/<job>/<id>.snapshot` (full) or `<id>.delta.snapshot`
/// (incremental), written to a temporary file, synced, then renamed into
/// place.
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
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<u64, SnapshotError> {
        let meta: &SnapshotMeta = &snapshot.meta;
        let dir = self.dir.join(&meta.job);
        let bytes = snapshot.encode();
        let size = bytes.len() as u64;
        let (tmp, path) =
            (dir.join(format!(".{}.tmp", meta.id)), dir.join(snapshot_file_name(&meta.id, snapshot.base.is_some())));
        let write = {
            let (dir, tmp, path) = (dir.clone(), tmp.clone(), path.clone());
            move || -> std::io::Result<()> {
                use std::io::Write;
                std::fs::create_dir_all(&dir)?;
                let mut file = std::fs::File::create(&tmp)?;
                let (first, rest) = bytes.split_at(bytes.len() / 2);
                file.write_all(first)?;
                crate::fault::crash_point(crate::fault::points::SNAPSHOT_WRITTEN);
                file.write_all(rest)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(&dir)?.sync_all()
            }
        };
        tokio::task::spawn_blocking(write).await.map_err(|e| self.error(e))?.map_err(|e| self.error(e))?;
        let files = self.files(&meta.job).await?;
        for (id, delta) in &files[..retention_cut(&files, retain)] {
            let _ = tokio::fs::remove_file(dir.join(snapshot_file_name(id, *delta))).await;
        }
        Ok(size)
    }

    async fn list(&self, job: &str) -> Result<Vec<String>, SnapshotError> {
        Ok(self.files(job).await?.into_iter().map(|(id, _)| id).collect())
    }

    async fn get(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError> {
        let delta = self.files(job).await?.into_iter().find(|(i, _)| i == id).is_some_and(|(_, d)| d);
        let path = self.dir.join(job).join(snapshot_file_name(id, delta));
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

impl LocalSnapshotStore {
    /// (id, is incremental) of a job's snapshot files, oldest first.
    async fn files(&self, job: &str) -> Result<Vec<(String, bool)>, SnapshotError> {
        let mut files = Vec::new();
        let mut entries = match tokio::fs::read_dir(self.dir.join(job)).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
            Err(e) => return Err(self.error(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(|e| self.error(e))? {
            files.extend(snapshot_id_of(&entry.file_name().to_string_lossy()));
        }
        files.sort();
        Ok(files)
    }
}

/// How many of the oldest snapshots (`(id, is incremental)`, oldest first)
/// retention drops: it keeps the last `retain`, and the chain of bases the
/// oldest kept one needs, back to a full snapshot.
pub(super) fn retention_cut(snapshots: &[(String, bool)], retain: usize) -> usize {
    let mut keep_from = snapshots.len().saturating_sub(retain.max(1));
    while keep_from > 0 && snapshots[keep_from].1 {
        keep_from -= 1;
    }
    keep_from
}

/// `<id>.snapshot` (full) or `<id>.delta.snapshot` (incremental): the name
/// of a snapshot's file or object.
pub(super) fn snapshot_file_name(id: &str, delta: bool) -> String {
    if delta { format!("{id}.delta.snapshot") } else { format!("{id}.snapshot") }
}

/// (id, is incremental) of a snapshot file or object name; `None` for
/// anything else (temporary files, foreign objects).
pub(super) fn snapshot_id_of(name: &str) -> Option<(String, bool)> {
    if let Some(id) = name.strip_suffix(".delta.snapshot") {
        Some((id.to_owned(), true))
    } else {
        name.strip_suffix(".snapshot").map(|id| (id.to_owned(), false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(id: &str) -> Snapshot {
        Snapshot::empty("j", id)
    }

    /// A state of keys a..e as a full image, then changes as an increment.
    #[tokio::test]
    async fn increments_apply_on_their_base_and_retention_keeps_the_chain() {
        use crate::state::StateBackend;
        use crate::wasm::bindings::StateKind;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalSnapshotStore::new(dir.path());
        let mut state = StateBackend::default();
        let h = state.declare("s", StateKind::Value, None).unwrap();
        for k in ["a", "b", "c"] {
            state.set(h, k.as_bytes(), b"1").unwrap();
        }
        let mut full = snapshot("1-1");
        full.state = state.image(0);
        store.put(&full, 1).await.unwrap();
        state.set(h, b"a", b"2").unwrap();
        state.remove(h, b"b").unwrap();
        let mut delta = snapshot("1-2");
        delta.base = Some("1-1".into());
        delta.state = state.image_changes(0).unwrap();
        assert_eq!(delta.state[0].values.len() + delta.state[0].removed.len(), 2, "only a and b changed");
        store.put(&delta, 1).await.unwrap();
        assert_eq!(store.list("j").await.unwrap(), ["1-1", "1-2"], "retain 1 keeps the increment's base");

        let loaded = store.latest("j").await.unwrap().unwrap();
        assert_eq!(loaded.base, None);
        let mut restored = StateBackend::restore(loaded.state);
        let h = restored.declare("s", StateKind::Value, None).unwrap();
        assert_eq!(restored.get(h, b"a"), Some(Some(&b"2"[..])));
        assert_eq!(restored.get(h, b"b"), Some(None));
        assert_eq!(restored.get(h, b"c"), Some(Some(&b"1"[..])));

        // A damaged base makes the increment unusable too: nothing to restore.
        std::fs::write(dir.path().join("j/1-1.snapshot"), b"SLUICE-SNAPSHOT 1\nxx").unwrap();
        assert!(store.latest("j").await.unwrap().is_none());
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
