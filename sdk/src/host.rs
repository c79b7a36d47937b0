//! The seam between job code and whatever runs it: the WASM imports in a
//! component, or the in-memory host of [`crate::testing`] in native tests.

pub use crate::__bindings::sluice::job::output::{RowOp, Rows};
pub use crate::__bindings::sluice::job::state::{SmallValue, StateKind, Stored, Writes};
pub use crate::__bindings::sluice::job::types::{LogLevel, MetricKind, Rejected, TimeDomain, Timer};

/// Everything a job can ask of its host. Mirrors the WIT world's imports.
pub(crate) trait Host {
    fn declare_state(&mut self, name: &str, kind: StateKind, ttl_ms: Option<u64>) -> Result<u32, String>;
    fn get(&mut self, state: u32, key: &[u8]) -> Option<Stored>;
    fn write(&mut self, writes: &Writes);
    fn remove(&mut self, state: u32, key: &[u8]);
    fn map_get(&mut self, state: u32, key: &[u8], field: &[u8]) -> Option<Stored>;
    fn map_set(&mut self, state: u32, key: &[u8], field: &[u8], value: &[u8]);
    fn map_remove(&mut self, state: u32, key: &[u8], field: &[u8]);
    fn map_entries(&mut self, state: u32, key: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// Adds `delta` to the counter in a map field (absent: 0); a total of
    /// 0 or less removes the field. Returns the total.
    fn map_add(&mut self, state: u32, key: &[u8], field: &[u8], delta: i64) -> i64;
    fn map_len(&mut self, state: u32, key: &[u8]) -> u32;
    fn sample(&mut self, state: u32, max: u32) -> Vec<Vec<u8>>;

    fn sink_id(&mut self, name: &str) -> Result<u32, String>;
    fn emit(&mut self, rows: &Rows);
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
    fn stage(&mut self) -> u32;
    fn log(&mut self, level: LogLevel, message: &str);
    fn metric(&mut self, name: &str, kind: MetricKind) -> u32;
    fn record_metric(&mut self, metric: u32, value: f64);
}

/// Longest value returned inline (`stored.small`).
const SMALL_VALUE: usize = 24;

impl Stored {
    /// How the host returns `value` (the native test host uses it too).
    pub(crate) fn new(value: &[u8]) -> Stored {
        if value.len() > SMALL_VALUE {
            return Stored::Large(value.to_vec());
        }
        let mut b = [0u8; SMALL_VALUE];
        b[..value.len()].copy_from_slice(value);
        let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Stored::Small(SmallValue { len: value.len() as u8, bytes: (word(0), word(1), word(2)) })
    }

    /// The value's bytes; a small value is unpacked into `buf`.
    pub(crate) fn bytes<'a>(&'a self, buf: &'a mut [u8; SMALL_VALUE]) -> &'a [u8] {
        match self {
            Stored::Large(bytes) => bytes,
            Stored::Small(SmallValue { len, bytes: (a, b, c) }) => {
                buf[..8].copy_from_slice(&a.to_le_bytes());
                buf[8..16].copy_from_slice(&b.to_le_bytes());
                buf[16..].copy_from_slice(&c.to_le_bytes());
                &buf[..(*len as usize).min(SMALL_VALUE)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_round_trip() {
        for len in [0, 1, 7, 8, 9, 23, SMALL_VALUE, SMALL_VALUE + 1, 100] {
            let value: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let stored = Stored::new(&value);
            assert_eq!(matches!(stored, Stored::Small(_)), len <= SMALL_VALUE, "len {len}");
            assert_eq!(stored.bytes(&mut [0xff; SMALL_VALUE]), value.as_slice(), "len {len}");
        }
    }
}
