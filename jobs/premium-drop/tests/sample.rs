//! The sample data of `job.toml` gives the rows an independent reading of
//! the SQL gives (worked out outside the job).

use premium_drop::{DIMENSION, PremiumDrop, SINK, SOURCE};
use serde_json::{Value, json};
use sluice_sdk::testing::{JobTester, TestRecord};

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{}/sample/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn raw(id: i64, raw_premium: &str, raw_info: &str) -> Value {
    json!({ "id": id, "raw_premium": raw_premium, "raw_info": raw_info })
}

#[test]
fn sample_data() {
    let rows: Vec<(String, Value)> = read("raw_info.jsonl")
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            (row["id"].to_string(), row)
        })
        .collect();
    // the parameters of job.toml
    let mut t = JobTester::<PremiumDrop>::builder()
        .source(SOURCE)
        .sink(SINK)
        .dimension(DIMENSION, rows)
        .param("saved_event", "saved")
        .param("drop_ratio", "0.15")
        .open()
        .unwrap();
    let text = read("update_info.jsonl");
    let batch = text.lines().map(|l| TestRecord { value: l.as_bytes().to_vec(), ..Default::default() }).collect();
    t.send_batch(batch).unwrap();

    let alert = |id: i64, raw_info: &str, now_info: &str, raw_premium: &str, now_premium: &str| json!({ "id": id, "raw_info": raw_info, "now_info": now_info, "raw_premium": raw_premium, "now_premium": now_premium });
    assert_eq!(
        t.emitted(SINK),
        vec![
            alert(2010, "Home contents", "Home contents v1", "300", "240"),
            alert(2008, "Pet care v2", "Pet care v8", "899.99", "719.99"),
            alert(2004, "Whole life 1M", "Whole life 1M v12", "15000", "10500"),
            alert(2005, "Term life 500k v9", "Term life 500k v14", "2786.40", "2340.58"),
            alert(2007, "Car comprehensive", "Car comprehensive v17", "2400", "2016"),
            alert(2002, "Accident 200k v10", "Accident 200k v19", "1032", "722.40"),
            alert(2010, "Home contents v30", "Home contents v32", "264", "211.20"),
        ]
    );
    let dead: Vec<_> = t.dead_letters().into_iter().map(|d| (d.position.offset, d.reason)).collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].0, 15); // the cut-off line
    assert_eq!(dead[1], (22, "now_premium `about 300` is not a number".to_string()));

    let expected = [
        raw(2001, "5000", "Critical illness 500k"),
        raw(2002, "686.28", "Accident 200k v31"),
        raw(2003, "880", "Medical basic"),
        raw(2004, "9030", "Whole life 1M v29"),
        raw(2005, "2340.58", "Term life 500k v27"),
        raw(2006, "450", "Travel annual"),
        raw(2007, "1819.44", "Car comprehensive v28"),
        raw(2008, "619.19", "Pet care v22"),
        raw(2009, "6840", "Education savings v11"),
        raw(2010, "211.20", "Home contents v32"),
    ];
    for row in expected {
        let id = row["id"].as_i64().unwrap();
        assert_eq!(t.dimension_row(DIMENSION, &id), Some(row));
    }
    // unwatched users are not added
    assert_eq!(t.dimension_row(DIMENSION, &2999i64), None);
    assert_eq!(t.dimension_row(DIMENSION, &3001i64), None);
}
