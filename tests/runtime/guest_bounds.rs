//! What a guest can make the host hold is bounded (issue 16 item 4): the
//! rows of one call (a forwarded row counted at its record's size), state,
//! timers, custom metrics and rejections. A guest that goes past a bound
//! fails its own task with `InstanceError::Limit`, naming the limit, while
//! a healthy task beside it goes on. Logs are the exception: lines are cut
//! and lines past a call's quota are dropped and counted, never failing the
//! job. A loop in `open` ends at the CPU deadline and, as every guest call
//! does, gives up its thread at each epoch tick meanwhile.

use std::time::{Duration, Instant};

use sluice_runtime::job::TaskEnd;
use sluice_runtime::wasm::{InstanceError, LimitHit};

use crate::hostile::{
    HOSTILE, Limits, ROOMY, Run, assert_cpu_limit, assert_healthy, batches, batches_of_values, ok_batches, run_bounded,
    run_bounded_with,
};

/// Limits of the bomb tasks: each bound small, so a bomb goes past it in
/// milliseconds, and a CPU budget roomy enough that only that bound can
/// stop it (a bomb stopped by the deadline instead is a bound that failed).
const BOUNDED: Limits = Limits { memory_mb: 64, cpu_per_batch_ms: 5_000, state_mb: 4, output_mb: 4, timers: 1000 };

const MIB: usize = 1 << 20;
/// `MAX_LOG_LINE` and `MAX_REASON` of the runtime: longer ones are cut to
/// this many bytes and marked with `…`.
const LOG_LINE: usize = 4096;
const REASON: usize = 1024;
/// The runtime's `MAX_METRICS`, `MAX_LOGS_PER_CALL` and the log lines a
/// task keeps.
const METRICS: usize = 256;
const LOGS_PER_CALL: usize = 1000;
const LOGS_KEPT: usize = 1000;

/// The limit `run`'s guest went past, after checking that the error names
/// the job and renders `names` (the limit as the spec spells it).
fn limit_hit<'a>(run: &'a Run, job: &str, names: &str) -> &'a LimitHit {
    let error = run.instance_error(job);
    let InstanceError::Limit { job: named, limit } = error else { panic!("job {job}: expected Limit, got {error:?}") };
    assert_eq!(named, job);
    let message = error.to_string();
    assert!(message.contains(&format!("job `{job}` went past a limit: ")), "{message}");
    assert!(message.contains(names), "job {job}: the message names `{names}`: {message}");
    limit
}

/// The output of a failed call reaches no sink.
fn assert_nothing_delivered(run: &Run, job: &str) {
    assert!(run.out.is_empty(), "job {job}: {} rows of the failed call delivered", run.out.len());
    assert!(run.dead_letters.is_empty(), "job {job}: {} dead letters", run.dead_letters.len());
}

/// A record `command` padded with spaces and `p`s to `size` bytes.
fn padded(command: &str, size: usize) -> Vec<u8> {
    let mut value = format!("{command} ").into_bytes();
    value.resize(size.max(value.len()), b'p');
    value
}

/// `n` times `c`, then the cut mark: a line or reason as the host keeps it.
fn cut(c: char, n: usize) -> String {
    let mut text: String = std::iter::repeat_n(c, n).collect();
    text.push('…');
    text
}

// ---- rows of one call ----

#[tokio::test]
async fn rows_one_call_emits_are_bounded_by_output_mb() {
    let job = "bomb-emit";
    // 64 rows of 1 MiB against 4 MiB.
    let run = run_bounded(job, BOUNDED, batches(&[&["emit-bomb 64 1048576"]])).await;
    assert_eq!(limit_hit(&run, job, "limits.output_mb = 4 MiB"), &LimitHit::Output { mb: 4 });
    assert_nothing_delivered(&run, job);
}

#[tokio::test]
async fn forwarded_rows_count_at_their_records_size() {
    // A forwarded row costs the guest 16 bytes of spans, the task a copy of
    // the whole record: it counts at the record's size.
    let job = "bomb-forward";
    let run = run_bounded(job, BOUNDED, batches_of_values(vec![vec![padded("forward-bomb 64", MIB)]])).await;
    assert_eq!(limit_hit(&run, job, "limits.output_mb = 4 MiB"), &LimitHit::Output { mb: 4 });
    assert_nothing_delivered(&run, job);

    // One 1 MiB record forwarded a million times: stopped at the first
    // rows the SDK hands over, long before the CPU deadline.
    let job = "bomb-forward-million";
    let started = Instant::now();
    let run = run_bounded(job, BOUNDED, batches_of_values(vec![vec![padded("forward-bomb 1000000", MIB)]])).await;
    assert_eq!(limit_hit(&run, job, "limits.output_mb = 4 MiB"), &LimitHit::Output { mb: 4 });
    assert_nothing_delivered(&run, job);
    eprintln!("{job}: failed after {:?}", started.elapsed());
}

#[tokio::test]
async fn the_output_bound_is_per_call() {
    // 3 MiB per call, in two calls: each under 4 MiB, so nothing fails.
    let job = "bomb-emit-within";
    let run = run_bounded(job, BOUNDED, batches(&[&["emit-bomb 3 1048576"], &["emit-bomb 3 1048576"]])).await;
    assert!(matches!(run.result, Ok(TaskEnd::Finished)), "job {job}: {:?}", run.result);
    assert_eq!(run.out.len(), 6);
}

// ---- state ----

/// Runs a state bomb (256 entries of 64 KiB against `limits.state_mb = 4`).
async fn assert_state_bounded(job: &str, command: &str) {
    let run = run_bounded(job, BOUNDED, batches(&[&["ok"], &[command]])).await;
    let limit = limit_hit(&run, job, "limits.state_mb = 4 MiB");
    let LimitHit::State { mb: 4, keys } = limit else { panic!("job {job}: expected the state limit, got {limit:?}") };
    // Stopped near the bound, not after the whole bomb: 4 MiB is ~62
    // entries of 65 KiB (plus the SDK's last buffer of writes).
    assert!(*keys < 256, "job {job}: {keys} keys held when stopped");
    assert_eq!(run.delivered_offsets(), vec![0], "job {job}: the batch before the bomb is delivered");
}

#[tokio::test]
async fn value_state_writes_are_bounded_by_state_mb() {
    assert_state_bounded("bomb-value-state", "state-bomb 256 65536").await;
}

#[tokio::test]
async fn map_state_writes_are_bounded_by_state_mb() {
    assert_state_bounded("bomb-map-state", "map-bomb 256 65536").await;
}

#[tokio::test]
async fn count_distinct_items_are_bounded_by_state_mb() {
    assert_state_bounded("bomb-distinct", "distinct-bomb 256 65536").await;
}

/// Rows written to an in-memory dimension (or staged until a snapshot)
/// stay in the process, so they are held to `limits.state_mb` too.
#[tokio::test]
async fn rows_kept_for_a_dimension_are_bounded_by_state_mb() {
    let job = "bomb-dimension";
    let run = run_bounded(job, BOUNDED, batches(&[&["ok"], &["dimension-bomb 256 65536"]])).await;
    let limit = limit_hit(&run, job, "dimension `bomb` kept in the process grew past limits.state_mb = 4 MiB");
    assert_eq!(limit, &LimitHit::DimensionRows { name: "bomb".into(), mb: 4 });
    assert_eq!(run.delivered_offsets(), vec![0], "job {job}: the batch before the bomb is delivered");
}

// ---- timers ----

#[tokio::test]
async fn timers_are_bounded_in_number() {
    let job = "bomb-timers";
    let run = run_bounded(job, BOUNDED, batches(&[&["timer-bomb 100000"]])).await;
    assert_eq!(limit_hit(&run, job, "limits.timers = 1000"), &LimitHit::Timers { limit: 1000 });
    assert_nothing_delivered(&run, job);
}

#[tokio::test]
async fn timers_are_bounded_in_size() {
    let job = "bomb-timer-key";
    let run = run_bounded(job, BOUNDED, batches(&[&["timer-bomb 1 100000"]])).await;
    let limit = limit_hit(&run, job, "longer than 65536 / 256 bytes");
    assert_eq!(limit, &LimitHit::TimerSize { key: 100_000, tag: 4 });
}

#[tokio::test]
async fn registering_a_timer_again_at_the_limit_adds_none() {
    // The same 1000 timers in every batch (a window helper registers its
    // window's end for every record): the task holds 1000 timers, at the
    // limit but never past it.
    let job = "timers-at-the-limit";
    let run = run_bounded(job, BOUNDED, batches(&[&["timer-bomb 1000"], &["timer-bomb 1000"], &["ok"]])).await;
    assert!(matches!(run.result, Ok(TaskEnd::Finished)), "job {job}: {:?}", run.result);
    assert_eq!(run.delivered_offsets(), vec![2]);
}

// ---- custom metrics ----

#[tokio::test]
async fn custom_metrics_are_bounded_in_number() {
    let job = "bomb-metrics";
    let run = run_bounded(job, BOUNDED, batches(&[&["metric-bomb 5000"]])).await;
    assert_eq!(limit_hit(&run, job, "more than 256 custom metrics"), &LimitHit::Metrics);
    assert_eq!(run.metrics.custom().len(), METRICS, "the task holds the first {METRICS} metrics, no more");
}

#[tokio::test]
async fn a_metric_name_too_long_is_refused_not_kept() {
    let job = "bomb-metric-name";
    let run = run_bounded(job, BOUNDED, batches(&[&["metric-bomb 1 1048576"]])).await;
    assert_eq!(limit_hit(&run, job, "a metric name longer than 128 bytes"), &LimitHit::Metrics);
    // The task's metrics outlive it (the console shows a failed job's), so
    // the refused name must not be among them.
    let kept: Vec<usize> = run.metrics.custom().iter().map(|m| m.name.len()).collect();
    assert!(kept.is_empty(), "no metric was declared; names of these lengths were: {kept:?}");
}

// ---- logs ----

#[tokio::test]
async fn log_lines_are_cut_and_lines_past_the_quota_dropped_and_counted() {
    // Logs never fail a job: a call keeps its first 1000 lines, each cut to
    // 4 KiB, counts the rest in `logs_dropped`; the task keeps the last
    // 1000 lines of all calls.
    let job = "bomb-logs";
    let run = run_bounded(job, BOUNDED, batches(&[&["log-bomb 1500 16384"], &["log-bomb 500 10"], &["ok"]])).await;
    assert!(matches!(run.result, Ok(TaskEnd::Finished)), "job {job}: {:?}", run.result);
    assert_eq!(run.delivered_offsets(), vec![2], "the job went on after its log bombs");
    let dropped = run.metrics.logs_dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dropped, 1500 - LOGS_PER_CALL as u64, "the first call's lines past its quota");
    let logs: Vec<String> = run.metrics.logs().into_iter().map(|(_, line)| line).collect();
    assert_eq!(logs.len(), LOGS_KEPT);
    let (long, short) = logs.split_at(LOGS_KEPT - 500);
    assert!(long.iter().all(|line| *line == cut('l', LOG_LINE)), "lines of the first call are cut to 4 KiB");
    assert!(short.iter().all(|line| line.as_str() == "l".repeat(10)), "then the second call's 500 lines");
}

// ---- rejections ----

#[tokio::test]
async fn rejections_are_bounded_by_the_records_of_the_call() {
    let job = "bomb-rejections";
    let run = run_bounded(job, BOUNDED, batches(&[&["reject-bomb 10000 1024"]])).await;
    let limit = limit_hit(&run, job, "one call rejected 10000 records, more than the 1 it was given");
    assert_eq!(limit, &LimitHit::Rejections { rejected: 10_000, records: 1 });
    assert_nothing_delivered(&run, job);
}

#[tokio::test]
async fn a_rejection_reason_is_cut() {
    let job = "bomb-reason";
    let run = run_bounded(job, BOUNDED, batches(&[&["reject-bomb 1 1048576"]])).await;
    assert!(matches!(run.result, Ok(TaskEnd::Finished)), "job {job}: {:?}", run.result);
    let dead = run.dead_letters.rows();
    assert_eq!(dead.len(), 1);
    let letter: serde_json::Value = serde_json::from_slice(&dead[0].value).expect("dead letters are JSON");
    let reason = letter["reason"].as_str().expect("a reason");
    assert_eq!(reason.len(), cut('x', REASON).len(), "the reason is cut to 1 KiB");
    assert_eq!(reason, cut('x', REASON));
}

// ---- the platform's state ----

#[tokio::test]
async fn a_job_cannot_declare_the_platforms_state() {
    let job = "platform-state";
    let run = run_bounded_with(job, BOUNDED, &[("open", "platform-state")], ok_batches(1, 1)).await;
    let error = run.instance_error(job).to_string();
    assert!(
        error.contains("state `sluice.applied_origins`: names starting with `sluice.` are the platform's"),
        "{error}"
    );
    assert_nothing_delivered(&run, job);
}

// ---- a loop in open ----

#[tokio::test]
async fn a_loop_in_open_hits_the_cpu_deadline() {
    let job = "open-loop";
    let limits = Limits { cpu_per_batch_ms: 300, ..BOUNDED };
    let run = run_bounded_with(job, limits, &[("open", "loop")], ok_batches(5, 5)).await;
    assert_cpu_limit(run.instance_error(job), job, 300);
    assert_nothing_delivered(&run, job);
}

/// One thread for all tasks: only a guest that gives the thread up lets
/// the others run while it loops.
#[tokio::test(flavor = "current_thread")]
async fn a_loop_in_open_does_not_hold_the_thread() {
    // Compiled before either task starts, so the looping one is in its
    // `open` by the time the healthy one is started.
    sluice_tests::load(HOSTILE).await.expect("the hostile guest loads");
    let started = Instant::now();
    let limits = Limits { cpu_per_batch_ms: 2_000, ..BOUNDED };
    let looper = tokio::spawn(async move {
        let run = run_bounded_with("open-loop-beside", limits, &[("open", "loop")], ok_batches(5, 5)).await;
        (run, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let healthy = tokio::spawn(async move {
        let run = run_bounded("healthy-beside-open-loop", ROOMY, ok_batches(200, 20)).await;
        (run, started.elapsed())
    });
    let ((looper, looper_ended), (healthy, healthy_ended)) =
        (looper.await.expect("looping task"), healthy.await.expect("healthy task"));
    assert_cpu_limit(looper.instance_error("open-loop-beside"), "open-loop-beside", 2_000);
    assert_healthy(healthy, "healthy-beside-open-loop", 200);
    assert!(
        healthy_ended < looper_ended,
        "the healthy task ran while the other looped in open: it ended at {healthy_ended:?}, the loop at \
         {looper_ended:?}"
    );
}

// ---- beside a healthy task ----

/// Every bomb without end at once, and a healthy task, all on one thread.
#[tokio::test(flavor = "current_thread")]
async fn bombs_do_not_harm_a_healthy_task_beside_them() {
    const RECORDS: usize = 1000;
    let bombs: [(&'static str, Vec<u8>, &'static str); 9] = [
        ("beside-emit", b"emit-bomb".to_vec(), "limits.output_mb = 4 MiB"),
        ("beside-forward", padded("forward-bomb", MIB), "limits.output_mb = 4 MiB"),
        ("beside-value-state", b"state-bomb".to_vec(), "limits.state_mb = 4 MiB"),
        ("beside-map-state", b"map-bomb".to_vec(), "limits.state_mb = 4 MiB"),
        ("beside-distinct", b"distinct-bomb".to_vec(), "limits.state_mb = 4 MiB"),
        ("beside-dimension", b"dimension-bomb".to_vec(), "limits.state_mb = 4 MiB"),
        ("beside-timers", b"timer-bomb".to_vec(), "limits.timers = 1000"),
        ("beside-metrics", b"metric-bomb".to_vec(), "more than 256 custom metrics"),
        ("beside-rejections", b"reject-bomb 10000 1024".to_vec(), "more than the 1 it was given"),
    ];
    let tasks: Vec<_> = bombs
        .into_iter()
        .map(|(job, bomb, names)| {
            let records = batches_of_values(vec![vec![b"ok".to_vec()], vec![bomb]]);
            (job, names, tokio::spawn(run_bounded(job, BOUNDED, records)))
        })
        .collect();
    let healthy = tokio::spawn(run_bounded("healthy-beside-bombs", ROOMY, ok_batches(RECORDS, 100)));
    for (job, names, task) in tasks {
        let run = task.await.expect("bomb task");
        limit_hit(&run, job, names);
        assert_eq!(run.delivered_offsets(), vec![0], "job {job}: the batch before the bomb is delivered");
    }
    assert_healthy(healthy.await.expect("healthy task"), "healthy-beside-bombs", RECORDS as i64);

    // The process is unharmed: a fresh instance of the same component works.
    let after = run_bounded("healthy-after-bombs", ROOMY, ok_batches(50, 10)).await;
    assert_healthy(after, "healthy-after-bombs", 50);
}
