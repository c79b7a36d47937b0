//! Projects' quotas as stored, and the runs that hold a project's tasks.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Run, RunState, Store, StoreResult};

/// A project's own quota; `None` leaves a setting at the platform's
/// default (`sluice serve --project-max-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectQuota {
    /// Most tasks (partition groups of running jobs) at once.
    pub max_tasks: Option<i64>,
    /// Most guest memory of those tasks together, MiB.
    pub max_memory_mb: Option<i64>,
    /// Most debug runs and previews at once.
    pub max_debug_runs: Option<i64>,
}

impl Store {
    pub async fn project_quota(&self, project_id: &str) -> StoreResult<ProjectQuota> {
        let row = sqlx::query("select max_tasks, max_memory_mb, max_debug_runs from projects where id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => ProjectQuota {
                max_tasks: r.try_get("max_tasks")?,
                max_memory_mb: r.try_get("max_memory_mb")?,
                max_debug_runs: r.try_get("max_debug_runs")?,
            },
            None => ProjectQuota::default(),
        })
    }

    pub async fn set_project_quota(&self, project_id: &str, quota: &ProjectQuota) -> StoreResult<()> {
        sqlx::query("update projects set max_tasks = $1, max_memory_mb = $2, max_debug_runs = $3 where id = $4")
            .bind(quota.max_tasks)
            .bind(quota.max_memory_mb)
            .bind(quota.max_debug_runs)
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The project's runs that hold tasks (starting, running or stopping),
    /// on any worker.
    pub async fn runs_holding_tasks(&self, project_id: &str) -> StoreResult<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "select {} from runs where state in ($1, $2, $3) and job_id in (select id from jobs where project_id = $4)",
            super::runs::RUN_COLUMNS
        ))
        .bind(RunState::Starting.as_str())
        .bind(RunState::Running.as_str())
        .bind(RunState::Stopping.as_str())
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Run::from_row).collect()
    }
}
