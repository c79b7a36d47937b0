//! One run's partition groups spread over workers (task leases, issue 18):
//! a keyed count at parallelism 2 over three `sluice worker` processes of
//! one slot each runs its two tasks on two workers. SIGKILL the worker of
//! one task: that task alone moves to the third worker and resumes from
//! its group's latest snapshot, while the other task goes on where it was
//! under the same lease epoch; the table ends as a failure-free run
//! leaves it.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::{kafka_brokers, postgres_url};

use crate::client::Client;
use crate::cluster::{ADMIN_PASSWORD, PATIENCE, Process, Shared};
use crate::wait::wait_for;
use crate::{counts_spec, rows};

/// Clicks of 150 users, wave `wave`, each user always on one partition
/// (user number mod 2), so per-partition state is per-user state.
fn clicks_by_user(wave: u64, n: usize) -> Vec<(i32, String, String)> {
    (0..n as u64)
        .map(|i| {
            let user = (i * 7919 + wave * 31) % 150;
            ((user % 2) as i32, format!("u{user}"), "{}".to_owned())
        })
        .collect()
}

/// Where the job's tasks run: (task, worker, epoch), by task.
async fn placement(admin: &Client) -> Result<Vec<(u64, String, i64)>, String> {
    let metrics = admin.get("/projects/p/jobs/counts/metrics").await.expect(200);
    let tasks: Vec<(u64, String, i64)> = metrics["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .map(|t| {
                    (
                        t["task"].as_u64().unwrap_or(99),
                        t["worker"].as_str().unwrap_or_default().to_owned(),
                        t["epoch"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if metrics["state"] == "running" && tasks.len() == 2 && tasks[0].1 != tasks[1].1 {
        Ok(tasks)
    } else {
        Err(metrics.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_groups_spread_over_workers_and_a_lost_worker_moves_only_its_own_group() {
    let shared = Shared::new().await;
    let (_console, address) = shared.console("console");
    let mut workers: BTreeMap<String, Process> =
        ["s1", "s2", "s3"].into_iter().map(|n| (n.to_owned(), shared.worker_with_slots(n, 1))).collect();
    let admin = Client::anonymous(&address).login("admin", ADMIN_PASSWORD).await;
    let brokers = kafka_brokers();
    let topic = unique_topic("spread-clicks");
    create_topic(&brokers, &topic, 2).await;
    let table = format!("spread_counts_{}", std::process::id());

    admin.post("/projects", json!({ "name": "p", "description": "spread" })).await.expect(201);
    admin.put("/projects/p/connections/events", json!({ "kind": "kafka", "url": brokers })).await.expect(204);
    let warehouse = json!({ "kind": "database", "url": postgres_url() });
    admin.put("/projects/p/connections/warehouse", warehouse).await.expect(204);
    admin.post("/projects/p/jobs", json!({ "name": "counts" })).await.expect(201);
    let bytes = std::fs::read(sluice_tests::wasm("guest_keyed_count")).unwrap();
    admin.post_bytes("/projects/p/jobs/counts/versions", bytes).await.expect(201);
    let deployment = json!({ "spec": counts_spec(&topic, &table, false), "parallelism": 2 });
    admin.put("/projects/p/jobs/counts/deployment", deployment).await.expect(200);
    admin.post("/projects/p/jobs/counts/start", json!({ "restore": "none" })).await.expect(201);

    // Two tasks on two workers: each worker has one slot.
    let placed = wait_for("the two tasks to run on two workers", PATIENCE, || placement(&admin)).await;
    let view = admin.get("/workers").await.expect(200);
    let busy: Vec<&Value> = view.as_array().unwrap().iter().filter(|w| w["tasks"] == 1).collect();
    assert_eq!(busy.len(), 2, "one task on each of two workers: {view}");

    let send = |wave: u64| {
        let (brokers, topic) = (brokers.clone(), topic.clone());
        async move {
            let clicks = clicks_by_user(wave, 4000);
            produce(&brokers, &topic, clicks.iter().map(|(p, k, v)| (*p, k.as_str(), v.clone()))).await;
        }
    };
    send(1).await;
    wait_for("counts to move", PATIENCE, || async {
        let n = rows(&format!("select coalesce(sum(events), 0)::text from {table}")).await;
        if n.first().is_some_and(|r| r[0] != "0") { Ok(()) } else { Err(format!("{n:?}")) }
    })
    .await;

    // SIGKILL the worker of task 1; task 0 must not notice.
    let (victim, survivor) = (placed[1].clone(), placed[0].clone());
    workers.get_mut(&victim.1).unwrap().kill();
    let moved = wait_for("task 1 to move to the third worker", PATIENCE, || async {
        let now = placement(&admin).await?;
        if now[1].1 != victim.1 && now[1].1 != survivor.1 { Ok(now) } else { Err(format!("{now:?}")) }
    })
    .await;
    assert_eq!(moved[0], survivor, "task 0 stayed where it was, under the same lease epoch");
    assert!(moved[1].2 > victim.2, "task 1 moved under a newer epoch: {moved:?} after {victim:?}");
    send(2).await;

    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for wave in 1..=2 {
        for (_, user, _) in clicks_by_user(wave, 4000) {
            *expected.entry(user).or_default() += 1;
        }
    }
    let want: Vec<Vec<String>> = expected.iter().map(|(u, n)| vec![u.clone(), n.to_string()]).collect();
    wait_for("counts to equal a failure-free run's", PATIENCE, || async {
        let got = rows(&format!("select \"user\", events::text from {table} order by 1")).await;
        if got == want { Ok(()) } else { Err(format!("{} rows, e.g. {:?}", got.len(), got.first())) }
    })
    .await;

    // The takeover is a job event that names the task that moved.
    let events = admin.get("/projects/p/events?kind=run").await.expect(200);
    let takeovers: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["action"] == "run.takeover").collect();
    assert_eq!(takeovers.len(), 1, "one task moved: {events}");
    assert!(takeovers[0]["detail"].as_str().unwrap_or_default().contains("task 1 of run"), "{events}");

    drop(workers);
    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    shared.drop_database().await;
}
