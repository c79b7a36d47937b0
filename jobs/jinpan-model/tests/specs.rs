//! The jobs' specs agree with the tables: every SQL sink writes its table
//! by the table's key with the table's column types (the repayment sinks
//! each their own columns), every compensation dimension reads a table by
//! its key, and the sample specs have a sink per table.

use jinpan_model::tables::{REPAYMENT, REPAYMENT_STATUS_COLUMNS, TABLES, Table};
use toml::Table as Toml;

fn spec(path: &str) -> Toml {
    let path = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(value: &toml::Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// (name, type) of a sink's `columns`, in order.
fn columns(sink: &toml::Value) -> Vec<(String, String)> {
    sink["columns"].as_table().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect()
}

fn expected(columns: impl IntoIterator<Item = jinpan_model::tables::Column>) -> Vec<(String, String)> {
    columns.into_iter().map(|c| (c.name.to_owned(), c.sql_type.to_owned())).collect()
}

fn key(t: &Table) -> Vec<String> {
    t.key.iter().map(|k| (*k).to_owned()).collect()
}

/// The ten SQL sinks the order splitting writes.
fn check_split_sinks(file: &str) {
    let spec = spec(file);
    let sinks = spec["sinks"].as_table().unwrap();
    let names: Vec<&str> = sinks.keys().map(String::as_str).collect();
    assert_eq!(names, TABLES.iter().map(|t| t.name).collect::<Vec<_>>(), "{file}");
    for t in TABLES {
        let sink = &sinks[t.name];
        assert_eq!(sink["kind"].as_str(), Some("sql"), "{file} {}", t.name);
        assert_eq!(sink["table"].as_str(), Some(t.name), "{file}");
        assert_eq!(strings(&sink["primary_key"]), key(t), "{file} {}", t.name);
        assert_eq!(columns(sink), expected(t.sync_columns()), "{file} {}", t.name);
    }
}

#[test]
fn sync_kafka_spec() {
    check_split_sinks("jinpan-sync/kafka.toml");
    let spec = spec("jinpan-sync/kafka.toml");
    assert_eq!(spec["sources"]["jinpan_order"]["kind"].as_str(), Some("kafka"));
}

#[test]
fn compensate_daily_spec() {
    check_split_sinks("jinpan-compensate/daily.toml");
    let spec = spec("jinpan-compensate/daily.toml");
    let source = &spec["sources"]["orders_of_record"];
    assert_eq!((source["kind"].as_str(), source["bounded"].as_bool()), (Some("sql"), Some(true)));
    let dimensions = spec["dimensions"].as_table().unwrap();
    assert_eq!(dimensions.len(), TABLES.len());
    for t in TABLES {
        let d = &dimensions[t.name];
        assert_eq!((d["kind"].as_str(), d["table"].as_str()), (Some("sql"), Some(t.name)));
        assert_eq!(strings(&d["key"]), key(t), "{}", t.name);
    }
}

#[test]
fn postloan_daily_spec() {
    let spec = spec("jinpan-postloan/daily.toml");
    let source = &spec["sources"]["repayment_status"];
    assert_eq!((source["kind"].as_str(), source["bounded"].as_bool()), (Some("sql"), Some(true)));
    let sink = &spec["sinks"][REPAYMENT];
    let table = jinpan_model::tables::table(REPAYMENT).unwrap();
    assert_eq!(strings(&sink["primary_key"]), key(table));
    let owned =
        |c: &&jinpan_model::tables::Column| table.key.contains(&c.name) || REPAYMENT_STATUS_COLUMNS.contains(&c.name);
    assert_eq!(columns(sink), expected(table.columns.iter().filter(owned).copied()));
}

#[test]
fn sample_specs_have_a_sink_per_table() {
    for file in ["jinpan-sync/job.toml", "jinpan-compensate/job.toml"] {
        let spec = spec(file);
        let sinks: Vec<&str> = spec["sinks"].as_table().unwrap().keys().map(String::as_str).collect();
        assert_eq!(sinks, TABLES.iter().map(|t| t.name).collect::<Vec<_>>(), "{file}");
    }
    let spec = spec("jinpan-compensate/job.toml");
    assert_eq!(spec["dimensions"].as_table().unwrap().len(), TABLES.len());
}
