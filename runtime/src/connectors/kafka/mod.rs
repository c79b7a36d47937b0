//! Kafka topics in and out (rdkafka with its bundled librdkafka).
//!
//! The source `assign`s partitions at explicit positions instead of joining a
//! consumer group (as Flink's Kafka source does): a restart resumes exactly
//! where the job's own positions say, with no rebalance wait. Offsets are
//! still committed under a group id, for lag monitoring only.

mod client;
mod config;
mod lag;
mod sink;
mod source;

pub use config::{KafkaFormat, KafkaSinkConfig, KafkaSourceConfig, StartPosition, Timestamp};
pub use sink::KafkaSink;
pub use source::{ExpiredPosition, KafkaSource, partition_counts};
