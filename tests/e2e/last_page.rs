//! Last page visited per (account, device).

use sluice_gen::insurance::PageViews;
use sluice_gen::{GenOptions, Scenario};

use crate::feeds::{keyed_json, stream};
use crate::harness::{Db, drop_tables, load_events, run_job, text_rows, topic_with, unique_table};

/// Page views (`sluice gen page-views`) of 200 accounts on 3 devices each; a
/// tenth are anonymous (no account), which the job drops. Duplicates
/// included, nothing malformed.
fn views() -> Vec<(u64, serde_json::Value)> {
    let options = GenOptions { seed: 37, count: 3000, duplicated: 0.02, malformed: 0.0, ..GenOptions::default() };
    let events = PageViews.generate(&options);
    keyed_json(&stream(&events, "user_log"))
}

const EXPECTED: &str = "
    select distinct on (account_id, device_id) account_id, device_id, bury_point_type, page_name
    from {events} where account_id is not null
    order by account_id, device_id, seq::bigint desc";

#[tokio::test]
async fn last_page_into_postgres_and_mariadb() {
    let events = views();
    let topic = topic_with("user-log", 3, &events).await;
    let events_table = unique_table("user_log");
    let rows: Vec<Vec<Option<String>>> = events
        .iter()
        .enumerate()
        .map(|(seq, (_, e))| {
            let text = |f: &str| e[f].as_str().map(str::to_owned);
            vec![
                Some(seq.to_string()),
                text("account_id"),
                text("device_id"),
                text("bury_point_type"),
                text("page_name"),
            ]
        })
        .collect();
    let pg = load_events(
        &events_table,
        "seq text, account_id text, device_id text, bury_point_type text, page_name text",
        &["seq", "account_id", "device_id", "bury_point_type", "page_name"],
        &rows,
    )
    .await;
    let expected = text_rows(&pg, &EXPECTED.replace("{events}", &events_table)).await;

    for db in Db::ALL {
        let sink = unique_table("user_last_log");
        let spec = format!(
            r#"
            name = "last_page"
            component = "unused.wasm"
            [sources.user_log]
            kind = "kafka"
            connection = "events"
            topic = "{topic}"
            bounded = true
            [sinks.user_last_log]
            kind = "sql"
            connection = "warehouse"
            table = "{sink}"
            primary_key = ["account_id", "device_id"]
            create_table = true
            columns = {{ account_id = "varchar(32)", device_id = "varchar(32)", bury_point_type = "varchar(16)", page_name = "varchar(64)" }}
            "#
        );
        let dead = run_job("last_page", &spec, db).await;
        assert!(dead.is_empty(), "{db:?}: no dead letters: {dead:?}");
        let pool = db.pool().await;
        let actual = text_rows(
            &pool,
            &format!(
                "select account_id, device_id, bury_point_type, page_name from {sink} order by account_id, device_id"
            ),
        )
        .await;
        drop_tables(&pool, &[&sink]).await;
        assert_eq!(actual.len(), expected.len(), "{db:?}: one row per (account, device)");
        assert_eq!(actual, expected, "{db:?}: user_last_log equals the seed SQL over the same events");
    }
    drop_tables(&pg, &[&events_table]).await;
}
