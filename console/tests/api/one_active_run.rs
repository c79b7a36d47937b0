//! The metadata store keeps at most one active run per job itself (a
//! partial unique index), so no race of two starts — two consoles, a start
//! and a cron start — can run a job twice; and a scheduled run is taken
//! (started or cancelled) by exactly one of those acting on it.

use sluice_console::store::{NewRun, Run, RunState, SecretKey, Store, StoreError};

use crate::helpers::component;

/// A job with a version on a fresh SQLite store in `dir`.
pub async fn store_with_job(dir: &tempfile::TempDir) -> (Store, String, String, SecretKey) {
    let key = SecretKey::generate();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let store = Store::connect(&url, key.clone()).await.expect("a fresh store");
    let project = store.create_project("p", "").await.unwrap();
    let job = store.create_job(&project.id, "job", "").await.unwrap();
    let version = store.add_version(&job.id, "hash-1", &component("hourly_premium"), "", "pat").await.unwrap();
    (store, job.id, version.id, key)
}

pub async fn new_run(store: &Store, job_id: &str, version_id: &str, state: RunState) -> Result<Run, StoreError> {
    store
        .create_run(NewRun {
            job_id,
            version_id,
            state,
            restore_from: Some("none"),
            start_position: None,
            scheduled_ms: None,
            created_by: "test",
            worker: None,
        })
        .await
}

#[tokio::test]
async fn a_second_active_run_of_a_job_is_refused_by_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, job, version, _) = store_with_job(&dir).await;
    let first = new_run(&store, &job, &version, RunState::Starting).await.unwrap();
    for state in [RunState::Scheduled, RunState::Starting] {
        let Err(StoreError::Conflict(message)) = new_run(&store, &job, &version, state).await else {
            panic!("a second active run ({state:?}) must be a conflict")
        };
        assert!(message.contains("the job already has an active run"), "{message}");
    }
    // Ended runs do not count: the next one is accepted.
    store.set_run_state(&first.id, RunState::Stopped, None).await.unwrap();
    let next = new_run(&store, &job, &version, RunState::Starting).await.unwrap();
    assert_eq!(store.active_run(&job).await.unwrap().map(|r| r.id), Some(next.id));
}

/// A store an earlier version left with two active runs of one job still
/// migrates: the older run ends as failed, the newer stays.
#[tokio::test]
async fn the_migration_ends_all_but_the_newest_active_run_of_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let (store, job, version, key) = store_with_job(&dir).await;
    // As before the constraint: no index, and migration 6 not yet run.
    sqlx::query("drop index runs_one_active_per_job").execute(&store.pool).await.unwrap();
    sqlx::query("delete from _sqlx_migrations where version = 6").execute(&store.pool).await.unwrap();
    let one = new_run(&store, &job, &version, RunState::Running).await.unwrap();
    let other = new_run(&store, &job, &version, RunState::Running).await.unwrap();
    // Ids are time-ordered (milliseconds, then randomness): the larger is newer.
    let (older, newer) = if one.id < other.id { (one, other) } else { (other, one) };
    store.pool.close().await;

    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let store = Store::connect(&url, key).await.expect("the migration runs over the duplicates");
    let ended = store.run(&older.id).await.unwrap().unwrap();
    assert_eq!(ended.state, RunState::Failed);
    assert!(ended.error.as_deref().unwrap_or("").contains("a newer run of the job was active"), "{ended:?}");
    assert_eq!(store.active_run(&job).await.unwrap().map(|r| r.id), Some(newer.id));
    assert!(matches!(new_run(&store, &job, &version, RunState::Starting).await, Err(StoreError::Conflict(_))));
}

/// Two schedulers (or a scheduler and a stop) acting on one scheduled run:
/// the first move wins, the others see it gone.
#[tokio::test]
async fn a_scheduled_run_is_started_or_cancelled_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, job, version, _) = store_with_job(&dir).await;
    let run = new_run(&store, &job, &version, RunState::Scheduled).await.unwrap();
    assert!(store.move_run(&run.id, RunState::Scheduled, RunState::Starting).await.unwrap());
    assert!(!store.move_run(&run.id, RunState::Scheduled, RunState::Starting).await.unwrap(), "started once");
    assert!(!store.move_run(&run.id, RunState::Scheduled, RunState::Cancelled).await.unwrap(), "too late to cancel");
    let started = store.run(&run.id).await.unwrap().unwrap();
    assert_eq!((started.state, started.ended_ms), (RunState::Starting, None));
}
