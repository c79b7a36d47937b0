//! The control plane's singletons, run by the one console that holds the
//! `control` leader lease (any number of consoles may share a store): runs
//! scheduled at a time, deployments on a cron schedule, planning of
//! starting runs into tasks (one per partition group) and assignment of
//! each task to the worker with the most free slots, and takeover of tasks
//! whose worker stopped renewing its lease. Also the embedded console's
//! recovery of the runs its previous process left running.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::Worker;
use super::restore::RestoreFrom;
use crate::store::{NewRun, RunState, Store, StoreError, TaskEnded, WorkerState, now_ms};

/// The leader lease of the control plane's singletons.
const CONTROL: &str = "control";

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

/// Runs the control plane while this console leads, until the process
/// ends; `console` names this console in the leader lease.
pub async fn run(worker: Arc<Worker>, store: Store, console: String) {
    let mut last = chrono::Utc::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut leading = false;
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        match store.lead(CONTROL, &console, worker.lease_ms()).await {
            Ok(lead) => {
                if lead != leading {
                    tracing::info!(console = %console, leading = lead, "control plane leadership changed");
                    leading = lead;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "control plane: cannot renew the leader lease");
                leading = false;
            }
        }
        if leading {
            if let Err(e) = due_runs(&store).await {
                tracing::error!(error = %e, "scheduler: scheduled runs");
            }
            if let Err(e) = cron_starts(&store, last, now).await {
                tracing::error!(error = %e, "scheduler: cron schedules");
            }
            if let Err(e) = take_over_expired(&worker, &store).await {
                tracing::error!(error = %e, "control plane: takeovers");
            }
            if let Err(e) = assign(&worker, &store).await {
                tracing::error!(error = %e, "control plane: assignment");
            }
        }
        last = now;
    }
}

/// Gives the leader lease up on shutdown, so another console takes it at
/// once instead of after it expires.
pub async fn resign(store: &Store, console: &str) {
    let _ = store.resign(CONTROL, console).await;
}

/// The free slots of the live workers, read once per tick and counted
/// down as tasks are placed.
struct FreeSlots(Vec<(i64, String)>);

impl FreeSlots {
    async fn read(worker: &Worker, store: &Store) -> anyhow::Result<FreeSlots> {
        let now = store.clock_ms().await?;
        let free = store
            .workers()
            .await?
            .into_iter()
            .filter(|w| w.state == WorkerState::Up && w.heartbeat_ms >= now - worker.lease_ms())
            .map(|w| (w.slots - w.tasks, w.id))
            .collect();
        Ok(FreeSlots(free))
    }

    /// Takes a slot of the worker (other than `except`) with the most free.
    fn take(&mut self, except: Option<&str>) -> Option<String> {
        let best = self
            .0
            .iter_mut()
            .filter(|(free, id)| *free > 0 && Some(id.as_str()) != except)
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))?;
        best.0 -= 1;
        Some(best.1.clone())
    }
}

/// The live worker (other than `except`) with the most free slots.
async fn pick_worker(worker: &Worker, store: &Store, except: Option<&str>) -> anyhow::Result<Option<String>> {
    Ok(FreeSlots::read(worker, store).await?.take(except))
}

/// Plans starting runs left for assignment into shards, then hands each
/// shard no worker holds to the worker that holds the other shards of its
/// task, else to the live worker with the most free slots (so a run's
/// tasks spread over the workers).
async fn assign(worker: &Arc<Worker>, store: &Store) -> anyhow::Result<()> {
    for (run, project) in store.unplanned_runs().await? {
        plan_in_background(worker, run, project);
    }
    for (run, ended) in store.settle_runs().await? {
        ended_event(store, &run, ended).await?;
    }
    let mut free = FreeSlots::read(worker, store).await?;
    // Tasks given a worker this tick: their other shards follow.
    let mut placed: HashMap<(String, u32), String> = HashMap::new();
    for (run, group, partner) in store.unassigned_tasks().await? {
        let task = (run.id.clone(), group % run.tasks());
        let target = match placed.get(&task).cloned().or(partner) {
            Some(target) => target,
            None => match free.take(None) {
                Some(target) => target,
                None => continue, // No free slot anywhere: the shard waits.
            },
        };
        placed.insert(task, target.clone());
        if store.claim_task(&run, group, &target, None, None, worker.lease_ms()).await?.is_some() {
            wake(worker, store, &target).await?;
        }
    }
    Ok(())
}

/// Runs planned at once in the background, at most, and of one project.
const PLANNING_AT_ONCE: usize = 8;
const PLANNING_PER_PROJECT: usize = 2;

/// Plans `run` of `project` (which may wait on its tenant's Kafka cluster
/// for its partition count, up to a minute, then fails) off the control
/// plane's loop: each run once at a time, at most `PLANNING_AT_ONCE` runs
/// and `PLANNING_PER_PROJECT` of one project at once, so one tenant's
/// unreachable broker delays no other tenant's run, assignment or takeover.
fn plan_in_background(worker: &Arc<Worker>, run: crate::store::Run, project: String) {
    let guard = {
        let mut planning = worker.planning.lock().expect("planning lock");
        let of_project = planning.values().filter(|p| **p == project).count();
        if planning.len() >= PLANNING_AT_ONCE || of_project >= PLANNING_PER_PROJECT || planning.contains_key(&run.id) {
            return;
        }
        planning.insert(run.id.clone(), project);
        Planning { worker: worker.clone(), run: run.id.clone() }
    };
    tokio::spawn(async move {
        if let Err(e) = guard.worker.plan_for_assignment(&run).await {
            tracing::warn!(run = %run.id, error = %e, "cannot plan a run's tasks; trying again at the next tick");
        }
        drop(guard);
    });
}

/// A run being planned in the background; it leaves the set however the
/// planning ends (a panic too).
struct Planning {
    worker: Arc<Worker>,
    run: String,
}

impl Drop for Planning {
    fn drop(&mut self) {
        if let Ok(mut planning) = self.worker.planning.lock() {
            planning.remove(&self.run);
        }
    }
}

/// Has worker `target` read its tasks now.
async fn wake(worker: &Worker, store: &Store, target: &str) -> Result<(), StoreError> {
    if target == worker.id {
        worker.nudge.notify_one();
        Ok(())
    } else {
        store.wake_worker(target).await
    }
}

/// Tasks whose worker stopped renewing the lease: one of a stopping run
/// ends, the others move to another worker with a new epoch, to resume
/// from their group's latest snapshot; the run's other tasks go on.
async fn take_over_expired(worker: &Worker, store: &Store) -> anyhow::Result<()> {
    if store.dialect == crate::store::Dialect::Sqlite {
        // One process's store: its worker is this process (a previous
        // one's runs were recovered at start), and a wall-clock jump (a
        // suspended laptop) must not make it take its own tasks over.
        return Ok(());
    }
    for lost in store.mark_lost_workers(worker.lease_ms()).await? {
        tracing::warn!(worker = %lost, "a worker stopped heartbeating");
    }
    for lease in store.expired_tasks().await? {
        let (run, group, epoch) = (&lease.run, lease.group, lease.epoch);
        let from = lease.worker.clone().unwrap_or_default();
        if run.state == RunState::Stopping {
            let why = format!("worker {from} stopped renewing its lease while stopping task {group}");
            if let Some(TaskEnded::Run(ended)) = store.end_expired_stop(&run.id, group, epoch, &why).await? {
                ended_event(store, run, ended).await?;
            }
            continue;
        }
        // With the task's other shards, when one of them moved already.
        let target = match store.task_partner(&run.id, group, Some(&from)).await? {
            Some(partner) => Some(partner),
            None => pick_worker(worker, store, Some(&from)).await?,
        };
        if !store.take_over_task(run, group, epoch, target.as_deref(), worker.lease_ms()).await? {
            continue;
        }
        let to = match &target {
            Some(t) => format!("resumes on worker {t} from its latest snapshot"),
            None => "waits for a worker with a free slot".to_owned(),
        };
        run_event(
            store,
            &run.job_id,
            "run.takeover",
            &format!(
                "worker {from} stopped renewing its lease on shard {group} (task {} of {}) of run {} (epoch {epoch}); \
                 the shard {to}",
                group % run.tasks(),
                run.tasks(),
                run.id
            ),
        )
        .await?;
        if let Some(target) = &target {
            wake(worker, store, target).await?;
        }
    }
    Ok(())
}

/// Moves runs whose start time has come to starting, for assignment.
async fn due_runs(store: &Store) -> anyhow::Result<()> {
    for run in store.runs_in_state(RunState::Scheduled).await? {
        if run.scheduled_ms.unwrap_or(0) > now_ms() {
            continue;
        }
        // A stop may have cancelled it meanwhile.
        store.move_run(&run.id, RunState::Scheduled, RunState::Starting).await?;
    }
    Ok(())
}

/// Starts deployments whose cron schedule fired between `last` and `now`
/// (fresh state: a scheduled job is a bounded batch, as the compensation
/// jobs are), unless the job is still active.
async fn cron_starts(
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
                worker: None,
            })
            .await;
        let run = match created {
            Ok(run) => run,
            // Started meanwhile (by an operator, or another console's
            // scheduler): the store keeps one active run.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        run_event(store, &deployment.job_id, "run.cron", &format!("cron start, run {}", run.id)).await?;
    }
    Ok(())
}

/// Runs a previous process of this console left active: the running ones
/// go on in a new run from their own latest snapshots (else from what they
/// restored), as a restarted Flink cluster resumes its jobs — or with fresh
/// state when `fresh` (the embedded broker lost its topics, so old positions
/// mean nothing).
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
            // It goes on with the run's own history: each group's snapshot
            // taken since the run first started, else what the run first
            // restored (not the job's newest, which may be of a history
            // the run had left by restoring an older snapshot). A run never
            // planned stored none: it starts as it was to.
            let first = RestoreFrom::parse(run.restore_from.as_deref());
            let continued = match (fresh, run.task_groups) {
                (true, _) => "none".to_owned(),
                (false, None) => first.as_text(),
                (false, Some(_)) => first.continued(run.started_ms.unwrap_or(run.created_ms)).as_text(),
            };
            // Groups without a snapshot start where the run's did, unless
            // that was "the end now", which would skip what came since.
            let start_position = run.start_position.as_deref().filter(|p| *p != "latest");
            let mut resumed = store
                .create_run(NewRun {
                    job_id: &run.job_id,
                    version_id: &run.version_id,
                    state: RunState::Starting,
                    restore_from: Some(&continued),
                    start_position,
                    scheduled_ms: None,
                    created_by: "recovery",
                    worker: worker.takes_runs.then_some(worker.id.as_str()),
                })
                .await?;
            // It goes on in the shards and tasks of the run it resumes,
            // whatever the deployment's parallelism says now.
            if let Some(groups) = run.task_groups {
                store.set_task_groups(&resumed.id, groups, run.parallelism).await?;
                // Fresh state reads fresh repartition topics.
                let topics = if fresh { None } else { run.stage_topics.as_deref() };
                store.set_stages(&resumed.id, run.stages, topics).await?;
                resumed.task_groups = Some(groups);
                resumed.parallelism = run.parallelism;
                resumed.stages = run.stages;
                resumed.stage_topics = if fresh { None } else { run.stage_topics.clone() };
            }
            run_event(store, &run.job_id, "run.resumed", &format!("run {} resumes run {}", resumed.id, run.id)).await?;
            if worker.takes_runs
                && let Err(e) = worker.launch(resumed).await
            {
                tracing::warn!(job = %run.job_id, error = %e, "resuming a run failed");
            }
        }
    }
    Ok(())
}

/// Records that `run` ended in state `ended` (the control plane ended it).
async fn ended_event(store: &Store, run: &crate::store::Run, ended: RunState) -> Result<(), StoreError> {
    let action = format!("run.{}", ended.as_str());
    run_event(store, &run.job_id, &action, &format!("run {} {}", run.id, ended.as_str())).await
}

/// Records a run event of job `job_id` (its project found by the store).
async fn run_event(store: &Store, job_id: &str, action: &str, detail: &str) -> Result<(), StoreError> {
    store.record_event(None, Some(job_id), "run", None, action, detail).await
}
