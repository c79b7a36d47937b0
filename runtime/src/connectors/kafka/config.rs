use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// `kind = "kafka"` source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// A `kafka` connection of the registry.
    pub connection: String,
    /// The topic to read; or `topics` for several.
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub topics: Vec<String>,
    /// Where reading starts when the job has no position of its own.
    #[serde(default)]
    pub start: StartPosition,
    /// Read up to the end offsets seen at start, then finish (a bounded,
    /// batch-style run) instead of following the topic.
    #[serde(default)]
    pub bounded: bool,
    #[serde(default)]
    pub format: KafkaFormat,
    /// JSON field holding the event time (milliseconds since the epoch);
    /// by default the message's Kafka timestamp.
    #[serde(default)]
    pub event_time_field: Option<String>,
    /// How often positions are committed for lag monitoring, under the
    /// consumer group `sluice-<job>` (the platform's name for the job, not
    /// a spec's choice, so no job can move another's committed offsets).
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    /// How long an unreachable cluster is retried at start before the task
    /// fails.
    #[serde(default = "default_startup_timeout", with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// When resuming from a snapshot, start fetching this many offsets
    /// before the position and drop what precedes it. Brokers that cannot
    /// start a fetch inside a producer's record batch (Tansu) return the
    /// next batch instead; reading from before the batch's start avoids the
    /// skip. librdkafka producers put at most 10,000 messages in a batch.
    #[serde(default = "default_resume_lookback")]
    pub resume_lookback: i64,
    /// Drop records whose `sluice-row-id` header (a Kafka sink's
    /// `row_id_header`) names a row this job already applied: the rows of
    /// an upstream Sluice job are applied once however often it replays
    /// (`job::origin_dedup`).
    #[serde(default)]
    pub dedup_by_row_id: bool,
    /// librdkafka consumer settings over the connection's: only batching,
    /// fetch sizes, timeouts and retries (`connections::SPEC_TUNABLE`).
    #[serde(default)]
    pub properties: IndexMap<String, String>,
}

fn default_resume_lookback() -> i64 {
    10_000
}

impl KafkaSourceConfig {
    /// The topics, from `topic` and `topics`.
    pub fn topic_list(&self) -> Vec<String> {
        self.topic.iter().chain(&self.topics).cloned().collect()
    }
}

/// Start position of a source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest retained message.
    #[default]
    Earliest,
    /// Only messages produced after the job starts.
    Latest,
    /// The first message at or after a time.
    Timestamp(Timestamp),
    /// Explicit next offsets by partition: `"0" = 42`, or `"topic:0" = 42`
    /// with several topics. Unlisted partitions start at the earliest.
    Offsets(IndexMap<String, i64>),
}

/// Milliseconds since the epoch, or an RFC 3339 time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    Millis(i64),
    Text(String),
}

impl Timestamp {
    pub fn millis(&self) -> Result<i64, String> {
        match self {
            Timestamp::Millis(ms) => Ok(*ms),
            Timestamp::Text(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| format!("start timestamp `{t}` is not RFC 3339 (e.g. 2024-03-15T00:00:00+08:00): {e}")),
        }
    }
}

/// What the message values are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaFormat {
    /// JSON documents (`record.json()`); `event_time_field` can be used.
    #[default]
    Json,
    /// Bytes, handed over as they are.
    Raw,
}

/// `kind = "kafka"` sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub connection: String,
    pub topic: String,
    /// Adds a `sluice-row-id` header with the row's deterministic id, so
    /// consumers can drop replayed duplicates.
    #[serde(default)]
    pub row_id_header: bool,
    /// Longest wait for outstanding messages on a flush.
    #[serde(default = "default_flush_timeout", with = "humantime_serde")]
    pub flush_timeout: Duration,
    #[serde(default = "default_startup_timeout", with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// librdkafka producer settings over the connection's: only batching,
    /// linger, compression, timeouts and retries (`connections::SPEC_TUNABLE`).
    #[serde(default)]
    pub properties: IndexMap<String, String>,
}

/// Producer settings a sink with `row_id_header` keeps to itself: where a
/// row goes, and that no message is given up on while later ones of its
/// partition are delivered, are what lets a consumer drop replays by id.
pub const ROW_ID_FIXED: &[&str] = &["partitioner", "message.timeout.ms", "delivery.timeout.ms"];

impl KafkaSinkConfig {
    /// Refuses properties that would break what `row_id_header` promises.
    pub fn check_row_ids(&self) -> Result<(), String> {
        match self.properties.keys().find(|k| self.row_id_header && ROW_ID_FIXED.contains(&k.as_str())) {
            Some(key) => Err(format!(
                "Kafka property `{key}` cannot be set with `row_id_header = true`: consumers that drop replays \
                 by row id (`dedup_by_row_id`) rely on where each row goes and on no message being given up"
            )),
            None => Ok(()),
        }
    }
}

fn default_commit_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_startup_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_flush_timeout() -> Duration {
    Duration::from_secs(60)
}
