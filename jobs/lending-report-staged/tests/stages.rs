//! The staged job gives the four tables the one-stage job gives, whatever
//! the number of tasks per stage: each stage's input split by its record
//! key, as the topics' partitions split it, each share run by a task of
//! its own (with its own state, and its own clock month). And its first
//! stage, which reads three feeds interleaved as their data comes, sends
//! the same rows for a record whatever the interleaving, as the next
//! stage's dropping of a replay's rows by id needs.

use std::collections::BTreeMap;

use lending_report::LendingReport;
use lending_report_staged::{
    APPROVAL, DISBURSEMENT, FUNNEL, LOAN_SOURCE, LendingReportStaged, REPAY_SOURCE, USER_SOURCE, VINTAGE,
};
use serde_json::Value;
use sluice_gen::lending::{LOAN_STREAM, Lending, REPAY_STREAM, USER_STREAM};
use sluice_gen::{GenOptions, Scenario};
use sluice_sdk::NEXT_STAGE;
use sluice_sdk::testing::{JobTester, TestRecord};

const BATCH: usize = 300;
const SINKS: [(&str, &[&str]); 4] = [
    (FUNNEL, &["reg_date", "channel"]),
    (APPROVAL, &["apply_date", "prod_type"]),
    (DISBURSEMENT, &["lend_date", "prod_type"]),
    (VINTAGE, &["lend_month", "mob"]),
];

/// Generated lending feeds (late, duplicated and malformed records
/// included), each record from its feed's source, keyed as generated.
fn events() -> Vec<TestRecord> {
    let options = GenOptions { count: 30_000, seed: 11, ..GenOptions::default() };
    Lending
        .generate(&options)
        .into_iter()
        .map(|e| {
            let source = [USER_STREAM, LOAN_STREAM, REPAY_STREAM].iter().position(|s| *s == e.stream).unwrap();
            TestRecord { key: Some(e.key.into_bytes()), value: e.value, source: source as u32, ..Default::default() }
        })
        .collect()
}

fn tester<J: sluice_sdk::Job>(stage: u32) -> JobTester<J> {
    let mut builder = JobTester::<J>::builder().stage(stage);
    for source in [USER_SOURCE, LOAN_SOURCE, REPAY_SOURCE] {
        builder = builder.source(source);
    }
    for (sink, _) in SINKS {
        builder = builder.sink(sink);
    }
    builder.sink(NEXT_STAGE).open().unwrap()
}

type Tables = BTreeMap<&'static str, BTreeMap<String, Value>>;

fn tables<J: sluice_sdk::Job>(t: &JobTester<J>) -> Tables {
    SINKS.iter().map(|(sink, keys)| (*sink, t.upserted(sink, keys))).collect()
}

/// The share (task) of a record key among `tasks`, as a partitioner would.
fn share(key: Option<&[u8]>, tasks: usize) -> usize {
    let key = key.expect("every record is keyed");
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    (hash % tasks as u64) as usize
}

/// Runs `stage` as `tasks` tasks over `input` split by key; returns the
/// rows they send on (each task's in its order, task after task) and the
/// testers.
fn run_stage(stage: u32, input: &[TestRecord], tasks: usize) -> (Vec<TestRecord>, Vec<JobTester<LendingReportStaged>>) {
    let mut shares: Vec<Vec<TestRecord>> = vec![Vec::new(); tasks];
    for record in input {
        shares[share(record.key.as_deref(), tasks)].push(record.clone());
    }
    let mut sent = Vec::new();
    let mut testers = Vec::new();
    for records in shares {
        let mut task = tester::<LendingReportStaged>(stage);
        for batch in records.chunks(BATCH) {
            task.send_batch(batch.to_vec()).unwrap();
        }
        sent.extend(task.emitted_rows().into_iter().filter(|r| r.sink == NEXT_STAGE).map(|r| TestRecord {
            key: r.key,
            value: r.value.to_string().into_bytes(),
            ..Default::default()
        }));
        testers.push(task);
    }
    (sent, testers)
}

#[test]
fn every_parallelism_gives_the_one_stage_tables() {
    let events = events();
    let mut whole = tester::<LendingReport>(0);
    for batch in events.chunks(BATCH) {
        whole.send_batch(batch.to_vec()).unwrap();
    }
    let expected = tables(&whole);
    assert!(expected.values().all(|t| t.len() > 3), "{expected:?}");
    assert!(!whole.dead_letters().is_empty(), "the feeds have malformed records");

    for tasks in [1, 2, 4] {
        let (to_loans, route) = run_stage(0, &events, tasks);
        let rejected: usize = route.iter().map(|t| t.dead_letters().len()).sum();
        assert_eq!(rejected, whole.dead_letters().len(), "{tasks} tasks: the first stage rejects what the job does");
        let (to_borrowers, loans) = run_stage(1, &to_loans, tasks);
        let (to_cells, borrowers) = run_stage(2, &to_borrowers, tasks);
        let (nothing, last) = run_stage(3, &to_cells, tasks);
        assert!(nothing.is_empty(), "the last stage sends nothing on");
        for (name, stage) in [("loans", &loans), ("borrowers", &borrowers)] {
            assert!(stage.iter().all(|t| t.dead_letters().is_empty()), "{tasks} tasks: {name} rejects nothing");
        }
        let mut union: Tables = BTreeMap::new();
        for task in &last {
            assert!(task.dead_letters().is_empty(), "{tasks} tasks: the last stage rejects nothing");
            for (sink, rows) in tables(task) {
                let table = union.entry(sink).or_default();
                assert!(rows.keys().all(|k| !table.contains_key(k)), "a row is held by one task");
                table.extend(rows);
            }
        }
        for (sink, rows) in &expected {
            assert_eq!(union.get(sink), Some(rows), "{tasks} tasks: {sink}");
        }
        let before_last = route.iter().chain(&loans).chain(&borrowers);
        assert!(before_last.into_iter().all(|t| t.emitted_rows().iter().all(|r| r.sink == NEXT_STAGE)));
    }
}

#[test]
fn a_stage_the_job_does_not_declare_is_refused() {
    let err = JobTester::<LendingReportStaged>::builder().stage(4).open().err().unwrap();
    assert!(err.contains("stage 4 does not exist"), "{err}");
}

/// The rows stage `route` sends on, but for clock rows, as (key, row) in
/// order.
fn routed(records: &[TestRecord]) -> Vec<(Option<Vec<u8>>, String)> {
    let mut route = tester::<LendingReportStaged>(0);
    for batch in records.chunks(BATCH) {
        route.send_batch(batch.to_vec()).unwrap();
    }
    route
        .emitted_rows()
        .into_iter()
        .filter(|r| r.sink == NEXT_STAGE && r.value.get("Clock").is_none())
        .map(|r| (r.key, r.value.to_string()))
        .collect()
}

#[test]
fn the_first_stage_sends_the_same_rows_whatever_the_interleaving_of_its_feeds() {
    let events = events();
    let in_order = routed(&events);
    // Each feed's records in their order, the feeds one after the other
    // (repayments first): another interleaving a replay might see.
    let mut by_feed = events.clone();
    by_feed.sort_by_key(|r| std::cmp::Reverse(r.source));
    let mut regrouped = routed(&by_feed);
    assert!(in_order.len() > events.len() / 2, "{} rows", in_order.len());
    // Same rows per record: the same rows in all, each feed's in its order.
    let mut sorted = in_order.clone();
    sorted.sort();
    regrouped.sort();
    assert_eq!(sorted, regrouped);
}
