//! Property tests (fuzzing) of the SQL connectors' conversions, without a
//! database: a query's row (cells as the database printed them) into a
//! record ([`RowShape::record`]), and a job's JSON row into cells for a
//! sink or dimension table ([`parse_object`], [`to_cell`]). Cells and rows
//! are tenant data; see docs/SECURITY.md, "Fuzzing".

use proptest::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;

use super::dialect::{Dialect, Family};
use super::source::RowShape;
use super::target::parse_object;
use super::value::{cell_millis, to_cell};
use crate::fuzz_inputs::{self, DEEP, deep_nesting, hostile_json, hostile_text, json_text};

const FAMILIES: &[Family] = &[
    Family::Text,
    Family::Integer,
    Family::Float,
    Family::Decimal,
    Family::Boolean,
    Family::Timestamp,
    Family::Json,
    Family::Other,
];

const DIALECTS: &[Dialect] = &[Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

/// A cell as a database may print it: any text, JSON (for json columns),
/// deep JSON, or NULL.
fn cell() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(0.85, prop_oneof![3 => hostile_text(), 1 => json_text(), 1 => deep_nesting()])
}

/// A query's columns, its key and event time columns (indexes may point
/// past the row: a row shorter than its description must not panic), and
/// one row of cells.
fn row() -> impl Strategy<Value = (RowShape, Vec<Option<String>>)> {
    (
        prop::collection::vec((hostile_text(), prop::sample::select(FAMILIES)), 0..7),
        prop::collection::vec(0..8usize, 0..3),
        prop::option::of(0..8usize),
        prop::collection::vec(cell(), 0..8),
    )
        .prop_map(|(columns, key, event_time, cells)| (RowShape { columns, key, event_time }, cells))
}

proptest! {
    #![proptest_config(fuzz_inputs::config())]

    /// Any row becomes a JSON object with one field per column; NULL (or a
    /// missing cell) is `null`, text columns hold the cell's text exactly
    /// (escaped, whatever its characters), integer columns the integer, and
    /// JSON columns the cell's JSON however deep; key and event time come
    /// from their cells.
    #[test]
    fn fuzz_sql_source_rows_become_records((shape, cells) in row()) {
        let mut out = String::new();
        let (key, event_time) = shape.record(&cells, &mut out);
        // Values are read as raw text: a deep JSON cell is no error here.
        let fields: Vec<(String, Box<RawValue>)> = object_fields(&out).expect("the record is a JSON object");
        prop_assert_eq!(fields.len(), shape.columns.len());
        for (i, ((name, family), (field, raw))) in shape.columns.iter().zip(&fields).enumerate() {
            prop_assert_eq!(name, field);
            let text = raw.get();
            let Some(cell) = cells.get(i).and_then(Option::as_deref) else {
                prop_assert_eq!(text, "null");
                continue;
            };
            match family {
                Family::Text | Family::Other => prop_assert_eq!(serde_json::from_str::<String>(text).unwrap(), cell),
                // An integer as JSON writes it (not `+5`, `007` or ` 5`,
                // which stay strings).
                Family::Integer if cell.parse::<i64>().is_ok() && serde_json::from_str::<i64>(cell).is_ok() => {
                    prop_assert_eq!(text, cell)
                }
                Family::Json => match serde_json::from_str::<&RawValue>(cell) {
                    Ok(json) => prop_assert_eq!(text, json.get()),
                    Err(_) => prop_assert_eq!(serde_json::from_str::<String>(text).unwrap(), cell),
                },
                _ => {}
            }
        }
        let cell = |i: usize| cells.get(i).and_then(Option::as_deref);
        if let [only] = shape.key[..] {
            prop_assert_eq!(key, cell(only).unwrap_or("").as_bytes());
        }
        let time_cell = shape.event_time.and_then(cell);
        if let Some(ms) = time_cell.and_then(|c| c.trim().parse::<i64>().ok()) {
            prop_assert_eq!(event_time, Some(ms));
        }
        if time_cell.is_none() {
            prop_assert_eq!(event_time, None);
        }
    }

    /// Any text as an event-time cell: milliseconds or a timestamp, else
    /// none; never a panic, whatever the year, offset or fraction.
    #[test]
    fn fuzz_sql_event_time_cells(text in hostile_text()) {
        if let Ok(ms) = text.trim().parse::<i64>() {
            prop_assert_eq!(cell_millis(&text), Some(ms));
        } else {
            let _ = cell_millis(&text);
        }
    }

    /// A job's row for a SQL sink: any bytes are either a JSON object's
    /// fields or an error naming the problem; each field's value then goes
    /// to a cell of every family and dialect without a panic, and values
    /// that plainly fit are kept exactly.
    #[test]
    fn fuzz_sql_sink_rows_become_cells(row in hostile_json(), dialect in prop::sample::select(DIALECTS)) {
        match parse_object(&row) {
            Err(message) => prop_assert!(message.starts_with("a row is not a JSON object"), "{}", message),
            Ok(fields) => {
                for (_, raw) in fields {
                    for &family in FAMILIES {
                        check_cell(dialect, family, raw)?;
                    }
                }
            }
        }
    }

    /// Any one JSON value into a cell of every family and dialect.
    #[test]
    fn fuzz_sql_values_become_cells(json in json_text(), dialect in prop::sample::select(DIALECTS)) {
        let raw: &RawValue = serde_json::from_str(&json).expect("json_text is valid JSON");
        for &family in FAMILIES {
            check_cell(dialect, family, raw)?;
        }
    }
}

/// `to_cell` of `raw`: no panic, and what plainly fits is kept exactly.
fn check_cell(dialect: Dialect, family: Family, raw: &RawValue) -> Result<(), TestCaseError> {
    let cell = to_cell(dialect, family, raw);
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Null) => prop_assert_eq!(cell, Ok(None)),
        Ok(Value::String(s)) if matches!(family, Family::Text | Family::Other) => prop_assert_eq!(cell, Ok(Some(s))),
        Ok(Value::Number(n)) if n.is_i64() && family == Family::Integer => {
            prop_assert_eq!(cell, Ok(Some(raw.get().to_owned())))
        }
        _ => {}
    }
    Ok(())
}

/// The fields of a JSON object in order, repeated names included, values
/// as raw text; `None` when `json` is not an object.
fn object_fields(json: &str) -> Option<Vec<(String, Box<RawValue>)>> {
    struct Fields;
    impl<'de> serde::de::Visitor<'de> for Fields {
        type Value = Vec<(String, Box<RawValue>)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = Vec::new();
            while let Some(field) = map.next_entry()? {
                fields.push(field);
            }
            Ok(fields)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let fields = serde::Deserializer::deserialize_map(&mut de, Fields).ok()?;
    de.end().ok()?;
    Some(fields)
}

/// A row shorter than the columns the query described: `RowShape::record`
/// once indexed the key and event-time cells directly (`cells[i]`), which
/// would panic the source for such a row; a missing cell is now NULL.
#[test]
fn a_short_row_reads_missing_cells_as_null() {
    let shape = RowShape {
        columns: vec![("id".into(), Family::Integer), ("at".into(), Family::Timestamp)],
        key: vec![0],
        event_time: Some(1),
    };
    let mut out = String::new();
    assert_eq!(shape.record(&[Some("7".into())], &mut out), (b"7".to_vec(), None));
    assert_eq!(out, r#"{"id":7,"at":null}"#);
}

/// A JSON column holding nesting far past serde_json's recursion limit is
/// checked and copied without recursion (no stack overflow); a sink row
/// nested that deep is refused with a message, also without recursion.
#[test]
fn deep_json_cells_and_rows_do_not_overflow_the_stack() {
    let deep = format!("{}1{}", "[".repeat(DEEP), "]".repeat(DEEP));
    let shape = RowShape { columns: vec![("doc".into(), Family::Json)], key: vec![], event_time: None };
    let mut out = String::new();
    shape.record(&[Some(deep.clone())], &mut out);
    assert_eq!(out, format!(r#"{{"doc":{deep}}}"#));

    let fields = parse_object(out.as_bytes()).unwrap();
    assert_eq!(to_cell(Dialect::Postgres, Family::Json, fields[0].1).unwrap().unwrap(), deep);
    assert!(to_cell(Dialect::Postgres, Family::Integer, fields[0].1).is_err());
    assert!(parse_object(deep.as_bytes()).unwrap_err().starts_with("a row is not a JSON object"));
}
