//! Hourly premium totals with last-value de-duplication per user.

use sluice_gen::insurance::InsuranceOrders;
use sluice_gen::{GenOptions, Scenario};

use crate::feeds::{keyed_json, stream};
use crate::harness::{Db, drop_tables, load_events, run_job, text_rows, topic_with, unique_table};

/// Orders (`sluice gen insurance-orders`) over six hours: 300 users order
/// ten times each on average (the last order counts), order numbers and
/// phones repeat (distinct counts); duplicates and late orders included,
/// nothing malformed (the test expects no dead letters).
fn orders() -> Vec<(u64, serde_json::Value)> {
    let options = GenOptions {
        seed: 11,
        count: 3000,
        step_ms: 6 * 3_600_000 / 3000,
        late: 0.02,
        duplicated: 0.02,
        malformed: 0.0,
        ..GenOptions::default()
    };
    let events = InsuranceOrders.generate(&options);
    keyed_json(&stream(&events, "user_order"))
}

/// The seed's SQL, over the events in arrival order (`seq`).
const EXPECTED: &str = "
    with last_order as (
        select distinct on (id) id, order_no, customer_tel, gmt_modified::bigint as gmt_modified,
               account_payble::numeric as account_payble
        from {events} order by id, seq::bigint desc
    )
    select to_char(to_timestamp(gmt_modified / 1000) at time zone 'UTC' + interval '8 hours', 'YYYYMMDDHH24'),
           sum(coalesce(account_payble, 0))::numeric(18, 2)::text,
           count(distinct order_no)::text,
           count(distinct customer_tel)::text
    from last_order group by 1 order by 1";

#[tokio::test]
async fn hourly_premium_into_postgres_and_mariadb() {
    let events = orders();
    let topic = topic_with("user-order", 3, &events).await;
    let events_table = unique_table("user_order");
    let rows: Vec<Vec<Option<String>>> = events
        .iter()
        .enumerate()
        .map(|(seq, (_, e))| {
            let text = |f: &str| Some(e[f].to_string().trim_matches('"').to_owned());
            vec![
                Some(seq.to_string()),
                text("id"),
                text("order_no"),
                text("customer_tel"),
                text("gmt_modified"),
                text("account_payble"),
            ]
        })
        .collect();
    let pg = load_events(
        &events_table,
        "seq text, id text, order_no text, customer_tel text, gmt_modified text, account_payble text",
        &["seq", "id", "order_no", "customer_tel", "gmt_modified", "account_payble"],
        &rows,
    )
    .await;
    let expected = text_rows(&pg, &EXPECTED.replace("{events}", &events_table)).await;
    assert!(expected.len() >= 6, "the events span six hours: {expected:?}");

    for db in Db::ALL {
        let sink = unique_table("hs_order");
        let spec = format!(
            r#"
            name = "hourly_premium"
            component = "unused.wasm"
            [parameters]
            utc_offset_minutes = "480"
            since_ms = "0"
            [sources.user_order]
            kind = "kafka"
            connection = "events"
            topic = "{topic}"
            bounded = true
            event_time_field = "gmt_modified"
            [sinks.hs_order]
            kind = "sql"
            connection = "warehouse"
            table = "{sink}"
            primary_key = ["biz_date"]
            create_table = true
            batch_size = 500
            columns = {{ biz_date = "varchar(10)", total_premium = "decimal(18,2)", policy_cnt = "bigint", policy_holder_cnt = "bigint" }}
            "#
        );
        let dead = run_job("hourly_premium", &spec, db).await;
        assert!(dead.is_empty(), "{db:?}: no dead letters: {dead:?}");
        let pool = db.pool().await;
        let actual = text_rows(
            &pool,
            &format!(
                "select biz_date, {}, {}, {} from {sink} order by biz_date",
                db.text("total_premium"),
                db.text("policy_cnt"),
                db.text("policy_holder_cnt")
            ),
        )
        .await;
        drop_tables(&pool, &[&sink]).await;
        assert_eq!(actual, expected, "{db:?}: hs_order equals the seed SQL over the same events");
    }
    drop_tables(&pg, &[&events_table]).await;
}
