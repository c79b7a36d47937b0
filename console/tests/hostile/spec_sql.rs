//! Issue 16, item 1: spec text never becomes SQL. The attack that made a
//! developer a global admin — a column type that closes `CREATE TABLE`,
//! attaches the metadata database and sets `is_admin` — and its cousins
//! through a table name, a key name and the SQL source's query are refused
//! when deployed and when debugged; nobody becomes an admin.

use serde_json::json;

use crate::platform::{Platform, deployment, spec_with_sink};

/// Issue 16's column type, aimed at this platform's metadata database.
fn injected_column_type(platform: &Platform) -> String {
    format!(
        "text); ATTACH DATABASE '{}' AS m; UPDATE m.users SET is_admin = 1; --",
        platform.path("sluice.db").display()
    )
}

/// A SQL sink into project a's warehouse with `table`, `key` and the
/// `note` column's type as given (TOML-quoted here).
fn sql_sink(table: &str, key: &str, note_type: &str) -> String {
    let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
    format!(
        "kind = \"sql\"\nconnection = \"warehouse\"\ntable = {}\nprimary_key = [{}]\ncreate_table = true\n\
         columns = {{ id = \"bigint\", note = {} }}",
        quoted(table),
        quoted(key),
        quoted(note_type)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_injected_through_a_spec_is_refused_and_makes_nobody_an_admin() {
    let platform = Platform::start().await;
    let dev = &platform.dev;
    let b_before = platform.b_ledger().await;
    let users_before = platform.users().await;
    let record = r#"{"id": 1, "note": "x"}"#;

    // The column type: refused at deploy and in a debug run, listing what is accepted.
    let spec = spec_with_sink(&sql_sink("notes", "id", &injected_column_type(&platform)));
    let accepted =
        ["column `note`: column type `text); ATTACH DATABASE", "is not an accepted column type", "numeric(P,S)"];
    let deploy = dev.put("/projects/a/jobs/j/deployment", deployment(&spec)).await;
    deploy.refused(400, &[&["the spec is not valid"][..], &accepted[..]].concat());
    let debug = dev.post("/projects/a/jobs/j/debug", json!({ "spec": spec, "records": record })).await;
    debug.refused(400, &accepted);

    // Names are checked, never pasted into SQL.
    let statement = "notes\" (id bigint); ATTACH DATABASE 'x' AS m; --";
    let table = spec_with_sink(&sql_sink(statement, "id", "text"));
    let refused = dev.put("/projects/a/jobs/j/deployment", deployment(&table)).await;
    refused.refused(400, &["is not a valid name", "use letters, digits, `_` and `$`"]);
    let key = spec_with_sink(&sql_sink("notes", "id\") ON CONFLICT DO NOTHING; --", "text"));
    let refused = dev.put("/projects/a/jobs/j/deployment", deployment(&key)).await;
    refused.refused(400, &["primary_key column", "is not a valid name"]);

    // The SQL source's query: one read-only statement. SQLite would run
    // every statement of a text, so a second one is refused outright. (An
    // empty file is an empty SQLite database: a's warehouse as its jobs
    // would have left it.)
    std::fs::write(platform.path("files/a/a-warehouse.db"), b"").expect("a's folder");
    let query = format!(
        "SELECT 1 AS id; ATTACH DATABASE '{}' AS m; UPDATE m.users SET is_admin = 1",
        platform.path("sluice.db").display()
    );
    let source = format!(
        "[sources.rows]\nkind = \"sql\"\nconnection = \"warehouse\"\nquery = {}\nkey = [\"id\"]\nbounded = true\n\n\
         [sinks.out]\nkind = \"memory\"\n",
        toml::Value::String(query)
    );
    let read = dev.post("/projects/a/jobs/j/debug", json!({ "spec": source, "from_topic": 10 })).await;
    read.refused(400, &["`query` holds more than one statement"]);
    let attach = source.replace("SELECT 1 AS id; ", "");
    let refused = dev.post("/projects/a/jobs/j/debug", json!({ "spec": attach, "from_topic": 10 })).await;
    refused.refused(400, &["`query` must be one SELECT statement"]);

    // Nothing took effect.
    platform.assert_dev_has_no_more_power().await;
    assert_eq!(platform.users().await, users_before, "the users table is as it was");
    let deployed = platform.admin.get("/projects/a/jobs/j").await.expect(200);
    assert!(deployed["deployment"].is_null(), "no refused spec was saved: {deployed}");
    platform.assert_b_kept_producing(&b_before).await;
}
