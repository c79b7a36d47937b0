//! The staged job gives the table the one-stage job gives, at any number of
//! tasks of its second stage: its first stage's changes, split by their key
//! (the hour) as the repartition topic's partitions split them, each share
//! applied by a task of its own.

use std::collections::BTreeMap;

use hourly_premium::HourlyPremium;
use hourly_premium_staged::{HourlyPremiumStaged, SINK, SOURCE};
use serde_json::Value;
use sluice_gen::insurance::InsuranceOrders;
use sluice_gen::{GenOptions, Scenario};
use sluice_sdk::NEXT_STAGE;
use sluice_sdk::testing::{JobTester, TestRecord};

const BATCH: usize = 500;

fn orders() -> Vec<TestRecord> {
    let options = GenOptions { count: 20_000, seed: 7, ..GenOptions::default() };
    let events = InsuranceOrders.generate(&options);
    events
        .into_iter()
        .map(|e| TestRecord { key: Some(e.key.into_bytes()), value: e.value, ..Default::default() })
        .collect()
}

fn tester<J: sluice_sdk::Job>(stage: u32) -> JobTester<J> {
    JobTester::<J>::builder()
        .stage(stage)
        .source(SOURCE)
        .sink(SINK)
        .sink(NEXT_STAGE)
        .param("since_ms", "0")
        .open()
        .unwrap()
}

fn table<J: sluice_sdk::Job>(t: &JobTester<J>) -> BTreeMap<String, Value> {
    t.upserted(SINK, &["biz_date"])
}

#[test]
fn every_parallelism_gives_the_one_stage_table() {
    let orders = orders();
    let mut whole = tester::<HourlyPremium>(0);
    let mut first = tester::<HourlyPremiumStaged>(0);
    for batch in orders.chunks(BATCH) {
        whole.send_batch(batch.to_vec()).unwrap();
        first.send_batch(batch.to_vec()).unwrap();
    }
    let expected = table(&whole);
    assert!(expected.len() > 3, "{expected:?}");
    assert!(first.emitted(SINK).is_empty(), "the first stage writes no result rows");
    assert_eq!(first.dead_letters().len(), whole.dead_letters().len(), "malformed orders are rejected once");

    let changes: Vec<TestRecord> = first
        .emitted_rows()
        .into_iter()
        .filter(|r| r.sink == NEXT_STAGE)
        .map(|r| TestRecord { key: r.key, value: r.value.to_string().into_bytes(), ..Default::default() })
        .collect();
    assert!(changes.len() > orders.len() / 2, "{} changes", changes.len());
    for tasks in [1, 2, 4] {
        let mut shares: Vec<Vec<TestRecord>> = vec![Vec::new(); tasks];
        for change in &changes {
            let hour = change.key.as_deref().expect("changes are keyed by hour");
            shares[usize::from(hour[hour.len() - 1]) % tasks].push(change.clone());
        }
        let mut union = BTreeMap::new();
        for share in shares {
            let mut second = tester::<HourlyPremiumStaged>(1);
            for batch in share.chunks(BATCH / 3) {
                second.send_batch(batch.to_vec()).unwrap();
            }
            let rows = table(&second);
            assert!(rows.keys().all(|k| !union.contains_key(k)), "an hour is held by one task");
            union.extend(rows);
        }
        assert_eq!(union, expected, "{tasks} tasks");
    }
}

#[test]
fn a_stage_the_job_does_not_declare_is_refused() {
    let err = JobTester::<HourlyPremiumStaged>::builder().stage(2).open().err().unwrap();
    assert!(err.contains("stage 2 does not exist"), "{err}");
}

#[test]
fn the_filter_must_not_depend_on_when_the_stage_runs() {
    let err = JobTester::<HourlyPremiumStaged>::builder().source(SOURCE).sink(NEXT_STAGE).open().err().unwrap();
    assert!(err.contains("`since_ms` is required"), "{err}");
}
