use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::host::{Emitted, Host, LogLevel, MetricKind, Rejected, RowOp, StateKind, TimeDomain, Timer};
use crate::state::{MapState, StateOptions, ValueState};
use crate::{Error, Key, Result};

/// How many restored values of a state are decoded when it is declared.
const RESTORED_SAMPLE: u32 = 64;

/// Emitted rows are handed to the host in chunks of this many, so a batch
/// costs one host call for its output rather than one per row.
const EMIT_CHUNK: usize = 4096;

/// The job's view of its host: sinks, dimensions, timers, time, parameters,
/// logs and metrics. Passed to every [`crate::Job`] method.
pub struct Context {
    pub(crate) host: Box<dyn Host>,
    sinks: Vec<(String, u32)>,
    dimensions: Vec<(String, u32)>,
    metrics: Vec<(String, u32)>,
    parameters: Option<Vec<(String, String)>>,
    pub(crate) emitted: Vec<Emitted>,
    pub(crate) rejected: Vec<Rejected>,
    /// Index of the record being processed; `None` inside `on_timer`.
    pub(crate) origin: Option<u32>,
}

impl Context {
    pub(crate) fn new(host: Box<dyn Host>) -> Self {
        Context {
            host,
            sinks: Vec::new(),
            dimensions: Vec::new(),
            metrics: Vec::new(),
            parameters: None,
            emitted: Vec::new(),
            rejected: Vec::new(),
            origin: None,
        }
    }

    // ---- state ----

    /// Declares a keyed value state.
    pub fn value_state<T: DeserializeOwned>(&mut self, name: &str) -> Result<ValueState<T>> {
        self.value_state_with(name, StateOptions::default())
    }

    /// Declares a keyed value state with options (TTL).
    pub fn value_state_with<T: DeserializeOwned>(
        &mut self,
        name: &str,
        options: StateOptions,
    ) -> Result<ValueState<T>> {
        let state = self.declare(name, StateKind::Value, options)?;
        self.check_restored::<T>(name, state)?;
        Ok(ValueState::new(state))
    }

    /// Declares a keyed map state.
    pub fn map_state<F: Key + ?Sized, V: DeserializeOwned>(&mut self, name: &str) -> Result<MapState<F, V>> {
        self.map_state_with(name, StateOptions::default())
    }

    /// Declares a keyed map state with options (TTL).
    pub fn map_state_with<F: Key + ?Sized, V: DeserializeOwned>(
        &mut self,
        name: &str,
        options: StateOptions,
    ) -> Result<MapState<F, V>> {
        let state = self.declare(name, StateKind::Map, options)?;
        self.check_restored::<V>(name, state)?;
        Ok(MapState::new(state))
    }

    /// A state restored from a snapshot must still decode as this version's
    /// type: a sample of its values is decoded now, so a job version that
    /// changed the type fails at start, before any record, naming the state.
    fn check_restored<T: DeserializeOwned>(&mut self, name: &str, state: u32) -> Result<()> {
        for value in self.host.sample(state, RESTORED_SAMPLE) {
            if let Err(e) = serde_json::from_slice::<T>(&value) {
                return Err(Error::fatal(format!(
                    "state `{name}` holds values that do not decode as {}: {e} (value {}); this job version \
                     is incompatible with the restored state: start from a compatible snapshot or with fresh state",
                    std::any::type_name::<T>(),
                    String::from_utf8_lossy(&value[..value.len().min(120)])
                )));
            }
        }
        Ok(())
    }

    fn declare(&mut self, name: &str, kind: StateKind, options: StateOptions) -> Result<u32> {
        let ttl_ms = options.ttl.map(|ttl| ttl.as_millis() as u64);
        self.host
            .declare_state(name, kind, ttl_ms)
            .map_err(|e| Error::fatal(format!("cannot declare state `{name}`: {e}")))
    }

    // ---- output ----

    /// Emits a row (any `Serialize` value, usually a struct whose fields are
    /// the sink's columns) to the named sink.
    pub fn emit<R: Serialize + ?Sized>(&mut self, sink: &str, row: &R) -> Result<()> {
        self.emit_row(sink, RowOp::Upsert, None, row)
    }

    /// Emits `record` unchanged (its key and value bytes) to the sink: what
    /// a filter does with the records it keeps, with no re-encoding.
    pub fn forward(&mut self, sink: &str, record: &crate::Record<'_>) -> Result<()> {
        let sink = resolve(&mut self.sinks, sink, |name| self.host.sink_id(name))
            .map_err(|e| Error::fatal(format!("unknown sink: {e}")))?;
        let key = record.key().map(<[u8]>::to_vec);
        self.push_emitted(Emitted {
            sink,
            op: RowOp::Upsert,
            key,
            value: record.value().to_vec(),
            origin: self.origin,
        });
        Ok(())
    }

    /// Deletes the sink row with `row`'s primary key: the retraction of a
    /// group that no longer exists (SQL upsert sinks delete it; append and
    /// file sinks record the deletion).
    pub fn delete<R: Serialize + ?Sized>(&mut self, sink: &str, row: &R) -> Result<()> {
        self.emit_row(sink, RowOp::Delete, None, row)
    }

    /// Emits a row with a key (the Kafka message key; ignored by SQL sinks,
    /// which key rows by their primary-key columns).
    pub fn emit_keyed<K: Key + ?Sized, R: Serialize + ?Sized>(&mut self, sink: &str, key: &K, row: &R) -> Result<()> {
        self.emit_row(sink, RowOp::Upsert, Some(key.key_bytes().into_owned()), row)
    }

    fn emit_row<R: Serialize + ?Sized>(&mut self, sink: &str, op: RowOp, key: Option<Vec<u8>>, row: &R) -> Result<()> {
        let sink = resolve(&mut self.sinks, sink, |name| self.host.sink_id(name))
            .map_err(|e| Error::fatal(format!("unknown sink: {e}")))?;
        let value =
            serde_json::to_vec(row).map_err(|e| Error::fatal(format!("row for sink does not serialize: {e}")))?;
        self.push_emitted(Emitted { sink, op, key, value, origin: self.origin });
        Ok(())
    }

    fn push_emitted(&mut self, row: Emitted) {
        self.emitted.push(row);
        if self.emitted.len() >= EMIT_CHUNK {
            self.flush_output();
        }
    }

    /// Hands buffered rows and rejections to the host.
    pub(crate) fn flush_output(&mut self) {
        if !self.emitted.is_empty() {
            self.host.emit(&self.emitted);
            self.emitted.clear();
        }
        if !self.rejected.is_empty() {
            self.host.reject(&self.rejected);
            self.rejected.clear();
        }
    }

    // ---- dimensions ----

    /// Looks up the row stored under `key` in a dimension store.
    pub fn lookup<T: DeserializeOwned>(&mut self, dimension: &str, key: &(impl Key + ?Sized)) -> Result<Option<T>> {
        let id = self.dimension(dimension)?;
        let row = self
            .host
            .lookup(id, &key.key_bytes())
            .map_err(|e| Error::fatal(format!("lookup in dimension `{dimension}` failed: {e}")))?;
        // A reference row that does not fit the job's type is about this
        // record's join, not the job: the record is rejected with the reason.
        row.map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                let key = String::from_utf8_lossy(&key.key_bytes()).into_owned();
                Error::record(format!("row `{key}` of dimension `{dimension}` does not decode: {e}"))
            })
        })
        .transpose()
    }

    /// Inserts or replaces the row under `key`; later lookups see it.
    pub fn upsert<R: Serialize + ?Sized>(&mut self, dimension: &str, key: &(impl Key + ?Sized), row: &R) -> Result<()> {
        let id = self.dimension(dimension)?;
        let bytes = serde_json::to_vec(row).map_err(|e| Error::fatal(format!("row does not serialize: {e}")))?;
        self.host
            .upsert(id, &key.key_bytes(), &bytes)
            .map_err(|e| Error::fatal(format!("upsert into dimension `{dimension}` failed: {e}")))
    }

    fn dimension(&mut self, name: &str) -> Result<u32> {
        resolve(&mut self.dimensions, name, |n| self.host.dimension_id(n))
            .map_err(|e| Error::fatal(format!("unknown dimension: {e}")))
    }

    // ---- time ----

    /// Registers a timer; `on_timer` is called with it when it is due.
    pub fn register_timer(&mut self, domain: TimeDomain, time: i64, key: &(impl Key + ?Sized), tag: &str) {
        let timer = Timer { domain, time, key: key.key_bytes().into_owned(), tag: tag.to_owned() };
        self.host.register_timer(&timer);
    }

    /// Cancels a timer registered with the same arguments.
    pub fn cancel_timer(&mut self, domain: TimeDomain, time: i64, key: &(impl Key + ?Sized), tag: &str) {
        let timer = Timer { domain, time, key: key.key_bytes().into_owned(), tag: tag.to_owned() };
        self.host.cancel_timer(&timer);
    }

    /// The event-time watermark: no record older than this is expected.
    pub fn watermark(&mut self) -> Option<i64> {
        self.host.watermark()
    }

    /// Processing time (the host's clock), ms since the Unix epoch.
    pub fn processing_time(&mut self) -> i64 {
        self.host.processing_time()
    }

    // ---- parameters, names, logs, metrics ----

    /// A job parameter from the spec or the console.
    pub fn param(&mut self, name: &str) -> Option<String> {
        let host = &mut self.host;
        let params = self.parameters.get_or_insert_with(|| host.parameters());
        params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// A parameter parsed as `T`, or `default` when it is not set. A value
    /// that does not parse fails the job with a message naming it.
    pub fn param_or<T: FromStr>(&mut self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.param(name) {
            None => Ok(default),
            Some(text) => {
                text.parse().map_err(|e| Error::fatal(format!("parameter `{name}` = `{text}` is invalid: {e}")))
            }
        }
    }

    pub fn job_name(&mut self) -> String {
        self.host.job_name()
    }

    /// The name of the source a record came from (`record.position().source`).
    pub fn source_name(&mut self, source: u32) -> Option<String> {
        self.host.source_names().into_iter().nth(source as usize)
    }

    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.host.log(level, message);
    }

    pub fn info(&mut self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    pub fn warn(&mut self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// Adds `delta` to a custom counter.
    pub fn count(&mut self, counter: &str, delta: u64) {
        self.record_metric(counter, MetricKind::Counter, delta as f64);
    }

    /// Sets a custom gauge.
    pub fn gauge(&mut self, gauge: &str, value: f64) {
        self.record_metric(gauge, MetricKind::Gauge, value);
    }

    /// Records a sample in a custom histogram.
    pub fn observe(&mut self, histogram: &str, value: f64) {
        self.record_metric(histogram, MetricKind::Histogram, value);
    }

    fn record_metric(&mut self, name: &str, kind: MetricKind, value: f64) {
        let id = match self.metrics.iter().find(|(n, _)| n == name) {
            Some((_, id)) => *id,
            None => {
                let id = self.host.metric(name, kind);
                self.metrics.push((name.to_owned(), id));
                id
            }
        };
        self.host.record_metric(id, value);
    }
}

/// Finds a name's handle in a small cache, asking the host once per name.
fn resolve(
    cache: &mut Vec<(String, u32)>,
    name: &str,
    ask: impl FnOnce(&str) -> std::result::Result<u32, String>,
) -> std::result::Result<u32, String> {
    if let Some((_, id)) = cache.iter().find(|(n, _)| n == name) {
        return Ok(*id);
    }
    let id = ask(name)?;
    cache.push((name.to_owned(), id));
    Ok(id)
}
