//! Reproducible scenarios, run natively by this crate's tests and against the
//! compiled component by the runtime's tests. They never read the real clock:
//! every case fixes the processing time.

use serde_json::{Value, json};
use sluice_sdk::testing::{Case, TestRecord};

use crate::{SINK, SOURCE};

/// 2024-03-15 00:00:00 +08:00.
const MAR15_CST: i64 = 1_710_432_000_000;
/// 2024-03-15 00:00:00 UTC.
const MAR15_UTC: i64 = 1_710_460_800_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// 2024-03-15 `h`:`m` +08:00.
fn cst(h: i64, m: i64) -> i64 {
    MAR15_CST + h * HOUR + m * MINUTE
}

/// A full `user_order` row.
fn order(id: i64, order_no: &str, tel: &str, gmt_modified: i64, account_payble: Value) -> Value {
    json!({
        "id": id,
        "order_no": order_no,
        "order_type": 1,
        "pay_time": gmt_modified,
        "order_price": account_payble,
        "customer_name": format!("customer {id}"),
        "customer_tel": tel,
        "certificate_no": format!("ID{id:06}"),
        "gmt_created": gmt_modified - MINUTE,
        "gmt_modified": gmt_modified,
        "account_payble": account_payble,
    })
}

fn with(mut row: Value, field: &str, value: Value) -> Value {
    row[field] = value;
    row
}

fn without(mut row: Value, field: &str) -> Value {
    if let Some(fields) = row.as_object_mut() {
        fields.remove(field);
    }
    row
}

fn rec(row: Value) -> TestRecord {
    TestRecord::json(&row)
}

fn raw(text: &str) -> TestRecord {
    TestRecord { value: text.as_bytes().to_vec(), ..Default::default() }
}

fn case(name: &str) -> Case {
    Case::new(name).source(SOURCE).sink(SINK)
}

pub fn cases() -> Vec<Case> {
    vec![
        // Default parameters (UTC+8, "today" = 2024-03-15). Users move their
        // last order between hours, so hours are retracted and one is deleted.
        case("dedup_and_retraction")
            .processing_time(cst(10, 30))
            .batch(vec![
                rec(order(1, "A1", "T1", cst(9, 5), json!(100.1))),
                rec(order(2, "B1", "T2", cst(9, 20), json!(200.2))),
                rec(order(3, "C1", "T1", cst(10, 1), Value::Null)),
                // yesterday 23:59:59.999: before today, filtered
                rec(order(4, "D1", "T4", MAR15_CST - 1, json!(999.0))),
                raw(r#"{"id": 5, "order_no": "E1", "gmt_modified": "#),
                rec(without(order(5, "E1", "T5", cst(9, 30), json!(1.0)), "id")),
            ])
            .batch(vec![
                // user 1's new order moves them from hour 09 to hour 10
                rec(order(1, "A2", "T1", cst(10, 10), json!(50.05))),
                // null phone: LAST_VALUE keeps T2
                rec(with(order(2, "B1", "T2", cst(9, 40), json!(0.1)), "customer_tel", Value::Null)),
                // the same row again changes nothing
                rec(order(3, "C1", "T1", cst(10, 1), Value::Null)),
                // no gmt_modified: fails the WHERE, not a dead letter
                rec(without(order(6, "F1", "T6", cst(9, 0), json!(6.0)), "gmt_modified")),
            ])
            .batch(vec![
                // user 2 leaves hour 09, which becomes empty (deleted); the
                // missing premium keeps their last one (0.1)
                rec(without(order(2, "B2", "T2", cst(10, 20), json!(7.0)), "account_payble")),
                rec(order(4, "D2", "T4", cst(10, 25), json!(20.0))),
            ]),
        // "Today" in UTC: the same instant is 2024-03-15 02:30 UTC.
        case("today_filter_utc")
            .param("utc_offset_minutes", 0)
            .processing_time(cst(10, 30))
            .batch(vec![
                rec(order(1, "A1", "T1", MAR15_UTC - 1, json!(10.0))), // 2024-03-14 23:59:59.999 UTC
                rec(order(2, "B1", "T2", MAR15_UTC, json!(20.0))),     // midnight itself is today
                rec(order(3, "C1", "T3", cst(0, 30), json!(30.0))),    // 2024-03-14 16:30 UTC
                rec(order(4, "D1", "T4", MAR15_UTC + 2 * HOUR + 15 * MINUTE, json!(40.0))),
            ])
            .batch(vec![
                // user 1's next order is today; user 3's still is not
                rec(order(1, "A2", "T1", MAR15_UTC + 2 * HOUR + 40 * MINUTE, json!(15.5))),
                rec(order(3, "C2", "T3", MAR15_UTC - HOUR, json!(35.0))),
            ]),
        // `since_ms = 0` replays old data; sums are exact decimals.
        case("since_ms_replay")
            .param("since_ms", 0)
            .processing_time(cst(10, 30))
            .batch(vec![
                rec(order(10, "P1", "M1", 1_685_578_500_000, json!(0.1))), // 2023-06-01 08:15 +08:00
                rec(order(11, "P2", "M2", 1_685_580_300_000, json!(0.2))), // 08:45
                // a second holder on policy P1
                rec(order(12, "P1", "M3", 1_685_580_600_000, json!(0.7))), // 08:50
                rec(order(13, "P3", "M1", 1_685_721_540_000, json!(1.0))), // 2023-06-02 23:59
                rec(order(14, "P0", "M4", 0, json!(-5.5))),                // 1970-01-01 08:00 +08:00
                raw("not json at all"),
            ])
            .batch(vec![
                rec(order(11, "P2", "M2", 1_685_581_140_000, json!(0.25))), // 08:59, same hour
                rec(order(15, "P4", "M5", -1, json!(9.0))),                 // before since_ms
            ]),
    ]
}
