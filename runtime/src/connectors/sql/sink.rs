use std::time::{Duration, Instant};

use async_trait::async_trait;
use indexmap::IndexMap;

use super::config::{SqlSinkConfig, SqlSinkMode};
use super::dialect::Dialect;
use super::pool::{Options, Pool};
use super::retry::{Subject, retry};
use super::schema::{self, TableInfo};
use super::target::{Cells, Target};
use super::write::{self, OnConflict, Statements};
use crate::connectors::registry::BuildContext;
use crate::connectors::{ConnectorError, RowOp, Sink, SinkRow};

/// Writes rows into a table, buffered and written out in batches, one
/// transaction each, retried whole while the database is unavailable.
pub struct SqlSink {
    subject: Subject,
    pool: Pool,
    target: Target,
    statements: Statements,
    source_names: Vec<String>,
    batch_size: usize,
    flush_interval: Duration,
    max_retry_time: Duration,
    buffer: Buffer,
    /// When the oldest row still buffered arrived.
    oldest: Option<Instant>,
}

/// Rows waiting to be written.
enum Buffer {
    /// The last operation per primary key (cells, or `None` for a delete).
    /// PostgreSQL refuses to update one row twice in a statement, and the
    /// earlier operations would be overwritten anyway.
    Upsert(IndexMap<Cells, Option<Cells>>),
    Append(Vec<Cells>),
}

impl SqlSink {
    /// Connects, creates the table if asked to, and checks the spec against
    /// it, all before the first record.
    pub async fn connect(cx: BuildContext<'_>, name: &str, config: &SqlSinkConfig) -> Result<Self, ConnectorError> {
        let subject = Subject::new("sql sink", name, &config.table);
        check_config(config).map_err(|m| subject.config(m))?;
        let db = cx
            .connections
            .database(&config.connection, &format!("sql sink `{name}`"))
            .map_err(|e| subject.config(e))?;
        let options = Options::new(db, &config.connection).map_err(|m| subject.config(m))?;
        let max_time = config.max_retry_time;
        let acquire_timeout = max_time.clamp(Duration::from_millis(250), Duration::from_secs(5));
        let pool =
            retry(&subject, "connecting", max_time, || options.connect(db.max_connections, acquire_timeout)).await?;
        let info = table_info(&subject, &pool, config).await?;
        let target = Target::for_sink(config, &info, pool.dialect()).map_err(|m| subject.config(m))?;
        let (on_conflict, buffer) = match config.mode {
            SqlSinkMode::Upsert => (OnConflict::Update, Buffer::Upsert(IndexMap::new())),
            SqlSinkMode::Append => (OnConflict::Ignore, Buffer::Append(Vec::new())),
        };
        Ok(SqlSink {
            statements: Statements::new(&target, on_conflict),
            subject,
            pool,
            target,
            source_names: cx.spec.source_names(),
            batch_size: config.batch_size,
            flush_interval: config.flush_interval,
            max_retry_time: max_time,
            buffer,
            oldest: None,
        })
    }

    /// Adds one row to the buffer, converted (so a bad row fails here, with
    /// its field named, and not later as part of a batch).
    fn buffer(&mut self, row: &SinkRow) -> Result<(), ConnectorError> {
        let config_error = |m: String| self.subject.config(m);
        match (&mut self.buffer, row.op) {
            (Buffer::Upsert(rows), RowOp::Upsert) => {
                let cells = self.target.cells(&row.value).map_err(config_error)?;
                let key = self.target.key_of(&cells).map_err(config_error)?;
                rows.insert(key, Some(cells));
            }
            (Buffer::Upsert(rows), RowOp::Delete) => {
                let key = self.target.key_cells(&row.value).map_err(config_error)?;
                rows.insert(key, None);
            }
            (Buffer::Append(rows), RowOp::Upsert) => {
                let mut cells = self.target.cells(&row.value).map_err(config_error)?;
                let id = self.target.id_column.expect("append targets have an id column");
                cells[id] = Some(row.id.render(&self.source_names));
                rows.push(cells);
            }
            (Buffer::Append(_), RowOp::Delete) => {
                return Err(self.subject.config(format!(
                    "the job emitted a delete, but the sink is append-only (mode = \"append\") and table `{}` \
                     keeps every row; use mode = \"upsert\" with a primary_key to apply deletes",
                    self.target.table
                )));
            }
        }
        self.oldest.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn buffered(&self) -> usize {
        match &self.buffer {
            Buffer::Upsert(rows) => rows.len(),
            Buffer::Append(rows) => rows.len(),
        }
    }

    fn due(&self) -> bool {
        self.oldest.is_some_and(|t| t.elapsed() >= self.flush_interval)
    }

    /// Writes the buffer in one transaction, retrying transient failures
    /// with the rows held; the buffer is emptied only once they are in.
    async fn write_out(&mut self) -> Result<(), ConnectorError> {
        let (deletes, rows): (Vec<&Cells>, Vec<&Cells>) = match &self.buffer {
            Buffer::Upsert(map) => {
                let deletes = map.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
                (deletes, map.values().flatten().collect())
            }
            Buffer::Append(rows) => (Vec::new(), rows.iter().collect()),
        };
        if deletes.is_empty() && rows.is_empty() {
            return Ok(());
        }
        let what = format!("writing {} rows and {} deletes", rows.len(), deletes.len());
        let started = Instant::now();
        retry(&self.subject, &what, self.max_retry_time, || {
            write::write(&self.pool, &self.statements, &deletes, &rows)
        })
        .await?;
        let took = started.elapsed();
        tracing::debug!(sink = %self.subject.name, rows = rows.len(), deletes = deletes.len(), ?took, "wrote a batch");
        match &mut self.buffer {
            Buffer::Upsert(map) => map.clear(),
            Buffer::Append(rows) => rows.clear(),
        }
        self.oldest = None;
        Ok(())
    }
}

#[async_trait]
impl Sink for SqlSink {
    async fn write(&mut self, rows: &[SinkRow]) -> Result<(), ConnectorError> {
        for row in rows {
            self.buffer(row)?;
            if self.buffered() >= self.batch_size {
                self.write_out().await?;
            }
        }
        if self.due() { self.write_out().await } else { Ok(()) }
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        self.write_out().await
    }

    async fn tick(&mut self) -> Result<(), ConnectorError> {
        if self.due() { self.write_out().await } else { Ok(()) }
    }
}

/// What the config must say for its mode, before any database work.
fn check_config(config: &SqlSinkConfig) -> Result<(), String> {
    let table = &config.table;
    match config.mode {
        SqlSinkMode::Upsert if config.primary_key.is_empty() => {
            return Err(format!(
                "upsert mode needs primary_key, the columns of table `{table}` rows are upserted and deleted by; \
                 set primary_key = [\"...\"] or use mode = \"append\""
            ));
        }
        SqlSinkMode::Append if !config.primary_key.is_empty() => {
            return Err(format!(
                "append mode does not use primary_key (rows of table `{table}` are keyed by their id in id_column \
                 `{}`); remove primary_key or use mode = \"upsert\"",
                config.id_column
            ));
        }
        _ => {}
    }
    if config.batch_size == 0 {
        return Err("batch_size must be at least 1".into());
    }
    if config.create_table && config.columns.is_empty() {
        return Err(format!("create_table needs columns to create table `{table}` from; declare them under columns"));
    }
    Ok(())
}

/// The table as it is, created first from `columns` if it is missing and
/// `create_table` is set.
async fn table_info(subject: &Subject, pool: &Pool, config: &SqlSinkConfig) -> Result<TableInfo, ConnectorError> {
    let max_time = config.max_retry_time;
    let read = || schema::introspect(pool, &config.table);
    if let Some(info) = retry(subject, "reading the table's columns", max_time, read).await? {
        return Ok(info);
    }
    if !config.create_table {
        return Err(subject.config(format!(
            "table `{}` does not exist; create it, or set create_table = true and declare its columns",
            config.table
        )));
    }
    let sql = create_table_sql(pool.dialect(), config).map_err(|m| subject.config(m))?;
    tracing::info!(sink = %subject.name, table = %config.table, %sql, "creating the sink's table");
    retry(subject, "creating the table", max_time, || pool.execute(&sql)).await?;
    retry(subject, "reading the table's columns", max_time, read)
        .await?
        .ok_or_else(|| subject.config(format!("table `{}` is still missing after CREATE TABLE", config.table)))
}

fn create_table_sql(dialect: Dialect, config: &SqlSinkConfig) -> Result<String, String> {
    let key = config.key_columns();
    let mut columns: Vec<(String, String)> = config
        .columns
        .iter()
        .map(|(name, spec_type)| (name.clone(), dialect.sql_type(spec_type, key.contains(name))))
        .collect();
    if config.mode == SqlSinkMode::Append && !config.columns.contains_key(&config.id_column) {
        columns.push((config.id_column.clone(), dialect.id_type().to_owned()));
    }
    if let Some(missing) = key.iter().find(|k| !columns.iter().any(|(name, _)| name == *k)) {
        return Err(format!(
            "primary_key column `{missing}` is not in columns, so table `{}` cannot be created with it; \
             declare its type under columns",
            config.table
        ));
    }
    Ok(schema::create_table_sql(dialect, &config.table, &columns, &key))
}
