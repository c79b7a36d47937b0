//! The sample of `job.toml`: 盘宝's orders of record against a `jp_order`
//! that lost every fourth order and holds every seventh at an older version.

use jinpan_compensate::tables::{self, TABLES};
use jinpan_compensate::{JinpanCompensate, SOURCE};
use serde_json::Value;
use sluice_sdk::testing::{JobTester, TestRecord};

fn lines(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{}/sample/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn sample_data() {
    let record = lines("orders_of_record.jsonl");
    let synced = lines("jp_order.jsonl");
    let mut t = JobTester::<JinpanCompensate>::builder().source(SOURCE);
    for table in TABLES {
        t = t.sink(table.name);
        let rows: Vec<(String, Value)> = if table.name == tables::ORDER {
            synced.iter().map(|o| (o["order_id"].as_str().unwrap().to_owned(), o.clone())).collect()
        } else {
            Vec::new()
        };
        t = t.dimension(table.name, rows);
    }
    let mut t = t.open().unwrap();
    t.send_batch(record.iter().map(TestRecord::json).collect()).unwrap();

    let gmt = |o: &Value| o["gmt_modified"].as_i64().unwrap();
    let find = |id: &Value| synced.iter().find(|s| s["order_id"] == *id);
    let missing = record.iter().filter(|o| find(&o["order_id"]).is_none()).count();
    let stale = record.iter().filter(|o| find(&o["order_id"]).is_some_and(|s| gmt(s) < gmt(o))).count();
    assert!(missing > 0 && stale > 0);
    assert_eq!(t.metric("orders_missing"), Some(missing as f64));
    assert_eq!(t.metric("orders_stale"), Some(stale as f64));
    assert_eq!(t.metric("orders_in_sync"), Some((record.len() - missing - stale) as f64));
    assert_eq!(t.emitted(tables::ORDER).len(), missing + stale, "one row per back-filled order");
    assert!(t.dead_letters().is_empty());
}
