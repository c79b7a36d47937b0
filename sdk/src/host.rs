//! The seam between job code and whatever runs it: the WASM imports in a
//! component, or the in-memory host of [`crate::testing`] in native tests.

pub use crate::__bindings::sluice::job::output::{Emitted, RowOp};
pub use crate::__bindings::sluice::job::state::StateKind;
pub use crate::__bindings::sluice::job::types::{LogLevel, MetricKind, Rejected, TimeDomain, Timer};

/// Everything a job can ask of its host. Mirrors the WIT world's imports.
pub(crate) trait Host {
    fn declare_state(&mut self, name: &str, kind: StateKind, ttl_ms: Option<u64>) -> Result<u32, String>;
    fn get(&mut self, state: u32, key: &[u8]) -> Option<Vec<u8>>;
    fn set(&mut self, state: u32, key: &[u8], value: &[u8]);
    fn remove(&mut self, state: u32, key: &[u8]);
    fn map_get(&mut self, state: u32, key: &[u8], field: &[u8]) -> Option<Vec<u8>>;
    fn map_set(&mut self, state: u32, key: &[u8], field: &[u8], value: &[u8]);
    fn map_remove(&mut self, state: u32, key: &[u8], field: &[u8]);
    fn map_entries(&mut self, state: u32, key: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
    fn map_len(&mut self, state: u32, key: &[u8]) -> u32;
    fn sample(&mut self, state: u32, max: u32) -> Vec<Vec<u8>>;

    fn sink_id(&mut self, name: &str) -> Result<u32, String>;
    fn emit(&mut self, rows: &[Emitted]);
    fn reject(&mut self, records: &[Rejected]);

    fn dimension_id(&mut self, name: &str) -> Result<u32, String>;
    fn lookup(&mut self, dimension: u32, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    fn upsert(&mut self, dimension: u32, key: &[u8], row: &[u8]) -> Result<(), String>;

    fn register_timer(&mut self, timer: &Timer);
    fn cancel_timer(&mut self, timer: &Timer);
    fn watermark(&mut self) -> Option<i64>;
    fn processing_time(&mut self) -> i64;

    fn job_name(&mut self) -> String;
    fn parameters(&mut self) -> Vec<(String, String)>;
    fn source_names(&mut self) -> Vec<String>;
    fn log(&mut self, level: LogLevel, message: &str);
    fn metric(&mut self, name: &str, kind: MetricKind) -> u32;
    fn record_metric(&mut self, metric: u32, value: f64);
}
