//! Operating a job: start (now, at a time), stop, snapshot, restore,
//! upgrade, parameters, and the run history.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::deployment::{check_parallel_state, check_state_layout};
use super::jobs::resolve_version;
use super::{ApiError, ApiResult, AppState, Json, audit, job_access};
use crate::auth::{CurrentUser, Role};
use crate::store::{Deployment, Job, NewRun, Project, Run, RunState, User, now_ms};
use crate::worker::plan::{self, StartPosition};
use crate::worker::stages::{GroupKey, group_keys, stage_of_key};
use sluice_runtime::snapshot::Snapshot;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// `none` (fresh state), `latest` (the newest snapshot, or fresh when
    /// there is none) or a snapshot id. Default: `latest`.
    pub restore: Option<String>,
    /// Where sources start when no snapshot is restored: `earliest`,
    /// `latest`, an RFC 3339 time or epoch ms. Default: as the spec says.
    pub start_position: Option<String>,
    /// Start later, at this RFC 3339 time.
    pub at: Option<String>,
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/start", tag = "lifecycle", request_body = StartRequest,
    responses((status = 201, body = Run), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<StartRequest>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Operator).await?;
    let deployment = deployment_of(&state, &job).await?;
    let at = match body.at.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| {
                    ApiError::bad(format!(
                        "start time `{text}` is not an RFC 3339 time ({e}), e.g. 2026-11-23T02:00:00+08:00"
                    ))
                })?
                .timestamp_millis(),
        ),
        None => None,
    };
    let restore = body.restore.unwrap_or_else(|| "latest".into());
    let run =
        start_run(&state, &user, &project, &job, &deployment.version_id, &restore, body.start_position.as_deref(), at)
            .await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// Checks a start and creates its run: launched now, or scheduled.
#[expect(clippy::too_many_arguments, reason = "a start has this many settings")]
async fn start_run(
    state: &AppState,
    user: &User,
    project: &Project,
    job: &Job,
    version_id: &str,
    restore: &str,
    start_position: Option<&str>,
    at: Option<i64>,
) -> ApiResult<Run> {
    if let Some(active) = state.store.active_run(&job.id).await? {
        return Err(ApiError::Conflict(format!(
            "job `{}` already has a {} run ({}); stop it first",
            job.name,
            active.state.as_str(),
            active.id
        )));
    }
    if let Some(text) = start_position {
        StartPosition::parse(text).map_err(ApiError::BadRequest)?;
    }
    if !["none", "latest"].contains(&restore) {
        check_chosen_snapshot(state, project, job, restore).await?;
    }
    let deployment = state.store.deployment(&job.id).await?;
    if let Some(deployment) = &deployment {
        let runs = Deployment { version_id: version_id.to_owned(), ..deployment.clone() };
        check_parallel_state(state, job, &runs).await?;
        if restore != "none" {
            check_state_layout(state, project, job, &runs).await?;
        }
    }
    let scheduled = at.filter(|t| *t > now_ms());
    let run = state
        .store
        .create_run(NewRun {
            job_id: &job.id,
            version_id,
            state: if scheduled.is_some() { RunState::Scheduled } else { RunState::Starting },
            restore_from: Some(restore),
            start_position,
            scheduled_ms: scheduled,
            created_by: &user.name,
            // This console's own worker launches it now; without one it
            // goes to the worker with the most free slots.
            worker: (scheduled.is_none() && state.worker.takes_runs).then_some(state.worker.id.as_str()),
        })
        .await?;
    let what = match scheduled {
        Some(t) => format!("run {} scheduled at {t} (restore {restore})", run.id),
        None => format!("run {} (restore {restore})", run.id),
    };
    audit(state, Some(project), Some(job), user, "job.start", &what).await;
    if scheduled.is_none() && state.worker.takes_runs {
        state.worker.launch(run.clone()).await.map_err(ApiError::could_not_start)?;
    }
    Ok(state.store.run(&run.id).await?.unwrap_or(run))
}

async fn deployment_of(state: &AppState, job: &Job) -> ApiResult<Deployment> {
    state.store.deployment(&job.id).await?.ok_or_else(|| {
        ApiError::bad(format!("job `{}` has no deployment yet: save one (version and spec) first", job.name))
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Take a final snapshot (default true).
    #[serde(default = "yes")]
    pub snapshot: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/stop", tag = "lifecycle", request_body = StopRequest,
    responses((status = 200, body = Run), (status = 409, body = super::ErrorBody)))]
pub async fn stop(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<StopRequest>,
) -> ApiResult<Json<Run>> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Operator).await?;
    let run = stop_job(&state, &job, body.snapshot).await?;
    audit(
        &state,
        Some(&project),
        Some(&job),
        &user,
        "job.stop",
        &format!("run {} (snapshot: {})", run.id, body.snapshot),
    )
    .await;
    Ok(Json(state.store.run(&run.id).await?.unwrap_or(run)))
}

async fn stop_job(state: &AppState, job: &Job, snapshot: bool) -> ApiResult<Run> {
    let run = state
        .store
        .active_run(&job.id)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("job `{}` is not running", job.name)))?;
    // A scheduled run is cancelled unless it started meanwhile; then it is
    // stopped like any running one.
    let cancelled = run.state == RunState::Scheduled
        && state.store.move_run(&run.id, RunState::Scheduled, RunState::Cancelled).await?;
    if cancelled {
        return Ok(run);
    }
    if state.worker.running(&job.id).is_some_and(|r| r.run_id == run.id) {
        // Its tasks on other workers stop when woken, those here now.
        state.store.request_stop(&run.id, snapshot).await?;
        wake_holders(state, &run.id).await?;
        state.worker.stop(&job.id, snapshot).await?;
    } else if state.store.cancel_unassigned(&run.id).await? {
        // No worker held any of its tasks yet.
        return Ok(run);
    } else {
        // Held by other processes: their workers stop its tasks at their
        // next heartbeat (woken now); tasks no worker holds stop at once.
        state.store.request_stop(&run.id, snapshot).await?;
        wake_holders(state, &run.id).await?;
    }
    let deadline = std::time::Instant::now() + STOP_WAIT;
    loop {
        let now = state.store.run(&run.id).await?.ok_or_else(|| ApiError::Conflict("the run was deleted".into()))?;
        if !now.state.is_active() {
            return Ok(now);
        }
        if std::time::Instant::now() > deadline {
            return Err(ApiError::Conflict(format!(
                "run {} did not stop within {STOP_WAIT:?}; the workers holding its tasks stop them when they \
                 next heartbeat, or they are ended when those workers' leases expire",
                run.id
            )));
        }
        tokio::time::sleep(REQUEST_POLL).await;
    }
}

/// Wakes the workers holding run `run_id`'s tasks, so they read a request now.
async fn wake_holders(state: &AppState, run_id: &str) -> ApiResult<()> {
    let holders: std::collections::BTreeSet<String> =
        state.store.run_tasks(run_id).await?.into_iter().filter_map(|t| t.worker).collect();
    for worker in holders {
        if worker == state.worker.id {
            state.worker.nudge.notify_one();
        } else {
            state.store.wake_worker(&worker).await?;
        }
    }
    Ok(())
}

/// Refuses a chosen snapshot that is not the job's, or that some shard has
/// nothing to restore with (`Worker::chosen_for_shard`): before a restore
/// stops the job, not after.
async fn check_chosen_snapshot(state: &AppState, project: &Project, job: &Job, chosen: &str) -> ApiResult<()> {
    let ids = job_snapshot_ids(state, project, job).await?;
    if !ids.iter().any(|(_, id)| id == chosen) {
        return Err(ApiError::bad(format!(
            "`{chosen}` is not a snapshot of job `{}`; restore one from its snapshot list, `latest` or `none`",
            job.name
        )));
    }
    // A staged job's snapshot goes with its run's repartition topics, which
    // a later start from empty state deleted.
    let taken_ms = chosen.get(..13).and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
    let taken_by = state.store.run_at(&job.id, taken_ms).await?.and_then(|r| r.stage_topics);
    let newest = state.store.last_planned_run(&job.id, "").await?.and_then(|r| r.stage_topics);
    if taken_by.is_some() && taken_by != newest {
        return Err(ApiError::bad(format!(
            "snapshot `{chosen}` is of a state of job `{}` that a later start replaced, and the repartition \
             topics its stages go with are deleted or no longer the job's; restore a snapshot taken since, or \
             `none`",
            job.name
        )));
    }
    // Every shard the state is kept in, those without any snapshot too.
    for group in state.worker.kept_keys(project, job).await? {
        if state.worker.chosen_for_shard(&job.id, &group.key, chosen).await?.is_none() {
            return Err(ApiError::bad(format!(
                "snapshot `{chosen}` cannot be restored: shard `{}` of job `{}` has no snapshot taken by the run \
                 that took it; pick a snapshot taken by a stop or by \"snapshot now\", which cover every shard",
                group.key, job.name
            )));
        }
    }
    Ok(())
}

/// Every snapshot id of the job with its group (stage and shard), in the
/// groups its state is kept in (one for a job that has no snapshots at
/// several shards).
async fn job_snapshot_ids(state: &AppState, project: &Project, job: &Job) -> ApiResult<Vec<(GroupKey, String)>> {
    let mut out = Vec::new();
    for group in state.worker.kept_keys(project, job).await? {
        let ids = state.worker.snapshots.list(&group.key).await.map_err(|e| ApiError::Internal(e.into()))?;
        out.extend(ids.into_iter().map(|id| (group.clone(), id)));
    }
    Ok(out)
}

/// How often a stop or snapshot request to another process is checked on.
const REQUEST_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// How long a stop or snapshot request to a run on another process is
/// waited for.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Asks the workers holding the job's run's tasks (other processes, or
/// several) for a snapshot of every partition group, and returns what they
/// stored.
async fn remote_snapshot(state: &AppState, project: &Project, job: &Job) -> ApiResult<Vec<Snapshot>> {
    let run = state
        .store
        .active_run(&job.id)
        .await?
        .filter(|r| r.state == RunState::Running)
        .ok_or_else(|| ApiError::Conflict("the job is not running; start it first".into()))?;
    // The run's own groups (it keeps them whatever the deployment says now).
    let shards = match run.task_groups {
        Some(groups) => groups.clamp(1, 64) as u32,
        None => state.store.deployment(&job.id).await?.map_or(1, |d| d.parallelism.clamp(1, 64) as u32),
    };
    let stages = run.stages.unwrap_or(1).clamp(1, 64) as u32;
    let asked = state.store.request_snapshot(&run.id).await?;
    wake_holders(state, &run.id).await?;
    let deadline = std::time::Instant::now() + STOP_WAIT;
    while state.store.snapshot_answer(&run.id).await?.unwrap_or(0) < asked {
        if std::time::Instant::now() > deadline {
            return Err(ApiError::Conflict(format!(
                "the workers holding run {}'s tasks took no snapshot within {STOP_WAIT:?}; see the job's events",
                run.id
            )));
        }
        tokio::time::sleep(REQUEST_POLL).await;
    }
    let snapshots = &state.worker.snapshots;
    let mut taken = Vec::new();
    for GroupKey { key, .. } in group_keys(&project.name, &job.name, shards, stages) {
        let ids = snapshots.list(&key).await.map_err(|e| ApiError::Internal(e.into()))?;
        // The worker answered after storing them: the newest are its.
        let id = ids.last().ok_or_else(|| ApiError::Conflict(format!("the worker stored no snapshot of `{key}`")))?;
        taken.push(snapshots.get(&key, id).await.map_err(|e| ApiError::Internal(e.into()))?);
    }
    Ok(taken)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotInfo {
    pub id: String,
    pub created_ms: i64,
    /// `periodic`, `stop` or `manual`.
    pub trigger: String,
    pub incremental: bool,
    pub job_version: String,
    /// Positions per source partition: `source/partition: next offset`.
    pub positions: Vec<String>,
    /// The shard it holds the state of (0 for a job of one shard).
    /// Restoring it restores every other shard from its newest snapshot
    /// taken at or before it.
    #[serde(default)]
    pub shard: u32,
    /// The repartition stage it holds the state of (0 for a job of one).
    #[serde(default)]
    pub stage: u32,
}

impl SnapshotInfo {
    fn of(s: &sluice_runtime::snapshot::Snapshot) -> SnapshotInfo {
        SnapshotInfo {
            id: s.meta.id.clone(),
            created_ms: s.meta.created_ms,
            trigger: format!("{:?}", s.meta.trigger).to_lowercase(),
            incremental: s.base.is_some(),
            job_version: s.meta.job_version.clone(),
            positions: s
                .meta
                .positions
                .iter()
                .map(|p| format!("{}/{}: {}", p.source, p.partition, p.next_offset))
                .collect(),
            shard: plan::shard_of(&s.meta.job),
            stage: stage_of_key(&s.meta.job),
        }
    }
}

#[utoipa::path(get, path = "/projects/{p}/jobs/{j}/snapshots", tag = "lifecycle", responses((status = 200, body = Vec<SnapshotInfo>)))]
pub async fn list_snapshots(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
) -> ApiResult<Json<Vec<SnapshotInfo>>> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Viewer).await?;
    let store = &state.worker.snapshots;
    let mut ids = job_snapshot_ids(&state, &project, &job).await?;
    // Newest first, over every shard (ids begin with their time).
    ids.sort_by(|a, b| b.1.cmp(&a.1));
    let mut out = Vec::new();
    for (shard, id) in ids.iter().take(50) {
        let key = &shard.key;
        match store.get(key, id).await {
            Ok(s) => out.push(SnapshotInfo { shard: shard.shard, stage: shard.stage, ..SnapshotInfo::of(&s) }),
            Err(e) => tracing::warn!(snapshot = %id, error = %e, "unreadable snapshot left out of the list"),
        }
    }
    Ok(Json(out))
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/snapshots", tag = "lifecycle",
    responses((status = 201, body = Vec<SnapshotInfo>), (status = 409, body = super::ErrorBody)))]
pub async fn take_snapshot(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Vec<SnapshotInfo>>)> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Operator).await?;
    // Every task of the run here: taken here at once.
    let all_here = state.worker.running(&job.id).is_some_and(|r| r.groups().len() as u32 == r.run_groups());
    let taken = if all_here {
        state.worker.snapshot_now(&job.id).await?
    } else {
        remote_snapshot(&state, &project, &job).await?
    };
    let infos: Vec<SnapshotInfo> = taken.iter().map(SnapshotInfo::of).collect();
    let ids: Vec<&str> = infos.iter().map(|i| i.id.as_str()).collect();
    audit(&state, Some(&project), Some(&job), &user, "snapshot.take", &ids.join(", ")).await;
    Ok((StatusCode::CREATED, Json(infos)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub snapshot: String,
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/restore", tag = "lifecycle", request_body = RestoreRequest,
    responses((status = 201, body = Run), (status = 400, body = super::ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<RestoreRequest>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Operator).await?;
    let deployment = deployment_of(&state, &job).await?;
    if !["none", "latest"].contains(&body.snapshot.as_str()) {
        check_chosen_snapshot(&state, &project, &job, &body.snapshot).await?;
    }
    // What the start would refuse, refused before the job stops.
    check_parallel_state(&state, &job, &deployment).await?;
    if body.snapshot != "none" {
        check_state_layout(&state, &project, &job, &deployment).await?;
    }
    if state.store.active_run(&job.id).await?.is_some() {
        // The state goes back to the snapshot: nothing newer is kept.
        stop_job(&state, &job, false).await?;
    }
    let run = start_run(&state, &user, &project, &job, &deployment.version_id, &body.snapshot, None, None).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// The version number to run.
    pub version: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeAnswer {
    pub deployment: Deployment,
    /// The new run, when the job was running and restarted.
    pub run: Option<Run>,
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/upgrade", tag = "lifecycle", request_body = UpgradeRequest,
    responses((status = 200, body = ChangeAnswer), (status = 400, body = super::ErrorBody)))]
pub async fn upgrade(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<UpgradeRequest>,
) -> ApiResult<Json<ChangeAnswer>> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Operator).await?;
    let mut deployment = deployment_of(&state, &job).await?;
    let version = resolve_version(&state, &job, Some(body.version)).await?;
    deployment.version_id = version.id.clone();
    let answer = change_deployment(&state, &user, &project, &job, deployment).await?;
    audit(&state, Some(&project), Some(&job), &user, "job.upgrade", &format!("to v{}", version.number)).await;
    Ok(Json(answer))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescaleRequest {
    /// Tasks (worker slots) to run the job's shards in, 1-64; a job runs
    /// at most one task per shard.
    pub parallelism: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RescaleAnswer {
    pub deployment: Deployment,
    /// The new run, when the job was running and restarted.
    pub run: Option<Run>,
    /// The shards the job's state is kept in; none before it has snapshots
    /// (its next run counts its inputs' partitions).
    pub shards: Option<u32>,
    /// The tasks the shards run in: the parallelism, at most one per shard.
    pub tasks: u32,
}

/// Changes a job's parallelism. A running job is stopped with a snapshot
/// of every shard and started again at the new parallelism from them:
/// whole shards move between tasks with their state, as Flink's rescale
/// from a savepoint does. A stopped job keeps the setting for its next
/// start. Refused before anything stops when the job's state is global
/// (above 1) or the tasks would pass the project's quota.
#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/rescale", tag = "lifecycle", request_body = RescaleRequest,
    responses((status = 200, body = RescaleAnswer), (status = 400, body = super::ErrorBody)))]
pub async fn rescale(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<RescaleRequest>,
) -> ApiResult<Json<RescaleAnswer>> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Operator).await?;
    let mut deployment = deployment_of(&state, &job).await?;
    super::deployment::check_parallelism(body.parallelism)?;
    let from = deployment.parallelism;
    deployment.parallelism = body.parallelism;
    check_parallel_state(&state, &job, &deployment).await?;
    let running = state.store.active_run(&job.id).await?;
    let (shards, tasks) = state.worker.check_rescale(&project, &job, &deployment, running.as_ref()).await?;
    let ChangeAnswer { deployment, run } = change_deployment(&state, &user, &project, &job, deployment).await?;
    let detail = format!("parallelism {from} to {} ({tasks} task(s))", body.parallelism);
    audit(&state, Some(&project), Some(&job), &user, "job.rescale", &detail).await;
    Ok(Json(RescaleAnswer { deployment, run, shards, tasks }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParametersRequest {
    #[schema(value_type = Object)]
    pub parameters: indexmap::IndexMap<String, String>,
}

#[utoipa::path(post, path = "/projects/{p}/jobs/{j}/parameters", tag = "lifecycle", request_body = ParametersRequest,
    responses((status = 200, body = ChangeAnswer)))]
pub async fn set_parameters(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Json(body): Json<ParametersRequest>,
) -> ApiResult<Json<ChangeAnswer>> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Operator).await?;
    let mut deployment = deployment_of(&state, &job).await?;
    // Names only: a parameter can be a secret, and the audit log is read
    // by every viewer of the project.
    let shown = parameter_names(&deployment.parameters, &body.parameters);
    deployment.parameters = body.parameters;
    let answer = change_deployment(&state, &user, &project, &job, deployment).await?;
    audit(&state, Some(&project), Some(&job), &user, "job.parameters", &shown).await;
    Ok(Json(answer))
}

/// What a parameter change did, by name (`set a, b; removed c`), never
/// with the values.
fn parameter_names(old: &indexmap::IndexMap<String, String>, new: &indexmap::IndexMap<String, String>) -> String {
    let set: Vec<&str> = new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, _)| k.as_str()).collect();
    let removed: Vec<&str> = old.keys().filter(|k| !new.contains_key(*k)).map(String::as_str).collect();
    let mut parts = Vec::new();
    if !set.is_empty() {
        parts.push(format!("set {}", set.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join(", ")));
    }
    if parts.is_empty() { "unchanged".to_owned() } else { parts.join("; ") }
}

/// Saves a changed deployment; a running job is stopped with a snapshot
/// and started again from it, so its state carries over.
async fn change_deployment(
    state: &AppState,
    user: &User,
    project: &Project,
    job: &Job,
    deployment: Deployment,
) -> ApiResult<ChangeAnswer> {
    let running = state.store.active_run(&job.id).await?.filter(|r| r.state != RunState::Scheduled);
    check_parallel_state(state, job, &deployment).await?;
    if running.is_some() {
        // The restart restores `latest`: refused before the job stops.
        check_state_layout(state, project, job, &deployment).await?;
        stop_job(state, job, true).await?;
    }
    state.store.put_deployment(&deployment).await?;
    let run = match running {
        Some(_) => Some(start_run(state, user, project, job, &deployment.version_id, "latest", None, None).await?),
        None => None,
    };
    Ok(ChangeAnswer { deployment, run })
}

#[utoipa::path(get, path = "/projects/{p}/jobs/{j}/runs", tag = "lifecycle", responses((status = 200, body = Vec<Run>)))]
pub async fn list_runs(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Run>>> {
    let (_, job, _) = job_access(&state, &user, &p, &j, Role::Viewer).await?;
    Ok(Json(state.store.runs(&job.id, 100).await?))
}
