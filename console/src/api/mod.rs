//! The console's HTTP surface: the REST API under `/api/v1` (described by
//! the OpenAPI document at `/api/openapi.json`), the web UI, health and
//! Prometheus endpoints. `app(state)` builds the whole router, so tests
//! drive it with `tower::ServiceExt::oneshot` or on a real port.

mod accounts;
mod deployment;
mod error;
mod extract;
mod jobs;
mod lifecycle;
pub mod limits;
mod monitoring;
mod openapi;
mod projects;
mod quotas;
pub mod server;
pub mod ui;
mod users;
mod workers;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ApiResult, ErrorBody};
pub use extract::{Json, Query};
pub use limits::{ApiSettings, Guards, take_turn};
// The request and answer types the CLI client (`cli/client.rs`) sends and
// reads, so that a field renamed here breaks it at compile time.
pub use accounts::{LoginRequest, TokenAnswer, TokenRequest};
pub use deployment::DeploymentInput;
pub use jobs::{DebugRequest, JobAnswer, JobSummary, NewJob};
pub use lifecycle::{RescaleRequest, RestoreRequest, SnapshotInfo, StartRequest, StopRequest, UpgradeRequest};
pub use monitoring::MetricsAnswer;

use crate::auth::Role;
use crate::store::{Job, Project, Store, User};
use crate::worker::Worker;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub worker: Arc<Worker>,
    /// The operator's API limits and what enforces them.
    pub guards: Arc<Guards>,
}

impl AppState {
    pub fn new(store: Store, worker: Arc<Worker>, settings: ApiSettings) -> AppState {
        AppState { store, worker, guards: Arc::new(Guards::new(settings)) }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice console API",
        description = "Projects, jobs, versions, deployments, runs, snapshots and monitoring. See docs/API.md."
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The whole router of the console.
pub fn app(state: AppState) -> Router {
    let v1 = OpenApiRouter::new()
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::change_password))
        .routes(routes!(accounts::end_my_sessions))
        .routes(routes!(accounts::list_tokens, accounts::create_token))
        .routes(routes!(accounts::delete_token))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::update_user))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::revoke_credentials))
        .routes(routes!(projects::list_projects, projects::create_project))
        .routes(routes!(projects::get_project))
        .routes(routes!(projects::set_member, projects::remove_member))
        .routes(routes!(projects::list_connections))
        .routes(routes!(projects::put_connection, projects::delete_connection))
        .routes(routes!(projects::list_topics, projects::create_topic))
        .routes(routes!(projects::list_events))
        .routes(routes!(quotas::get_quota, quotas::put_quota))
        .routes(routes!(jobs::list_jobs, jobs::create_job))
        .routes(routes!(jobs::get_job))
        // These two read their body themselves, once the caller is known,
        // up to the upload limit (limits::Upload).
        .routes(routes!(jobs::list_versions, jobs::upload_version))
        .routes(routes!(jobs::validate))
        .routes(routes!(deployment::put_deployment))
        .routes(routes!(jobs::debug))
        .routes(routes!(jobs::preview))
        .routes(routes!(lifecycle::start))
        .routes(routes!(lifecycle::stop))
        .routes(routes!(lifecycle::list_snapshots, lifecycle::take_snapshot))
        .routes(routes!(lifecycle::restore))
        .routes(routes!(lifecycle::upgrade))
        .routes(routes!(lifecycle::rescale))
        .routes(routes!(lifecycle::set_parameters))
        .routes(routes!(lifecycle::list_runs))
        .routes(routes!(monitoring::job_metrics))
        .routes(routes!(monitoring::exceptions))
        .routes(routes!(monitoring::logs))
        .routes(routes!(workers::list_workers));
    let (api, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1).split_for_parts();
    openapi::document_common_answers(&mut openapi);
    let openapi = Arc::new(openapi);
    // The API and the Prometheus exposition: small bodies, a cap on
    // requests at once and on the time each takes.
    let limited = Router::new()
        .merge(api)
        .route("/metrics", axum::routing::get(monitoring::prometheus))
        .layer(DefaultBodyLimit::max(limits::JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::limit_requests));
    Router::new()
        .merge(limited)
        .route("/api/openapi.json", axum::routing::get(move || async move { axum::Json(openapi.as_ref().clone()) }))
        .route("/healthz", axum::routing::get(monitoring::healthz))
        .route("/readyz", axum::routing::get(monitoring::readyz))
        .merge(ui::routes())
        .fallback(no_route)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A path no route has: under `/api/` answered like every API error.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        ApiError::NotFound(format!("no API route for {method} {}; see /api/openapi.json", uri.path())).into_response()
    } else {
        (axum::http::StatusCode::NOT_FOUND, "not found").into_response()
    }
}

/// Checks that `user` may act with `needed` in project `name`.
pub async fn project_access(state: &AppState, user: &User, name: &str, needed: Role) -> ApiResult<(Project, Role)> {
    let project =
        state.store.project(name).await?.ok_or_else(|| ApiError::NotFound(format!("no project named `{name}`")))?;
    let role = if user.is_admin {
        Role::Admin
    } else {
        let role = state.store.role_of(&project.id, &user.id).await?.and_then(|r| Role::parse(&r));
        role.ok_or_else(|| ApiError::Forbidden(format!("you are not a member of project `{name}`")))?
    };
    if role < needed {
        return Err(ApiError::Forbidden(format!(
            "this needs the {} role in project `{name}`; you are {}",
            needed.as_str(),
            role.as_str()
        )));
    }
    Ok((project, role))
}

/// Checks access as `project_access`, and finds the job.
pub async fn job_access(
    state: &AppState,
    user: &User,
    project: &str,
    job: &str,
    needed: Role,
) -> ApiResult<(Project, Job, Role)> {
    let (project, role) = project_access(state, user, project, needed).await?;
    let job = state
        .store
        .job(&project.id, job)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project `{}` has no job named `{job}`", project.name)))?;
    Ok((project, job, role))
}

/// Records a change in the audit log.
pub async fn audit(
    state: &AppState,
    project: Option<&Project>,
    job: Option<&Job>,
    actor: &User,
    action: &str,
    detail: &str,
) {
    let result = state
        .store
        .record_event(
            project.map(|p| p.id.as_str()),
            job.map(|j| j.id.as_str()),
            "audit",
            Some(&actor.name),
            action,
            detail,
        )
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
}

/// Names of projects, jobs, connections and users: what fits in URLs,
/// topic suffixes and snapshot keys.
pub fn check_name(what: &str, name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "{what} name `{name}` is not valid: use 1-63 lowercase letters, digits and `-`, not starting with `-`"
        )))
    }
}
