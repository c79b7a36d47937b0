//! Connectors: where records come from and where rows go. One folder per
//! connector; the spec's `kind` picks one in [`registry`].

pub mod cache;
pub mod datagen;
pub mod file;
#[cfg(test)]
mod fuzz_records;
pub mod held_rows;
mod json_fields;
pub mod kafka;
pub mod memory;
pub mod redis;
pub mod registry;
pub mod sql;
pub mod staged;

use std::time::Duration;

use async_trait::async_trait;

use crate::job::batch::RecordBatch;

/// A connector failure, and whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The configuration cannot work (bad path, unknown column). Not retried.
    #[error("{connector} `{name}`: {message}")]
    Config { connector: &'static str, name: String, message: String },
    /// An I/O failure; `retryable` says whether a retry may succeed.
    #[error("{connector} `{name}`: {message}")]
    Io { connector: &'static str, name: String, message: String, retryable: bool },
    /// The store refused a fenced commit: its fence `fence` stands at
    /// lease epoch `fenced_at`, above the committing task's `epoch` for it
    /// (the run's floor for the job's fence, the task's lease epoch for its
    /// own), so another worker took the job or the task over (and committed
    /// or restored since).
    /// Not retried: the task must stop, as on a lost lease.
    #[error(
        "{connector} `{name}`: refused a commit under lease epoch {epoch}: the store's fence `{fence}` stands at \
         epoch {fenced_at}, so another worker has taken the job over"
    )]
    Fenced { connector: &'static str, name: String, fence: String, epoch: u64, fenced_at: u64 },
}

impl ConnectorError {
    pub fn config(connector: &'static str, name: &str, message: impl ToString) -> Self {
        ConnectorError::Config { connector, name: name.to_owned(), message: message.to_string() }
    }

    pub fn io(connector: &'static str, name: &str, message: impl ToString, retryable: bool) -> Self {
        ConnectorError::Io { connector, name: name.to_owned(), message: message.to_string(), retryable }
    }

    pub fn retryable(&self) -> bool {
        matches!(self, ConnectorError::Io { retryable: true, .. })
    }
}

/// Whether a source has more to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// More records may come.
    Open,
    /// A bounded source reached its end.
    Finished,
}

/// A source of records. It only reads: Sluice never writes to what it reads.
#[async_trait]
pub trait Source: Send {
    /// Appends up to `max` records to `batch`, waiting at most `max_wait` for
    /// records to arrive.
    async fn poll(
        &mut self,
        batch: &mut RecordBatch,
        max: usize,
        max_wait: Duration,
    ) -> Result<SourceStatus, ConnectorError>;

    /// The next offset to read per partition, for snapshots: the position
    /// after the last record handed out. `None`: this source cannot resume
    /// (it starts over), so snapshots of its job are refused.
    fn positions(&self) -> Option<Vec<(i32, i64)>> {
        None
    }

    /// Records behind the end of the input, summed over this source's
    /// partitions, as last known; `None` when it cannot tell (bounded files
    /// and generators). Called after every poll, so it must be cheap: a
    /// source that asks a broker does so in the background.
    fn lag(&self) -> Option<i64> {
        None
    }
}

/// Which share of a source's partitions one task reads when a job runs as
/// `count` parallel tasks: partition `p` belongs to group `p % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionGroup {
    pub index: u32,
    pub count: u32,
}

impl Default for PartitionGroup {
    fn default() -> Self {
        PartitionGroup { index: 0, count: 1 }
    }
}

impl PartitionGroup {
    /// Whether partition `partition` is this group's.
    pub fn owns(&self, partition: i32) -> bool {
        partition.rem_euclid(self.count.max(1) as i32) == self.index as i32
    }

    /// One group reads everything.
    pub fn is_whole(&self) -> bool {
        self.count <= 1
    }
}

/// Where an emitted row came from; with the emit index this is the row's
/// deterministic id, the same on every replay.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowOrigin {
    Record {
        source: u32,
        partition: i32,
        offset: i64,
    },
    /// A row of a batch as a whole (mini-batch output), at the position of
    /// the batch's last record: which records the batch held depends on
    /// the run, so unlike a record's rows, a replay may give other ones.
    Batch {
        source: u32,
        partition: i32,
        offset: i64,
    },
    Timer {
        domain: TimeDomain,
        time: i64,
        key: Vec<u8>,
        tag: String,
    },
    Open,
}

/// Deterministic id of an emitted row: its origin and its index among the
/// rows that origin emitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowId {
    pub origin: RowOrigin,
    pub emit_index: u32,
}

impl RowId {
    /// Text form, e.g. `orders/0/1234/0`, `batch/orders/0/1234/0` or
    /// `timer/event/1700000000000/6b6579/window/0`.
    pub fn render(&self, source_names: &[String]) -> String {
        let name = |source: &u32| source_names.get(*source as usize).map_or("?", String::as_str);
        match &self.origin {
            RowOrigin::Record { source, partition, offset } => {
                format!("{}/{partition}/{offset}/{}", name(source), self.emit_index)
            }
            RowOrigin::Batch { source, partition, offset } => {
                format!("batch/{}/{partition}/{offset}/{}", name(source), self.emit_index)
            }
            RowOrigin::Timer { domain, time, key, tag } => {
                let domain = match domain {
                    TimeDomain::EventTime => "event",
                    TimeDomain::ProcessingTime => "processing",
                };
                format!("timer/{domain}/{time}/{}/{tag}/{}", hex::encode(key), self.emit_index)
            }
            RowOrigin::Open => format!("open/{}", self.emit_index),
        }
    }
}

pub use crate::wasm::bindings::{RowOp, TimeDomain};

/// The value of the top-level field `field` of a JSON record as
/// milliseconds (a number, or a string of digits); `None` when absent or
/// not JSON.
pub(crate) fn json_field_millis(value: &[u8], field: &str) -> Option<i64> {
    let [raw] = json_fields::raw_fields(value, [Some(field)])?;
    json_fields::raw_millis(raw?)
}

/// A row on its way to a sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRow {
    /// Upsert, or delete by primary key.
    pub op: RowOp,
    pub key: Option<Vec<u8>>,
    /// A JSON object (or any JSON value for file and Kafka sinks).
    pub value: Vec<u8>,
    pub id: RowId,
}

/// A row a sink could not write (a value its column cannot hold), handed
/// back to the task, which sends it to the dead letters instead of failing.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub row: SinkRow,
    /// Why, naming the column and the value's problem.
    pub reason: String,
}

/// A destination for rows.
#[async_trait]
pub trait Sink: Send {
    /// Writes (or buffers) rows, in order.
    async fn write(&mut self, rows: &[SinkRow]) -> Result<(), ConnectorError>;
    /// Makes everything written so far durable.
    async fn flush(&mut self) -> Result<(), ConnectorError>;
    /// Called by the task loop after every step, rows or not, so a sink
    /// that buffers can write out on its flush interval when input pauses.
    async fn tick(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
    /// The rows refused since the last call (by `write`, `flush` or
    /// `tick`), for the dead letters. Sinks that never refuse a row keep
    /// the default.
    fn take_rejected(&mut self) -> Vec<RejectedRow> {
        Vec::new()
    }
    /// Where the sink's output ends after a flush, recorded in snapshots,
    /// so that a restore can cut off what was written after the snapshot
    /// (the replay writes it again): the file sink's length. `None` for
    /// sinks whose writes are idempotent by key or id.
    fn position(&self) -> Option<u64> {
        None
    }
}

/// A dimension (lookup) store, shared by the tasks of a job.
#[async_trait]
pub trait DimensionStore: Send + Sync {
    async fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError>;
    async fn upsert(&self, key: &[u8], row: &[u8]) -> Result<(), ConnectorError>;
    /// All rows, sorted by key, for tests and the console (small stores).
    async fn rows(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ConnectorError>;
    /// Applies `writes` (a snapshot's staged upserts, possibly none) as the
    /// task holding a lease, all or nothing, through the store's `fences`
    /// (name and the epoch the task holds it at; distinct names, see
    /// [`staged::DimensionFence`]): when any of them stands above its
    /// epoch, nothing is written and no fence moves, and the commit is
    /// refused with [`ConnectorError::Fenced`] naming that fence; else
    /// every fence is raised to its epoch (never lowered) together with the
    /// writes. A worker frozen mid-commit thus cannot overwrite what the
    /// job's new owner committed after raising the fences on restore. A
    /// commit repeated (a retry whose answer was lost) passes, its fences
    /// then standing at its epochs.
    ///
    /// The default applies plain upserts: right for stores inside the
    /// task's process (memory), which no other worker can reach. A store
    /// that other processes share must override it.
    async fn commit_fenced(
        &self,
        fences: &[(String, u64)],
        writes: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), ConnectorError> {
        let _ = fences;
        for (key, row) in writes {
            self.upsert(key, row).await?;
        }
        Ok(())
    }
    /// Bytes this store keeps in the process (an in-memory table, staged
    /// writes): the host holds a job's writes to it to `limits.state_mb`.
    fn held_bytes(&self) -> usize {
        0
    }
}
