//! One run's tasks spread over workers (task leases, issues 18 and 19): a
//! keyed count over four partitions (four shards) at parallelism 2 over
//! three `sluice worker` processes of one slot each runs its two tasks of
//! two shards each on two workers. SIGKILL the worker of one task: its two
//! shards move together to the third worker and resume from their latest
//! snapshots, while the other task goes on where it was under the same
//! lease epochs; the table ends as a failure-free run leaves it.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::{kafka_brokers, postgres_url};

use crate::client::Client;
use crate::cluster::{ADMIN_PASSWORD, PATIENCE, Process, Shared};
use crate::wait::wait_for;
use crate::{counts_spec, rows};

/// Clicks of 150 users, wave `wave`, each user always on one partition
/// (user number mod 4), so per-partition state is per-user state.
fn clicks_by_user(wave: u64, n: usize) -> Vec<(i32, String, String)> {
    (0..n as u64)
        .map(|i| {
            let user = (i * 7919 + wave * 31) % 150;
            ((user % 4) as i32, format!("u{user}"), "{}".to_owned())
        })
        .collect()
}

/// One shard of the running job: its task, worker and lease epoch.
#[derive(Debug, Clone, PartialEq)]
struct Placed {
    task: u64,
    shard: u64,
    worker: String,
    epoch: i64,
}

/// Where the job's four shards run, by shard, once each task's shards share
/// a worker and the two tasks are on two workers.
async fn placement(admin: &Client) -> Result<Vec<Placed>, String> {
    let metrics = admin.get("/projects/p/jobs/counts/metrics").await.expect(200);
    let mut placed: Vec<Placed> = metrics["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Placed {
            task: t["task"].as_u64().unwrap_or(99),
            shard: t["shard"].as_u64().unwrap_or(99),
            worker: t["worker"].as_str().unwrap_or_default().to_owned(),
            epoch: t["epoch"].as_i64().unwrap_or(0),
        })
        .collect();
    placed.sort_by_key(|p| p.shard);
    let worker_of = |task: u64| -> Vec<&str> {
        let mut w: Vec<&str> = placed.iter().filter(|p| p.task == task).map(|p| p.worker.as_str()).collect();
        w.dedup();
        w
    };
    let (zero, one) = (worker_of(0), worker_of(1));
    let settled = placed.len() == 4 && zero.len() == 1 && one.len() == 1 && zero != one;
    if metrics["state"] == "running" && settled { Ok(placed) } else { Err(metrics.to_string()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_tasks_spread_over_workers_and_a_lost_worker_moves_only_its_own_shards() {
    let shared = Shared::new().await;
    let (_console, address) = shared.console("console");
    let mut workers: BTreeMap<String, Process> =
        ["s1", "s2", "s3"].into_iter().map(|n| (n.to_owned(), shared.worker_with_slots(n, 1))).collect();
    let admin = Client::anonymous(&address).login("admin", ADMIN_PASSWORD).await;
    let brokers = kafka_brokers();
    let topic = unique_topic("spread-clicks");
    create_topic(&brokers, &topic, 4).await;
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

    // Four shards (one per partition) in two tasks on two workers: shards
    // 0 and 2 are task 0, 1 and 3 task 1, and each worker has one slot.
    let placed = wait_for("the two tasks to run on two workers", PATIENCE, || placement(&admin)).await;
    assert_eq!(placed.iter().map(|p| (p.shard, p.task)).collect::<Vec<_>>(), [(0, 0), (1, 1), (2, 0), (3, 1)]);
    let view = admin.get("/workers").await.expect(200);
    let busy: Vec<&Value> = view.as_array().unwrap().iter().filter(|w| w["tasks"] == 1).collect();
    assert_eq!(busy.len(), 2, "one task (two shards) on each of two workers: {view}");

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
    let victim = placed[1].worker.clone();
    let survivor = placed[0].worker.clone();
    workers.get_mut(&victim).unwrap().kill();
    let moved = wait_for("task 1's two shards to move together to the third worker", PATIENCE, || async {
        let now = placement(&admin).await?;
        if now[1].worker != victim && now[1].worker != survivor { Ok(now) } else { Err(format!("{now:?}")) }
    })
    .await;
    assert_eq!((&moved[0], &moved[2]), (&placed[0], &placed[2]), "task 0 stayed where it was, under the same epochs");
    assert_eq!(moved[1].worker, moved[3].worker, "task 1's shards moved together: {moved:?}");
    assert!(moved[1].epoch > placed[1].epoch && moved[3].epoch > placed[3].epoch, "newer epochs: {moved:?}");
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
    assert_eq!(takeovers.len(), 2, "task 1's two shards moved: {events}");
    let details: Vec<&str> = takeovers.iter().map(|e| e["detail"].as_str().unwrap_or_default()).collect();
    assert!(details.iter().all(|d| d.contains("(task 1 of 2)")), "{events}");

    drop(workers);
    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    shared.drop_database().await;
}
