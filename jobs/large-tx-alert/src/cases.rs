//! Reproducible scenarios, run natively by this crate's tests and against the
//! compiled component by the runtime's parity suite. They fix the
//! processing time; the job never reads the clock besides state TTLs.

use serde_json::{Value, json};
use sluice_sdk::testing::{Case, TestRecord};

use crate::{ALERT_TABLE, ALERT_TOPIC, CUSTOMERS, THRESHOLDS, TXN_SOURCE};

/// 2024-03-15 10:30:00 +08:00.
pub const NOW: i64 = 1_710_469_800_000;
const MINUTE: i64 = 60_000;

/// A movement `minutes` after 10:00 +08:00.
pub fn txn(id: &str, customer: &str, direction: &str, amount: Value, minutes: i64) -> Value {
    json!({
        "txn_id": id,
        "account_no": format!("6229{customer:0>15}"),
        "customer_id": customer,
        "direction": direction,
        "amount": amount,
        "currency": "CNY",
        "channel": "mobile_banking",
        "summary": "转账",
        "branch_id": "150102",
        "txn_time": NOW - 30 * MINUTE + minutes * MINUTE,
    })
}

fn customer(id: &str, segment: &str) -> (String, Value) {
    (
        id.to_owned(),
        json!({ "customer_id": id, "name": "王*", "segment": segment, "branch_id": "150102", "manager_id": format!("M-{id}") }),
    )
}

fn segment(code: &str, threshold: Value) -> (String, Value) {
    (code.to_owned(), json!({ "segment": code, "segment_name": code, "threshold": threshold }))
}

fn rec(row: Value) -> TestRecord {
    TestRecord::json(&row)
}

fn raw(text: &str) -> TestRecord {
    TestRecord { value: text.as_bytes().to_vec(), ..Default::default() }
}

fn case(name: &str) -> Case {
    Case::new(name).source(TXN_SOURCE).sink(ALERT_TOPIC).sink(ALERT_TABLE).processing_time(NOW)
}

/// The reference data most cases use.
fn with_reference(c: Case) -> Case {
    c.dimension(
        CUSTOMERS,
        vec![customer("C1", "mass"), customer("C2", "wealth"), customer("C3", "vip"), customer("C5", "corporate")],
    )
    .dimension(
        THRESHOLDS,
        // text as from a Redis hash, numbers as from a SQL table
        vec![
            segment("mass", json!("50000.00")),
            segment("wealth", json!("200000")),
            segment("corporate", json!(500000.0)),
        ],
    )
}

pub fn cases() -> Vec<Case> {
    vec![
        // The segment threshold, the default for unknown customers and
        // segments, duplicates and every way a movement is rejected.
        with_reference(case("thresholds_by_segment"))
            .batch(vec![
                rec(txn("T1", "C1", "in", json!("50000.00"), 1)), // mass, exactly the threshold: alert
                rec(txn("T2", "C1", "out", json!("49999.99"), 2)), // one cent under
                rec(txn("T3", "C2", "out", json!(150000), 3)),    // wealth 200000: no
                rec(txn("T4", "C3", "in", json!("60000"), 4)),    // segment `vip` unknown: default 50000
                rec(txn("T5", "C4", "out", json!(50000.5), 5)),   // customer unknown: default
                rec(txn("T6", "C5", "in", json!("499999.99"), 6)), // corporate 500000: no
            ])
            .batch(vec![
                rec(txn("T1", "C1", "in", json!("50000.00"), 1)), // a duplicate: nothing
                raw(r#"{"txn_id": "T7", "amount": "#),
                rec(txn("T8", "C1", "in", json!("12.345"), 8)),
                rec(txn("T9", "C1", "sideways", json!("100.00"), 9)),
                rec(txn("T10", "C1", "out", json!("-60000.00"), 10)),
                rec(txn("T4", "C3", "in", json!("60000"), 4)), // another duplicate
            ]),
        // The recent-average rule: history, minimum history, minimum amount,
        // both rules on one movement, and a late movement in arrival order.
        with_reference(case("sudden_outflow"))
            .batch(vec![
                rec(txn("A1", "C1", "out", json!("1000.00"), 1)),
                rec(txn("A2", "C1", "out", json!("2000.00"), 2)),
                rec(txn("A3", "C1", "in", json!("30000.00"), 3)), // inflows are not history
                rec(txn("A4", "C1", "out", json!("9999.99"), 4)), // 2 of history only
            ])
            .batch(vec![
                // history 1000, 2000, 9999.99: avg 4333.33; 5x = 21666.65
                rec(txn("A5", "C1", "out", json!("21666.64"), 5)), // under 5x: no
                // history 1000, 2000, 9999.99, 21666.64: avg 8666.6575; 5x = 43333.2875
                rec(txn("A6", "C1", "out", json!("43333.29"), 6)), // sudden, not large
                // a late movement (10:00 - 50 min) of C2, first outflow: no history yet
                rec(txn("B1", "C2", "out", json!("300000.00"), -50)), // wealth 200000: large
            ])
            .batch(vec![
                // history of C1 now 5 outflows (sum 77999.92, avg 15599.984): both rules
                rec(txn("A7", "C1", "out", json!("80000.00"), 7)),
                // C5's small outflows stay under outflow_min_amount even at 5x
                rec(txn("E1", "C5", "out", json!("10.00"), 8)),
                rec(txn("E2", "C5", "out", json!("10.00"), 9)),
                rec(txn("E3", "C5", "out", json!("10.00"), 10)),
                rec(txn("E4", "C5", "out", json!("9000.00"), 11)),
            ]),
        // A short window: only the last 2 outflows count, multiple 3.
        with_reference(case("short_window"))
            .param("outflow_window", 2)
            .param("outflow_min_history", 2)
            .param("outflow_multiple", 3)
            .param("outflow_min_amount", "100")
            .batch(vec![
                rec(txn("W1", "C1", "out", json!("10000.00"), 1)),
                rec(txn("W2", "C1", "out", json!("100.00"), 2)),
                rec(txn("W3", "C1", "out", json!("100.00"), 3)),
                // last two: 100, 100 -> avg 100; 300 >= 3 x 100
                rec(txn("W4", "C1", "out", json!("300.00"), 4)),
            ]),
        // Reference feeds keep the dimensions current.
        Case::new("reference_feeds")
            .source(TXN_SOURCE)
            .source(CUSTOMERS)
            .source(THRESHOLDS)
            .sink(ALERT_TOPIC)
            .sink(ALERT_TABLE)
            .processing_time(NOW)
            .dimension(CUSTOMERS, vec![])
            .dimension(THRESHOLDS, vec![segment("mass", json!("50000.00"))])
            .batch(vec![
                rec(json!({ "segment": "farmer", "segment_name": "农户", "threshold": "1000.00" })).from_source(2),
                rec(customer("C9", "farmer").1).from_source(1),
                rec(json!({ "name": "no id" })).from_source(1),
                rec(json!({ "segment": "broken", "threshold": "n/a" })).from_source(2),
            ])
            .batch(vec![rec(txn("R1", "C9", "out", json!("1000.00"), 1))])
            .batch(vec![rec(customer("C9", "mass").1).from_source(1)])
            .batch(vec![rec(txn("R2", "C9", "out", json!("1000.00"), 2))]),
    ]
}
