//! Starts that happen later: runs scheduled at a time, deployments on a
//! cron schedule, and runs a previous process left running (resumed from
//! their latest snapshot when the console starts again).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::Worker;
use crate::store::{NewRun, RunState, Store, StoreError, now_ms};

/// Parses a cron expression the way schedules use it, with a message that
/// says what a valid one looks like.
pub fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(text.trim()).map_err(|e| {
        format!(
            "schedule `{text}` is not a cron expression ({e}); use six or seven fields with seconds first, \
             e.g. `0 0 2 * * *` for daily at 02:00"
        )
    })
}

/// Runs the scheduler until the process ends.
pub async fn run(worker: Arc<Worker>, store: Store) {
    let mut last = chrono::Utc::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        if let Err(e) = due_runs(&worker, &store).await {
            tracing::error!(error = %e, "scheduler: scheduled runs");
        }
        if let Err(e) = cron_starts(&worker, &store, last, now).await {
            tracing::error!(error = %e, "scheduler: cron schedules");
        }
        last = now;
    }
}

/// Launches runs whose start time has come.
async fn due_runs(worker: &Arc<Worker>, store: &Store) -> anyhow::Result<()> {
    for run in store.runs_in_state(RunState::Scheduled).await? {
        if run.scheduled_ms.unwrap_or(0) > now_ms() {
            continue;
        }
        // Another console's scheduler, or a stop, may have taken it.
        if !store.move_run(&run.id, RunState::Scheduled, RunState::Starting).await? {
            continue;
        }
        let id = run.id.clone();
        if let Err(e) = worker.launch(run).await {
            tracing::warn!(run = %id, error = %e, "scheduled start failed");
        }
    }
    Ok(())
}

/// Starts deployments whose cron schedule fired between `last` and `now`
/// (fresh state: a scheduled job is a bounded batch, as the compensation
/// jobs are), unless the job is still active.
async fn cron_starts(
    worker: &Arc<Worker>,
    store: &Store,
    last: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    for deployment in store.scheduled_deployments().await? {
        let Some(Ok(schedule)) = deployment.schedule.as_deref().map(parse_cron) else { continue };
        let fired = schedule.after(&last).next().is_some_and(|t| t <= now);
        if !fired || store.active_run(&deployment.job_id).await?.is_some() {
            continue;
        }
        let created = store
            .create_run(NewRun {
                job_id: &deployment.job_id,
                version_id: &deployment.version_id,
                state: RunState::Starting,
                restore_from: Some("none"),
                start_position: None,
                scheduled_ms: Some(now.timestamp_millis()),
                created_by: "schedule",
            })
            .await;
        let run = match created {
            Ok(run) => run,
            // Started meanwhile (by an operator, or another console's
            // scheduler): the store keeps one active run.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        store
            .record_event(
                None,
                Some(&deployment.job_id),
                "run",
                None,
                "run.cron",
                &format!("cron start, run {}", run.id),
            )
            .await?;
        if let Err(e) = worker.launch(run).await {
            tracing::warn!(job = %deployment.job_id, error = %e, "cron start failed");
        }
    }
    Ok(())
}

/// Runs a previous process of this console left active: the running ones
/// are resumed from their latest snapshot in a new run, as a restarted
/// Flink cluster resumes its jobs — or with fresh state when `fresh` (the
/// embedded broker lost its topics, so old positions mean nothing).
pub async fn recover(worker: &Arc<Worker>, store: &Store, fresh: bool) -> anyhow::Result<()> {
    for state in [RunState::Starting, RunState::Running, RunState::Stopping] {
        for run in store.runs_in_state(state).await? {
            if worker.running(&run.job_id).is_some() {
                continue;
            }
            let ended = if state == RunState::Stopping { RunState::Stopped } else { RunState::Failed };
            store.set_run_state(&run.id, ended, Some("the worker running it exited")).await?;
            if state == RunState::Stopping {
                continue;
            }
            let resumed = store
                .create_run(NewRun {
                    job_id: &run.job_id,
                    version_id: &run.version_id,
                    state: RunState::Starting,
                    restore_from: Some(if fresh { "none" } else { "latest" }),
                    start_position: None,
                    scheduled_ms: None,
                    created_by: "recovery",
                })
                .await?;
            store
                .record_event(
                    None,
                    Some(&run.job_id),
                    "run",
                    None,
                    "run.resumed",
                    &format!("run {} resumes run {}", resumed.id, run.id),
                )
                .await?;
            if let Err(e) = worker.launch(resumed).await {
                tracing::warn!(job = %run.job_id, error = %e, "resuming a run failed");
            }
        }
    }
    Ok(())
}
