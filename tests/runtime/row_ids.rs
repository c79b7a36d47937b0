//! Row ids through the real components: a row a record emitted in
//! `process` is that record's; a row of the batch as a whole (the SDK's
//! `finish_batch`) is marked as the batch's, at its last record, so a
//! downstream job's `dedup_by_row_id` passes it unchecked.

use std::path::Path;
use std::sync::Arc;

use sluice_runtime::clock::ManualClock;
use sluice_runtime::connectors::memory::{MemoryRecord, MemorySink, MemorySource};
use sluice_runtime::connectors::{RowId, RowOrigin};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_tests::{engine, load};

/// 2024-03-15 10:00 UTC+8.
const HOUR_START_MS: i64 = 1_710_468_000_000;

fn order(i: i64) -> MemoryRecord {
    let value = serde_json::json!({
        "id": i,
        "order_no": format!("PO{i:05}"),
        "customer_tel": format!("138{i:08}"),
        "gmt_modified": HOUR_START_MS + i * 1000,
        "account_payble": 10.5,
    });
    MemoryRecord { value: value.to_string().into_bytes(), partition: 1, offset: 40 + i, ..MemoryRecord::default() }
}

/// The ids of what `component` wrote to `sink` over two batches of orders.
async fn ids(component: &str, source: &str, sink: &str) -> Vec<RowId> {
    let spec = JobSpec::parse(
        &format!(
            "name = \"ids\"\ncomponent = \"unused.wasm\"\n[parameters]\nsince_ms = \"0\"\n\
             [sources.{source}]\nkind = \"file\"\npath = \"unused\"\n[sinks.{sink}]\nkind = \"memory\"\n"
        ),
        Path::new("."),
    )
    .unwrap();
    let out = MemorySink::default();
    let task = TaskBuilder::new(&spec)
        .clock(Arc::new(ManualClock::new(HOUR_START_MS)))
        .source(source, Box::new(MemorySource::new(vec![(0..3).map(order).collect(), (3..5).map(order).collect()])))
        .sink(sink, Box::new(out.clone()))
        .dead_letter(Box::new(MemorySink::default()))
        .build(engine(), &load(component).await.unwrap())
        .await
        .unwrap();
    let (_stop, stop) = tokio::sync::watch::channel(false);
    assert_eq!(task.run(stop).await.unwrap(), TaskEnd::Finished);
    out.rows().into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn rows_of_a_batch_are_marked_as_the_batchs_and_a_records_rows_as_its_own() {
    // hourly-premium emits its hour's row once per batch, in `finish_batch`.
    let batch = |offset| RowId { origin: RowOrigin::Batch { source: 0, partition: 1, offset }, emit_index: 0 };
    assert_eq!(ids("hourly_premium", "user_order", "hs_order").await, [batch(42), batch(44)]);
    let names = ["user_order".to_owned()];
    assert_eq!(batch(42).render(&names), "batch/user_order/1/42/0");

    // The passthrough forwards each record in `process`.
    let record = |offset| RowId { origin: RowOrigin::Record { source: 0, partition: 1, offset }, emit_index: 0 };
    assert_eq!(ids("bench_passthrough", "in", "out").await, (40..45).map(record).collect::<Vec<_>>());
}
