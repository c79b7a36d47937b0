//! Reproducible scenarios, run natively by this crate's tests and against
//! the compiled component by the runtime's tests. The dimensions stand
//! for the tables as the sync job left them.

use jinpan_model::samples::{T0, order, report};
use jinpan_model::tables::{self, TABLES};
use serde_json::{Value, json};
use sluice_sdk::testing::{Case, TestRecord};

use crate::SOURCE;

pub const MINUTE: i64 = 60_000;
pub const SYNCED: &str = "JP20240315000001";
pub const MISSING: &str = "JP20240315000002";
pub const MISSING_USER: &str = "JP20240315000004";
pub const STALE: &str = "JP20240315000005";

/// A row of 盘宝's order table: the order document in `payload`.
fn of_record(order: &Value) -> TestRecord {
    TestRecord::json(&json!({
        "order_id": order["order_id"],
        "user_id": order["user_id"],
        "gmt_modified": order["gmt_modified"],
        "payload": order,
    }))
}

/// A table row as the sync job wrote it: the key columns and the version.
fn synced(key: &str, key_fields: Value, order_id: &str, gmt_modified: i64) -> (String, Value) {
    let mut row = key_fields;
    row["order_id"] = order_id.into();
    row["gmt_modified"] = gmt_modified.into();
    (key.to_owned(), row)
}

/// What the sync job left of user 10000001's approved order `SYNCED` (at
/// T0 + 5 min) and of user 10000003's order `STALE` while it was PENDING.
fn tables_after_sync() -> Vec<(&'static str, Vec<(String, Value)>)> {
    let v = T0 + 5 * MINUTE;
    let u = |part: &str, field: &str| {
        synced(&format!("10000001|{part}"), json!({ "user_id": 10_000_001, field: part }), SYNCED, v)
    };
    vec![
        (
            tables::ORDER,
            vec![
                synced(SYNCED, json!({ "user_id": 10_000_001, "status": "APPROVED" }), SYNCED, v),
                synced(STALE, json!({ "user_id": 10_000_003, "status": "PENDING" }), STALE, T0 + 10 * MINUTE),
            ],
        ),
        (
            tables::IDENTITY,
            vec![
                synced("10000001", json!({ "user_id": 10_000_001, "name": "张伟" }), SYNCED, v),
                synced("10000003", json!({ "user_id": 10_000_003, "name": "张伟" }), STALE, T0 + 10 * MINUTE),
            ],
        ),
        (tables::ADDRESS, vec![u("ID_CARD", "address_type"), u("HOME", "address_type")]),
        (tables::BANK_CARD, vec![u("6222021234567890128", "card_no")]),
        (tables::COMPANY, vec![synced("10000001", json!({ "user_id": 10_000_001 }), SYNCED, v)]),
        (tables::CONTACT, vec![u("13900139000", "contact_mobile"), u("13700137000", "contact_mobile")]),
        (tables::PHONE, vec![u("13800138000", "mobile"), u("18600186000", "mobile")]),
        (tables::DEVICE, vec![u("a1b2c3d4e5f60718", "device_id")]),
        (tables::PLATFORM_ACCOUNT, vec![u("wechat", "platform"), u("qq", "platform")]),
        (
            tables::REPAYMENT,
            (1..=3)
                .map(|p| synced(&format!("{SYNCED}|{p}"), json!({ "period": p, "repay_status": "PENDING" }), SYNCED, v))
                // Post-loan got to the stale order's first installment before
                // any plan was written: a row without a version.
                .chain([(
                    format!("{STALE}|1"),
                    json!({ "order_id": STALE, "period": 1, "gmt_modified": null, "repay_status": "PAID" }),
                )])
                .collect(),
        ),
    ]
}

pub fn cases() -> Vec<Case> {
    let mut case = Case::new("backfill_missing_and_stale_orders").source(SOURCE).processing_time(T0 + 24 * 60 * MINUTE);
    for t in TABLES {
        case = case.sink(t.name);
    }
    for (table, rows) in tables_after_sync() {
        case = case.dimension(table, rows);
    }
    let mut missing_user = order(MISSING_USER, 10_000_002, T0 + 7 * MINUTE, "APPROVED", report(0));
    missing_user["credit_report"]["identity"]["name"] = "王芳".into();
    let payload_as_text = json!({
        "order_id": MISSING_USER, "user_id": 10_000_002, "gmt_modified": T0 + 7 * MINUTE,
        // as a JSON column reads back from MariaDB
        "payload": missing_user.to_string(),
    });
    vec![case.batch(vec![
        of_record(&order(SYNCED, 10_000_001, T0 + 5 * MINUTE, "APPROVED", report(0))),
        of_record(&order(MISSING, 10_000_001, T0 + 2 * MINUTE, "REJECTED", report(1))),
        TestRecord::json(&payload_as_text),
        of_record(&order(STALE, 10_000_003, T0 + 20 * MINUTE, "APPROVED", report(0))),
        TestRecord::json(&json!({ "order_id": "JP20240315000006", "payload": null })),
    ])]
}
