use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::buffer::{Buffered, RowBuffer, RowBytes, WriteBuffer};
use crate::host::{Host, LogLevel, MetricKind, Rejected, RowOp, StateKind, TimeDomain, Timer};
use crate::state::{MapState, StateOptions, StateValue, ValueState};
use crate::value_cache::{Lookup, ValueCache};
use crate::{Error, Key, Result};

/// How many restored values of a state are decoded when it is declared.
const RESTORED_SAMPLE: u32 = 64;

/// Emitted rows are handed to the host at the end of a call, or earlier in
/// chunks of this many rows or bytes: a batch costs one host call for its
/// output rather than one per row, and a job emitting without end does not
/// grow its buffer without end.
const EMIT_CHUNK: usize = 4096;
const EMIT_CHUNK_BYTES: usize = 4 << 20;
/// The same for buffered value-state writes.
const WRITE_CHUNK: usize = 64 << 10;
const WRITE_CHUNK_BYTES: usize = 4 << 20;
/// Decoded value-state entries kept in a call before its writes are
/// encoded into the write buffer and the cache starts again; also when the
/// entries read into it hold this many bytes as stored, with their keys
/// and a fixed overhead each (the decoded size is not known, and the job's
/// memory has a ceiling).
const VALUE_CACHE_ENTRIES: usize = 16 << 10;
const VALUE_CACHE_BYTES: usize = 1 << 20;
const CACHED_ENTRY_OVERHEAD: usize = 64;

/// The job's view of its host: sinks, dimensions, timers, time, parameters,
/// logs and metrics. Passed to every [`crate::Job`] method.
pub struct Context {
    pub(crate) host: Box<dyn Host>,
    sinks: Vec<(String, u32)>,
    dimensions: Vec<(String, u32)>,
    metrics: Vec<(String, u32)>,
    parameters: Option<Vec<(String, String)>>,
    rows: RowBuffer,
    pub(crate) rejected: Vec<Rejected>,
    writes: WriteBuffer,
    /// Value-state entries of this call, decoded (`value_cache.rs`).
    values: ValueCache,
    /// Bytes of the entries read into `values` since it was emptied (see
    /// `VALUE_CACHE_BYTES`).
    cached_bytes: usize,
    /// Declared states' names by handle, for messages.
    state_names: Vec<(u32, String)>,
    /// The first state value of this call that did not encode.
    unwritten: Option<Error>,
    /// Where state values are encoded before they are buffered.
    scratch: Vec<u8>,
    /// Index of the record being processed; `None` inside `on_timer`.
    pub(crate) origin: Option<u32>,
    /// Whether rows emitted now are of the batch as a whole (`finish_batch`).
    pub(crate) of_batch: bool,
    /// The instance's stage, asked of the host once.
    stage: Option<u32>,
}

impl Context {
    pub(crate) fn new(host: Box<dyn Host>) -> Self {
        Context {
            host,
            sinks: Vec::new(),
            dimensions: Vec::new(),
            metrics: Vec::new(),
            parameters: None,
            rows: RowBuffer::default(),
            rejected: Vec::new(),
            writes: WriteBuffer::default(),
            values: ValueCache::default(),
            cached_bytes: 0,
            state_names: Vec::new(),
            unwritten: None,
            scratch: Vec::new(),
            origin: None,
            of_batch: false,
            stage: None,
        }
    }

    // ---- state ----

    /// Declares a keyed value state.
    pub fn value_state<T: StateValue>(&mut self, name: &str) -> Result<ValueState<T>> {
        self.value_state_with(name, StateOptions::default())
    }

    /// Declares a keyed value state with options (TTL).
    pub fn value_state_with<T: StateValue>(&mut self, name: &str, options: StateOptions) -> Result<ValueState<T>> {
        let state = self.declare(name, StateKind::Value, options)?;
        self.check_restored::<T>(name, state)?;
        // The host keeps whole milliseconds: a TTL under one is zero there.
        Ok(ValueState::new(state, options.ttl.is_none_or(|ttl| ttl.as_millis() != 0)))
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
            if let Err(e) = crate::codec::decode::<T>(&value) {
                return Err(Error::fatal(format!(
                    "state `{name}` holds values that do not decode as {}: {e} (value {}); this job version \
                     is incompatible with the restored state: start from a compatible snapshot or with fresh state",
                    std::any::type_name::<T>(),
                    crate::codec::describe(&value)
                )));
            }
        }
        Ok(())
    }

    /// A value as this call sees it: as the call last read or wrote it
    /// (kept decoded), else its buffered write, else the host's. Found in
    /// the buffer or the host, it is kept decoded for the rest of the call.
    /// `own_writes` false: only the host's (a zero TTL makes every write
    /// invisible at once).
    pub(crate) fn read_value<T: Serialize + Clone + 'static>(
        &mut self,
        state: u32,
        key: &[u8],
        own_writes: bool,
        decode: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        if !own_writes {
            return self.host.get(state, key).map(|stored| decode(stored.bytes(&mut [0; 24]))).transpose();
        }
        if let Lookup::Found(value) = self.values.get(state, key, &decode)? {
            return Ok(value);
        }
        let mut stored_len = 0;
        let value = match self.writes.get(state, key) {
            Buffered::Value(bytes) => {
                stored_len = bytes.len();
                Some(decode(bytes)?)
            }
            Buffered::Removed => None,
            Buffered::Unknown => match self.host.get(state, key) {
                None => None,
                Some(stored) => {
                    let mut small = [0; 24];
                    let bytes = stored.bytes(&mut small);
                    stored_len = bytes.len();
                    Some(decode(bytes)?)
                }
            },
        };
        self.cached_bytes += key.len() + stored_len + CACHED_ENTRY_OVERHEAD;
        self.values.cache_read(state, key, value.clone());
        self.spill_full_cache();
        Ok(value)
    }

    /// Writes a value. A key this call has read is kept decoded and
    /// encoded at the end of the call, once; a key written without a read
    /// (a blind write: nothing reads it back in a read-modify-write) is
    /// encoded at once, as is every write of a zero-TTL state, so a job's
    /// writes never pile up decoded.
    pub(crate) fn write_value<T: Serialize + Clone + 'static>(
        &mut self,
        state: u32,
        key: &[u8],
        own_writes: bool,
        value: &T,
    ) -> Result<()> {
        if own_writes && self.values.write(state, key, Some(value)) {
            return Ok(());
        }
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        let encoded = crate::codec::encode_into(&mut bytes, value);
        if encoded.is_ok() {
            self.writes.put(state, key, Some(&bytes));
        }
        self.scratch = bytes;
        encoded?;
        self.flush_full_writes();
        Ok(())
    }

    /// Removes a value, as [`Context::write_value`] writes one.
    pub(crate) fn remove_value<T: Serialize + Clone + 'static>(&mut self, state: u32, key: &[u8], own_writes: bool) {
        if own_writes && self.values.write::<T>(state, key, None) {
            return;
        }
        self.writes.put(state, key, None);
        self.flush_full_writes();
    }

    fn spill_full_cache(&mut self) {
        if self.values.len() >= VALUE_CACHE_ENTRIES || self.cached_bytes >= VALUE_CACHE_BYTES {
            self.spill_cache();
        }
    }

    /// Encodes the cache's writes into the write buffer (handing it to the
    /// host whenever it is full) and empties the cache. A value that does
    /// not encode is reported when the call ends.
    fn spill_cache(&mut self) {
        self.cached_bytes = 0;
        let (writes, host) = (&mut self.writes, &mut self.host);
        let drained = self.values.drain_writes(|state, key, value| {
            writes.put(state, key, value);
            flush_if_full(writes, host.as_mut());
        });
        if let Err(failed) = drained
            && self.unwritten.is_none()
        {
            let name = self.state_names.iter().find(|(id, _)| *id == failed.state).map_or("?", |(_, n)| n.as_str());
            let key = String::from_utf8_lossy(&failed.key);
            self.unwritten = Some(Error::fatal(format!("state `{name}`, key `{key}`: {}", failed.error)));
        }
    }

    fn flush_full_writes(&mut self) {
        flush_if_full(&mut self.writes, self.host.as_mut());
    }

    fn declare(&mut self, name: &str, kind: StateKind, options: StateOptions) -> Result<u32> {
        let ttl_ms = options.ttl.map(|ttl| ttl.as_millis() as u64);
        let state = self
            .host
            .declare_state(name, kind, ttl_ms)
            .map_err(|e| Error::fatal(format!("cannot declare state `{name}`: {e}")))?;
        if !self.state_names.iter().any(|(id, _)| *id == state) {
            self.state_names.push((state, name.to_owned()));
        }
        Ok(state)
    }

    // ---- output ----

    /// Emits a row (any `Serialize` value, usually a struct whose fields are
    /// the sink's columns) to the named sink.
    pub fn emit<R: Serialize + ?Sized>(&mut self, sink: &str, row: &R) -> Result<()> {
        self.emit_row(sink, RowOp::Upsert, None, row)
    }

    /// Emits `record` unchanged (its key and value bytes) to the sink: what
    /// a filter does with the records it keeps, with no re-encoding.
    ///
    /// A record of the batch being processed is not even copied: the row
    /// refers to its bytes in the batch, which the host still holds.
    pub fn forward(&mut self, sink: &str, record: &crate::Record<'_>) -> Result<()> {
        let sink = resolve(&mut self.sinks, sink, |name| self.host.sink_id(name))
            .map_err(|e| Error::fatal(format!("unknown sink: {e}")))?;
        let bytes = match record.in_batch {
            Some(spans) if self.origin.is_some() => RowBytes::Forwarded(spans),
            _ => RowBytes::Own(record.key()),
        };
        let value = record.value();
        self.push_row(sink, RowOp::Upsert, bytes, |data| {
            data.extend_from_slice(value);
            Ok(())
        })
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
        self.emit_row(sink, RowOp::Upsert, Some(&key.key_bytes()), row)
    }

    fn emit_row<R: Serialize + ?Sized>(&mut self, sink: &str, op: RowOp, key: Option<&[u8]>, row: &R) -> Result<()> {
        let sink = resolve(&mut self.sinks, sink, |name| self.host.sink_id(name))
            .map_err(|e| Error::fatal(format!("unknown sink: {e}")))?;
        self.push_row(sink, op, RowBytes::Own(key), |data| {
            serde_json::to_writer(data, row).map_err(|e| Error::fatal(format!("row for sink does not serialize: {e}")))
        })
    }

    fn push_row(
        &mut self,
        sink: u32,
        op: RowOp,
        bytes: RowBytes<'_>,
        value: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.rows.push(sink, op, self.origin, self.of_batch, bytes, value)?;
        if self.rows.len() >= EMIT_CHUNK || self.rows.data_len() >= EMIT_CHUNK_BYTES {
            self.flush_rows();
        }
        Ok(())
    }

    fn flush_rows(&mut self) {
        if self.rows.len() > 0 {
            self.host.emit(&self.rows.rows);
            self.rows.clear();
        }
    }

    fn flush_writes(&mut self) {
        if self.writes.len() > 0 {
            self.host.write(&self.writes.writes);
            self.writes.clear();
        }
    }

    /// Hands buffered rows, rejections and state writes to the host: at
    /// the end of every call, so the host holds all state between calls.
    /// `Err`: a state value written in the call does not encode (every
    /// other write still reaches the host).
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.flush_rows();
        if !self.rejected.is_empty() {
            self.host.reject(&self.rejected);
            self.rejected.clear();
        }
        self.spill_cache();
        self.flush_writes();
        self.unwritten.take().map_or(Ok(()), Err)
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
            // One UTF-8 check of the row, then a decode that trusts it, as
            // `Record::json` does: cheaper than checking string by string.
            let text = std::str::from_utf8(&bytes).map_err(|e| {
                let key = String::from_utf8_lossy(&key.key_bytes()).into_owned();
                Error::record(format!("row `{key}` of dimension `{dimension}` is not UTF-8 text: {e}"))
            })?;
            serde_json::from_str(text).map_err(|e| {
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

    /// The stage this instance runs: an index into [`crate::Job::STAGES`],
    /// 0 for a job of one stage. It stays the same for the instance's life.
    pub fn stage(&mut self) -> u32 {
        *self.stage.get_or_insert_with(|| self.host.stage())
    }

    /// Sends `row` to the next stage of a staged job ([`crate::Job::STAGES`]),
    /// keyed by the key that stage groups by: the platform routes it to the
    /// next stage's task holding that key. Call it from `process` only:
    /// the next stage drops a replay by the input record a row came from,
    /// so the runtime fails the task on a row sent from `finish_batch`,
    /// `on_timer` or `open`.
    pub fn to_next_stage<K: Key + ?Sized, R: Serialize + ?Sized>(&mut self, key: &K, row: &R) -> Result<()> {
        self.emit_keyed(crate::NEXT_STAGE, key, row)
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

/// Hands the buffered state writes to the host when they reach a chunk.
fn flush_if_full(writes: &mut WriteBuffer, host: &mut dyn Host) {
    if writes.len() >= WRITE_CHUNK || writes.data_len() >= WRITE_CHUNK_BYTES {
        host.write(&writes.writes);
        writes.clear();
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
