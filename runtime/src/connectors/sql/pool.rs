//! A connection pool to one of the three databases. `sqlx::Any` cannot bind
//! PostgreSQL arrays (which the fast upsert needs), so this is an enum of
//! the typed pools.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::dialect::Dialect;
use crate::connections::{DatabaseConnection, read_secret};
use crate::connectors::registry::BuildContext;

#[derive(Clone)]
pub(super) enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// Evaluates `$body` with `$p` bound to the typed pool, whichever it is.
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Postgres($p) => $body,
            Pool::MySql($p) => $body,
            Pool::Sqlite($p) => $body,
        }
    };
}

/// What every connection of a pool is set up with before it is used.
#[derive(Debug, Clone, Copy)]
pub(super) struct Session {
    /// Longest a statement may run (PostgreSQL `statement_timeout`; MySQL
    /// `max_execution_time` (SELECTs only) / MariaDB `max_statement_time`,
    /// and `innodb_lock_wait_timeout` and `lock_wait_timeout`; SQLite
    /// `busy_timeout`, how long it waits for a lock). `None`: the
    /// database's own setting.
    pub statement_timeout: Option<Duration>,
    /// Reads only: every transaction is read-only (PostgreSQL, MySQL) or
    /// the file is opened read-only (SQLite). The SQL source's.
    pub read_only: bool,
}

/// Connection options for `db`, ready to connect.
pub(super) struct Options {
    driver: DriverOptions,
    session: Session,
}

enum DriverOptions {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl Options {
    /// The options of registry connection `connection` for `wanted` (e.g.
    /// "sql sink `out`"), checked against the registry's policy (where it
    /// may point, a SQLite file inside the project's folder), and its pool
    /// size.
    pub(super) async fn of(
        cx: BuildContext<'_>,
        connection: &str,
        wanted: &str,
        session: Session,
    ) -> Result<(Options, u32), String> {
        let db = cx.connections.database(connection, wanted).map_err(|e| e.to_string())?;
        let url =
            cx.connections.policy.database_url(&db.url).await.map_err(|e| format!("connection `{connection}`: {e}"))?;
        let options = Options::new(db, &url, connection, session)?;
        Ok((options, db.max_connections))
    }

    /// Parses `url` (the scheme picks the driver) and applies the
    /// registry's password. `connection` names the connection in errors.
    fn new(db: &DatabaseConnection, url: &str, connection: &str, session: Session) -> Result<Self, String> {
        let dialect = Dialect::of_url(url).ok_or_else(|| {
            format!(
                "connection `{connection}` has the URL scheme of neither PostgreSQL (postgres://), \
                 MySQL/MariaDB (mysql://, mariadb://) nor SQLite (sqlite:)"
            )
        })?;
        let password = read_secret(&db.password, connection).map_err(|e| e.to_string())?;
        let bad_url = |e: sqlx::Error| format!("connection `{connection}` has an invalid URL: {e}");
        let driver = match dialect {
            Dialect::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(bad_url)?;
                // Always a password, the secret's, the URL's or none: sqlx
                // would otherwise fill in PGPASSWORD or ~/.pgpass of this
                // process, which are not the project's.
                let in_url = url::Url::parse(url).is_ok_and(|u| u.password().is_some());
                let mut options = match (&password, in_url) {
                    (Some(p), _) => options.password(p),
                    (None, true) => options,
                    (None, false) => options.password(""),
                };
                if let Some(timeout) = session.statement_timeout {
                    options = options.options([("statement_timeout", format!("{}ms", timeout.as_millis()))]);
                }
                if session.read_only {
                    options = options.options([("default_transaction_read_only", "on")]);
                }
                DriverOptions::Postgres(options)
            }
            Dialect::MySql => {
                // sqlx knows MariaDB as mysql://.
                let url = url.strip_prefix("mariadb://").map_or(url.to_owned(), |rest| format!("mysql://{rest}"));
                let options = MySqlConnectOptions::from_str(&url).map_err(bad_url)?;
                DriverOptions::MySql(match &password {
                    Some(p) => options.password(p),
                    None => options,
                })
            }
            Dialect::Sqlite => {
                let mut options = SqliteConnectOptions::from_str(url).map_err(bad_url)?;
                options = match session.read_only {
                    true => options.read_only(true),
                    false => options.create_if_missing(true),
                };
                if let Some(timeout) = session.statement_timeout {
                    options = options.busy_timeout(timeout);
                }
                DriverOptions::Sqlite(options)
            }
        };
        Ok(Options { driver, session })
    }

    /// Opens a pool and one connection, so a wrong address or password
    /// shows at once. `acquire_timeout` bounds how long one attempt waits
    /// for a connection (sqlx retries refused connections until then).
    pub(super) async fn connect(&self, max_connections: u32, acquire_timeout: Duration) -> Result<Pool, sqlx::Error> {
        let max = max_connections.max(1);
        Ok(match &self.driver {
            DriverOptions::Postgres(o) => Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(o.clone())
                    .await?,
            ),
            DriverOptions::MySql(o) => {
                let session = self.session;
                Pool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire_timeout)
                        .after_connect(move |conn, _| Box::pin(mysql_session(conn, session)))
                        .connect_with(o.clone())
                        .await?,
                )
            }
            DriverOptions::Sqlite(o) => Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(o.clone())
                    .await?,
            ),
        })
    }
}

/// Sets a MySQL or MariaDB session up: statement and lock-wait timeouts,
/// read-only transactions. The statements are fixed text and numbers.
async fn mysql_session(conn: &mut sqlx::MySqlConnection, session: Session) -> Result<(), sqlx::Error> {
    if let Some(timeout) = session.statement_timeout {
        let version: (String,) = sqlx::query_as("SELECT VERSION()").fetch_one(&mut *conn).await?;
        let statement = if version.0.contains("MariaDB") {
            format!("SET SESSION max_statement_time = {:.3}", timeout.as_secs_f64())
        } else {
            format!("SET SESSION max_execution_time = {}", timeout.as_millis())
        };
        sqlx::query(&statement).execute(&mut *conn).await?;
        // Row locks and metadata (table) locks, in whole seconds.
        let lock_wait = timeout.as_secs().clamp(1, 1_073_741_824);
        sqlx::query(&format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}")).execute(&mut *conn).await?;
        sqlx::query(&format!("SET SESSION lock_wait_timeout = {lock_wait}")).execute(&mut *conn).await?;
    }
    if session.read_only {
        sqlx::query("SET SESSION TRANSACTION READ ONLY").execute(&mut *conn).await?;
    }
    Ok(())
}

impl Pool {
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::MySql(_) => Dialect::MySql,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs one statement without parameters (DDL), as a prepared
    /// statement: PostgreSQL and MySQL refuse several statements in one.
    pub(super) async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, p => sqlx::query(sql).execute(p).await.map(drop))
    }

    /// The columns a query returns: name and type name as the driver
    /// reports it (`INT8`, `BIGINT`, `TEXT`, ...). The query is prepared,
    /// not run.
    pub(super) async fn columns_of(&self, sql: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
        use sqlx::{Column, Executor, Statement, TypeInfo};
        with_pool!(self, p => {
            let statement = p.prepare(sql).await?;
            Ok(statement.columns().iter().map(|c| (c.name().to_owned(), c.type_info().name().to_owned())).collect())
        })
    }

    /// Runs a query whose columns are all text (or NULL) and streams its
    /// rows as the database sends them (one connection for the whole read).
    pub(super) fn stream_text<'a>(
        &'a self,
        sql: &'a str,
    ) -> futures::stream::BoxStream<'a, Result<Vec<Option<String>>, sqlx::Error>> {
        use futures::StreamExt;
        use sqlx::Row;
        with_pool!(self, p => sqlx::query(sql)
            .fetch(p)
            .map(|row| row.and_then(|row| (0..row.len()).map(|i| row.try_get::<Option<String>, _>(i)).collect()))
            .boxed())
    }

    /// Runs a query whose columns are all text (or NULL), with text
    /// parameters, and returns its rows.
    pub(super) async fn fetch_text(
        &self,
        sql: &str,
        params: &[Option<&str>],
    ) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
        use sqlx::Row;
        with_pool!(self, p => {
            let mut query = sqlx::query(sql);
            for param in params {
                query = query.bind(*param);
            }
            query
                .fetch_all(p)
                .await?
                .iter()
                .map(|row| (0..row.len()).map(|i| row.try_get::<Option<String>, _>(i)).collect())
                .collect()
        })
    }
}
