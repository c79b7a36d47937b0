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
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(url).await.map_err(error)?;
        sqlx::query(
            "create table if not exists sluice_snapshots (
                job text not null,
                id text not null,
                incremental boolean not null,
                body bytea not null,
                created_at timestamptz not null default now(),
                primary key (job, id))",
        )
        .execute(&pool)
        .await
        .map_err(error)?;
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
}

#[async_trait]
impl SnapshotStore for PgSnapshotStore {
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<u64, SnapshotError> {
        let meta = &snapshot.meta;
        let body = snapshot.encode();
        let size = body.len() as u64;
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
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
