//! Hostile guests: a panic, an endless loop and a memory bomb each fail
//! their own task with an error that names the job (and the limit hit),
//! without harming rows already written, other tasks running at the same
//! time, or later instances of the same component.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_runtime::connectors::RowOrigin;
use sluice_runtime::connectors::memory::{MemoryRecord, MemorySink, MemorySource};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd, TaskError};
use sluice_runtime::wasm::InstanceError;
use sluice_tests::{engine, load};

/// The fixture all these tests run (tests/guests/guest-hostile).
const HOSTILE: &str = "guest_hostile";
/// Every test must end well within this; only a broken deadline gets near it.
const GENEROUS: Duration = Duration::from_secs(30);

/// Limits of one task.
#[derive(Clone, Copy)]
struct Limits {
    memory_mb: u64,
    cpu_per_batch_ms: u64,
}

/// Small limits, as a hostile guest gets.
const TIGHT: Limits = Limits { memory_mb: 32, cpu_per_batch_ms: 200 };
/// Room enough that a healthy job never comes near them, even on a loaded
/// machine, so only the hostile task's limits are under test.
const ROOMY: Limits = Limits { memory_mb: 64, cpu_per_batch_ms: 10_000 };

/// What a task run left behind.
struct Run {
    result: Result<TaskEnd, TaskError>,
    /// Rows of the sink `out`.
    out: MemorySink,
    dead_letters: MemorySink,
}

impl Run {
    /// Offsets of the records whose rows reached `out`, in order.
    fn delivered_offsets(&self) -> Vec<i64> {
        self.out
            .rows()
            .iter()
            .map(|row| {
                assert_eq!(row.value, br#"{"ok":true}"#, "unexpected row");
                match row.id.origin {
                    RowOrigin::Record { offset, .. } => offset,
                    ref other => panic!("row from {other:?}, expected one from a record"),
                }
            })
            .collect()
    }

    fn instance_error(self, job: &str) -> InstanceError {
        match self.result {
            Err(TaskError::Instance(e)) => e,
            Err(other) => panic!("job {job}: expected an instance error, got {other:?}"),
            Ok(end) => panic!("job {job}: expected a failure, the task ended with {end:?}"),
        }
    }
}

fn spec(job: &str, limits: Limits) -> JobSpec {
    let toml = format!(
        r#"
        name = "{job}"
        component = "unused.wasm"
        [sources.input]
        kind = "file"
        path = "unused"
        [sinks.out]
        kind = "memory"
        [limits]
        memory_mb = {}
        cpu_per_batch = "{}ms"
        "#,
        limits.memory_mb, limits.cpu_per_batch_ms
    );
    JobSpec::parse(&toml, Path::new(".")).expect("test spec")
}

/// Batches of records whose values are the given commands, with offsets
/// counting up across batches from 0.
fn batches(commands: &[&[&str]]) -> Vec<Vec<MemoryRecord>> {
    let mut offset = 0;
    commands
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|command| {
                    let record = MemoryRecord { value: command.as_bytes().to_vec(), offset, ..Default::default() };
                    offset += 1;
                    record
                })
                .collect()
        })
        .collect()
}

/// Runs the hostile guest as job `job` over `batches` to its end.
async fn run(job: &str, limits: Limits, batches: Vec<Vec<MemoryRecord>>) -> Run {
    let spec = spec(job, limits);
    let component = load(HOSTILE).await.expect("the hostile guest is a valid component");
    let (out, dead_letters) = (MemorySink::default(), MemorySink::default());
    let task = TaskBuilder::new(&spec)
        .source("input", Box::new(MemorySource::new(batches)))
        .sink("out", Box::new(out.clone()))
        .dead_letter(Box::new(dead_letters.clone()))
        .build(engine(), &component)
        .await
        .unwrap_or_else(|e| panic!("job {job}: the task does not build: {e}"));
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let result = task.run(stop_rx).await;
    Run { result, out, dead_letters }
}

/// `run`, failing the test instead of hanging if the task never ends.
async fn run_bounded(job: &str, limits: Limits, batches: Vec<Vec<MemoryRecord>>) -> Run {
    tokio::time::timeout(GENEROUS, run(job, limits, batches))
        .await
        .unwrap_or_else(|_| panic!("job {job}: the task did not end within {GENEROUS:?}"))
}

fn assert_cpu_limit(error: &InstanceError, job: &str) {
    let InstanceError::CpuLimit { job: named, limit_ms } = error else { panic!("expected CpuLimit, got {error:?}") };
    assert_eq!(named, job);
    assert_eq!(*limit_ms, 200);
    let message = error.to_string();
    assert!(message.contains(&format!("`{job}`")), "{message}");
    assert!(message.contains("CPU limit of 200 ms"), "{message}");
}

fn assert_memory_limit(error: &InstanceError, job: &str) {
    let InstanceError::MemoryLimit { job: named, limit_mib } = error else {
        panic!("expected MemoryLimit, got {error:?}")
    };
    assert_eq!(named, job);
    assert_eq!(*limit_mib, 32);
    let message = error.to_string();
    assert!(message.contains(&format!("`{job}`")), "{message}");
    assert!(message.contains("memory limit of 32 MiB"), "{message}");
}

/// Asserts that a healthy run over `records` records finished with one row per record.
fn assert_healthy(run: Run, job: &str, records: i64) {
    match &run.result {
        Ok(TaskEnd::Finished) => {}
        other => panic!("job {job}: the healthy task must finish, got {other:?}"),
    }
    assert_eq!(run.delivered_offsets(), (0..records).collect::<Vec<_>>(), "job {job}: one row per record, in order");
    assert!(run.dead_letters.is_empty(), "job {job}: no dead letters expected");
}

/// `n` `ok` records in batches of `per_batch`.
fn ok_batches(n: usize, per_batch: usize) -> Vec<Vec<MemoryRecord>> {
    let all = vec!["ok"; n];
    batches(&all.chunks(per_batch).collect::<Vec<_>>())
}

#[tokio::test]
async fn a_panic_fails_the_task_with_the_panic_message() {
    let job = "hostile-panic";
    let run = run_bounded(job, TIGHT, batches(&[&["ok"], &["ok", "panic", "ok"], &["ok"]])).await;
    let out = run.out.clone();
    let error = run.instance_error(job);
    let InstanceError::Trap { job: named, message } = &error else { panic!("expected Trap, got {error:?}") };
    assert_eq!(named, job);
    assert!(message.contains("hostile guest asked to panic"), "the guest's stderr is in the message: {message}");
    assert!(message.contains("job stderr"), "{message}");
    let rendered = error.to_string();
    assert!(rendered.contains(&format!("job `{job}` trapped")), "{rendered}");
    assert!(rendered.contains("hostile guest asked to panic"), "{rendered}");
    // The first batch was written; nothing of the failed batch or after it.
    assert_eq!(out.len(), 1, "rows: {:?}", out.rows());
}

#[tokio::test]
async fn an_endless_loop_hits_the_cpu_deadline() {
    let job = "hostile-loop";
    let started = Instant::now();
    let run = run_bounded(job, TIGHT, batches(&[&["ok", "loop"]])).await;
    let elapsed = started.elapsed();
    assert!(run.out.is_empty(), "the failed batch wrote nothing");
    let error = run.instance_error(job);
    assert_cpu_limit(&error, job);
    // Informational only: how long the deadline took to fire.
    eprintln!("{job}: stopped after {elapsed:?} (limit 200 ms)");
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let job = "hostile-alloc";
    // A roomy CPU limit: only the memory limit can stop this one.
    let limits = Limits { cpu_per_batch_ms: 10_000, ..TIGHT };
    let run = run_bounded(job, limits, batches(&[&["alloc"]])).await;
    assert!(run.out.is_empty());
    let error = run.instance_error(job);
    assert_memory_limit(&error, job);
}

#[tokio::test]
async fn rows_of_batches_before_a_failure_are_delivered() {
    // Three good batches, then a batch that fails part-way, then one more.
    let commands: &[&[&str]] = &[&["ok", "ok"], &["ok", "ok", "ok"], &["ok"], &["ok", "ok", "panic", "ok"], &["ok"]];
    let job = "hostile-late-panic";
    let run = run_bounded(job, TIGHT, batches(commands)).await;
    assert_eq!(run.delivered_offsets(), vec![0, 1, 2, 3, 4, 5], "the rows of the three good batches, in order");
    assert!(run.dead_letters.is_empty());
    let error = run.instance_error(job);
    assert!(matches!(error, InstanceError::Trap { .. }), "{error:?}");

    // The same for the limits: earlier batches stay delivered.
    let run = run_bounded("hostile-late-loop", TIGHT, batches(&[&["ok", "ok"], &["ok"], &["loop"]])).await;
    assert_eq!(run.delivered_offsets(), vec![0, 1, 2]);
    assert_cpu_limit(&run.instance_error("hostile-late-loop"), "hostile-late-loop");

    let limits = Limits { cpu_per_batch_ms: 10_000, ..TIGHT };
    let run = run_bounded("hostile-late-alloc", limits, batches(&[&["ok"], &["ok", "ok"], &["alloc", "ok"]])).await;
    assert_eq!(run.delivered_offsets(), vec![0, 1, 2]);
    assert_memory_limit(&run.instance_error("hostile-late-alloc"), "hostile-late-alloc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_hostile_task_does_not_harm_a_healthy_one_beside_it() {
    const RECORDS: usize = 1000;
    let started = Instant::now();
    // All three tasks run at once on their own worker threads, on the same
    // engine and the same compiled component.
    let spinner = tokio::spawn(run_bounded("beside-loop", TIGHT, batches(&[&["ok"], &["loop"]])));
    let bomb = tokio::spawn(run_bounded(
        "beside-alloc",
        Limits { cpu_per_batch_ms: 10_000, ..TIGHT },
        batches(&[&["ok"], &["alloc"]]),
    ));
    let healthy = tokio::spawn(run_bounded("healthy", ROOMY, ok_batches(RECORDS, 100)));
    let (spinner, bomb, healthy) = tokio::join!(spinner, bomb, healthy);
    let (spinner, bomb, healthy) =
        (spinner.expect("loop task"), bomb.expect("alloc task"), healthy.expect("healthy task"));

    assert_eq!(spinner.delivered_offsets(), vec![0]);
    assert_cpu_limit(&spinner.instance_error("beside-loop"), "beside-loop");
    assert_eq!(bomb.delivered_offsets(), vec![0]);
    assert_memory_limit(&bomb.instance_error("beside-alloc"), "beside-alloc");
    assert_healthy(healthy, "healthy", RECORDS as i64);

    // The process is unharmed: a fresh instance of the same component works.
    let after = run_bounded("healthy-after", ROOMY, ok_batches(50, 10)).await;
    assert_healthy(after, "healthy-after", 50);
    eprintln!("isolation: all tasks done after {:?}", started.elapsed());
}

#[tokio::test]
async fn the_same_component_works_after_each_kind_of_failure() {
    // Hostile and healthy tasks take turns on one thread.
    for (job, command) in [("turns-panic", "panic"), ("turns-loop", "loop"), ("turns-alloc", "alloc")] {
        let limits = if command == "loop" { TIGHT } else { Limits { cpu_per_batch_ms: 10_000, ..TIGHT } };
        let failed = run_bounded(job, limits, batches(&[&[command]])).await;
        assert!(failed.result.is_err(), "{job} must fail");
        let healthy = format!("{job}-healthy");
        assert_healthy(run_bounded(&healthy, ROOMY, ok_batches(20, 7)).await, &healthy, 20);
    }
}
