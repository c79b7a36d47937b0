//! Jobs, versions (uploads), deployments, debug runs and previews.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_runtime::job::state_keying_name;
use utoipa::ToSchema;

use super::limits::{Upload, compile};
use super::{ApiError, ApiResult, AppState, Json, Query, audit, check_name, job_access, project_access};
use crate::auth::{CurrentUser, Role};
use crate::store::{Deployment, Job, Run, User, Version, now_ms};
use crate::worker::plan::{self, snapshot_key};
use crate::worker::{DebugInput, DebugOutput};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    pub job: Job,
    /// State of the latest run; `new` when never run.
    pub state: String,
    /// Deployed version number.
    pub version: Option<i64>,
    pub run_id: Option<String>,
}

#[utoipa::path(get, path = "/projects/{p}/jobs", tag = "jobs", responses((status = 200, body = Vec<JobSummary>)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(p): Path<String>,
) -> ApiResult<Json<Vec<JobSummary>>> {
    let (project, _) = project_access(&state, &user, &p, Role::Viewer).await?;
    let jobs = state.store.job_overviews(&project.id).await?;
    let out = jobs
        .into_iter()
        .map(|o| JobSummary {
            state: o.latest_run.as_ref().map_or("new".into(), |(_, state)| state.as_str().to_owned()),
            run_id: o.latest_run.map(|(id, _)| id),
            version: o.version,
            job: o.job,
        })
        .collect();
    Ok(Json(out))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewJob {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[utoipa::path(post, path = "/projects/{p}/jobs", tag = "jobs", request_body = NewJob,
    responses((status = 201, body = Job), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create_job(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(p): Path<String>,
    Json(body): Json<NewJob>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let (project, _) = project_access(&state, &user, &p, Role::Developer).await?;
    check_name("job", &body.name)?;
    let job = state.store.create_job(&project.id, &body.name, &body.description).await?;
    audit(&state, Some(&project), Some(&job), &user, "job.create", &job.name).await;
    Ok((StatusCode::CREATED, Json(job)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobAnswer {
    pub job: Job,
    pub deployment: Option<Deployment>,
    /// The deployed version.
    pub version: Option<Version>,
    /// The latest run.
    pub run: Option<Run>,
    pub versions: Vec<Version>,
}

#[utoipa::path(get, path = "/projects/{p}/jobs/{j}", tag = "jobs", responses((status = 200, body = JobAnswer)))]
pub async fn get_job(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
) -> ApiResult<Json<JobAnswer>> {
    let (_, job, _) = job_access(&state, &user, &p, &j, Role::Viewer).await?;
    let deployment = state.store.deployment(&job.id).await?;
    let version = match &deployment {
        Some(d) => state.store.version(&d.version_id).await?,
        None => None,
    };
    let run = state.store.runs(&job.id, 1).await?.into_iter().next();
    let versions = state.store.versions(&job.id).await?;
    Ok(Json(JobAnswer { job, deployment, version, run, versions }))
}

#[utoipa::path(get, path = "/projects/{p}/jobs/{j}/versions", tag = "jobs", responses((status = 200, body = Vec<Version>)))]
pub async fn list_versions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Version>>> {
    let (_, job, _) = job_access(&state, &user, &p, &j, Role::Viewer).await?;
    Ok(Json(state.store.versions(&job.id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// What changed in this version.
    pub note: Option<String>,
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/versions", tag = "jobs", params(UploadQuery),
    request_body(description = "The component (.wasm) bytes", content(("application/wasm"), ("application/octet-stream"))),
    responses((status = 201, body = Version), (status = 400, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn upload_version(
    State(state): State<AppState>,
    user: Result<CurrentUser, ApiError>,
    Path((p, j)): Path<(String, String)>,
    query: Result<Query<UploadQuery>, ApiError>,
    upload: Upload,
) -> ApiResult<(StatusCode, Json<Version>)> {
    // Who uploads, and may they, before a byte of the upload is kept.
    let limit = state.guards.settings.upload_limit();
    let checked = async {
        let CurrentUser(user) = user?;
        let (project, job, _) = job_access(&state, &user, &p, &j, Role::Developer).await?;
        Ok::<_, ApiError>((user, project, job, query?.0))
    };
    let (user, project, job, q) = match checked.await {
        Ok(checked) => checked,
        Err(e) => return Err(upload.refuse(limit, e).await),
    };
    let bytes = upload.read(limit).await?;
    let loaded = compile(&state, bytes.clone()).await?;
    let mut version =
        state.store.add_version(&job.id, &loaded.hash, &bytes, q.note.as_deref().unwrap_or(""), &user.name).await?;
    let keying = state_keying_name(loaded.state_keying);
    state.store.set_state_keying(&loaded.hash, keying).await?;
    version.state_keying = Some(keying.to_owned());
    audit(
        &state,
        Some(&project),
        Some(&job),
        &user,
        "version.upload",
        &format!("v{} sha256 {}", version.number, version.hash),
    )
    .await;
    Ok((StatusCode::CREATED, Json(version)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidateAnswer {
    pub hash: String,
    pub size: usize,
    /// `global` (parallelism 1 only) or `by-record-key` (may run split by partition).
    pub state_keying: String,
    /// Its repartition stages by name (`Job::STAGES`); empty for a job of one.
    pub stages: Vec<String>,
}

#[utoipa::path(post, path = "/validate", tag = "jobs", request_body(description = "The component (.wasm) bytes", content(("application/wasm"), ("application/octet-stream"))),
    responses((status = 200, body = ValidateAnswer), (status = 400, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody, description = "The caller is a developer in no project")))]
pub async fn validate(
    State(state): State<AppState>,
    user: Result<CurrentUser, ApiError>,
    upload: Upload,
) -> ApiResult<Json<ValidateAnswer>> {
    let limit = state.guards.settings.upload_limit();
    let checked = async {
        let CurrentUser(user) = user?;
        developer_somewhere(&state, &user).await
    };
    if let Err(e) = checked.await {
        return Err(upload.refuse(limit, e).await);
    }
    let bytes = upload.read(limit).await?;
    let size = bytes.len();
    let loaded = compile(&state, bytes).await?;
    Ok(Json(ValidateAnswer {
        hash: loaded.hash,
        size,
        state_keying: state_keying_name(loaded.state_keying).to_owned(),
        stages: loaded.stages,
    }))
}

/// Validating compiles, which costs CPU: it is for those who may upload,
/// developers (or more) of at least one project.
async fn developer_somewhere(state: &AppState, user: &User) -> ApiResult<()> {
    if user.is_admin {
        return Ok(());
    }
    let roles = state.store.roles(&user.id).await?;
    if roles.iter().filter_map(|r| Role::parse(r)).any(|r| r >= Role::Developer) {
        return Ok(());
    }
    Err(ApiError::Forbidden("validating a component needs the developer role in at least one project".into()))
}

pub async fn resolve_version(state: &AppState, job: &Job, number: Option<i64>) -> ApiResult<Version> {
    let found = match number {
        Some(n) => state.store.version_by_number(&job.id, n).await?,
        None => state.store.versions(&job.id).await?.into_iter().next(),
    };
    found.ok_or_else(|| match number {
        Some(n) => ApiError::bad(format!("job `{}` has no version {n}", job.name)),
        None => ApiError::bad(format!("job `{}` has no version yet: upload a component first", job.name)),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebugRequest {
    /// Version number; default: the deployed one, else the newest.
    pub version: Option<i64>,
    /// Spec TOML; default: the deployment's.
    pub spec: Option<String>,
    /// JSON lines to feed as records.
    pub records: Option<String>,
    /// Which source the lines are records of; default: the first.
    pub source: Option<String>,
    /// Instead of `records`: the first N records of the live sources.
    pub from_topic: Option<usize>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: indexmap::IndexMap<String, String>,
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/debug", tag = "jobs", request_body = DebugRequest,
    responses((status = 200, body = DebugOutput), (status = 400, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
pub async fn debug(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<DebugRequest>,
) -> ApiResult<Json<DebugOutput>> {
    let input = match (body.records, body.from_topic) {
        (Some(text), None) => DebugInput::Lines { source: body.source, text },
        (None, Some(limit)) => DebugInput::Live { limit },
        _ => return Err(ApiError::bad("give either `records` (JSON lines) or `from_topic` (a number of records)")),
    };
    run_debug(&state, &user, &p, &j, body.version, body.spec, body.parameters, input, "job.debug").await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PreviewRequest {
    /// Records to read from the live sources.
    #[serde(default = "preview_default")]
    pub limit: usize,
}

fn preview_default() -> usize {
    100
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/preview", tag = "jobs", request_body = PreviewRequest,
    responses((status = 200, body = DebugOutput), (status = 400, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<PreviewRequest>,
) -> ApiResult<Json<DebugOutput>> {
    let input = DebugInput::Live { limit: body.limit };
    run_debug(&state, &user, &p, &j, None, None, Default::default(), input, "job.preview").await
}

#[expect(clippy::too_many_arguments, reason = "the two entry points share every input")]
async fn run_debug(
    state: &AppState,
    user: &User,
    p: &str,
    j: &str,
    version: Option<i64>,
    spec: Option<String>,
    parameters: indexmap::IndexMap<String, String>,
    input: DebugInput,
    action: &str,
) -> ApiResult<Json<DebugOutput>> {
    let (project, job, _) = job_access(state, user, p, j, Role::Developer).await?;
    // Held until the run ends; over the quota the caller is told to wait.
    let slot = state.worker.debug_slot(&project).await?;
    let deployed = state.store.deployment(&job.id).await?;
    let version = match (version, &deployed) {
        (None, Some(d)) => {
            state.store.version(&d.version_id).await?.ok_or_else(|| ApiError::bad("the deployed version is gone"))?
        }
        (n, _) => resolve_version(state, &job, n).await?,
    };
    let mut deployment = match (spec, deployed) {
        (Some(text), d) => Deployment { spec: text, ..d.unwrap_or_else(|| empty_deployment(&job.id, &version.id)) },
        (None, Some(d)) => d,
        (None, None) => return Err(ApiError::bad("there is no deployment yet: give a `spec` to debug with")),
    };
    deployment.parameters.extend(parameters);
    let key = format!("{}__debug", snapshot_key(&project.name, &job.name, 0, 1));
    let base_dir = plan::project_files(state.worker.data_dir(), &project.name);
    let spec = plan::job_spec(&deployment, &key, None, &base_dir)
        .map_err(|e| ApiError::bad(format!("the spec is not valid: {e}")))?;
    let stored = state.store.connections(&project.id).await?;
    let connections = state.worker.project_connections(&project.name, &stored)?;
    let bytes = state.store.component(&version.hash).await?.ok_or_else(|| ApiError::bad("the component is missing"))?;
    let component = compile(state, bytes.into()).await?;
    let output = state.worker.debug_run(slot, &component, &spec, &connections, input).await?;
    audit(
        state,
        Some(&project),
        Some(&job),
        user,
        action,
        &format!("v{}: {} records in", version.number, output.records_in),
    )
    .await;
    Ok(Json(output))
}

fn empty_deployment(job_id: &str, version_id: &str) -> Deployment {
    Deployment {
        job_id: job_id.to_owned(),
        version_id: version_id.to_owned(),
        spec: String::new(),
        parameters: Default::default(),
        parallelism: 1,
        memory_mb: None,
        cpu_ms: None,
        schedule: None,
        updated_ms: now_ms(),
    }
}
