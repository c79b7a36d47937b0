//! Expected alerts are worked out by hand from the case inputs (see the
//! comments in `cases.rs` and here), not by re-running the job's logic.

use large_tx_alert::{ALERT_TABLE, ALERT_TOPIC, CUSTOMERS, LargeTxAlert, THRESHOLDS, TXN_SOURCE, cases};
use serde_json::{Value, json};
use sluice_sdk::testing::{Case, JobTester, TestRecord};

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case `{name}`"))
}

/// 10:00 +08:00 plus `minutes`, as `cases::txn` sets `txn_time`.
fn at(minutes: i64) -> i64 {
    1_710_468_000_000 + minutes * 60_000
}

/// (alert_id, segment, manager, amount, reference, txn_time) of each alert.
fn alerts(t: &JobTester<LargeTxAlert>) -> Vec<(String, Value, Value, f64, f64, i64)> {
    t.emitted(ALERT_TABLE)
        .into_iter()
        .map(|a| {
            (
                a["alert_id"].as_str().unwrap().to_owned(),
                a["segment"].clone(),
                a["manager_id"].clone(),
                a["amount"].as_f64().unwrap(),
                a["reference_amount"].as_f64().unwrap(),
                a["txn_time"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn ids(t: &JobTester<LargeTxAlert>) -> Vec<String> {
    alerts(t).into_iter().map(|a| a.0).collect()
}

#[test]
fn there_are_four_cases() {
    let names: Vec<_> = cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["thresholds_by_segment", "sudden_outflow", "short_window", "reference_feeds"]);
}

#[test]
fn thresholds_by_segment() {
    let (t, out) = case("thresholds_by_segment").run_native::<LargeTxAlert>().unwrap();
    assert_eq!(
        alerts(&t),
        vec![
            ("T1:large_amount".into(), json!("mass"), json!("M-C1"), 50000.0, 50000.0, at(1)),
            ("T4:large_amount".into(), json!("vip"), json!("M-C3"), 60000.0, 50000.0, at(4)),
            ("T5:large_amount".into(), Value::Null, Value::Null, 50000.5, 50000.0, at(5)),
        ]
    );
    // the full row, once
    assert_eq!(
        t.emitted(ALERT_TABLE)[0],
        json!({
            "alert_id": "T1:large_amount", "rule": "large_amount", "txn_id": "T1", "customer_id": "C1",
            "account_no": format!("6229{:0>15}", "C1"), "segment": "mass", "manager_id": "M-C1", "branch_id": "150102",
            "direction": "in", "channel": "mobile_banking", "amount": 50000.0, "reference_amount": 50000.0,
            "txn_time": at(1),
        })
    );
    // the topic gets the same rows, keyed by alert id
    assert_eq!(t.emitted(ALERT_TOPIC), t.emitted(ALERT_TABLE));
    let keys: Vec<_> = t.emitted_rows().into_iter().filter(|r| r.sink == ALERT_TOPIC).map(|r| r.key.unwrap()).collect();
    assert_eq!(keys, [b"T1:large_amount".to_vec(), b"T4:large_amount".to_vec(), b"T5:large_amount".to_vec()]);

    let dead: Vec<(i64, &str)> = out.dead_letters.iter().map(|(p, r)| (p.offset, r.as_str())).collect();
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert_eq!(dead[0].0, 7);
    assert!(dead[0].1.contains("EOF while parsing"), "{}", dead[0].1);
    assert_eq!(dead[1], (8, "amount \"12.345\" is not a positive amount of yuan"));
    assert_eq!(dead[2], (9, "direction `sideways` is neither `in` nor `out`"));
    assert_eq!(dead[3], (10, "amount \"-60000.00\" is not a positive amount of yuan"));
    assert_eq!(t.metric("duplicates"), Some(2.0));
    assert_eq!(t.metric("large_amount"), Some(3.0));
}

#[test]
fn sudden_outflow() {
    let (t, out) = case("sudden_outflow").run_native::<LargeTxAlert>().unwrap();
    assert!(out.dead_letters.is_empty());
    assert_eq!(
        alerts(&t),
        vec![
            // history 1000 + 2000 + 9999.99 + 21666.64 = 34666.63, avg 8666.6575 -> 8666.66
            ("A6:sudden_outflow".into(), json!("mass"), json!("M-C1"), 43333.29, 8666.66, at(6)),
            // late, wealth threshold
            ("B1:large_amount".into(), json!("wealth"), json!("M-C2"), 300000.0, 200000.0, at(-50)),
            // both rules: avg of five = 77999.92 / 5 = 15599.984 -> 15599.98
            ("A7:large_amount".into(), json!("mass"), json!("M-C1"), 80000.0, 50000.0, at(7)),
            ("A7:sudden_outflow".into(), json!("mass"), json!("M-C1"), 80000.0, 15599.98, at(7)),
        ]
    );
    // the history keeps the last ten outflows of C1, oldest first, in cents
    assert_eq!(
        t.value_state::<Vec<i64>>("recent_outflows", "C1"),
        Some(vec![100_000, 200_000, 999_999, 2_166_664, 4_333_329, 8_000_000])
    );
}

#[test]
fn short_window() {
    let (t, _) = case("short_window").run_native::<LargeTxAlert>().unwrap();
    assert_eq!(alerts(&t), vec![("W4:sudden_outflow".into(), json!("mass"), json!("M-C1"), 300.0, 100.0, at(4))]);
    assert_eq!(t.value_state::<Vec<i64>>("recent_outflows", "C1"), Some(vec![10_000, 30_000]));
}

#[test]
fn reference_feeds() {
    let (t, out) = case("reference_feeds").run_native::<LargeTxAlert>().unwrap();
    // R1 against farmer's 1000.00; R2 after C9 moved to mass: no alert
    assert_eq!(ids(&t), ["R1:large_amount"]);
    assert_eq!(alerts(&t)[0].4, 1000.0);
    let dead: Vec<(u32, &str)> = out.dead_letters.iter().map(|(p, r)| (p.source, r.as_str())).collect();
    assert_eq!(dead, [(1, "customer row without a `customer_id` text"), (2, "threshold \"n/a\" is not an amount")]);
    assert_eq!(t.dimension_row(CUSTOMERS, "C9").unwrap()["segment"], "mass");
    assert_eq!(t.dimension_row(THRESHOLDS, "farmer").unwrap()["threshold"], "1000.00");
    assert_eq!(t.dimension_row(THRESHOLDS, "broken"), None);
}

/// The job over movements, with empty dimensions and `params`.
fn tester(params: &[(&str, &str)]) -> JobTester<LargeTxAlert> {
    let mut builder = JobTester::<LargeTxAlert>::builder()
        .source(TXN_SOURCE)
        .sink(ALERT_TOPIC)
        .sink(ALERT_TABLE)
        .dimension(CUSTOMERS, Vec::<(String, Value)>::new())
        .dimension(THRESHOLDS, Vec::<(String, Value)>::new())
        .processing_time(large_tx_alert::cases::NOW);
    for (name, value) in params {
        builder = builder.param(name, value);
    }
    builder.open().unwrap()
}

#[test]
fn duplicates_across_batches_and_time_to_live() {
    let mut t = tester(&[("dedup_hours", "1")]);
    let big = TestRecord::json(&large_tx_alert::cases::txn("D1", "C1", "in", json!("70000"), 0));
    t.send(big.clone()).unwrap();
    t.send(big.clone()).unwrap();
    assert_eq!(ids(&t), ["D1:large_amount"]);
    // After the TTL a replay alerts again, with the same alert id: an
    // upsert sink keeps one row.
    t.advance_processing_time(3_600_001).unwrap();
    t.send(big).unwrap();
    assert_eq!(ids(&t), ["D1:large_amount", "D1:large_amount"]);
    assert_eq!(t.upserted(ALERT_TABLE, &["alert_id"]).len(), 1);
}

/// The job runs split by partition (its state keyed by customer): a
/// movement keyed by something other than its customer id is a dead letter
/// saying so, not a history split across tasks. Unkeyed records (a file)
/// pass.
#[test]
fn movements_must_be_keyed_by_customer_id() {
    let mut t = tester(&[]);
    let big = |id: &str| TestRecord::json(&large_tx_alert::cases::txn(id, "C1", "in", json!("70000"), 0));
    t.send(big("K1").with_key("C1")).unwrap();
    t.send(big("K2")).unwrap();
    t.send(big("K3").with_key("6229000000000000C1")).unwrap();
    assert_eq!(ids(&t), ["K1:large_amount", "K2:large_amount"]);
    let dead = t.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("record key `6229000000000000C1` is not the movement's customer_id `C1`"),
        "{}",
        dead[0].reason
    );
}

#[test]
fn bad_parameters_fail_at_open() {
    let open = |k: &str, v: &str| {
        JobTester::<LargeTxAlert>::builder().sink(ALERT_TOPIC).sink(ALERT_TABLE).param(k, v).open().err()
    };
    assert!(open("default_threshold", "lots").unwrap().contains("`default_threshold` = `lots` is not an amount"));
    assert!(open("outflow_window", "0").unwrap().contains("outflow_window"));
    assert!(open("outflow_min_history", "11").unwrap().contains("outflow_min_history"));
    assert!(open("outflow_multiple", "0").unwrap().contains("outflow_multiple"));
    assert!(open("dedup_hours", "0").unwrap().contains("positive"));
    assert!(open("outflow_window", "5").is_none());
}
