//! Consistent snapshots of a task: host-owned state, timers and watermarks
//! together with the source positions of the last record processed, taken
//! between batches after the sinks are flushed. Restoring one and replaying
//! the sources from its positions gives the same sink contents as a run
//! without failure (upserts are idempotent, appends carry row ids).
//!
//! On disk a snapshot is `SLUICE-SNAPSHOT 3\n`, the SHA-256 of the body
//! (32 bytes), then the body (postcard); a file whose checksum does not
//! match is refused, so a torn or corrupt write is never restored. Formats
//! 1 (before staged dimension writes) and 2 (before sink positions and
//! incremental images of map fields) are still read.

mod fence;
mod object;
mod postgres;
mod store;

pub use fence::FencedSnapshots;
pub use object::ObjectSnapshotStore;
pub use postgres::PgSnapshotStore;
pub use store::{LocalSnapshotStore, SnapshotStore};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connectors::staged::PendingWrites;
use crate::state::{StateTableImage, StateTableImageV2};

const MAGIC: &[u8] = b"SLUICE-SNAPSHOT 3\n";
const MAGIC_V2: &[u8] = b"SLUICE-SNAPSHOT 2\n";
const MAGIC_V1: &[u8] = b"SLUICE-SNAPSHOT 1\n";

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Periodic,
    Manual,
    Stop,
}

/// Where a source was: the next offset to read in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    pub source: String,
    pub partition: i32,
    pub next_offset: i64,
}

/// What describes a snapshot without its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Increasing per job: `<ms since epoch>-<sequence>`, sortable as text.
    pub id: String,
    pub job: String,
    /// SHA-256 of the component that took it.
    pub job_version: String,
    pub created_ms: i64,
    pub trigger: Trigger,
    pub positions: Vec<SourcePosition>,
}

/// A registered timer: (time, event time?, key, tag).
pub type TimerImage = (i64, bool, Vec<u8>, String);

/// Everything a task needs to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// `None`: a full snapshot. `Some(id)`: incremental, holding only the
    /// state changed since snapshot `id` (restored by applying it on top).
    pub base: Option<String>,
    pub state: Vec<StateTableImage>,
    pub timers: Vec<TimerImage>,
    /// Highest event time per (source, partition), and the watermark.
    pub event_times: Vec<(u32, i32, i64)>,
    pub watermark: Option<i64>,
    /// Dimension upserts made since the previous snapshot, per dimension,
    /// for dimensions with `writes = "snapshot"`: applied to the stores once
    /// this snapshot is stored, and again when it is restored.
    pub dimension_writes: Vec<(String, PendingWrites)>,
    /// Where each sink that reports one ([`crate::connectors::Sink::position`])
    /// ended when the snapshot was taken: a restore cuts off what the sink
    /// wrote after it, which the replay writes again.
    pub sink_positions: Vec<(String, u64)>,
}

/// Format 1: format 2 without `dimension_writes`.
#[derive(Deserialize)]
struct SnapshotV1 {
    meta: SnapshotMeta,
    base: Option<String>,
    state: Vec<StateTableImageV2>,
    timers: Vec<TimerImage>,
    event_times: Vec<(u32, i32, i64)>,
    watermark: Option<i64>,
}

/// Format 2: a [`Snapshot`] without `sink_positions`, whose incremental
/// images held changed maps whole.
#[derive(Deserialize)]
struct SnapshotV2 {
    meta: SnapshotMeta,
    base: Option<String>,
    state: Vec<StateTableImageV2>,
    timers: Vec<TimerImage>,
    event_times: Vec<(u32, i32, i64)>,
    watermark: Option<i64>,
    dimension_writes: Vec<(String, PendingWrites)>,
}

impl From<SnapshotV1> for SnapshotV2 {
    fn from(v1: SnapshotV1) -> Self {
        let SnapshotV1 { meta, base, state, timers, event_times, watermark } = v1;
        SnapshotV2 { meta, base, state, timers, event_times, watermark, dimension_writes: Vec::new() }
    }
}

impl From<SnapshotV2> for Snapshot {
    fn from(v2: SnapshotV2) -> Self {
        let SnapshotV2 { meta, base, state, timers, event_times, watermark, dimension_writes } = v2;
        let state = state.into_iter().map(|image| image.upgrade(base.is_some())).collect();
        Snapshot { meta, base, state, timers, event_times, watermark, dimension_writes, sink_positions: Vec::new() }
    }
}

/// A snapshot that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {id}: {message}")]
    Corrupt { id: String, message: String },
    #[error("snapshot storage {location}: {message}")]
    Storage { location: String, message: String },
    #[error("job `{job}` has no snapshot `{id}`")]
    NotFound { job: String, id: String },
    /// A write by a worker whose lease was taken over.
    #[error(
        "snapshot of `{job}` refused: written under lease epoch {epoch}, but the job was taken over at epoch {fence}"
    )]
    Fenced { job: String, epoch: u64, fence: u64 },
}

/// The store a snapshot location names (`--snapshots`): `s3://BUCKET/PREFIX`
/// (configured from the AWS environment variables), a `postgres://` URL, or
/// else a directory. A remote store is checked at once, so a wrong location
/// fails here, naming it.
pub async fn open_store(location: &str) -> Result<Arc<dyn SnapshotStore>, SnapshotError> {
    Ok(if location.starts_with("s3://") {
        Arc::new(ObjectSnapshotStore::connect(location).await?)
    } else if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        Arc::new(PgSnapshotStore::connect(location).await?)
    } else {
        Arc::new(LocalSnapshotStore::new(location))
    })
}

impl Snapshot {
    /// A manual snapshot `id` of `job` holding nothing yet: tests and tools
    /// fill in what they need.
    pub fn empty(job: &str, id: &str) -> Self {
        Snapshot {
            meta: SnapshotMeta {
                id: id.to_owned(),
                job: job.to_owned(),
                job_version: String::new(),
                created_ms: 0,
                trigger: Trigger::Manual,
                positions: Vec::new(),
            },
            base: None,
            state: Vec::new(),
            timers: Vec::new(),
            event_times: Vec::new(),
            watermark: None,
            dimension_writes: Vec::new(),
            sink_positions: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("snapshots always serialize");
        let mut out = Vec::with_capacity(MAGIC.len() + 32 + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&Sha256::digest(&body));
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and checks a snapshot; `id` names it in errors.
    pub fn decode(id: &str, bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let corrupt = |message: &str| SnapshotError::Corrupt { id: id.to_owned(), message: message.to_owned() };
        let (rest, format) = if let Some(rest) = bytes.strip_prefix(MAGIC) {
            (rest, 3)
        } else if let Some(rest) = bytes.strip_prefix(MAGIC_V2) {
            (rest, 2)
        } else if let Some(rest) = bytes.strip_prefix(MAGIC_V1) {
            (rest, 1)
        } else {
            return Err(corrupt("not a Sluice snapshot (bad header)"));
        };
        if rest.len() < 32 {
            return Err(corrupt("truncated"));
        }
        let (sum, body) = rest.split_at(32);
        if Sha256::digest(body).as_slice() != sum {
            return Err(corrupt("checksum mismatch (truncated or corrupt)"));
        }
        let decoded = match format {
            3 => postcard::from_bytes(body),
            2 => postcard::from_bytes::<SnapshotV2>(body).map(Snapshot::from),
            _ => postcard::from_bytes::<SnapshotV1>(body).map(|v1| Snapshot::from(SnapshotV2::from(v1))),
        };
        decoded.map_err(|e| corrupt(&format!("cannot decode: {e}")))
    }

    /// Where sink `name` ended, when it reports a position.
    pub fn sink_position(&self, name: &str) -> Option<u64> {
        self.sink_positions.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
    }

    /// The positions of source `name`, as (partition, next offset).
    pub fn positions_of(&self, name: &str) -> Vec<(i32, i64)> {
        self.meta.positions.iter().filter(|p| p.source == name).map(|p| (p.partition, p.next_offset)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::EntryImage;

    fn snapshot() -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                id: "1-0".into(),
                job: "j".into(),
                job_version: "abc".into(),
                created_ms: 1,
                trigger: Trigger::Manual,
                positions: vec![SourcePosition { source: "in".into(), partition: 0, next_offset: 7 }],
            },
            base: None,
            state: Vec::new(),
            timers: vec![(5, true, b"k".to_vec(), "t".into())],
            event_times: vec![(0, 0, 3)],
            watermark: Some(3),
            dimension_writes: vec![("dim".into(), vec![(b"k".to_vec(), b"{}".to_vec())])],
            sink_positions: vec![("out".into(), 1234)],
        }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let bytes = snapshot().encode();
        assert_eq!(Snapshot::decode("x", &bytes).unwrap(), snapshot());
        let truncated = &bytes[..bytes.len() - 1];
        assert!(Snapshot::decode("x", truncated).unwrap_err().to_string().contains("checksum"));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(Snapshot::decode("x", &flipped).is_err());
        assert!(Snapshot::decode("x", b"garbage").unwrap_err().to_string().contains("bad header"));
    }

    /// Snapshots written before staged dimension writes still restore.
    #[test]
    fn reads_format_1() {
        let Snapshot { meta, base, state, timers, event_times, watermark, .. } = snapshot();
        #[derive(Serialize)]
        struct V1<'a>(&'a SnapshotMeta, &'a Option<String>, &'a [StateTableImage], &'a [TimerImage]);
        let mut body = postcard::to_stdvec(&V1(&meta, &base, &state, &timers)).unwrap();
        body.extend(postcard::to_stdvec(&(&event_times, &watermark)).unwrap());
        let bytes = [MAGIC_V1, Sha256::digest(&body).as_slice(), &body].concat();
        let decoded = Snapshot::decode("old", &bytes).unwrap();
        assert_eq!(decoded, Snapshot { dimension_writes: Vec::new(), sink_positions: Vec::new(), ..snapshot() });
    }

    /// Snapshots written before sink positions still restore.
    #[test]
    fn reads_format_2() {
        let Snapshot { meta, base, state, timers, event_times, watermark, dimension_writes, .. } = snapshot();
        let body =
            postcard::to_stdvec(&(&meta, &base, &state, &timers, &event_times, &watermark, &dimension_writes)).unwrap();
        let bytes = [MAGIC_V2, Sha256::digest(&body).as_slice(), &body].concat();
        let decoded = Snapshot::decode("old", &bytes).unwrap();
        assert_eq!(decoded, Snapshot { sink_positions: Vec::new(), ..snapshot() });
    }

    /// Incremental snapshots of format 2 held a changed map whole: read
    /// today, it still replaces the map it changed.
    #[test]
    fn reads_format_2_incremental_maps_as_replacements() {
        type ImageV2 = (String, bool, Option<u64>, Vec<EntryImage>, Vec<(Vec<u8>, Vec<EntryImage>)>, Vec<Vec<u8>>);
        let Snapshot { meta, timers, event_times, watermark, dimension_writes, .. } = snapshot();
        let map: ImageV2 = ("m".into(), true, None, Vec::new(), vec![(b"g".to_vec(), Vec::new())], Vec::new());
        let base = Some("1-0".to_owned());
        let body =
            postcard::to_stdvec(&(&meta, &base, vec![map], &timers, &event_times, &watermark, &dimension_writes))
                .unwrap();
        let bytes = [MAGIC_V2, Sha256::digest(&body).as_slice(), &body].concat();
        let decoded = Snapshot::decode("old", &bytes).unwrap();
        assert_eq!(decoded.state[0].removed, vec![b"g".to_vec()], "the map is replaced");
    }
}
