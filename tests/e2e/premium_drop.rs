//! Premium drop: lookup of the previous premium in a SQL dimension table,
//! alert on a drop of more than 15%, then update the same dimension row.

use sluice_gen::insurance::PremiumUpdates;
use sluice_gen::{GenOptions, Scenario};

use crate::feeds::{keyed_json, stream};
use crate::harness::{Db, drop_tables, load_events, run_job, text_rows, topic_with, unique_table};

/// A `raw_info` row: id, raw_premium, raw_info.
type RawInfo = (u64, String, String);

/// `sluice gen premium-updates`: the dimension's initial rows (100 watched
/// users) and 2900 updates of 150 users (50 not watched), a fifth of them
/// not saved; duplicates included, nothing malformed.
fn feeds() -> (Vec<RawInfo>, Vec<(u64, serde_json::Value)>) {
    let options = GenOptions { seed: 23, count: 3000, duplicated: 0.02, malformed: 0.0, ..GenOptions::default() };
    let events = PremiumUpdates.generate(&options);
    let seed = keyed_json(&stream(&events, "raw_info"))
        .into_iter()
        .map(|(id, row)| {
            (id, row["raw_premium"].as_str().unwrap().to_owned(), row["raw_info"].as_str().unwrap().to_owned())
        })
        .collect();
    (seed, keyed_json(&stream(&events, "update_info")))
}

/// Each saved update of a watched user, with the premium before it: the
/// previous saved update's, or the dimension's initial row for the first.
const CHAIN: &str = "
    with saved as (
        select e.seq::bigint as seq, e.id::bigint as id, e.now_premium, e.now_info, d.raw_premium, d.raw_info,
               row_number() over (partition by e.id order by e.seq::bigint) as n,
               lag(e.now_premium) over (partition by e.id order by e.seq::bigint) as prev_premium,
               lag(e.now_info) over (partition by e.id order by e.seq::bigint) as prev_info
        from {events} e join {seed} d on d.id::bigint = e.id::bigint
        where e.event = 'saved'
    )
    select seq, id, now_premium, now_info,
           case when n = 1 then raw_premium else prev_premium end as before_premium,
           case when n = 1 then raw_info else prev_info end as before_info
    from saved";

#[tokio::test]
async fn premium_drop_with_sql_dimension_in_postgres_and_mariadb() {
    let (seed, events) = feeds();
    let topic = topic_with("update-info", 2, &events).await;

    // The expected result, from the events and the initial dimension rows.
    let (events_table, seed_table) = (unique_table("update_info"), unique_table("raw_info_seed"));
    let event_rows: Vec<Vec<Option<String>>> = events
        .iter()
        .enumerate()
        .map(|(seq, (_, e))| {
            let text = |f: &str| Some(e[f].to_string().trim_matches('"').to_owned());
            vec![Some(seq.to_string()), text("id"), text("event"), text("now_premium"), text("now_info")]
        })
        .collect();
    let pg = load_events(
        &events_table,
        "seq text, id text, event text, now_premium text, now_info text",
        &["seq", "id", "event", "now_premium", "now_info"],
        &event_rows,
    )
    .await;
    let seed_rows: Vec<Vec<Option<String>>> =
        seed.iter().map(|(id, p, info)| vec![Some(id.to_string()), Some(p.clone()), Some(info.clone())]).collect();
    load_events(
        &seed_table,
        "id text, raw_premium text, raw_info text",
        &["id", "raw_premium", "raw_info"],
        &seed_rows,
    )
    .await;
    let chain = CHAIN.replace("{events}", &events_table).replace("{seed}", &seed_table);
    // The job compares as DOUBLE: now < before * (1 - 0.15).
    let expected_alerts = text_rows(
        &pg,
        &format!(
            "select a.id::text, before_info, now_info, before_premium, now_premium from (
                 select distinct on (id) * from ({chain}) c
                 where now_premium::float8 < before_premium::float8 * (1::float8 - 0.15::float8)
                 order by id, seq desc
             ) a order by a.id"
        ),
    )
    .await;
    let expected_dimension = text_rows(
        &pg,
        &format!(
            "select d.id, coalesce(l.now_premium, d.raw_premium), coalesce(l.now_info, d.raw_info)
             from {seed_table} d left join (select distinct on (id) id, now_premium, now_info from ({chain}) c order by id, seq desc) l
               on l.id = d.id::bigint
             order by d.id::bigint"
        ),
    )
    .await;
    assert!(expected_alerts.len() > 20, "the data has drops: {}", expected_alerts.len());

    for db in Db::ALL {
        let pool = db.pool().await;
        let (dimension, sink) = (unique_table("raw_info"), unique_table("wechat_activity_user"));
        sqlx::query(&format!(
            "create table {dimension} (id bigint primary key, raw_premium varchar(32), raw_info varchar(64))"
        ))
        .execute(&pool)
        .await
        .unwrap();
        for (id, p, info) in &seed {
            sqlx::query(&format!("insert into {dimension} values ({id}, '{p}', '{info}')"))
                .execute(&pool)
                .await
                .unwrap();
        }
        let spec = format!(
            r#"
            name = "premium_drop"
            component = "unused.wasm"
            [parameters]
            saved_event = "saved"
            drop_ratio = "0.15"
            [sources.update_info]
            kind = "kafka"
            connection = "events"
            topic = "{topic}"
            bounded = true
            [dimensions.raw_info]
            kind = "sql"
            connection = "warehouse"
            table = "{dimension}"
            key = ["id"]
            cache = {{ max_entries = 1000, ttl = "10m" }}
            [sinks.wechat_activity_user]
            kind = "sql"
            connection = "warehouse"
            table = "{sink}"
            primary_key = ["id"]
            create_table = true
            columns = {{ id = "bigint", raw_info = "varchar(64)", now_info = "varchar(64)", raw_premium = "varchar(32)", now_premium = "varchar(32)" }}
            "#
        );
        let dead = run_job("premium_drop", &spec, db).await;
        assert!(dead.is_empty(), "{db:?}: no dead letters: {dead:?}");
        let alerts = text_rows(
            &pool,
            &format!(
                "select {}, raw_info, now_info, raw_premium, now_premium from {sink} order by {sink}.id",
                db.text("id")
            ),
        )
        .await;
        let dimension_rows = text_rows(
            &pool,
            &format!("select {}, raw_premium, raw_info from {dimension} order by {dimension}.id", db.text("id")),
        )
        .await;
        drop_tables(&pool, &[&sink, &dimension]).await;
        assert_eq!(alerts, expected_alerts, "{db:?}: alerts equal the seed SQL over the same events");
        assert_eq!(dimension_rows, expected_dimension, "{db:?}: the dimension holds each user's last saved premium");
    }
    drop_tables(&pg, &[&events_table, &seed_table]).await;
}
