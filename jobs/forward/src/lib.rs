//! Forwards every record, key and value unchanged, to the sink `out`: the
//! feeder of the console's demo (generated orders into a Kafka topic), and
//! the shape of a topic copy or a format bridge.

use serde_json::json;
use sluice_sdk::prelude::*;
use sluice_sdk::testing::{Case, TestRecord};

#[sluice_sdk::job]
pub fn forward(ctx: &mut Context, record: &Record) -> Result<()> {
    ctx.forward("out", record)
}

/// Scenarios the runtime's parity suite runs natively and as WASM: keyed,
/// unkeyed and empty-keyed records, headers, several batches (forwarded
/// rows refer to the bytes of the batch they came in).
pub fn cases() -> Vec<Case> {
    let with_header = TestRecord {
        headers: vec![("trace".into(), b"t-1".to_vec())],
        ..TestRecord::json(&json!({ "id": 3, "note": "caf\u{e9} \"quoted\"" })).with_key("")
    };
    vec![
        Case::new("keys_headers_and_batches")
            .source("orders")
            .sink("out")
            .batch(vec![
                TestRecord::json(&json!({ "id": 1 })).with_key("a"),
                TestRecord::json(&json!({ "id": 2 })),
                with_header,
            ])
            .batch(vec![TestRecord::json(&json!({ "id": 4, "premium": 12.5 })).with_key("b")]),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_sdk::testing::JobTester;

    #[test]
    fn records_arrive_unchanged() {
        let mut t = JobTester::<super::Forward>::builder().source("orders").sink("out").open().unwrap();
        t.send_json(json!({ "id": 1, "premium": 12.5 })).unwrap();
        assert_eq!(t.emitted("out"), [json!({ "id": 1, "premium": 12.5 })]);
    }
}
