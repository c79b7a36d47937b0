//! Scale-out benchmarks (docs/BENCHMARKS.md, "Scale-out"), run on demand:
//!
//! ```text
//! cargo nextest run -p sluice-console --test scaleout --run-ignored only --no-capture bench_
//! ```
//!
//! - takeover time: SIGKILL the worker running a job, 20 times; from the
//!   kill to the first record the new owner processed;
//! - lease traffic: transactions per second on the metadata database with
//!   4 idle workers and one console, per worker;
//! - 200 deployed jobs on 4 workers: scheduling delay (start request to
//!   running) and API latency (p50/p99) while they run.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_tests::services::postgres_url;
use sqlx::Row;

use crate::client::Client;
use crate::cluster::{ADMIN_PASSWORD, PATIENCE, Shared};
use crate::wait::wait_for;

/// A job of generated rows into memory: cheap, so the control plane is
/// what is measured.
const TICKS: &str = r#"
[sources.ticks]
kind = "datagen"
rate = 50
seed = 1

[sources.ticks.fields]
seq = { gen = "sequence" }

[sinks.out]
kind = "memory"
"#;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut values: Vec<f64>) -> String {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "{name}: n={} p50={:.3} p99={:.3} max={:.3}",
        values.len(),
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values.last().unwrap()
    )
}

async fn deploy(admin: &Client, jobs: usize) {
    admin.post("/projects", json!({ "name": "bench", "description": "scale-out bench" })).await.expect(201);
    let quota = json!({ "max_tasks": 1000, "max_memory_mb": 1_000_000 });
    admin.put("/projects/bench/quota", quota).await.expect(200);
    let component = std::fs::read(sluice_tests::wasm("forward")).unwrap();
    for i in 0..jobs {
        let job = format!("j{i}");
        admin.post("/projects/bench/jobs", json!({ "name": job })).await.expect(201);
        admin.post_bytes(&format!("/projects/bench/jobs/{job}/versions"), component.clone()).await.expect(201);
        admin.put(&format!("/projects/bench/jobs/{job}/deployment"), json!({ "spec": TICKS })).await.expect(200);
    }
}

/// Records the holder of `job`'s active run reported at its last heartbeat.
async fn reported_records(admin: &Client, job: &str, worker: &str) -> Option<u64> {
    let metrics = admin.get(&format!("/projects/bench/jobs/{job}/metrics")).await.expect(200);
    let tasks = metrics["tasks"].as_array()?;
    let on = tasks.iter().filter(|t| t["worker"] == worker).collect::<Vec<_>>();
    (!on.is_empty()).then(|| on.iter().map(|t| t["records_in"].as_u64().unwrap_or(0)).sum())
}

async fn holder(admin: &Client, job: &str) -> (String, String) {
    let runs = admin.get(&format!("/projects/bench/jobs/{job}/runs")).await.expect(200);
    (
        runs[0]["worker"].as_str().unwrap_or_default().to_owned(),
        runs[0]["state"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on demand (see the module's comment)"]
async fn bench_takeover_after_sigkill() {
    let shared = Shared::new().await;
    let (_console, address) = shared.console("console");
    let mut workers: std::collections::BTreeMap<String, crate::cluster::Process> =
        ["w1", "w2", "w3"].into_iter().map(|n| (n.to_owned(), shared.worker(n))).collect();
    let admin = Client::anonymous(&address).login("admin", ADMIN_PASSWORD).await;
    deploy(&admin, 1).await;
    admin.post("/projects/bench/jobs/j0/start", json!({ "restore": "none" })).await.expect(201);
    let mut takeovers = Vec::new();
    for _ in 0..20 {
        let (victim, _) = wait_for("j0 running", PATIENCE, || async {
            match holder(&admin, "j0").await {
                (w, s) if s == "running" && !w.is_empty() => Ok((w, s)),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        let killed = Instant::now();
        workers.get_mut(&victim).unwrap().kill();
        // The first record processed by the new owner: its report shows
        // records on a worker other than the victim.
        loop {
            let (now, state) = holder(&admin, "j0").await;
            if state == "running" && now != victim && reported_records(&admin, "j0", &now).await.unwrap_or(0) > 0 {
                break;
            }
            assert!(killed.elapsed() < PATIENCE, "no takeover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        takeovers.push(killed.elapsed().as_secs_f64());
        workers.insert(victim.clone(), shared.worker(&victim));
    }
    println!(
        "BENCH lease {} {}",
        crate::cluster::LEASE,
        summary("takeover seconds (kill -> first record on the new owner)", takeovers)
    );
    drop(workers);
    shared.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on demand (see the module's comment)"]
async fn bench_two_hundred_jobs_on_four_workers() {
    const JOBS: usize = 200;
    // The default lease: the short one of the tests is for quick takeovers,
    // not for 200 runs on two cores.
    let shared = Shared::with_lease("10s").await;
    let (_console, address) = shared.console("console");
    let workers: Vec<_> = (1..=4).map(|i| shared.worker_with_slots(&format!("w{i}"), 60)).collect();
    let admin = Client::anonymous(&address).login("admin", ADMIN_PASSWORD).await;

    // Lease traffic with nothing running: the workers' heartbeats and the leader.
    let transactions = || async {
        let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
        let row =
            sqlx::query("select (xact_commit + xact_rollback)::bigint as n from pg_stat_database where datname = $1")
                .bind(shared.database.rsplit('/').next().unwrap())
                .fetch_one(&pool)
                .await
                .unwrap();
        row.get::<i64, _>("n")
    };
    let before = transactions().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let idle = (transactions().await - before) as f64 / 30.0;
    println!(
        "BENCH metadata transactions/s, 4 idle workers + 1 console: {idle:.1} ({:.1} per worker incl. the leader's share)",
        idle / 4.0
    );

    deploy(&admin, JOBS).await;
    for i in 0..JOBS {
        admin.post(&format!("/projects/bench/jobs/j{i}/start"), json!({ "restore": "none" })).await.expect(201);
    }
    // From each run's creation to its worker marking it running, as the
    // metadata store recorded them (one machine, one clock).
    let metadata = sqlx::PgPool::connect(&shared.database).await.unwrap();
    let delays: Vec<f64> = wait_for("200 runs running", Duration::from_secs(600), || async {
        let rows = sqlx::query("select (started_ms - created_ms)::bigint as d from runs where state = 'running'")
            .fetch_all(&metadata)
            .await
            .unwrap();
        if rows.len() == JOBS {
            Ok(rows.iter().map(|r| r.get::<i64, _>("d") as f64 / 1000.0).collect())
        } else {
            Err(format!("{} running", rows.len()))
        }
    })
    .await;
    println!("BENCH {}", summary("scheduling delay seconds (start request -> running, 200 starts in a row)", delays));
    let view = admin.get("/workers").await.expect(200);
    let spread: Vec<i64> = view.as_array().unwrap().iter().map(|w| w["runs"].as_i64().unwrap_or(0)).collect();
    println!("BENCH runs per worker: {spread:?}");

    let before = transactions().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let running = (transactions().await - before) as f64 / 30.0;
    println!("BENCH metadata transactions/s, 200 runs on 4 workers + 1 console, no API calls: {running:.1}");

    let before = transactions().await;
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let t = Instant::now();
        admin.get(&format!("/projects/bench/jobs/j{}/metrics", i % JOBS)).await.expect(200);
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        admin.get("/projects/bench/jobs").await.expect(200);
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        i += 1;
    }
    let busy = (transactions().await - before) as f64 / 30.0;
    println!("BENCH {}", summary("API latency ms (job metrics and job list, 200 jobs running)", latencies));
    // The job list reads each job's deployment and runs: most of this is
    // the API loop's, not the leases'.
    println!("BENCH metadata transactions/s with 200 runs and the API loop: {busy:.1}");
    drop(workers);
    shared.drop_database().await;
}
