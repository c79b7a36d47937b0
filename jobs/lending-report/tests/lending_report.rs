//! Expected tables are worked out by hand from the case inputs (see the
//! comments), not by re-running the job's logic.

use lending_report::cases::{loan, mar, repay, user};
use lending_report::{
    APPROVAL, DISBURSEMENT, FUNNEL, LOAN_SOURCE, LendingReport, REPAY_SOURCE, USER_SOURCE, VINTAGE, cases,
};
use serde_json::{Value, json};
use sluice_sdk::RowOp;
use sluice_sdk::testing::{Case, JobTester};

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case `{name}`"))
}

/// The final table of an upsert sink, rows in key order.
fn table(t: &JobTester<LendingReport>, sink: &str) -> Vec<Value> {
    let keys: &[&str] = match sink {
        FUNNEL => &["reg_date", "channel"],
        APPROVAL => &["apply_date", "prod_type"],
        DISBURSEMENT => &["lend_date", "prod_type"],
        _ => &["lend_month", "mob"],
    };
    t.upserted(sink, keys).into_values().collect()
}

fn funnel(date: &str, channel: &str, counts: [i64; 4], pass: Value, conversion: Value) -> Value {
    json!({ "reg_date": date, "channel": channel, "registered": counts[0], "applied": counts[1],
            "approved": counts[2], "disbursed": counts[3], "pass_rate": pass, "conversion_rate": conversion })
}

fn approval(date: &str, prod_type: i64, counts: [i64; 4], pass: Value) -> Value {
    json!({ "apply_date": date, "prod_type": prod_type, "applied": counts[0], "auditing": counts[1],
            "rejected": counts[2], "approved": counts[3], "pass_rate": pass })
}

fn disbursement(date: &str, prod_type: i64, loans: i64, first_loans: i64, amount: f64) -> Value {
    json!({ "lend_date": date, "prod_type": prod_type, "loans": loans, "first_loans": first_loans, "amount": amount })
}

fn vintage(month: &str, mob: i64, loans: i64, o1: i64, o30: i64, r1: f64, r30: f64) -> Value {
    json!({ "lend_month": month, "mob": mob, "loans": loans, "overdue_1": o1, "overdue_30": o30,
            "overdue_1_rate": r1, "overdue_30_rate": r30 })
}

#[test]
fn there_are_four_cases() {
    let names: Vec<_> = cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["state_tables", "out_of_order", "vintage", "rejects"]);
}

#[test]
fn state_tables() {
    let (t, out) = case("state_tables").run_native::<LendingReport>().unwrap();
    assert!(out.dead_letters.is_empty());
    assert_eq!(
        table(&t, FUNNEL),
        vec![
            // user 2 closed their account: only user 1 (applied, approved, disbursed)
            funnel("2024-03-15", "douyin", [1, 1, 1, 1], json!(1.0), json!(1.0)),
            funnel("2024-03-15", "wechat", [1, 0, 0, 0], Value::Null, json!(0.0)),
            funnel("2024-03-16", "wechat", [1, 1, 0, 0], json!(0.0), json!(0.0)),
        ]
    );
    assert_eq!(
        table(&t, APPROVAL),
        vec![
            approval("2024-03-15", 1, [1, 0, 0, 1], json!(1.0)),
            approval("2024-03-15", 2, [1, 0, 1, 0], json!(0.0)),
            approval("2024-03-16", 1, [1, 1, 0, 0], Value::Null),
        ]
    );
    assert_eq!(table(&t, DISBURSEMENT), vec![disbursement("2024-03-15", 1, 1, 1, 2500.0)]);
    // the data reached March 20: month on book 0 only
    assert_eq!(table(&t, VINTAGE), vec![vintage("2024-03", 0, 1, 0, 0, 0.0, 0.0)]);
    assert_eq!(t.metric("stale_rows"), Some(1.0));

    // The douyin funnel row through time: one upsert per batch that changed
    // it (mini-batch output), retractions included.
    let douyin: Vec<Value> = t
        .emitted_rows()
        .into_iter()
        .filter(|r| r.sink == FUNNEL && r.value["channel"] == "douyin")
        .map(|r| {
            assert_eq!(r.op, RowOp::Upsert);
            json!([r.value["registered"], r.value["applied"], r.value["approved"], r.value["disbursed"]])
        })
        .collect();
    assert_eq!(
        douyin,
        [
            json!([2, 2, 0, 0]), // batch 1: users 1 and 2 registered and applied
            json!([2, 2, 1, 1]), // batch 2: loan 11 approved, then disbursed
            json!([1, 1, 1, 1])  // batch 3: user 2 closed their account
        ]
    );
}

#[test]
fn out_of_order_converges_to_the_same_tables() {
    let (t, _) = case("out_of_order").run_native::<LendingReport>().unwrap();
    assert_eq!(table(&t, FUNNEL), vec![funnel("2024-03-15", "sms", [1, 1, 1, 1], json!(1.0), json!(1.0))]);
    assert_eq!(
        table(&t, APPROVAL),
        vec![approval("2024-03-10", 2, [1, 0, 0, 1], json!(1.0)), approval("2024-03-15", 1, [1, 0, 0, 1], json!(1.0))]
    );
    // loan 52 (March 10) arrived last but is user 5's first loan: loan 51 became a repeat loan
    assert_eq!(
        table(&t, DISBURSEMENT),
        vec![disbursement("2024-03-10", 2, 1, 1, 6000.0), disbursement("2024-03-15", 1, 1, 0, 800.0)]
    );
    assert_eq!(table(&t, VINTAGE), vec![vintage("2024-03", 0, 2, 1, 0, 0.5, 0.0)]);
    let first_loans: Vec<_> = t
        .emitted_rows()
        .into_iter()
        .filter(|r| r.sink == DISBURSEMENT && r.value["lend_date"] == "2024-03-15")
        .map(|r| r.value["first_loans"].clone())
        .collect();
    assert_eq!(first_loans, [json!(1), json!(0)]);

    // The same events in order give the same tables.
    let mut c = case("out_of_order");
    let mut records: Vec<_> = c.batches.drain(..).flatten().collect();
    records.sort_by_key(|r| {
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        v["updatetime"].as_i64().or(v["create_time"].as_i64()).unwrap()
    });
    let in_order = records.into_iter().fold(c, |c, r| c.batch(vec![r]));
    let (u, _) = in_order.run_native::<LendingReport>().unwrap();
    for sink in [FUNNEL, APPROVAL, DISBURSEMENT, VINTAGE] {
        assert_eq!(table(&u, sink), table(&t, sink), "{sink}");
    }
}

#[test]
fn vintage_months_on_book() {
    let (t, _) = case("vintage").run_native::<LendingReport>().unwrap();
    let third = 0.3333;
    assert_eq!(
        table(&t, VINTAGE),
        vec![
            vintage("2024-03", 0, 3, 1, 0, third, 0.0),    // loan 62: 1+ on 03-28
            vintage("2024-03", 1, 3, 2, 0, 0.6667, 0.0),   // loan 61: 1+ on 04-06
            vintage("2024-03", 2, 3, 2, 1, 0.6667, third), // loan 61: 30+ on 05-05
            vintage("2024-03", 3, 3, 2, 1, 0.6667, third), // June: reached by the clock
            vintage("2024-04", 0, 1, 0, 0, 0.0, 0.0),
            vintage("2024-04", 1, 1, 1, 0, 1.0, 0.0), // loan 71: 1+ on 05-03
            vintage("2024-04", 2, 1, 1, 0, 1.0, 0.0),
        ]
    );
    assert_eq!(
        table(&t, DISBURSEMENT),
        vec![
            disbursement("2024-03-05", 2, 1, 1, 9000.0),
            disbursement("2024-03-20", 1, 1, 0, 500.0),
            disbursement("2024-03-31", 1, 1, 1, 700.0), // 23:00 +08:00 is still March 31
            disbursement("2024-04-02", 1, 1, 0, 1500.0),
        ]
    );
    // April's month on book 2 appeared when June's event arrived
    let rows = t.emitted_rows();
    let june = rows.iter().position(|r| r.sink == VINTAGE && r.value["lend_month"] == "2024-04" && r.value["mob"] == 2);
    assert_eq!(june, Some(rows.len() - 1));
}

#[test]
fn max_mob_caps_the_months_on_book() {
    let (t, _) = case("vintage").param("max_mob", 1).run_native::<LendingReport>().unwrap();
    let mobs: Vec<_> = table(&t, VINTAGE).iter().map(|r| (r["lend_month"].clone(), r["mob"].clone())).collect();
    assert_eq!(
        mobs,
        [
            (json!("2024-03"), json!(0)),
            (json!("2024-03"), json!(1)),
            (json!("2024-04"), json!(0)),
            (json!("2024-04"), json!(1))
        ]
    );
}

#[test]
fn rejects() {
    let (t, out) = case("rejects").run_native::<LendingReport>().unwrap();
    let dead: Vec<(u32, i64, &str)> = out.dead_letters.iter().map(|(p, r)| (p.source, p.offset, r.as_str())).collect();
    assert_eq!(dead.len(), 7, "{dead:?}");
    assert!(dead[0].2.contains("EOF while parsing"), "{dead:?}");
    assert!(dead[1].2.contains("missing field `apply_amount`"), "{dead:?}");
    assert_eq!(
        dead[2..],
        [
            (1, 1, "status 9 is not a loan_list status (1..=7)"),
            (1, 2, "loan 4 has status 6 but no lend_time"),
            (1, 3, "amount \"1.005\" is not an amount of yuan"),
            (2, 0, "due_date `2024-02-30` is not YYYY-MM-DD"),
            (2, 1, "dpd -1 is negative"),
        ]
    );
    // only loan 8 counts
    assert_eq!(table(&t, APPROVAL), vec![approval("2024-03-15", 1, [1, 0, 0, 1], json!(1.0))]);
    assert_eq!(table(&t, VINTAGE), vec![vintage("2024-03", 0, 1, 0, 0, 0.0, 0.0)]);
}

#[test]
fn a_loan_moving_to_another_borrower_moves_its_funnel_flags() {
    let mut t = JobTester::<LendingReport>::builder()
        .source(USER_SOURCE)
        .source(LOAN_SOURCE)
        .source(REPAY_SOURCE)
        .sink(FUNNEL)
        .sink(APPROVAL)
        .sink(DISBURSEMENT)
        .sink(VINTAGE)
        .open()
        .unwrap();
    t.send(user(1, "ground", mar(2, 9), mar(2, 9), true)).unwrap();
    t.send(user(2, "ground", mar(2, 10), mar(2, 10), true)).unwrap();
    t.send(loan(9, 1, 1, 5, "100", mar(3, 9), mar(3, 10), Some(mar(3, 10)))).unwrap();
    // a correction: the loan belongs to user 2
    t.send(loan(9, 2, 1, 5, "100", mar(3, 9), mar(3, 11), Some(mar(3, 10)))).unwrap();
    assert_eq!(table(&t, FUNNEL), vec![funnel("2024-03-02", "ground", [2, 1, 1, 1], json!(1.0), json!(0.5))]);
    assert_eq!(table(&t, DISBURSEMENT), vec![disbursement("2024-03-03", 1, 1, 1, 100.0)]);
    let users: Value = t.value_state("users", &1_i64).unwrap();
    assert_eq!((users["loans"].clone(), users["disbursed"].clone()), (json!(0), json!([])));
    // a fact for an unknown loan waits in state for its loan
    t.send(repay(1, 77, "2024-03-05", "overdue", 30, mar(4 + 31, 2))).unwrap();
    assert_eq!(t.value_state::<Value>("loans", &77_i64).unwrap()["dpd30_day"], json!(19_817)); // 2024-04-04
}

#[test]
fn unknown_sources_and_bad_parameters_fail_at_open() {
    let open = |source: &str, k: &str, v: &str| {
        JobTester::<LendingReport>::builder().source(source).sink(FUNNEL).param(k, v).open().err()
    };
    assert!(open("orders", "max_mob", "3").unwrap().contains("source `orders`"));
    assert!(open(USER_SOURCE, "max_mob", "-1").unwrap().contains("`max_mob` = -1"));
    assert!(open(USER_SOURCE, "utc_offset_minutes", "2000").unwrap().contains("±18 hours"));
    assert!(open(USER_SOURCE, "max_mob", "3").is_none());
}
