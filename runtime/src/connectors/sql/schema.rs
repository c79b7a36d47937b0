//! What a table looks like, read from the database's catalog, and the DDL
//! that creates one.

use super::dialect::{Dialect, Family};
use super::pool::Pool;

/// One column as the database reports it.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub name: String,
    /// The SQL type, e.g. `numeric(20,2)`; PostgreSQL casts text to it.
    pub sql_type: String,
    pub family: Family,
}

/// A table's columns (in table order) and its unique keys (primary key and
/// unique indexes, each a list of column names).
#[derive(Debug, Clone)]
pub(super) struct TableInfo {
    pub columns: Vec<Column>,
    pub unique_keys: Vec<Vec<String>>,
}

impl TableInfo {
    pub(super) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether some unique key has exactly these columns (in any order):
    /// what `ON CONFLICT (..)` needs as its target.
    pub(super) fn has_unique_key(&self, columns: &[String]) -> bool {
        let mut wanted: Vec<&str> = columns.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        self.unique_keys.iter().any(|key| {
            let mut have: Vec<&str> = key.iter().map(String::as_str).collect();
            have.sort_unstable();
            have == wanted
        })
    }
}

/// Reads the table's columns and unique keys; `None` when it does not exist.
pub(super) async fn introspect(pool: &Pool, table: &str) -> Result<Option<TableInfo>, sqlx::Error> {
    let dialect = pool.dialect();
    let (schema, name) = match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    };
    let (columns, keys) = match dialect {
        Dialect::Postgres => postgres_catalog(pool, &dialect.quote_table(table)).await?,
        Dialect::MySql => mysql_catalog(pool, schema, name).await?,
        Dialect::Sqlite => sqlite_catalog(pool, schema, name).await?,
    };
    if columns.is_empty() {
        return Ok(None);
    }
    let columns = columns
        .into_iter()
        .map(|(name, sql_type)| Column { family: dialect.family(&sql_type), name, sql_type })
        .collect();
    Ok(Some(TableInfo { columns, unique_keys: group_keys(keys) }))
}

/// (name, SQL type) per column, and (index, column) pairs of unique keys.
type Catalog = (Vec<(String, String)>, Vec<(String, String)>);

async fn postgres_catalog(pool: &Pool, quoted: &str) -> Result<Catalog, sqlx::Error> {
    // to_regclass resolves the name as a query would (search_path) and is
    // NULL when there is no such table.
    let columns = pool
        .fetch_text(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[Some(quoted)],
        )
        .await?;
    let keys = pool
        .fetch_text(
            "SELECT i.indexrelid::text, a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL \
             ORDER BY i.indexrelid, k.ord",
            &[Some(quoted)],
        )
        .await?;
    Ok((pairs(columns), pairs(keys)))
}

async fn mysql_catalog(pool: &Pool, schema: Option<&str>, name: &str) -> Result<Catalog, sqlx::Error> {
    let params = [schema, Some(name)];
    let columns = pool
        .fetch_text(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            &params,
        )
        .await?;
    let keys = pool
        .fetch_text(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            &params,
        )
        .await?;
    let mut columns = pairs(columns);
    // MariaDB's JSON is LONGTEXT with a json_valid check; report it as json.
    // (MySQL has a real JSON type, and no TABLE_NAME here: the query fails
    // and nothing changes.)
    let checks = pool
        .fetch_text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            &params,
        )
        .await
        .unwrap_or_default();
    for (column, sql_type) in &mut columns {
        let json_check = format!("json_valid({})", Dialect::MySql.quote(column));
        if checks.iter().any(|row| row.first().and_then(Option::as_deref) == Some(json_check.as_str())) {
            *sql_type = "json".into();
        }
    }
    Ok((columns, pairs(keys)))
}

async fn sqlite_catalog(pool: &Pool, schema: Option<&str>, name: &str) -> Result<Catalog, sqlx::Error> {
    let schema = schema.unwrap_or("main");
    let params = [Some(name), Some(schema)];
    let columns = pool
        .fetch_text("SELECT name, type, CAST(pk AS TEXT) FROM pragma_table_info(?1, ?2) ORDER BY cid", &params)
        .await?;
    // The primary key (pk > 0, in key order) is a unique key that
    // pragma_index_list does not list when it is the rowid.
    let mut primary: Vec<(u32, String)> = columns
        .iter()
        .filter_map(|row| {
            let pk: u32 = row.get(2)?.as_deref()?.parse().ok()?;
            Some((pk, row.first()?.clone()?)).filter(|(pk, _)| *pk > 0)
        })
        .collect();
    primary.sort();
    let mut keys: Vec<(String, String)> =
        primary.into_iter().map(|(_, column)| ("sluice primary key".to_owned(), column)).collect();
    let indexes = pool
        .fetch_text(
            "SELECT il.name, ii.name FROM pragma_index_list(?1, ?2) AS il, pragma_index_info(il.name, ?2) AS ii \
             WHERE il.\"unique\" = 1 AND il.partial = 0 ORDER BY il.name, ii.seqno",
            &params,
        )
        .await?;
    keys.extend(pairs(indexes));
    Ok((pairs(columns), keys))
}

/// The first two text cells of each row (NULL as empty).
fn pairs(rows: Vec<Vec<Option<String>>>) -> Vec<(String, String)> {
    rows.into_iter()
        .map(|row| {
            let mut cells = row.into_iter().map(Option::unwrap_or_default);
            (cells.next().unwrap_or_default(), cells.next().unwrap_or_default())
        })
        .collect()
}

/// (index, column) pairs, ordered by index, into one column list per index.
fn group_keys(pairs: Vec<(String, String)>) -> Vec<Vec<String>> {
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in pairs {
        match keys.last_mut() {
            Some((last, columns)) if *last == index => columns.push(column),
            _ => keys.push((index, vec![column])),
        }
    }
    keys.into_iter().map(|(_, columns)| columns).collect()
}

/// `CREATE TABLE IF NOT EXISTS` with `columns` (name, SQL type) and the
/// primary key `key`. IF NOT EXISTS because the tasks of a job connect at
/// the same time.
pub(super) fn create_table_sql(dialect: Dialect, table: &str, columns: &[(String, String)], key: &[String]) -> String {
    let mut parts: Vec<String> =
        columns.iter().map(|(name, sql_type)| format!("{} {sql_type}", dialect.quote(name))).collect();
    let key: Vec<String> = key.iter().map(|k| dialect.quote(k)).collect();
    parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
    format!("CREATE TABLE IF NOT EXISTS {} ({})", dialect.quote_table(table), parts.join(", "))
}
