use std::time::Duration;

use async_trait::async_trait;

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
        Ok(SqlDimension { subject, pool, target, upsert, select_by_key, select_all })
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
        let Some(statements) = &self.upsert else {
            return Err(self.subject.config(format!(
                "table `{}` has no primary key or unique index on the dimension's key columns, so rows cannot be \
                 upserted by key; add one",
                self.target.table
            )));
        };
        let mut cells: Cells = self.target.cells(row).map_err(|e| self.subject.config(e.message()))?;
        for (part, &i) in self.key_cells(key)?.into_iter().zip(&self.target.key) {
            cells[i] = Some(part);
        }
        let rows = [&cells];
        let write = || write::write(&self.pool, statements, &[], &rows);
        retry(&self.subject, "upserting a row", RETRY_TIME, write).await
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
