//! `kind = "sql"` source: the rows of a query, read once, in key order.
//!
//! The query runs as a subquery with every column cast to text (so rows
//! read the same from every database) and `ORDER BY` the key columns. A
//! task of its own streams the rows into a bounded channel, which is the
//! back-pressure: the database is read as fast as the job consumes.
//!
//! Positions: partition 0, offset = the index of the row in key order. A
//! snapshot records the next index; a restore runs the query again and
//! skips that many rows. That resumes exactly when the rows before the
//! position did not change in between; when they did, rows shift by the
//! difference (a job that upserts by key, like the ones this source is for,
//! is unaffected by a row read twice). The same skip rides out a
//! connection lost mid-read.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::TryStreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::SqlSourceConfig;
use super::dialect::{Dialect, Family};
use super::dimension::join_key;
use super::pool::{Options, Pool, Session};
use super::retry::{Subject, is_transient, retry};
use super::value;
use crate::connectors::registry::BuildContext;
use crate::connectors::{ConnectorError, Source, SourceStatus};
use crate::job::batch::{NewRecord, RecordBatch};

/// Rows read ahead of the job.
const READ_AHEAD: usize = 1024;
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

type Cells = Vec<Option<String>>;

/// The rows of a query as records.
pub struct SqlSource {
    index: u32,
    shape: RowShape,
    rows: mpsc::Receiver<Result<Cells, ConnectorError>>,
    reader: JoinHandle<()>,
    next_offset: i64,
    finished: bool,
    value: String,
}

impl SqlSource {
    /// Connects, checks the query (it must run, and have the key and event
    /// time columns) and starts reading, after the snapshot's position when
    /// the task restores one.
    pub async fn connect(
        cx: BuildContext<'_>,
        name: &str,
        index: u32,
        c: &SqlSourceConfig,
    ) -> Result<Self, ConnectorError> {
        // Errors name "table `…`": here, the start of the query.
        let subject = Subject::new("sql source", name, &abbreviate(&c.query));
        if !c.bounded {
            return Err(subject.config(
                "only bounded SQL sources are built: set `bounded = true` (the query is read once and the source \
                 finishes)",
            ));
        }
        if !cx.group.is_whole() {
            return Err(subject.config(
                "a SQL source reads its rows as one partition and cannot be split into partition groups, so the \
                 job's parallelism must be 1",
            ));
        }
        c.check().map_err(|m| subject.config(m))?;
        let query = c.query.trim().trim_end_matches(';').trim_end();
        // Read-only sessions: the query can read, never write.
        let session = Session { statement_timeout: None, read_only: true };
        let (options, max_connections) = Options::of(cx, &c.connection, &format!("sql source `{name}`"), session)
            .await
            .map_err(|m| subject.config(m))?;
        let connect = || options.connect(max_connections, Duration::from_secs(5));
        let pool = retry(&subject, "connecting", c.max_retry_time, connect).await?;
        let dialect = pool.dialect();
        // PostgreSQL and MySQL refuse a second statement in a prepared
        // one; SQLite (through sqlx) would run every statement it is given.
        if dialect == Dialect::Sqlite {
            one_sqlite_statement(query).map_err(|m| subject.config(m))?;
        }

        let described = format!("SELECT * FROM ({query}) AS sluice_source");
        let reported = retry(&subject, "preparing the query", c.max_retry_time, || pool.columns_of(&described)).await?;
        let columns: Vec<(String, Family)> =
            reported.into_iter().map(|(name, sql_type)| (name, dialect.family(&sql_type))).collect();
        let position = |wanted: &str, role: &str| {
            columns.iter().position(|(n, _)| n == wanted).ok_or_else(|| {
                let have: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
                subject
                    .config(format!("the query has no {role} column `{wanted}`; its columns are {}", have.join(", ")))
            })
        };
        let key = c.key.iter().map(|k| position(k, "key")).collect::<Result<Vec<_>, _>>()?;
        let event_time = c.event_time_column.as_deref().map(|e| position(e, "event time")).transpose()?;

        let select = select(dialect, query, &columns, &c.key);
        let skip = cx.resume_positions(name).and_then(|p| p.iter().find(|(part, _)| *part == 0).map(|(_, o)| *o));
        let skip = skip.unwrap_or(0).max(0) as u64;
        let (tx, rows) = mpsc::channel(READ_AHEAD);
        let reader = Reader { name: name.to_owned(), pool, select, max_retry_time: c.max_retry_time, tx };
        let reader = tokio::spawn(reader.run(skip));
        Ok(SqlSource {
            index,
            shape: RowShape { columns, key, event_time },
            rows,
            reader,
            next_offset: skip as i64,
            finished: false,
            value: String::new(),
        })
    }

    fn push(&mut self, batch: &mut RecordBatch, cells: &[Option<String>]) {
        let (key, event_time) = self.shape.record(cells, &mut self.value);
        batch.push(NewRecord {
            key: Some(&key),
            value: self.value.as_bytes(),
            event_time,
            headers: &[],
            source: self.index,
            partition: 0,
            offset: self.next_offset,
        });
        self.next_offset += 1;
    }
}

/// What a row of the query becomes as a record: its columns (names and
/// families, in query order) and which of them are the key and the event
/// time. A pure conversion, so hostile cells can be tested without a
/// database (`fuzz_rows.rs`).
#[derive(Debug, Clone)]
pub(super) struct RowShape {
    pub(super) columns: Vec<(String, Family)>,
    pub(super) key: Vec<usize>,
    pub(super) event_time: Option<usize>,
}

impl RowShape {
    /// Writes the row's JSON object into `out` (cleared first) and returns
    /// the record's key and event time. A cell missing from `cells` (a row
    /// shorter than the columns described) reads as NULL rather than
    /// indexing out of bounds.
    pub(super) fn record(&self, cells: &[Option<String>], out: &mut String) -> (Vec<u8>, Option<i64>) {
        let cell = |i: usize| cells.get(i).and_then(|c| c.as_deref());
        out.clear();
        out.push('{');
        for (i, (column, family)) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            value::push_string(out, column);
            out.push(':');
            value::push_json(out, *family, cell(i));
        }
        out.push('}');
        let parts: Vec<&str> = self.key.iter().map(|&i| cell(i).unwrap_or("")).collect();
        let event_time = self.event_time.and_then(cell).and_then(value::cell_millis);
        (join_key(&parts), event_time)
    }
}

#[async_trait]
impl Source for SqlSource {
    /// Returns after `max_wait` with the rows read so far, or at once when
    /// the batch is full or the rows are all read.
    async fn poll(
        &mut self,
        batch: &mut RecordBatch,
        max: usize,
        max_wait: Duration,
    ) -> Result<SourceStatus, ConnectorError> {
        if self.finished {
            return Ok(SourceStatus::Finished);
        }
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut taken = 0;
        while taken < max {
            // Wait for the first row only; then take what is already there.
            let next = if taken == 0 {
                match tokio::time::timeout_at(deadline, self.rows.recv()).await {
                    Ok(next) => next,
                    Err(_) => return Ok(SourceStatus::Open),
                }
            } else {
                match self.rows.try_recv() {
                    Ok(next) => Some(next),
                    Err(mpsc::error::TryRecvError::Empty) => return Ok(SourceStatus::Open),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match next {
                Some(Ok(cells)) => {
                    self.push(batch, &cells);
                    taken += 1;
                }
                Some(Err(e)) => return Err(e),
                // The reader is done: every row was handed over.
                None => {
                    self.finished = true;
                    return Ok(SourceStatus::Finished);
                }
            }
        }
        Ok(SourceStatus::Open)
    }

    fn positions(&self) -> Option<Vec<(i32, i64)>> {
        Some(vec![(0, self.next_offset)])
    }
}

impl Drop for SqlSource {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The query on one line, cut after 60 characters, for messages.
fn abbreviate(query: &str) -> String {
    let line = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// Refuses a query holding more than one SQLite statement: a `;` outside
/// string literals, quoted names and comments (SQLite's tokens; it has no
/// backslash escapes).
fn one_sqlite_statement(query: &str) -> Result<(), String> {
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        let close = match c {
            '\'' | '"' | '`' => c,
            '[' => ']',
            '-' if chars.peek() == Some(&'-') => '\n',
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                continue;
            }
            ';' => {
                return Err("`query` holds more than one statement (a `;` outside quotes); give one SELECT".into());
            }
            _ => continue,
        };
        // A doubled quote inside quotes is the quote itself: read as two
        // adjacent quoted parts, which ends in the same place.
        for c in chars.by_ref() {
            if c == close {
                break;
            }
        }
    }
    Ok(())
}

/// `SELECT` of every column as text, from the query, in key order.
fn select(dialect: Dialect, query: &str, columns: &[(String, Family)], key: &[String]) -> String {
    let quoted = |name: &str| format!("sluice_source.{}", dialect.quote(name));
    let cells: Vec<String> = columns.iter().map(|(name, _)| dialect.as_text(&quoted(name))).collect();
    let order: Vec<String> = key.iter().map(|k| quoted(k)).collect();
    format!("SELECT {} FROM ({query}) AS sluice_source ORDER BY {}", cells.join(", "), order.join(", "))
}

/// Streams the query's rows into the channel; closing it (by returning)
/// tells the source that the rows are all read.
struct Reader {
    name: String,
    pool: Pool,
    select: String,
    max_retry_time: Duration,
    tx: mpsc::Sender<Result<Cells, ConnectorError>>,
}

impl Reader {
    /// Reads from row `skip` on. A transient failure runs the query again
    /// (with back-off, for up to `max_retry_time`) and skips the rows
    /// already sent.
    async fn run(self, skip: u64) {
        let mut next = skip;
        let mut delay = FIRST_DELAY;
        let mut failing_since: Option<Instant> = None;
        loop {
            let before = next;
            let error = match self.read(&mut next).await {
                Ok(()) => return,
                Err(ReadError::Closed) => return,
                Err(ReadError::Sql(e)) => e,
            };
            if next > before {
                // It got further this time: a new failure, not the same one.
                failing_since = None;
                delay = FIRST_DELAY;
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            if !is_transient(&error) || since.elapsed() >= self.max_retry_time {
                let retryable = is_transient(&error);
                let message = format!("reading row {next} of the query failed: {error}");
                let _ = self.tx.send(Err(ConnectorError::io("sql source", &self.name, message, retryable))).await;
                return;
            }
            tracing::warn!(
                connector = "sql source",
                name = %self.name,
                row = next,
                retry_in_ms = delay.as_millis() as u64,
                error = %error,
                "reading the query failed with an error that may pass; running it again from this row"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// One run of the query, sending rows from `*next` on and advancing it.
    async fn read(&self, next: &mut u64) -> Result<(), ReadError> {
        let mut rows = self.pool.stream_text(&self.select);
        let mut index = 0u64;
        while let Some(cells) = rows.try_next().await.map_err(ReadError::Sql)? {
            if index >= *next {
                self.tx.send(Ok(cells)).await.map_err(|_| ReadError::Closed)?;
                *next = index + 1;
            }
            index += 1;
        }
        Ok(())
    }
}

enum ReadError {
    /// The source is gone (the task ended): stop reading.
    Closed,
    Sql(sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_only_on_sqlite() {
        for good in [
            "SELECT id, ';' AS semi FROM t",
            "SELECT \"a;b\", `c;d`, [e;f] FROM t -- trailing; comment",
            "SELECT 'it''s; fine' /* ; */ FROM t",
            "WITH x AS (SELECT 1 AS id) SELECT id FROM x",
        ] {
            one_sqlite_statement(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "SELECT 1 AS id) AS s; ATTACH DATABASE 'sluice.db' AS m; SELECT * FROM (SELECT 1 AS id",
            "SELECT 1; SELECT 2",
            "SELECT 'a''' ; VACUUM INTO '/tmp/x'",
            "SELECT /* */ 1; --",
        ] {
            let err = one_sqlite_statement(bad).unwrap_err();
            assert!(err.contains("more than one statement"), "{bad}: {err}");
        }
    }
}
