//! The metadata store: users, projects, connections, jobs, versions,
//! deployments, runs and events, in SQLite (the embedded default) or
//! PostgreSQL (shared by several workers). One set of portable SQL through
//! sqlx's `Any` driver; migrations run on start.

mod accounts;
mod dead_letters;
mod events;
mod jobs;
mod projects;
mod quotas;
mod runs;
mod sealing;
mod tasks;
mod workers;

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::AnyPool;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

pub use accounts::{Credential, CredentialKind, User};
pub use events::{Event, EventFilter};
pub use jobs::{Deployment, Job, JobOverview, Version};
pub use projects::{Connection, Membership, Project};
pub use quotas::ProjectQuota;
pub use runs::{NewRun, Run, RunShape, RunState};
pub use sealing::SecretKey;
pub use tasks::{OwnedTask, TaskEnded, TaskLease, TaskPlace};
pub use workers::{WorkerInfo, WorkerState};

/// Which database the metadata lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub pool: AnyPool,
    pub dialect: Dialect,
    /// Seals what connections store (their URLs, properties and secrets).
    key: SecretKey,
    /// The URL it was opened with (a worker listens for wake-ups there).
    url: String,
}

/// Errors of the store: a conflict (a name taken) is told apart, since the
/// API answers it differently from a broken database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A secret key that does not open what the store holds.
    #[error("{0}")]
    Secret(String),
    #[error("metadata migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (2, "sealed secrets", include_str!("../../migrations/0002_sealed_secrets.sql")),
    (3, "dead letters", include_str!("../../migrations/0003_dead_letters.sql")),
    (4, "accounts", include_str!("../../migrations/0004_accounts.sql")),
    (5, "project quotas", include_str!("../../migrations/0005_project_quotas.sql")),
    (6, "one active run per job", include_str!("../../migrations/0006_one_active_run.sql")),
    (7, "workers and leases", include_str!("../../migrations/0007_workers_and_leases.sql")),
    (8, "run task groups", include_str!("../../migrations/0008_run_task_groups.sql")),
    (9, "task leases", include_str!("../../migrations/0009_task_leases.sql")),
    (10, "component state keying", include_str!("../../migrations/0010_component_state_keying.sql")),
    (11, "run parallelism", include_str!("../../migrations/0011_run_parallelism.sql")),
    (12, "run stages", include_str!("../../migrations/0012_run_stages.sql")),
];

impl Store {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` or `postgres://…`), runs
    /// the migrations and checks that `key` is the one the store's
    /// connections are sealed with.
    pub async fn connect(url: &str, key: SecretKey) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") { Dialect::Sqlite } else { Dialect::Postgres };
        let pool = sqlx::any::AnyPoolOptions::new()
            // SQLite allows one writer; more connections only wait on its lock.
            .max_connections(if dialect == Dialect::Sqlite { 1 } else { 10 })
            .connect(url)
            .await?;
        let store = Store { pool, dialect, key, url: url.to_owned() };
        store.migrate().await?;
        store.check_secret_key().await?;
        store.seal_unsealed_connections().await?;
        store.expire_endless_tokens().await?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        Migrator::new(Migrations(self.dialect)).await?.run(&self.pool).await?;
        Ok(())
    }
}

/// The migrations for one dialect (embedded in the binary).
#[derive(Debug)]
struct Migrations(Dialect);

impl MigrationSource<'static> for Migrations {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        let blob = match self.0 {
            Dialect::Sqlite => "blob",
            Dialect::Postgres => "bytea",
        };
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    Cow::Owned(sql.replace("{blob}", blob)),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// A new time-ordered id: milliseconds, then randomness.
pub fn new_id() -> String {
    format!("{:012x}{:08x}", now_ms(), rand::random::<u32>())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Turns a unique-constraint violation into a conflict with `message`.
fn conflict(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(e),
    }
}
