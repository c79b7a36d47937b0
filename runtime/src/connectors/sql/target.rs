//! The columns a sink or dimension writes, checked against the table once,
//! and the conversion of a JSON row into one text cell per column.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::config::{SqlSinkConfig, SqlSinkMode};
use super::dialect::{self, Dialect, Family};
use super::schema::{Column, TableInfo};
use super::types::ColumnType;
use super::value;

/// One row as text cells, in the order of [`Target::columns`]; `None` is NULL.
pub(super) type Cells = Vec<Option<String>>;

/// Why a row cannot become cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RowError {
    /// This row's data (a value its column cannot hold, no key, not an
    /// object): the row goes to the dead letters, the job goes on.
    Data(String),
    /// The job and the table disagree (a field with no column): every row
    /// would fail, so the job does.
    Schema(String),
}

impl RowError {
    pub(super) fn message(self) -> String {
        match self {
            RowError::Data(m) | RowError::Schema(m) => m,
        }
    }
}

/// The table as a writer sees it.
pub(super) struct Target {
    pub dialect: Dialect,
    /// The table's name as the spec gives it (for statements and messages).
    pub table: String,
    /// The columns written, each row sets all of them (a missing field is NULL).
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the conflict target: the primary key
    /// (upsert), the key columns (dimension) or the id column (append).
    pub key: Vec<usize>,
    /// Append mode: the index of the column that holds the row id.
    pub id_column: Option<usize>,
    /// Every column of the table, to tell "no such column" from "not declared".
    table_columns: Vec<String>,
}

impl Target {
    /// Checks a sink's spec against the table: declared columns exist with
    /// a compatible type, the key columns exist and are unique. The columns
    /// written are the declared ones (all the table's when none are).
    pub(super) fn for_sink(config: &SqlSinkConfig, info: &TableInfo, dialect: Dialect) -> Result<Self, String> {
        let table = &config.table;
        for (name, spec_type) in &config.columns {
            let column = info.column(name).ok_or_else(|| {
                format!(
                    "table `{table}` has no column `{name}` (declared in columns); \
                     add it to the table or remove it from columns"
                )
            })?;
            check_type(dialect, table, column, spec_type)?;
        }
        let key = config.key_columns();
        check_sink_key(config, info, &key)?;
        let mut names: Vec<&str> = if config.columns.is_empty() {
            info.columns.iter().map(|c| c.name.as_str()).collect()
        } else {
            config.columns.keys().map(String::as_str).collect()
        };
        for k in &key {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
        let mut target = Target::new(dialect, table, info, &names, &key);
        if config.mode == SqlSinkMode::Append {
            target.id_column = Some(target.key[0]);
        }
        Ok(target)
    }

    /// A dimension's view: every column, keyed by `key`.
    pub(super) fn for_dimension(
        dialect: Dialect,
        table: &str,
        info: &TableInfo,
        key: &[String],
    ) -> Result<Self, String> {
        if key.is_empty() {
            return Err("key must name at least one column".into());
        }
        for name in key {
            if info.column(name).is_none() {
                let have: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
                return Err(format!("table `{table}` has no key column `{name}`; its columns are {}", have.join(", ")));
            }
        }
        let names: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
        Ok(Target::new(dialect, table, info, &names, key))
    }

    fn new(dialect: Dialect, table: &str, info: &TableInfo, names: &[&str], key: &[String]) -> Self {
        let columns: Vec<Column> = names.iter().filter_map(|n| info.column(n).cloned()).collect();
        let position = |name: &str| columns.iter().position(|c| c.name == name).expect("key columns are written");
        Target {
            dialect,
            table: table.to_owned(),
            key: key.iter().map(|k| position(k)).collect(),
            id_column: None,
            table_columns: info.columns.iter().map(|c| c.name.clone()).collect(),
            columns,
        }
    }

    /// The cells of a JSON object row: every field must have a column.
    pub(super) fn cells(&self, row: &[u8]) -> Result<Cells, RowError> {
        let mut cells: Cells = vec![None; self.columns.len()];
        for (field, raw) in parse_object(row).map_err(RowError::Data)? {
            // A scan beats hashing for the few columns a table has.
            let Some(i) = self.columns.iter().position(|c| c.name == field) else {
                return Err(RowError::Schema(self.unknown_field(&field)));
            };
            if Some(i) == self.id_column {
                return Err(RowError::Schema(format!(
                    "row field `{field}` has the name of the sink's id_column, which holds the row id; \
                     rename the field or choose another id_column"
                )));
            }
            cells[i] = self.convert(i, raw).map_err(RowError::Data)?;
        }
        Ok(cells)
    }

    /// The key cells of a JSON object row (a delete), other fields ignored.
    pub(super) fn key_cells(&self, row: &[u8]) -> Result<Cells, RowError> {
        let fields = parse_object(row).map_err(RowError::Data)?;
        let cells = self
            .key
            .iter()
            .map(|&i| match fields.iter().find(|(f, _)| *f == self.columns[i].name) {
                Some((_, raw)) => self.convert(i, raw),
                None => Ok(None),
            })
            .collect::<Result<Cells, String>>()
            .map_err(RowError::Data)?;
        self.check_key(&cells).map_err(RowError::Data)?;
        Ok(cells)
    }

    /// The key cells out of a full row's cells.
    pub(super) fn key_of(&self, cells: &[Option<String>]) -> Result<Cells, RowError> {
        let key: Cells = self.key.iter().map(|&i| cells[i].clone()).collect();
        self.check_key(&key).map_err(RowError::Data)?;
        Ok(key)
    }

    /// The text of the string `s` for column `i` (a part of a dimension key).
    pub(super) fn string_cell(&self, i: usize, s: &str) -> Result<String, String> {
        let column = &self.columns[i];
        value::string_cell(self.dialect, column.family, s.to_owned()).map_err(|e| self.bad_value(column, &e))
    }

    fn convert(&self, i: usize, raw: &RawValue) -> Result<Option<String>, String> {
        let column = &self.columns[i];
        value::to_cell(self.dialect, column.family, raw).map_err(|e| self.bad_value(column, &e))
    }

    fn check_key(&self, key: &[Option<String>]) -> Result<(), String> {
        match key.iter().position(Option::is_none) {
            Some(missing) => Err(format!(
                "a row has no value for `{}`, a key column of table `{}`",
                self.columns[self.key[missing]].name, self.table
            )),
            None => Ok(()),
        }
    }

    fn unknown_field(&self, field: &str) -> String {
        if self.table_columns.iter().any(|c| c == field) {
            format!(
                "row field `{field}` is a column of table `{}` but not one of the sink's columns; \
                 declare it under columns",
                self.table
            )
        } else {
            format!(
                "row field `{field}` has no column in table `{}`; \
                 add the column to the table or stop emitting the field",
                self.table
            )
        }
    }

    fn bad_value(&self, column: &Column, reason: &str) -> String {
        format!("column `{}` ({}) of table `{}`: {reason}", column.name, column.sql_type, self.table)
    }
}

/// The fields of a JSON object, values unparsed and names borrowed from
/// the row when they have no escapes: this runs for every row.
pub(super) fn parse_object(row: &[u8]) -> Result<Vec<(Cow<'_, str>, &RawValue)>, String> {
    serde_json::from_slice::<Fields<'_>>(row).map(|f| f.0).map_err(|e| {
        let text = String::from_utf8_lossy(&row[..row.len().min(200)]).into_owned();
        format!("a row is not a JSON object ({e}): {text}")
    })
}

struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
struct FieldName<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((FieldName(name), value)) = map.next_entry::<FieldName<'de>, &'de RawValue>()? {
                    fields.push((name, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// The sink's key (primary key, or the append id column) exists and is a
/// unique key of the table, which `ON CONFLICT` needs.
fn check_sink_key(config: &SqlSinkConfig, info: &TableInfo, key: &[String]) -> Result<(), String> {
    let table = &config.table;
    let (what, purpose) = match config.mode {
        SqlSinkMode::Upsert => ("primary_key", "upsert by it"),
        SqlSinkMode::Append => ("id_column", "insert each row once"),
    };
    if let Some(name) = key.iter().find(|k| info.column(k).is_none()) {
        return Err(format!("table `{table}` has no column `{name}` (the sink's {what}); add it to the table"));
    }
    if !info.has_unique_key(key) {
        return Err(format!(
            "table `{table}` has no primary key or unique index on ({}), the sink's {what}; the sink needs one to \
             {purpose}",
            key.join(", ")
        ));
    }
    if config.mode == SqlSinkMode::Append {
        let id = info.column(&config.id_column).expect("checked above");
        if !matches!(id.family, Family::Text | Family::Other) {
            return Err(format!(
                "column `{}` of table `{table}` is {}, but the id_column holds text ids like `orders/0/1234/0`; \
                 make it a text column",
                id.name, id.sql_type
            ));
        }
    }
    Ok(())
}

/// Whether the table's column can hold what the spec declares.
fn check_type(dialect: Dialect, table: &str, column: &Column, spec_type: &str) -> Result<(), String> {
    let declared = ColumnType::parse(dialect, spec_type).map_err(|e| format!("column `{}`: {e}", column.name))?;
    let rendered = declared.render(dialect, false);
    let fits = match dialect.family(&rendered) {
        Family::Other => column.family == Family::Other && dialect::same_base_type(&rendered, &column.sql_type),
        family => dialect::compatible(family, column.family),
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "column `{}` of table `{table}` is {}, which does not fit the declared type `{spec_type}`; \
             change the column's type or the type in columns",
            column.name, column.sql_type
        ))
    }
}
