use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// `kind = "datagen"` source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatagenConfig {
    /// Records per second; 0 generates as fast as the job consumes.
    #[serde(default)]
    pub rate: u64,
    /// Stop after this many records (a bounded source); unbounded if absent.
    #[serde(default)]
    pub count: Option<u64>,
    /// Number of distinct keys (at least `partitions`); with one partition
    /// record `i` has key `(i * 7919) % keys`, spread so neighbouring records
    /// have different keys. With several, each key's records are on one
    /// partition, as with Kafka's default partitioner (which hashes the
    /// key): partition `r` holds the keys `k` with `k % partitions == r`.
    #[serde(default = "default_keys")]
    pub keys: u64,
    /// Random seed: the same seed gives the same records.
    #[serde(default)]
    pub seed: u64,
    /// Partitions the records are spread over: record `i` is on partition
    /// `i % partitions` (round robin), with a key of that partition.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Event time of the first record (ms since the Unix epoch); records are
    /// `1000 / rate` ms apart (1 ms when `rate` is 0). Absent: the wall clock.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// Fields of each JSON value with their generators, written in the order declared.
    pub fields: IndexMap<String, FieldGen>,
}

fn default_keys() -> u64 {
    1000
}

fn default_partitions() -> i32 {
    1
}

/// How one field is generated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "gen", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldGen {
    /// The record's key as a number.
    Key,
    /// The record's sequence number, optionally with a text prefix.
    Sequence {
        #[serde(default)]
        prefix: Option<String>,
    },
    /// A uniform integer in `[min, max]`.
    Int { min: i64, max: i64 },
    /// A uniform number in `[min, max)` rounded to `decimals` digits.
    Float {
        min: f64,
        max: f64,
        #[serde(default = "default_decimals")]
        decimals: u32,
    },
    /// One of the values, uniformly.
    Choice { values: Vec<serde_json::Value> },
    /// Text: `prefix` followed by the key (same key, same text).
    KeyText { prefix: String },
    /// Random lowercase letters.
    Text { len: usize },
    /// The record's event time (ms).
    EventTime,
    /// A fixed value.
    Const { value: serde_json::Value },
}

fn default_decimals() -> u32 {
    2
}
