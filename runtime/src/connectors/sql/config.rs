use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::connectors::cache::CacheConfig;

/// `kind = "sql"` sink: rows (JSON objects) into a table, column by field name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSinkConfig {
    /// A `database` connection of the registry.
    pub connection: String,
    pub table: String,
    #[serde(default)]
    pub mode: SqlSinkMode,
    /// Upsert mode: the primary-key columns (the table's conflict target).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Columns and their types (`text`, `bigint`, `double`, `decimal`,
    /// `boolean`, `timestamp`, `json`, or any SQL type). Checked against the
    /// table before the first record; when empty, the table's own columns.
    #[serde(default)]
    pub columns: IndexMap<String, String>,
    /// Creates the table from `columns` when it does not exist.
    #[serde(default)]
    pub create_table: bool,
    /// Append mode: the unique column that holds each row's deterministic
    /// id (source/partition/offset/emit index), inserted-or-ignored.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// Rows per write.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest time a row waits in the buffer, e.g. "1s".
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long transient failures (database down) are retried, with the
    /// batch held, before the task fails.
    #[serde(default = "default_max_retry_time", with = "humantime_serde")]
    pub max_retry_time: Duration,
}

/// How rows land in the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlSinkMode {
    /// Insert or update by primary key; deletes delete by primary key.
    #[default]
    Upsert,
    /// Insert each row once, keyed by its deterministic id.
    Append,
}

/// `kind = "sql"` dimension: rows of a table as JSON objects, by key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlDimensionConfig {
    pub connection: String,
    pub table: String,
    /// The key column(s); a lookup key of several parts is the SDK's tuple
    /// key (`a|b`).
    pub key: Vec<String>,
    #[serde(default)]
    pub cache: CacheConfig,
}

fn default_id_column() -> String {
    "sluice_row_id".into()
}

fn default_batch_size() -> usize {
    5000
}

fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_max_retry_time() -> Duration {
    Duration::from_secs(600)
}
