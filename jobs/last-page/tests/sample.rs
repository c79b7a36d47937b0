//! The sample data of `job.toml` gives the rows an independent reading of
//! the SQL gives (worked out outside the job).

use last_page::{LastPage, SINK, SOURCE};
use serde_json::json;
use sluice_sdk::testing::{JobTester, TestRecord};

#[test]
fn sample_data() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sample/user_log.jsonl")).unwrap();
    let mut t = JobTester::<LastPage>::builder().source(SOURCE).sink(SINK).open().unwrap();
    let batch = text.lines().map(|l| TestRecord { value: l.as_bytes().to_vec(), ..Default::default() }).collect();
    t.send_batch(batch).unwrap();

    let row = |account_id: &str, device_id: &str, bury_point_type: &str, page_name: &str| json!({ "account_id": account_id, "device_id": device_id, "bury_point_type": bury_point_type, "page_name": page_name });
    assert_eq!(
        t.upserted(SINK, &["account_id", "device_id"]).into_values().collect::<Vec<_>>(),
        vec![
            row("acc-001", "dev-a1", "click", "get-quote"),
            row("acc-001", "dev-a2", "page", "car-insurance"),
            row("acc-002", "dev-b1", "page", "life-insurance"),
            row("acc-003", "dev-c1", "page", "car-insurance"),
            row("acc-004", "dev-d1", "click", "get-quote"),
        ]
    );
    // 36 logs and a cut-off line; 4 logs are anonymous, 25 of the other 32 change their group's row
    assert_eq!(t.emitted(SINK).len(), 25);
    let offsets: Vec<_> = t.dead_letters().iter().map(|d| d.position.offset).collect();
    assert_eq!(offsets, [25]);
}
