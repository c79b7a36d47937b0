//! The sample data of `job.toml` gives the rows an independent reading of
//! the SQL gives (worked out outside the job, with exact decimals).

use hourly_premium::{HourlyPremium, SINK, SOURCE};
use serde_json::json;
use sluice_sdk::testing::{JobTester, TestRecord};

#[test]
fn sample_data() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sample/user_order.jsonl")).unwrap();
    // the parameters of job.toml
    let mut t = JobTester::<HourlyPremium>::builder()
        .source(SOURCE)
        .sink(SINK)
        .param("utc_offset_minutes", "480")
        .param("since_ms", "0")
        .open()
        .unwrap();
    let batch = text.lines().map(|l| TestRecord { value: l.as_bytes().to_vec(), ..Default::default() }).collect();
    t.send_batch(batch).unwrap();

    let table: Vec<_> = t.upserted(SINK, &["biz_date"]).into_values().collect();
    let row = |biz_date: &str, premium: f64, policies: u64, holders: u64| json!({ "biz_date": biz_date, "total_premium": premium, "policy_cnt": policies, "policy_holder_cnt": holders });
    assert_eq!(
        table,
        vec![
            row("2024031508", 3560.25, 1, 1),
            row("2024031509", 5049.55, 4, 4),
            row("2024031510", 6513.57, 5, 5),
            row("2024031511", 88.8, 1, 1),
        ]
    );
    let offsets: Vec<_> = t.dead_letters().iter().map(|d| d.position.offset).collect();
    assert_eq!(offsets, [12, 20]); // the cut-off line and the order without id
}
