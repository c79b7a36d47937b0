//! Counters of a running task, read by the progress line, the console and
//! the Prometheus exporter. Each is updated once per batch, not per record.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::wasm::bindings::{LogLevel, MetricKind};

/// Job log lines kept for the console and debug runs.
const LOG_CAPACITY: usize = 1000;

#[derive(Debug)]
pub struct TaskMetrics {
    /// Records handed to the job (the total since the task started).
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub dead_letters: AtomicU64,
    pub batches: AtomicU64,
    pub timers_fired: AtomicU64,
    /// Snapshots taken.
    pub snapshots: AtomicU64,
    /// Nanoseconds spent inside the job (process + on_timer calls).
    pub job_nanos: AtomicU64,
    /// Last watermark, or i64::MIN when none yet.
    pub watermark: AtomicI64,
    /// Milliseconds the last snapshot took, sink flush included.
    pub last_snapshot_ms: AtomicU64,
    /// Bytes the last stored snapshot took in its store (0 before any).
    pub last_snapshot_bytes: AtomicU64,
    /// Records behind the end of the sources, summed over their
    /// partitions, after the last poll; -1 when no source can tell.
    pub lag: AtomicI64,
    /// Microseconds from the end of the last poll until the sinks had
    /// accepted that batch's rows (processing latency of one batch).
    pub last_batch_latency_us: AtomicU64,
    /// State entries looked at, written, returned or dropped since the task
    /// started (`StateBackend::work`): per record, it must not grow with
    /// the size of the state.
    pub state_ops: AtomicU64,
    /// Estimated bytes of state held.
    pub state_bytes: AtomicU64,
    /// Job log lines dropped because a call wrote too many.
    pub logs_dropped: AtomicU64,
    /// Records a source with `dedup_by_row_id` dropped: rows of an upstream
    /// job that this job had applied before (the upstream replayed them).
    pub replays_dropped: AtomicU64,
    custom: Mutex<Vec<CustomMetric>>,
    logs: Mutex<std::collections::VecDeque<(LogLevel, String)>>,
}

/// A metric the job declared through `context.metric`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomMetric {
    pub name: String,
    pub kind: MetricKind,
    /// Counter: total; gauge: last value; histogram: sum of samples.
    pub value: f64,
    /// Histogram: number of samples.
    pub count: u64,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        TaskMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            timers_fired: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            job_nanos: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            last_snapshot_ms: AtomicU64::new(0),
            last_snapshot_bytes: AtomicU64::new(0),
            lag: AtomicI64::new(-1),
            last_batch_latency_us: AtomicU64::new(0),
            state_ops: AtomicU64::new(0),
            state_bytes: AtomicU64::new(0),
            logs_dropped: AtomicU64::new(0),
            replays_dropped: AtomicU64::new(0),
            custom: Mutex::default(),
            logs: Mutex::default(),
        }
    }
}

impl TaskMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Declares a custom metric (or finds it by name) and returns its
    /// handle; `None` when `max` metrics are declared already.
    pub fn declare(&self, name: &str, kind: MetricKind, max: usize) -> Option<u32> {
        let mut custom = self.custom.lock().expect("metrics lock");
        if let Some(i) = custom.iter().position(|m| m.name == name) {
            return Some(i as u32);
        }
        if custom.len() >= max {
            return None;
        }
        custom.push(CustomMetric { name: name.to_owned(), kind, value: 0.0, count: 0 });
        Some(custom.len() as u32 - 1)
    }

    /// Records a value; false when the handle is unknown.
    pub fn record(&self, metric: u32, value: f64) -> bool {
        let mut custom = self.custom.lock().expect("metrics lock");
        let Some(m) = custom.get_mut(metric as usize) else { return false };
        match m.kind {
            MetricKind::Counter | MetricKind::Histogram => m.value += value,
            MetricKind::Gauge => m.value = value,
        }
        m.count += 1;
        true
    }

    /// Keeps a job log line (the most recent LOG_CAPACITY).
    pub fn log(&self, level: LogLevel, message: String) {
        let mut logs = self.logs.lock().expect("logs lock");
        if logs.len() == LOG_CAPACITY {
            logs.pop_front();
        }
        logs.push_back((level, message));
    }

    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.logs.lock().expect("logs lock").iter().cloned().collect()
    }

    pub fn custom(&self) -> Vec<CustomMetric> {
        self.custom.lock().expect("metrics lock").clone()
    }
}
