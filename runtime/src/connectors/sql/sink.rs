use std::time::{Duration, Instant};

use async_trait::async_trait;
use indexmap::IndexMap;

use super::config::{SqlSinkConfig, SqlSinkMode};
use super::dialect::Dialect;
use super::pool::{Options, Pool, Session};
use super::retry::{Subject, keep_data_error, retry};
use super::schema::{self, TableInfo};
use super::target::{Cells, RowError, Target};
use super::types::ColumnType;
use super::write::{self, OnConflict, Statements};
use crate::connectors::registry::BuildContext;
use crate::connectors::{ConnectorError, RejectedRow, RowOp, Sink, SinkRow};

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
    /// Rows the table cannot hold, for the task's dead letters.
    rejected: Vec<RejectedRow>,
}

/// Rows waiting to be written, each with the row it came from (for the
/// dead letters, should the table refuse it).
enum Buffer {
    /// The last operation per primary key (cells, or `None` for a delete).
    /// PostgreSQL refuses to update one row twice in a statement, and the
    /// earlier operations would be overwritten anyway.
    Upsert(IndexMap<Cells, (Option<Cells>, SinkRow)>),
    Append(Vec<(Cells, SinkRow)>),
}

impl SqlSink {
    /// Connects, creates the table if asked to, and checks the spec against
    /// it, all before the first record.
    pub async fn connect(cx: BuildContext<'_>, name: &str, config: &SqlSinkConfig) -> Result<Self, ConnectorError> {
        let subject = Subject::new("sql sink", name, &config.table);
        config.check().map_err(|m| subject.config(m))?;
        let session = Session { statement_timeout: Some(config.statement_timeout), read_only: false };
        let (options, max_connections) = Options::of(cx, &config.connection, &format!("sql sink `{name}`"), session)
            .await
            .map_err(|m| subject.config(m))?;
        let max_time = config.max_retry_time;
        let acquire_timeout = max_time.clamp(Duration::from_millis(250), Duration::from_secs(5));
        let pool =
            retry(&subject, "connecting", max_time, || options.connect(max_connections, acquire_timeout)).await?;
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
            rejected: Vec::new(),
        })
    }

    /// Adds one row to the buffer, converted, so that a row whose value
    /// does not fit its column goes to the dead letters here, with its
    /// field named, and not later as part of a batch.
    fn buffer(&mut self, row: &SinkRow) -> Result<(), ConnectorError> {
        let converted = match (&mut self.buffer, row.op) {
            (Buffer::Upsert(rows), RowOp::Upsert) => self.target.cells(&row.value).and_then(|cells| {
                let key = self.target.key_of(&cells)?;
                rows.insert(key, (Some(cells), row.clone()));
                Ok(())
            }),
            (Buffer::Upsert(rows), RowOp::Delete) => self.target.key_cells(&row.value).map(|key| {
                rows.insert(key, (None, row.clone()));
            }),
            (Buffer::Append(rows), RowOp::Upsert) => self.target.cells(&row.value).map(|mut cells| {
                let id = self.target.id_column.expect("append targets have an id column");
                cells[id] = Some(row.id.render(&self.source_names));
                rows.push((cells, row.clone()));
            }),
            (Buffer::Append(_), RowOp::Delete) => {
                return Err(self.subject.config(format!(
                    "the job emitted a delete, but the sink is append-only (mode = \"append\") and table `{}` \
                     keeps every row; use mode = \"upsert\" with a primary_key to apply deletes",
                    self.target.table
                )));
            }
        };
        match converted {
            Ok(()) => {
                self.oldest.get_or_insert_with(Instant::now);
                Ok(())
            }
            Err(RowError::Data(reason)) => {
                self.rejected.push(RejectedRow { row: row.clone(), reason });
                Ok(())
            }
            Err(RowError::Schema(message)) => Err(self.subject.config(message)),
        }
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
    /// When the table refuses a value (a constraint, a value out of range),
    /// the rows are written one by one and those refused go to the dead
    /// letters.
    async fn write_out(&mut self) -> Result<(), ConnectorError> {
        let entries = self.entries();
        if entries.is_empty() {
            return Ok(());
        }
        let (deletes, rows): (Vec<&Cells>, Vec<&Cells>) = (
            entries.iter().filter(|(delete, _, _)| *delete).map(|(_, cells, _)| *cells).collect(),
            entries.iter().filter(|(delete, _, _)| !*delete).map(|(_, cells, _)| *cells).collect(),
        );
        let what = format!("writing {} rows and {} deletes", rows.len(), deletes.len());
        let started = Instant::now();
        let written = retry(&self.subject, &what, self.max_retry_time, || {
            keep_data_error(write::write(&self.pool, &self.statements, &deletes, &rows))
        })
        .await?;
        let mut rejected = Vec::new();
        if let Err(refused) = written {
            tracing::warn!(sink = %self.subject.name, error = %refused, "the table refused a row of the batch; writing its rows one by one");
            for (delete, cells, row) in &entries {
                let (deletes, rows) = if *delete { (vec![*cells], vec![]) } else { (vec![], vec![*cells]) };
                let one = retry(&self.subject, "writing a row", self.max_retry_time, || {
                    keep_data_error(write::write(&self.pool, &self.statements, &deletes, &rows))
                })
                .await?;
                if let Err(e) = one {
                    let reason = format!("table `{}` refused the row: {e}", self.target.table);
                    rejected.push(RejectedRow { row: (*row).clone(), reason });
                }
            }
        }
        let took = started.elapsed();
        tracing::debug!(sink = %self.subject.name, rows = rows.len(), deletes = deletes.len(), ?took, "wrote a batch");
        drop(entries);
        self.rejected.extend(rejected);
        match &mut self.buffer {
            Buffer::Upsert(map) => map.clear(),
            Buffer::Append(rows) => rows.clear(),
        }
        self.oldest = None;
        Ok(())
    }

    /// What the buffer holds: (is a delete, cells, the row it came from).
    fn entries(&self) -> Vec<(bool, &Cells, &SinkRow)> {
        match &self.buffer {
            Buffer::Upsert(map) => map
                .iter()
                .map(|(key, (cells, row))| match cells {
                    Some(cells) => (false, cells, row),
                    None => (true, key, row),
                })
                .collect(),
            Buffer::Append(rows) => rows.iter().map(|(cells, row)| (false, cells, row)).collect(),
        }
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

    fn take_rejected(&mut self) -> Vec<RejectedRow> {
        std::mem::take(&mut self.rejected)
    }
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
    if let Err(e) = retry(subject, "creating the table", max_time, || pool.execute(&sql)).await {
        // Another task of the job (a partition group on another worker)
        // created it at the same moment: PostgreSQL then fails this
        // `IF NOT EXISTS` on its catalog's unique index, once the other's
        // creation has committed. The table is there; anything else is not.
        return match retry(subject, "reading the table's columns", max_time, read).await? {
            Some(info) => Ok(info),
            None => Err(e),
        };
    }
    retry(subject, "reading the table's columns", max_time, read)
        .await?
        .ok_or_else(|| subject.config(format!("table `{}` is still missing after CREATE TABLE", config.table)))
}

fn create_table_sql(dialect: Dialect, config: &SqlSinkConfig) -> Result<String, String> {
    let key = config.key_columns();
    let mut columns: Vec<(String, String)> = config
        .columns
        .iter()
        .map(|(name, spec_type)| {
            let parsed = ColumnType::parse(dialect, spec_type).map_err(|e| format!("column `{name}`: {e}"))?;
            Ok((name.clone(), parsed.render(dialect, key.contains(name))))
        })
        .collect::<Result<_, String>>()?;
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
