//! Expected rows are worked out by hand from the case inputs.

use jinpan_model::samples::{T0, order, report};
use jinpan_sync::tables::{self, TABLES};
use jinpan_sync::{JinpanSync, SOURCE, cases};
use serde_json::{Value, json};
use sluice_sdk::RowOp;
use sluice_sdk::testing::{Case, JobTester, TestRecord};

const MINUTE: i64 = 60_000;
const ORDER1: &str = "JP20240315000001";

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case `{name}`"))
}

/// The table a sink would hold: rows by key, later upserts replacing
/// earlier ones.
fn table(t: &JobTester<JinpanSync>, name: &str) -> Vec<Value> {
    let key = tables::table(name).unwrap().key;
    t.upserted(name, key).into_values().collect()
}

fn count(t: &JobTester<JinpanSync>, name: &str) -> usize {
    table(t, name).len()
}

#[test]
fn there_are_two_cases() {
    let names: Vec<_> = cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["one_order_into_ten_tables", "versions_duplicates_and_dirt"]);
}

#[test]
fn one_order_into_ten_tables() {
    let (t, out) = case("one_order_into_ten_tables").run_native::<JinpanSync>().unwrap();
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert!(t.emitted_rows().iter().all(|r| r.op == RowOp::Upsert));
    let v = T0 + 5 * MINUTE;
    assert_eq!(
        table(&t, tables::ORDER),
        vec![json!({
            "user_id": 10_000_001, "merchant_id": "M0003", "loan_id": "LN20240315000001", "product": "分期贷",
            "amount": "3000.00", "periods": 3, "annual_rate": "0.2400", "status": "APPROVED", "apply_time": T0,
            "report_id": "CR-0", "report_source": 2, "order_id": ORDER1, "gmt_modified": v,
        })]
    );
    assert_eq!(
        table(&t, tables::IDENTITY),
        vec![json!({
            "user_id": 10_000_001, "name": "张伟", "id_card": "440305199003071235", "gender": "男",
            "birthday": "1990-03-07", "nation": "汉族", "id_address": "广东省深圳市南山区桃园路1号",
            "order_id": ORDER1, "gmt_modified": v,
        })]
    );
    assert_eq!(
        table(&t, tables::BANK_CARD),
        vec![json!({
            "user_id": 10_000_001, "card_no": "6222021234567890128", "bank_name": "中国工商银行",
            "card_type": "DEBIT", "reserved_mobile": "13800138000", "order_id": ORDER1, "gmt_modified": v,
        })],
        "the card without a number is not stored"
    );
    assert_eq!(
        t.emitted(tables::PHONE).len(),
        2,
        "the mobile listed twice is written once: {:?}",
        t.emitted(tables::PHONE)
    );
    assert_eq!(
        table(&t, tables::REPAYMENT)[0],
        json!({
            "period": 1, "user_id": 10_000_001, "due_date": "2024-04-15", "principal": "1000.00",
            "interest": "60.00", "order_id": ORDER1, "gmt_modified": v,
        })
    );
    let counts: Vec<(&str, usize)> = TABLES.iter().map(|tb| (tb.name, count(&t, tb.name))).collect();
    assert_eq!(
        counts,
        [
            (tables::ORDER, 1),
            (tables::IDENTITY, 1),
            (tables::ADDRESS, 2),
            (tables::BANK_CARD, 1),
            (tables::COMPANY, 1),
            (tables::CONTACT, 2),
            (tables::PHONE, 2),
            (tables::DEVICE, 1),
            (tables::PLATFORM_ACCOUNT, 2),
            (tables::REPAYMENT, 3),
        ]
    );
    assert_eq!(t.metric("rows_written"), Some(16.0));
    assert_eq!(t.metric("rows_superseded"), Some(1.0));
    assert_eq!(t.metric("rows_without_key"), Some(2.0));
}

#[test]
fn versions_duplicates_and_dirt() {
    let (t, out) = case("versions_duplicates_and_dirt").run_native::<JinpanSync>().unwrap();
    let dead: Vec<_> = out.dead_letters.iter().map(|(p, reason)| (p.offset, reason.as_str())).collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0, 2);
    assert!(dead[0].1.contains("EOF while parsing"), "{}", dead[0].1);
    assert_eq!(dead[1].0, 3);
    assert!(dead[1].1.contains("missing field `user_id`"), "{}", dead[1].1);

    // Each order at its newest version; the late PENDING and the replay
    // changed nothing.
    let orders: Vec<(String, String)> = table(&t, tables::ORDER)
        .iter()
        .map(|o| (o["order_id"].as_str().unwrap().into(), o["status"].as_str().unwrap().into()))
        .collect();
    let expected = [(ORDER1, "APPROVED"), ("JP20240315000002", "REJECTED"), ("JP20240315000003", "PENDING")];
    assert_eq!(orders, expected.map(|(o, s)| (o.to_owned(), s.to_owned())));

    // User-level rows come from the newest order that has them: the third.
    let identity = table(&t, tables::IDENTITY);
    assert_eq!(identity.len(), 1);
    assert_eq!(identity[0]["order_id"], "JP20240315000003");
    let home: Vec<Value> = table(&t, tables::ADDRESS).into_iter().filter(|a| a["address_type"] == "HOME").collect();
    assert_eq!(home[0]["detail"], "浦东新区世纪大道88号");
    assert_eq!(table(&t, tables::COMPANY)[0]["company_name"], Value::Null, "the newest report has no name");
    let cards: Vec<(Value, Value)> =
        table(&t, tables::BANK_CARD).iter().map(|c| (c["card_no"].clone(), c["order_id"].clone())).collect();
    assert_eq!(
        cards,
        [
            (json!("6217001234567890125"), json!("JP20240315000003")),
            (json!("6222021234567890128"), json!("JP20240315000003")),
        ]
    );
    assert_eq!(count(&t, tables::REPAYMENT), 3, "only the approval has a plan");

    // What was emitted, batch by batch: the PENDING version's 13 rows once
    // (not again for the redelivery), the approval's 16, the second order's
    // row and its new card (the rest is older than the approval), and the
    // third order's 14 rows; nothing for the late and the replayed message.
    assert_eq!(t.emitted_rows().len(), 13 + 16 + 2 + 14);
    assert_eq!(t.metric("orders"), Some(7.0));
}

#[test]
fn arrival_order_does_not_matter() {
    // Every permutation of three versions of two orders gives the same tables.
    let messages = [
        order(ORDER1, 10_000_001, T0, "PENDING", report(0)),
        order(ORDER1, 10_000_001, T0 + 5 * MINUTE, "APPROVED", report(0)),
        order("JP20240315000003", 10_000_001, T0 + 30 * MINUTE, "PENDING", report(2)),
    ];
    let mut outcomes = Vec::new();
    for permutation in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let mut t = JobTester::<JinpanSync>::builder().source(SOURCE);
        for tb in TABLES {
            t = t.sink(tb.name);
        }
        let mut t = t.open().unwrap();
        for i in permutation {
            t.send(TestRecord::json(&messages[i])).unwrap();
        }
        outcomes.push(TABLES.iter().map(|tb| table(&t, tb.name)).collect::<Vec<_>>());
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]));
}
