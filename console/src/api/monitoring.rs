//! Monitoring: a job's counters and charts, its exceptions and logs,
//! health endpoints and the Prometheus exposition.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{ApiError, ApiResult, AppState, Json, Query, job_access};
use crate::auth::{CurrentUser, Role};
use crate::store::{Event, EventFilter};
use crate::worker::live::HISTORY_POINTS;
use crate::worker::{LiveStatus, Series, Totals};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MetricsQuery {
    /// How far back the charts go, seconds (at most 600).
    pub seconds: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MetricsAnswer {
    /// State of the latest run.
    pub state: String,
    pub run_id: Option<String>,
    pub totals: Totals,
    pub series: Series,
    pub tasks: Vec<crate::worker::TaskStatus>,
}

#[utoipa::path(get, path = "/projects/{p}/jobs/{j}/metrics", tag = "monitoring", params(MetricsQuery),
    responses((status = 200, body = MetricsAnswer)))]
pub async fn job_metrics(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<Json<MetricsAnswer>> {
    let (_, job, _) = job_access(&state, &user, &p, &j, Role::Viewer).await?;
    let latest = state.store.runs(&job.id, 1).await?.into_iter().next();
    // The charts when every task of the run is here; else the reports of
    // the workers holding its tasks.
    let live = state
        .worker
        .running(&job.id)
        .filter(|r| r.groups().len() as u32 == r.run_groups())
        .and_then(|_| state.worker.status(&job.id, q.seconds.unwrap_or(300).min(HISTORY_POINTS)));
    let remote = if live.is_none() { remote_report(&state, latest.as_ref()).await } else { None };
    let answer = match (live, remote) {
        (Some(LiveStatus { run_id, totals, series, tasks }), _) => MetricsAnswer {
            state: latest.map_or("running".into(), |r| r.state.as_str().to_owned()),
            run_id: Some(run_id),
            totals,
            series,
            tasks,
        },
        // Held by a worker in another process: what it last reported.
        (None, Some((run, report))) => MetricsAnswer {
            state: run.state.as_str().to_owned(),
            run_id: Some(run.id.clone()),
            totals: report.totals,
            series: Series::default(),
            tasks: report.tasks,
        },
        (None, None) => MetricsAnswer {
            state: latest.as_ref().map_or("new".into(), |r| r.state.as_str().to_owned()),
            run_id: latest.map(|r| r.id),
            totals: Totals::default(),
            series: Series::default(),
            tasks: Vec::new(),
        },
    };
    Ok(Json(answer))
}

/// The active run `latest` with what the workers holding its tasks last
/// reported of it (a run on other processes, or spread over several).
async fn remote_report(
    state: &AppState,
    latest: Option<&crate::store::Run>,
) -> Option<(crate::store::Run, crate::worker::lease::RunReport)> {
    let run = latest.filter(|r| r.state.is_active())?;
    let holders: std::collections::BTreeSet<String> =
        state.store.run_tasks(&run.id).await.ok()?.into_iter().filter_map(|t| t.worker).collect();
    let mut merged: Option<crate::worker::lease::RunReport> = None;
    for worker in holders {
        let Some(report) = super::workers::reported(state, &run.id, &worker).await else { continue };
        merged = Some(match merged {
            None => report,
            Some(mut all) => {
                all.totals = all.totals.plus(&report.totals);
                all.tasks.extend(report.tasks);
                all.epoch = all.epoch.max(report.epoch);
                all
            }
        });
    }
    let mut report = merged?;
    report.tasks.sort_by_key(|t| (t.task, t.shard));
    Some((run.clone(), report))
}

/// Dead letters the exceptions view shows (the newest).
const DEAD_LETTERS_SHOWN: i64 = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionsAnswer {
    /// Failures and restarts, newest first.
    pub errors: Vec<Event>,
    /// The job's newest dead letters (reason, source, partition, offset,
    /// value; `sink` and `row_id` for rows a sink refused), newest first,
    /// kept in the metadata store across runs and restarts.
    #[schema(value_type = Vec<Object>)]
    pub dead_letters: Vec<serde_json::Value>,
    /// Dead letters the store holds for the job.
    pub dead_letters_kept: i64,
    /// Dead letters dropped (the oldest first) because the job had more
    /// than the operator's bound (`--dead-letters-kept`).
    pub dead_letters_dropped: i64,
}

#[utoipa::path(get, path = "/projects/{p}/jobs/{j}/exceptions", tag = "monitoring", responses((status = 200, body = ExceptionsAnswer)))]
pub async fn exceptions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
) -> ApiResult<Json<ExceptionsAnswer>> {
    let (project, job, _) = job_access(&state, &user, &p, &j, Role::Viewer).await?;
    let errors = state
        .store
        .events(EventFilter { project_id: Some(&project.id), job_id: Some(&job.id), kind: Some("error"), limit: 100 })
        .await?;
    let dead_letters = state.store.dead_letters(&job.id, DEAD_LETTERS_SHOWN).await?;
    let (dead_letters_kept, dead_letters_dropped) = state.store.dead_letter_counts(&job.id).await?;
    Ok(Json(ExceptionsAnswer { errors, dead_letters, dead_letters_kept, dead_letters_dropped }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

#[utoipa::path(get, path = "/projects/{p}/jobs/{j}/logs", tag = "monitoring", responses((status = 200, body = Vec<LogEntry>)))]
pub async fn logs(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, j)): Path<(String, String)>,
) -> ApiResult<Json<Vec<LogEntry>>> {
    let (_, job, _) = job_access(&state, &user, &p, &j, Role::Viewer).await?;
    Ok(Json(state.worker.logs(&job.id).into_iter().map(|(level, message)| LogEntry { level, message }).collect()))
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the metadata store answers. The database's own error (which
/// can name hosts, users and files) goes to the log, not to the caller.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query("select 1").execute(&state.store.pool).await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the metadata store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "metadata store unreachable; the server log has the details")
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    project: String,
    job: String,
}

/// Who may read `/metrics`, which names every project and job: Prometheus
/// with the operator's scrape token (`--metrics-token`), or a signed-in
/// global admin.
async fn may_read_metrics(state: &AppState, parts: &mut axum::http::request::Parts) -> ApiResult<()> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let (Some(expected), Some(given)) = (state.guards.settings.metrics_token.as_deref(), bearer) {
        // Compared as digests, so the time taken says nothing of the token.
        if Sha256::digest(expected.as_bytes()) == Sha256::digest(given.as_bytes()) {
            return Ok(());
        }
    }
    let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
    if user.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "`/metrics` is for Prometheus (with the scrape token of `--metrics-token`) and global admins".into(),
        ))
    }
}

/// The Prometheus text exposition of every running job's counters.
pub async fn prometheus(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let (mut parts, _) = request.into_parts();
    if let Err(e) = may_read_metrics(&state, &mut parts).await {
        return e.into_response();
    }
    let mut registry = Registry::with_prefix("sluice");
    let gauges = [
        ("records_in", "Records read since the run started"),
        ("records_out", "Rows emitted since the run started"),
        ("dead_letters", "Records sent to the dead-letter output"),
        ("snapshots", "Snapshots taken by the run"),
        ("consumer_lag", "Records behind the end of the sources"),
        ("last_snapshot_ms", "Duration of the last snapshot, ms"),
        ("last_snapshot_bytes", "Size of the last snapshot, bytes"),
        ("batch_latency_us", "Processing time of the last batch, microseconds"),
        ("dead_letters_dropped", "Dead letters dropped from the metadata store over the per-job bound"),
        ("replays_dropped", "Records dedup_by_row_id sources dropped as rows of an upstream job applied before"),
    ]
    .map(|(name, help)| {
        let family = Family::<JobLabels, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    });
    for (job_id, totals, metrics) in state.worker.all_totals() {
        let Ok(Some(job)) = state.store.job_by_id(&job_id).await else { continue };
        let project = match state.store.project_by_id(&job.project_id).await {
            Ok(Some(p)) => p.name,
            _ => continue,
        };
        let labels = JobLabels { project, job: job.name };
        use std::sync::atomic::Ordering::Relaxed;
        let max = |f: fn(&sluice_runtime::metrics::TaskMetrics) -> u64| metrics.iter().map(|m| f(m)).max().unwrap_or(0);
        let values = [
            totals.records_in as i64,
            totals.records_out as i64,
            totals.dead_letters as i64,
            totals.snapshots as i64,
            totals.lag.unwrap_or(-1),
            max(|m| m.last_snapshot_ms.load(Relaxed)) as i64,
            metrics.iter().map(|m| m.last_snapshot_bytes.load(Relaxed)).sum::<u64>() as i64,
            max(|m| m.last_batch_latency_us.load(Relaxed)) as i64,
            state.store.dead_letter_counts(&job_id).await.map_or(0, |(_, dropped)| dropped),
            metrics.iter().map(|m| m.replays_dropped.load(Relaxed)).sum::<u64>() as i64,
        ];
        for (family, value) in gauges.iter().zip(values) {
            family.get_or_create(&labels).set(value);
        }
    }
    if let Err(e) = worker_metrics(&state, &mut registry).await {
        return ApiError::from(e).into_response();
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        return ApiError::Internal(anyhow::anyhow!("encoding the metrics: {e}")).into_response();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
    state: String,
}

/// Per-worker series from the workers' heartbeats: every console shows all
/// workers, so any console can be scraped.
async fn worker_metrics(state: &AppState, registry: &mut Registry) -> Result<(), crate::store::StoreError> {
    let families = [
        ("worker_heartbeat_age_seconds", "Seconds since the worker's last heartbeat"),
        ("worker_slots", "Tasks the worker may hold"),
        ("worker_tasks", "Tasks of runs the worker holds (a task is one or more shards of a run)"),
        ("worker_runs", "Runs the worker holds tasks of"),
        ("worker_records_in", "Records read by the runs the worker holds"),
        ("worker_records_out", "Rows emitted by the runs the worker holds"),
    ]
    .map(|(name, help)| {
        let family = Family::<WorkerLabels, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    });
    let now = state.store.clock_ms().await?;
    for worker in state.store.workers().await? {
        let reports: Vec<crate::worker::lease::RunReport> =
            serde_json::from_value(worker.status.clone()).unwrap_or_default();
        let labels = WorkerLabels { worker: worker.id.clone(), state: worker.state.as_str().to_owned() };
        let values = [
            (now - worker.heartbeat_ms).max(0) / 1000,
            worker.slots,
            worker.tasks,
            worker.runs,
            reports.iter().map(|r| r.totals.records_in as i64).sum(),
            reports.iter().map(|r| r.totals.records_out as i64).sum(),
        ];
        for (family, value) in families.iter().zip(values) {
            family.get_or_create(&labels).set(value);
        }
    }
    Ok(())
}
