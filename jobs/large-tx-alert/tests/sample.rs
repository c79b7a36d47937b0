//! The sample data of `job.toml` gives the alerts an independent reading
//! of the rules gives (worked out outside the job, in Python with exact
//! decimals, over the same files).

use large_tx_alert::{ALERT_TABLE, ALERT_TOPIC, CUSTOMERS, LargeTxAlert, THRESHOLDS, TXN_SOURCE};
use serde_json::Value;
use sluice_sdk::testing::{JobTester, TestRecord};

fn lines(file: &str) -> Vec<String> {
    let path = format!("{}/sample/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

/// A memory dimension seeded like `job.toml`'s: rows keyed by `key_field`.
fn dimension(file: &str, key_field: &str) -> Vec<(String, Value)> {
    lines(file)
        .iter()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            (row[key_field].as_str().unwrap().to_owned(), row)
        })
        .collect()
}

#[test]
fn sample_data() {
    // the parameters of job.toml are the defaults
    let mut t = JobTester::<LargeTxAlert>::builder()
        .source(TXN_SOURCE)
        .sink(ALERT_TOPIC)
        .sink(ALERT_TABLE)
        .dimension(CUSTOMERS, dimension("customer.jsonl", "customer_id"))
        .dimension(THRESHOLDS, dimension("segment_threshold.jsonl", "segment"))
        .open()
        .unwrap();
    let batch = lines("account_txn.jsonl")
        .iter()
        .map(|l| TestRecord { value: l.as_bytes().to_vec(), ..Default::default() })
        .collect();
    t.send_batch(batch).unwrap();

    let alerts: Vec<(String, f64, f64)> = t
        .emitted(ALERT_TABLE)
        .iter()
        .map(|a| {
            (
                a["alert_id"].as_str().unwrap().to_owned(),
                a["amount"].as_f64().unwrap(),
                a["reference_amount"].as_f64().unwrap(),
            )
        })
        .collect();
    let alert = |id: &str, amount: f64, reference: f64| (id.to_owned(), amount, reference);
    assert_eq!(
        alerts,
        [
            alert("TX00000010000099:large_amount", 161_800.0, 50_000.0),
            alert("TX00000010000099:sudden_outflow", 161_800.0, 2144.0),
            alert("TX00000010000102:large_amount", 54_757.61, 50_000.0),
            alert("TX00000010000102:sudden_outflow", 54_757.61, 1319.78),
            alert("TX00000010000249:large_amount", 113_610.29, 50_000.0),
        ]
    );
    assert_eq!(t.emitted(ALERT_TOPIC).len(), 5);
    assert_eq!(t.dead_letters().len(), 2); // the two malformed lines
}
