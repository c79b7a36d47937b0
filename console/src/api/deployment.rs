//! The deployment: what runs when a job starts. A developer sets what runs
//! (version, spec, parameters); when it starts (a cron schedule) and what
//! it may use (parallelism, memory and CPU limits, the spec's `[limits]`)
//! are an operator's, as starting and stopping are.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use sluice_runtime::connectors::registry::check_sources;
use sluice_runtime::job::check_state_keying;
use utoipa::ToSchema;

use super::jobs::resolve_version;
use super::limits::compile;
use super::{ApiError, ApiResult, AppState, Json, audit, job_access};
use crate::auth::{CurrentUser, Role};
use crate::store::{Deployment, Job, Project, now_ms};
use crate::worker::plan::{self, snapshot_key};
use crate::worker::scheduler::parse_cron;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentInput {
    /// Version number to run; default: the newest.
    pub version: Option<i64>,
    /// The job spec, TOML as in `job.toml` (`name` and `component` are set by the console).
    pub spec: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: indexmap::IndexMap<String, String>,
    /// Tasks (partition groups), 1-64; an operator's setting.
    #[serde(default = "one")]
    pub parallelism: i64,
    /// Memory limit per task, MiB; an operator's setting.
    pub memory_mb: Option<i64>,
    /// CPU deadline per guest call, ms; an operator's setting.
    pub cpu_ms: Option<i64>,
    /// Cron schedule (seconds first), e.g. `0 0 2 * * *`; an operator's setting.
    pub schedule: Option<String>,
}

fn one() -> i64 {
    1
}

#[utoipa::path(put, path = "/projects/{p}/jobs/{j}/deployment", tag = "jobs", request_body = DeploymentInput,
    responses((status = 200, body = Deployment), (status = 400, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody, description = "The role is too low, e.g. a developer changing the schedule or resources"),
        (status = 404, body = super::ErrorBody)))]
pub async fn put_deployment(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<DeploymentInput>,
) -> ApiResult<Json<Deployment>> {
    let (project, job, role) = job_access(&state, &user, &p, &j, Role::Developer).await?;
    let version = resolve_version(&state, &job, body.version).await?;
    check_parallelism(body.parallelism)?;
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
    let current = state.store.deployment(&job.id).await?;
    if role < Role::Operator {
        let changed = operator_changes(current.as_ref(), &deployment);
        if !changed.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "changing {} needs the operator role in project `{}`; you are {} \
                 (a developer sets the version, spec and parameters; an operator the schedule and resources)",
                changed.join(", "),
                project.name,
                role.as_str()
            )));
        }
    }
    // The spec must parse now, with the console's settings over it, and
    // stay within the platform's ceilings.
    let key = snapshot_key(&project.name, &job.name, 0, 1);
    let spec = plan::job_spec(&deployment, &key, None, std::path::Path::new("."))
        .map_err(|e| ApiError::bad(format!("the spec is not valid: {e}")))?;
    state.worker.ceilings.check(&spec).map_err(|e| ApiError::bad(e.to_string()))?;
    check_sources(&spec).map_err(|e| ApiError::bad(format!("the spec is not valid: {e}")))?;
    check_connections(&state, &project, &deployment.spec).await?;
    check_parallel_state(&state, &job, &deployment).await?;
    state.store.put_deployment(&deployment).await?;
    audit(&state, Some(&project), Some(&job), &user, "deployment.put", &format!("version v{}", version.number)).await;
    Ok(Json(deployment))
}

/// Refuses a parallelism outside 1-64.
pub fn check_parallelism(parallelism: i64) -> ApiResult<()> {
    if !(1..=64).contains(&parallelism) {
        return Err(ApiError::bad("parallelism must be between 1 and 64"));
    }
    Ok(())
}

/// Refuses a deployment at parallelism above 1 whose version declares its
/// state global: split between tasks, such a job gives partial results;
/// and a schedule for a version in repartition stages, whose later stages
/// follow their topics and never finish (a cron start would find it still
/// running). Checked when a deployment is saved, changed (upgrade,
/// parameters) or started, so it is refused before anything stops; the
/// runtime refuses building a global task in parallel too.
pub async fn check_parallel_state(state: &AppState, job: &Job, deployment: &Deployment) -> ApiResult<()> {
    if deployment.parallelism <= 1 && deployment.schedule.is_none() {
        return Ok(());
    }
    let gone = || ApiError::NotFound(format!("the version of job `{}`'s deployment was deleted", job.name));
    let version = state.store.version(&deployment.version_id).await?.ok_or_else(gone)?;
    let bytes = state.store.component(&version.hash).await?.ok_or_else(gone)?;
    let loaded = compile(state, bytes.into()).await?;
    if deployment.schedule.is_some() && !loaded.stages.is_empty() {
        return Err(ApiError::bad(format!(
            "job `{}` runs in repartition stages, whose later stages follow their topics and never finish, so it \
             cannot run on a schedule: remove the schedule and start it by hand",
            job.name
        )));
    }
    check_state_keying(&job.name, loaded.state_keying, deployment.parallelism.clamp(1, 64) as u32)
        .map_err(|e| ApiError::bad(e.to_string()))
}

/// Refuses restoring state kept in several shards (by a version keyed by
/// the record key) with a version whose state is global, one shard, and
/// state kept in some number of repartition stages with a version of
/// another, either of which would start (part of) the state empty:
/// checked before a job is stopped.
pub async fn check_state_layout(
    state: &AppState,
    project: &Project,
    job: &Job,
    deployment: &Deployment,
) -> ApiResult<()> {
    let Some(kept) = state.worker.kept_shards(&project.name, job, "").await? else { return Ok(()) };
    let kept_stages = state.store.last_planned_run(&job.id, "").await?.and_then(|r| r.stages).unwrap_or(1);
    if kept <= 1 && kept_stages <= 1 {
        return Ok(());
    }
    let gone = || ApiError::NotFound(format!("the version of job `{}`'s deployment was deleted", job.name));
    let version = state.store.version(&deployment.version_id).await?.ok_or_else(gone)?;
    let bytes = state.store.component(&version.hash).await?.ok_or_else(gone)?;
    let loaded = compile(state, bytes.into()).await?;
    if kept > 1 && loaded.state_keying == sluice_runtime::wasm::StateKeying::Global {
        return Err(ApiError::bad(crate::worker::shards::global_over_shards(&job.name, kept)));
    }
    let stages = loaded.stages.len().max(1) as i64;
    if stages != kept_stages {
        return Err(ApiError::bad(crate::worker::stages::stages_changed(&job.name, kept_stages as u32, stages as u32)));
    }
    Ok(())
}

/// The operator's settings that `new` changes from `current` (from a new
/// deployment's defaults — parallelism 1, no schedule, no limits — when
/// there is none yet).
fn operator_changes(current: Option<&Deployment>, new: &Deployment) -> Vec<&'static str> {
    let spec_limits = |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.parse::<toml::Table>().ok()).and_then(|t| t.get("limits").cloned())
    };
    let mut changed = Vec::new();
    if current.and_then(|c| c.schedule.as_ref()) != new.schedule.as_ref() {
        changed.push("the schedule");
    }
    if current.map_or(1, |c| c.parallelism) != new.parallelism {
        changed.push("parallelism");
    }
    if current.and_then(|c| c.memory_mb) != new.memory_mb {
        changed.push("memory_mb");
    }
    if current.and_then(|c| c.cpu_ms) != new.cpu_ms {
        changed.push("cpu_ms");
    }
    if spec_limits(current) != spec_limits(Some(new)) {
        changed.push("the spec's [limits]");
    }
    changed
}

/// Every connection the spec's sources, sinks and dimensions name must be
/// one of the project's.
async fn check_connections(state: &AppState, project: &Project, spec: &str) -> ApiResult<()> {
    let connections = state.store.connections(&project.id).await?;
    let names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
    for used in spec_connections(spec) {
        if !names.contains(&used.as_str()) {
            return Err(ApiError::bad(format!(
                "the spec uses connection `{used}`, which project `{}` does not have; add it under Connections",
                project.name
            )));
        }
    }
    Ok(())
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
