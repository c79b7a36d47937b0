//! Scale-out with real processes (issue 18): two consoles (`sluice serve
//! --workers 0`) and three `sluice worker` processes on one PostgreSQL
//! store (metadata and snapshots), Kafka (Tansu) in, PostgreSQL tables
//! out. Workers are killed with SIGKILL, paused past their lease with
//! SIGSTOP and continued (a zombie), drained with SIGTERM; the leading
//! console is killed and restarted. Every sink table must end as a
//! failure-free run leaves it, every takeover must be a job event, and the
//! surviving console must answer throughout.

mod bench;
// The shared client; this suite needs only part of it.
#[allow(dead_code, unused_imports)]
#[path = "../support/client.rs"]
mod client;
mod cluster;
#[path = "../support/orders.rs"]
mod orders;
mod partition;
mod spread;
#[path = "../support/wait.rs"]
mod wait;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::{kafka_brokers, postgres_url};
use sqlx::Row;

use client::Client;
use cluster::{ADMIN_PASSWORD, PATIENCE, Process, Shared};
use wait::wait_for;

/// Orders of 300 users (the hourly-premium job's input), wave `wave`.
fn orders(wave: u64, n: usize) -> Vec<(i32, String, String)> {
    orders::orders(wave, 300, n)
}

/// Clicks of 150 users (the keyed counts' input), wave `wave`.
fn clicks(wave: u64, n: usize) -> Vec<(i32, String, String)> {
    (0..n as u64)
        .map(|i| {
            // Each user on one partition, as Kafka's partitioner puts a
            // key's records: the job keeps its counts in one shard per
            // partition (it declares its state keyed by the record key).
            let user = (i * 7919 + wave * 31) % 150;
            ((user % 2) as i32, format!("u{user}"), "{}".to_owned())
        })
        .collect()
}

fn premium_spec(topic: &str, table: &str) -> String {
    format!(
        r#"[parameters]
utc_offset_minutes = "480"
since_ms = "0"

[sources.user_order]
kind = "kafka"
connection = "events"
topic = "{topic}"
start = "earliest"
event_time_field = "gmt_modified"

[sinks.hs_order]
kind = "sql"
connection = "warehouse"
table = "{table}"
primary_key = ["biz_date"]
create_table = true
columns = {{ biz_date = "varchar(10)", total_premium = "decimal(18,2)", policy_cnt = "bigint", policy_holder_cnt = "bigint" }}

[batch]
max_records = 200

[snapshot]
interval = "200ms"
"#
    )
}

/// The keyed count into `table`: upserted by user, or (`append`) one row
/// per record, keyed by the record's deterministic id.
fn counts_spec(topic: &str, table: &str, append: bool) -> String {
    let mode = if append { "mode = \"append\"\nid_column = \"row_id\"" } else { "primary_key = [\"user\"]" };
    format!(
        r#"[sources.clicks]
kind = "kafka"
connection = "events"
topic = "{topic}"
start = "earliest"

[sinks.counts]
kind = "sql"
connection = "warehouse"
table = "{table}"
{mode}
create_table = true
columns = {{ user = "varchar(32)", events = "bigint" }}

[batch]
max_records = 200

[snapshot]
interval = "200ms"
"#
    )
}

struct Scenario {
    admin: Client,
    brokers: String,
    orders_topic: String,
    clicks_topic: String,
    pid: u32,
}

impl Scenario {
    fn table(&self, name: &str) -> String {
        format!("scaleout_{name}_{}", self.pid)
    }

    /// The job's active run: (worker, state, run id).
    async fn run_of(&self, job: &str) -> (String, String, String) {
        let runs = self.admin.get(&format!("/projects/p/jobs/{job}/runs")).await.expect(200);
        let run = &runs[0];
        (
            run["worker"].as_str().unwrap_or_default().to_owned(),
            run["state"].as_str().unwrap_or_default().to_owned(),
            run["id"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Waits until `job` runs on a worker other than `not_on`; returns it.
    async fn running_elsewhere(&self, job: &str, not_on: &str) -> String {
        wait_for(&format!("{job} to run on a worker other than {not_on}"), PATIENCE, || async {
            let (worker, state, _) = self.run_of(job).await;
            if state == "running" && !worker.is_empty() && worker != not_on {
                Ok(worker)
            } else {
                Err(format!("{state} on `{worker}`"))
            }
        })
        .await
    }

    async fn produce_wave(&self, wave: u64) {
        produce(
            &self.brokers,
            &self.orders_topic,
            orders(wave, 4000).iter().map(|(p, k, v)| (*p, k.as_str(), v.clone())),
        )
        .await;
        produce(
            &self.brokers,
            &self.clicks_topic,
            clicks(wave, 4000).iter().map(|(p, k, v)| (*p, k.as_str(), v.clone())),
        )
        .await;
    }
}

async fn rows(select: &str) -> Vec<Vec<String>> {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    let rows = match sqlx::query(select).fetch_all(&pool).await {
        Ok(rows) => rows,
        Err(_) => return Vec::new(), // not created yet
    };
    rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i).unwrap_or_default()).collect()).collect()
}

/// The hourly totals a failure-free run leaves: `sluice run` over the whole
/// topic (bounded) into a table of its own.
fn clean_premium(scenario: &Scenario, table: &str, dir: &std::path::Path) {
    let spec = format!(
        "name = \"hourly_premium\"\ncomponent = \"unused.wasm\"\n{}",
        premium_spec(&scenario.orders_topic, table).replace(
            &format!("topic = \"{}\"", scenario.orders_topic),
            &format!("topic = \"{}\"\nbounded = true", scenario.orders_topic)
        )
    );
    let path = dir.join("clean.toml");
    std::fs::write(&path, spec).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--quiet", "--spec"])
        .arg(&path)
        .arg("--component")
        .arg(sluice_tests::wasm("hourly_premium"))
        .args(["--connection", &format!("events={}", scenario.brokers)])
        .args(["--connection", &format!("warehouse={}", postgres_url())])
        .status()
        .unwrap();
    assert!(status.success(), "the clean reference run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_pauses_drains_and_a_lost_leader_leave_every_table_as_a_failure_free_run() {
    let shared = Shared::new().await;
    let (mut console_a, address_a) = shared.console("console-a");
    let (_console_b, address_b) = shared.console("console-b");
    let mut workers: BTreeMap<String, Process> =
        ["w1", "w2", "w3"].into_iter().map(|n| (n.to_owned(), shared.worker(n))).collect();

    let admin = Client::anonymous(&address_a).login("admin", ADMIN_PASSWORD).await;
    let admin_b = Client::anonymous(&address_b).login("admin", ADMIN_PASSWORD).await;
    let brokers = kafka_brokers();
    let (orders_topic, clicks_topic) = (unique_topic("scaleout-orders"), unique_topic("scaleout-clicks"));
    create_topic(&brokers, &orders_topic, 2).await;
    create_topic(&brokers, &clicks_topic, 2).await;
    let scenario = Scenario { admin, brokers, orders_topic, clicks_topic, pid: std::process::id() };
    let a = &scenario.admin;

    // The API stays up on console b whatever happens to workers or to a.
    let api_failures = Arc::new(AtomicUsize::new(0));
    let polling = Arc::new(AtomicBool::new(true));
    let poller = {
        let (client, failures, polling) = (admin_b.clone(), api_failures.clone(), polling.clone());
        tokio::spawn(async move {
            let mut calls = 0;
            while polling.load(Ordering::SeqCst) {
                let started = Instant::now();
                let answer = client.get("/projects").await;
                if answer.status != 200 || started.elapsed() > Duration::from_secs(5) {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                calls += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            calls
        })
    };

    a.post("/projects", json!({ "name": "p", "description": "scale-out" })).await.expect(201);
    let events = json!({ "kind": "kafka", "url": scenario.brokers });
    a.put("/projects/p/connections/events", events).await.expect(204);
    a.put("/projects/p/connections/warehouse", json!({ "kind": "database", "url": postgres_url() })).await.expect(204);
    let jobs = [
        ("premium", "hourly_premium", premium_spec(&scenario.orders_topic, &scenario.table("premium"))),
        ("counts", "guest_keyed_count", counts_spec(&scenario.clicks_topic, &scenario.table("counts"), false)),
        ("counts-log", "guest_keyed_count", counts_spec(&scenario.clicks_topic, &scenario.table("counts_log"), true)),
    ];
    for (job, component, spec) in &jobs {
        a.post("/projects/p/jobs", json!({ "name": job })).await.expect(201);
        let bytes = std::fs::read(sluice_tests::wasm(component)).unwrap();
        a.post_bytes(&format!("/projects/p/jobs/{job}/versions"), bytes).await.expect(201);
        a.put(&format!("/projects/p/jobs/{job}/deployment"), json!({ "spec": spec })).await.expect(200);
        let run = a.post(&format!("/projects/p/jobs/{job}/start"), json!({ "restore": "none" })).await.expect(201);
        assert_eq!(run["state"], "starting", "a console without a worker leaves the run to assignment: {run}");
    }
    // Spread by free slots: one run on each worker.
    let mut placed = Vec::new();
    for (job, _, _) in &jobs {
        placed.push(scenario.running_elsewhere(job, "").await);
    }
    placed.sort();
    assert_eq!(placed, ["w1", "w2", "w3"], "three runs over three workers of two slots each");
    let view = a.get("/workers").await.expect(200);
    assert_eq!(view.as_array().map(Vec::len), Some(3), "the Workers view lists them: {view}");
    assert!(view.as_array().unwrap().iter().all(|w| w["state"] == "up" && w["runs"] == 1), "{view}");

    // 1. SIGKILL the worker running premium, mid-run; restart it later.
    scenario.produce_wave(1).await;
    wait_for("counts to move", PATIENCE, || async {
        let n = rows(&format!("select count(*)::text from {}", scenario.table("counts_log"))).await;
        if n.first().is_some_and(|r| r[0] != "0") { Ok(()) } else { Err(format!("{n:?}")) }
    })
    .await;
    let (victim, _, _) = scenario.run_of("premium").await;
    let killed = Instant::now();
    workers.get_mut(&victim).unwrap().kill();
    let new_owner = scenario.running_elsewhere("premium", &victim).await;
    eprintln!("takeover of premium: {:?} after SIGKILL ({victim} -> {new_owner})", killed.elapsed());
    workers.insert(victim.clone(), shared.worker(&victim));
    scenario.produce_wave(2).await;

    // 2. SIGSTOP the worker running counts past its lease: a zombie. Once
    //    continued it finds the run gone and drops it (its tasks had
    //    stopped writing at 3/4 of the lease; tests/runtime/lease.rs).
    let (paused, _, _) = scenario.run_of("counts").await;
    workers[&paused].signal("STOP");
    let resumed_on = scenario.running_elsewhere("counts", &paused).await;
    scenario.produce_wave(3).await;
    workers[&paused].signal("CONT");
    wait_for("the continued zombie to drop its run", PATIENCE, || async {
        let view = a.get("/workers").await.expect(200);
        let zombie = view.as_array().unwrap().iter().find(|w| w["id"] == paused.as_str()).cloned().unwrap_or_default();
        if zombie["state"] == "up" && zombie["status"] == json!([]) { Ok(()) } else { Err(zombie.to_string()) }
    })
    .await;
    eprintln!("counts moved from the paused {paused} to {resumed_on}; {paused} continued and let it go");

    // 3. SIGKILL console a (it may lead); console b takes the control plane
    //    over, and a takeover after that is its work.
    console_a.kill();
    let admin_on_b = Scenario { admin: admin_b.clone(), ..scenario_clone(&scenario) };
    let (victim, _, _) = admin_on_b.run_of("counts-log").await;
    workers.get_mut(&victim).unwrap().kill();
    let moved_to = admin_on_b.running_elsewhere("counts-log", &victim).await;
    eprintln!("counts-log moved from {victim} to {moved_to} with console a gone");
    workers.insert(victim.clone(), shared.worker(&victim));
    let (_console_a, address_a) = shared.console("console-a");
    let again = Client::anonymous(&address_a).login("admin", ADMIN_PASSWORD).await;
    again.get("/projects/p/jobs").await.expect(200);

    // 4. SIGTERM drains a worker: its run stops with a snapshot and moves.
    let (drained, _, _) = admin_on_b.run_of("premium").await;
    let status = workers.get_mut(&drained).unwrap().terminate();
    assert!(status.success(), "a drained worker exits cleanly");
    admin_on_b.running_elsewhere("premium", &drained).await;
    scenario.produce_wave(4).await;

    // The tables end as a failure-free run leaves them.
    let total = 4 * 4000;
    let mut expected_counts: BTreeMap<String, i64> = BTreeMap::new();
    for wave in 1..=4 {
        for (_, user, _) in clicks(wave, 4000) {
            *expected_counts.entry(user).or_default() += 1;
        }
    }
    let want_counts: Vec<Vec<String>> = expected_counts.iter().map(|(u, n)| vec![u.clone(), n.to_string()]).collect();
    let counts_table = scenario.table("counts");
    wait_for("counts to equal a failure-free run's", PATIENCE, || async {
        let got = rows(&format!("select \"user\", events::text from {counts_table} order by 1")).await;
        if got == want_counts { Ok(()) } else { Err(format!("{} rows, e.g. {:?}", got.len(), got.first())) }
    })
    .await;
    let log_table = scenario.table("counts_log");
    wait_for("counts-log to hold one row per record", PATIENCE, || async {
        let got = rows(&format!("select count(*)::text, count(distinct row_id)::text from {log_table}")).await;
        let want = vec![vec![total.to_string(), total.to_string()]];
        if got == want { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    let highest = rows(&format!("select \"user\", max(events)::text from {log_table} group by 1 order by 1")).await;
    assert_eq!(highest, want_counts, "the appended counts end at each user's total: no record counted twice");

    let tmp = tempfile::tempdir().unwrap();
    let clean_table = scenario.table("premium_clean");
    clean_premium(&scenario, &clean_table, tmp.path());
    let select = |t: &str| {
        format!("select biz_date, total_premium::text, policy_cnt::text, policy_holder_cnt::text from {t} order by 1")
    };
    let want = rows(&select(&clean_table)).await;
    assert!(want.len() >= 12, "twelve hours of orders: {want:?}");
    let premium_table = scenario.table("premium");
    wait_for("premium to equal a failure-free run's", PATIENCE, || async {
        let got = rows(&select(&premium_table)).await;
        if got == want { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;

    // Every takeover is a job event.
    let takeovers = admin_b.get("/projects/p/events?kind=run").await.expect(200);
    let count = |action: &str| takeovers.as_array().unwrap().iter().filter(|e| e["action"] == action).count();
    assert!(count("run.takeover") >= 3, "kill, pause and kill are takeovers: {takeovers}");
    assert!(count("run.handover") >= 1, "the drain handed its run over: {takeovers}");
    polling.store(false, Ordering::SeqCst);
    let calls = poller.await.unwrap();
    assert_eq!(api_failures.load(Ordering::SeqCst), 0, "console b answered all {calls} calls within 5 s");

    drop(workers);
    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    for table in [scenario.table("premium"), counts_table, log_table, clean_table] {
        let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    }
    shared.drop_database().await;
}

fn scenario_clone(s: &Scenario) -> Scenario {
    Scenario {
        admin: s.admin.clone(),
        brokers: s.brokers.clone(),
        orders_topic: s.orders_topic.clone(),
        clicks_topic: s.clicks_topic.clone(),
        pid: s.pid,
    }
}
