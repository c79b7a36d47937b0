//! The Workers view: every registered worker, its slots, the runs it
//! holds and its last heartbeat (global admins: workers are the platform's,
//! not a project's).

use axum::extract::State;

use super::{ApiError, ApiResult, AppState, Json};
use crate::auth::CurrentUser;
use crate::store::WorkerInfo;
use crate::worker::lease::RunReport;

#[utoipa::path(get, path = "/workers", tag = "platform", responses((status = 200, body = Vec<WorkerInfo>), (status = 403, body = super::ErrorBody)))]
pub async fn list_workers(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<Vec<WorkerInfo>>> {
    if !user.is_admin {
        return Err(ApiError::Forbidden("the workers are for global admins".into()));
    }
    Ok(Json(state.store.workers().await?))
}

/// What the worker holding `run_id` reported of it at its last heartbeat
/// (a run on another process).
pub async fn reported(state: &AppState, run_id: &str, worker: &str) -> Option<RunReport> {
    let status = state.store.worker(worker).await.ok()??.status;
    let reports: Vec<RunReport> = serde_json::from_value(status).ok()?;
    reports.into_iter().find(|r| r.run_id == run_id)
}
