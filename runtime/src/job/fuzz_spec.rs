//! Property tests (fuzzing) of the job spec: TOML text a tenant writes,
//! parsed and checked by [`JobSpec::parse`] (what `sluice run` and the
//! console both call), then held to the operator's [`Ceilings`], and the
//! datagen source a spec fully describes built and run for a few records.
//! Every input must give a spec or an error that says what is wrong, never
//! a panic or a stack overflow. See docs/SECURITY.md, "Fuzzing".

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use toml::{Table, Value};

use super::spec::{JobSpec, SpecError};
use super::{Ceilings, batch::RecordBatch};
use crate::connectors::Source;
use crate::connectors::datagen::DatagenSource;
use crate::connectors::registry::SourceSpec;
use crate::fuzz_inputs::{self, DEEP, hostile_text};

/// A spec with every section and every connector kind, all valid: the
/// structure-aware inputs below change one or a few of its values, so
/// most of them get past the TOML parser into the checks.
const EVERY_KIND: &str = r#"
name = "fuzz-job"
component = "job.wasm"

[parameters]
threshold = "0.5"

[sources.lines]
kind = "file"
path = "in.jsonl"
event_time_field = "ts"
key_field = "id"

[sources.generated]
kind = "datagen"
rate = 0
count = 5
keys = 10
seed = 7
partitions = 2
start_time = 1700000000000
fields.n = { gen = "sequence", prefix = "n-" }
fields.amount = { gen = "float", min = 0.5, max = 99.5, decimals = 2 }
fields.qty = { gen = "int", min = -5, max = 5 }
fields.kind = { gen = "choice", values = ["a", 1, true] }
fields.label = { gen = "text", len = 8 }
fields.user = { gen = "key_text", prefix = "u-" }
fields.at = { gen = "event_time" }
fields.k = { gen = "key" }
fields.fixed = { gen = "const", value = { x = 1 } }

[sources.orders]
kind = "kafka"
connection = "events"
topic = "orders"
start = { timestamp = "2024-03-15T00:00:00+08:00" }
format = "json"
event_time_field = "ts"
commit_interval = "5s"
startup_timeout = "30s"
resume_lookback = 100
properties = { "fetch.min.bytes" = "1" }

[sources.accounts]
kind = "sql"
connection = "db"
query = "SELECT id, updated_at FROM accounts"
key = ["id"]
event_time_column = "updated_at"
bounded = true
max_retry_time = "30s"

[sinks.out]
kind = "file"
path = "out.jsonl"
append = true

[sinks.debug]
kind = "memory"

[sinks.alerts]
kind = "kafka"
connection = "events"
topic = "alerts"
row_id_header = true
flush_timeout = "60s"

[sinks.table]
kind = "sql"
connection = "db"
table = "public.totals"
mode = "upsert"
primary_key = ["id"]
columns = { id = "bigint", total = "decimal(18,2)", note = "varchar(255)", at = "timestamp" }
create_table = true
batch_size = 500
flush_interval = "1s"
statement_timeout = "10s"

[dimensions.users]
kind = "memory"
path = "users.jsonl"
key_field = "id"

[dimensions.prices]
kind = "sql"
connection = "db"
table = "prices"
key = ["sku"]
cache = { max_entries = 1000, ttl = "1m" }

[dimensions.sessions]
kind = "redis"
connection = "cache"
key_prefix = "s:"
layout = "hash"
ttl = "1h"
writes = "snapshot"

[dead_letter]
kind = "file"
path = "dead.jsonl"

[batch]
max_records = 100
max_wait = "50ms"

[limits]
memory_mb = 64
cpu_per_batch = "2s"
state_mb = 128
output_mb = 16
timers = 1000

[watermark]
max_out_of_orderness = "5s"

[snapshot]
interval = "30s"
retain = 3
incremental = true
full_every = 10
"#;

fn every_kind() -> Table {
    EVERY_KIND.parse().expect("the base spec is TOML")
}

/// Every path to a value of the base spec (`["sources", "generated",
/// "rate"]`), plus a few new keys, where a hostile value may be put.
fn paths() -> Vec<Vec<String>> {
    fn walk(table: &Table, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (key, value) in table {
            prefix.push(key.clone());
            out.push(prefix.clone());
            if let Value::Table(inner) = value {
                walk(inner, prefix, out);
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(&every_kind(), &mut Vec::new(), &mut out);
    for new in [
        &["bogus"][..],
        &["sources", "new"],
        &["sources", "lines", "bogus"],
        &["limits", "bogus"],
        &["parameters", "p"],
    ] {
        out.push(new.iter().map(|s| s.to_string()).collect());
    }
    out
}

/// A TOML value a tenant might put anywhere: extreme integers, NaN and
/// infinite floats, hostile text (durations that overflow, injection,
/// unicode, long), dates, and nested arrays and tables.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        2 => prop::sample::select(&[i64::MIN, i64::MAX, -1, 0, 1, 2, 65_536, 1_000_000_000_000][..]).prop_map(Value::Integer),
        1 => any::<i64>().prop_map(Value::Integer),
        1 => prop::sample::select(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e308, -1e308, 0.5][..]).prop_map(Value::Float),
        1 => any::<f64>().prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Boolean),
        4 => hostile_text().prop_map(Value::String),
        1 => prop::sample::select(SPEC_WORDS).prop_map(|s| Value::String(s.to_owned())),
        1 => prop::sample::select(&["1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "9999-12-31T23:59:59.999999999-23:59"][..])
            .prop_map(|d| Value::Datetime(d.parse().unwrap())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (prop_oneof![hostile_text(), prop::sample::select(SPEC_WORDS).prop_map(str::to_owned)], inner),
                0..6
            )
            .prop_map(|entries| Value::Table(entries.into_iter().collect())),
        ]
    })
}

/// Words the spec's enums and connectors know, so mutations often form
/// something the checks (not only the parser) have to judge.
const SPEC_WORDS: &[&str] = &[
    "file",
    "datagen",
    "kafka",
    "sql",
    "memory",
    "redis",
    "ftp",
    "json",
    "raw",
    "earliest",
    "latest",
    "upsert",
    "append",
    "hash",
    "snapshot",
    "immediate",
    "int",
    "float",
    "choice",
    "text",
    "const",
    "sequence",
    "key",
    "event_time",
    "key_text",
    "gen",
    "kind",
    "min",
    "max",
    "values",
    "len",
    "decimal(99999,2)",
    "decimal(10,20)",
    "varchar(-1)",
    "varchar(4294967296)",
    "numeric(,)",
    "bigint",
    "SELECT 1",
    "WITH x AS (SELECT 1) SELECT 1",
    "DELETE FROM t",
    "select 1; drop table t",
    "1ns",
    "0ns",
    "1 year",
    "-1s",
];

const DATAGEN_SETTINGS: &[&str] = &["rate", "count", "keys", "seed", "partitions", "start_time"];

/// Numbers at and near the edges of every integer and float type TOML and
/// the spec's fields have.
fn extreme_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => prop::sample::select(&[i64::MIN, i64::MIN + 1, -1, 0, 1, 2, i32::MAX as i64, u32::MAX as i64, i64::MAX - 1, i64::MAX][..])
            .prop_map(Value::Integer),
        1 => any::<i64>().prop_map(Value::Integer),
        1 => prop::sample::select(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, f64::MIN_POSITIVE, -0.0, 1e300][..])
            .prop_map(Value::Float),
        1 => any::<f64>().prop_map(Value::Float),
    ]
}

/// Integers at and near the edges of the spec's integer fields.
fn extreme_integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(&[i64::MIN, -1, 0, 1, 2, 1000, i32::MAX as i64, i32::MAX as i64 + 1, u32::MAX as i64, i64::MAX - 1, i64::MAX][..])
            .prop_map(Value::Integer),
        1 => any::<i64>().prop_map(Value::Integer),
    ]
}

/// One datagen field of any generator with the settings that generator
/// takes (so most pass the spec's checks and get generated), at extremes;
/// sometimes one setting too many.
fn datagen_field() -> impl Strategy<Value = Value> {
    let settings = |generator: &'static str, keys: &'static [&'static str]| {
        (prop::collection::vec(extreme_number(), keys.len()), prop::option::of(extreme_number())).prop_map(
            move |(numbers, extra)| {
                let mut field = Table::new();
                field.insert("gen".into(), generator.into());
                field.extend(keys.iter().map(|k| k.to_string()).zip(numbers));
                if let Some(extra) = extra.filter(|_| keys.is_empty()) {
                    field.insert("min".into(), extra);
                }
                field
            },
        )
    };
    let small_len = (0..64i64).prop_map(Value::Integer);
    prop_oneof![
        settings("int", &["min", "max"]),
        settings("float", &["min", "max"]),
        settings("float", &["min", "max", "decimals"]),
        settings("key", &[]),
        settings("event_time", &[]),
        (settings("text", &[]), prop_oneof![small_len, extreme_number()]).prop_map(|(mut f, len)| {
            f.remove("min");
            f.insert("len".into(), len);
            f
        }),
        (prop::sample::select(&["sequence", "key_text"][..]), hostile_text()).prop_map(|(generator, prefix)| {
            Table::from_iter([("gen".to_owned(), Value::from(generator)), ("prefix".to_owned(), prefix.into())])
        }),
        prop::collection::vec(hostile_value(), 0..4).prop_map(|values| {
            Table::from_iter([("gen".to_owned(), Value::from("choice")), ("values".to_owned(), Value::Array(values))])
        }),
        hostile_value().prop_map(|value| Table::from_iter([
            ("gen".to_owned(), Value::from("const")),
            ("value".to_owned(), value)
        ])),
    ]
    .prop_map(Value::Table)
}

/// Puts `value` at `path` in `table`, making tables on the way.
fn set(table: &mut Table, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("a path has a key");
    let mut at = table;
    for key in parents {
        let entry = at.entry(key.clone()).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        at = entry.as_table_mut().unwrap();
    }
    at.insert(last.clone(), value);
}

/// Parses `text` as a spec; when it is accepted, holds it to the default
/// ceilings and runs the datagen sources it describes for a few records,
/// all of which must end in a value or an error, never a panic.
fn parse_and_use(text: &str) -> Result<(), TestCaseError> {
    match JobSpec::parse(text, Path::new("/jobs")) {
        Ok(spec) => {
            let _ = Ceilings::default().check(&spec);
            run_datagen_sources(&spec);
        }
        Err(SpecError::Parse { message, .. }) => prop_assert!(!message.is_empty()),
        Err(SpecError::Invalid(message)) => prop_assert!(!message.is_empty()),
        Err(e @ SpecError::Read { .. }) => prop_assert!(false, "parse never reads files: {}", e),
    }
    Ok(())
}

/// The first few records of each datagen source of an accepted spec.
fn run_datagen_sources(spec: &JobSpec) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    for (index, (name, source)) in spec.sources.iter().enumerate() {
        let SourceSpec::Datagen(config) = source else { continue };
        // The text generator's length is the ceiling's to bound (checked
        // above by the console); past it, a huge `len` is a huge record.
        let too_big = config.fields.values().any(|f| match f {
            crate::connectors::datagen::FieldGen::Text { len } => *len > Ceilings::default().datagen_field_size,
            _ => false,
        });
        if too_big {
            continue;
        }
        let Ok(mut source) = DatagenSource::new(name, index as u32, config) else { continue };
        let mut batch = RecordBatch::default();
        let _ = runtime.block_on(source.poll(&mut batch, 4, Duration::ZERO));
        for record in batch.records() {
            let value = batch.bytes(record.value);
            assert!(serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok(), "datagen writes JSON");
        }
    }
}

proptest! {
    #![proptest_config(fuzz_inputs::config())]

    /// Any text at all.
    #[test]
    fn fuzz_spec_any_text(text in prop_oneof![any::<String>(), hostile_text()]) {
        parse_and_use(&text)?;
    }

    /// The full spec with one to four values replaced by hostile ones (or
    /// new keys added), anywhere in the document.
    #[test]
    fn fuzz_spec_hostile_values(
        changes in prop::collection::vec((prop::sample::select(paths()), hostile_value()), 1..5),
    ) {
        let mut table = every_kind();
        for (path, value) in changes {
            set(&mut table, &path, value);
        }
        parse_and_use(&toml::to_string(&table).unwrap())?;
    }

    /// The full spec with text spliced in or cut off at any byte: broken
    /// quoting, half a table header, stray brackets.
    #[test]
    fn fuzz_spec_broken_text(
        at in any::<prop::sample::Index>(),
        cut in any::<bool>(),
        junk in prop_oneof![hostile_text(), prop::sample::select(&["[", "]", "{", "\"", "'''", "=", "\n[sources.x]\n", "\n[[sources]]\n", ".", "\\"][..]).prop_map(str::to_owned)],
    ) {
        let mut text = EVERY_KIND.to_owned();
        let mut at = at.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        if cut {
            text.truncate(at);
        }
        text.insert_str(at, &junk);
        parse_and_use(&text)?;
    }

    /// Nesting as deep as a tenant likes, in every form TOML has: arrays,
    /// inline tables, dotted keys and table headers, where the spec
    /// expects a map, a connector or a plain value.
    #[test]
    fn fuzz_spec_deep_nesting(depth in 1..DEEP, form in 0..5u8, place in prop::sample::select(&["parameters.p", "sources.s", "sources.s.fields.f", "limits.memory_mb", "bogus"][..])) {
        parse_and_use(&deep_spec(place, depth, form))?;
    }

    /// A datagen source is wholly described by its spec, so a tenant picks
    /// every number it computes with: rates, counts, partitions, the start
    /// time and each field's bounds, all extreme here.
    #[test]
    fn fuzz_spec_datagen_numbers(
        settings in prop::collection::vec((prop::sample::select(DATAGEN_SETTINGS), extreme_integer()), 0..6),
        fields in prop::collection::vec(datagen_field(), 1..4),
    ) {
        let mut source = Table::new();
        source.insert("kind".into(), "datagen".into());
        source.insert("count".into(), Value::Integer(6));
        for (key, value) in settings {
            source.insert(key.into(), value);
        }
        source.insert("fields".into(), Value::Table(fields.into_iter().enumerate().map(|(i, f)| (format!("f{i}"), f)).collect()));
        let mut table = every_kind();
        set(&mut table, &["sources".into(), "generated".into()], Value::Table(source));
        parse_and_use(&toml::to_string(&table).unwrap())?;
    }

    /// Round trip: a valid spec with generated names, limits and durations
    /// parses to exactly those values, and what it serializes to parses
    /// to the same spec again.
    #[test]
    fn fuzz_spec_round_trip(
        name in "[A-Za-z0-9_-]{1,40}",
        parameters in prop::collection::vec((hostile_text(), hostile_text()), 0..4),
        max_records in 1..=1_000_000usize,
        wait_ms in 0..=3_600_000u64,
        memory_mb in 2..=u32::MAX as u64,
        cpu_ms in 1..=86_400_000u64,
        retain in 1..=1000usize,
    ) {
        let mut table = every_kind();
        table.insert("name".into(), name.clone().into());
        let params: Table = parameters.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        table.insert("parameters".into(), params.clone().into());
        set(&mut table, &["batch".into(), "max_records".into()], Value::Integer(max_records as i64));
        set(&mut table, &["batch".into(), "max_wait".into()], format!("{wait_ms}ms").into());
        set(&mut table, &["limits".into(), "memory_mb".into()], Value::Integer(memory_mb as i64));
        set(&mut table, &["limits".into(), "cpu_per_batch".into()], format!("{cpu_ms}ms").into());
        set(&mut table, &["snapshot".into(), "retain".into()], Value::Integer(retain as i64));

        let spec = JobSpec::parse(&toml::to_string(&table).unwrap(), Path::new("/jobs")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&spec.name, &name);
        let want: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
        let got: Vec<(String, String)> = spec.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(spec.batch.max_records, max_records);
        prop_assert_eq!(spec.batch.max_wait, Duration::from_millis(wait_ms));
        prop_assert_eq!(spec.limits.memory_mb, memory_mb);
        prop_assert_eq!(spec.limits.cpu_per_batch, Duration::from_millis(cpu_ms));
        prop_assert_eq!(spec.snapshot.retain, retain);
        prop_assert_eq!(spec.source_names(), vec!["lines", "generated", "orders", "accounts"]);

        let again = JobSpec::parse(&toml::to_string(&spec).unwrap(), Path::new("/jobs")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(toml::to_string(&again).unwrap(), toml::to_string(&spec).unwrap());
    }
}

/// The base spec with a value nested `depth` deep at `place` (a dotted
/// path), in one of five TOML forms. The base's own table of that name,
/// if any, is left out, so the document is otherwise well-formed.
fn deep_spec(place: &str, depth: usize, form: u8) -> String {
    let (table, key) = place.rsplit_once('.').unwrap_or(("", place));
    let nested = match form {
        0 => format!("{key} = {}1{}\n", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{key} = {}1{}\n", "{ a = ".repeat(depth), " }".repeat(depth)),
        2 => format!("{key}{} = 1\n", ".a".repeat(depth)),
        3 => {
            let parent = if table.is_empty() { String::new() } else { format!("{table}.") };
            format!("[{parent}{key}{}]\nb = 1\n", ".a".repeat(depth))
        }
        // Unclosed.
        _ => format!("{key} = {}\n", "[".repeat(depth)),
    };
    // The base's sections are separated by blank lines.
    let own_header = format!("[{table}]\n");
    let base: Vec<&str> =
        EVERY_KIND.split("\n\n").filter(|section| !section.trim_start().starts_with(&own_header)).collect();
    let base = base.join("\n\n");
    match (form, table) {
        // Top-level keys go before the first table header.
        (0..=2 | 4, "") => format!("{nested}{base}"),
        (0..=2 | 4, _) => format!("{base}\n[{table}]\n{nested}"),
        _ => format!("{base}\n{nested}"),
    }
}

#[test]
fn the_base_spec_is_valid_and_runs() {
    let spec = JobSpec::parse(EVERY_KIND, Path::new("/jobs")).unwrap();
    Ceilings::default().check(&spec).unwrap();
    run_datagen_sources(&spec);
    for place in ["parameters.p", "sources.s", "sources.s.fields.f", "limits.memory_mb", "bogus"] {
        for form in 0..5 {
            let err = JobSpec::parse(&deep_spec(place, 3, form), Path::new("/jobs")).unwrap_err();
            assert!(!err.to_string().is_empty());
        }
    }
}

/// A spec with one datagen source `source` (its lines), run for its first
/// records.
fn run_datagen(source: &str) -> Result<(), TestCaseError> {
    parse_and_use(&format!(
        "name = \"g\"\ncomponent = \"g.wasm\"\n[sources.g]\nkind = \"datagen\"\ncount = 3\n{source}\n"
    ))
}

/// The event time of record `i` is `start_time + i * spacing`: with a
/// start time near `i64::MAX` that overflowed, and the datagen source
/// panicked on its second record before the fix (now it saturates).
#[test]
fn datagen_with_a_start_time_at_the_end_of_time_generates() {
    run_datagen("start_time = 9223372036854775807\nfields.at = { gen = \"event_time\" }").unwrap();
    run_datagen("rate = 1\nstart_time = 9223372036854775000\nfields.k = { gen = \"key\" }").unwrap();
}

/// Float bounds that are NaN, infinite or further apart than the largest
/// float passed `min <= max` (or were not caught by it, for NaN) and
/// panicked the sampler on the first record before the fix; now the
/// source refuses them with a message.
#[test]
fn datagen_float_bounds_must_be_finite() {
    for bounds in [
        "min = nan, max = nan",
        "min = -inf, max = inf",
        "min = 0.0, max = inf",
        "min = -1.7976931348623157e308, max = 1.7976931348623157e308",
    ] {
        run_datagen(&format!("fields.x = {{ gen = \"float\", {bounds} }}")).unwrap();
        let spec = JobSpec::parse(
            &format!("name = \"g\"\ncomponent = \"g.wasm\"\n[sources.g]\nkind = \"datagen\"\nfields.x = {{ gen = \"float\", {bounds} }}\n"),
            Path::new("/jobs"),
        )
        .unwrap();
        let SourceSpec::Datagen(config) = &spec.sources["g"] else { panic!("a datagen source") };
        let err = DatagenSource::new("g", 0, config).err().expect("refused");
        assert!(err.to_string().contains("must be finite"), "{bounds}: {err}");
    }
}
