//! JSON values to column text and back. Every value travels as text (or
//! NULL) and the database converts it to the column's type, so one code
//! path serves every type and decimals never pass through a float: a JSON
//! number is taken as its literal text (serde_json's `RawValue`, which
//! sqlx's PostgreSQL driver already enables).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::value::RawValue;

use super::dialect::{Dialect, Family};

/// The text a column of `family` gets for the JSON value `raw`; `None` is
/// NULL. The error says why the value does not fit.
pub(super) fn to_cell(dialect: Dialect, family: Family, raw: &RawValue) -> Result<Option<String>, String> {
    let text = raw.get();
    match text.as_bytes().first() {
        None | Some(b'n') => Ok(None),
        Some(b'"') => {
            if family == Family::Json {
                return Ok(Some(text.to_owned()));
            }
            let s: String = serde_json::from_str(text).map_err(|e| format!("bad JSON string: {e}"))?;
            // Checked here rather than left to the database, as SQLite
            // would keep the text in a number column.
            let shown = || s.chars().take(60).collect::<String>();
            match family {
                Family::Integer if s.trim().parse::<i128>().is_err() => {
                    return Err(format!("the string \"{}\" is not an integer", shown()));
                }
                Family::Float | Family::Decimal if s.trim().parse::<f64>().is_err() => {
                    return Err(format!("the string \"{}\" is not a number", shown()));
                }
                _ => {}
            }
            string_cell(dialect, family, s).map(Some)
        }
        Some(b't' | b'f') => Ok(Some(bool_cell(dialect, family, text == "true")?)),
        Some(b'{' | b'[') => match family {
            Family::Json | Family::Text | Family::Other => Ok(Some(text.to_owned())),
            _ => Err(format!(
                "a JSON {} does not fit a {family:?} column",
                if text.starts_with('{') { "object" } else { "array" }
            )),
        },
        // A number, as written: no float in between.
        Some(_) => match family {
            Family::Timestamp => {
                let millis = text.parse::<i64>().map_err(|_| format!("{text} is not epoch milliseconds"))?;
                Ok(Some(timestamp_from_millis(dialect, millis)?))
            }
            Family::Integer if text.parse::<i128>().is_err() => Err(format!("{text} is not an integer")),
            _ => Ok(Some(text.to_owned())),
        },
    }
}

/// The text a column of `family` gets for the string `s` (a JSON string
/// field, or a part of a dimension key).
pub(super) fn string_cell(dialect: Dialect, family: Family, s: String) -> Result<String, String> {
    match family {
        Family::Timestamp => timestamp_cell(dialect, s),
        Family::Boolean if s == "true" || s == "false" => bool_cell(dialect, family, s == "true"),
        Family::Json => Ok(serde_json::Value::String(s).to_string()),
        _ => Ok(s),
    }
}

fn bool_cell(dialect: Dialect, family: Family, value: bool) -> Result<String, String> {
    let text = match (family, dialect) {
        (Family::Boolean, Dialect::Postgres) | (Family::Text | Family::Json | Family::Other, _) => {
            if value {
                "true"
            } else {
                "false"
            }
        }
        // MySQL's BOOLEAN is tinyint(1) and SQLite has no boolean: 1/0.
        (Family::Boolean | Family::Integer | Family::Decimal | Family::Float, _) => {
            if value {
                "1"
            } else {
                "0"
            }
        }
        (Family::Timestamp, _) => return Err("a boolean is not a timestamp".into()),
    };
    Ok(text.to_owned())
}

/// A timestamp string: digits are epoch milliseconds, RFC 3339 is turned
/// into what the database accepts, anything else is left for the database
/// to parse (e.g. `2024-01-01 10:00:00`).
fn timestamp_cell(dialect: Dialect, s: String) -> Result<String, String> {
    if let Ok(millis) = s.parse::<i64>() {
        return timestamp_from_millis(dialect, millis);
    }
    match DateTime::parse_from_rfc3339(&s) {
        Ok(t) => Ok(format_timestamp(dialect, t.with_timezone(&Utc))),
        Err(_) => Ok(s),
    }
}

fn timestamp_from_millis(dialect: Dialect, millis: i64) -> Result<String, String> {
    let t = DateTime::<Utc>::from_timestamp_millis(millis)
        .ok_or_else(|| format!("{millis} is out of range for epoch milliseconds"))?;
    Ok(format_timestamp(dialect, t))
}

/// UTC, as each database reads it: RFC 3339 for PostgreSQL (right for both
/// timestamp and timestamptz), `YYYY-MM-DD HH:MM:SS[.fff]` for MySQL
/// (MariaDB refuses offsets) and SQLite (its own date functions' format).
fn format_timestamp(dialect: Dialect, t: DateTime<Utc>) -> String {
    match dialect {
        Dialect::Postgres => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        Dialect::MySql | Dialect::Sqlite => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
    }
}

/// Appends a column's text (as the database returned it) as a JSON value:
/// numbers stay numbers (their exact text), booleans become booleans, JSON
/// columns nest, timestamps become RFC 3339 in UTC, the rest strings.
pub(super) fn push_json(out: &mut String, family: Family, cell: Option<&str>) {
    let Some(text) = cell else {
        out.push_str("null");
        return;
    };
    match family {
        Family::Integer | Family::Float | Family::Decimal if is_json_number(text) => out.push_str(text),
        Family::Boolean if matches!(text, "t" | "true" | "1") => out.push_str("true"),
        Family::Boolean if matches!(text, "f" | "false" | "0") => out.push_str("false"),
        Family::Json if serde_json::from_str::<&RawValue>(text).is_ok() => out.push_str(text),
        Family::Timestamp => push_string(out, &normalize_timestamp(text)),
        _ => push_string(out, text),
    }
}

pub(super) fn push_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

fn is_json_number(text: &str) -> bool {
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// A timestamp as a database prints it (`2024-01-01 10:00:00+00`,
/// `2024-01-01 10:00:00.000`, RFC 3339) as RFC 3339 in UTC; a time
/// without an offset is UTC, since that is how this module writes them.
fn normalize_timestamp(text: &str) -> String {
    match parse_timestamp(text) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => text.to_owned(),
    }
}

fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc()))
        .ok()
}

/// A column's text as epoch milliseconds: an integer as it is, a
/// timestamp (as [`push_json`] reads them) converted; `None` otherwise.
pub(super) fn cell_millis(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok().or_else(|| parse_timestamp(text.trim()).map(|t| t.timestamp_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(dialect: Dialect, family: Family, json: &str) -> Result<Option<String>, String> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        to_cell(dialect, family, raw)
    }

    #[test]
    fn json_to_cells() {
        let pg = Dialect::Postgres;
        assert_eq!(
            cell(pg, Family::Decimal, "12345678901234567890.123456789").unwrap().unwrap(),
            "12345678901234567890.123456789"
        );
        assert_eq!(cell(pg, Family::Decimal, "\"12345678901234.56\"").unwrap().unwrap(), "12345678901234.56");
        assert_eq!(cell(pg, Family::Boolean, "true").unwrap().unwrap(), "true");
        assert_eq!(cell(Dialect::MySql, Family::Boolean, "false").unwrap().unwrap(), "0");
        assert_eq!(cell(pg, Family::Json, r#"{"a": [1]}"#).unwrap().unwrap(), r#"{"a": [1]}"#);
        assert_eq!(cell(pg, Family::Text, "null").unwrap(), None);
        assert_eq!(cell(pg, Family::Timestamp, "1700000000123").unwrap().unwrap(), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            cell(Dialect::MySql, Family::Timestamp, "\"2023-11-14T23:13:20.5+01:00\"").unwrap().unwrap(),
            "2023-11-14 22:13:20.500"
        );
        assert!(cell(pg, Family::Integer, "{}").is_err());
        assert_eq!(cell(pg, Family::Integer, "\" 42\"").unwrap().unwrap(), " 42");
        let err = cell(Dialect::Sqlite, Family::Integer, "\"abc\"").unwrap_err();
        assert_eq!(err, "the string \"abc\" is not an integer");
        assert!(cell(pg, Family::Integer, "12.5").unwrap_err().contains("not an integer"));
        assert!(cell(pg, Family::Decimal, "\"1,5\"").unwrap_err().contains("not a number"));
    }

    #[test]
    fn cells_to_json() {
        let mut out = String::new();
        push_json(&mut out, Family::Decimal, Some("12345678901234.56"));
        out.push(',');
        push_json(&mut out, Family::Boolean, Some("1"));
        out.push(',');
        push_json(&mut out, Family::Timestamp, Some("2023-11-14 22:13:20.123+00"));
        out.push(',');
        push_json(&mut out, Family::Decimal, Some("NaN"));
        assert_eq!(out, r#"12345678901234.56,true,"2023-11-14T22:13:20.123Z","NaN""#);
    }

    #[test]
    fn cells_to_millis() {
        assert_eq!(cell_millis("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(cell_millis("2023-11-14 22:13:20.123+00"), Some(1_700_000_000_123));
        assert_eq!(cell_millis("2023-11-14 22:13:20.123"), Some(1_700_000_000_123));
        assert_eq!(cell_millis("2023-11-14T23:13:20.123+01:00"), Some(1_700_000_000_123));
        assert_eq!(cell_millis("soon"), None);
    }
}
