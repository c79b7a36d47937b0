//! Task leases in the metadata store (scale-out, docs/OPERATIONS.md), on
//! SQLite and PostgreSQL: each partition group of a run is leased on its
//! own, epochs grow across takeovers and the job's runs (a run's floor is
//! above every older epoch), a takeover only happens to a lease that is
//! still expired and leaves the run's other tasks alone, the run ends with
//! its last task (failed at once when one fails), a stop of a run no worker
//! holds ends it at once, and an old epoch's end of a task is refused. On
//! PostgreSQL a worker hears the wake-up the leader sends it.

use sluice_console::store::{RunShape, RunState, SecretKey, Store, TaskEnded};

use crate::fresh_database::FreshDatabase;
use crate::one_active_run::{new_run, store_with_job};

const LEASE_MS: i64 = 60_000;

fn shape(shards: u32, parallelism: u32) -> RunShape {
    RunShape::new(shards, parallelism)
}

async fn keeps_the_lease_rules(store: &Store, job: &str, version: &str) {
    // Two groups, planned for assignment: each is claimed on its own.
    let first = new_run(store, job, version, RunState::Starting).await.unwrap();
    assert!(store.plan_tasks(&first, shape(2, 2), None, None).await.unwrap());
    assert!(!store.plan_tasks(&first, shape(2, 2), None, None).await.unwrap(), "planned once");
    let floor1 = store.run_floor(&first.id).await.unwrap();
    let unassigned: Vec<u32> = store.unassigned_tasks().await.unwrap().into_iter().map(|(_, g, _)| g).collect();
    assert_eq!(unassigned, vec![0, 1]);
    let a = store.claim_task(&first, 0, "w1", None, None, LEASE_MS).await.unwrap().expect("claimed");
    assert_eq!(store.claim_task(&first, 0, "w2", None, None, LEASE_MS).await.unwrap(), None, "held by w1");
    let b = store.claim_task(&first, 1, "w2", None, None, LEASE_MS).await.unwrap().expect("claimed");
    assert!(a >= floor1 && b > a, "epochs grow from the run's floor: {floor1}, {a}, {b}");
    let a2 = store.claim_task(&first, 0, "w1", Some("w1"), None, LEASE_MS).await.unwrap().expect("its own");
    assert!(a2 > b, "every claim raises the epoch: {b} then {a2}");
    assert_eq!(store.run(&first.id).await.unwrap().unwrap().worker.as_deref(), Some("w1"), "group 0's worker");
    let w2 = store.renew_leases("w2", LEASE_MS).await.unwrap();
    assert_eq!(w2.iter().map(|o| (o.group, o.epoch)).collect::<Vec<_>>(), vec![(1, b)], "w2 holds group 1 only");
    assert!(store.mark_run_running(&first.id, 0, a2).await.unwrap());
    assert!(!store.mark_run_running(&first.id, 0, a).await.unwrap(), "an old epoch of the task is refused");

    // A takeover needs the lease to be expired when it happens, not only
    // when the leader looked: a renewal in between wins. It moves that
    // task only.
    assert!(!store.take_over_task(&first, 1, b, Some("w3"), LEASE_MS).await.unwrap());
    sqlx::query("update run_tasks set lease_expires_ms = 1 where run_id = $1 and task_group = 1")
        .bind(&first.id)
        .execute(&store.pool)
        .await
        .unwrap();
    let expired: Vec<(String, u32)> =
        store.expired_tasks().await.unwrap().into_iter().map(|l| (l.run.id, l.group)).collect();
    assert_eq!(expired, vec![(first.id.clone(), 1)]);
    assert!(store.take_over_task(&first, 1, b, Some("w3"), LEASE_MS).await.unwrap());
    assert_eq!(store.run(&first.id).await.unwrap().unwrap().state, RunState::Running, "group 0 goes on");
    // The old owner's end of the task is refused; the new one's counts.
    assert_eq!(store.end_task(&first.id, 1, b, RunState::Failed, Some("zombie")).await.unwrap(), TaskEnded::Lost);
    assert!(store.renew_leases("w2", LEASE_MS).await.unwrap().is_empty(), "w2 learns the task is gone");
    let w3 = store.renew_leases("w3", LEASE_MS).await.unwrap();
    let b2 = w3.iter().find(|o| o.run.id == first.id && o.group == 1).expect("w3 holds it").epoch;
    assert!(b2 > a2);

    // The run ends with its last task: one finished, one stopped = stopped.
    assert_eq!(store.end_task(&first.id, 0, a2, RunState::Finished, None).await.unwrap(), TaskEnded::Task);
    assert_eq!(store.run(&first.id).await.unwrap().unwrap().state, RunState::Running);
    assert_eq!(
        store.end_task(&first.id, 1, b2, RunState::Stopped, None).await.unwrap(),
        TaskEnded::Run(RunState::Stopped)
    );

    // The job's next run starts above every epoch of the last one, so its
    // fences shut out that run's zombies; a failed task fails the run at
    // once, and its other task's worker sees the run gone.
    let second = new_run(store, job, version, RunState::Starting).await.unwrap();
    assert!(store.plan_tasks(&second, shape(2, 2), None, Some("w1")).await.unwrap());
    let floor2 = store.run_floor(&second.id).await.unwrap();
    assert!(floor2 > b2, "the next run's floor {floor2} is above the last epoch {b2}");
    assert!(store.unassigned_tasks().await.unwrap().is_empty(), "planned for w1, not for assignment");
    let c = store.claim_task(&second, 0, "w1", Some("w1"), None, LEASE_MS).await.unwrap().unwrap();
    let d = store.claim_task(&second, 1, "w1", Some("w1"), None, LEASE_MS).await.unwrap().unwrap();
    assert_eq!(
        store.end_task(&second.id, 1, d, RunState::Failed, Some("boom")).await.unwrap(),
        TaskEnded::Run(RunState::Failed)
    );
    let failed = store.run(&second.id).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.error.as_deref()), (RunState::Failed, Some("boom")));
    assert!(store.renew_leases("w1", LEASE_MS).await.unwrap().iter().all(|o| o.run.id != second.id));
    // The run's end ended its other task: a late end of it records nothing.
    assert_eq!(store.end_task(&second.id, 0, c, RunState::Stopped, None).await.unwrap(), TaskEnded::Lost);
    assert_eq!(store.run(&second.id).await.unwrap().unwrap().state, RunState::Failed, "stays failed");

    // A stopping run's task is never handed back or moved to nobody (it
    // would wait for a worker no stopping run gets): it ends instead, and
    // the control plane's sweep ends a run whose last task is gone.
    let stopping = new_run(store, job, version, RunState::Starting).await.unwrap();
    assert!(store.plan_tasks(&stopping, shape(2, 2), None, None).await.unwrap());
    let f = store.claim_task(&stopping, 0, "w1", None, None, LEASE_MS).await.unwrap().unwrap();
    let g = store.claim_task(&stopping, 1, "w2", None, None, LEASE_MS).await.unwrap().unwrap();
    assert!(store.request_stop(&stopping.id, true).await.unwrap());
    assert!(!store.release_task(&stopping.id, 0, "w1", f).await.unwrap(), "no hand-over while stopping");
    sqlx::query("update run_tasks set lease_expires_ms = 1 where run_id = $1 and task_group = 1")
        .bind(&stopping.id)
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(!store.take_over_task(&stopping, 1, g, None, LEASE_MS).await.unwrap(), "no takeover while stopping");
    assert_eq!(store.end_task(&stopping.id, 0, f, RunState::Stopped, None).await.unwrap(), TaskEnded::Task);
    // Its other task's row is left active by a worker that died after
    // ending it locally: the sweep ends the run.
    sqlx::query("update run_tasks set state = 'stopped' where run_id = $1 and task_group = 1")
        .bind(&stopping.id)
        .execute(&store.pool)
        .await
        .unwrap();
    let settled: Vec<(String, RunState)> =
        store.settle_runs().await.unwrap().into_iter().map(|(r, s)| (r.id, s)).collect();
    assert_eq!(settled, vec![(stopping.id.clone(), RunState::Stopped)]);
    assert!(store.settle_runs().await.unwrap().is_empty(), "settled once");

    // A run whose tasks were all handed back (no worker) is stopped at
    // once by a stop request.
    let third = new_run(store, job, version, RunState::Starting).await.unwrap();
    assert!(store.plan_tasks(&third, shape(1, 1), None, None).await.unwrap());
    let e = store.claim_task(&third, 0, "w1", None, None, LEASE_MS).await.unwrap().unwrap();
    assert!(store.mark_run_running(&third.id, 0, e).await.unwrap());
    assert!(store.release_task(&third.id, 0, "w1", e).await.unwrap());
    assert!(store.request_stop(&third.id, true).await.unwrap());
    assert_eq!(store.run(&third.id).await.unwrap().unwrap().state, RunState::Stopped, "not left stopping");

    // Four shards in two tasks: shard s is in task s % 2, a task's shards
    // go where its first went (the live worker holding it), and a worker
    // counts a task, not its shards, against its slots.
    store.register_worker("w1", "host-1", 1).await.unwrap();
    store.register_worker("w2", "host-2", 1).await.unwrap();
    let packed = new_run(store, job, version, RunState::Starting).await.unwrap();
    assert!(store.plan_tasks(&packed, shape(4, 2), None, None).await.unwrap());
    let planned = store.run(&packed.id).await.unwrap().unwrap();
    assert_eq!((planned.task_groups, planned.parallelism), (Some(4), Some(2)));
    assert_eq!(store.task_partner(&packed.id, 2, None).await.unwrap(), None, "nothing of task 0 placed yet");
    store.claim_task(&packed, 0, "w1", None, None, LEASE_MS).await.unwrap().unwrap();
    assert_eq!(store.task_partner(&packed.id, 2, None).await.unwrap().as_deref(), Some("w1"), "shard 2 joins 0");
    let waiting: Vec<(u32, Option<String>)> =
        store.unassigned_tasks().await.unwrap().into_iter().map(|(_, g, partner)| (g, partner)).collect();
    assert_eq!(waiting, [(1, None), (2, Some("w1".to_owned())), (3, None)], "the assignment sees where each goes");
    assert_eq!(store.task_partner(&packed.id, 1, None).await.unwrap(), None, "shard 1 is another task");
    assert_eq!(store.task_partner(&packed.id, 2, Some("w1")).await.unwrap(), None, "not back to the lost worker");
    store.claim_task(&packed, 2, "w1", None, None, LEASE_MS).await.unwrap().unwrap();
    store.claim_task(&packed, 1, "w2", None, None, LEASE_MS).await.unwrap().unwrap();
    let tasks: Vec<(u32, u32)> = store.run_tasks(&packed.id).await.unwrap().iter().map(|t| (t.group, t.task)).collect();
    assert_eq!(tasks, [(0, 0), (1, 1), (2, 0), (3, 1)]);
    let held: Vec<(String, i64)> = store.workers().await.unwrap().into_iter().map(|w| (w.id, w.tasks)).collect();
    assert_eq!(held, [("w1".to_owned(), 1), ("w2".to_owned(), 1)], "two shards of one task take one slot");
    // An expired shard's partner must be live: w1's lapsed lease is no home.
    sqlx::query("update run_tasks set lease_expires_ms = 1 where run_id = $1 and worker = 'w1'")
        .bind(&packed.id)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(store.task_partner(&packed.id, 2, None).await.unwrap(), None, "a lapsed holder takes nothing more");
}

#[tokio::test]
async fn leases_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (store, job, version, _) = store_with_job(&dir).await;
    keeps_the_lease_rules(&store, &job, &version).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_on_postgresql() {
    let db = FreshDatabase::create("sluice_api").await;
    let store = Store::connect(&db.url, SecretKey::generate()).await.unwrap();
    let project = store.create_project("p", "").await.unwrap();
    let job = store.create_job(&project.id, "job", "").await.unwrap();
    let bytes = crate::helpers::component("hourly_premium");
    let version = store.add_version(&job.id, "hash-1", &bytes, "", "pat").await.unwrap();
    keeps_the_lease_rules(&store, &job.id, &version.id).await;

    // The leader wakes the worker it gave tasks to (NOTIFY); that worker,
    // and only it, hears it.
    let (woken, mut wakes) = tokio::sync::mpsc::unbounded_channel();
    let listening = store.clone();
    let listener = tokio::spawn(async move {
        let woken = woken.clone();
        listening.listen_for_wakeups("w9", move || woken.send("w9").unwrap()).await
    });
    let heard = async {
        loop {
            store.wake_worker("w8").await.unwrap();
            store.wake_worker("w9").await.unwrap();
            if let Ok(Some(who)) = tokio::time::timeout(std::time::Duration::from_millis(200), wakes.recv()).await {
                return who;
            }
        }
    };
    let who = tokio::time::timeout(std::time::Duration::from_secs(30), heard).await.expect("a wake-up heard");
    assert_eq!(who, "w9");
    listener.abort();
    store.pool.close().await;
    db.remove().await;
}
