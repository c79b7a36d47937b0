//! Run a job natively in `cargo test`, no WASM involved: feed records,
//! advance time, read emitted rows, dead letters, state and dimensions.
//!
//! The harness follows the runtime's rules: batches go through the same
//! decoding glue; after each batch the watermark becomes the lowest, over the
//! (source, partition) pairs seen, of the highest event time seen minus the
//! watermark delay; due timers then fire in (time, domain, key, tag) order;
//! `finish` ends the input like a bounded run (watermark to the end of time).
//!
//! ```
//! # use sluice_sdk::prelude::*;
//! # struct Echo;
//! # impl Job for Echo {
//! #     fn open(_: &mut Context) -> Result<Self> { Ok(Echo) }
//! #     fn process(&mut self, ctx: &mut Context, r: &Record) -> Result<()> {
//! #         let v: serde_json::Value = r.json()?; ctx.emit("out", &v)
//! #     }
//! # }
//! use sluice_sdk::testing::JobTester;
//! let mut t = JobTester::<Echo>::builder().sink("out").open().unwrap();
//! t.send_json(serde_json::json!({"a": 1})).unwrap();
//! t.send_raw(b"not json").unwrap();
//! assert_eq!(t.emitted("out"), vec![serde_json::json!({"a": 1})]);
//! assert_eq!(t.dead_letters().len(), 1);
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use serde::de::DeserializeOwned;

use crate::__bindings::sluice::job::types::Batch;
use crate::export::{NO_EVENT_TIME, NO_KEY};
use crate::host::{Host, LogLevel, MetricKind, Rejected, RowOp, Rows, StateKind, Stored, TimeDomain, Timer, Writes};
use crate::{Context, Job, Key, Position};

/// Timer delivery rounds per step; a job that keeps registering due timers
/// from `on_timer` is cut off here (the runtime does the same).
pub const MAX_TIMER_ROUNDS: usize = 100;

/// A record to feed in.
#[derive(Debug, Clone, Default)]
pub struct TestRecord {
    pub source: u32,
    pub partition: i32,
    /// `None`: the next offset of the partition.
    pub offset: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub event_time: Option<i64>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl TestRecord {
    pub fn json(value: &serde_json::Value) -> Self {
        TestRecord { value: value.to_string().into_bytes(), ..Default::default() }
    }

    pub fn with_key(mut self, key: &(impl Key + ?Sized)) -> Self {
        self.key = Some(key.key_bytes().into_owned());
        self
    }

    pub fn at(mut self, event_time: i64) -> Self {
        self.event_time = Some(event_time);
        self
    }

    pub fn from_source(mut self, source: u32) -> Self {
        self.source = source;
        self
    }
}

/// A row the job emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct EmittedRow {
    pub sink: String,
    pub op: RowOp,
    pub key: Option<Vec<u8>>,
    pub value: serde_json::Value,
}

/// A record the job rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub position: Position,
    pub reason: String,
    pub value: Vec<u8>,
}

/// Bytes with the processing time they were written at.
type Stamped = (Vec<u8>, i64);
/// Rows of a dimension store by key.
type DimensionRows = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct StateTable {
    name: String,
    kind: Option<StateKind>,
    ttl_ms: Option<u64>,
    values: BTreeMap<Vec<u8>, Stamped>,
    maps: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Stamped>>,
}

impl StateTable {
    fn live(&self, written: i64, now: i64) -> bool {
        self.ttl_ms.is_none_or(|ttl| now.saturating_sub(written) < ttl as i64)
    }
}

#[derive(Debug, Default)]
struct Shared {
    job_name: String,
    parameters: Vec<(String, String)>,
    sources: Vec<String>,
    stage: u32,
    sinks: Vec<String>,
    dimensions: Vec<(String, DimensionRows)>,
    states: Vec<StateTable>,
    timers: BTreeSet<(i64, TimeDomain, Vec<u8>, String)>,
    now: i64,
    watermark: Option<i64>,
    /// Data of the batch being processed: forwarded rows point into it.
    input: Vec<u8>,
    emitted: Vec<EmittedRow>,
    rejected: Vec<Rejected>,
    logs: Vec<(LogLevel, String)>,
    metrics: Vec<(String, MetricKind, f64)>,
    /// Whether `open` has returned: the runtime refuses state declared later.
    opened: bool,
}

/// The in-memory host behind a [`JobTester`].
struct TestHost(Rc<RefCell<Shared>>);

impl TestHost {
    fn table(&self, state: u32) -> std::cell::RefMut<'_, StateTable> {
        std::cell::RefMut::map(self.0.borrow_mut(), |s| &mut s.states[state as usize])
    }

    fn now(&self) -> i64 {
        self.0.borrow().now
    }
}

impl Host for TestHost {
    fn declare_state(&mut self, name: &str, kind: StateKind, ttl_ms: Option<u64>) -> Result<u32, String> {
        let mut s = self.0.borrow_mut();
        if s.opened {
            return Err(format!(
                "state `{name}` is declared after `open`: declare every state in `Job::open` (a function job keeps none)"
            ));
        }
        // As the runtime: `sluice.` names are the platform's.
        if name.starts_with("sluice.") {
            return Err(format!("state `{name}`: names starting with `sluice.` are the platform's; rename it"));
        }
        if let Some(i) = s.states.iter().position(|t| t.name == name) {
            let table = &mut s.states[i];
            if table.kind.is_some_and(|k| k != kind) {
                return Err(format!("state `{name}` is already declared as another kind"));
            }
            table.kind = Some(kind);
            table.ttl_ms = ttl_ms;
            return Ok(i as u32);
        }
        s.states.push(StateTable { name: name.to_owned(), kind: Some(kind), ttl_ms, ..Default::default() });
        Ok(s.states.len() as u32 - 1)
    }
    fn get(&mut self, state: u32, key: &[u8]) -> Option<Stored> {
        let now = self.now();
        let t = self.table(state);
        t.values.get(key).filter(|(_, w)| t.live(*w, now)).map(|(v, _)| Stored::new(v))
    }
    fn write(&mut self, writes: &Writes) {
        let now = self.now();
        for (&state, s) in writes.states.iter().zip(writes.spans.chunks_exact(4)) {
            let key = writes.data[s[0] as usize..][..s[1] as usize].to_vec();
            let mut t = self.table(state);
            if s[3] == u32::MAX {
                t.values.remove(&key);
                t.maps.remove(&key);
            } else {
                let value = writes.data[s[2] as usize..][..s[3] as usize].to_vec();
                t.values.insert(key, (value, now));
            }
        }
    }
    fn remove(&mut self, state: u32, key: &[u8]) {
        let mut t = self.table(state);
        t.values.remove(key);
        t.maps.remove(key);
    }
    fn map_get(&mut self, state: u32, key: &[u8], field: &[u8]) -> Option<Stored> {
        let now = self.now();
        let t = self.table(state);
        t.maps.get(key)?.get(field).filter(|(_, w)| t.live(*w, now)).map(|(v, _)| Stored::new(v))
    }
    fn map_set(&mut self, state: u32, key: &[u8], field: &[u8], value: &[u8]) {
        let now = self.now();
        self.table(state).maps.entry(key.to_vec()).or_default().insert(field.to_vec(), (value.to_vec(), now));
    }
    fn map_remove(&mut self, state: u32, key: &[u8], field: &[u8]) {
        let mut t = self.table(state);
        if let Some(map) = t.maps.get_mut(key) {
            map.remove(field);
            if map.is_empty() {
                t.maps.remove(key);
            }
        }
    }
    fn map_entries(&mut self, state: u32, key: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let now = self.now();
        let t = self.table(state);
        let Some(map) = t.maps.get(key) else { return Vec::new() };
        map.iter().filter(|(_, (_, w))| t.live(*w, now)).map(|(f, (v, _))| (f.clone(), v.clone())).collect()
    }
    fn map_add(&mut self, state: u32, key: &[u8], field: &[u8], delta: i64) -> i64 {
        let now = self.now();
        let current = self.map_get(state, key, field).map_or(0, |stored| {
            crate::codec::decode::<i64>(stored.bytes(&mut [0; 24])).expect("map-add on a field that is not a counter")
        });
        let total = current.saturating_add(delta);
        if total <= 0 {
            self.map_remove(state, key, field);
        } else {
            let value = [&[0xc0][..], &total.to_le_bytes()].concat();
            self.table(state).maps.entry(key.to_vec()).or_default().insert(field.to_vec(), (value, now));
        }
        total
    }
    fn map_len(&mut self, state: u32, key: &[u8]) -> u32 {
        let now = self.now();
        let t = self.table(state);
        t.maps.get(key).map_or(0, |m| m.values().filter(|(_, w)| t.live(*w, now)).count() as u32)
    }
    fn sample(&mut self, state: u32, max: u32) -> Vec<Vec<u8>> {
        let now = self.now();
        let t = self.table(state);
        let values = t.values.values().chain(t.maps.values().flat_map(|m| m.values()));
        values.filter(|(_, w)| t.live(*w, now)).take(max as usize).map(|(v, _)| v.clone()).collect()
    }
    fn sink_id(&mut self, name: &str) -> Result<u32, String> {
        let s = self.0.borrow();
        s.sinks.iter().position(|n| n == name).map(|i| i as u32).ok_or_else(|| {
            if s.sinks.iter().any(|n| n == crate::NEXT_STAGE) && s.sinks.len() == 1 {
                format!(
                    "`{name}` is not a sink of stage {} of job `{}`: a stage before the last sends its rows on \
                     (`ctx.to_next_stage`), and the job's sinks are its last stage's",
                    s.stage, s.job_name
                )
            } else {
                format!("`{name}` is not declared; declared sinks: {:?}", s.sinks)
            }
        })
    }
    fn emit(&mut self, rows: &Rows) {
        let mut s = self.0.borrow_mut();
        for (i, spans) in rows.spans.chunks_exact(4).enumerate() {
            // Bit 1: the bytes are the input record's, in the batch (see the WIT `rows`).
            let bytes = if rows.flags[i] & 2 != 0 { s.input.as_slice() } else { rows.data.as_slice() };
            let key = (spans[1] != NO_KEY).then(|| bytes[spans[0] as usize..][..spans[1] as usize].to_vec());
            let value = serde_json::from_slice(&bytes[spans[2] as usize..][..spans[3] as usize])
                .expect("the SDK emits JSON (or forwards a JSON record)");
            let op = if rows.flags[i] & 1 != 0 { RowOp::Delete } else { RowOp::Upsert };
            let sink = s.sinks[rows.sinks[i] as usize].clone();
            s.emitted.push(EmittedRow { sink, op, key, value });
        }
    }
    fn reject(&mut self, records: &[Rejected]) {
        self.0.borrow_mut().rejected.extend_from_slice(records);
    }
    fn dimension_id(&mut self, name: &str) -> Result<u32, String> {
        let s = self.0.borrow();
        s.dimensions.iter().position(|(n, _)| n == name).map(|i| i as u32).ok_or_else(|| {
            let names: Vec<_> = s.dimensions.iter().map(|(n, _)| n.as_str()).collect();
            format!("`{name}` is not declared; declared dimensions: {names:?}")
        })
    }
    fn lookup(&mut self, dimension: u32, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.borrow().dimensions[dimension as usize].1.get(key).cloned())
    }
    fn upsert(&mut self, dimension: u32, key: &[u8], row: &[u8]) -> Result<(), String> {
        self.0.borrow_mut().dimensions[dimension as usize].1.insert(key.to_vec(), row.to_vec());
        Ok(())
    }
    fn register_timer(&mut self, t: &Timer) {
        self.0.borrow_mut().timers.insert((t.time, t.domain, t.key.clone(), t.tag.clone()));
    }
    fn cancel_timer(&mut self, t: &Timer) {
        self.0.borrow_mut().timers.remove(&(t.time, t.domain, t.key.clone(), t.tag.clone()));
    }
    fn watermark(&mut self) -> Option<i64> {
        self.0.borrow().watermark
    }
    fn processing_time(&mut self) -> i64 {
        self.now()
    }
    fn job_name(&mut self) -> String {
        self.0.borrow().job_name.clone()
    }
    fn parameters(&mut self) -> Vec<(String, String)> {
        self.0.borrow().parameters.clone()
    }
    fn source_names(&mut self) -> Vec<String> {
        self.0.borrow().sources.clone()
    }
    fn stage(&mut self) -> u32 {
        self.0.borrow().stage
    }
    fn log(&mut self, level: LogLevel, message: &str) {
        self.0.borrow_mut().logs.push((level, message.to_owned()));
    }
    fn metric(&mut self, name: &str, kind: MetricKind) -> u32 {
        let mut s = self.0.borrow_mut();
        s.metrics.push((name.to_owned(), kind, 0.0));
        s.metrics.len() as u32 - 1
    }
    fn record_metric(&mut self, metric: u32, value: f64) {
        let mut s = self.0.borrow_mut();
        let m = &mut s.metrics[metric as usize];
        // As the runtime does: counters and histograms sum, gauges keep the last value.
        match m.1 {
            MetricKind::Counter | MetricKind::Histogram => m.2 += value,
            MetricKind::Gauge => m.2 = value,
        }
    }
}

/// Configures a [`JobTester`].
#[derive(Debug)]
pub struct JobTesterBuilder<J> {
    shared: Shared,
    watermark_delay_ms: i64,
    _job: std::marker::PhantomData<J>,
}

impl<J: Job> JobTesterBuilder<J> {
    pub fn name(mut self, name: &str) -> Self {
        self.shared.job_name = name.to_owned();
        self
    }
    pub fn param(mut self, name: &str, value: impl ToString) -> Self {
        self.shared.parameters.push((name.to_owned(), value.to_string()));
        self
    }
    /// Declares a source; records name it by index (the first is 0).
    pub fn source(mut self, name: &str) -> Self {
        self.shared.sources.push(name.to_owned());
        self
    }
    /// Runs stage `stage` of a staged job (`Job::STAGES`); 0 by default.
    /// A stage before the last has the one sink [`crate::NEXT_STAGE`],
    /// whatever sinks are declared, as on the platform: its rows for a job
    /// sink fail its batch.
    pub fn stage(mut self, stage: u32) -> Self {
        self.shared.stage = stage;
        self
    }
    pub fn sink(mut self, name: &str) -> Self {
        self.shared.sinks.push(name.to_owned());
        self
    }
    /// Declares a dimension store holding `rows` (key, JSON row).
    pub fn dimension<K: Key>(mut self, name: &str, rows: impl IntoIterator<Item = (K, serde_json::Value)>) -> Self {
        let rows = rows.into_iter().map(|(k, v)| (k.key_bytes().into_owned(), v.to_string().into_bytes())).collect();
        self.shared.dimensions.push((name.to_owned(), rows));
        self
    }
    /// The processing time the job starts at (ms since the Unix epoch).
    pub fn processing_time(mut self, now: i64) -> Self {
        self.shared.now = now;
        self
    }
    /// How far the watermark trails the highest event time seen.
    pub fn watermark_delay(mut self, ms: i64) -> Self {
        self.watermark_delay_ms = ms;
        self
    }
    /// Opens the job (calls `Job::open`).
    pub fn open(mut self) -> Result<JobTester<J>, String> {
        if self.shared.job_name.is_empty() {
            self.shared.job_name = std::any::type_name::<J>().rsplit("::").next().unwrap_or("job").to_owned();
        }
        if self.shared.sources.is_empty() {
            self.shared.sources.push("input".to_owned());
        }
        let stages = J::STAGES.len().max(1);
        if self.shared.stage as usize >= stages {
            return Err(format!("stage {} does not exist: the job declares {stages}", self.shared.stage));
        }
        // As on the platform, a stage before the last has one sink: the
        // next stage. The job's sinks are its last stage's.
        if (self.shared.stage as usize) + 1 < stages {
            self.shared.sinks = vec![crate::NEXT_STAGE.to_owned()];
        }
        let shared = Rc::new(RefCell::new(self.shared));
        let (ctx, job) = crate::export::open::<J>(Context::new(Box::new(TestHost(shared.clone()))))?;
        shared.borrow_mut().opened = true;
        Ok(JobTester {
            job,
            ctx,
            shared,
            watermark_delay_ms: self.watermark_delay_ms,
            next_offsets: HashMap::new(),
            max_event_time: HashMap::new(),
            fed: Vec::new(),
        })
    }
}

/// Drives a job natively. See the module documentation.
pub struct JobTester<J> {
    job: J,
    ctx: Context,
    shared: Rc<RefCell<Shared>>,
    watermark_delay_ms: i64,
    next_offsets: HashMap<(u32, i32), i64>,
    max_event_time: HashMap<(u32, i32), i64>,
    /// Every record fed in, by position, to report dead letters with their value.
    fed: Vec<(Position, Vec<u8>)>,
}

impl<J: Job> JobTester<J> {
    pub fn builder() -> JobTesterBuilder<J> {
        JobTesterBuilder { shared: Shared::default(), watermark_delay_ms: 0, _job: std::marker::PhantomData }
    }

    /// Feeds one JSON record as a batch of one.
    pub fn send_json(&mut self, value: serde_json::Value) -> Result<(), String> {
        self.send_batch(vec![TestRecord::json(&value)])
    }

    /// Feeds one record with raw value bytes.
    pub fn send_raw(&mut self, value: &[u8]) -> Result<(), String> {
        self.send_batch(vec![TestRecord { value: value.to_vec(), ..Default::default() }])
    }

    pub fn send(&mut self, record: TestRecord) -> Result<(), String> {
        self.send_batch(vec![record])
    }

    /// Feeds a batch, then advances the watermark and fires due timers.
    pub fn send_batch(&mut self, records: Vec<TestRecord>) -> Result<(), String> {
        let times: Vec<_> = records.iter().map(|r| (r.source, r.partition, r.event_time)).collect();
        let batch = self.build_batch(records);
        let rejected_before = {
            let mut s = self.shared.borrow_mut();
            s.input.clone_from(&batch.data);
            s.rejected.len()
        };
        let result = crate::export::process_batch(&mut self.job, &mut self.ctx, &batch);
        self.shared.borrow_mut().input.clear();
        self.observe_event_times(&times, rejected_before);
        self.rebase_rejections(&batch, rejected_before);
        result?;
        self.update_watermark();
        self.fire_due_timers()
    }

    /// Runs a batch exactly as given, however it is laid out, through the
    /// decoder a component runs: for that decoder's fuzz tests.
    #[cfg(test)]
    pub(crate) fn process_as_given(&mut self, batch: &Batch) -> Result<(), String> {
        crate::export::process_batch(&mut self.job, &mut self.ctx, batch)
    }

    /// Moves processing time forward by `ms` and fires due timers.
    pub fn advance_processing_time(&mut self, ms: i64) -> Result<(), String> {
        self.shared.borrow_mut().now += ms;
        self.fire_due_timers()
    }

    /// Raises the watermark to `to` and fires due event-time timers.
    pub fn advance_watermark(&mut self, to: i64) -> Result<(), String> {
        {
            let mut s = self.shared.borrow_mut();
            s.watermark = Some(s.watermark.map_or(to, |w| w.max(to)));
        }
        self.fire_due_timers()
    }

    /// Ends the input as a bounded run does: every event-time timer fires.
    pub fn finish(&mut self) -> Result<(), String> {
        self.advance_watermark(i64::MAX)
    }

    /// Values emitted to `sink` (upserts and deletes alike), in order.
    pub fn emitted(&self, sink: &str) -> Vec<serde_json::Value> {
        self.shared.borrow().emitted.iter().filter(|r| r.sink == sink).map(|r| r.value.clone()).collect()
    }

    /// Every emitted row, in order.
    pub fn emitted_rows(&self) -> Vec<EmittedRow> {
        self.shared.borrow().emitted.clone()
    }

    /// Forgets emitted rows (keeps state).
    pub fn clear_emitted(&mut self) {
        self.shared.borrow_mut().emitted.clear();
    }

    /// The table an upsert sink keyed by `key_columns` ends up holding
    /// (upserts replace, deletes remove), keyed by the key columns' JSON
    /// joined with `|`.
    pub fn upserted(&self, sink: &str, key_columns: &[&str]) -> BTreeMap<String, serde_json::Value> {
        let mut table = BTreeMap::new();
        for row in self.shared.borrow().emitted.iter().filter(|r| r.sink == sink) {
            let key = key_columns.iter().map(|c| row.value[*c].to_string()).collect::<Vec<_>>().join("|");
            match row.op {
                RowOp::Upsert => table.insert(key, row.value.clone()),
                RowOp::Delete => table.remove(&key),
            };
        }
        table
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        let s = self.shared.borrow();
        s.rejected
            .iter()
            .map(|r| {
                let (position, value) = self.fed[r.index as usize].clone();
                DeadLetter { position, reason: r.reason.clone(), value }
            })
            .collect()
    }

    /// The value held in value state `state` for `key`, decoded.
    pub fn value_state<T: DeserializeOwned>(&self, state: &str, key: &(impl Key + ?Sized)) -> Option<T> {
        let s = self.shared.borrow();
        let table = s.states.iter().find(|t| t.name == state)?;
        let (bytes, written) = table.values.get(key.key_bytes().as_ref())?;
        table.live(*written, s.now).then(|| crate::codec::decode(bytes).expect("state decodes as the type asked for"))
    }

    /// The fields of map state `state` for `key`, decoded.
    pub fn map_state<V: DeserializeOwned>(&self, state: &str, key: &(impl Key + ?Sized)) -> BTreeMap<Vec<u8>, V> {
        let s = self.shared.borrow();
        let Some(table) = s.states.iter().find(|t| t.name == state) else { return BTreeMap::new() };
        let Some(map) = table.maps.get(key.key_bytes().as_ref()) else { return BTreeMap::new() };
        map.iter()
            .filter(|(_, (_, w))| table.live(*w, s.now))
            .map(|(f, (v, _))| (f.clone(), crate::codec::decode(v).expect("state decodes as the type asked for")))
            .collect()
    }

    /// The row of dimension `name` under `key`.
    pub fn dimension_row(&self, name: &str, key: &(impl Key + ?Sized)) -> Option<serde_json::Value> {
        let s = self.shared.borrow();
        let (_, rows) = s.dimensions.iter().find(|(n, _)| n == name)?;
        rows.get(key.key_bytes().as_ref()).map(|b| serde_json::from_slice(b).expect("dimension rows are JSON"))
    }

    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.shared.borrow().logs.clone()
    }

    /// Current value of a custom metric (counter or histogram sum, last gauge value).
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.shared.borrow().metrics.iter().rev().find(|(n, _, _)| n == name).map(|m| m.2)
    }

    pub fn watermark(&self) -> Option<i64> {
        self.shared.borrow().watermark
    }

    /// The job itself, to inspect fields.
    pub fn job(&self) -> &J {
        &self.job
    }

    /// The batch the runtime would build (`runtime/src/job/batch.rs`).
    fn build_batch(&mut self, records: Vec<TestRecord>) -> Batch {
        let mut b = Batch {
            data: Vec::new(),
            meta: Vec::new(),
            positions: Vec::new(),
            headers: Vec::new(),
            header_ends: Vec::new(),
        };
        let with_headers = records.iter().any(|r| !r.headers.is_empty());
        for r in records {
            let next = self.next_offsets.entry((r.source, r.partition)).or_insert(0);
            let offset = r.offset.unwrap_or(*next);
            *next = offset + 1;
            let (key_start, key_len) = match &r.key {
                Some(k) => push(&mut b.data, k),
                None => (0, NO_KEY),
            };
            let (value_start, value_len) = push(&mut b.data, &r.value);
            b.meta.extend_from_slice(&[key_start, key_len, value_start, value_len, r.source, r.partition as u32]);
            b.positions.extend_from_slice(&[offset, r.event_time.unwrap_or(NO_EVENT_TIME)]);
            for (name, v) in &r.headers {
                let (name_start, name_len) = push(&mut b.data, name.as_bytes());
                let (value_start, value_len) = push(&mut b.data, v);
                b.headers.extend_from_slice(&[name_start, name_len, value_start, value_len]);
            }
            if with_headers {
                b.header_ends.push((b.headers.len() / 4) as u32);
            }
            let position = Position { source: r.source, partition: r.partition, offset };
            self.fed.push((position, r.value));
        }
        b
    }

    /// The event times of the batch's records the job did not reject, as
    /// the platform feeds its watermark (a refused record tells nothing
    /// about event time).
    fn observe_event_times(&mut self, times: &[(u32, i32, Option<i64>)], rejected_before: usize) {
        let mut rejected: Vec<u32> = self.shared.borrow().rejected[rejected_before..].iter().map(|r| r.index).collect();
        rejected.sort_unstable();
        for (i, &(source, partition, time)) in times.iter().enumerate() {
            if let Some(time) = time
                && rejected.binary_search(&(i as u32)).is_err()
            {
                let max = self.max_event_time.entry((source, partition)).or_insert(time);
                *max = (*max).max(time);
            }
        }
    }

    /// Rejections index their batch; rebase the ones this batch added onto
    /// `fed`, which numbers every record ever fed in.
    fn rebase_rejections(&mut self, batch: &Batch, rejected_before: usize) {
        let base = (self.fed.len() - batch.positions.len() / 2) as u32;
        for r in &mut self.shared.borrow_mut().rejected[rejected_before..] {
            r.index += base;
        }
    }

    fn update_watermark(&mut self) {
        if let Some(lowest) = self.max_event_time.values().min() {
            let candidate = lowest.saturating_sub(self.watermark_delay_ms);
            let mut s = self.shared.borrow_mut();
            s.watermark = Some(s.watermark.map_or(candidate, |w| w.max(candidate)));
        }
    }

    fn fire_due_timers(&mut self) -> Result<(), String> {
        for _ in 0..MAX_TIMER_ROUNDS {
            let due = {
                let mut s = self.shared.borrow_mut();
                let (now, watermark) = (s.now, s.watermark);
                let due: Vec<_> = s
                    .timers
                    .iter()
                    .filter(|(time, domain, _, _)| match domain {
                        TimeDomain::ProcessingTime => *time <= now,
                        TimeDomain::EventTime => watermark.is_some_and(|w| *time <= w),
                    })
                    .cloned()
                    .collect();
                for t in &due {
                    s.timers.remove(t);
                }
                due
            };
            if due.is_empty() {
                return Ok(());
            }
            let timers: Vec<Timer> =
                due.into_iter().map(|(time, domain, key, tag)| Timer { domain, time, key, tag }).collect();
            crate::export::fire_timers(&mut self.job, &mut self.ctx, &timers)?;
        }
        Ok(())
    }
}

/// Appends `bytes`; returns their (start, length).
fn push(data: &mut Vec<u8>, bytes: &[u8]) -> (u32, u32) {
    let start = data.len() as u32;
    data.extend_from_slice(bytes);
    (start, bytes.len() as u32)
}

/// A reproducible scenario for a job: its setup and input batches. The job's
/// native tests run it through [`JobTester`]; the runtime's tests run the same
/// case against the compiled component and compare the outputs.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub name: String,
    pub parameters: Vec<(String, String)>,
    /// Source names; records refer to them by index.
    pub sources: Vec<String>,
    pub sinks: Vec<String>,
    /// Dimension stores with their initial rows (key, JSON row).
    pub dimensions: Vec<(String, Vec<(String, serde_json::Value)>)>,
    /// Processing time while the case runs (ms since the Unix epoch).
    pub processing_time: i64,
    pub watermark_delay_ms: i64,
    /// Input, batch by batch.
    pub batches: Vec<Vec<TestRecord>>,
}

/// What a job produced for a [`Case`].
#[derive(Debug, Clone, PartialEq)]
pub struct CaseOutput {
    /// Emitted rows in order.
    pub emitted: Vec<EmittedRow>,
    /// Dead letters: position and reason.
    pub dead_letters: Vec<(Position, String)>,
    /// Final rows of each dimension store, sorted by key.
    pub dimensions: Vec<(String, Vec<(String, serde_json::Value)>)>,
}

impl Case {
    pub fn new(name: &str) -> Self {
        Case { name: name.to_owned(), ..Default::default() }
    }
    pub fn param(mut self, name: &str, value: impl ToString) -> Self {
        self.parameters.push((name.to_owned(), value.to_string()));
        self
    }
    pub fn source(mut self, name: &str) -> Self {
        self.sources.push(name.to_owned());
        self
    }
    pub fn sink(mut self, name: &str) -> Self {
        self.sinks.push(name.to_owned());
        self
    }
    pub fn dimension(mut self, name: &str, rows: Vec<(String, serde_json::Value)>) -> Self {
        self.dimensions.push((name.to_owned(), rows));
        self
    }
    pub fn processing_time(mut self, now: i64) -> Self {
        self.processing_time = now;
        self
    }
    pub fn watermark_delay(mut self, ms: i64) -> Self {
        self.watermark_delay_ms = ms;
        self
    }
    pub fn batch(mut self, records: Vec<TestRecord>) -> Self {
        self.batches.push(records);
        self
    }

    /// A tester set up as this case says, not yet fed.
    pub fn tester<J: Job>(&self) -> Result<JobTester<J>, String> {
        let mut b =
            JobTester::<J>::builder().processing_time(self.processing_time).watermark_delay(self.watermark_delay_ms);
        for (k, v) in &self.parameters {
            b = b.param(k, v);
        }
        for s in &self.sources {
            b = b.source(s);
        }
        for s in &self.sinks {
            b = b.sink(s);
        }
        for (name, rows) in &self.dimensions {
            b = b.dimension(name, rows.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        b.open()
    }

    /// Runs the case natively: every batch, then the end of input.
    pub fn run_native<J: Job>(&self) -> Result<(JobTester<J>, CaseOutput), String> {
        let mut t = self.tester::<J>()?;
        for batch in &self.batches {
            t.send_batch(batch.clone())?;
        }
        t.finish()?;
        let output = t.output();
        Ok((t, output))
    }
}

impl<J: Job> JobTester<J> {
    /// Everything the job produced so far, in the shape the runtime tests
    /// compare against.
    pub fn output(&self) -> CaseOutput {
        let s = self.shared.borrow();
        CaseOutput {
            emitted: s.emitted.clone(),
            dead_letters: self.dead_letters().into_iter().map(|d| (d.position, d.reason)).collect(),
            dimensions: s
                .dimensions
                .iter()
                .map(|(name, rows)| {
                    let rows = rows
                        .iter()
                        .map(|(k, v)| {
                            (String::from_utf8_lossy(k).into_owned(), serde_json::from_slice(v).expect("JSON rows"))
                        })
                        .collect();
                    (name.clone(), rows)
                })
                .collect(),
        }
    }
}
