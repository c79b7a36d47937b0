//! Projects' quotas: a global admin sets them; a project's members see
//! them with what the project holds now.

use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiResult, AppState, Json, audit, project_access};
use crate::auth::{CurrentUser, Role};
use crate::store::{Project, ProjectQuota};
use crate::worker::{Quota, Usage};

/// Largest value a quota setting takes: far past any machine, small enough
/// that sums of them never overflow.
const MOST: i64 = 1_000_000_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaAnswer {
    /// The project's own settings (`null`: the platform's default).
    pub own: ProjectQuota,
    /// What applies: its own settings over the platform's defaults.
    pub quota: Quota,
    /// What the project's jobs hold now.
    pub usage: Usage,
}

async fn answer(state: &AppState, project: &Project) -> ApiResult<QuotaAnswer> {
    let own = state.store.project_quota(&project.id).await?;
    let (quota, usage) = state.worker.quota(project, None).await?;
    Ok(QuotaAnswer { own, quota, usage })
}

#[utoipa::path(get, path = "/projects/{p}/quota", tag = "projects",
    responses((status = 200, body = QuotaAnswer), (status = 404, body = super::ErrorBody)))]
pub async fn get_quota(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(p): Path<String>,
) -> ApiResult<Json<QuotaAnswer>> {
    let (project, _) = project_access(&state, &user, &p, Role::Viewer).await?;
    Ok(Json(answer(&state, &project).await?))
}

#[utoipa::path(put, path = "/projects/{p}/quota", tag = "projects", request_body = ProjectQuota,
    responses((status = 200, body = QuotaAnswer), (status = 400, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn put_quota(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(p): Path<String>,
    Json(body): Json<ProjectQuota>,
) -> ApiResult<Json<QuotaAnswer>> {
    // A project's admin runs the project; how much of the platform it may
    // take is the platform's (global admins').
    if !user.is_admin {
        return Err(ApiError::Forbidden("setting a project's quota needs a global admin".into()));
    }
    let (project, _) = project_access(&state, &user, &p, Role::Viewer).await?;
    for (name, value) in
        [("max_tasks", body.max_tasks), ("max_memory_mb", body.max_memory_mb), ("max_debug_runs", body.max_debug_runs)]
    {
        if let Some(n) = value
            && !(0..=MOST).contains(&n)
        {
            return Err(ApiError::bad(format!(
                "`{name}` = {n} is out of range: give 0 to {MOST}, or null for the platform's default"
            )));
        }
    }
    state.store.set_project_quota(&project.id, &body).await?;
    let show = |v: Option<i64>| v.map_or("default".to_owned(), |n| n.to_string());
    audit(
        &state,
        Some(&project),
        None,
        &user,
        "project.quota",
        &format!(
            "max_tasks {}, max_memory_mb {}, max_debug_runs {}",
            show(body.max_tasks),
            show(body.max_memory_mb),
            show(body.max_debug_runs)
        ),
    )
    .await;
    Ok(Json(answer(&state, &project).await?))
}
