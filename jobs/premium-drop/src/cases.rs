//! Reproducible scenarios, run natively by this crate's tests and against the
//! compiled component by the runtime's tests.

use serde_json::{Value, json};
use sluice_sdk::testing::{Case, TestRecord};

use crate::{DIMENSION, SINK, SOURCE};

/// 2024-03-15 10:30:00 +08:00; the job does not read the clock, but the
/// cases fix it anyway.
const NOW: i64 = 1_710_469_800_000;

/// A full `update_info` row.
fn update(id: i64, event: &str, now_premium: &str, now_info: &str) -> Value {
    json!({
        "id": id,
        "channel": "wechat",
        "open_id": format!("order-{id}-{now_premium}"),
        "event": event,
        "now_premium": now_premium,
        "creator": "app",
        "modifier": "app",
        "gmt_modified": NOW,
        "now_info": now_info,
    })
}

fn raw_info(id: i64, raw_premium: &str, info: &str) -> (String, Value) {
    (id.to_string(), json!({ "id": id, "raw_premium": raw_premium, "raw_info": info }))
}

fn rec(row: Value) -> TestRecord {
    TestRecord::json(&row)
}

fn case(name: &str) -> Case {
    Case::new(name).source(SOURCE).sink(SINK).processing_time(NOW)
}

pub fn cases() -> Vec<Case> {
    vec![
        // Default 15%: drops, non-drops, the dimension following each joined
        // record, and every way a record is rejected.
        case("drops_and_dimension_updates")
            .dimension(
                DIMENSION,
                vec![
                    raw_info(1, "1000.00", "plan A gold"),
                    raw_info(2, "500", "plan B"),
                    raw_info(3, "100", "plan C"),
                    raw_info(4, "abc", "broken row"),
                ],
            )
            .batch(vec![
                rec(update(1, "saved", "900", "plan A silver")), // -10%: no alert
                rec(update(2, "saved", "400", "plan B lite")),   // -20%: alert
                rec(update(3, "saved", "85", "plan C basic")),   // exactly -15%: no alert
                rec(update(99, "saved", "1", "unknown user")),   // not watched
                rec(update(1, "saved", "760", "plan A bronze")), // -15.6% of 900 (the update above): alert
            ])
            .batch(vec![
                rec(update(2, "saved", "n/a", "plan B ?")), // rejected
                TestRecord { value: br#"{"id": 3, "now_premium": "#.to_vec(), ..Default::default() },
                rec(update(4, "saved", "10", "plan D")), // the dimension row is bad: rejected
                rec(update(98, "saved", "xyz", "unknown user")), // rejected although not watched
                rec(json!({ "id": 3, "event": "saved", "now_info": "no premium" })),
                rec(update(2, "saved", "339.99", "plan B mini")), // 400 * 0.85 = 340: alert
            ]),
        // Only saved orders count, and a 30% threshold.
        case("saved_event_filter")
            .param("saved_event", "saved")
            .param("drop_ratio", "0.3")
            .dimension(DIMENSION, vec![raw_info(7, "200", "family plan"), raw_info(8, "100", "solo plan")])
            .batch(vec![
                rec(update(7, "failed", "100", "family plan, unsaved")), // ignored
                rec({
                    let mut row = update(7, "", "100", "family plan, no event");
                    row["event"] = Value::Null;
                    row
                }), // ignored
                rec(update(7, "saved", "150", "family plan, smaller")),  // -25%: no alert
                rec(update(8, "saved", "69.99", "solo plan, minimal")),  // -30.01%: alert
            ])
            .batch(vec![
                rec(update(8, "failed", "not a number", "unsaved")), // ignored before parsing
                rec(update(8, "saved", "70", "solo plan, back up")), // a rise: no alert
                rec(update(7, "saved", "104.99", "family plan, cut")), // 150 * 0.7 = 105: alert
            ]),
    ]
}
