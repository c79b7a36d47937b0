//! Large-transaction alerts (seed 003): generated movements through a Tansu
//! topic; customers in a SQL dimension table of the sink database, segment
//! thresholds in Redis hashes; alerts into a Kafka topic and an upsert table
//! (PostgreSQL, then MariaDB). Both must hold exactly the alerts a batch SQL
//! query finds over the raw movements in PostgreSQL.

use std::time::Duration;

use redis::AsyncCommands;
use sluice_gen::large_tx::{CUSTOMER_STREAM, LargeTx, SEGMENT_STREAM, TXN_STREAM};
use sluice_gen::{GenOptions, Scenario};
use sluice_tests::kafka::{create_topic, read_topic, unique_topic};
use sluice_tests::services::{kafka_brokers, redis_url};

use crate::feeds::{load_json, malformed, run_job_with, specs_parse, stream, topic_of};
use crate::harness::{Db, drop_tables, text_rows, unique_table};

const TXN_FIELDS: &[&str] =
    &["txn_id", "account_no", "customer_id", "direction", "amount", "channel", "branch_id", "txn_time"];

/// The rules over the raw movements, with the job's default parameters:
/// movements de-duplicated by txn_id (first arrival), the segment threshold
/// (50000.00 when unknown), and the average of the customer's previous ten
/// outflows in arrival order.
const EXPECTED: &str = "
    with ev as (
        select distinct on (txn_id) seq::bigint as seq, txn_id, customer_id, account_no, direction, channel,
               branch_id, (amount::numeric * 100)::bigint as cents, txn_time
        from {events} order by txn_id, seq::bigint
    ), t as (
        select ev.*, c.segment, c.manager_id,
               coalesce((s.threshold::numeric * 100)::bigint, 5000000) as threshold
        from ev left join {customers} c on c.customer_id = ev.customer_id
                left join {segments} s on s.segment = c.segment
    ), outs as (
        select txn_id, count(*) over w as n, sum(cents) over w as total
        from ev where direction = 'out'
        window w as (partition by customer_id order by seq rows between 10 preceding and 1 preceding)
    ), alerts as (
        select txn_id || ':large_amount' as alert_id, 'large_amount' as rule, t.*, threshold as reference
        from t where cents >= threshold
        union all
        select txn_id || ':sudden_outflow', 'sudden_outflow', t.*, round(total::numeric / n)::bigint
        from t join outs using (txn_id) where n >= 3 and cents >= 1000000 and cents * n >= 5 * total
    )
    select alert_id, rule, txn_id, customer_id, account_no, segment, manager_id, branch_id, direction, channel,
           (cents / 100.0)::numeric(18, 2)::text, (reference / 100.0)::numeric(18, 2)::text, txn_time
    from alerts order by alert_id";

#[tokio::test]
async fn large_tx_alerts_into_kafka_and_postgres_and_mariadb() {
    specs_parse("large-tx-alert");
    let options =
        GenOptions { seed: 31, count: 8000, late: 0.02, duplicated: 0.03, malformed: 0.005, ..GenOptions::default() };
    let events = LargeTx.generate(&options);
    let (segments, customers, txns) =
        (stream(&events, SEGMENT_STREAM), stream(&events, CUSTOMER_STREAM), stream(&events, TXN_STREAM));
    let topic = topic_of("account-txn", 3, &txns).await;

    // The expected alerts, from the raw events in PostgreSQL.
    let (events_table, customers_table, segments_table) =
        (unique_table("account_txn"), unique_table("customer_ref"), unique_table("segment_ref"));
    let pg = load_json(&events_table, &txns, TXN_FIELDS).await;
    load_json(&customers_table, &customers, &["customer_id", "segment", "manager_id"]).await;
    load_json(&segments_table, &segments, &["segment", "threshold"]).await;
    let expected = text_rows(
        &pg,
        &EXPECTED
            .replace("{events}", &events_table)
            .replace("{customers}", &customers_table)
            .replace("{segments}", &segments_table),
    )
    .await;
    let rules = |rule: &str| expected.iter().filter(|r| r[1] == rule).count();
    assert!(rules("large_amount") > 50 && rules("sudden_outflow") > 20, "both rules fire: {}", expected.len());
    let duplicated = txns.len()
        - malformed(&txns)
        - text_rows(&pg, &format!("select distinct txn_id from {events_table}")).await.len();
    assert!(duplicated > 100, "the feed has duplicates: {duplicated}");

    // Segment thresholds in Redis hashes, as an operations team keeps them.
    let prefix = format!("sluice-e2e:{}:large-tx:segment:", std::process::id());
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    for s in &segments {
        let row: serde_json::Value = serde_json::from_slice(&s.value).unwrap();
        let fields: Vec<(String, String)> =
            row.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
        let _: () = redis.hset_multiple(format!("{prefix}{}", s.key), &fields).await.unwrap();
    }

    for db in Db::ALL {
        let pool = db.pool().await;
        let (dimension, sink) = (unique_table("customer"), unique_table("large_tx_alert"));
        sqlx::query(&format!(
            "create table {dimension} (customer_id varchar(32) primary key, name varchar(32), segment varchar(32), \
             branch_id varchar(16), manager_id varchar(32))"
        ))
        .execute(&pool)
        .await
        .unwrap();
        for c in &customers {
            let row: serde_json::Value = serde_json::from_slice(&c.value).unwrap();
            let text = |f: &str| row[f].as_str().unwrap().to_owned();
            sqlx::query(&format!(
                "insert into {dimension} values ('{}', '{}', '{}', '{}', '{}')",
                text("customer_id"),
                text("name"),
                text("segment"),
                text("branch_id"),
                text("manager_id")
            ))
            .execute(&pool)
            .await
            .unwrap();
        }
        let alert_topic = unique_topic("large-tx-alert");
        create_topic(&kafka_brokers(), &alert_topic, 1).await;
        let spec = format!(
            r#"
            name = "large_tx_alert"
            component = "unused.wasm"
            [sources.account_txn]
            kind = "kafka"
            connection = "events"
            topic = "{topic}"
            bounded = true
            event_time_field = "txn_time"
            [dimensions.customer]
            kind = "sql"
            connection = "warehouse"
            table = "{dimension}"
            key = ["customer_id"]
            cache = {{ max_entries = 100000, ttl = "10m" }}
            [dimensions.segment_threshold]
            kind = "redis"
            connection = "profiles"
            key_prefix = "{prefix}"
            layout = "hash"
            [sinks.alert_topic]
            kind = "kafka"
            connection = "events"
            topic = "{alert_topic}"
            row_id_header = true
            [sinks.alert_table]
            kind = "sql"
            connection = "warehouse"
            table = "{sink}"
            primary_key = ["alert_id"]
            create_table = true
            batch_size = 500
            columns = {{ alert_id = "varchar(64)", rule = "varchar(16)", txn_id = "varchar(32)", customer_id = "varchar(32)", account_no = "varchar(32)", segment = "varchar(32)", manager_id = "varchar(32)", branch_id = "varchar(16)", direction = "varchar(4)", channel = "varchar(32)", amount = "decimal(18,2)", reference_amount = "decimal(18,2)", txn_time = "bigint" }}
            "#
        );
        let dead = run_job_with("large_tx_alert", &spec, db, &[format!("profiles={}", redis_url())]).await;
        assert_eq!(dead.len(), malformed(&txns), "{db:?}: the malformed movements, and only they, are dead letters");

        let columns = [
            "alert_id",
            "rule",
            "txn_id",
            "customer_id",
            "account_no",
            "segment",
            "manager_id",
            "branch_id",
            "direction",
            "channel",
        ]
        .join(", ");
        let actual = text_rows(
            &pool,
            &format!(
                "select {columns}, {}, {}, {} from {sink} order by alert_id",
                db.text("amount"),
                db.text("reference_amount"),
                db.text("txn_time")
            ),
        )
        .await;
        drop_tables(&pool, &[&sink, &dimension]).await;
        assert_eq!(actual.len(), expected.len(), "{db:?}: one row per alert");
        assert_eq!(actual, expected, "{db:?}: the alert table equals the batch SQL over the same movements");

        // The topic: the same alerts, each once, keyed by alert id.
        let messages = read_topic(&kafka_brokers(), &alert_topic, 1, expected.len(), Duration::from_secs(60));
        let mut from_topic: Vec<(String, String, String)> = messages
            .iter()
            .map(|(_, _, key, value)| {
                let v: serde_json::Value = serde_json::from_str(value.as_deref().unwrap()).unwrap();
                assert_eq!(key.as_deref(), v["alert_id"].as_str());
                (
                    v["alert_id"].as_str().unwrap().to_owned(),
                    format!("{:.2}", v["amount"].as_f64().unwrap()),
                    v["rule"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        from_topic.sort();
        let wanted: Vec<(String, String, String)> =
            expected.iter().map(|r| (r[0].clone(), r[10].clone(), r[1].clone())).collect();
        assert_eq!(from_topic, wanted, "{db:?}: the alert topic holds the same alerts");
    }

    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
    drop_tables(&pg, &[&events_table, &customers_table, &segments_table]).await;
}
