//! Reproducible scenarios, run natively by this crate's tests and against the
//! compiled component by the runtime's tests.

use serde_json::{Value, json};
use sluice_sdk::testing::{Case, TestRecord};

use crate::{SINK, SOURCE};

/// 2024-03-15 10:30:00 +08:00; the job does not read the clock, but the
/// cases fix it anyway.
const NOW: i64 = 1_710_469_800_000;

/// A `user_log` row, logged `seconds` before `NOW`.
fn log(seconds: i64, account_id: Value, device_id: Value, bury_point_type: Value, page_name: Value) -> TestRecord {
    TestRecord::json(&json!({
        "log_time": NOW / 1000 - seconds,
        "device_id": device_id,
        "account_id": account_id,
        "bury_point_type": bury_point_type,
        "page_name": page_name,
    }))
}

fn page(seconds: i64, account_id: &str, device_id: &str, bury_point_type: &str, page_name: &str) -> TestRecord {
    log(seconds, json!(account_id), json!(device_id), json!(bury_point_type), json!(page_name))
}

fn case(name: &str) -> Case {
    Case::new(name).source(SOURCE).sink(SINK).processing_time(NOW)
}

pub fn cases() -> Vec<Case> {
    let null = Value::Null;
    vec![
        case("last_page_per_account_device")
            .batch(vec![
                page(60, "u1", "d1", "banner", "home"),
                page(59, "u1", "d1", "banner", "home"), // the same visit again: no row
                page(58, "u1", "d2", "page", "car-insurance"),
                log(57, null.clone(), json!("d3"), json!("page"), json!("home")), // anonymous: dropped
                TestRecord::json(&json!({ "log_time": NOW / 1000 - 56, "device_id": "d3", "page_name": "home" })),
                TestRecord { value: b"{\"account_id\": \"u9\", ".to_vec(), ..Default::default() },
            ])
            .batch(vec![
                page(50, "u2", "d1", "page", "life-insurance"),
                // no page name: LAST_VALUE keeps "home"
                log(49, json!("u1"), json!("d1"), json!("click"), null.clone()),
                page(48, "u1", "d1", "click", "home"), // unchanged
                log(47, json!(42), json!("d1"), json!("page"), json!("home")), // account_id must be text
            ])
            .batch(vec![
                page(40, "u1", "d1", "page", "checkout"),
                log(39, json!("u2"), null.clone(), json!("page"), json!("claims")), // no device: its own group
                page(38, "u1", "d1", "page", "checkout"),
            ]),
        // Group keys that a `|`-joined key would mix up, and groups that
        // start with null values.
        case("awkward_keys").batch(vec![
            page(30, "a|b", "c", "page", "p1"),
            page(29, "a", "b|c", "page", "p1"),
            page(28, "a", "", "page", "p2"),
            log(27, json!("a"), null.clone(), json!("page"), json!("p2")),
            page(26, "a|b", "c", "page", "p1"), // unchanged
            TestRecord::json(&json!({ "account_id": "z", "device_id": "d" })),
            TestRecord::json(&json!({ "account_id": "z", "device_id": "d", "page_name": "p3" })),
        ]),
    ]
}
