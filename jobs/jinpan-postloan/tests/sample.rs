//! The sample of `job.toml`: rows of 盘宝's status table; the last one has
//! a status the job does not know.

use jinpan_postloan::tables::REPAYMENT;
use jinpan_postloan::{JinpanPostloan, SOURCE};
use serde_json::Value;
use sluice_sdk::testing::{JobTester, TestRecord};

#[test]
fn sample_data() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sample/repayment_status.jsonl")).unwrap();
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut t = JobTester::<JinpanPostloan>::builder().source(SOURCE).sink(REPAYMENT).open().unwrap();
    t.send_batch(rows.iter().map(TestRecord::json).collect()).unwrap();

    let dead = t.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("`REFUNDED`"), "{}", dead[0].reason);
    // One row per installment, with the status of its newest update.
    let table = t.upserted(REPAYMENT, &["order_id", "period"]);
    for row in &rows[..rows.len() - 1] {
        let key = format!("{}|{}", row["order_id"].as_str().unwrap(), row["period"]);
        let newest = rows
            .iter()
            .filter(|r| r["order_id"] == row["order_id"] && r["period"] == row["period"])
            .max_by_key(|r| r["updated_at"].as_i64())
            .unwrap();
        let stored = table.values().find(|v| v["order_id"] == row["order_id"] && v["period"] == row["period"]);
        let stored = stored.unwrap_or_else(|| panic!("{key} is stored"));
        assert_eq!(stored["repay_status"], newest["status"], "{key}");
        assert_eq!(stored["status_updated_at"], newest["updated_at"], "{key}");
    }
}
