//! Reproducible scenarios, run natively by this crate's tests and against
//! the compiled component by the runtime's tests.

use jinpan_model::samples::T0;
use jinpan_model::tables::REPAYMENT;
use serde_json::{Value, json};
use sluice_sdk::testing::{Case, TestRecord};

use crate::SOURCE;

pub const DAY: i64 = 86_400_000;

/// A row of 盘宝's status table, as the SQL source gives it.
pub fn status(order_id: &str, period: i64, status: &str, repaid_amount: Value, updated_at: i64) -> Value {
    let paid = !repaid_amount.is_null();
    json!({
        "order_id": order_id,
        "user_id": 10_000_001,
        "period": period,
        "status": status,
        "repaid_amount": repaid_amount,
        "repaid_time": if paid { Value::from(updated_at) } else { Value::Null },
        "updated_at": updated_at,
    })
}

fn rec(row: Value) -> TestRecord {
    TestRecord::json(&row)
}

pub fn cases() -> Vec<Case> {
    let order = "JP20240315000001";
    vec![Case::new("statuses_into_repayment").source(SOURCE).sink(REPAYMENT).processing_time(T0 + 120 * DAY).batch(
        vec![
            // a NUMERIC column arrives as a JSON number, text columns as strings
            rec(status(order, 1, "PAID", json!(1060.00), T0 + 31 * DAY)),
            rec(status(order, 2, "PAID", json!("1060.00"), T0 + 62 * DAY)),
            // a history: the newer status wins whatever the order of the rows
            rec(status(order, 2, "OVERDUE", Value::Null, T0 + 61 * DAY)),
            rec(status(order, 3, "OVERDUE", Value::Null, T0 + 92 * DAY)),
            rec(status("JP20240315000007", 1, "WITHDRAWN", Value::Null, T0 + 2 * DAY)),
            rec(status(order, 3, "LOST", Value::Null, T0 + 93 * DAY)),
            rec(status(order, 0, "PAID", json!("1.00"), T0 + 93 * DAY)),
            rec(status(order, 4, "PAID", json!("about 1060"), T0 + 93 * DAY)),
        ],
    )]
}
