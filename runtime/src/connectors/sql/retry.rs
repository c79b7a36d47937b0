//! Riding out a database that is down, restarting or busy: transient errors
//! are retried with exponential back-off while the caller waits (which is
//! the back-pressure), and everything else fails at once.
//!
//! Retrying a write is safe even when the first attempt's commit landed
//! but its answer was lost: upserts and insert-or-ignore give the same
//! table when run twice.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::error::DatabaseError;

use crate::connectors::ConnectorError;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Who is failing, for error messages: the connector, its name in the
/// spec and its table.
pub(super) struct Subject {
    pub connector: &'static str,
    pub name: String,
    pub table: String,
}

impl Subject {
    pub(super) fn new(connector: &'static str, name: &str, table: &str) -> Self {
        Subject { connector, name: name.to_owned(), table: table.to_owned() }
    }

    pub(super) fn config(&self, message: impl ToString) -> ConnectorError {
        ConnectorError::config(self.connector, &self.name, message)
    }

    /// A database error that retrying will not fix (constraint, data, syntax).
    fn failed(&self, what: &str, e: &sqlx::Error) -> ConnectorError {
        ConnectorError::io(self.connector, &self.name, format!("table `{}`: {what} failed: {e}", self.table), false)
    }
}

/// Runs `attempt` until it succeeds, fails with a non-transient error, or
/// transient failures have lasted `max_time`. `what` says what is being
/// done ("writing 5000 rows").
pub(super) async fn retry<T, F, Fut>(
    subject: &Subject,
    what: &str,
    max_time: Duration,
    mut attempt: F,
) -> Result<T, ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let started = Instant::now();
    let mut delay = FIRST_DELAY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if is_transient(&e) => e,
            Err(e) => return Err(subject.failed(what, &e)),
        };
        let elapsed = started.elapsed();
        if elapsed >= max_time {
            let message = format!(
                "table `{}`: {what} failed for {:.1}s ({attempts} attempts), longer than max_retry_time ({}s); \
                 the database may be down or unreachable; last error: {error}",
                subject.table,
                elapsed.as_secs_f64(),
                max_time.as_secs_f64()
            );
            return Err(ConnectorError::io(subject.connector, &subject.name, message, true));
        }
        let wait = delay.min(max_time - elapsed);
        tracing::warn!(
            connector = subject.connector,
            name = %subject.name,
            table = %subject.table,
            attempt = attempts,
            retry_in_ms = wait.as_millis() as u64,
            error = %error,
            "{what} failed with an error that may pass; retrying"
        );
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// A write's outcome with a refused value (see [`is_data_error`]) moved
/// into `Ok(Err(..))`, so that [`retry`] neither retries it nor fails the
/// task: the caller sends the row to the dead letters.
pub(super) async fn keep_data_error(
    write: impl Future<Output = Result<(), sqlx::Error>>,
) -> Result<Result<(), sqlx::Error>, sqlx::Error> {
    match write.await {
        Err(e) if is_data_error(&e) => Ok(Err(e)),
        other => other.map(Ok),
    }
}

/// Whether the database refused a value rather than the statement: bad
/// text for the type, out of range, too long, NULL in NOT NULL, a check or
/// foreign key, or a unique key other than the conflict target.
pub(super) fn is_data_error(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else { return false };
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // incorrect value, data truncated, incorrect datetime (their
        // SQLSTATE is HY000), and the SQLSTATE classes below
        if matches!(e.number(), 1366 | 1265 | 1292 | 1411 | 3140 | 4025) {
            return true;
        }
    }
    let code = db.code().unwrap_or_default();
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH
        return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 18..=20));
    }
    // SQLSTATE 22 (data exception) and 23 (integrity constraint violation).
    code.starts_with("22") || code.starts_with("23")
}

/// Whether `e` may pass by itself: the connection (refused, reset, closed),
/// the pool timing out, or the database asking to try again.
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => transient_database_error(db.as_ref()),
        _ => false,
    }
}

fn transient_database_error(db: &dyn DatabaseError) -> bool {
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // lock wait timeout, deadlock, too many connections, shutdown in
        // progress, connection killed, server gone away, lost connection
        return matches!(e.number(), 1205 | 1213 | 1040 | 1053 | 1927 | 2006 | 2013);
    }
    let code = db.code().unwrap_or_default();
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes
        return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
    }
    // PostgreSQL: connection exceptions (08), serialization failure,
    // deadlock, too many connections, lock not available, admin/crash
    // shutdown, cannot connect now.
    code.starts_with("08") || matches!(&*code, "40001" | "40P01" | "53300" | "55P03" | "57P01" | "57P02" | "57P03")
}
