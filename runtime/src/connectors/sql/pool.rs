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

/// Connection options for `db`, ready to connect.
pub(super) enum Options {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl Options {
    /// Parses the URL (the scheme picks the driver) and applies the
    /// registry's password. `connection` names the connection in errors.
    pub(super) fn new(db: &DatabaseConnection, connection: &str) -> Result<Self, String> {
        let dialect = Dialect::of_url(&db.url).ok_or_else(|| {
            format!(
                "connection `{connection}` has the URL scheme of neither PostgreSQL (postgres://), \
                 MySQL/MariaDB (mysql://, mariadb://) nor SQLite (sqlite:)"
            )
        })?;
        let password = read_secret(&db.password, connection).map_err(|e| e.to_string())?;
        let bad_url = |e: sqlx::Error| format!("connection `{connection}` has an invalid URL: {e}");
        Ok(match dialect {
            Dialect::Postgres => {
                let options = PgConnectOptions::from_str(&db.url).map_err(bad_url)?;
                Options::Postgres(match &password {
                    Some(p) => options.password(p),
                    None => options,
                })
            }
            Dialect::MySql => {
                // sqlx knows MariaDB as mysql://.
                let url = db.url.strip_prefix("mariadb://").map_or(db.url.clone(), |rest| format!("mysql://{rest}"));
                let options = MySqlConnectOptions::from_str(&url).map_err(bad_url)?;
                Options::MySql(match &password {
                    Some(p) => options.password(p),
                    None => options,
                })
            }
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(&db.url).map_err(bad_url)?;
                Options::Sqlite(options.create_if_missing(true))
            }
        })
    }

    /// Opens a pool and one connection, so a wrong address or password
    /// shows at once. `acquire_timeout` bounds how long one attempt waits
    /// for a connection (sqlx retries refused connections until then).
    pub(super) async fn connect(&self, max_connections: u32, acquire_timeout: Duration) -> Result<Pool, sqlx::Error> {
        let max = max_connections.max(1);
        Ok(match self {
            Options::Postgres(o) => Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(o.clone())
                    .await?,
            ),
            Options::MySql(o) => Pool::MySql(
                MySqlPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(o.clone())
                    .await?,
            ),
            Options::Sqlite(o) => Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(o.clone())
                    .await?,
            ),
        })
    }
}

impl Pool {
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::MySql(_) => Dialect::MySql,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs one statement without parameters (DDL).
    pub(super) async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, p => sqlx::raw_sql(sql).execute(p).await.map(drop))
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
