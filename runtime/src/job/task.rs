//! The task loop: pull a batch from the sources, hand it to the job in one
//! call, route what it emitted, advance the watermark, fire due timers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use super::batch::RecordBatch;
use super::origin_dedup::OriginDedup;
use super::run::SnapshotSettings;
use super::timers::Watermarks;
use crate::clock::Clock;
use crate::connectors::staged::StagedDimension;
use crate::connectors::{ConnectorError, RowId, RowOp, RowOrigin, Sink, SinkRow, Source, SourceStatus};
use crate::fault;
use crate::metrics::TaskMetrics;
use crate::snapshot::{Snapshot, SnapshotMeta, SourcePosition, Trigger};
use crate::wasm::bindings::{Rejected, Timer};
use crate::wasm::host::RowRef;
use crate::wasm::{InstanceError, JobInstance};

/// Rounds of timer delivery per step. A job whose `on_timer` keeps
/// registering already-due timers gets the rest next step, not a hang.
const MAX_TIMER_ROUNDS: usize = 100;

/// Why a task stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error("job `{job}`: {source}")]
    Connector { job: String, source: ConnectorError },
    #[error("job `{job}`: snapshot: {message}")]
    Snapshot { job: String, message: String },
    /// The task's worker no longer holds the run: it wrote nothing more.
    #[error("job `{job}`: {reason}; this worker stopped writing")]
    LeaseLost { job: String, reason: super::LeaseLost },
    /// A row for the next stage that did not come from an input record.
    #[error(
        "job `{job}`: a row for the next stage was sent from {from}; send rows to the next stage from \
         `process` only: the next stage drops a replay by the input record a row came from"
    )]
    StageRow { job: String, from: &'static str },
}

/// How a task ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// Every source was bounded and is exhausted.
    Finished,
    /// Stopped on request.
    Stopped,
}

/// A request to a running task, handled between batches.
#[derive(Debug)]
pub enum TaskCommand {
    /// Stop: with a snapshot when `snapshot` is true and the task has a
    /// snapshot store, else only flush the sinks.
    Stop { snapshot: bool },
    /// Take and store a snapshot now; the reply carries its metadata or the
    /// error text.
    Snapshot { reply: oneshot::Sender<Result<SnapshotMeta, String>> },
}

/// Where a running task's commands come from.
enum Control {
    /// `true` means stop with a snapshot (`sluice run`'s signal handler).
    Watch(watch::Receiver<bool>),
    Channel(mpsc::Receiver<TaskCommand>),
}

impl Control {
    /// The next pending command, without waiting.
    fn next(&mut self) -> Option<TaskCommand> {
        match self {
            Control::Watch(stop) => (*stop.borrow()).then_some(TaskCommand::Stop { snapshot: true }),
            Control::Channel(commands) => commands.try_recv().ok(),
        }
    }
}

/// Batching settings of a task.
#[derive(Debug, Clone, Copy)]
pub struct TaskSettings {
    pub max_records: usize,
    pub max_wait: Duration,
    pub watermark_delay_ms: i64,
}

/// One task of a job: an instance, its sources and its sinks.
pub struct Task {
    pub(crate) instance: JobInstance,
    pub(crate) sources: Vec<(Box<dyn Source>, SourceStatus)>,
    /// Indexed like the job's sinks.
    pub(crate) sinks: Vec<Box<dyn Sink>>,
    pub(crate) dead_letter: Box<dyn Sink>,
    pub(crate) source_names: Vec<String>,
    pub(crate) settings: TaskSettings,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<TaskMetrics>,
    pub(crate) batch: RecordBatch,
    pub(crate) watermarks: Watermarks,
    /// The source polled first in the next round.
    pub(crate) first_source: usize,
    /// SHA-256 of the component, recorded in snapshots.
    pub(crate) job_version: String,
    pub(crate) snapshots: Option<SnapshotSettings>,
    pub(crate) last_snapshot: Instant,
    pub(crate) snapshot_seq: u32,
    /// The previous snapshot this task stored (the base of an incremental one).
    pub(crate) last_snapshot_id: Option<String>,
    /// Incremental snapshots since the last full one.
    pub(crate) since_full: usize,
    /// Dimensions whose writes are committed with snapshots, by name.
    pub(crate) staged: Vec<(String, Arc<StagedDimension>)>,
    /// Checked before every write; closed when the worker's lease is gone.
    pub(crate) lease: Arc<super::LeaseGate>,
    /// Drops replayed rows of upstream jobs (sources with `dedup_by_row_id`).
    pub(crate) dedup: Option<OriginDedup>,
    /// The sink to the next repartition stage (`stages::NEXT_STAGE_SINK`),
    /// whose rows must come from input records.
    pub(crate) next_stage: Option<usize>,
}

impl Task {
    fn job(&self) -> String {
        self.instance.host().job.name.clone()
    }

    fn connector_error(&self, source: ConnectorError) -> TaskError {
        TaskError::Connector { job: self.job(), source }
    }

    /// Fails unless the task may still write (its worker holds the lease).
    fn check_lease(&self) -> Result<(), TaskError> {
        self.lease.check().map_err(|reason| TaskError::LeaseLost { job: self.job(), reason })
    }

    /// A failed dimension commit. A store that refused it by its fence
    /// means another worker holds the job: the task ends as on a lost
    /// lease, and the gate closes so the run's other tasks here stop too.
    fn commit_error(&self, source: ConnectorError) -> TaskError {
        let ConnectorError::Fenced { connector, name, epoch, fenced_at, .. } = &source else {
            return self.connector_error(source);
        };
        tracing::warn!(job = %self.job(), error = %source, "a dimension store refused a commit: the job has a newer owner");
        self.lease.revoke();
        let store = format!("{connector} `{name}`");
        TaskError::LeaseLost {
            job: self.job(),
            reason: super::LeaseLost::Fenced { store, epoch: *epoch, fenced_at: *fenced_at },
        }
    }

    /// Runs until the sources are exhausted, `stop` turns true, or an error.
    /// `stop` works as [`TaskCommand::Stop`] with a snapshot.
    #[tracing::instrument(skip_all, fields(job = %self.job()))]
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<TaskEnd, TaskError> {
        self.run_loop(Control::Watch(stop)).await
    }

    /// Runs until the sources are exhausted, a [`TaskCommand::Stop`], or an
    /// error, handling commands between batches (a batch ends within
    /// `batch.max_wait`, so commands are answered promptly). When every
    /// sender is dropped the task keeps running: nothing can stop it but
    /// the end of its input.
    #[tracing::instrument(skip_all, fields(job = %self.job()))]
    pub async fn run_controlled(self, control: mpsc::Receiver<TaskCommand>) -> Result<TaskEnd, TaskError> {
        self.run_loop(Control::Channel(control)).await
    }

    /// The one task loop behind [`Task::run`] and [`Task::run_controlled`].
    async fn run_loop(mut self, mut control: Control) -> Result<TaskEnd, TaskError> {
        loop {
            // Checked between batches, never raced against a poll: a poll
            // ends within max_wait, and cancelling it could drop records it
            // has already read.
            while let Some(command) = control.next() {
                match command {
                    TaskCommand::Stop { snapshot } => {
                        // A snapshot flushes the sinks first.
                        if snapshot && self.snapshots.is_some() {
                            self.take_snapshot(Trigger::Stop).await?;
                        } else {
                            self.flush_sinks().await?;
                        }
                        return Ok(TaskEnd::Stopped);
                    }
                    TaskCommand::Snapshot { reply } => {
                        let result = if self.snapshots.is_none() {
                            Err("the job has no snapshot store".to_owned())
                        } else {
                            // A failed manual snapshot is the caller's to
                            // report; the task goes on.
                            self.take_snapshot(Trigger::Manual).await.map(|s| s.meta).map_err(|e| e.to_string())
                        };
                        let _ = reply.send(result);
                    }
                }
            }
            let finished = self.poll_sources().await?;
            let polled = Instant::now();
            self.step().await?;
            if !self.batch.is_empty() {
                self.metrics.last_batch_latency_us.store(micros(polled.elapsed()), Ordering::Relaxed);
            }
            if finished {
                self.watermarks.finish();
                self.fire_timers().await?;
                // A final snapshot (as Flink's final checkpoint), so a later
                // run from the latest snapshot continues after this input.
                if self.snapshots.is_some() {
                    self.take_snapshot(Trigger::Stop).await?;
                } else {
                    self.flush_sinks().await?;
                }
                return Ok(TaskEnd::Finished);
            }
            if self.snapshots.as_ref().and_then(|s| s.interval).is_some_and(|i| self.last_snapshot.elapsed() >= i) {
                self.take_snapshot(Trigger::Periodic).await?;
            }
        }
    }

    /// Processes what is in the batch, then fires due timers.
    async fn step(&mut self) -> Result<(), TaskError> {
        self.instance.host_mut().set_now(self.clock.now_ms());
        if let Some(dedup) = &mut self.dedup {
            // Before anything reads the batch: a dropped record was applied
            // before, with its event time and its rows.
            let dropped = dedup.filter(&mut self.batch, &mut self.instance.host_mut().state);
            TaskMetrics::add(&self.metrics.replays_dropped, dropped as u64);
        }
        if !self.batch.is_empty() {
            self.instance.process(self.batch.as_wit()).await?;
            fault::crash_point(fault::points::BATCH_PROCESSED);
            self.observe_event_times();
            self.route_batch_output().await?;
            TaskMetrics::add(&self.metrics.records_in, self.batch.len() as u64);
            TaskMetrics::add(&self.metrics.batches, 1);
        }
        self.watermarks.advance();
        self.fire_timers().await?;
        let state = &self.instance.host().state;
        self.metrics.state_ops.store(state.work(), Ordering::Relaxed);
        self.metrics.state_bytes.store(state.bytes() as u64, Ordering::Relaxed);
        self.tick_sinks().await
    }

    /// Feeds the watermark the event times of the batch's records that the
    /// job did not reject. A record the job refused (not the JSON it reads,
    /// say) tells nothing about event time: its time field was read by a
    /// scan that does not check the rest of the record (`json_fields`), and
    /// one wild time would otherwise move the watermark past every record
    /// to come. Nothing the job sees changes: the watermark it reads moves
    /// only after the batch (`Watermarks::advance`).
    fn observe_event_times(&mut self) {
        let mut rejected: Vec<u32> = self.instance.output().rejected.iter().map(|r| r.index).collect();
        rejected.sort_unstable();
        for (i, meta) in self.batch.records().iter().enumerate() {
            if let Some(t) = meta.event_time
                && rejected.binary_search(&(i as u32)).is_err()
            {
                self.watermarks.observe(meta.source, meta.partition, t);
            }
        }
    }

    /// Lets buffering sinks write out on their interval, input or not.
    async fn tick_sinks(&mut self) -> Result<(), TaskError> {
        self.check_lease()?;
        let job = self.job();
        for i in 0..self.sinks.len() {
            self.sinks[i].tick().await.map_err(|source| TaskError::Connector { job: job.clone(), source })?;
            self.dead_letter_rejected(i).await?;
        }
        self.dead_letter.tick().await.map_err(|source| TaskError::Connector { job, source })
    }

    /// Sends the rows sink `i` refused (values its table cannot hold) to
    /// the dead letters, with the reason and the row's position.
    async fn dead_letter_rejected(&mut self, i: usize) -> Result<(), TaskError> {
        let rejected = self.sinks[i].take_rejected();
        if rejected.is_empty() {
            return Ok(());
        }
        let job = self.job();
        let sink = self.instance.host().job.sinks.get(i).cloned().unwrap_or_default();
        let dead: Vec<SinkRow> = rejected
            .into_iter()
            .map(|r| {
                let (source, partition, offset) = match &r.row.id.origin {
                    RowOrigin::Record { source, partition, offset }
                    | RowOrigin::Batch { source, partition, offset } => {
                        (self.source_names.get(*source as usize).cloned(), Some(*partition), Some(*offset))
                    }
                    _ => (None, None, None),
                };
                let row = json!({
                    "job": job,
                    "sink": sink,
                    "source": source,
                    "partition": partition,
                    "offset": offset,
                    "row_id": r.row.id.render(&self.source_names),
                    "reason": r.reason,
                    "value": String::from_utf8_lossy(&r.row.value),
                });
                SinkRow { op: RowOp::Upsert, key: None, value: row.to_string().into_bytes(), id: r.row.id }
            })
            .collect();
        TaskMetrics::add(&self.metrics.dead_letters, dead.len() as u64);
        self.dead_letter.write(&dead).await.map_err(|e| self.connector_error(e))
    }

    /// Fills the batch from the sources; true when all are finished. The
    /// first source polled rotates, so a source that can always fill the
    /// batch does not starve the others.
    async fn poll_sources(&mut self) -> Result<bool, TaskError> {
        self.batch.clear();
        let open = self.sources.iter().filter(|(_, s)| *s == SourceStatus::Open).count().max(1);
        let wait = self.settings.max_wait / open as u32;
        let count = self.sources.len();
        self.first_source = (self.first_source + 1) % count.max(1);
        for i in (0..count).map(|n| (self.first_source + n) % count) {
            let room = self.settings.max_records.saturating_sub(self.batch.len());
            if room == 0 {
                break;
            }
            let (source, status) = &mut self.sources[i];
            if *status == SourceStatus::Finished {
                continue;
            }
            match source.poll(&mut self.batch, room, wait).await {
                Ok(s) => *status = s,
                Err(e) => return Err(self.connector_error(e)),
            }
        }
        let lag = self.sources.iter().filter_map(|(source, _)| source.lag()).reduce(|a, b| a + b);
        self.metrics.lag.store(lag.unwrap_or(-1), Ordering::Relaxed);
        Ok(self.sources.iter().all(|(_, s)| *s == SourceStatus::Finished))
    }

    async fn fire_timers(&mut self) -> Result<(), TaskError> {
        for _ in 0..MAX_TIMER_ROUNDS {
            let now = self.clock.now_ms();
            let watermark = self.watermarks.current();
            let host = self.instance.host_mut();
            host.set_now(now);
            host.watermark = watermark;
            let due = host.timers.take_due(now, watermark);
            if due.is_empty() {
                break;
            }
            self.instance.on_timer(&due).await?;
            TaskMetrics::add(&self.metrics.timers_fired, due.len() as u64);
            self.route_timer_output(&due).await?;
        }
        if let Some(w) = self.watermarks.current() {
            self.metrics.watermark.store(w, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn route_batch_output(&mut self) -> Result<(), TaskError> {
        let output = self.instance.output();
        let records = self.batch.records();
        let origin = |index: Option<u32>, of_batch: bool| match index.and_then(|i| records.get(i as usize)) {
            Some(m) if of_batch => RowOrigin::Batch { source: m.source, partition: m.partition, offset: m.offset },
            Some(m) => RowOrigin::Record { source: m.source, partition: m.partition, offset: m.offset },
            None => RowOrigin::Open,
        };
        let rows = with_ids(output.rows(&self.batch.as_wit().data), origin);
        let dead = self.dead_letters(&output.rejected);
        self.instance.clear_output();
        self.write_rows(rows).await?;
        if !dead.is_empty() {
            TaskMetrics::add(&self.metrics.dead_letters, dead.len() as u64);
            self.dead_letter.write(&dead).await.map_err(|e| self.connector_error(e))?;
        }
        Ok(())
    }

    async fn route_timer_output(&mut self, timers: &[Timer]) -> Result<(), TaskError> {
        let output = self.instance.output();
        let origin = |index: Option<u32>, _: bool| match index.and_then(|i| timers.get(i as usize)) {
            Some(t) => RowOrigin::Timer { domain: t.domain, time: t.time, key: t.key.clone(), tag: t.tag.clone() },
            None => RowOrigin::Open,
        };
        let rows = with_ids(output.rows(&[]), origin);
        self.instance.clear_output();
        self.write_rows(rows).await
    }

    async fn write_rows(&mut self, rows: Vec<(u32, SinkRow)>) -> Result<(), TaskError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.check_lease()?;
        if let Some(next) = self.next_stage {
            let from =
                rows.iter().filter(|(sink, _)| *sink as usize == next).find_map(|(_, row)| match row.id.origin {
                    RowOrigin::Record { .. } => None,
                    RowOrigin::Batch { .. } => Some("`finish_batch`"),
                    RowOrigin::Timer { .. } => Some("`on_timer`"),
                    RowOrigin::Open => Some("`open`"),
                });
            if let Some(from) = from {
                return Err(TaskError::StageRow { job: self.job(), from });
            }
        }
        TaskMetrics::add(&self.metrics.records_out, rows.len() as u64);
        // Rows of one sink keep their emit order; the host checked sink handles.
        let mut per_sink: Vec<Vec<SinkRow>> = self.sinks.iter().map(|_| Vec::new()).collect();
        for (sink, row) in rows {
            per_sink[sink as usize].push(row);
        }
        let job = self.job();
        for (i, rows) in per_sink.into_iter().enumerate() {
            if !rows.is_empty() {
                self.sinks[i].write(&rows).await.map_err(|source| TaskError::Connector { job: job.clone(), source })?;
                self.dead_letter_rejected(i).await?;
            }
        }
        Ok(())
    }

    /// Dead-letter rows: the reason, the record's position and its bytes.
    fn dead_letters(&self, rejected: &[Rejected]) -> Vec<SinkRow> {
        let job = self.job();
        rejected
            .iter()
            .filter_map(|r| {
                let meta = self.batch.records().get(r.index as usize)?;
                let source = self.source_names.get(meta.source as usize).cloned().unwrap_or_default();
                let value = self.batch.bytes(meta.value);
                let key = meta.key.map(|k| String::from_utf8_lossy(self.batch.bytes(k)).into_owned());
                let row = json!({
                    "job": job,
                    "source": source,
                    "partition": meta.partition,
                    "offset": meta.offset,
                    "reason": r.reason,
                    "key": key,
                    "value": String::from_utf8_lossy(value),
                });
                let id = RowId {
                    origin: RowOrigin::Record { source: meta.source, partition: meta.partition, offset: meta.offset },
                    emit_index: 0,
                };
                Some(SinkRow { op: RowOp::Upsert, key: None, value: row.to_string().into_bytes(), id })
            })
            .collect()
    }

    /// Flushes every sink, then the dead letters (which take the rows the
    /// sinks refused while flushing).
    async fn flush_sinks(&mut self) -> Result<(), TaskError> {
        self.check_lease()?;
        let job = self.job();
        for i in 0..self.sinks.len() {
            self.sinks[i].flush().await.map_err(|source| TaskError::Connector { job: job.clone(), source })?;
            fault::crash_point(fault::points::SINK_FLUSHED);
            self.dead_letter_rejected(i).await?;
        }
        self.dead_letter.flush().await.map_err(|source| TaskError::Connector { job, source })?;
        fault::crash_point(fault::points::SINK_FLUSHED);
        Ok(())
    }

    /// Takes a consistent snapshot between batches: flushes every sink, then
    /// records state, timers, watermark and the sources' positions (the
    /// batch just processed is complete, so they match the sinks), and
    /// stores it when the task has a snapshot store.
    pub async fn take_snapshot(&mut self, trigger: Trigger) -> Result<Snapshot, TaskError> {
        let started = Instant::now();
        let job = self.job();
        let error = |message: String| TaskError::Snapshot { job: job.clone(), message };
        self.flush_sinks().await?;
        let mut positions = Vec::new();
        for ((source, _), name) in self.sources.iter().zip(&self.source_names) {
            let Some(list) = source.positions() else {
                return Err(error(format!(
                    "source `{name}` cannot resume from a position, so the job cannot be snapshotted"
                )));
            };
            positions.extend(list.into_iter().map(|(partition, next_offset)| SourcePosition {
                source: name.clone(),
                partition,
                next_offset,
            }));
        }
        positions.sort_by(|a, b| (&a.source, a.partition).cmp(&(&b.source, b.partition)));
        let now = self.clock.now_ms();
        self.snapshot_seq += 1;
        let full_every = self.snapshots.as_ref().and_then(|s| s.full_every);
        let incremental_base = match (full_every, &self.last_snapshot_id) {
            (Some(every), Some(base)) if self.since_full < every => Some(base.clone()),
            _ => None,
        };
        let host = self.instance.host_mut();
        let (base, state) = match incremental_base.and_then(|b| host.state.image_changes(now).map(|s| (b, s))) {
            Some((b, changes)) => (Some(b), changes),
            None => (None, host.state.image(now)),
        };
        let host = self.instance.host();
        let (event_times, watermark) = self.watermarks.image();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                id: format!("{:013}-{:06}", now.max(0), self.snapshot_seq),
                job: job.clone(),
                job_version: self.job_version.clone(),
                created_ms: now,
                trigger,
                positions,
            },
            base,
            state,
            timers: host.timers.image(),
            event_times,
            watermark,
            dimension_writes: self.staged.iter().map(|(name, dim)| (name.clone(), dim.pending())).collect(),
            sink_positions: self.sink_positions(),
        };
        if let Some(settings) = &self.snapshots {
            self.check_lease()?;
            let stored = settings.store.put(&snapshot, settings.retain).await;
            let bytes = match stored {
                Ok(bytes) => bytes,
                Err(e) => {
                    // The state's change log went into the lost snapshot, so
                    // the next one must be full.
                    self.last_snapshot_id = None;
                    return Err(error(e.to_string()));
                }
            };
            self.metrics.last_snapshot_bytes.store(bytes, Ordering::Relaxed);
            tracing::info!(job = %job, snapshot = %snapshot.meta.id, incremental = snapshot.base.is_some(), ?trigger, "snapshot taken");
            self.since_full = if snapshot.base.is_some() { self.since_full + 1 } else { 0 };
            self.last_snapshot_id = Some(snapshot.meta.id.clone());
            // Stored, so the writes are safe to apply: a failure from here on
            // restores this snapshot and applies them again.
            fault::crash_point(fault::points::SNAPSHOT_STORED);
            self.check_lease()?;
            for ((_, dim), (_, writes)) in self.staged.iter().zip(&snapshot.dimension_writes) {
                dim.commit(writes).await.map_err(|e| self.commit_error(e))?;
            }
        } else {
            // Not stored: the next stored snapshot must not build on it.
            self.last_snapshot_id = None;
        }
        self.last_snapshot = Instant::now();
        self.metrics.last_snapshot_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        TaskMetrics::add(&self.metrics.snapshots, 1);
        Ok(snapshot)
    }

    /// The positions of the sinks that report one (after a flush), by
    /// name; the dead-letter sink's as `dead_letter`.
    fn sink_positions(&self) -> Vec<(String, u64)> {
        let names = &self.instance.host().job.sinks;
        let sinks = names.iter().zip(&self.sinks).map(|(name, sink)| (name.as_str(), sink));
        sinks
            .chain(std::iter::once(("dead_letter", &self.dead_letter)))
            .filter_map(|(name, sink)| Some((name.to_owned(), sink.position()?)))
            .collect()
    }

    pub fn metrics(&self) -> Arc<TaskMetrics> {
        self.metrics.clone()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Gives each emitted row its deterministic id: its origin and its index
/// among the rows of that origin (rows of one origin arrive together; a
/// batch's own rows after its last record's).
fn with_ids<'a>(
    emitted: impl Iterator<Item = RowRef<'a>>,
    origin_of: impl Fn(Option<u32>, bool) -> RowOrigin,
) -> Vec<(u32, SinkRow)> {
    let mut last: Option<(Option<u32>, bool)> = None;
    let mut emit_index = 0;
    emitted
        .map(|e| {
            if last == Some((e.origin, e.of_batch)) {
                emit_index += 1;
            } else {
                last = Some((e.origin, e.of_batch));
                emit_index = 0;
            }
            let id = RowId { origin: origin_of(e.origin, e.of_batch), emit_index };
            (e.sink, SinkRow { op: e.op, key: e.key.map(<[u8]>::to_vec), value: e.value.to_vec(), id })
        })
        .collect()
}
