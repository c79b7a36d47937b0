//! Running the hostile guest (tests/guests/guest-hostile) as a task with
//! chosen limits: the harness of `failures` and `guest_bounds`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sluice_runtime::connectors::RowOrigin;
use sluice_runtime::connectors::memory::{MemoryRecord, MemorySink, MemorySource};
use sluice_runtime::job::{BuildError, JobSpec, TaskBuilder, TaskEnd, TaskError};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::wasm::InstanceError;
use sluice_tests::{engine, load};

/// The fixture all these tests run.
pub const HOSTILE: &str = "guest_hostile";
/// Every test must end well within this; only a broken deadline gets near it.
pub const GENEROUS: Duration = Duration::from_secs(30);

/// The `[limits]` of one task.
#[derive(Clone, Copy)]
pub struct Limits {
    pub memory_mb: u64,
    pub cpu_per_batch_ms: u64,
    pub state_mb: u64,
    pub output_mb: u64,
    pub timers: u64,
}

/// Small limits, as a hostile guest gets (the spec defaults but for memory
/// and CPU).
pub const TIGHT: Limits =
    Limits { memory_mb: 32, cpu_per_batch_ms: 200, state_mb: 1024, output_mb: 64, timers: 1_000_000 };
/// Room enough that a healthy job never comes near them, even on a loaded
/// machine, so only the hostile task's limits are under test.
pub const ROOMY: Limits = Limits { memory_mb: 64, cpu_per_batch_ms: 10_000, ..TIGHT };

/// How a task run failed: while it was built (the guest's `open`) or
/// while it ran.
#[derive(Debug)]
pub enum Failure {
    Build(BuildError),
    Task(TaskError),
}

/// What a task run left behind.
pub struct Run {
    pub result: Result<TaskEnd, Failure>,
    /// Rows of the sink `out`.
    pub out: MemorySink,
    pub dead_letters: MemorySink,
    pub metrics: Arc<TaskMetrics>,
}

impl Run {
    /// Offsets of the records whose rows reached `out`, in order.
    pub fn delivered_offsets(&self) -> Vec<i64> {
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

    /// The guest's failure, from `open` or from a later call.
    pub fn instance_error(&self, job: &str) -> &InstanceError {
        match &self.result {
            Err(Failure::Task(TaskError::Instance(e)) | Failure::Build(BuildError::Open(e))) => e,
            Err(other) => panic!("job {job}: expected an instance error, got {other:?}"),
            Ok(end) => panic!("job {job}: expected a failure, the task ended with {end:?}"),
        }
    }
}

/// A spec of the hostile guest with `limits` and job `parameters`.
pub fn spec(job: &str, limits: Limits, parameters: &[(&str, &str)]) -> JobSpec {
    let Limits { memory_mb, cpu_per_batch_ms, state_mb, output_mb, timers } = limits;
    let mut toml = format!(
        r#"
        name = "{job}"
        component = "unused.wasm"
        [sources.input]
        kind = "file"
        path = "unused"
        [sinks.out]
        kind = "memory"
        [dimensions.bomb]
        kind = "memory"
        [limits]
        memory_mb = {memory_mb}
        cpu_per_batch = "{cpu_per_batch_ms}ms"
        state_mb = {state_mb}
        output_mb = {output_mb}
        timers = {timers}
        [parameters]
        "#
    );
    for (name, value) in parameters {
        toml.push_str(&format!("{name:?} = {value:?}\n"));
    }
    JobSpec::parse(&toml, Path::new(".")).expect("test spec")
}

/// Batches of records whose values are the given commands, with offsets
/// counting up across batches from 0.
pub fn batches(commands: &[&[&str]]) -> Vec<Vec<MemoryRecord>> {
    batches_of_values(commands.iter().map(|batch| batch.iter().map(|c| c.as_bytes().to_vec()).collect()).collect())
}

/// Batches of records with the given values, offsets as in [`batches`].
pub fn batches_of_values(values: Vec<Vec<Vec<u8>>>) -> Vec<Vec<MemoryRecord>> {
    let mut offset = 0;
    values
        .into_iter()
        .map(|batch| {
            batch
                .into_iter()
                .map(|value| {
                    let record = MemoryRecord { value, offset, ..Default::default() };
                    offset += 1;
                    record
                })
                .collect()
        })
        .collect()
}

/// `n` `ok` records in batches of `per_batch`.
pub fn ok_batches(n: usize, per_batch: usize) -> Vec<Vec<MemoryRecord>> {
    let all = vec!["ok"; n];
    batches(&all.chunks(per_batch).collect::<Vec<_>>())
}

/// Runs the hostile guest as job `job` over `batches` to its end.
pub async fn run_with(job: &str, limits: Limits, parameters: &[(&str, &str)], batches: Vec<Vec<MemoryRecord>>) -> Run {
    let spec = spec(job, limits, parameters);
    let component = load(HOSTILE).await.expect("the hostile guest is a valid component");
    let (out, dead_letters, metrics) = (MemorySink::default(), MemorySink::default(), Arc::<TaskMetrics>::default());
    let built = TaskBuilder::new(&spec)
        .source("input", Box::new(MemorySource::new(batches)))
        .sink("out", Box::new(out.clone()))
        .dead_letter(Box::new(dead_letters.clone()))
        .metrics(metrics.clone())
        .build(engine(), &component)
        .await;
    let result = match built {
        Ok(task) => {
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            task.run(stop_rx).await.map_err(Failure::Task)
        }
        Err(e) => Err(Failure::Build(e)),
    };
    Run { result, out, dead_letters, metrics }
}

/// `run_with`, no parameters, failing the test instead of hanging if the
/// task never ends.
pub async fn run_bounded(job: &str, limits: Limits, batches: Vec<Vec<MemoryRecord>>) -> Run {
    run_bounded_with(job, limits, &[], batches).await
}

/// `run_with`, failing the test instead of hanging if the task never ends.
pub async fn run_bounded_with(
    job: &str,
    limits: Limits,
    parameters: &[(&str, &str)],
    batches: Vec<Vec<MemoryRecord>>,
) -> Run {
    tokio::time::timeout(GENEROUS, run_with(job, limits, parameters, batches))
        .await
        .unwrap_or_else(|_| panic!("job {job}: the task did not end within {GENEROUS:?}"))
}

pub fn assert_cpu_limit(error: &InstanceError, job: &str, limit: u128) {
    let InstanceError::CpuLimit { job: named, limit_ms } = error else { panic!("expected CpuLimit, got {error:?}") };
    assert_eq!(named, job);
    assert_eq!(*limit_ms, limit);
    let message = error.to_string();
    assert!(message.contains(&format!("`{job}`")), "{message}");
    assert!(message.contains(&format!("CPU limit of {limit} ms")), "{message}");
}

/// Asserts that a healthy run over `records` records finished with one row per record.
pub fn assert_healthy(run: Run, job: &str, records: i64) {
    match &run.result {
        Ok(TaskEnd::Finished) => {}
        other => panic!("job {job}: the healthy task must finish, got {other:?}"),
    }
    assert_eq!(run.delivered_offsets(), (0..records).collect::<Vec<_>>(), "job {job}: one row per record, in order");
    assert!(run.dead_letters.is_empty(), "job {job}: no dead letters expected");
}
