use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::SqlDimensionConfig;
use super::dialect::Dialect;
use super::pool::{Options, Pool, Session};
use super::retry::{Subject, retry};
use super::schema;
use super::target::{Cells, Target};
use super::value;
use super::write::{self, OnConflict, Statements};
use crate::connectors::registry::BuildContext;
use crate::connectors::{ConnectorError, DimensionStore};

/// How long a lookup or upsert rides out a database that is unavailable:
/// a job waiting on a lookup is stalled, so not long.
const RETRY_TIME: Duration = Duration::from_secs(10);
/// The fences of fenced commits ([`DimensionStore::commit_fenced`]): one
/// row per fence (a job's or a task's, for one dimension) with the newest
/// lease epoch that committed, in the schema of the dimension's table.
/// Created when first needed, so a job without a lease needs no right to
/// create it.
const FENCE_TABLE: &str = "sluice_dimension_fences";
/// How long PostgreSQL and MySQL keep a fenced commit's transaction when
/// its worker stops talking mid-commit (frozen): the transaction holds the
/// fence row, which the job's new owner must raise before it restores.
const FROZEN_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows of a table as JSON objects, by their key column(s). Uncached: the
/// registry puts a cache in front.
pub struct SqlDimension {
    subject: Subject,
    pool: Pool,
    /// Every column of the table, keyed by the dimension's key columns.
    target: Target,
    /// The upsert by key, when the key is unique in the table.
    upsert: Option<Statements>,
    select_by_key: String,
    select_all: String,
    fences: FenceStatements,
    /// Set once the fence table is known to exist.
    fence_table: OnceCell<()>,
}

impl SqlDimension {
    /// Connects and checks that the table exists and has the key columns.
    pub async fn connect(cx: BuildContext<'_>, name: &str, c: &SqlDimensionConfig) -> Result<Self, ConnectorError> {
        let subject = Subject::new("sql dimension", name, &c.table);
        c.check().map_err(|m| subject.config(m))?;
        let session = Session { statement_timeout: Some(c.statement_timeout), read_only: false };
        let (options, max_connections) = Options::of(cx, &c.connection, &format!("sql dimension `{name}`"), session)
            .await
            .map_err(|m| subject.config(m))?;
        let connect = || options.connect(max_connections, Duration::from_secs(5));
        let pool = retry(&subject, "connecting", RETRY_TIME, connect).await?;
        let info = retry(&subject, "reading the table's columns", RETRY_TIME, || schema::introspect(&pool, &c.table))
            .await?
            .ok_or_else(|| subject.config(format!("table `{}` does not exist", c.table)))?;
        let dialect = pool.dialect();
        let target = Target::for_dimension(dialect, &c.table, &info, &c.key).map_err(|m| subject.config(m))?;
        let upsert = info.has_unique_key(&c.key).then(|| Statements::new(&target, OnConflict::Update));
        let (select_by_key, select_all) = selects(dialect, &target);
        let fences = FenceStatements::new(&target);
        Ok(SqlDimension {
            subject,
            pool,
            target,
            upsert,
            select_by_key,
            select_all,
            fences,
            fence_table: OnceCell::new(),
        })
    }

    /// The upserts' error when the table has no unique key on the key columns.
    fn no_unique_key(&self) -> ConnectorError {
        self.subject.config(format!(
            "table `{}` has no primary key or unique index on the dimension's key columns, so rows cannot be \
             upserted by key; add one",
            self.target.table
        ))
    }

    /// The cells of `row` written under `key`: fields the row lacks are
    /// NULL, the key columns are set from `key`, so a lookup of `key` finds it.
    fn row_cells(&self, key: &[u8], row: &[u8]) -> Result<Cells, ConnectorError> {
        let mut cells: Cells = self.target.cells(row).map_err(|e| self.subject.config(e.message()))?;
        for (part, &i) in self.key_cells(key)?.into_iter().zip(&self.target.key) {
            cells[i] = Some(part);
        }
        Ok(cells)
    }

    /// The key's parts as the key columns' text.
    fn key_cells(&self, key: &[u8]) -> Result<Vec<String>, ConnectorError> {
        let parts = split_key(key, self.target.key.len()).map_err(|m| self.subject.config(m))?;
        parts
            .iter()
            .zip(&self.target.key)
            .map(|(part, &i)| self.target.string_cell(i, part).map_err(|m| self.subject.config(m)))
            .collect()
    }

    /// A row's cells as a JSON object.
    fn row_json(&self, cells: &[Option<String>]) -> Vec<u8> {
        let mut out = String::from("{");
        for (i, (column, cell)) in self.target.columns.iter().zip(cells).enumerate() {
            if i > 0 {
                out.push(',');
            }
            value::push_string(&mut out, &column.name);
            out.push(':');
            value::push_json(&mut out, column.family, cell.as_deref());
        }
        out.push('}');
        out.into_bytes()
    }
}

#[async_trait]
impl DimensionStore for SqlDimension {
    async fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError> {
        let cells = self.key_cells(key)?;
        let params: Vec<Option<&str>> = cells.iter().map(|c| Some(c.as_str())).collect();
        let fetch = || self.pool.fetch_text(&self.select_by_key, &params);
        let rows = retry(&self.subject, "looking up a key", RETRY_TIME, fetch).await?;
        Ok(rows.first().map(|cells| self.row_json(cells)))
    }

    /// Replaces the row of `key` (fields the row lacks become NULL), the
    /// key columns set from `key` so that a lookup of `key` finds it.
    async fn upsert(&self, key: &[u8], row: &[u8]) -> Result<(), ConnectorError> {
        let Some(statements) = &self.upsert else { return Err(self.no_unique_key()) };
        let cells = self.row_cells(key, row)?;
        let rows = [&cells];
        let write = || write::write(&self.pool, statements, &[], &rows);
        retry(&self.subject, "upserting a row", RETRY_TIME, write).await
    }

    /// One transaction: raise each fence row to its epoch (inserting it if
    /// missing; never lowering it), which locks it until the commit, read
    /// it back, give up if it stands higher, else upsert every row. A newer
    /// owner's raise thus either waits for this commit (and overwrites it
    /// on restore) or comes first (and this is refused, writing nothing
    /// and raising no fence: the transaction rolls back).
    async fn commit_fenced(
        &self,
        fences: &[(String, u64)],
        writes: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), ConnectorError> {
        if !writes.is_empty() && self.upsert.is_none() {
            return Err(self.no_unique_key());
        }
        let rows = writes.iter().map(|(key, row)| self.row_cells(key, row)).collect::<Result<Vec<_>, _>>()?;
        self.fence_table
            .get_or_try_init(|| async {
                let what = format!("creating the fence table {FENCE_TABLE}");
                let create = || self.pool.execute(&self.fences.create);
                // Two tasks creating it at once: PostgreSQL can fail the
                // second `IF NOT EXISTS` on its catalog's unique index. The
                // table is there then, and a second try sees it.
                match retry(&self.subject, &what, RETRY_TIME, create).await {
                    Ok(()) => Ok(()),
                    Err(_) => retry(&self.subject, &what, RETRY_TIME, create).await,
                }
            })
            .await?;
        // Raised in the order of their names: the sibling tasks of a run
        // share the job's fence, and transactions that lock the same rows
        // in the same order do not deadlock (one that still does, on
        // MySQL's gap locks, is retried whole). The siblings' commits do
        // wait for each other on that row (each raise locks it, even one
        // that leaves it where it stands): acceptable, as a task commits
        // once per snapshot.
        let mut ordered: Vec<&(String, u64)> = fences.iter().collect();
        ordered.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let params: Vec<(&str, i64)> =
            ordered.iter().map(|(name, epoch)| (name.as_str(), i64::try_from(*epoch).unwrap_or(i64::MAX))).collect();
        let names: Vec<&str> = params.iter().map(|&(name, _)| name).collect();
        let what = format!("committing {} row(s) under fences `{}`", rows.len(), names.join("`, `"));
        let commit = || self.fences.commit(&self.pool, &params, &rows);
        match retry(&self.subject, &what, RETRY_TIME, commit).await? {
            Some((refused, fenced_at)) => {
                let (fence, epoch) = ordered[refused];
                Err(ConnectorError::Fenced {
                    connector: self.subject.connector,
                    name: self.subject.name.clone(),
                    fence: fence.clone(),
                    epoch: *epoch,
                    fenced_at: fenced_at as u64,
                })
            }
            None => Ok(()),
        }
    }

    async fn rows(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ConnectorError> {
        let fetch = || self.pool.fetch_text(&self.select_all, &[]);
        let rows = retry(&self.subject, "reading all rows", RETRY_TIME, fetch).await?;
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = rows
            .iter()
            .map(|cells| {
                let parts: Vec<&str> = self.target.key.iter().map(|&i| cells[i].as_deref().unwrap_or("")).collect();
                (join_key(&parts), self.row_json(cells))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

/// The statements of fenced commits, built once from checked names: the
/// table's and columns' quoted, the fence and epoch bound as parameters.
struct FenceStatements {
    /// `CREATE TABLE IF NOT EXISTS` of [`FENCE_TABLE`].
    create: String,
    /// MySQL, on the connection before the transaction: the server drops
    /// it (rolling back) once idle for [`FROZEN_COMMIT_TIMEOUT`].
    before: Option<String>,
    /// MySQL, after the transaction: the server's idle timeout again.
    after: Option<String>,
    /// PostgreSQL, first in the transaction: the same for an idle transaction.
    first: Option<String>,
    /// Inserts the fence at the epoch or raises it to the epoch.
    raise: String,
    /// The fence's epoch.
    read: String,
    /// Upserts one row of the dimension's table: every column, as text.
    upsert: String,
}

impl FenceStatements {
    fn new(target: &Target) -> Self {
        let d = target.dialect;
        // Beside the dimension's table: `schema.table` puts it in `schema`.
        let table = match target.table.split_once('.') {
            Some((schema, _)) => d.quote_table(&format!("{schema}.{FENCE_TABLE}")),
            None => d.quote(FENCE_TABLE),
        };
        let (fence, epoch) = (d.quote("fence"), d.quote("epoch"));
        let idle_ms = FROZEN_COMMIT_TIMEOUT.as_millis();
        let raise = match d {
            Dialect::Postgres => format!(
                "INSERT INTO {table} AS f ({fence}, {epoch}) VALUES ($1, $2) \
                 ON CONFLICT ({fence}) DO UPDATE SET {epoch} = GREATEST(f.{epoch}, EXCLUDED.{epoch})"
            ),
            Dialect::MySql => format!(
                "INSERT INTO {table} ({fence}, {epoch}) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE {epoch} = GREATEST({epoch}, VALUES({epoch}))"
            ),
            Dialect::Sqlite => format!(
                "INSERT INTO {table} ({fence}, {epoch}) VALUES (?, ?) \
                 ON CONFLICT ({fence}) DO UPDATE SET {epoch} = MAX({epoch}, excluded.{epoch})"
            ),
        };
        let param = if d == Dialect::Postgres { "$1" } else { "?" };
        FenceStatements {
            create: format!(
                "CREATE TABLE IF NOT EXISTS {table} ({fence} {} PRIMARY KEY, {epoch} BIGINT NOT NULL)",
                d.id_type()
            ),
            before: (d == Dialect::MySql).then(|| format!("SET SESSION wait_timeout = {}", idle_ms.div_ceil(1000))),
            after: (d == Dialect::MySql).then(|| "SET SESSION wait_timeout = @@GLOBAL.wait_timeout".to_owned()),
            first: (d == Dialect::Postgres)
                .then(|| format!("SET LOCAL idle_in_transaction_session_timeout = {idle_ms}")),
            raise,
            read: format!("SELECT {epoch} FROM {table} WHERE {fence} = {param}"),
            upsert: upsert_one(target),
        }
    }

    /// The fenced commit's transaction, raising `fences` in their order:
    /// when one stands above its epoch (then nothing was written), its
    /// index and epoch.
    async fn commit(
        &self,
        pool: &Pool,
        fences: &[(&str, i64)],
        rows: &[Cells],
    ) -> Result<Option<(usize, i64)>, sqlx::Error> {
        // The same statements on each driver's own types (the sqlx::Any
        // driver cannot be used, see `pool`).
        macro_rules! on {
            ($pool:expr) => {{
                let mut conn = $pool.acquire().await?;
                if let Some(sql) = &self.before {
                    sqlx::query(sql).execute(&mut *conn).await?;
                }
                let outcome = async {
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    if let Some(sql) = &self.first {
                        sqlx::query(sql).execute(&mut *tx).await?;
                    }
                    for (i, &(fence, epoch)) in fences.iter().enumerate() {
                        sqlx::query(&self.raise).bind(fence).bind(epoch).execute(&mut *tx).await?;
                        let fenced_at: i64 = sqlx::query_scalar(&self.read).bind(fence).fetch_one(&mut *tx).await?;
                        if fenced_at > epoch {
                            // Also undoes the raises of the fences before.
                            tx.rollback().await?;
                            return Ok(Some((i, fenced_at)));
                        }
                    }
                    for cells in rows {
                        let mut upsert = sqlx::query(&self.upsert);
                        for cell in cells {
                            upsert = upsert.bind(cell.as_deref());
                        }
                        upsert.execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(None)
                }
                .await;
                if let Some(sql) = &self.after {
                    // A connection this fails on is broken: the pool drops it.
                    let _ = sqlx::query(sql).execute(&mut *conn).await;
                }
                outcome
            }};
        }
        match pool {
            Pool::Postgres(p) => on!(p),
            Pool::MySql(p) => on!(p),
            Pool::Sqlite(p) => on!(p),
        }
    }
}

/// An upsert of one row by the dimension's key, every column a text
/// parameter: what [`write::write`] does for a row, but as a statement of
/// its own, to run inside the fenced commit's transaction (`write` opens
/// its own transaction on the pool).
fn upsert_one(target: &Target) -> String {
    let d = target.dialect;
    let names: Vec<String> = target.columns.iter().map(|c| d.quote(&c.name)).collect();
    let keys: Vec<&str> = target.key.iter().map(|&i| names[i].as_str()).collect();
    let others: Vec<&str> = (0..names.len()).filter(|i| !target.key.contains(i)).map(|i| names[i].as_str()).collect();
    let values: Vec<String> = (target.columns.iter().enumerate())
        .map(|(i, c)| match d {
            // A text parameter, cast to the column's type as the sink does.
            Dialect::Postgres => format!("${}::{}", i + 1, c.sql_type),
            Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
        })
        .collect();
    let on_conflict = match d {
        // VALUES(col) rather than MySQL 8's row alias, which MariaDB lacks.
        Dialect::MySql if others.is_empty() => format!("ON DUPLICATE KEY UPDATE {0} = {0}", keys[0]),
        Dialect::MySql => format!(
            "ON DUPLICATE KEY UPDATE {}",
            others.iter().map(|c| format!("{c} = VALUES({c})")).collect::<Vec<_>>().join(", ")
        ),
        _ if others.is_empty() => format!("ON CONFLICT ({}) DO NOTHING", keys.join(", ")),
        _ => format!(
            "ON CONFLICT ({}) DO UPDATE SET {}",
            keys.join(", "),
            others.iter().map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", ")
        ),
    };
    format!(
        "INSERT INTO {} ({}) VALUES ({}) {on_conflict}",
        d.quote_table(&target.table),
        names.join(", "),
        values.join(", ")
    )
}

/// `SELECT` of every column as text, by key and in full.
fn selects(dialect: Dialect, target: &Target) -> (String, String) {
    let columns: Vec<String> = target.columns.iter().map(|c| dialect.as_text(&dialect.quote(&c.name))).collect();
    let select_all = format!("SELECT {} FROM {}", columns.join(", "), dialect.quote_table(&target.table));
    let conditions: Vec<String> = target
        .key
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let column = &target.columns[i];
            let param = match dialect {
                // A text parameter, cast to the column's type as the sink does.
                Dialect::Postgres => format!("${}::{}", n + 1, column.sql_type),
                Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
            };
            format!("{} = {param}", dialect.quote(&column.name))
        })
        .collect();
    (format!("{select_all} WHERE {}", conditions.join(" AND ")), select_all)
}

/// The parts of an SDK key: for one column the key as it is; for several,
/// parts split at `|`, with `\` escaping `|` and `\` (sluice_sdk::Key).
fn split_key(key: &[u8], columns: usize) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(key).map_err(|_| format!("key {key:?} is not UTF-8"))?;
    if columns == 1 {
        return Ok(vec![text.to_owned()]);
    }
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => parts.last_mut().expect("never empty").extend(chars.next()),
            '|' => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    if parts.len() != columns {
        return Err(format!(
            "key `{text}` has {} parts, but the dimension has {columns} key columns; look up with a tuple of {columns}",
            parts.len()
        ));
    }
    Ok(parts)
}

/// The SDK key of key column values: [`split_key`] reversed.
pub(super) fn join_key(parts: &[&str]) -> Vec<u8> {
    if let [one] = parts {
        return one.as_bytes().to_vec();
    }
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'|');
        }
        for &byte in part.as_bytes() {
            if byte == b'|' || byte == b'\\' {
                out.push(b'\\');
            }
            out.push(byte);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_and_join_as_the_sdk_encodes_them() {
        assert_eq!(split_key(b"a|b", 1).unwrap(), ["a|b"]);
        assert_eq!(split_key(br"eu\|west|4\\2", 2).unwrap(), ["eu|west", r"4\2"]);
        assert_eq!(join_key(&["eu|west", r"4\2"]), br"eu\|west|4\\2");
        assert_eq!(join_key(&["a|b"]), b"a|b");
        let err = split_key(b"a|b|c", 2).unwrap_err();
        assert!(err.contains("3 parts") && err.contains("2 key columns"), "{err}");
    }
}
