//! Hostile guests: a panic, an endless loop and a memory bomb each fail
//! their own task with an error that names the job (and the limit hit),
//! without harming rows already written, other tasks running at the same
//! time, or later instances of the same component.

use std::time::Instant;

use sluice_runtime::wasm::InstanceError;

use crate::hostile::{Limits, ROOMY, TIGHT, assert_healthy, batches, ok_batches, run_bounded};

fn assert_cpu_limit(error: &InstanceError, job: &str) {
    crate::hostile::assert_cpu_limit(error, job, 200);
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
    assert_cpu_limit(error, job);
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
    assert_memory_limit(error, job);
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
    assert_cpu_limit(run.instance_error("hostile-late-loop"), "hostile-late-loop");

    let limits = Limits { cpu_per_batch_ms: 10_000, ..TIGHT };
    let run = run_bounded("hostile-late-alloc", limits, batches(&[&["ok"], &["ok", "ok"], &["alloc", "ok"]])).await;
    assert_eq!(run.delivered_offsets(), vec![0, 1, 2]);
    assert_memory_limit(run.instance_error("hostile-late-alloc"), "hostile-late-alloc");
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
    assert_cpu_limit(spinner.instance_error("beside-loop"), "beside-loop");
    assert_eq!(bomb.delivered_offsets(), vec![0]);
    assert_memory_limit(bomb.instance_error("beside-alloc"), "beside-alloc");
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
