//! Reproducible scenarios, run natively by this crate's tests and against
//! the compiled component by the runtime's tests.

use jinpan_model::samples::{T0, order, report};
use serde_json::{Value, json};
use sluice_sdk::testing::{Case, TestRecord};

use crate::SOURCE;
use crate::tables::TABLES;

const MINUTE: i64 = 60_000;

fn rec(row: &Value) -> TestRecord {
    TestRecord::json(row)
}

fn case(name: &str) -> Case {
    let mut case = Case::new(name).source(SOURCE).processing_time(T0 + 60 * MINUTE);
    for t in TABLES {
        case = case.sink(t.name);
    }
    case
}

pub fn cases() -> Vec<Case> {
    let pending = order("JP20240315000001", 10_000_001, T0, "PENDING", report(0));
    let approved = order("JP20240315000001", 10_000_001, T0 + 5 * MINUTE, "APPROVED", report(0));
    // A second order of the same user, applied for in between: older than
    // the approval, so only what the approval's report lacks is written.
    let second = order("JP20240315000002", 10_000_001, T0 + 2 * MINUTE, "REJECTED", report(1));
    // A third, newer one: the user moved to Shanghai.
    let third = order("JP20240315000003", 10_000_001, T0 + 30 * MINUTE, "PENDING", report(2));
    vec![
        case("one_order_into_ten_tables").batch(vec![rec(&approved)]),
        case("versions_duplicates_and_dirt")
            .batch(vec![
                rec(&pending),
                rec(&pending), // a redelivery
                TestRecord { value: br#"{"order_id": "JP20240315000009", "user_id": "#.to_vec(), ..Default::default() },
                rec(&json!({ "order_id": "JP20240315000010", "gmt_modified": T0 })), // no user_id
            ])
            .batch(vec![rec(&approved), rec(&pending) /* late: older than the approval */, rec(&second)])
            .batch(vec![rec(&third), rec(&approved) /* replayed */]),
    ]
}
