//! Spec text never becomes SQL (issue 16): column types are a grammar,
//! names are checked and quoted, a source's query is one read-only
//! statement; rows a table refuses go to the dead letters; statements have
//! a timeout.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sluice_runtime::connectors::SinkRow;
use sluice_runtime::connectors::registry::{BuildContext, SinkSpec, build_sink, build_source};
use sluice_runtime::job::JobSpec;
use sluice_tests::services::{mysql_url, postgres_url};
use sqlx::Row;

use crate::sql::{Backend, Db, connections, error_text, sink, upsert};

/// What the metadata database of the console holds: a user who is not an
/// admin.
async fn metadata_db(path: &Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("metadata db");
    sqlx::query("CREATE TABLE users (name TEXT PRIMARY KEY, is_admin BIGINT NOT NULL)").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO users VALUES ('dev', 0)").execute(&pool).await.unwrap();
    pool
}

async fn is_admin(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query("SELECT is_admin FROM users WHERE name = 'dev'").fetch_one(pool).await.unwrap().get(0)
}

/// Issue 16's attack: a column type that closes CREATE TABLE, attaches the
/// metadata database next to the warehouse and makes its user an admin.
/// Refused when the spec is read, and again when a sink built in code
/// connects; the user is not an admin afterwards and no table was made.
#[tokio::test]
async fn sqlite_column_type_injection_cannot_make_a_user_admin() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("sluice.db");
    let pool = metadata_db(&metadata).await;
    let attack = format!("text); ATTACH DATABASE '{}' AS m; UPDATE m.users SET is_admin = 1; --", metadata.display());
    let sink_table = format!(
        "kind = \"sql\"\nconnection = \"db\"\ntable = \"notes\"\nprimary_key = [\"id\"]\ncreate_table = true\n\
         columns = {{ id = \"bigint\", note = {} }}\n",
        toml::Value::String(attack.clone())
    );
    let source = "[sources.orders]\nkind = \"file\"\npath = \"unused\"\n";
    let text = format!("name = \"attack\"\ncomponent = \"x.wasm\"\n{source}[sinks.out]\n{sink_table}");
    let err = JobSpec::parse(&text, Path::new(".")).unwrap_err().to_string();
    assert!(
        err.contains("sink `out`: column `note`: column type `text); ATTACH DATABASE")
            && err.contains("is not an accepted column type")
            && err.contains("varchar(N)"),
        "{err}"
    );

    // Built in code, past the spec's check: refused at connect.
    let mut spec = JobSpec::parse(&format!("name = \"attack\"\ncomponent = \"x.wasm\"\n{source}"), Path::new("."))
        .expect("the spec without the sink");
    let sink_spec: SinkSpec = toml::from_str(&sink_table).expect("the sink's table");
    spec.sinks.insert("out".into(), sink_spec);
    let warehouse = dir.path().join("warehouse.db");
    let registry = connections(&format!("sqlite:{}", warehouse.display()));
    let err = error_text(build_sink(BuildContext::new(&spec, &registry), "out", &spec.sinks["out"]).await);
    assert!(err.contains("is not an accepted column type"), "{err}");

    assert_eq!(is_admin(&pool).await, 0, "the user is not an admin");
    if warehouse.exists() {
        let w = sqlx::SqlitePool::connect(&format!("sqlite://{}", warehouse.display())).await.unwrap();
        let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master")
            .fetch_all(&w)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(tables.is_empty(), "nothing was created: {tables:?}");
    }
}

/// Names that are not plain identifiers, and types outside the grammar, are
/// refused when the spec is read, each with what to fix.
#[test]
fn names_and_types_are_checked_with_the_spec() {
    let parse = |connectors: &str| {
        let text = format!(
            "name = \"names\"\ncomponent = \"x.wasm\"\n[sources.orders]\nkind = \"file\"\npath = \"unused\"\n{connectors}"
        );
        JobSpec::parse(&text, Path::new(".")).map(drop).map_err(|e| e.to_string())
    };
    let sink = |options: &str| format!("[sinks.out]\nkind = \"sql\"\nconnection = \"db\"\n{options}");
    let cases = [
        (sink("table = 't\"; DROP TABLE x; --'\nprimary_key = [\"id\"]"), "table `t\"; DROP TABLE x; --` is not a valid name"),
        (sink("table = \"t\"\nprimary_key = [\"id) --\"]"), "primary_key column `id) --` is not a valid name"),
        (sink("table = \"t\"\nprimary_key = [\"id\"]\ncolumns = { \"a b\" = \"text\" }"), "column `a b` is not a valid name"),
        (sink("table = \"t\"\nprimary_key = [\"id\"]\ncolumns = { id = \"bigint DEFAULT 1\" }"), "is not an accepted column type"),
        (sink("table = \"t\"\nprimary_key = [\"id\"]\nstatement_timeout = \"1h\""), "statement_timeout must be between"),
        (
            "[dimensions.d]\nkind = \"sql\"\nconnection = \"db\"\ntable = \"t\"\nkey = [\"k`\"]".to_owned(),
            "key column `k`` is not a valid name",
        ),
        (
            "[sources.rows]\nkind = \"sql\"\nconnection = \"db\"\nquery = \"DELETE FROM t\"\nkey = [\"id\"]\nbounded = true".to_owned(),
            "`query` must be one SELECT statement",
        ),
    ];
    for (connectors, expected) in cases {
        let err = parse(&connectors).unwrap_err();
        assert!(err.contains(expected), "{connectors}: {err}");
    }
    parse(&sink("table = \"analytics.hs_order\"\nprimary_key = [\"id\"]\ncolumns = { id = \"bigint\", amount = \"numeric(18,2)\", name = \"varchar(32)\" }")).unwrap();
}

/// A source's query runs as one statement on a read-only session: a
/// second statement smuggled after a `)` or `;` is refused, and nothing is
/// written.
async fn source_query_is_one_read_only_statement(backend: Backend) {
    let db = Db::new(backend, "src_one_statement").await;
    let t = db.table.clone();
    db.exec(&format!("CREATE TABLE {t} (id BIGINT PRIMARY KEY)")).await;
    db.exec(&format!("INSERT INTO {t} VALUES (1), (2)")).await;
    let source = |query: String| {
        let spec = crate::sql::spec(&format!(
            "[sources.rows]\nkind = \"sql\"\nconnection = \"db\"\nquery = {}\nkey = [\"id\"]\nbounded = true",
            toml::Value::String(query)
        ));
        let registry = db.connections();
        async move {
            let cx = BuildContext::new(&spec, &registry);
            match build_source(cx, "rows", 1, &spec.sources["rows"]).await {
                Ok(mut source) => {
                    let mut batch = sluice_runtime::job::batch::RecordBatch::default();
                    source.poll(&mut batch, 10, Duration::from_secs(5)).await.map(drop)
                }
                Err(e) => Err(e),
            }
        }
    };
    let smuggled = format!("SELECT id FROM {t}) AS s; DELETE FROM {t}; SELECT * FROM (SELECT id FROM {t}");
    let err = error_text(source(smuggled).await);
    let said = match backend {
        Backend::Sqlite => "holds more than one statement",
        Backend::Postgres => "cannot insert multiple commands into a prepared statement",
        Backend::MariaDb => "SQL syntax",
    };
    assert!(err.contains(said), "{backend:?}: {err}");
    if backend == Backend::Postgres {
        let sequence = format!("{t}_seq");
        db.exec(&format!("CREATE SEQUENCE {sequence}")).await;
        let err = error_text(source(format!("SELECT nextval('{sequence}') AS id")).await);
        assert!(err.contains("read-only transaction"), "{err}");
        db.exec(&format!("DROP SEQUENCE {sequence}")).await;
    }
    assert_eq!(db.count().await, 2, "{backend:?}: nothing was deleted");
    db.finish().await;
}

#[tokio::test]
async fn postgres_source_query_is_one_read_only_statement() {
    source_query_is_one_read_only_statement(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_source_query_is_one_read_only_statement() {
    source_query_is_one_read_only_statement(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_source_query_is_one_read_only_statement() {
    source_query_is_one_read_only_statement(Backend::Sqlite).await;
}

/// Rows the sink cannot convert (a string for a bigint) or the table
/// refuses (NULL in NOT NULL, a CHECK) go to the dead letters with the
/// reason and the row's position; the others are written, and the sink
/// goes on.
async fn refused_rows_go_to_the_dead_letters(backend: Backend) {
    let db = Db::new(backend, "refused_rows").await;
    let t = db.table.clone();
    db.exec(&format!("CREATE TABLE {t} (id BIGINT PRIMARY KEY, code VARCHAR(8) NOT NULL, n BIGINT CHECK (n >= 0))"))
        .await;
    let mut sink = sink(&db, "primary_key = [\"id\"]\ncolumns = { id = \"bigint\", code = \"text\", n = \"bigint\" }")
        .await
        .expect("sql sink");
    let rows: Vec<SinkRow> = vec![
        upsert(0, json!({"id": 1, "code": "a", "n": 1})),
        upsert(1, json!({"id": 2, "code": "b", "n": "abc"})),
        upsert(2, json!({"id": 3, "code": "c", "n": -1})),
        upsert(3, json!({"id": 4, "n": 4})),
        upsert(4, json!({"id": 5, "code": "e", "n": 5})),
    ];
    sink.write(&rows).await.expect("bad rows do not fail the sink");
    sink.flush().await.expect("the good rows are written");
    let ids = db.rows(&format!("SELECT {} FROM {t} ORDER BY id", db.text("id"))).await;
    assert_eq!(ids, vec![vec![Some("1".to_owned())], vec![Some("5".to_owned())]], "{backend:?}");
    let mut rejected = sink.take_rejected();
    rejected.sort_by_key(|r| format!("{:?}", r.row.id));
    let got: Vec<(i64, bool)> = rejected
        .iter()
        .map(|r| match r.row.id.origin {
            sluice_runtime::connectors::RowOrigin::Record { offset, .. } => {
                (offset, r.reason.contains(&t) || r.reason.contains("not an integer"))
            }
            _ => panic!("a record's row"),
        })
        .collect();
    assert_eq!(got, vec![(1, true), (2, true), (3, true)], "{backend:?}: {rejected:?}");
    assert!(rejected[0].reason.contains("column `n`") && rejected[0].reason.contains("\"abc\" is not an integer"));
    assert!(rejected[1].reason.contains("refused the row"), "{:?}", rejected[1]);
    assert!(sink.take_rejected().is_empty(), "handed over once");
    db.finish().await;
}

#[tokio::test]
async fn postgres_refused_rows_go_to_the_dead_letters() {
    refused_rows_go_to_the_dead_letters(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_refused_rows_go_to_the_dead_letters() {
    refused_rows_go_to_the_dead_letters(Backend::MariaDb).await;
}

#[tokio::test]
async fn sqlite_refused_rows_go_to_the_dead_letters() {
    refused_rows_go_to_the_dead_letters(Backend::Sqlite).await;
}

/// A write blocked by another session's lock ends with the database's
/// timeout error instead of waiting for ever.
async fn blocked_writes_time_out(backend: Backend) {
    let db = Db::new(backend, "blocked").await;
    let t = db.table.clone();
    db.exec(&format!("CREATE TABLE {t} (id BIGINT PRIMARY KEY)")).await;
    let options = "primary_key = [\"id\"]\ncolumns = { id = \"bigint\" }\nstatement_timeout = \"500ms\"\n\
                   max_retry_time = \"2s\"";
    let mut sink = sink(&db, options).await.expect("sql sink");
    // Another session holds a lock the write needs, until dropped.
    let (mut pg_lock, mut mysql_lock) = (None, None);
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&format!("LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE")).execute(&mut *tx).await.unwrap();
            pg_lock = Some(tx);
        }
        _ => {
            // A table lock: MariaDB waits a day for it by default.
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::MySqlConnection::connect(&mysql_url()).await.unwrap();
            conn.execute(format!("LOCK TABLES {t} WRITE").as_str()).await.unwrap();
            mysql_lock = Some(conn);
        }
    }
    sink.write(&[upsert(0, json!({"id": 1}))]).await.unwrap();
    let flushed = tokio::time::timeout(Duration::from_secs(60), sink.flush()).await.expect("the write did not hang");
    let err = error_text(flushed);
    let timed_out = ["statement timeout", "max_statement_time", "Lock wait timeout"].iter().any(|s| err.contains(s));
    assert!(timed_out && err.contains(&t), "{backend:?}: {err}");
    drop((pg_lock.take(), mysql_lock.take()));
    db.finish().await;
}

#[tokio::test]
async fn postgres_blocked_writes_time_out() {
    blocked_writes_time_out(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_blocked_writes_time_out() {
    blocked_writes_time_out(Backend::MariaDb).await;
}
