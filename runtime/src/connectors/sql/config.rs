use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::types::{self, ColumnType};
use crate::connectors::cache::CacheConfig;
use crate::connectors::staged::WriteMode;

/// `kind = "sql"` sink: rows (JSON objects) into a table, column by field
/// name. Every field needs a column (a field without one is an error, not
/// dropped); a column the row lacks is written as NULL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSinkConfig {
    /// A `database` connection of the registry.
    pub connection: String,
    /// The table, optionally `schema.table`.
    pub table: String,
    /// `upsert` (by primary key, deletes applied) or `append` (each row
    /// once, keyed by its id).
    #[serde(default)]
    pub mode: SqlSinkMode,
    /// Upsert mode: the primary-key columns (the table's conflict target).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Columns and their types: the portable `text`, `bigint`, `double`,
    /// `decimal`, `boolean`, `timestamp`, `json`, or an allowed SQL type name
    /// with optional sizes (`varchar(64)`, `numeric(18,2)`, `date`, ...; see
    /// docs/SPEC.md; anything else is refused). Checked against the
    /// table before the first record: each must exist with a type of the
    /// same family. These are the columns written; when empty, all the
    /// table's columns are.
    #[serde(default)]
    pub columns: IndexMap<String, String>,
    /// Creates the table from `columns` when it does not exist, with
    /// `primary_key` (upsert) or `id_column` (append, added as a text
    /// column) as its primary key.
    #[serde(default)]
    pub create_table: bool,
    /// Append mode: the unique text column that holds each row's
    /// deterministic id (source/partition/offset/emit index); a row whose
    /// id is already there is not inserted again, so replays add nothing.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// Rows buffered before they are written out in one transaction
    /// (upsert mode counts distinct primary keys: repeated keys are
    /// compacted to their last operation).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest time a row waits in the buffer, e.g. "1s" (checked on every
    /// write and every tick of the task loop).
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long transient failures (database down, deadlock, pool
    /// timeout) are retried, with the batch held and the task waiting,
    /// before the task fails. Also bounds waiting for the database at start.
    #[serde(default = "default_max_retry_time", with = "humantime_serde")]
    pub max_retry_time: Duration,
    /// Longest one statement (a batch's insert, a delete, creating the
    /// table) may run, lock waits included, before the database cancels
    /// it and the write fails; at most 10 minutes.
    #[serde(default = "default_statement_timeout", with = "humantime_serde")]
    pub statement_timeout: Duration,
}

impl SqlSinkConfig {
    /// What the spec alone can tell: names, column types, the mode's
    /// settings. Checked when the spec is read, before any connection.
    pub fn check(&self) -> Result<(), String> {
        types::check_table(&self.table)?;
        for (name, spec_type) in &self.columns {
            types::check_name("column", name)?;
            ColumnType::check_any(spec_type).map_err(|e| format!("column `{name}`: {e}"))?;
        }
        for key in &self.primary_key {
            types::check_name("primary_key column", key)?;
        }
        types::check_name("id_column", &self.id_column)?;
        let table = &self.table;
        match self.mode {
            SqlSinkMode::Upsert if self.primary_key.is_empty() => {
                return Err(format!(
                    "upsert mode needs primary_key, the columns of table `{table}` rows are upserted and deleted \
                     by; set primary_key = [\"...\"] or use mode = \"append\""
                ));
            }
            SqlSinkMode::Append if !self.primary_key.is_empty() => {
                return Err(format!(
                    "append mode does not use primary_key (rows of table `{table}` are keyed by their id in \
                     id_column `{}`); remove primary_key or use mode = \"upsert\"",
                    self.id_column
                ));
            }
            _ => {}
        }
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        if self.create_table && self.columns.is_empty() {
            return Err(format!(
                "create_table needs columns to create table `{table}` from; declare them under columns"
            ));
        }
        check_statement_timeout(self.statement_timeout)
    }

    /// The conflict target: `primary_key` in upsert mode, `id_column` in
    /// append mode.
    pub(super) fn key_columns(&self) -> Vec<String> {
        match self.mode {
            SqlSinkMode::Upsert => self.primary_key.clone(),
            SqlSinkMode::Append => vec![self.id_column.clone()],
        }
    }
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
    /// A `database` connection of the registry.
    pub connection: String,
    /// The table, optionally `schema.table`; rows are returned with all its
    /// columns, and upserts need a primary key or unique index on `key`.
    pub table: String,
    /// The key column(s); a lookup key of several parts is the SDK's tuple
    /// key (`a|b`).
    pub key: Vec<String>,
    /// The read cache in front of the table.
    #[serde(default)]
    pub cache: CacheConfig,
    /// When the job's upserts reach the table: `immediate`, or `snapshot`
    /// (with each snapshot, for effectively-once results across restores).
    #[serde(default)]
    pub writes: WriteMode,
    /// Longest one lookup or upsert may run, lock waits included; at most
    /// 10 minutes.
    #[serde(default = "default_statement_timeout", with = "humantime_serde")]
    pub statement_timeout: Duration,
}

impl SqlDimensionConfig {
    /// Names and settings, checked when the spec is read.
    pub fn check(&self) -> Result<(), String> {
        types::check_table(&self.table)?;
        if self.key.is_empty() {
            return Err("key must name at least one column".into());
        }
        for key in &self.key {
            types::check_name("key column", key)?;
        }
        check_statement_timeout(self.statement_timeout)
    }
}

/// `kind = "sql"` source: the rows of a query, read once. Each row is a
/// record whose value is a JSON object with a field per column (the same
/// JSON a SQL dimension gives); rows are read in key order, and a row's
/// offset is its index in that order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSourceConfig {
    /// A `database` connection of the registry.
    pub connection: String,
    /// One SELECT (or `WITH … SELECT`), without a trailing ORDER BY, which
    /// the source adds. It runs as a subquery, so its columns need distinct
    /// names, on a read-only session: it can read, never write.
    pub query: String,
    /// The column(s) that identify a row: the record key (several columns:
    /// the SDK's tuple key `a|b`) and the order rows are read in, which
    /// makes positions (and so snapshots) meaningful.
    pub key: Vec<String>,
    /// A column to use as event time: an integer (ms since the epoch) or a
    /// timestamp. Without it, records have no event time.
    #[serde(default)]
    pub event_time_column: Option<String>,
    /// Must be `true`: the query runs once and the source finishes after
    /// its last row (a batch-style, e.g. scheduled, run). Polling a table
    /// for new rows is not built.
    #[serde(default)]
    pub bounded: bool,
    /// How long transient failures (database down, connection lost) are
    /// retried before the task fails; the query then runs again and skips
    /// the rows already read. Also bounds waiting for the database at start.
    #[serde(default = "default_max_retry_time", with = "humantime_serde")]
    pub max_retry_time: Duration,
}

impl SqlSourceConfig {
    /// Names and the query's shape, checked when the spec is read; that the
    /// query is one read-only statement is enforced by the database.
    pub fn check(&self) -> Result<(), String> {
        if self.key.is_empty() {
            return Err("`key` must name at least one column: rows are read in key order".into());
        }
        for key in &self.key {
            types::check_name("key column", key)?;
        }
        if let Some(column) = &self.event_time_column {
            types::check_name("event_time_column", column)?;
        }
        let first_word: String =
            self.query.trim_start().chars().take_while(char::is_ascii_alphabetic).collect::<String>().to_lowercase();
        if !matches!(first_word.as_str(), "select" | "with") {
            return Err(
                "`query` must be one SELECT statement (`SELECT …` or `WITH … SELECT …`); the source only reads".into(),
            );
        }
        Ok(())
    }
}

/// The longest `statement_timeout` a spec may set (a platform limit).
pub const MAX_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

fn check_statement_timeout(timeout: Duration) -> Result<(), String> {
    if timeout.is_zero() || timeout > MAX_STATEMENT_TIMEOUT {
        return Err(format!(
            "statement_timeout must be between 1ms and {}s (the platform's limit), e.g. \"30s\"",
            MAX_STATEMENT_TIMEOUT.as_secs()
        ));
    }
    Ok(())
}

fn default_statement_timeout() -> Duration {
    Duration::from_secs(30)
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
