//! Reproducible scenarios, run natively by this crate's tests and against the
//! compiled component by the runtime's parity suite. The job never reads
//! the clock; the cases fix it anyway.

use serde_json::{Value, json};
use sluice_sdk::testing::{Case, TestRecord};

use crate::{APPROVAL, DISBURSEMENT, FUNNEL, LOAN_SOURCE, REPAY_SOURCE, USER_SOURCE, VINTAGE};

/// 2024-03-01 00:00:00 +08:00.
pub const MAR1: i64 = 1_709_222_400_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// 2024-03-`day` `hour`:00 +08:00 (days past 31 run into April and on).
pub fn mar(day: i64, hour: i64) -> i64 {
    MAR1 + (day - 1) * DAY + hour * HOUR
}

/// A `u_user` row, from source 0.
pub fn user(id: i64, channel: &str, inserttime: i64, updatetime: i64, active: bool) -> TestRecord {
    let row = json!({
        "id": id, "username": format!("138****{id:04}"), "mobile": format!("138****{id:04}"),
        "nickname": format!("user{id}"), "role_type": -1, "type": 0, "status": 0,
        "on_off": if active { "1" } else { "0" }, "channel": channel,
        "inserttime": inserttime, "updatetime": updatetime, "isactive": i64::from(active),
    });
    TestRecord::json(&row).from_source(0)
}

/// A `loan_list` row, from source 1. `loan_amount` is set from approval on.
#[expect(clippy::too_many_arguments, reason = "one argument per column the cases vary")]
pub fn loan(
    id: i64,
    borrower: i64,
    prod_type: i64,
    status: i64,
    amount: &str,
    inserttime: i64,
    updatetime: i64,
    lend_time: Option<i64>,
) -> TestRecord {
    let row = json!({
        "id": id, "borrower_id": borrower, "apply_amount": amount,
        "loan_amount": if status >= 3 { Value::from(amount) } else { Value::Null },
        "period_no": if prod_type == 1 { 1 } else { 3 }, "term_quantity": if prod_type == 1 { 7 } else { 1 },
        "term_unit": if prod_type == 1 { "D" } else { "M" }, "product_id": 100 * prod_type + 1, "prod_type": prod_type,
        "interest": "0.00", "interest_rate": "0.00100", "service_fee": "0.00", "service_fee_discount": "0.00",
        "service_rate": "0.08000", "service_fee_type": 1, "overdue_penalty_rate": "0.00100",
        "status": status, "lend_time": lend_time, "inserttime": inserttime, "updatetime": updatetime,
    });
    TestRecord::json(&row).from_source(1)
}

/// A `repay_log` record, from source 2.
pub fn repay(id: i64, loan_id: i64, due_date: &str, event: &str, dpd: i64, create_time: i64) -> TestRecord {
    let row = json!({
        "id": id, "loan_id": loan_id, "borrower_id": 0, "period": 1, "due_date": due_date,
        "event": event, "dpd": dpd, "amount": if event == "repaid" { json!("100.00") } else { Value::Null },
        "create_time": create_time,
    });
    TestRecord::json(&row).from_source(2)
}

fn raw(source: u32, text: &str) -> TestRecord {
    TestRecord { value: text.as_bytes().to_vec(), source, ..Default::default() }
}

fn case(name: &str) -> Case {
    Case::new(name)
        .source(USER_SOURCE)
        .source(LOAN_SOURCE)
        .source(REPAY_SOURCE)
        .sink(FUNNEL)
        .sink(APPROVAL)
        .sink(DISBURSEMENT)
        .sink(VINTAGE)
        .processing_time(mar(20, 12))
}

pub fn cases() -> Vec<Case> {
    vec![
        // In order: registrations, applications moving through review, a
        // disbursement, a stale row, a logical delete.
        case("state_tables")
            .batch(vec![
                user(1, "douyin", mar(15, 10), mar(15, 10), true),
                user(2, "douyin", mar(15, 11), mar(15, 11), true),
                user(3, "wechat", mar(16, 0) - 1, mar(16, 0) - 1, true), // 23:59:59.999: still the 15th
                user(4, "wechat", mar(16, 0), mar(16, 0), true),
                loan(11, 1, 1, 1, "3000.00", mar(15, 10) + HOUR / 2, mar(15, 10) + HOUR / 2, None),
                loan(21, 2, 2, 1, "10000.00", mar(15, 12), mar(15, 12), None),
            ])
            .batch(vec![
                loan(11, 1, 1, 3, "2500.00", mar(15, 10) + HOUR / 2, mar(15, 11), None),
                loan(21, 2, 2, 2, "10000.00", mar(15, 12), mar(15, 13), None),
                loan(11, 1, 1, 5, "2500.00", mar(15, 10) + HOUR / 2, mar(15, 12), Some(mar(15, 12))),
                // the approval again: older than what is held, ignored
                loan(11, 1, 1, 3, "2500.00", mar(15, 10) + HOUR / 2, mar(15, 11), None),
            ])
            .batch(vec![
                user(2, "douyin", mar(15, 11), mar(20, 9), false), // account closed
                loan(41, 4, 1, 1, "1000", mar(16, 9), mar(16, 9), None),
            ]),
        // The same kind of facts in the worst order: loans before their
        // user, a stale status after a newer one, an earlier loan after a
        // later one (the first loan moves), a repayment fact twice.
        case("out_of_order")
            .batch(vec![
                loan(51, 5, 1, 5, "800.00", mar(15, 11), mar(15, 12), Some(mar(15, 12))),
                repay(901, 51, "2024-03-22", "overdue", 1, mar(23, 2)),
            ])
            .batch(vec![
                loan(51, 5, 1, 1, "800.00", mar(15, 11), mar(15, 11), None), // stale
                user(5, "sms", mar(15, 9), mar(15, 9), true),
                repay(901, 51, "2024-03-22", "overdue", 1, mar(23, 2)), // again
            ])
            .batch(vec![loan(52, 5, 2, 7, "6000.00", mar(10, 9), mar(10, 10), Some(mar(10, 10)))]),
        // Vintage: months on book appear as the data reaches them; 1+ and
        // 30+ days past due counted in the month first reached.
        case("vintage")
            .batch(vec![
                loan(61, 6, 2, 5, "9000.00", mar(5, 8), mar(5, 9), Some(mar(5, 9))),
                loan(62, 6, 1, 5, "500.00", mar(20, 8), mar(20, 9), Some(mar(20, 9))),
                loan(63, 7, 1, 5, "700.00", mar(31, 22), mar(31, 23), Some(mar(31, 23))),
                loan(71, 7, 1, 5, "1500.00", mar(33, 8), mar(33, 9), Some(mar(33, 9))), // April 2
            ])
            .batch(vec![
                repay(1, 62, "2024-03-27", "repaid", 3, mar(30, 15)), // 1+ on 03-28: month on book 0
                repay(2, 63, "2024-04-07", "repaid", 0, mar(37, 10)), // on time: nothing
                repay(3, 61, "2024-04-05", "overdue", 1, mar(37, 2)), // 1+ on 04-06: MOB 1
            ])
            .batch(vec![
                repay(4, 71, "2024-05-02", "overdue", 1, mar(31 + 30 + 3, 2)), // 05-03: April's MOB 1
                repay(5, 61, "2024-04-05", "overdue", 30, mar(31 + 30 + 5, 2)), // 30+ on 05-05: MOB 2
                repay(6, 61, "2024-05-05", "overdue", 1, mar(31 + 30 + 6, 2)), // a later installment: not first
            ])
            .batch(vec![repay(7, 63, "2024-06-07", "repaid", 0, mar(31 + 30 + 31 + 10, 10))]), // clock: June 10
        // Records that cannot be read: dead letters, and no effect at all
        // (not even on the data clock).
        case("rejects").batch(vec![
            raw(0, r#"{"id": 1, "channel": "#),
            raw(1, r#"{"id": 2, "borrower_id": 1}"#),
            loan(3, 1, 1, 9, "100.00", mar(15, 1), mar(15, 1), None),
            loan(4, 1, 1, 6, "100.00", mar(15, 1), mar(15, 1), None),
            loan(5, 1, 1, 1, "1.005", mar(15, 1), mar(15, 1), None),
            repay(6, 5, "2024-02-30", "overdue", 1, mar(15, 1)),
            repay(7, 5, "2024-03-01", "overdue", -1, mar(15, 1)),
            loan(8, 1, 1, 5, "100.00", mar(15, 1), mar(15, 2), Some(mar(15, 2))),
        ]),
    ]
}
