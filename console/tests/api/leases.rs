//! Run leases in the metadata store (scale-out, docs/OPERATIONS.md), on
//! SQLite and PostgreSQL: epochs grow across a job's runs, a takeover only
//! happens to a lease that is still expired, a stop of a run no worker
//! holds ends it at once, and a state change of an old epoch — or of a run
//! that already ended — is refused. On PostgreSQL a worker hears the
//! wake-up the leader sends it.

use sluice_console::store::{RunState, SecretKey, Store};

use crate::fresh_database::FreshDatabase;
use crate::one_active_run::{new_run, store_with_job};

const LEASE_MS: i64 = 60_000;

async fn keeps_the_lease_rules(store: &Store, job: &str, version: &str) {
    // Epochs grow across the job's runs: a new run's owner fences out an
    // old run's zombie too.
    let first = new_run(store, job, version, RunState::Starting).await.unwrap();
    let e1 = store.claim_run(&first.id, "w1", None, None, LEASE_MS).await.unwrap().expect("claimed");
    assert_eq!(store.claim_run(&first.id, "w2", None, None, LEASE_MS).await.unwrap(), None, "held by w1");
    let e2 = store.claim_run(&first.id, "w1", Some("w1"), None, LEASE_MS).await.unwrap().expect("its own");
    assert!(e2 > e1, "every claim raises the epoch: {e1} then {e2}");
    store.set_run_state_as(&first.id, e2, RunState::Stopped, None).await.unwrap();
    let second = new_run(store, job, version, RunState::Starting).await.unwrap();
    let e3 = store.claim_run(&second.id, "w2", None, None, LEASE_MS).await.unwrap().expect("claimed");
    assert!(e3 > e2, "the job's next run starts above its last epoch: {e3} after {e2}");

    // A takeover needs the lease to be expired when it happens, not only
    // when the leader looked: a renewal in between wins.
    assert!(!store.take_over_run(&second.id, e3, Some("w3"), "resume:none", LEASE_MS).await.unwrap());
    sqlx::query("update runs set lease_expires_ms = 1 where id = $1")
        .bind(&second.id)
        .execute(&store.pool)
        .await
        .unwrap();
    let expired: Vec<String> = store.expired_runs().await.unwrap().into_iter().map(|(r, _)| r.id).collect();
    assert_eq!(expired, vec![second.id.clone()]);
    assert!(store.take_over_run(&second.id, e3, Some("w3"), "resume:none", LEASE_MS).await.unwrap());
    let taken = store.run(&second.id).await.unwrap().unwrap();
    assert_eq!((taken.worker.as_deref(), taken.state), (Some("w3"), RunState::Starting));
    // The old owner's writes of its epoch are refused.
    assert!(!store.set_run_state_as(&second.id, e3, RunState::Failed, Some("zombie")).await.unwrap());
    let owned = store.renew_leases("w1", LEASE_MS).await.unwrap();
    assert!(owned.iter().all(|o| o.run.id != second.id), "w1 learns the run is gone");
    let w3 = store.renew_leases("w3", LEASE_MS).await.unwrap();
    let e4 = w3.iter().find(|o| o.run.id == second.id).expect("w3 holds it").epoch;
    assert!(e4 > e3);

    // Stopped, an ended run stays ended whatever an owner writes later.
    store.request_stop(&second.id, true).await.unwrap();
    store.set_run_state_as(&second.id, e4, RunState::Stopped, None).await.unwrap();
    assert!(!store.set_run_state_as(&second.id, e4, RunState::Running, None).await.unwrap());
    assert_eq!(store.run(&second.id).await.unwrap().unwrap().state, RunState::Stopped);

    // A run handed back (no worker) is stopped at once by a stop request.
    let third = new_run(store, job, version, RunState::Starting).await.unwrap();
    let e5 = store.claim_run(&third.id, "w1", None, None, LEASE_MS).await.unwrap().unwrap();
    store.set_run_state_as(&third.id, e5, RunState::Running, None).await.unwrap();
    assert!(store.release_run(&third.id, "w1", e5, "resume:none").await.unwrap());
    assert!(store.request_stop(&third.id, true).await.unwrap());
    assert_eq!(store.run(&third.id).await.unwrap().unwrap().state, RunState::Stopped, "not left stopping");
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

    // The leader wakes the worker it gave runs to (NOTIFY); that worker,
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
