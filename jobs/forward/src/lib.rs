//! Forwards every record, key and value unchanged, to the sink `out`: the
//! feeder of the console's demo (generated orders into a Kafka topic), and
//! the shape of a topic copy or a format bridge.

use sluice_sdk::prelude::*;

#[sluice_sdk::job]
pub fn forward(ctx: &mut Context, record: &Record) -> Result<()> {
    ctx.forward("out", record)
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
