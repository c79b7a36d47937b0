//! What the console shows of a running job: a history of its counters
//! sampled every second (the charts), and its dead letters (the
//! exceptions view), kept in the metadata store.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use sluice_runtime::connectors::{ConnectorError, Sink, SinkRow};
use sluice_runtime::metrics::TaskMetrics;

use crate::store::Store;

/// Points kept: ten minutes at one per second.
pub const HISTORY_POINTS: usize = 600;

/// Totals over a job's tasks.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Totals {
    pub records_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
    pub snapshots: u64,
    /// Lowest watermark over the tasks, ms; none before the first.
    pub watermark_ms: Option<i64>,
    /// Records behind the end of the sources; none when unknown.
    pub lag: Option<i64>,
}

impl Totals {
    pub fn of(tasks: &[Arc<TaskMetrics>]) -> Totals {
        let sum = |f: fn(&TaskMetrics) -> u64| tasks.iter().map(|m| f(m)).sum();
        let watermarks: Vec<i64> =
            tasks.iter().map(|m| m.watermark.load(std::sync::atomic::Ordering::Relaxed)).collect();
        let lags: Vec<i64> =
            tasks.iter().map(|m| m.lag.load(std::sync::atomic::Ordering::Relaxed)).filter(|l| *l >= 0).collect();
        Totals {
            records_in: sum(|m| TaskMetrics::get(&m.records_in)),
            records_out: sum(|m| TaskMetrics::get(&m.records_out)),
            dead_letters: sum(|m| TaskMetrics::get(&m.dead_letters)),
            snapshots: sum(|m| TaskMetrics::get(&m.snapshots)),
            watermark_ms: watermarks.iter().copied().min().filter(|w| *w != i64::MIN),
            lag: (!lags.is_empty()).then(|| lags.iter().sum()),
        }
    }
}

impl Totals {
    /// These totals and `other`'s, as of one job's tasks on two workers.
    pub fn plus(&self, other: &Totals) -> Totals {
        let lag = match (self.lag, other.lag) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        let watermark_ms = match (self.watermark_ms, other.watermark_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Totals {
            records_in: self.records_in + other.records_in,
            records_out: self.records_out + other.records_out,
            dead_letters: self.dead_letters + other.dead_letters,
            snapshots: self.snapshots + other.snapshots,
            watermark_ms,
            lag,
        }
    }
}

/// The charts' data: parallel arrays, oldest first.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Series {
    pub t_ms: Vec<i64>,
    pub in_rate: Vec<f64>,
    pub out_rate: Vec<f64>,
    pub lag: Vec<Option<i64>>,
    pub latency_ms: Vec<f64>,
    pub snapshot_ms: Vec<u64>,
    pub snapshot_bytes: Vec<u64>,
}

#[derive(Debug, Clone)]
struct Point {
    t_ms: i64,
    totals: Totals,
    latency_ms: f64,
    snapshot_ms: u64,
    snapshot_bytes: u64,
}

/// Samples of a run's counters.
#[derive(Debug, Default)]
pub struct History {
    points: VecDeque<Point>,
}

impl History {
    pub fn sample(&mut self, t_ms: i64, tasks: &[Arc<TaskMetrics>]) {
        use std::sync::atomic::Ordering::Relaxed;
        let latency_us = tasks.iter().map(|m| m.last_batch_latency_us.load(Relaxed)).max().unwrap_or(0);
        let point = Point {
            t_ms,
            totals: Totals::of(tasks),
            latency_ms: latency_us as f64 / 1000.0,
            snapshot_ms: tasks.iter().map(|m| m.last_snapshot_ms.load(Relaxed)).max().unwrap_or(0),
            snapshot_bytes: tasks.iter().map(|m| m.last_snapshot_bytes.load(Relaxed)).sum(),
        };
        if self.points.len() == HISTORY_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// The last `seconds` of samples, with rates from consecutive points.
    pub fn series(&self, seconds: usize) -> Series {
        let mut s = Series::default();
        let skip = self.points.len().saturating_sub(seconds + 1);
        let points: Vec<&Point> = self.points.iter().skip(skip).collect();
        for pair in points.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let dt = ((b.t_ms - a.t_ms) as f64 / 1000.0).max(1e-3);
            s.t_ms.push(b.t_ms);
            s.in_rate.push(b.totals.records_in.saturating_sub(a.totals.records_in) as f64 / dt);
            s.out_rate.push(b.totals.records_out.saturating_sub(a.totals.records_out) as f64 / dt);
            s.lag.push(b.totals.lag);
            s.latency_ms.push(b.latency_ms);
            s.snapshot_ms.push(b.snapshot_ms);
            s.snapshot_bytes.push(b.snapshot_bytes);
        }
        s
    }
}

/// Where a run's dead letters are kept: the metadata store, durably, at
/// most `keep` per job (the oldest dropped first, and counted). It is the
/// task's dead-letter sink; with a spec that declares its own dead-letter
/// sink, rows go there too.
#[derive(Clone)]
pub struct DeadLetterCapture {
    store: Store,
    job_id: String,
    run_id: String,
    keep: usize,
}

impl std::fmt::Debug for DeadLetterCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterCapture").field("job_id", &self.job_id).finish_non_exhaustive()
    }
}

impl DeadLetterCapture {
    pub fn new(store: Store, job_id: &str, run_id: &str, keep: usize) -> Self {
        DeadLetterCapture { store, job_id: job_id.to_owned(), run_id: run_id.to_owned(), keep }
    }

    /// A sink that keeps rows in the store, then hands them to `then`.
    pub fn sink(&self, then: Option<Box<dyn Sink>>) -> Box<dyn Sink> {
        Box::new(CaptureSink { capture: self.clone(), then })
    }
}

struct CaptureSink {
    capture: DeadLetterCapture,
    then: Option<Box<dyn Sink>>,
}

#[async_trait]
impl Sink for CaptureSink {
    async fn write(&mut self, rows: &[SinkRow]) -> Result<(), ConnectorError> {
        let values: Vec<serde_json::Value> =
            rows.iter().map(|row| serde_json::from_slice(&row.value).unwrap_or(serde_json::Value::Null)).collect();
        let c = &self.capture;
        // A store that cannot take them fails the task, which restarts from
        // its snapshot and rejects the same records again: none is lost.
        c.store
            .add_dead_letters(&c.job_id, &c.run_id, &values, c.keep)
            .await
            .map_err(|e| ConnectorError::io("dead letters", "metadata store", e, true))?;
        match &mut self.then {
            Some(sink) => sink.write(rows).await,
            None => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        match &mut self.then {
            Some(sink) => sink.flush().await,
            None => Ok(()),
        }
    }

    fn position(&self) -> Option<u64> {
        self.then.as_ref().and_then(|sink| sink.position())
    }
}
