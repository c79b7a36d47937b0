//! Issue 16, item 4: one tenant's code cannot starve the platform. A's
//! developer runs the hostile guest (`tests/guests/guest-hostile`: a
//! record `loop` spins for ever, `alloc` allocates for ever) in several
//! debug runs at once — as many as a's quota admits, the one past it
//! refused, then more once a global admin raises the quota — and a's
//! operator starts it as two jobs. Throughout, the API answers every
//! request within 1 s and project b's job keeps writing rows; each bomb
//! ends with an error naming the limit it hit.
//!
//! Timing-sensitive: `.config/nextest.toml` runs this test alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::client::{Answer, Client};
use crate::platform::{PATIENCE, Platform, component, read_ledger, wait_for};

/// What the issue asks of the API while a job misbehaves.
const MOST_AN_ANSWER_MAY_TAKE: Duration = Duration::from_secs(1);
/// The CPU a guest call may take here, ms: short, so the suite is.
const CPU_PER_CALL_MS: u64 = 4000;
/// The guest memory of a debug run or job, MiB (the default).
const MEMORY_MB: u64 = 256;

/// The hostile guest's spec with these limits: records come from the
/// request (a debug run) or from `file` in a's folder (a job); rows go
/// nowhere.
fn hostile_spec_with(file: &str, cpu: &str, memory_mb: u64) -> String {
    format!(
        "[sources.in]\nkind = \"file\"\npath = \"{file}\"\n\n[sinks.out]\nkind = \"memory\"\n\n\
         [limits]\ncpu_per_batch = \"{cpu}\"\nmemory_mb = {memory_mb}\n"
    )
}

fn hostile_spec(file: &str) -> String {
    hostile_spec_with(file, &format!("{CPU_PER_CALL_MS}ms"), MEMORY_MB)
}

/// What the probe saw while the bombs went off.
#[derive(Debug, Default)]
struct Observed {
    /// (request, how long its answer took) of every probe.
    answers: Vec<(String, Duration)>,
    /// Answers other than 200.
    failures: Vec<String>,
    /// Rows in b's ledger, about once a second.
    b_rows: Vec<usize>,
}

/// Asks the API a cheap question (who am I, as a's developer; is the
/// console alive, as nobody) every 100 ms until told to stop, timing
/// each answer, and counts b's rows every second.
async fn probe(dev: Client, nobody: Client, b_warehouse: PathBuf, stop: watch::Receiver<bool>) -> Observed {
    let mut seen = Observed::default();
    let mut last_count = Instant::now() - Duration::from_secs(1);
    while !*stop.borrow() {
        for (client, path) in [(&dev, "/api/v1/me"), (&nobody, "/healthz"), (&dev, "/api/v1/projects/a/jobs")] {
            let started = Instant::now();
            let answer: Answer = client.get_raw(path).await;
            seen.answers.push((path.to_owned(), started.elapsed()));
            if answer.status != 200 {
                seen.failures.push(format!("{path}: {} {}", answer.status, answer.text));
            }
        }
        if last_count.elapsed() >= Duration::from_secs(1) {
            seen.b_rows.push(read_ledger(&b_warehouse).await.len());
            last_count = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_loops_and_memory_bombs_leave_the_api_answering_and_project_b_producing() {
    let platform = Platform::start().await;
    let b_before = platform.b_ledger().await;
    let dev = &platform.dev;
    dev.post("/projects/a/jobs", json!({ "name": "hostile" })).await.expect(201);
    dev.post_bytes("/projects/a/jobs/hostile/versions", component("guest_hostile")).await.expect(201);
    let debug = |records: &str, spec: String| {
        let (dev, records) = (dev.clone(), records.to_owned());
        async move { dev.post("/projects/a/jobs/hostile/debug", json!({ "spec": spec, "records": records })).await }
    };

    // What the issue tried first: limits above the operator's ceilings.
    let greedy = hostile_spec_with("in.jsonl", "120s", 100_000);
    debug("loop", greedy).await.refused(
        400,
        &[
            "limits.cpu_per_batch = 2m is above the ceiling of 1m",
            "limits.memory_mb = 100000 is above the ceiling of 4096 (the operator's --max-memory-mb)",
        ],
    );

    // Two jobs that misbehave for real: a's operator starts what its developer built.
    std::fs::write(platform.path("files/a/spin.jsonl"), "loop\n").expect("a's folder");
    std::fs::write(platform.path("files/a/hog.jsonl"), "alloc\n").expect("a's folder");
    for (job, file) in [("spinner", "spin.jsonl"), ("hog", "hog.jsonl")] {
        dev.post("/projects/a/jobs", json!({ "name": job })).await.expect(201);
        dev.post_bytes(&format!("/projects/a/jobs/{job}/versions"), component("guest_hostile")).await.expect(201);
        let deployment = json!({ "spec": hostile_spec(file) });
        platform.a_admin.put(&format!("/projects/a/jobs/{job}/deployment"), deployment).await.expect(200);
    }

    let (stop, stopped) = watch::channel(false);
    let prober = tokio::spawn(probe(dev.clone(), platform.anonymous(), platform.b_warehouse(), stopped));
    for job in ["spinner", "hog"] {
        let start = json!({ "restore": "none" });
        platform.a_admin.post(&format!("/projects/a/jobs/{job}/start"), start).await.expect(201);
    }
    let cpu_limit = format!("exceeded its CPU limit of {CPU_PER_CALL_MS} ms");
    let memory_limit = format!("exceeded its memory limit of {MEMORY_MB} MiB");

    // The endless loops at once: the project's quota of debug runs
    // at once admits that many; the one past it is refused, saying why.
    let quota = platform.admin.get("/projects/a/quota").await.expect(200)["quota"]["max_debug_runs"].as_u64();
    let most = quota.expect("a's quota of debug runs") as usize;
    let loops: Vec<_> = (0..=most).map(|_| tokio::spawn(debug("loop", hostile_spec("in.jsonl")))).collect();
    let (mut ran, mut refused) = (0, 0);
    for run in loops {
        let answer = run.await.expect("the debug run's request");
        if answer.status == 409 {
            answer.refused(409, &["already has", "debug run(s) in progress, its max_debug_runs"]);
            refused += 1;
        } else {
            answer.refused(400, &[&cpu_limit]);
            ran += 1;
        }
    }
    assert_eq!((ran, refused), (most, 1), "the quota admits {most} debug runs at once");

    // An operator who allows more (a global admin raises a's quota): three
    // loops and two memory bombs at once, as the developer ran.
    let more = json!({ "max_debug_runs": 5 });
    platform.admin.put("/projects/a/quota", more).await.expect(200);
    let runs: Vec<_> = ["loop", "loop", "loop", "alloc", "alloc"]
        .into_iter()
        .map(|what| (what, tokio::spawn(debug(what, hostile_spec("in.jsonl")))))
        .collect();
    for (what, run) in runs {
        let limit = if what == "loop" { &cpu_limit } else { &memory_limit };
        run.await.expect("the debug run's request").refused(400, &[limit]);
    }
    // The jobs hit their limits too, and are restarted from their snapshots.
    for (job, limit) in [("spinner", &cpu_limit), ("hog", &memory_limit)] {
        wait_for(&format!("job {job} to fail on its limit"), PATIENCE, || async {
            let failures = platform.admin.get(&format!("/projects/a/events?job={job}&kind=error")).await.expect(200);
            if failures.to_string().contains(limit.as_str()) { Ok(()) } else { Err(failures.to_string()) }
        })
        .await;
    }
    stop.send(true).expect("the probe listens");
    let seen = prober.await.expect("the probe");

    assert!(seen.failures.is_empty(), "the API failed while the bombs ran: {:#?}", seen.failures);
    let slowest = seen.answers.iter().max_by_key(|(_, took)| *took).expect("the probe asked");
    assert!(
        slowest.1 < MOST_AN_ANSWER_MAY_TAKE,
        "{} took {:?} while the bombs ran ({} answers)",
        slowest.0,
        slowest.1,
        seen.answers.len()
    );
    eprintln!("{} answers during the bombs, the slowest {slowest:?}; b's rows: {:?}", seen.answers.len(), seen.b_rows);
    // b kept writing while they ran: more rows every few seconds.
    assert!(seen.b_rows.len() >= 5, "the bombs lasted a few seconds at least: {:?}", seen.b_rows);
    for window in seen.b_rows.windows(4) {
        assert!(window[3] > window[0], "project b's rows stopped growing for 3 s: {:?}", seen.b_rows);
    }

    // Ended by the operator, or already failed for good after its restarts.
    for job in ["spinner", "hog"] {
        let stopped =
            platform.a_admin.post(&format!("/projects/a/jobs/{job}/stop"), json!({ "snapshot": false })).await;
        assert!([200, 409].contains(&stopped.status.as_u16()), "{}: {}", stopped.what, stopped.text);
    }
    let me: Value = dev.get("/me").await.expect(200);
    assert_eq!(me["user"]["is_admin"], false);
    platform.assert_b_kept_producing(&b_before).await;
}
