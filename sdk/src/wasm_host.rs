//! The [`Host`] of a job running as a component: each call is a WIT import.

use crate::__bindings::sluice::job::{context, dimension, output, state, timers};
use crate::host::{Host, LogLevel, MetricKind, Rejected, Rows, StateKind, Stored, Timer, Writes};

pub(crate) struct WasmHost;

impl Host for WasmHost {
    fn declare_state(&mut self, name: &str, kind: StateKind, ttl_ms: Option<u64>) -> Result<u32, String> {
        state::declare(name, kind, ttl_ms)
    }
    fn get(&mut self, s: u32, key: &[u8]) -> Option<Stored> {
        state::get(s, key)
    }
    fn write(&mut self, writes: &Writes) {
        state::write(writes)
    }
    fn remove(&mut self, s: u32, key: &[u8]) {
        state::remove(s, key)
    }
    fn map_get(&mut self, s: u32, key: &[u8], field: &[u8]) -> Option<Stored> {
        state::map_get(s, key, field)
    }
    fn map_set(&mut self, s: u32, key: &[u8], field: &[u8], value: &[u8]) {
        state::map_set(s, key, field, value)
    }
    fn map_remove(&mut self, s: u32, key: &[u8], field: &[u8]) {
        state::map_remove(s, key, field)
    }
    fn map_entries(&mut self, s: u32, key: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        state::map_entries(s, key)
    }
    fn map_add(&mut self, s: u32, key: &[u8], field: &[u8], delta: i64) -> i64 {
        state::map_add(s, key, field, delta)
    }
    fn map_len(&mut self, s: u32, key: &[u8]) -> u32 {
        state::map_len(s, key)
    }
    fn sample(&mut self, s: u32, max: u32) -> Vec<Vec<u8>> {
        state::sample(s, max)
    }
    fn sink_id(&mut self, name: &str) -> Result<u32, String> {
        output::sink_id(name)
    }
    fn emit(&mut self, rows: &Rows) {
        output::emit(rows)
    }
    fn reject(&mut self, records: &[Rejected]) {
        output::reject(records)
    }
    fn dimension_id(&mut self, name: &str) -> Result<u32, String> {
        dimension::dimension_id(name)
    }
    fn lookup(&mut self, d: u32, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        dimension::lookup(d, key)
    }
    fn upsert(&mut self, d: u32, key: &[u8], row: &[u8]) -> Result<(), String> {
        dimension::upsert(d, key, row)
    }
    fn register_timer(&mut self, timer: &Timer) {
        timers::register(timer)
    }
    fn cancel_timer(&mut self, timer: &Timer) {
        timers::cancel(timer)
    }
    fn watermark(&mut self) -> Option<i64> {
        timers::watermark()
    }
    fn processing_time(&mut self) -> i64 {
        timers::processing_time()
    }
    fn job_name(&mut self) -> String {
        context::job_name()
    }
    fn parameters(&mut self) -> Vec<(String, String)> {
        context::parameters()
    }
    fn source_names(&mut self) -> Vec<String> {
        context::source_names()
    }
    fn stage(&mut self) -> u32 {
        context::stage()
    }
    fn log(&mut self, level: LogLevel, message: &str) {
        context::log(level, message)
    }
    fn metric(&mut self, name: &str, kind: MetricKind) -> u32 {
        context::metric(name, kind)
    }
    fn record_metric(&mut self, metric: u32, value: f64) {
        context::record_metric(metric, value)
    }
}
