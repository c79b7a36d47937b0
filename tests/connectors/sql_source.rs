//! The bounded SQL source against PostgreSQL, MariaDB and SQLite: rows in
//! key order as JSON, keys, event times, positions and resuming from a
//! snapshot's position, and the configuration errors. Each test uses its
//! own table and drops it.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_runtime::connectors::registry::{BuildContext, build_source};
use sluice_runtime::connectors::{ConnectorError, Source, SourceStatus};
use sluice_runtime::job::JobSpec;
use sluice_runtime::job::batch::RecordBatch;
use sluice_runtime::snapshot::Snapshot;

use crate::sql::{Backend, Db};

fn spec(source: &str) -> JobSpec {
    let text =
        format!("name = \"sql_source_test\"\ncomponent = \"unused.wasm\"\n[sources.rows]\nkind = \"sql\"\n{source}");
    JobSpec::parse(&text, Path::new(".")).expect("spec")
}

async fn source(db: &Db, options: &str, restore: Option<&Snapshot>) -> Result<Box<dyn Source>, ConnectorError> {
    let spec = spec(&format!("connection = \"db\"\n{options}"));
    let connections = db.connections();
    let cx = BuildContext { restore, ..BuildContext::new(&spec, &connections) };
    build_source(cx, "rows", 0, &spec.sources["rows"]).await
}

/// A record read back: (offset, key, value as text, event time).
type Read = (i64, String, String, Option<i64>);

/// Polls `max` records at a time until the source finishes.
async fn read_all(source: &mut dyn Source, max: usize) -> Vec<Read> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let mut batch = RecordBatch::default();
        let status = source.poll(&mut batch, max, Duration::from_secs(5)).await.expect("poll");
        assert!(batch.len() <= max);
        out.extend(records(&batch));
        if status == SourceStatus::Finished {
            return out;
        }
    }
    panic!("the source did not finish");
}

fn records(batch: &RecordBatch) -> Vec<Read> {
    batch
        .records()
        .iter()
        .map(|r| {
            let key = String::from_utf8(batch.bytes(r.key.expect("a key")).to_vec()).unwrap();
            let value = String::from_utf8(batch.bytes(r.value).to_vec()).unwrap();
            assert_eq!(r.partition, 0);
            (r.offset, key, value, r.event_time)
        })
        .collect()
}

fn snapshot_at(next_offset: i64) -> Snapshot {
    sluice_tests::snapshot_at("sql_source_test", &[("rows", 0, next_offset)])
}

/// 2024-03-15 00:00:00 UTC, and the rows' `updated` times after it.
const T: i64 = 1_710_460_800_000;

/// Five rows inserted out of key order, with a composite key (one part
/// holding the `|` the SDK escapes), an exact decimal, a boolean, text,
/// JSON, a NULL and a timestamp; read in key order, in polls of two, then
/// again from a snapshot's position.
async fn rows_in_key_order(backend: Backend) {
    let db = Db::new(backend, "src_rows").await;
    let t = &db.table;
    let (amount, json_type, updated) = match backend {
        Backend::Postgres => ("NUMERIC(20,2)", "JSONB", "TIMESTAMPTZ"),
        Backend::MariaDb => ("DECIMAL(20,2)", "JSON", "DATETIME(3)"),
        // TEXT affinity keeps every digit; SQLite has no timestamp type:
        // epoch milliseconds in an integer.
        Backend::Sqlite => ("DECIMAL TEXT", "JSON", "BIGINT"),
    };
    db.exec(&format!(
        "CREATE TABLE {t} (region VARCHAR(16) NOT NULL, id BIGINT NOT NULL, amount {amount}, paid BOOLEAN, \
         note VARCHAR(64), doc {json_type}, updated {updated}, PRIMARY KEY (region, id))"
    ))
    .await;
    let time = |i: i64| match backend {
        Backend::Postgres => format!("'2024-03-15 00:00:0{i}.250+00'"),
        Backend::MariaDb => format!("'2024-03-15 00:00:0{i}.250'"),
        Backend::Sqlite => (T + i * 1000 + 250).to_string(),
    };
    let rows = [
        ("cn", 2, "'0.10'", "FALSE", "'还款中'", "'{\"k\": [1, 2]}'", time(2)),
        ("eu|west", 1, "'12345678901234.56'", "TRUE", "NULL", "'{}'", time(4)),
        ("cn", 10, "'7'", "TRUE", "'已结清'", "'[]'", time(3)),
        ("cn", 1, "'-3.50'", "NULL", "'逾期'", "NULL", time(1)),
        ("us", 1, "NULL", "FALSE", "'x'", "'{\"a\": null}'", time(5)),
    ];
    for (region, id, amount, paid, note, doc, updated) in rows {
        db.exec(&format!("INSERT INTO {t} VALUES ('{region}', {id}, {amount}, {paid}, {note}, {doc}, {updated})"))
            .await;
    }
    let options = format!(
        "query = \"SELECT region, id, amount, paid, note, doc, updated FROM {t} WHERE id < 100\"\n\
         key = [\"region\", \"id\"]\nevent_time_column = \"updated\"\nbounded = true"
    );
    let mut src = source(&db, &options, None).await.expect("sql source");
    assert_eq!(src.positions(), Some(vec![(0, 0)]));
    let read = read_all(src.as_mut(), 2).await;
    assert_eq!(src.positions(), Some(vec![(0, 5)]));

    let keys: Vec<(i64, &str)> = read.iter().map(|(offset, key, _, _)| (*offset, key.as_str())).collect();
    assert_eq!(keys, [(0, "cn|1"), (1, "cn|2"), (2, "cn|10"), (3, r"eu\|west|1"), (4, "us|1")], "key order");
    let times: Vec<Option<i64>> = read.iter().map(|r| r.3).collect();
    assert_eq!(times, [1, 2, 3, 4, 5].map(|i| Some(T + i * 1000 + 250)));

    // JSON columns nest where the driver says they are JSON; MariaDB's
    // JSON is LONGTEXT and arrives as text.
    let doc = |v: &Value| match &v["doc"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    let values: Vec<Value> = read.iter().map(|r| serde_json::from_str(&r.2).expect("a JSON value")).collect();
    assert_eq!(values[3]["region"], "eu|west");
    // A number where the driver reports a decimal type (SQLite's TEXT
    // affinity makes it text), always with every digit.
    assert!(read[3].2.contains("12345678901234.56"), "the decimal's exact text: {}", read[3].2);
    assert!(read[0].2.contains("-3.50"), "{}", read[0].2);
    assert_eq!(values[0]["id"], json!(1));
    assert_eq!((&values[0]["note"], &values[0]["paid"]), (&json!("逾期"), &Value::Null));
    assert_eq!(values[1]["paid"], json!(false));
    assert_eq!(values[2]["paid"], json!(true));
    assert_eq!(doc(&values[1]), json!({"k": [1, 2]}));
    assert_eq!(doc(&values[0]), Value::Null);
    assert_eq!(values[4]["amount"], Value::Null);
    if backend == Backend::Postgres {
        assert_eq!(values[1]["doc"], json!({"k": [1, 2]}), "jsonb nests");
        assert_eq!(values[1]["updated"], json!("2024-03-15T00:00:02.250Z"));
    }

    // A restore at position 3 reads the rest, with the same offsets.
    let snapshot = snapshot_at(3);
    let mut resumed = source(&db, &options, Some(&snapshot)).await.expect("resumed source");
    assert_eq!(resumed.positions(), Some(vec![(0, 3)]));
    let rest = read_all(resumed.as_mut(), 10).await;
    assert_eq!(rest, read[3..].to_vec());
    db.finish().await;
}

#[tokio::test]
async fn postgres_rows_in_key_order() {
    rows_in_key_order(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_rows_in_key_order() {
    rows_in_key_order(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_rows_in_key_order() {
    rows_in_key_order(Backend::Sqlite).await;
}

/// More rows than the read-ahead, an empty result, and a poll that waits
/// no longer than asked.
#[tokio::test]
async fn postgres_many_rows_and_none() {
    let db = Db::new(Backend::Postgres, "src_many").await;
    let t = &db.table;
    db.exec(&format!("CREATE TABLE {t} AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 5000) g")).await;
    let mut src = source(&db, &format!("query = \"SELECT id, h FROM {t}\"\nkey = [\"id\"]\nbounded = true"), None)
        .await
        .expect("sql source");
    let read = read_all(src.as_mut(), 700).await;
    assert_eq!(read.len(), 5000);
    assert!(read.iter().enumerate().all(|(i, r)| r.0 == i as i64 && r.1 == (i + 1).to_string()));

    let mut empty =
        source(&db, &format!("query = \"SELECT id FROM {t} WHERE id < 0\"\nkey = [\"id\"]\nbounded = true"), None)
            .await
            .expect("sql source");
    assert!(read_all(empty.as_mut(), 10).await.is_empty());
    db.finish().await;
}

fn error_text(result: Result<Box<dyn Source>, ConnectorError>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn postgres_configuration_errors() {
    let db = Db::new(Backend::Postgres, "src_errors").await;
    let t = &db.table;
    db.exec(&format!("CREATE TABLE {t} (id BIGINT PRIMARY KEY, v TEXT)")).await;
    let query = format!("query = \"SELECT id, v FROM {t}\"");

    let err = error_text(source(&db, &format!("{query}\nkey = [\"id\"]"), None).await);
    assert!(err.contains("bounded = true"), "{err}");
    let err = error_text(source(&db, &format!("{query}\nkey = [\"nope\"]\nbounded = true"), None).await);
    assert!(err.contains("no key column `nope`") && err.contains("id, v"), "{err}");
    let options = format!("{query}\nkey = [\"id\"]\nevent_time_column = \"at\"\nbounded = true");
    let err = error_text(source(&db, &options, None).await);
    assert!(err.contains("no event time column `at`"), "{err}");
    let options = format!("query = \"SELECT id FROM {t}_missing\"\nkey = [\"id\"]\nbounded = true");
    let err = error_text(source(&db, &options, None).await);
    assert!(err.contains("preparing the query failed") && err.contains("does not exist"), "{err}");
    // What the spec alone shows is refused when it is read.
    let text = format!(
        "name = \"x\"\ncomponent = \"x.wasm\"\n[sources.rows]\nkind = \"sql\"\nconnection = \"db\"\n{query}\n\
         key = []\nbounded = true"
    );
    let err = JobSpec::parse(&text, Path::new(".")).expect_err("an empty key").to_string();
    assert!(err.contains("source `rows`: `key` must name at least one column"), "{err}");

    let parse = JobSpec::parse(
        "name = \"x\"\ncomponent = \"x.wasm\"\n[sources.rows]\nkind = \"sql\"\nconnection = \"db\"\nquery = \"SELECT 1\"\n\
         key = [\"a\"]\nbounded = true\nbatch_size = 3",
        Path::new("."),
    );
    let err = parse.expect_err("an unknown field").to_string();
    assert!(err.contains("unknown field `batch_size`"), "{err}");
    db.finish().await;
}
