//! The worker: runs deployed jobs as runtime tasks in this process — one
//! task per partition group — and answers the console's control requests
//! (stop, snapshot now) and monitoring reads.
//!
//! A run goes starting → running → stopped | finished | failed. A task that
//! fails is restarted from the job's latest snapshot with back-off (1 s,
//! 2 s, 4 s …) up to `MAX_RESTARTS` times before the run fails, as Flink's
//! fixed-delay restart strategy does.

mod debug;
mod error;
#[cfg(test)]
mod fuzz_plan;
pub mod lease;
pub mod live;
pub mod plan;
mod quota;
pub mod restore;
pub mod scheduler;
mod threads;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_runtime::job::task::TaskCommand;
use sluice_runtime::job::{Ceilings, LeaseGate, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::snapshot::{FencedSnapshots, Snapshot, SnapshotError, SnapshotMeta, SnapshotStore};
use sluice_runtime::wasm::{JobEngine, LoadedComponent};
use tokio::sync::{mpsc, oneshot, watch};

pub use debug::{DebugInput, DebugOutput, DebugRow};
pub use error::{WorkerError, WorkerResult};
use live::History;
pub use live::{DeadLetterCapture, Series, Totals};
use plan::StartPosition;
pub use quota::{DebugSlot, Quota, Usage};
use restore::RestoreFrom;
use threads::JobThreads;

use crate::store::{Deployment, Job, Project, Run, RunState, Store, now_ms};

/// Restarts of a failing run before it is given up.
const MAX_RESTARTS: u32 = 3;
/// How long a stop may take before it is reported as stuck.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Worker {
    /// Names this worker in runs and task listings.
    pub id: String,
    data_dir: PathBuf,
    /// Where the projects' connections may point.
    pub rules: plan::PlatformRules,
    /// What a deployment's spec may ask for.
    pub ceilings: Ceilings,
    /// Dead letters kept per job in the metadata store.
    pub dead_letters_kept: usize,
    /// The quota of a project without its own.
    pub quotas: Quota,
    debug_runs: quota::DebugRuns,
    /// Where jobs run, apart from the console's threads.
    threads: JobThreads,
    engine: JobEngine,
    store: Store,
    pub snapshots: Arc<dyn SnapshotStore>,
    running: Mutex<HashMap<String, Arc<RunningJob>>>,
    /// Whether this worker takes runs (`sluice serve --workers 0` keeps
    /// one only for uploads, debug runs and previews).
    pub takes_runs: bool,
    /// Runs it holds at once.
    pub slots: u32,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Runs being launched now (by the API or by the lease loop).
    launching: Mutex<HashSet<String>>,
    /// Wakes the lease loop early (a run was assigned to this worker).
    pub nudge: tokio::sync::Notify,
    /// Set on SIGTERM: runs stop with a snapshot and are handed over.
    draining: AtomicBool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A job this worker runs now.
pub struct RunningJob {
    pub run_id: String,
    pub job_id: String,
    /// Snapshot keys of the partition groups.
    pub keys: Vec<String>,
    tasks: Mutex<Vec<TaskSlot>>,
    history: Mutex<History>,
    pub dead_letters: DeadLetterCapture,
    /// Turns true when the run has ended.
    done: watch::Receiver<bool>,
    stopping: AtomicBool,
    /// The run's lease epoch this worker holds it at.
    pub epoch: i64,
    /// Closed when the lease is lost: the tasks write nothing more.
    gate: Arc<LeaseGate>,
    /// Stopped to be handed to another worker (a drain), not ended.
    handing_over: AtomicBool,
    /// What the run first restored (kept when it moves on).
    restore: RestoreFrom,
    /// A console's snapshot request being answered.
    snapshot_busy: AtomicBool,
}

struct TaskSlot {
    control: mpsc::Sender<TaskCommand>,
    metrics: Arc<TaskMetrics>,
}

impl RunningJob {
    fn metrics(&self) -> Vec<Arc<TaskMetrics>> {
        self.tasks.lock().expect("tasks lock").iter().map(|t| t.metrics.clone()).collect()
    }

    fn controls(&self) -> Vec<mpsc::Sender<TaskCommand>> {
        self.tasks.lock().expect("tasks lock").iter().map(|t| t.control.clone()).collect()
    }
}

/// A running job's status for the console.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LiveStatus {
    pub run_id: String,
    pub totals: Totals,
    pub series: Series,
    pub tasks: Vec<TaskStatus>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TaskStatus {
    /// Partition group index.
    pub task: usize,
    pub key: String,
    pub worker: String,
    pub records_in: u64,
    pub records_out: u64,
}

/// The operator's settings of a worker.
#[derive(Debug)]
pub struct WorkerOptions {
    /// Where the projects' connections may point.
    pub rules: plan::PlatformRules,
    /// What a deployment's spec may ask for (`--max-*`).
    pub ceilings: Ceilings,
    /// Dead letters kept per job (`--dead-letters-kept`); older ones are
    /// dropped, and counted.
    pub dead_letters_kept: usize,
    /// The quota of a project without its own (`--project-max-*`).
    pub quotas: Quota,
    /// The name it registers under (default `HOST:PID`).
    pub name: Option<String>,
    /// Whether it takes runs at all.
    pub takes_runs: bool,
    /// Runs it holds at once.
    pub slots: u32,
    /// Lease time (heartbeats every third of it).
    pub lease: Duration,
}

/// Lease time unless the operator says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// Dead letters kept per job unless the operator says otherwise.
pub const DEAD_LETTERS_KEPT: usize = 10_000;

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            rules: plan::PlatformRules::default(),
            ceilings: Ceilings::default(),
            dead_letters_kept: DEAD_LETTERS_KEPT,
            quotas: Quota::default(),
            name: None,
            takes_runs: true,
            slots: 16,
            lease: DEFAULT_LEASE,
        }
    }
}

/// Everything a launch needs, read from the metadata store.
struct LaunchPlan {
    run: Run,
    project: Project,
    job: Job,
    deployment: Deployment,
    component: LoadedComponent,
    groups: u32,
}

impl Worker {
    pub fn new(
        store: Store,
        snapshots: Arc<dyn SnapshotStore>,
        data_dir: PathBuf,
        options: WorkerOptions,
    ) -> anyhow::Result<Arc<Worker>> {
        let engine = JobEngine::new(Some(data_dir.join("cache")))?;
        let WorkerOptions { rules, ceilings, dead_letters_kept, quotas, name, takes_runs, slots, lease } = options;
        let id = name.unwrap_or_else(|| format!("{}:{}", hostname(), std::process::id()));
        Ok(Arc::new(Worker {
            id,
            data_dir,
            rules,
            ceilings,
            threads: JobThreads::new()?,
            dead_letters_kept: dead_letters_kept.max(1),
            quotas,
            debug_runs: Default::default(),
            engine,
            store,
            snapshots,
            running: Mutex::new(HashMap::new()),
            takes_runs,
            slots: slots.max(1),
            lease: lease.max(Duration::from_millis(300)),
            launching: Mutex::new(HashSet::new()),
            nudge: tokio::sync::Notify::new(),
            draining: AtomicBool::new(false),
        }))
    }

    /// The lease time in milliseconds (as the store measures it).
    pub fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    /// How long after a renewal was sent the tasks may still write: short
    /// of the lease, so they stop before anyone else can take over.
    fn write_window(&self) -> Duration {
        self.lease * 3 / 4
    }

    /// The rules `project`'s connections are held to.
    pub fn connection_policy(&self, project: &str) -> sluice_runtime::connections::ConnectionPolicy {
        self.rules.policy(&self.data_dir, project)
    }

    /// `project`'s stored connections as a runtime registry, with its policy.
    pub fn project_connections(
        &self,
        project: &str,
        stored: &[crate::store::Connection],
    ) -> WorkerResult<sluice_runtime::connections::Connections> {
        plan::connections(stored, self.connection_policy(project)).map_err(WorkerError::Invalid)
    }

    pub fn engine(&self) -> &JobEngine {
        &self.engine
    }

    /// Loads and validates a component (cached by content hash).
    pub async fn load(&self, bytes: &[u8]) -> WorkerResult<LoadedComponent> {
        self.engine.load(bytes).await.map_err(|e| WorkerError::Invalid(e.to_string()))
    }

    pub fn running(&self, job_id: &str) -> Option<Arc<RunningJob>> {
        self.running.lock().expect("running lock").get(job_id).cloned()
    }

    /// Starts `run` (in state starting): builds its tasks — so a bad spec,
    /// connection or snapshot is reported to the caller — then runs them in
    /// the background. On error the run is marked failed.
    /// The run must be held by this worker (created for it, assigned to it
    /// or left by its previous process): the launch claims the lease with a
    /// new epoch first.
    pub async fn launch(self: &Arc<Self>, run: Run) -> WorkerResult<()> {
        let run_id = run.id.clone();
        if !self.launching.lock().expect("launching lock").insert(run_id.clone()) {
            return Err(WorkerError::Conflict(format!("run {run_id} is being launched already")));
        }
        let renewed_at = Instant::now();
        let result = match self.store.claim_run(&run.id, &self.id, Some(&self.id), None, self.lease_ms()).await {
            Ok(Some(epoch)) => {
                // SQLite is one process's store: no other worker can take
                // the run over, so nothing needs fencing off.
                let gate = Arc::new(if self.store.dialect == crate::store::Dialect::Sqlite {
                    LeaseGate::unbounded()
                } else {
                    LeaseGate::until(renewed_at, self.write_window())
                });
                let result = self.try_launch(run, epoch, gate).await;
                if let Err(e) = &result {
                    let message = e.for_tenant();
                    let _ = self.store.set_run_state_as(&run_id, epoch, RunState::Failed, Some(&message)).await;
                }
                result
            }
            Ok(None) => Err(WorkerError::Conflict(format!("run {run_id} is held by another worker now"))),
            Err(e) => Err(e.into()),
        };
        self.launching.lock().expect("launching lock").remove(&run_id);
        result
    }

    /// Whether run `run_id` is running or being launched here.
    pub fn holds(&self, run_id: &str) -> bool {
        self.launching.lock().expect("launching lock").contains(run_id)
            || self.running.lock().expect("running lock").values().any(|r| r.run_id == run_id)
    }

    async fn try_launch(self: &Arc<Self>, run: Run, epoch: i64, gate: Arc<LeaseGate>) -> WorkerResult<()> {
        let plan = self.plan(run).await?;
        if self.running(&plan.job.id).is_some() {
            return Err(WorkerError::Conflict(format!("job `{}` is already running", plan.job.name)));
        }
        self.check_quota(&plan.project, &plan.run, &plan.deployment).await?;
        let restore = RestoreFrom::parse(plan.run.restore_from.as_deref());
        if plan.run.task_groups.is_none() {
            if restore == RestoreFrom::Latest {
                self.check_state_parallelism(&plan.project.name, &plan.job, plan.groups, Some(&plan.run.id)).await?;
            }
            self.store.set_task_groups(&plan.run.id, i64::from(plan.groups)).await?;
        }
        let keys: Vec<String> =
            (0..plan.groups).map(|g| plan::snapshot_key(&plan.project.name, &plan.job.name, g, plan.groups)).collect();
        // Before anything is restored: from here on an older owner's
        // snapshot writes are refused (or were stored before, and restored).
        for key in &keys {
            self.snapshots.raise_fence(key, epoch as u64).await?;
        }
        let dead_letters =
            DeadLetterCapture::new(self.store.clone(), &plan.job.id, &plan.run.id, self.dead_letters_kept);
        let lease = TaskLease { epoch, gate: gate.clone() };
        let slots = self.start_tasks(&plan, &keys, &restore, &dead_letters, &lease).await?;
        let (done_tx, done_rx) = watch::channel(false);
        let running = Arc::new(RunningJob {
            run_id: plan.run.id.clone(),
            job_id: plan.job.id.clone(),
            keys: keys.clone(),
            tasks: Mutex::new(
                slots
                    .iter()
                    .map(|(s, _)| TaskSlot { control: s.control.clone(), metrics: s.metrics.clone() })
                    .collect(),
            ),
            history: Mutex::new(History::default()),
            dead_letters,
            done: done_rx,
            stopping: false.into(),
            epoch,
            gate,
            handing_over: false.into(),
            restore,
            snapshot_busy: false.into(),
        });
        self.running.lock().expect("running lock").insert(plan.job.id.clone(), running.clone());
        if !self.store.set_run_state_as(&plan.run.id, epoch, RunState::Running, None).await? {
            running.gate.revoke();
            for control in running.controls() {
                let _ = control.try_send(TaskCommand::Stop { snapshot: false });
            }
        }
        self.event(
            &plan,
            "run",
            "run.started",
            &format!("run {} on {} ({} task(s), lease epoch {epoch})", plan.run.id, self.id, plan.groups),
        )
        .await;
        let handles = slots.into_iter().map(|(_, h)| h).collect();
        let worker = self.clone();
        tokio::spawn(async move {
            worker.supervise(plan, keys, running, handles).await;
            let _ = done_tx.send(true);
        });
        Ok(())
    }

    async fn plan(&self, run: Run) -> WorkerResult<LaunchPlan> {
        let gone = |what: &str| WorkerError::Gone(format!("the {what} was deleted"));
        let job = self.store.job_by_id(&run.job_id).await?.ok_or_else(|| gone("job"))?;
        let project = self.store.project_by_id(&job.project_id).await?.ok_or_else(|| gone("project"))?;
        let deployment = self.store.deployment(&job.id).await?.ok_or_else(|| {
            WorkerError::Invalid(format!("job `{}` has no deployment yet: save one (version and spec) first", job.name))
        })?;
        let version = self.store.version(&run.version_id).await?.ok_or_else(|| gone("version"))?;
        let bytes = self.store.component(&version.hash).await?.ok_or_else(|| gone("component"))?;
        let component = self.load(&bytes).await?;
        // A run keeps the groups it was first launched with.
        let groups = run.task_groups.unwrap_or(deployment.parallelism).clamp(1, 64) as u32;
        Ok(LaunchPlan { run, project, job, deployment, component, groups })
    }

    /// Refuses to restore `latest` at `groups` partition groups when the
    /// job's state was kept at another parallelism (by its runs before
    /// `except`): its snapshots are per partition group, and state does not
    /// move between groups, so the run would start from empty state
    /// without a word.
    pub async fn check_state_parallelism(
        &self,
        project: &str,
        job: &Job,
        groups: u32,
        except: Option<&str>,
    ) -> WorkerResult<()> {
        let Some(before) = self.store.last_task_groups(&job.id, except.unwrap_or("")).await? else { return Ok(()) };
        let before = before.clamp(1, 64) as u32;
        if before == groups {
            return Ok(());
        }
        let kept = plan::snapshot_key(project, &job.name, 0, before);
        if self.snapshots.list(&kept).await?.is_empty() {
            return Ok(());
        }
        Err(WorkerError::Invalid(format!(
            "job `{}` keeps its state in snapshots taken at parallelism {before}, which parallelism {groups} cannot \
             restore: state does not move between partition groups yet. Set the deployment's parallelism back to \
             {before}, or start with restore `none` to begin from empty state",
            job.name
        )))
    }

    /// Builds and spawns one task per partition group, on the job threads.
    async fn start_tasks(
        self: &Arc<Self>,
        plan: &LaunchPlan,
        keys: &[String],
        restore: &RestoreFrom,
        dead_letters: &DeadLetterCapture,
        lease: &TaskLease,
    ) -> WorkerResult<Vec<(TaskSlot, TaskHandle)>> {
        let start = match &plan.run.start_position {
            Some(text) => Some(StartPosition::parse(text).map_err(WorkerError::Invalid)?),
            None => None,
        };
        let stored = self.store.connections(&plan.project.id).await?;
        let base_dir = plan::project_files(&self.data_dir, &plan.project.name);
        let mut built = Vec::new();
        for (group, key) in keys.iter().enumerate() {
            let spec =
                plan::job_spec(&plan.deployment, key, start.as_ref(), &base_dir).map_err(WorkerError::Invalid)?;
            self.ceilings.check(&spec).map_err(|e| WorkerError::Invalid(e.to_string()))?;
            let connections = self.project_connections(&plan.project.name, &stored)?;
            let first_started = plan.run.started_ms.unwrap_or(plan.run.created_ms);
            let snapshot = self.snapshot_to_restore(key, restore, keys.len(), first_started).await?;
            let snapshots: Arc<dyn SnapshotStore> =
                Arc::new(FencedSnapshots::new(self.snapshots.clone(), lease.epoch as u64));
            let (gate, epoch) = (lease.gate.clone(), lease.epoch as u64);
            // One dimension fence per job: all its groups hold this epoch.
            let fence_job = plan::snapshot_key(&plan.project.name, &plan.job.name, 0, 1);
            let metrics = Arc::new(TaskMetrics::default());
            let (worker, component, dead_letters) = (self.clone(), plan.component.clone(), dead_letters.clone());
            let groups = keys.len() as u32;
            let task_metrics = metrics.clone();
            // Connectors and the guest's `open` run on the job threads too:
            // what they connect to belongs to those threads' runtime.
            let build = async move {
                let declared_dead_letter = match &spec.dead_letter {
                    Some(dead) => {
                        let mut cx = sluice_runtime::connectors::registry::BuildContext::new(&spec, &connections);
                        cx.restore = snapshot.as_ref();
                        Some(
                            sluice_runtime::connectors::registry::build_sink(cx, "dead_letter", dead)
                                .await
                                .map_err(|e| e.to_string())?,
                        )
                    }
                    None => None,
                };
                let mut builder = TaskBuilder::new(&spec)
                    .connections(connections)
                    .metrics(task_metrics)
                    .snapshots(snapshots)
                    .lease(gate)
                    .lease_epoch(epoch, &fence_job)
                    .dead_letter(dead_letters.sink(declared_dead_letter))
                    .partition_group(group as u32, groups);
                if let Some(snapshot) = snapshot {
                    builder = builder.restore(snapshot);
                }
                builder.build(&worker.engine, &component).await.map_err(|e| e.to_string())
            };
            let task = self.threads.run(build).await?.map_err(WorkerError::Task)?;
            let (control, rx) = mpsc::channel(8);
            let handle =
                self.threads.handle().spawn(async move { task.run_controlled(rx).await.map_err(WorkerError::task) });
            built.push((TaskSlot { control, metrics }, handle));
        }
        Ok(built)
    }

    /// What group `key` restores; `first_started` is when the run first
    /// started (a resumed run takes its own snapshots from then on).
    async fn snapshot_to_restore(
        &self,
        key: &str,
        restore: &RestoreFrom,
        groups: usize,
        first_started: i64,
    ) -> WorkerResult<Option<Snapshot>> {
        match restore {
            RestoreFrom::None => Ok(None),
            RestoreFrom::Latest => Ok(self.snapshots.latest(key).await?),
            RestoreFrom::Resume(first) => {
                // Snapshot ids begin with their time (ms, 13 digits).
                let since = format!("{:013}", first_started.max(0));
                let ids = self.snapshots.list(key).await?;
                for id in ids.iter().rev().filter(|id| id.as_str() >= since.as_str()) {
                    match self.snapshots.load(key, id).await {
                        Ok(snapshot) => return Ok(Some(snapshot)),
                        Err(e) => {
                            tracing::warn!(key, snapshot = %id, "skipping a snapshot that cannot be restored: {e}")
                        }
                    }
                }
                Box::pin(self.snapshot_to_restore(key, first, groups, first_started)).await
            }
            RestoreFrom::Snapshot(_) if groups > 1 => Err(WorkerError::Invalid(
                "restoring a chosen snapshot needs parallelism 1; with several partition groups restore `latest`"
                    .into(),
            )),
            RestoreFrom::Snapshot(id) => {
                let ids = self.snapshots.list(key).await?;
                if !ids.contains(id) {
                    return Err(WorkerError::Invalid(format!(
                        "snapshot `{id}` is not a snapshot of this job; pick one from its snapshot list"
                    )));
                }
                match self.snapshots.load(key, id).await {
                    Ok(snapshot) => Ok(Some(snapshot)),
                    // A damaged or expired snapshot is the tenant's to know
                    // about (pick another).
                    Err(e @ (SnapshotError::Corrupt { .. } | SnapshotError::NotFound { .. })) => {
                        Err(WorkerError::Invalid(e.to_string()))
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Waits for the run's tasks; restarts failed ones from the latest
    /// snapshot with back-off; records how the run ended.
    async fn supervise(
        self: Arc<Self>,
        plan: LaunchPlan,
        keys: Vec<String>,
        running: Arc<RunningJob>,
        mut handles: Vec<TaskHandle>,
    ) {
        let sampler = tokio::spawn(sample(running.clone()));
        let mut restarts = 0;
        let outcome = loop {
            let mut error = None;
            let mut all_finished = true;
            let mut pending = handles;
            while !pending.is_empty() {
                let (result, _, rest) = futures::future::select_all(pending).await;
                pending = rest;
                match result.map_err(|e| WorkerError::Task(format!("task panicked: {e}"))).and_then(|r| r) {
                    Ok(TaskEnd::Finished) => {}
                    Ok(TaskEnd::Stopped) => all_finished = false,
                    Err(e) => {
                        all_finished = false;
                        if error.is_none() {
                            // One failed: the others stop too (global failover).
                            for control in running.controls() {
                                let _ = control.try_send(TaskCommand::Stop { snapshot: false });
                            }
                            error = Some(e);
                        }
                    }
                }
            }
            let stopping = running.stopping.load(Ordering::SeqCst);
            if !running.gate.is_open() {
                // The lease is gone: whatever ended the tasks, this worker
                // writes nothing more about the run (the new owner does).
                tracing::info!(run = %plan.run.id, ended = ?error, "the run's tasks ended after its lease was lost");
                break (RunState::Running, Some(LEASE_LOST.to_owned()));
            }
            match error {
                Some(e) if !stopping && restarts < MAX_RESTARTS => {
                    restarts += 1;
                    let delay = Duration::from_secs(1 << (restarts - 1));
                    self.event(&plan, "error", "run.task_failed", &format!("{e}; restarting from the latest snapshot in {delay:?} (restart {restarts} of {MAX_RESTARTS})")).await;
                    tokio::time::sleep(delay).await;
                    if running.stopping.load(Ordering::SeqCst) {
                        // Stopped while waiting to restart.
                        break (RunState::Stopped, None);
                    }
                    let lease = TaskLease { epoch: running.epoch, gate: running.gate.clone() };
                    let resume = running.restore.clone().resumed();
                    match self.start_tasks(&plan, &keys, &resume, &running.dead_letters, &lease).await {
                        Ok(slots) => {
                            let mut tasks = running.tasks.lock().expect("tasks lock");
                            *tasks = slots
                                .iter()
                                .map(|(s, _)| TaskSlot { control: s.control.clone(), metrics: s.metrics.clone() })
                                .collect();
                            handles = slots.into_iter().map(|(_, h)| h).collect();
                            drop(tasks);
                            continue;
                        }
                        Err(e2) => break (RunState::Failed, Some(format!("{e}; the restart failed too: {e2}"))),
                    }
                }
                Some(e) => break (RunState::Failed, Some(e.to_string())),
                None if all_finished => break (RunState::Finished, None),
                None => break (RunState::Stopped, None),
            }
        };
        sampler.abort();
        let (state, error) = outcome;
        if error.as_deref() == Some(LEASE_LOST) {
            tracing::warn!(run = %plan.run.id, worker = %self.id, "lost the lease: the run's tasks stopped writing");
            self.running.lock().expect("running lock").remove(&plan.job.id);
            return;
        }
        if running.handing_over.load(Ordering::SeqCst) && state == RunState::Stopped {
            self.hand_over(&plan, &running).await;
            self.running.lock().expect("running lock").remove(&plan.job.id);
            return;
        }
        match self.store.set_run_state_as(&plan.run.id, running.epoch, state, error.as_deref()).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(run = %plan.run.id, "the run was taken over; its end here is not recorded"),
            Err(e) => tracing::error!(error = %e, run = %plan.run.id, "cannot record the end of a run"),
        }
        let detail = match &error {
            Some(e) => format!("run {} failed: {e}", plan.run.id),
            None => format!("run {} {}", plan.run.id, state.as_str()),
        };
        self.event(&plan, if error.is_some() { "error" } else { "run" }, &format!("run.{}", state.as_str()), &detail)
            .await;
        self.running.lock().expect("running lock").remove(&plan.job.id);
    }

    async fn event(&self, plan: &LaunchPlan, kind: &str, action: &str, detail: &str) {
        if let Err(e) =
            self.store.record_event(Some(&plan.project.id), Some(&plan.job.id), kind, None, action, detail).await
        {
            tracing::error!(error = %e, action, "cannot record a job event");
        }
    }

    /// Stops the job's run, with or without a final snapshot, and waits for
    /// its tasks to end.
    pub async fn stop(&self, job_id: &str, snapshot: bool) -> WorkerResult<()> {
        let running = self.running(job_id).ok_or_else(|| conflict("the job is not running"))?;
        running.stopping.store(true, Ordering::SeqCst);
        self.store.set_run_state_as(&running.run_id, running.epoch, RunState::Stopping, None).await?;
        for control in running.controls() {
            let _ = control.send(TaskCommand::Stop { snapshot }).await;
        }
        let mut done = running.done.clone();
        tokio::time::timeout(STOP_TIMEOUT, done.wait_for(|d| *d))
            .await
            .map_err(|_| conflict(&format!("the job did not stop within {STOP_TIMEOUT:?}")))?
            .map_err(|_| conflict("the job's supervisor ended"))?;
        Ok(())
    }

    /// Takes a snapshot of every task of the running job now; returns them
    /// as stored (by partition group).
    pub async fn snapshot_now(&self, job_id: &str) -> WorkerResult<Vec<Snapshot>> {
        let running = self.running(job_id).ok_or_else(|| conflict("the job is not running; start it first"))?;
        let mut taken = Vec::new();
        for (control, key) in running.controls().into_iter().zip(&running.keys) {
            let (reply, answer) = oneshot::channel();
            control.send(TaskCommand::Snapshot { reply }).await.map_err(|_| conflict("the task has ended"))?;
            // A snapshot the task could not take failed in the snapshot
            // storage: the platform's to look into, not the tenant's.
            let meta: SnapshotMeta = answer
                .await
                .map_err(|_| conflict("the task ended before the snapshot"))?
                .map_err(|message| WorkerError::Snapshots(SnapshotError::Storage { location: key.clone(), message }))?;
            taken.push(self.snapshots.get(key, &meta.id).await?);
        }
        Ok(taken)
    }

    /// The running job's counters and charts.
    pub fn status(&self, job_id: &str, seconds: usize) -> Option<LiveStatus> {
        let running = self.running(job_id)?;
        let metrics = running.metrics();
        let series = running.history.lock().expect("history lock").series(seconds);
        let tasks = metrics
            .iter()
            .enumerate()
            .map(|(i, m)| TaskStatus {
                task: i,
                key: running.keys.get(i).cloned().unwrap_or_default(),
                worker: self.id.clone(),
                records_in: TaskMetrics::get(&m.records_in),
                records_out: TaskMetrics::get(&m.records_out),
            })
            .collect();
        Some(LiveStatus { run_id: running.run_id.clone(), totals: Totals::of(&metrics), series, tasks })
    }

    /// Every running job's counters (for Prometheus).
    pub fn all_totals(&self) -> Vec<(String, Totals, Vec<Arc<TaskMetrics>>)> {
        let running: Vec<Arc<RunningJob>> = self.running.lock().expect("running lock").values().cloned().collect();
        running
            .iter()
            .map(|r| {
                let metrics = r.metrics();
                (r.job_id.clone(), Totals::of(&metrics), metrics)
            })
            .collect()
    }

    /// Log lines of the running job's tasks.
    pub fn logs(&self, job_id: &str) -> Vec<(String, String)> {
        let Some(running) = self.running(job_id) else { return Vec::new() };
        running
            .metrics()
            .iter()
            .flat_map(|m| m.logs())
            .map(|(level, message)| (format!("{level:?}").to_lowercase(), message))
            .collect()
    }

    /// Stops every running job with a snapshot (on shutdown).
    pub async fn stop_all(&self) {
        let jobs: Vec<String> = self.running.lock().expect("running lock").keys().cloned().collect();
        for job in jobs {
            if let Err(e) = self.stop(&job, true).await {
                tracing::warn!(job = %job, error = %e, "stopping on shutdown");
            }
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }
}

/// The lease a run's tasks are built under.
struct TaskLease {
    epoch: i64,
    gate: Arc<LeaseGate>,
}

/// A running task: how it ended.
type TaskHandle = tokio::task::JoinHandle<WorkerResult<TaskEnd>>;

fn conflict(message: &str) -> WorkerError {
    WorkerError::Conflict(message.to_owned())
}

/// How `supervise` tells that the run's lease was lost.
const LEASE_LOST: &str = "lease lost";

/// Samples the run's counters every second, for the charts.
async fn sample(running: Arc<RunningJob>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let metrics = running.metrics();
        running.history.lock().expect("history lock").sample(now_ms(), &metrics);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "localhost".into())
}
