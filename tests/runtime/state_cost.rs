//! The guard against per-record costs that grow with state: the real
//! hourly-premium component keeps `count(distinct ..)` per hour, and the
//! state work of one more record must be the same whether the hour already
//! holds a hundred distinct orders or twenty thousand. Work is counted in
//! state entries touched (`TaskMetrics::state_ops`), not in seconds, so the
//! test is exact on any machine.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sluice_runtime::clock::ManualClock;
use sluice_runtime::connectors::memory::{MemoryRecord, MemorySink, MemorySource};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_tests::{engine, load};

/// 2024-03-15 10:00 UTC+8, inside one hour.
const HOUR_START_MS: i64 = 1_710_468_000_000;
const BATCH: usize = 100;
/// The records whose work is measured, after the hour has filled up.
const MEASURED: usize = 1000;

/// An order of a new user, with its own order number and phone.
fn order(i: usize) -> MemoryRecord {
    let value = serde_json::json!({
        "id": i,
        "order_no": format!("PO{i:09}"),
        "customer_tel": format!("138{i:08}"),
        "gmt_modified": HOUR_START_MS + (i % 3_600_000) as i64,
        "account_payble": 10.5,
    });
    MemoryRecord { value: value.to_string().into_bytes(), offset: i as i64, ..MemoryRecord::default() }
}

/// State work of a run over the first `orders` orders, all in one hour.
async fn state_work(orders: usize) -> u64 {
    let spec = JobSpec::parse(
        "name = \"cost\"\ncomponent = \"unused.wasm\"\n[parameters]\nsince_ms = \"0\"\n\
         [batch]\nmax_records = 100\n[sources.user_order]\nkind = \"file\"\npath = \"unused\"\n\
         [sinks.hs_order]\nkind = \"memory\"\n",
        Path::new("."),
    )
    .unwrap();
    let batches: Vec<Vec<MemoryRecord>> =
        (0..orders).map(order).collect::<Vec<_>>().chunks(BATCH).map(<[_]>::to_vec).collect();
    let component = load("hourly_premium").await.unwrap();
    let task = TaskBuilder::new(&spec)
        .clock(Arc::new(ManualClock::new(HOUR_START_MS)))
        .source("user_order", Box::new(MemorySource::new(batches)))
        .sink("hs_order", Box::new(MemorySink::default()))
        .dead_letter(Box::new(MemorySink::default()))
        .build(engine(), &component)
        .await
        .unwrap();
    let metrics = task.metrics();
    let (_stop, stop) = tokio::sync::watch::channel(false);
    assert_eq!(task.run(stop).await.unwrap(), TaskEnd::Finished);
    metrics.state_ops.load(Ordering::Relaxed)
}

/// State work of the last `MEASURED` records when the hour already holds
/// `distinct` orders.
async fn work_of_more_records(distinct: usize) -> u64 {
    state_work(distinct + MEASURED).await - state_work(distinct).await
}

#[tokio::test]
async fn count_distinct_costs_the_same_per_record_at_any_group_size() {
    let small = work_of_more_records(100).await;
    let large = work_of_more_records(20_000).await;
    assert!(small > 0);
    assert_eq!(small, large, "state work of {MEASURED} records at 100 vs 20,000 distinct orders per hour");
}
