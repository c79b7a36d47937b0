//! Snapshots in PostgreSQL, for shared deployments: every worker that can
//! reach the database can restore any job. One row per snapshot; the body
//! is the same checksummed encoding as on disk.

use async_trait::async_trait;
use sqlx::postgres::PgPool;

use super::store::retention_cut;
use super::{Snapshot, SnapshotError, SnapshotStore};
use crate::connections::redact_url;

/// The `sluice_snapshots` table of a PostgreSQL database (created if missing).
pub struct PgSnapshotStore {
    pool: PgPool,
    location: String,
}

impl PgSnapshotStore {
    pub async fn connect(url: &str) -> Result<Self, SnapshotError> {
        let location = redact_url(url);
        let error = |e: sqlx::Error| SnapshotError::Storage { location: location.clone(), message: e.to_string() };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            // A worker frozen inside a put (SIGSTOP, a VM pause) holds its
            // job's fence row: the server ends that transaction, so the
            // takeover's raise of the fence does not wait for the zombie.
            .after_connect(|connection, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *connection, "set idle_in_transaction_session_timeout = '10s'")
                        .await
                        .map(drop)
                })
            })
            .connect(url)
            .await
            .map_err(error)?;
        // Processes starting together on a new database would race in
        // `create table if not exists` (PostgreSQL's catalog refuses the
        // second with a duplicate key): one creates, the others wait.
        let mut tx = pool.begin().await.map_err(error)?;
        sqlx::query("select pg_advisory_xact_lock(hashtext('sluice_snapshots'))")
            .execute(&mut *tx)
            .await
            .map_err(error)?;
        sqlx::query(
            "create table if not exists sluice_snapshots (
                job text not null,
                id text not null,
                incremental boolean not null,
                body bytea not null,
                created_at timestamptz not null default now(),
                primary key (job, id))",
        )
        .execute(&mut *tx)
        .await
        .map_err(error)?;
        // The newest lease epoch of each job: fenced puts of older ones are refused.
        sqlx::query("create table if not exists sluice_snapshot_fences (job text primary key, epoch bigint not null)")
            .execute(&mut *tx)
            .await
            .map_err(error)?;
        tx.commit().await.map_err(error)?;
        Ok(PgSnapshotStore { pool, location })
    }

    fn error(&self, e: sqlx::Error) -> SnapshotError {
        SnapshotError::Storage { location: self.location.clone(), message: e.to_string() }
    }

    async fn rows(&self, job: &str) -> Result<Vec<(String, bool)>, SnapshotError> {
        sqlx::query_as("select id, incremental from sluice_snapshots where job = $1 order by id")
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))
    }

    /// Raises `job`'s fence to at least `epoch` in `tx` (locking its row
    /// until `tx` ends) and returns the fence as it now stands.
    async fn fence_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        job: &str,
        epoch: u64,
    ) -> Result<u64, SnapshotError> {
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        let (fence,): (i64,) = sqlx::query_as(
            "insert into sluice_snapshot_fences (job, epoch) values ($1, $2)
             on conflict (job) do update set epoch = greatest(sluice_snapshot_fences.epoch, excluded.epoch)
             returning epoch",
        )
        .bind(job)
        .bind(epoch)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| self.error(e))?;
        Ok(fence as u64)
    }

    async fn insert(&self, snapshot: &Snapshot, retain: usize, epoch: Option<u64>) -> Result<u64, SnapshotError> {
        let meta = &snapshot.meta;
        let body = snapshot.encode();
        let size = body.len() as u64;
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        if let Some(epoch) = epoch {
            // The fence row stays locked until the snapshot commits, so a
            // takeover's raise waits for it (and its restore sees it) or
            // comes first (and this is refused).
            let fence = self.fence_in(&mut tx, &meta.job, epoch).await?;
            if fence > epoch {
                return Err(SnapshotError::Fenced { job: meta.job.clone(), epoch, fence });
            }
        }
        sqlx::query("insert into sluice_snapshots (job, id, incremental, body) values ($1, $2, $3, $4)")
            .bind(&meta.job)
            .bind(&meta.id)
            .bind(snapshot.base.is_some())
            .bind(body)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        crate::fault::crash_point(crate::fault::points::SNAPSHOT_WRITTEN);
        tx.commit().await.map_err(|e| self.error(e))?;
        let rows = self.rows(&meta.job).await?;
        let cut = retention_cut(&rows, retain);
        if cut > 0 {
            sqlx::query("delete from sluice_snapshots where job = $1 and id <= $2")
                .bind(&meta.job)
                .bind(&rows[cut - 1].0)
                .execute(&self.pool)
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(size)
    }
}

#[async_trait]
impl SnapshotStore for PgSnapshotStore {
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<u64, SnapshotError> {
        self.insert(snapshot, retain, None).await
    }

    fn fences(&self) -> bool {
        true
    }

    async fn raise_fence(&self, job: &str, epoch: u64) -> Result<(), SnapshotError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        self.fence_in(&mut tx, job, epoch).await?;
        tx.commit().await.map_err(|e| self.error(e))
    }

    async fn put_fenced(&self, snapshot: &Snapshot, retain: usize, epoch: u64) -> Result<u64, SnapshotError> {
        self.insert(snapshot, retain, Some(epoch)).await
    }

    async fn list(&self, job: &str) -> Result<Vec<String>, SnapshotError> {
        Ok(self.rows(job).await?.into_iter().map(|(id, _)| id).collect())
    }

    async fn get(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError> {
        let body: Option<(Vec<u8>,)> = sqlx::query_as("select body from sluice_snapshots where job = $1 and id = $2")
            .bind(job)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        let (body,) = body.ok_or_else(|| SnapshotError::NotFound { job: job.to_owned(), id: id.to_owned() })?;
        Snapshot::decode(&format!("{job}/{id} in {}", self.location), &body)
    }
}
