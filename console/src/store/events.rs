//! Events: the audit log of every change, and what happened to jobs
//! (runs started and ended, failures, snapshots).

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreResult, new_id, now_ms};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    pub project_id: Option<String>,
    pub job_id: Option<String>,
    /// `audit` (a change someone made), `run` (lifecycle), `error`.
    pub kind: String,
    /// Who made the change (user name), or none for the system.
    pub actor: Option<String>,
    pub action: String,
    pub detail: String,
    pub created_ms: i64,
}

/// Filters of an event listing.
#[derive(Debug, Default, Clone)]
pub struct EventFilter<'a> {
    pub project_id: Option<&'a str>,
    pub job_id: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub limit: i64,
}

impl Store {
    pub async fn record_event(
        &self,
        project_id: Option<&str>,
        job_id: Option<&str>,
        kind: &str,
        actor: Option<&str>,
        action: &str,
        detail: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into events (id, project_id, job_id, kind, actor, action, detail, created_ms)
             values ($1, coalesce($2, (select project_id from jobs where id = $3)), $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(project_id)
        .bind(job_id)
        .bind(kind)
        .bind(actor)
        .bind(action)
        .bind(detail)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Events matching `filter`, newest first.
    pub async fn events(&self, filter: EventFilter<'_>) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(
            "select id, project_id, job_id, kind, actor, action, detail, created_ms from events
             where ($1 is null or project_id = $1) and ($2 is null or job_id = $2) and ($3 is null or kind = $3)
             order by created_ms desc, id desc limit $4",
        )
        .bind(filter.project_id)
        .bind(filter.job_id)
        .bind(filter.kind)
        .bind(if filter.limit > 0 { filter.limit } else { 200 })
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    id: r.try_get("id")?,
                    project_id: r.try_get("project_id")?,
                    job_id: r.try_get("job_id")?,
                    kind: r.try_get("kind")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    detail: r.try_get("detail")?,
                    created_ms: r.try_get("created_ms")?,
                })
            })
            .collect()
    }
}
