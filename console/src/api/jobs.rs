//! Jobs, versions (uploads), deployments, debug runs and previews.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiResult, AppState, Json, Query, audit, check_name, job_access, project_access};
use crate::auth::{CurrentUser, Role};
use crate::store::{Deployment, Job, Run, Version, now_ms};
use crate::worker::plan::{self, snapshot_key};
use crate::worker::scheduler::parse_cron;
use crate::worker::{DebugInput, DebugOutput};

#[derive(Debug, Serialize, ToSchema)]
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
    let mut out = Vec::new();
    for job in state.store.jobs(&project.id).await? {
        let latest = state.store.runs(&job.id, 1).await?.into_iter().next();
        let version = match state.store.deployment(&job.id).await? {
            Some(d) => state.store.version(&d.version_id).await?.map(|v| v.number),
            None => None,
        };
        out.push(JobSummary {
            state: latest.as_ref().map_or("new".into(), |r| r.state.as_str().to_owned()),
            run_id: latest.map(|r| r.id),
            version,
            job,
        });
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
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
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = Version), (status = 400, body = super::ErrorBody)))]
pub async fn upload_version(
    State(state): State<AppState>,
    user: Result<CurrentUser, ApiError>,
    Path((p, j)): Path<(String, String)>,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Version>)> {
    // Checked once the upload is read: answering 401 before reading it would
    // close the connection under a client still sending, which would see a
    // reset instead of the answer.
    let CurrentUser(user) = user?;
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Developer).await?;
    let loaded =
        state.worker.load(&body).await.map_err(|e| ApiError::bad(format!("not a valid job component: {e}")))?;
    let version =
        state.store.add_version(&job.id, &loaded.hash, &body, q.note.as_deref().unwrap_or(""), &user.name).await?;
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
}

#[utoipa::path(post, path = "/validate", tag = "jobs", request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 200, body = ValidateAnswer), (status = 400, body = super::ErrorBody)))]
pub async fn validate(
    State(state): State<AppState>,
    user: Result<CurrentUser, ApiError>,
    body: Bytes,
) -> ApiResult<Json<ValidateAnswer>> {
    user?; // after reading the upload, as in `upload_version`
    let loaded =
        state.worker.load(&body).await.map_err(|e| ApiError::bad(format!("not a valid job component: {e}")))?;
    Ok(Json(ValidateAnswer { hash: loaded.hash, size: body.len() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentInput {
    /// Version number to run; default: the newest.
    pub version: Option<i64>,
    /// The job spec, TOML as in `job.toml` (`name` and `component` are set by the console).
    pub spec: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: indexmap::IndexMap<String, String>,
    #[serde(default = "one")]
    pub parallelism: i64,
    pub memory_mb: Option<i64>,
    pub cpu_ms: Option<i64>,
    /// Cron schedule (seconds first), e.g. `0 0 2 * * *`.
    pub schedule: Option<String>,
}

fn one() -> i64 {
    1
}

#[utoipa::path(put, path = "/projects/{p}/jobs/{j}/deployment", tag = "jobs", request_body = DeploymentInput,
    responses((status = 200, body = Deployment), (status = 400, body = super::ErrorBody)))]
pub async fn put_deployment(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<DeploymentInput>,
) -> ApiResult<Json<Deployment>> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Developer).await?;
    let version = resolve_version(&state, &job, body.version).await?;
    if !(1..=64).contains(&body.parallelism) {
        return Err(ApiError::bad("parallelism must be between 1 and 64"));
    }
    let schedule = body.schedule.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(s) = &schedule {
        parse_cron(s).map_err(ApiError::BadRequest)?;
    }
    let deployment = Deployment {
        job_id: job.id.clone(),
        version_id: version.id.clone(),
        spec: body.spec,
        parameters: body.parameters,
        parallelism: body.parallelism,
        memory_mb: body.memory_mb,
        cpu_ms: body.cpu_ms,
        schedule,
        updated_ms: now_ms(),
    };
    // The spec must parse now, with the console's settings over it, and
    // stay within the platform's ceilings.
    let key = snapshot_key(&project.name, &job.name, 0, 1);
    let spec = plan::job_spec(&deployment, &key, None, std::path::Path::new("."))
        .map_err(|e| ApiError::bad(format!("the spec is not valid: {e}")))?;
    state.worker.ceilings.check(&spec).map_err(|e| ApiError::bad(e.to_string()))?;
    let connections = state.store.connections(&project.id).await?;
    let names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
    for used in spec_connections(&deployment.spec) {
        if !names.contains(&used.as_str()) {
            return Err(ApiError::bad(format!(
                "the spec uses connection `{used}`, which project `{}` does not have; add it under Connections",
                project.name
            )));
        }
    }
    state.store.put_deployment(&deployment).await?;
    audit(&state, Some(&project), Some(&job), &user, "deployment.put", &format!("version v{}", version.number)).await;
    Ok(Json(deployment))
}

/// The connection names a spec's sources, sinks and dimensions use.
fn spec_connections(spec: &str) -> Vec<String> {
    let Ok(table) = spec.parse::<toml::Table>() else { return Vec::new() };
    let mut used = Vec::new();
    for section in ["sources", "sinks", "dimensions"] {
        for entry in table.get(section).and_then(|s| s.as_table()).into_iter().flat_map(|t| t.values()) {
            if let Some(c) = entry.get("connection").and_then(|c| c.as_str()) {
                used.push(c.to_owned());
            }
        }
    }
    used
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

#[derive(Debug, Deserialize, ToSchema)]
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
    responses((status = 200, body = DebugOutput), (status = 400, body = super::ErrorBody)))]
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
    responses((status = 200, body = DebugOutput), (status = 400, body = super::ErrorBody)))]
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
    user: &crate::store::User,
    p: &str,
    j: &str,
    version: Option<i64>,
    spec: Option<String>,
    parameters: indexmap::IndexMap<String, String>,
    input: DebugInput,
    action: &str,
) -> ApiResult<Json<DebugOutput>> {
    let (project, job, _) = job_access(state, user, p, j, Role::Developer).await?;
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
    let connections = state.worker.project_connections(&project.name, &stored).map_err(ApiError::BadRequest)?;
    let bytes = state.store.component(&version.hash).await?.ok_or_else(|| ApiError::bad("the component is missing"))?;
    let component = state.worker.load(&bytes).await.map_err(ApiError::BadRequest)?;
    let output = state.worker.debug_run(&component, &spec, &connections, input).await.map_err(ApiError::BadRequest)?;
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
