//! Writing a batch: deletes, then inserts (upserts or insert-or-ignore), in
//! one transaction. PostgreSQL gets one statement per chunk whatever its
//! size (`INSERT .. SELECT .. FROM UNNEST($1::text[], ..)`, one array per
//! column); MySQL and SQLite get multi-row VALUES statements within their
//! bind-parameter limits.

use std::borrow::Cow;

use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use super::dialect::Dialect;
use super::pool::Pool;
use super::target::{Cells, Target};

/// MySQL counts parameters in a u16.
const MYSQL_MAX_PARAMS: usize = 65_535;
/// SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32.
const SQLITE_MAX_PARAMS: usize = 32_766;
/// Text per statement, well under MariaDB's default max_allowed_packet (16 MiB).
const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// What an insert does when the key is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnConflict {
    /// Replace the row's other columns (upsert).
    Update,
    /// Keep the row there (append: a replayed row is not inserted twice).
    Ignore,
}

/// The statements of one target, built once.
pub(super) struct Statements {
    dialect: Dialect,
    columns: usize,
    keys: usize,
    /// PostgreSQL: the whole statements. MySQL/SQLite: the part before the
    /// rows (`INSERT INTO t (..) VALUES `, `DELETE FROM t WHERE (..) IN (`).
    insert: String,
    delete: String,
    /// MySQL/SQLite: what follows the rows (the conflict clause, `)`).
    insert_tail: String,
    delete_tail: String,
}

impl Statements {
    pub(super) fn new(target: &Target, on_conflict: OnConflict) -> Self {
        let d = target.dialect;
        let table = d.quote_table(&target.table);
        let names: Vec<String> = target.columns.iter().map(|c| d.quote(&c.name)).collect();
        let keys: Vec<String> = target.key.iter().map(|&i| names[i].clone()).collect();
        let others: Vec<&String> = (0..names.len()).filter(|i| !target.key.contains(i)).map(|i| &names[i]).collect();
        let (insert, insert_tail, delete, delete_tail) = match d {
            Dialect::Postgres => {
                let arrays = |n: usize| (1..=n).map(|i| format!("${i}::text[]")).collect::<Vec<_>>().join(", ");
                let aliases = |n: usize| (1..=n).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", ");
                let casts: Vec<String> =
                    target.columns.iter().enumerate().map(|(i, c)| format!("u.c{}::{}", i + 1, c.sql_type)).collect();
                let update = match on_conflict {
                    OnConflict::Update if !others.is_empty() => format!(
                        "DO UPDATE SET {}",
                        others.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect::<Vec<_>>().join(", ")
                    ),
                    _ => "DO NOTHING".to_owned(),
                };
                let insert = format!(
                    "INSERT INTO {table} ({}) SELECT {} FROM UNNEST({}) AS u({}) ON CONFLICT ({}) {update}",
                    names.join(", "),
                    casts.join(", "),
                    arrays(names.len()),
                    aliases(names.len()),
                    keys.join(", "),
                );
                let matches: Vec<String> = target
                    .key
                    .iter()
                    .enumerate()
                    .map(|(j, &i)| format!("target.{} = u.c{}::{}", names[i], j + 1, target.columns[i].sql_type))
                    .collect();
                let delete = format!(
                    "DELETE FROM {table} AS target USING UNNEST({}) AS u({}) WHERE {}",
                    arrays(keys.len()),
                    aliases(keys.len()),
                    matches.join(" AND ")
                );
                (insert, String::new(), delete, String::new())
            }
            Dialect::MySql | Dialect::Sqlite => {
                let insert = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
                let tail = values_conflict_clause(d, on_conflict, &keys, &others);
                // SQLite takes row values in IN only from a subquery.
                let values = if d == Dialect::Sqlite { "VALUES " } else { "" };
                let delete = format!("DELETE FROM {table} WHERE ({}) IN ({values}", keys.join(", "));
                (insert, tail, delete, ")".to_owned())
            }
        };
        Statements { dialect: d, columns: names.len(), keys: keys.len(), insert, delete, insert_tail, delete_tail }
    }

    /// The insert for `rows` rows (PostgreSQL: the same for any count).
    fn insert_sql(&self, rows: usize) -> Cow<'_, str> {
        self.with_rows(&self.insert, &self.insert_tail, rows, self.columns)
    }

    fn delete_sql(&self, rows: usize) -> Cow<'_, str> {
        self.with_rows(&self.delete, &self.delete_tail, rows, self.keys)
    }

    fn with_rows<'a>(&'a self, head: &'a str, tail: &str, rows: usize, width: usize) -> Cow<'a, str> {
        if self.dialect == Dialect::Postgres {
            return Cow::Borrowed(head);
        }
        let row = format!("({})", vec!["?"; width].join(", "));
        let mut sql = String::with_capacity(head.len() + tail.len() + rows * (row.len() + 2));
        sql.push_str(head);
        for i in 0..rows {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&row);
        }
        sql.push_str(tail);
        Cow::Owned(sql)
    }

    /// Most rows of `width` cells one statement may bind.
    fn max_rows(&self, width: usize) -> usize {
        match self.dialect {
            Dialect::Postgres => usize::MAX,
            Dialect::MySql => MYSQL_MAX_PARAMS / width.max(1),
            Dialect::Sqlite => SQLITE_MAX_PARAMS / width.max(1),
        }
    }
}

fn values_conflict_clause(d: Dialect, on_conflict: OnConflict, keys: &[String], others: &[&String]) -> String {
    match (d, on_conflict) {
        // VALUES(col) rather than MySQL 8's row alias, which MariaDB lacks.
        (Dialect::MySql, OnConflict::Update) if !others.is_empty() => format!(
            " ON DUPLICATE KEY UPDATE {}",
            others.iter().map(|c| format!("{c} = VALUES({c})")).collect::<Vec<_>>().join(", ")
        ),
        // A no-op update rather than INSERT IGNORE, which would also turn
        // bad data (truncation, NULL in NOT NULL) into silent warnings.
        (Dialect::MySql, _) => format!(" ON DUPLICATE KEY UPDATE {0} = {0}", keys[0]),
        (_, OnConflict::Update) if !others.is_empty() => format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            keys.join(", "),
            others.iter().map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", ")
        ),
        // Not INSERT OR IGNORE, which also drops rows breaking NOT NULL.
        _ => format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")),
    }
}

/// Deletes `deletes` (key cells) and inserts `rows` (all cells) in one
/// transaction: all of it lands or none, so a retry never duplicates.
pub(super) async fn write(
    pool: &Pool,
    statements: &Statements,
    deletes: &[&Cells],
    rows: &[&Cells],
) -> Result<(), sqlx::Error> {
    if deletes.is_empty() && rows.is_empty() {
        return Ok(());
    }
    match pool {
        Pool::Postgres(p) => write_postgres(p, statements, deletes, rows).await,
        Pool::MySql(p) => write_values(p, statements, deletes, rows).await,
        Pool::Sqlite(p) => write_values(p, statements, deletes, rows).await,
    }
}

async fn write_postgres(
    pool: &sqlx::PgPool,
    statements: &Statements,
    deletes: &[&Cells],
    rows: &[&Cells],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (sql, batch) in [(statements.delete_sql(0), deletes), (statements.insert_sql(0), rows)] {
        for chunk in chunks(batch, usize::MAX) {
            let width = chunk[0].len();
            let mut query = sqlx::query(&sql);
            for column in 0..width {
                let array: Vec<Option<&str>> = chunk.iter().map(|row| row[column].as_deref()).collect();
                query = query.bind(array);
            }
            (&mut *tx).execute(query).await?;
        }
    }
    tx.commit().await
}

async fn write_values<DB>(
    pool: &sqlx::Pool<DB>,
    statements: &Statements,
    deletes: &[&Cells],
    rows: &[&Cells],
) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    let mut tx = pool.begin().await?;
    for (is_delete, batch) in [(true, deletes), (false, rows)] {
        let Some(first) = batch.first() else { continue };
        for chunk in chunks(batch, statements.max_rows(first.len())) {
            let sql = if is_delete { statements.delete_sql(chunk.len()) } else { statements.insert_sql(chunk.len()) };
            let mut query = sqlx::query::<DB>(&sql);
            for cell in chunk.iter().flat_map(|row| row.iter()) {
                query = query.bind(cell.as_deref());
            }
            (&mut *tx).execute(query).await?;
        }
    }
    tx.commit().await
}

/// Consecutive runs of at most `max_rows` rows and about
/// [`MAX_STATEMENT_BYTES`] of text each (at least one row).
fn chunks<'a>(rows: &'a [&'a Cells], max_rows: usize) -> impl Iterator<Item = &'a [&'a Cells]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut n, mut bytes) = (0, 0);
        while n < rest.len() && n < max_rows && (n == 0 || bytes < MAX_STATEMENT_BYTES) {
            bytes += rest[n].iter().map(|c| c.as_ref().map_or(0, String::len) + 8).sum::<usize>();
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_limits() {
        let row: Cells = vec![Some("x".repeat(1000)), None];
        let rows: Vec<&Cells> = vec![&row; 10_000];
        let sizes: Vec<usize> = chunks(&rows, 3000).map(<[_]>::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 10_000);
        assert!(sizes.iter().all(|&n| n <= 3000), "{sizes:?}");
        let big: Vec<usize> = chunks(&rows, usize::MAX).map(<[_]>::len).collect();
        assert!(big[0] < 10_000, "the byte limit splits: {big:?}");
    }
}
