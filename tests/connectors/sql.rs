//! The SQL sink and dimension store against PostgreSQL, MariaDB and SQLite.
//! Each test uses its own table (test name and process id) and drops it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::registry::{BuildContext, build_dimension, build_sink};
use sluice_runtime::connectors::{ConnectorError, DimensionStore, RowId, RowOp, RowOrigin, Sink, SinkRow};
use sluice_runtime::job::JobSpec;
use sluice_tests::proxy::Proxy;
use sluice_tests::services::{mysql_url, postgres_url};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Backend {
    Postgres,
    MariaDb,
    Sqlite,
}

/// A database to test against and a table name of the test's own (the
/// SQL sink, dimension and source tests share it).
pub(crate) struct Db {
    backend: Backend,
    pub(crate) url: String,
    pub(crate) table: String,
    pool: AnyPool,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    pub(crate) async fn new(backend: Backend, test: &str) -> Db {
        sqlx::any::install_default_drivers();
        let (url, dir) = match backend {
            Backend::Postgres => (postgres_url(), None),
            Backend::MariaDb => (mysql_url(), None),
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                (format!("sqlite:{}", dir.path().join("test.db").display()), Some(dir))
            }
        };
        // The sink creates the SQLite file; this pool must too, when first.
        let any_url = if backend == Backend::Sqlite { format!("{url}?mode=rwc") } else { url.clone() };
        let pool = AnyPoolOptions::new().max_connections(1).connect(&any_url).await.expect("test connection");
        let db = Db { backend, url, table: format!("sluice_{test}_{}", std::process::id()), pool, _dir: dir };
        db.exec(&format!("DROP TABLE IF EXISTS {}", db.table)).await;
        db
    }

    pub(crate) fn connections(&self) -> Connections {
        connections(&self.url)
    }

    pub(crate) async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(&self.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows of `sql`, whose columns must all be text (see [`Db::text`]).
    pub(crate) async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        let rows = sqlx::query(sql).fetch_all(&self.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i)).collect()).collect()
    }

    pub(crate) async fn count(&self) -> usize {
        let rows = self.rows(&format!("SELECT {} FROM {}", self.text("COUNT(*)"), self.table)).await;
        rows[0][0].as_deref().unwrap().parse().unwrap()
    }

    /// `expr` as text in this database's SQL.
    pub(crate) fn text(&self, expr: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("({expr})::text"),
            // CHAR(n), not CHAR: MariaDB types the latter LONGTEXT, which
            // sqlx's Any driver reads as a BLOB.
            Backend::MariaDb => format!("CAST({expr} AS CHAR(1000))"),
            Backend::Sqlite => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// A timestamp column as epoch milliseconds, as text.
    fn millis(&self, column: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("(extract(epoch from {column}) * 1000)::bigint::text"),
            Backend::MariaDb => format!("CAST(CAST(UNIX_TIMESTAMP({column}) * 1000 AS SIGNED) AS CHAR)"),
            Backend::Sqlite => {
                format!("CAST(CAST(round((julianday({column}) - 2440587.5) * 86400000) AS INTEGER) AS TEXT)")
            }
        }
    }

    pub(crate) async fn finish(self) {
        self.exec(&format!("DROP TABLE IF EXISTS {}", self.table)).await;
        self.pool.close().await;
    }
}

pub(crate) fn connections(url: &str) -> Connections {
    let mut c = Connections::default();
    c.apply_override(&format!("db={url}")).expect("connection override");
    c
}

/// A spec with one source and the given sink / dimension tables.
pub(crate) fn spec(connectors: &str) -> JobSpec {
    let source = "[sources.orders]\nkind = \"file\"\npath = \"unused\"";
    let text = format!("name = \"sql_test\"\ncomponent = \"unused.wasm\"\n{source}\n{connectors}");
    JobSpec::parse(&text, Path::new(".")).expect("spec")
}

/// Builds sink `out` of table `table` on connection `db` with `options`.
pub(crate) async fn sink_at(
    connections: &Connections,
    table: &str,
    options: &str,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let spec = spec(&format!("[sinks.out]\nkind = \"sql\"\nconnection = \"db\"\ntable = \"{table}\"\n{options}"));
    build_sink(BuildContext::new(&spec, connections), "out", &spec.sinks["out"]).await
}

pub(crate) async fn sink(db: &Db, options: &str) -> Result<Box<dyn Sink>, ConnectorError> {
    sink_at(&db.connections(), &db.table, options).await
}

async fn dimension(db: &Db, table: &str, key: &str) -> Result<std::sync::Arc<dyn DimensionStore>, ConnectorError> {
    let spec = spec(&format!(
        "[dimensions.users]\nkind = \"sql\"\nconnection = \"db\"\ntable = \"{table}\"\nkey = {key}\n\
         cache = {{ max_entries = 0 }}"
    ));
    build_dimension(BuildContext::new(&spec, &db.connections()), "users", &spec.dimensions["users"]).await
}

/// A row from source `orders`, partition 0, at `offset`.
fn row(op: RowOp, offset: i64, value: &str) -> SinkRow {
    SinkRow {
        op,
        key: None,
        value: value.as_bytes().to_vec(),
        id: RowId { origin: RowOrigin::Record { source: 0, partition: 0, offset }, emit_index: 0 },
    }
}

pub(crate) fn upsert(offset: i64, value: Value) -> SinkRow {
    row(RowOp::Upsert, offset, &value.to_string())
}

fn upsert_text(offset: i64, value: &str) -> SinkRow {
    row(RowOp::Upsert, offset, value)
}

fn delete(offset: i64, value: Value) -> SinkRow {
    row(RowOp::Delete, offset, &value.to_string())
}

pub(crate) fn error_text<T>(result: Result<T, ConnectorError>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// `12.5000000000` -> `12.5`: MariaDB pads decimals to their scale.
fn trim_decimal(text: &str) -> String {
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text.to_owned() }
}

fn truthy(text: &str) -> bool {
    matches!(text, "true" | "t" | "1")
}

const ORDERS_COLUMNS: &str = r#"
    columns.id = "bigint"
    columns.name = "text"
    columns.amount = "decimal"
    columns.active = "boolean"
    columns.at = "timestamp"
    columns.tags = "json"
"#;

/// Upserts with an update and a delete in one batch, a delete in the next,
/// then the same rows again (a replay): the table ends the same.
async fn upsert_delete_and_replay(backend: Backend) {
    let db = Db::new(backend, "upsert_replay").await;
    let options = format!("primary_key = [\"id\"]\ncreate_table = true\n{ORDERS_COLUMNS}");
    let mut sink = sink(&db, &options).await.expect("sql sink");
    let first = vec![
        upsert(0, json!({"id": 1, "name": "a", "amount": "1", "active": false, "at": 0, "tags": []})),
        // A JSON number with more digits than an f64 holds: its text is kept.
        upsert_text(
            1,
            r#"{"id": 2, "name": "b", "amount": 98765432109876543.21, "active": false,
                "at": "2023-11-14T23:13:20+01:00", "tags": null}"#,
        ),
        upsert(2, json!({"id": 3, "name": "c"})),
        upsert(3, json!({"id": 4})),
        upsert(
            4,
            json!({"id": 1, "name": "a2", "amount": "12345678901234.56", "active": true,
            "at": 1700000000123_i64, "tags": {"k": [1, 2]}}),
        ),
    ];
    let second = vec![delete(5, json!({"id": 3, "name": "c"}))];
    for _replay in 0..2 {
        sink.write(&first).await.expect("write");
        sink.flush().await.expect("flush");
        sink.write(&second).await.expect("write delete");
        sink.flush().await.expect("flush");
    }
    let columns =
        [db.text("id"), db.text("name"), db.text("amount"), db.text("active"), db.millis("at"), db.text("tags")];
    let rows = db.rows(&format!("SELECT {} FROM {1} ORDER BY {1}.id", columns.join(", "), db.table)).await;
    let got: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r[0], "name": r[1],
                "amount": r[2].as_deref().map(trim_decimal),
                "active": r[3].as_deref().map(truthy),
                "at": r[4],
                "tags": r[5].as_deref().map(|t| serde_json::from_str::<Value>(t).unwrap()),
            })
        })
        .collect();
    // 2023-11-14T23:13:20+01:00 is 1700000000000 ms after the epoch.
    let expected = vec![
        json!({"id": "1", "name": "a2", "amount": "12345678901234.56", "active": true, "at": "1700000000123",
            "tags": {"k": [1, 2]}}),
        json!({"id": "2", "name": "b", "amount": "98765432109876543.21", "active": false, "at": "1700000000000",
            "tags": null}),
        json!({"id": "4", "name": null, "amount": null, "active": null, "at": null, "tags": null}),
    ];
    assert_eq!(got, expected, "{backend:?}");
    db.finish().await;
}

#[tokio::test]
async fn postgres_upsert_delete_and_replay() {
    upsert_delete_and_replay(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_upsert_delete_and_replay() {
    upsert_delete_and_replay(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_upsert_delete_and_replay() {
    upsert_delete_and_replay(Backend::Sqlite).await;
}

/// Append mode keys rows by their id: a replay inserts nothing twice, and
/// a delete is refused.
async fn append_replay_inserts_each_row_once(backend: Backend) {
    let db = Db::new(backend, "append_replay").await;
    let options =
        "mode = \"append\"\ncreate_table = true\nbatch_size = 3\ncolumns = { n = \"bigint\", label = \"text\" }";
    let mut sink = sink(&db, options).await.expect("sql sink");
    let rows = |range: std::ops::Range<i64>| -> Vec<SinkRow> {
        range.map(|i| upsert(i, json!({"n": i, "label": format!("row {i}")}))).collect()
    };
    sink.write(&rows(0..5)).await.expect("write");
    sink.flush().await.expect("flush");
    // The replay starts before the last write and goes on past it.
    sink.write(&rows(2..8)).await.expect("write replay");
    sink.flush().await.expect("flush");
    let got = db
        .rows(&format!("SELECT {}, {} FROM {2} ORDER BY {2}.n", db.text("n"), db.text("sluice_row_id"), db.table))
        .await;
    let expected: Vec<Vec<Option<String>>> =
        (0..8).map(|i| vec![Some(i.to_string()), Some(format!("orders/0/{i}/0"))]).collect();
    assert_eq!(got, expected, "{backend:?}");

    let err = error_text(sink.write(&[delete(9, json!({"n": 1}))]).await);
    assert!(err.contains("append-only") && err.contains(&db.table), "{err}");
    db.finish().await;
}

#[tokio::test]
async fn postgres_append_replay_inserts_each_row_once() {
    append_replay_inserts_each_row_once(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_append_replay_inserts_each_row_once() {
    append_replay_inserts_each_row_once(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_append_replay_inserts_each_row_once() {
    append_replay_inserts_each_row_once(Backend::Sqlite).await;
}

/// The tasks of one job (partition groups, on several workers) create
/// their shared sink table at the same moment: every one connects.
async fn sinks_creating_one_table_at_once_all_connect(backend: Backend) {
    let db = Db::new(backend, "create_race").await;
    let options = "primary_key = [\"id\"]\ncreate_table = true\ncolumns = { id = \"bigint\", label = \"text\" }";
    let connections = db.connections();
    let attempts = (0..8).map(|_| sink_at(&connections, &db.table, options));
    for (i, built) in futures::future::join_all(attempts).await.into_iter().enumerate() {
        if let Err(e) = built {
            panic!("{backend:?}: sink {i} of 8 failed: {e}");
        }
    }
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sinks_creating_one_table_at_once_all_connect() {
    sinks_creating_one_table_at_once_all_connect(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_sinks_creating_one_table_at_once_all_connect() {
    sinks_creating_one_table_at_once_all_connect(Backend::MariaDb).await;
}

/// A spec that does not match the table fails at connect, naming the
/// table and the column.
async fn mismatches_fail_at_connect(backend: Backend) {
    let db = Db::new(backend, "mismatch").await;
    let t = db.table.clone();
    let err = error_text(sink(&db, "primary_key = [\"id\"]").await);
    assert!(err.contains(&t) && err.contains("does not exist") && err.contains("create_table"), "{err}");

    db.exec(&format!("CREATE TABLE {t} (id BIGINT PRIMARY KEY, amount TEXT, note TEXT)")).await;
    let cases = [
        ("primary_key = [\"id\"]\ncolumns = { id = \"bigint\", amount = \"decimal\" }", "amount", "decimal"),
        ("primary_key = [\"id\"]\ncolumns = { id = \"bigint\", missing = \"text\" }", "missing", "no column"),
        ("primary_key = [\"note\"]", "note", "unique"),
        ("primary_key = [\"nope\"]", "nope", "no column"),
        ("mode = \"append\"", "sluice_row_id", "no column"),
    ];
    for (options, column, words) in cases {
        let err = error_text(sink(&db, options).await);
        assert!(err.contains(&t) && err.contains(column) && err.contains(words), "{backend:?} {options:?}: {err}");
    }
    // What the spec alone shows is refused when it is read.
    let text = format!(
        "name = \"x\"\ncomponent = \"x.wasm\"\n[sources.orders]\nkind = \"file\"\npath = \"unused\"\n\
         [sinks.out]\nkind = \"sql\"\nconnection = \"db\"\ntable = \"{t}\"\n"
    );
    let err = JobSpec::parse(&text, Path::new(".")).expect_err("upsert without a key").to_string();
    assert!(err.contains("sink `out`: upsert mode needs primary_key") && err.contains(&t), "{err}");
    // The table's own columns when none are declared: all of them.
    let mut sink = sink(&db, "primary_key = [\"id\"]").await.expect("sink over the table's columns");
    sink.write(&[upsert(0, json!({"id": 1, "amount": "2.50", "note": "n"}))]).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(db.count().await, 1);
    db.finish().await;
}

#[tokio::test]
async fn postgres_mismatches_fail_at_connect() {
    mismatches_fail_at_connect(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_mismatches_fail_at_connect() {
    mismatches_fail_at_connect(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_mismatches_fail_at_connect() {
    mismatches_fail_at_connect(Backend::Sqlite).await;
}

/// A row field without a column is an error, never silently dropped.
async fn unknown_field_is_an_error(backend: Backend) {
    let db = Db::new(backend, "unknown_field").await;
    let t = db.table.clone();
    db.exec(&format!("CREATE TABLE {t} (id BIGINT PRIMARY KEY, name TEXT, note TEXT)")).await;
    let mut sink = sink(&db, "primary_key = [\"id\"]\ncolumns = { id = \"bigint\", name = \"text\" }").await.unwrap();
    let err = error_text(sink.write(&[upsert(0, json!({"id": 1, "name": "x", "color": "red"}))]).await);
    assert!(err.contains(&t) && err.contains("`color`") && err.contains("no column"), "{err}");
    let err = error_text(sink.write(&[upsert(1, json!({"id": 1, "note": "n"}))]).await);
    assert!(err.contains(&t) && err.contains("`note`") && err.contains("declare it under columns"), "{err}");
    // A row without its key is this row's problem: it goes to the dead
    // letters, and the job goes on.
    sink.write(&[upsert(2, json!({"name": "no id"}))]).await.expect("a bad row does not fail the sink");
    let rejected = sink.take_rejected();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].reason.contains("`id`") && rejected[0].reason.contains("key column"), "{rejected:?}");
    sink.flush().await.expect("nothing bad was buffered");
    assert_eq!(db.count().await, 0);
    db.finish().await;
}

#[tokio::test]
async fn postgres_unknown_field_is_an_error() {
    unknown_field_is_an_error(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_unknown_field_is_an_error() {
    unknown_field_is_an_error(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_unknown_field_is_an_error() {
    unknown_field_is_an_error(Backend::Sqlite).await;
}

/// Rows wait for `batch_size` or `flush_interval`; `tick` writes them out
/// once the oldest is older than the interval.
async fn tick_writes_after_flush_interval(backend: Backend) {
    let db = Db::new(backend, "tick").await;
    let options =
        "primary_key = [\"id\"]\ncreate_table = true\nflush_interval = \"300ms\"\ncolumns = { id = \"bigint\" }";
    let mut sink = sink(&db, options).await.unwrap();
    sink.write(&[upsert(0, json!({"id": 1})), upsert(1, json!({"id": 2}))]).await.unwrap();
    sink.tick().await.unwrap();
    assert_eq!(db.count().await, 0, "written before the interval");
    tokio::time::sleep(Duration::from_millis(400)).await;
    sink.tick().await.unwrap();
    assert_eq!(db.count().await, 2, "not written after the interval");
    db.finish().await;
}

#[tokio::test]
async fn postgres_tick_writes_after_flush_interval() {
    tick_writes_after_flush_interval(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_tick_writes_after_flush_interval() {
    tick_writes_after_flush_interval(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_tick_writes_after_flush_interval() {
    tick_writes_after_flush_interval(Backend::Sqlite).await;
}

/// Lookups by a composite key (the SDK's `a|b` encoding, escapes
/// included), upserts by key, all rows sorted by key.
async fn dimension_lookup_and_upsert(backend: Backend) {
    let db = Db::new(backend, "dimension").await;
    let t = db.table.clone();
    let (score, premium) = match backend {
        Backend::Postgres => ("NUMERIC(20,2)", "BOOLEAN"),
        Backend::MariaDb => ("DECIMAL(20,2)", "BOOLEAN"),
        // TEXT affinity: SQLite keeps only 15 digits of a NUMERIC.
        Backend::Sqlite => ("DECIMAL TEXT", "BOOLEAN"),
    };
    db.exec(&format!(
        "CREATE TABLE {t} (region VARCHAR(32) NOT NULL, id BIGINT NOT NULL, name TEXT, score {score}, \
         premium {premium}, PRIMARY KEY (region, id))"
    ))
    .await;
    db.exec(&format!("INSERT INTO {t} VALUES ('eu|west', 1, 'Ann', '12345678901234.56', TRUE)")).await;
    let users = dimension(&db, &t, "[\"region\", \"id\"]").await.expect("sql dimension");

    let ann = users.lookup(br"eu\|west|1").await.unwrap().expect("Ann");
    let ann = String::from_utf8(ann).unwrap();
    assert!(ann.contains(r#""score":12345678901234.56"#), "decimal kept exactly: {ann}");
    let ann: Value = serde_json::from_str(&ann).unwrap();
    assert_eq!(
        (&ann["region"], &ann["id"], &ann["name"], &ann["premium"]),
        (&json!("eu|west"), &json!(1), &json!("Ann"), &json!(true))
    );
    assert_eq!(users.lookup(b"eu|2").await.unwrap(), None);

    users.upsert(b"us|2", br#"{"name": "Bob", "score": "0.10", "premium": false}"#).await.unwrap();
    users.upsert(b"us|2", br#"{"name": "Bob", "score": "7.25", "premium": true}"#).await.unwrap();
    let bob: Value = serde_json::from_slice(&users.lookup(b"us|2").await.unwrap().expect("Bob")).unwrap();
    assert_eq!(bob, json!({"region": "us", "id": 2, "name": "Bob", "score": 7.25, "premium": true}));
    let stored = db.rows(&format!("SELECT {} FROM {t} WHERE id = 2", db.text("score"))).await;
    assert_eq!(trim_decimal(stored[0][0].as_deref().unwrap()), "7.25");

    let keys: Vec<Vec<u8>> = users.rows().await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![br"eu\|west|1".to_vec(), b"us|2".to_vec()]);

    let err = error_text(users.lookup(b"only-one-part").await);
    assert!(err.contains("2 key columns"), "{err}");
    let err = error_text(dimension(&db, &t, "[\"nope\"]").await);
    assert!(err.contains(&t) && err.contains("`nope`"), "{err}");
    let err = error_text(dimension(&db, &format!("{t}_missing"), "[\"id\"]").await);
    assert!(err.contains("does not exist"), "{err}");
    db.finish().await;
}

#[tokio::test]
async fn postgres_dimension_lookup_and_upsert() {
    dimension_lookup_and_upsert(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_dimension_lookup_and_upsert() {
    dimension_lookup_and_upsert(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_dimension_lookup_and_upsert() {
    dimension_lookup_and_upsert(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_dimension_single_key() {
    let db = Db::new(Backend::Postgres, "dimension_single").await;
    let t = db.table.clone();
    db.exec(&format!("CREATE TABLE {t} (user_id TEXT PRIMARY KEY, tier TEXT, since TIMESTAMPTZ, extra JSONB)")).await;
    let users = dimension(&db, &t, "[\"user_id\"]").await.expect("sql dimension");
    users.upsert(b"a|b", br#"{"tier": "gold", "since": 1700000000123, "extra": {"x": [1]}}"#).await.unwrap();
    let row: Value = serde_json::from_slice(&users.lookup(b"a|b").await.unwrap().unwrap()).unwrap();
    assert_eq!(
        row,
        json!({"user_id": "a|b", "tier": "gold", "since": "2023-11-14T22:13:20.123Z", "extra": {"x": [1]}})
    );
    db.finish().await;
}

/// The database goes away while rows are buffered: `flush` does not return
/// (back-pressure) until it is back, and then every row lands once.
#[tokio::test]
async fn postgres_down_holds_the_batch_until_back() {
    let db = Db::new(Backend::Postgres, "down").await;
    let target = postgres_url();
    let proxy = Proxy::start(&host_port(&target)).await.expect("proxy");
    let options = "mode = \"append\"\ncreate_table = true\nmax_retry_time = \"60s\"\ncolumns = { n = \"bigint\" }";
    let mut sink = sink_at(&connections(&proxy.url(&target)), &db.table, options).await.expect("sink via proxy");
    let rows = |range: std::ops::Range<i64>| -> Vec<SinkRow> { range.map(|i| upsert(i, json!({"n": i}))).collect() };
    sink.write(&rows(0..10)).await.unwrap();
    sink.flush().await.unwrap();

    proxy.cut();
    let writer = tokio::spawn(async move {
        sink.write(&rows(10..100)).await?;
        sink.flush().await?;
        Ok::<_, ConnectorError>(sink)
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!writer.is_finished(), "flush returned while the database was unreachable");
    proxy.restore();
    let mut sink = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("flush did not finish after the database came back")
        .unwrap()
        .expect("flush after restore");
    sink.flush().await.unwrap();

    let got = db.rows(&format!("SELECT {} FROM {1} ORDER BY {1}.n", db.text("n"), db.table)).await;
    let expected: Vec<Vec<Option<String>>> = (0..100).map(|i| vec![Some(i.to_string())]).collect();
    assert_eq!(got, expected, "each row exactly once");
    db.finish().await;
}

/// When the database stays away longer than `max_retry_time`, the write
/// fails with an error that says so.
#[tokio::test]
async fn postgres_down_longer_than_max_retry_time_fails_clearly() {
    let db = Db::new(Backend::Postgres, "down_too_long").await;
    let target = postgres_url();
    let proxy = Proxy::start(&host_port(&target)).await.expect("proxy");
    let options = "primary_key = [\"id\"]\ncreate_table = true\nmax_retry_time = \"1s\"\ncolumns = { id = \"bigint\" }";
    let mut sink = sink_at(&connections(&proxy.url(&target)), &db.table, options).await.expect("sink via proxy");
    proxy.cut();
    let started = Instant::now();
    sink.write(&[upsert(0, json!({"id": 1}))]).await.unwrap();
    let err = error_text(sink.flush().await);
    assert!(started.elapsed() < Duration::from_secs(15), "gave up only after {:?}", started.elapsed());
    assert!(err.contains(&db.table) && err.contains("max_retry_time") && err.contains("writing 1 rows"), "{err}");
    db.finish().await;
}

/// `host:port` of a URL.
pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// 100k upserts into PostgreSQL, for the throughput figure
/// (`--nocapture` prints it; a debug build is several times slower than release).
#[tokio::test]
async fn postgres_upsert_throughput() {
    let db = Db::new(Backend::Postgres, "throughput").await;
    let options = r#"primary_key = ["id"]
        create_table = true
        batch_size = 5000
        columns = { id = "bigint", user_id = "text", amount = "decimal", items = "bigint", at = "timestamp" }"#;
    let mut sink = sink(&db, options).await.unwrap();
    const N: i64 = 100_000;
    let rows: Vec<SinkRow> = (0..N)
        .map(|i| {
            upsert(
                i,
                json!({"id": i, "user_id": format!("user-{}", i % 977), "amount": format!("{}.{:02}", i, i % 100),
                    "items": i % 7, "at": 1_700_000_000_000_i64 + i}),
            )
        })
        .collect();
    let started = Instant::now();
    for chunk in rows.chunks(1000) {
        sink.write(chunk).await.unwrap();
    }
    sink.flush().await.unwrap();
    let took = started.elapsed();
    println!("postgres upsert: {N} rows in {took:.2?} = {:.0} rows/s", N as f64 / took.as_secs_f64());
    assert_eq!(db.count().await, N as usize);
    db.finish().await;
}
