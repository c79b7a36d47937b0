//! Expected rows are worked out by hand from the case inputs (see the
//! comments), not by re-running the job's logic.

use hourly_premium::{HourlyPremium, SINK, SOURCE, cases};
use serde_json::{Value, json};
use sluice_sdk::RowOp;
use sluice_sdk::testing::{Case, JobTester, TestRecord};

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case `{name}`"))
}

fn row(biz_date: &str, total_premium: f64, policy_cnt: u64, policy_holder_cnt: u64) -> Value {
    json!({ "biz_date": biz_date, "total_premium": total_premium, "policy_cnt": policy_cnt, "policy_holder_cnt": policy_holder_cnt })
}

/// The final `hs_order` table, rows in key order.
fn table(t: &JobTester<HourlyPremium>) -> Vec<Value> {
    t.upserted(SINK, &["biz_date"]).into_values().collect()
}

fn ops(t: &JobTester<HourlyPremium>) -> Vec<(RowOp, Value)> {
    t.emitted_rows().into_iter().map(|r| (r.op, r.value)).collect()
}

const U: RowOp = RowOp::Upsert;
const D: RowOp = RowOp::Delete;

#[test]
fn there_are_three_cases() {
    let names: Vec<_> = cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["dedup_and_retraction", "today_filter_utc", "since_ms_replay"]);
}

#[test]
fn dedup_and_retraction() {
    let (t, out) = case("dedup_and_retraction").run_native::<HourlyPremium>().unwrap();
    assert_eq!(
        ops(&t),
        vec![
            // One change per hour a batch touched, hours in order (mini-batch output).
            // batch 1: users 1 (A1 T1 100.1) and 2 (B1 T2 200.2) at 09, user 3 (C1 T1 null) at 10
            (U, row("2024031509", 300.3, 2, 2)), // exactly 300.3, not 100.1 + 200.2 in f64
            (U, row("2024031510", 0.0, 1, 1)),
            // batch 2: user 1 moves to 10 (A2 T1 50.05): 09 keeps user 2, 10 has users 3 and 1;
            // user 2 updates B1 to 0.1 with a null phone (still T2)
            (U, row("2024031509", 0.1, 1, 1)),
            (U, row("2024031510", 50.05, 2, 1)), // T1 twice counts once
            // batch 3: user 2 moves to 10 (B2 T2, premium missing so still 0.1): 09 is empty;
            // user 4 (D2 T4 20), whose yesterday order was filtered
            (D, row("2024031509", 0.1, 1, 1)),
            (U, row("2024031510", 70.15, 4, 3)),
        ]
    );
    assert_eq!(table(&t), vec![row("2024031510", 70.15, 4, 3)]);

    let dead: Vec<_> =
        out.dead_letters.iter().map(|(p, reason)| (p.source, p.partition, p.offset, reason.as_str())).collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!((dead[0].0, dead[0].1, dead[0].2), (0, 0, 4)); // the truncated JSON line
    assert!(dead[0].3.contains("EOF while parsing"), "{}", dead[0].3);
    assert_eq!((dead[1].0, dead[1].1, dead[1].2), (0, 0, 5));
    assert!(dead[1].3.contains("missing field `id`"), "{}", dead[1].3);
    // the yesterday order and the one without gmt_modified
    assert_eq!(t.metric("filtered"), Some(2.0));
}

#[test]
fn today_filter_in_utc() {
    let (t, out) = case("today_filter_utc").run_native::<HourlyPremium>().unwrap();
    assert_eq!(
        ops(&t),
        vec![
            (U, row("2024031500", 20.0, 1, 1)), // user 2 at 00:00:00.000 UTC
            (U, row("2024031502", 40.0, 1, 1)), // user 4 at 02:15 UTC
            (U, row("2024031502", 55.5, 2, 2)), // user 1 at 02:40 UTC
        ]
    );
    assert_eq!(table(&t), vec![row("2024031500", 20.0, 1, 1), row("2024031502", 55.5, 2, 2)]);
    assert!(out.dead_letters.is_empty());
    assert_eq!(t.metric("filtered"), Some(3.0));
}

#[test]
fn same_input_with_the_default_offset_keeps_more() {
    // The instants of `today_filter_utc` in UTC+8, where today starts at
    // 2024-03-14 16:00 UTC: every order passes.
    let mut c = case("today_filter_utc");
    c.parameters.clear();
    let (t, _) = c.run_native::<HourlyPremium>().unwrap();
    assert_eq!(
        ops(&t),
        vec![
            (U, row("2024031500", 30.0, 1, 1)), // user 3 at 00:30 +8
            (U, row("2024031507", 10.0, 1, 1)), // user 1 at 23:59:59.999 UTC
            (U, row("2024031508", 20.0, 1, 1)), // user 2
            (U, row("2024031510", 40.0, 1, 1)), // user 4
            // batch 2: user 3 moves from 00 to 07:00, user 1 from 07 to 10:40
            (D, row("2024031500", 30.0, 1, 1)),
            (U, row("2024031507", 35.0, 1, 1)),
            (U, row("2024031510", 55.5, 2, 2)),
        ]
    );
    assert_eq!(
        table(&t),
        vec![row("2024031507", 35.0, 1, 1), row("2024031508", 20.0, 1, 1), row("2024031510", 55.5, 2, 2)]
    );
}

#[test]
fn since_ms_replays_old_data() {
    let (t, out) = case("since_ms_replay").run_native::<HourlyPremium>().unwrap();
    assert_eq!(
        ops(&t),
        vec![
            (U, row("1970010108", -5.5, 1, 1)),
            // 0.1 + 0.2 + 0.7, exactly; P1 twice (holders M1 and M3)
            (U, row("2023060108", 1.0, 2, 3)),
            (U, row("2023060223", 1.0, 1, 1)),
            (U, row("2023060108", 1.05, 2, 3)), // user 11: 0.2 -> 0.25
        ]
    );
    assert_eq!(
        table(&t),
        vec![row("1970010108", -5.5, 1, 1), row("2023060108", 1.05, 2, 3), row("2023060223", 1.0, 1, 1)]
    );
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].0.offset, 5);
    // only the order before `since_ms`
    assert_eq!(t.metric("filtered"), Some(1.0));
}

fn order(id: i64, order_no: &str, tel: &str, gmt_modified: i64, premium: f64) -> TestRecord {
    TestRecord::json(&json!({
        "id": id, "order_no": order_no, "customer_tel": tel,
        "gmt_modified": gmt_modified, "account_payble": premium,
    }))
}

fn tester(now: i64) -> JobTester<HourlyPremium> {
    JobTester::builder().source(SOURCE).sink(SINK).processing_time(now).open().unwrap()
}

const MIN: i64 = 60_000;
/// 2024-03-15 00:00:00 +08:00
const MAR15_CST: i64 = 1_710_432_000_000;

#[test]
fn today_follows_processing_time_across_midnight() {
    // 2024-03-14 23:50 +08:00
    let mut t = tester(MAR15_CST - 10 * MIN);
    t.send(order(1, "A", "T1", MAR15_CST - 60 * MIN, 5.0)).unwrap(); // 23:00, today
    t.advance_processing_time(20 * MIN).unwrap(); // now 2024-03-15 00:10
    t.send(order(2, "B", "T2", MAR15_CST - 30 * MIN, 7.0)).unwrap(); // 23:30, now yesterday
    t.send(order(3, "C", "T3", MAR15_CST + 5 * MIN, 9.0)).unwrap(); // 00:05
    // Like the SQL, rows that passed the filter stay: the bound only applies to new input.
    assert_eq!(table(&t), vec![row("2024031423", 5.0, 1, 1), row("2024031500", 9.0, 1, 1)]);
}

#[test]
fn many_retractions_stay_exact() {
    let mut t = tester(MAR15_CST + 12 * 60 * MIN);
    let at = MAR15_CST + 11 * 60 * MIN; // 11:00
    t.send(order(1, "A", "T1", at, 0.7)).unwrap();
    for i in 0..300 {
        let premium = [0.01, 1000.01, 33.33][i % 3];
        t.send(order(2, "B", "T2", at + i as i64, premium)).unwrap();
    }
    // last update of user 2: i = 299 -> 33.33; 0.7 + 33.33 = 34.03 (naive f64
    // add/subtract would end at 34.030000000000044)
    assert_eq!(table(&t), vec![row("2024031511", 34.03, 2, 2)]);
}

#[test]
fn null_order_no_and_phone_are_not_counted() {
    let mut t = tester(MAR15_CST + 12 * 60 * MIN);
    t.send_json(json!({ "id": 1, "gmt_modified": MAR15_CST + 60 * MIN })).unwrap();
    assert_eq!(table(&t), vec![row("2024031501", 0.0, 0, 0)]);
    // a later order fills the columns in
    t.send_json(json!({ "id": 1, "order_no": "A", "gmt_modified": MAR15_CST + 61 * MIN, "account_payble": null }))
        .unwrap();
    assert_eq!(table(&t), vec![row("2024031501", 0.0, 1, 0)]);
}

#[test]
fn a_user_moving_back_restores_the_hour() {
    let mut t = tester(MAR15_CST + 12 * 60 * MIN);
    t.send(order(1, "A", "T1", MAR15_CST + 60 * MIN, 10.0)).unwrap(); // 01:00
    t.send(order(1, "A", "T1", MAR15_CST + 120 * MIN, 10.0)).unwrap(); // 02:00
    t.send(order(1, "A", "T1", MAR15_CST + 61 * MIN, 10.0)).unwrap(); // 01:01
    assert_eq!(
        ops(&t),
        vec![
            (U, row("2024031501", 10.0, 1, 1)),
            (D, row("2024031501", 10.0, 1, 1)),
            (U, row("2024031502", 10.0, 1, 1)),
            // one batch's changes come in hour order
            (U, row("2024031501", 10.0, 1, 1)),
            (D, row("2024031502", 10.0, 1, 1)),
        ]
    );
}

#[test]
fn a_change_inside_an_hour_that_leaves_the_row_alike_emits_nothing() {
    let mut t = tester(MAR15_CST + 12 * 60 * MIN);
    t.send(order(1, "A", "T1", MAR15_CST + 60 * MIN, 10.0)).unwrap();
    t.send(order(1, "A", "T1", MAR15_CST + 70 * MIN, 10.0)).unwrap(); // new gmt_modified, same hour and sums
    assert_eq!(ops(&t), vec![(U, row("2024031501", 10.0, 1, 1))]);
}

#[test]
fn bad_parameters_fail_open() {
    let open = |name: &str, value: &str| {
        JobTester::<HourlyPremium>::builder().source(SOURCE).sink(SINK).param(name, value).open().err()
    };
    assert!(open("utc_offset_minutes", "eight").unwrap().contains("utc_offset_minutes"));
    assert!(open("utc_offset_minutes", "1440").unwrap().contains("±18 hours"));
    assert!(open("since_ms", "yesterday").unwrap().contains("since_ms"));
    assert!(open("utc_offset_minutes", "-300").is_none());
}

#[test]
fn extreme_values_do_not_break_the_job() {
    let mut t =
        JobTester::<HourlyPremium>::builder().source(SOURCE).sink(SINK).param("since_ms", i64::MIN).open().unwrap();
    t.send(order(1, "A", "T1", MAR15_CST, 1e15)).unwrap();
    t.send(order(2, "B", "T2", i64::MAX, 1.0)).unwrap();
    t.send(order(3, "C", "T3", i64::MIN, -1.0)).unwrap();
    let reasons: Vec<_> = t.dead_letters().into_iter().map(|d| d.reason).collect();
    assert_eq!(reasons, ["account_payble is out of range (±1e12)"]);
    // far outside any real calendar, but still one row per hour
    assert_eq!(t.upserted(SINK, &["biz_date"]).len(), 2);
}
