//! The worker: runs deployed jobs as runtime tasks in this process — one
//! per shard (partition group), each under a lease of its own, so one
//! run's shards may run on several workers; the shards of one task
//! (`shards.rs`) share a worker slot — and answers the console's control
//! requests (stop, snapshot now) and monitoring reads.
//!
//! A run goes starting → running → stopped | finished | failed. A task that
//! fails is restarted from its group's latest snapshot with back-off (1 s,
//! 2 s, 4 s …) up to `MAX_RESTARTS` times before the run fails, as Flink's
//! fixed-delay restart strategy does; the groups share no state, so only
//! the failed one restarts (Flink's region failover).

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
pub mod shards;
pub mod stages;
mod threads;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_runtime::job::stages::{StageTopics, stage_spec};
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
use shards::RunShape;
use threads::JobThreads;

use crate::store::{Deployment, Job, Project, Run, RunState, Store, TaskEnded, now_ms};

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
    /// Runs the control plane is planning now (in the background), with
    /// their projects.
    planning: Mutex<HashMap<String, String>>,
    /// Held from a run's quota check to its planned shards, so runs
    /// planned at once by this console never pass a quota together.
    admitting: tokio::sync::Mutex<()>,
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

/// This worker's share of a run: the tasks (partition groups) of it held
/// here, with their counters, charts and dead letters.
pub struct RunningJob {
    pub run_id: String,
    pub job_id: String,
    plan: Arc<LaunchPlan>,
    tasks: Mutex<BTreeMap<u32, TaskSlot>>,
    history: Mutex<History>,
    pub dead_letters: DeadLetterCapture,
    /// Tasks held here, running or being built; the share ends at 0.
    live: watch::Sender<usize>,
    /// Asked to stop: tasks built meanwhile stop at once.
    stopping: AtomicBool,
    /// Stopped to be handed to other workers (a drain), not ended.
    handing_over: AtomicBool,
    /// A console's snapshot request being answered.
    snapshot_busy: AtomicBool,
    sampler: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A task held here: its group, snapshot key and lease epoch.
pub type HeldGroup = (u32, String, i64);

/// One task held here: its lease and its controls.
struct TaskSlot {
    /// The group's snapshot key.
    key: String,
    /// The task's lease epoch.
    epoch: i64,
    /// Closed when the lease is lost: the task writes nothing more.
    gate: Arc<LeaseGate>,
    control: mpsc::Sender<TaskCommand>,
    metrics: Arc<TaskMetrics>,
}

impl RunningJob {
    fn metrics(&self) -> Vec<Arc<TaskMetrics>> {
        self.tasks.lock().expect("tasks lock").values().map(|t| t.metrics.clone()).collect()
    }

    fn controls(&self) -> Vec<(u32, mpsc::Sender<TaskCommand>)> {
        self.tasks.lock().expect("tasks lock").iter().map(|(g, t)| (*g, t.control.clone())).collect()
    }

    /// The groups held here with their snapshot keys and lease epochs.
    pub fn groups(&self) -> Vec<HeldGroup> {
        self.tasks.lock().expect("tasks lock").iter().map(|(g, t)| (*g, t.key.clone(), t.epoch)).collect()
    }

    /// The run's groups, every stage's shards (all of them, here or elsewhere).
    pub fn run_groups(&self) -> u32 {
        self.plan.shape.groups()
    }

    /// What each task held here has done so far, for the console.
    fn task_statuses(&self, worker: &str) -> Vec<TaskStatus> {
        self.tasks
            .lock()
            .expect("tasks lock")
            .iter()
            .map(|(g, t)| TaskStatus {
                task: self.plan.shape.task_of(*g) as usize,
                stage: self.plan.shape.stage_of(*g) as usize,
                shard: self.plan.shape.shard_of(*g) as usize,
                key: t.key.clone(),
                worker: worker.to_owned(),
                epoch: t.epoch,
                records_in: TaskMetrics::get(&t.metrics.records_in),
                records_out: TaskMetrics::get(&t.metrics.records_out),
                replays_dropped: TaskMetrics::get(&t.metrics.replays_dropped),
                lag: Some(t.metrics.lag.load(Ordering::Relaxed)).filter(|l| *l >= 0),
            })
            .collect()
    }

    /// Drops task `group`'s slot if it is still the one held at `epoch`
    /// (a relaunch of the group under a newer epoch keeps its own).
    fn remove_slot(&self, group: u32, epoch: i64) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        if tasks.get(&group).is_some_and(|s| s.epoch == epoch) {
            tasks.remove(&group);
        }
    }

    /// Stops task `group` writing at once (its lease went elsewhere).
    fn lose(&self, group: u32) {
        if let Some(slot) = self.tasks.lock().expect("tasks lock").get(&group) {
            slot.gate.revoke();
            let _ = slot.control.try_send(TaskCommand::Stop { snapshot: false });
        }
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
    /// The task (worker slot) its shard is packed into.
    pub task: usize,
    /// The repartition stage it runs (0 for a job of one stage).
    #[serde(default)]
    pub stage: usize,
    /// The shard (partition group) of its stage: its state, snapshots and
    /// partitions.
    #[serde(default)]
    pub shard: usize,
    pub key: String,
    pub worker: String,
    /// The lease epoch its worker holds it at (it changes when the task
    /// moves or restarts elsewhere).
    #[serde(default)]
    pub epoch: i64,
    pub records_in: u64,
    pub records_out: u64,
    /// Records its `dedup_by_row_id` sources dropped as replays of rows it
    /// had applied.
    #[serde(default)]
    pub replays_dropped: u64,
    /// Records behind the end of its Kafka sources (a later stage's: of its
    /// repartition topic); none without Kafka sources.
    #[serde(default)]
    pub lag: Option<i64>,
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
    shape: RunShape,
    /// Where its stages pass rows on, for a job of several (`stages.rs`).
    topics: Option<StageTopics>,
    /// The positions of the snapshots its staged groups restore from
    /// another run's state, by snapshot key, once found
    /// (`Worker::staged_restore`).
    restored_positions: std::sync::Mutex<HashMap<String, Option<Vec<sluice_runtime::snapshot::SourcePosition>>>>,
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
            planning: Mutex::new(HashMap::new()),
            admitting: tokio::sync::Mutex::new(()),
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

    /// Starts `run` (in state starting) on this worker, every partition
    /// group of it: plans its tasks for this worker, claims each task's
    /// lease and builds the task — so a bad spec, connection or snapshot
    /// is reported to the caller — then runs them in the background. On
    /// error the run is marked failed.
    pub async fn launch(self: &Arc<Self>, run: Run) -> WorkerResult<()> {
        let run_id = run.id.clone();
        if !self.launching.lock().expect("launching lock").insert(run_id.clone()) {
            return Err(WorkerError::Conflict(format!("run {run_id} is being launched already")));
        }
        let result = self.launch_here(run).await;
        self.launching.lock().expect("launching lock").remove(&run_id);
        result
    }

    async fn launch_here(self: &Arc<Self>, run: Run) -> WorkerResult<()> {
        let run_id = run.id.clone();
        let fail = |e: WorkerError| async move {
            if !matches!(e, WorkerError::Conflict(_)) {
                let _ = self.store.set_run_state(&run_id, RunState::Failed, Some(&e.for_tenant())).await;
            }
            Err(e)
        };
        let plan = match self.plan(run).await {
            Ok(plan) => plan,
            Err(e) => return fail(e).await,
        };
        if let Err(e) = self.previous_run_gone(&plan.run).await {
            return fail(e).await;
        }
        // Outside the admission lock: the tenant's cluster may be slow.
        if let Err(e) = self.prepare_topics(&plan).await {
            return fail(e).await;
        }
        let admitting = self.admitting.lock().await;
        if let Err(e) = self.admit(&plan).await {
            return fail(e).await;
        }
        let prefix = plan.topics.as_ref().map(|t| t.prefix.as_str());
        let planned = self.store.plan_tasks(&plan.run, plan.shape, prefix, Some(&self.id)).await?;
        drop(admitting);
        if let (true, Some(topics)) = (planned, &plan.topics) {
            self.retire_old_stage_topics(&plan.run, &plan.project, &plan.job, topics).await;
        }
        if !planned {
            let places = self.store.run_tasks(&plan.run.id).await?;
            if places.iter().any(|t| t.worker.as_deref() != Some(self.id.as_str())) {
                return Err(WorkerError::Conflict(format!("run {} is held by other workers now", plan.run.id)));
            }
        }
        let plan = Arc::new(plan);
        let restore = RestoreFrom::parse(plan.run.restore_from.as_deref());
        for group in 0..plan.shape.groups() {
            let renewed_at = Instant::now();
            let claimed =
                self.store.claim_task(&plan.run, group, &self.id, Some(&self.id), None, self.lease_ms()).await?;
            let Some(epoch) = claimed else {
                return Err(WorkerError::Conflict(format!(
                    "task {group} of run {} is held by another worker now",
                    plan.run.id
                )));
            };
            if let Err(e) = self.launch_task(&plan, group, epoch, renewed_at, restore.clone()).await {
                self.task_failed_to_start(&plan.run, group, epoch, &e).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Waits a little for the job's previous run to leave this worker (its
    /// tasks may still be stopping after the run ended in the store).
    async fn previous_run_gone(&self, run: &Run) -> WorkerResult<()> {
        let Some(previous) = self.running(&run.job_id).filter(|r| r.run_id != run.id) else { return Ok(()) };
        let mut live = previous.live.subscribe();
        match tokio::time::timeout(Duration::from_secs(10), live.wait_for(|n| *n == 0)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(WorkerError::Invalid(format!(
                "the job's previous run {} is still stopping on worker {}; start again once it has stopped",
                previous.run_id, self.id
            ))),
        }
    }

    /// Makes the repartition topics of a staged run that has none recorded
    /// yet (not planned, or resumed with fresh state).
    async fn prepare_topics(&self, plan: &LaunchPlan) -> WorkerResult<()> {
        match &plan.topics {
            Some(topics) if plan.run.stage_topics.is_none() => {
                self.prepare_stage_topics(&plan.run, &plan.project, &plan.job, topics, &plan.shape).await
            }
            _ => Ok(()),
        }
    }

    /// Checks what a run must pass before its tasks are planned: the
    /// project's quota.
    async fn admit(&self, plan: &LaunchPlan) -> WorkerResult<()> {
        self.check_quota(&plan.project, &plan.run.id, &plan.deployment, plan.shape).await
    }

    /// The control plane's planning of a run left for assignment: checks
    /// it as a launch would, then plans its tasks for no worker yet (the
    /// assignment spreads them). A run refused for what it asks (its spec,
    /// quota, state, a deleted part) fails with the reason and an event;
    /// a platform error is returned, and the run waits for the next try.
    pub async fn plan_for_assignment(&self, run: &Run) -> WorkerResult<()> {
        // The whole plan, component included, so a run its workers would
        // refuse (a global job at parallelism 2) fails here, before any task.
        let plan = match self.plan(run.clone()).await {
            // Outside the admission lock: the tenant's cluster may be slow.
            Ok(plan) => self.prepare_topics(&plan).await.map(|()| plan),
            Err(e) => Err(e),
        };
        let admitting = self.admitting.lock().await;
        let checked = match plan {
            Ok(plan) => self.admit(&plan).await.map(|()| plan),
            Err(e) => Err(e),
        };
        match checked {
            Ok(plan) => {
                let prefix = plan.topics.as_ref().map(|t| t.prefix.as_str());
                let planned = self.store.plan_tasks(run, plan.shape, prefix, None).await?;
                drop(admitting);
                if let (true, Some(topics)) = (planned, &plan.topics) {
                    self.retire_old_stage_topics(&plan.run, &plan.project, &plan.job, topics).await;
                }
                Ok(())
            }
            Err(e @ (WorkerError::Invalid(_) | WorkerError::Gone(_) | WorkerError::Task(_))) => {
                let message = e.for_tenant();
                if self.store.move_run(&run.id, RunState::Starting, RunState::Failed).await? {
                    self.store.set_run_error(&run.id, &message).await?;
                    let detail = format!("run {} was refused: {message}", run.id);
                    self.store.record_event(None, Some(&run.job_id), "error", None, "run.failed", &detail).await?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Launches task `group` of `run`, which the control plane gave this
    /// worker (held here at `epoch`): claims it with a new epoch and
    /// resumes it from its group's newest snapshot of the run, else from
    /// what the run first restored.
    async fn launch_assigned(self: &Arc<Self>, run: Run, group: u32, epoch: i64) -> WorkerResult<()> {
        let marker = format!("{}/{group}", run.id);
        if !self.launching.lock().expect("launching lock").insert(marker.clone()) {
            return Ok(());
        }
        let result = async {
            if self.running(&run.job_id).is_some_and(|r| r.run_id != run.id) {
                // The job's previous run is still stopping here: the task
                // stays held and is launched at a later heartbeat.
                return Ok(());
            }
            let renewed_at = Instant::now();
            let Some(epoch) =
                self.store.claim_task(&run, group, &self.id, Some(&self.id), Some(epoch), self.lease_ms()).await?
            else {
                return Err(WorkerError::Conflict(format!("task {group} of run {} moved meanwhile", run.id)));
            };
            let plan = match self.running(&run.job_id).filter(|r| r.run_id == run.id) {
                Some(share) => Ok(share.plan.clone()),
                None => self.plan(run.clone()).await.map(Arc::new),
            };
            let launched = match plan {
                Ok(plan) => {
                    let restore = RestoreFrom::parse(run.restore_from.as_deref()).resumed();
                    self.launch_task(&plan, group, epoch, renewed_at, restore).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = &launched {
                self.task_failed_to_start(&run, group, epoch, e).await;
            }
            launched
        }
        .await;
        self.launching.lock().expect("launching lock").remove(&marker);
        result
    }

    /// A task that could not be built fails the run; the run's other
    /// tasks here stop (those elsewhere see the run ended).
    async fn task_failed_to_start(&self, run: &Run, group: u32, epoch: i64, e: &WorkerError) {
        let message = e.for_tenant();
        if let Ok(TaskEnded::Run(_)) =
            self.store.end_task(&run.id, group, epoch, RunState::Failed, Some(&message)).await
        {
            let detail = format!("run {} failed: task {group}: {message}", run.id);
            if let Err(e) = self.store.record_event(None, Some(&run.job_id), "error", None, "run.failed", &detail).await
            {
                tracing::error!(error = %e, "cannot record a job event");
            }
        }
        if let Some(share) = self.running(&run.job_id).filter(|r| r.run_id == run.id) {
            for (_, control) in share.controls() {
                let _ = control.try_send(TaskCommand::Stop { snapshot: false });
            }
        }
    }

    /// Whether task `group` of run `run_id` is running or being launched here.
    pub fn holds(&self, run_id: &str, group: u32) -> bool {
        let launching = self.launching.lock().expect("launching lock");
        if launching.contains(run_id) || launching.contains(&format!("{run_id}/{group}")) {
            return true;
        }
        drop(launching);
        self.running
            .lock()
            .expect("running lock")
            .values()
            .any(|r| r.run_id == run_id && r.tasks.lock().expect("tasks lock").contains_key(&group))
    }

    /// Builds task `group` of the planned run, held here at `epoch` since
    /// `renewed_at`, and runs it under a supervisor.
    async fn launch_task(
        self: &Arc<Self>,
        plan: &Arc<LaunchPlan>,
        group: u32,
        epoch: i64,
        renewed_at: Instant,
        restore: RestoreFrom,
    ) -> WorkerResult<()> {
        // SQLite is one process's store: no other worker can take the
        // task over, so nothing needs fencing off.
        let gate = Arc::new(if self.store.dialect == crate::store::Dialect::Sqlite {
            LeaseGate::unbounded()
        } else {
            LeaseGate::until(renewed_at, self.write_window())
        });
        let key = stages::group_key(&plan.project.name, &plan.job.name, &plan.shape, group);
        let share = self.share_for(plan)?;
        let built = async {
            // Before anything is restored: from here on an older owner's
            // snapshot writes are refused (or were stored before, and restored).
            self.snapshots.raise_fence(&key, epoch as u64).await?;
            let floor = self.store.run_floor(&plan.run.id).await?;
            let lease = TaskLease { epoch, floor, gate: gate.clone() };
            self.start_task(plan, group, &key, &restore, &share.dead_letters, &lease).await
        }
        .await;
        let (slot, handle) = match built {
            Ok((control, metrics, handle)) => (TaskSlot { key: key.clone(), epoch, gate, control, metrics }, handle),
            Err(e) => {
                self.task_ended(&share);
                return Err(e);
            }
        };
        let control = slot.control.clone();
        share.tasks.lock().expect("tasks lock").insert(group, slot);
        if share.stopping.load(Ordering::SeqCst) {
            let _ = control.try_send(TaskCommand::Stop { snapshot: true });
        }
        let worker = self.clone();
        let supervised = share.clone();
        let supervised_restore = restore.clone();
        tokio::spawn(async move { worker.supervise(supervised, group, supervised_restore, handle).await });
        match self.store.mark_run_running(&plan.run.id, group, epoch).await {
            Ok(true) => {}
            // Taken over or ended meanwhile, or the store cannot say: the
            // task writes nothing (its supervisor lets it go).
            Ok(false) => share.lose(group),
            Err(e) => {
                tracing::warn!(run = %plan.run.id, group, error = %e, "cannot mark the run running; the task stops");
                share.lose(group);
            }
        }
        self.event(
            plan,
            "run",
            "run.started",
            &format!(
                "run {}: {}shard {} of {} in task {} of {} on {} (lease epoch {epoch}, restore {})",
                plan.run.id,
                if plan.shape.stages > 1 { format!("stage {} ", plan.shape.stage_of(group)) } else { String::new() },
                plan.shape.shard_of(group),
                plan.shape.shards,
                plan.shape.task_of(group),
                plan.shape.parallelism,
                self.id,
                restore.as_text()
            ),
        )
        .await;
        Ok(())
    }

    /// This worker's share of the planned run, made on its first task;
    /// counts the task being launched as live.
    fn share_for(&self, plan: &Arc<LaunchPlan>) -> WorkerResult<Arc<RunningJob>> {
        let mut running = self.running.lock().expect("running lock");
        if let Some(share) = running.get(&plan.job.id) {
            if share.run_id != plan.run.id {
                return Err(WorkerError::Conflict(format!("job `{}` is already running", plan.job.name)));
            }
            share.live.send_modify(|n| *n += 1);
            return Ok(share.clone());
        }
        let share = Arc::new(RunningJob {
            run_id: plan.run.id.clone(),
            job_id: plan.job.id.clone(),
            plan: plan.clone(),
            tasks: Mutex::new(BTreeMap::new()),
            history: Mutex::new(History::default()),
            dead_letters: DeadLetterCapture::new(
                self.store.clone(),
                &plan.job.id,
                &plan.run.id,
                self.dead_letters_kept,
            ),
            live: watch::Sender::new(1),
            stopping: false.into(),
            handing_over: false.into(),
            snapshot_busy: false.into(),
            sampler: Mutex::new(None),
        });
        *share.sampler.lock().expect("sampler lock") = Some(tokio::spawn(sample(share.clone())));
        running.insert(plan.job.id.clone(), share.clone());
        Ok(share)
    }

    /// A task of `share` ended here (or was never built): the share ends
    /// with its last.
    fn task_ended(&self, share: &Arc<RunningJob>) {
        let mut running = self.running.lock().expect("running lock");
        share.live.send_modify(|n| *n = n.saturating_sub(1));
        if *share.live.borrow() == 0 {
            if running.get(&share.job_id).is_some_and(|r| Arc::ptr_eq(r, share)) {
                running.remove(&share.job_id);
            }
            if let Some(sampler) = share.sampler.lock().expect("sampler lock").take() {
                sampler.abort();
            }
        }
    }

    /// What a run's launch reads from the metadata store, its component
    /// loaded, and its shape (`shards.rs`).
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
        let stages = component.stages.len().max(1) as u32;
        let shape = self.run_shape(&run, &project, &job, &deployment, component.state_keying, stages).await?;
        let topics = self.stage_topics(&run, &project, &job, &deployment, &shape).await?;
        Ok(LaunchPlan {
            run,
            project,
            job,
            deployment,
            component,
            shape,
            topics,
            restored_positions: Default::default(),
        })
    }

    /// Builds task `group` (snapshot key `key`) on the job threads and
    /// spawns it there.
    async fn start_task(
        self: &Arc<Self>,
        plan: &LaunchPlan,
        group: u32,
        key: &str,
        restore: &RestoreFrom,
        dead_letters: &DeadLetterCapture,
        lease: &TaskLease,
    ) -> WorkerResult<(mpsc::Sender<TaskCommand>, Arc<TaskMetrics>, TaskHandle)> {
        let start = match &plan.run.start_position {
            Some(text) => Some(StartPosition::parse(text).map_err(WorkerError::Invalid)?),
            None => None,
        };
        let stored = self.store.connections(&plan.project.id).await?;
        let base_dir = plan::project_files(&self.data_dir, &plan.project.name);
        let mut spec =
            plan::job_spec(&plan.deployment, key, start.as_ref(), &base_dir).map_err(WorkerError::Invalid)?;
        let stage = plan.shape.stage_of(group);
        if let Some(topics) = &plan.topics {
            spec =
                stage_spec(&spec, stage, plan.shape.stages, topics).map_err(|e| WorkerError::Invalid(e.to_string()))?;
        }
        self.ceilings.check(&spec).map_err(|e| WorkerError::Invalid(e.to_string()))?;
        let connections = self.project_connections(&plan.project.name, &stored)?;
        let first_started = plan.run.started_ms.unwrap_or(plan.run.created_ms);
        let state_began = plan.topics.as_ref().and_then(|t| stages::state_began_ms(&t.prefix));
        let generation = lease.floor as u64;
        let staged = self.staged_restore(plan, group, key, restore, first_started, state_began, generation).await?;
        let (snapshot, cuts) = match staged {
            Some(staged) => staged,
            None => (self.snapshot_to_restore(&plan.job.id, key, restore, first_started, state_began).await?, None),
        };
        if snapshot.is_none() && restore.is_latest() && plan.shape.groups() > 1 {
            // Its other shards restore theirs: say that this one cannot.
            let kept = self.kept_shards(&plan.project.name, &plan.job, &plan.run.id).await?;
            // (A later stage's shard may pass over the snapshots it has:
            // `staged_restore` says so.)
            if kept == Some(plan.shape.shards) && (stage == 0 || self.snapshots.list(key).await?.is_empty()) {
                let detail = format!(
                    "run {}: shard `{key}` has no snapshot to restore (its task never stored one); it starts from \
                     its sources' start position while the job's other shards restore theirs",
                    plan.run.id
                );
                self.event(plan, "error", "run.shard_without_snapshot", &detail).await;
            }
        }
        let snapshots: Arc<dyn SnapshotStore> =
            Arc::new(FencedSnapshots::new(self.snapshots.clone(), lease.epoch as u64));
        let (gate, epoch, floor) = (lease.gate.clone(), lease.epoch as u64, lease.floor as u64);
        // The job's dimension fence stands at the run's floor (fencing out
        // older runs); the task's own at its epoch (fencing out a zombie
        // of this group).
        let fence_job = plan::snapshot_key(&plan.project.name, &plan.job.name, 0, 1);
        let task_key = key.to_owned();
        let metrics = Arc::new(TaskMetrics::default());
        let (worker, component, dead_letters) = (self.clone(), plan.component.clone(), dead_letters.clone());
        let (shard, shards) = (plan.shape.shard_of(group), plan.shape.shards);
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
                .lease_fences(&fence_job, floor, &task_key, epoch)
                .dead_letter(dead_letters.sink(declared_dead_letter))
                .stage(stage)
                .partition_group(shard, shards);
            if let Some(snapshot) = snapshot {
                builder = builder.restore(snapshot);
            }
            if let Some(cuts) = cuts {
                builder = builder.origin_cuts(cuts);
            }
            builder.build(&worker.engine, &component).await.map_err(|e| e.to_string())
        };
        let task = self.threads.run(build).await?.map_err(WorkerError::Task)?;
        let (control, rx) = mpsc::channel(8);
        let handle =
            self.threads.handle().spawn(async move { task.run_controlled(rx).await.map_err(WorkerError::task) });
        Ok((control, metrics, handle))
    }

    /// The newest snapshot of `key` taken at or after `since_ms` that loads.
    async fn newest_since(&self, key: &str, since_ms: i64) -> WorkerResult<Option<Snapshot>> {
        // Snapshot ids begin with their time (ms, 13 digits).
        let since = format!("{:013}", since_ms.max(0));
        let ids = self.snapshots.list(key).await?;
        for id in ids.iter().rev().filter(|id| id.as_str() >= since.as_str()) {
            match self.snapshots.load(key, id).await {
                Ok(snapshot) => return Ok(Some(snapshot)),
                Err(e) => tracing::warn!(key, snapshot = %id, "skipping a snapshot that cannot be restored: {e}"),
            }
        }
        Ok(None)
    }

    /// What shard `key` restores; `first_started` is when the run first
    /// started (a resumed run takes its own snapshots from then on).
    async fn snapshot_to_restore(
        &self,
        job_id: &str,
        key: &str,
        restore: &RestoreFrom,
        first_started: i64,
        state_began: Option<i64>,
    ) -> WorkerResult<Option<Snapshot>> {
        match restore {
            RestoreFrom::None => Ok(None),
            // A staged job's state goes with its repartition topics: only
            // snapshots taken since they were made.
            RestoreFrom::Latest => match state_began {
                Some(since) => self.newest_since(key, since).await,
                None => Ok(self.snapshots.latest(key).await?),
            },
            RestoreFrom::Resume(first) => match self.newest_since(key, first_started).await? {
                Some(snapshot) => Ok(Some(snapshot)),
                None => Box::pin(self.snapshot_to_restore(job_id, key, first, first_started, state_began)).await,
            },
            RestoreFrom::Continue { since_ms, first } => match self.newest_since(key, *since_ms).await? {
                Some(snapshot) => Ok(Some(snapshot)),
                None => Box::pin(self.snapshot_to_restore(job_id, key, first, first_started, state_began)).await,
            },
            RestoreFrom::Snapshot(id) => {
                // The chosen snapshot is one shard's; every other shard
                // restores its newest taken at or before it in the same
                // run. Shards hold different keys, so each may stand at
                // its own point of the input.
                let Some(at) = self.chosen_for_shard(job_id, key, id).await? else {
                    return Err(WorkerError::Invalid(format!(
                        "snapshot `{id}` cannot be restored: shard `{key}` has no snapshot taken at or before it by \
                         the run that took it; pick a snapshot taken by a stop or by \"snapshot now\", which cover \
                         every shard"
                    )));
                };
                match self.snapshots.load(key, &at).await {
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

    /// Waits for task `group` of `share`; restarts it from its group's
    /// newest snapshot with back-off when it fails; records how it ended,
    /// and the run's end when it was the run's last task (or failed).
    async fn supervise(self: Arc<Self>, share: Arc<RunningJob>, group: u32, restore: RestoreFrom, handle: TaskHandle) {
        let plan = share.plan.clone();
        let held =
            share.tasks.lock().expect("tasks lock").get(&group).map(|s| (s.epoch, s.gate.clone(), s.key.clone()));
        let Some((epoch, gate, key)) = held else {
            self.task_ended(&share);
            return;
        };
        let mut handle = handle;
        let mut restarts = 0;
        let (state, error) = loop {
            let result = handle.await.map_err(|e| WorkerError::Task(format!("task panicked: {e}"))).and_then(|r| r);
            if !gate.is_open() {
                // The lease is gone: whatever ended the task, this worker
                // writes nothing more about it (the new owner does).
                tracing::warn!(run = %plan.run.id, group, worker = %self.id, ended = ?result.err(), "lost the task's lease: it stopped writing");
                share.remove_slot(group, epoch);
                self.task_ended(&share);
                return;
            }
            let stopping = share.stopping.load(Ordering::SeqCst);
            match result {
                Ok(TaskEnd::Finished) => break (RunState::Finished, None),
                Ok(TaskEnd::Stopped) => break (RunState::Stopped, None),
                Err(e) if !stopping && restarts < MAX_RESTARTS => {
                    restarts += 1;
                    let delay = Duration::from_secs(1 << (restarts - 1));
                    self.event(&plan, "error", "run.task_failed", &format!("task {group}: {e}; restarting from its latest snapshot in {delay:?} (restart {restarts} of {MAX_RESTARTS})")).await;
                    tokio::time::sleep(delay).await;
                    if share.stopping.load(Ordering::SeqCst) {
                        // Stopped while waiting to restart.
                        break (RunState::Stopped, None);
                    }
                    let floor = match self.store.run_floor(&plan.run.id).await {
                        Ok(floor) => floor,
                        Err(e2) => break (RunState::Failed, Some(format!("{e}; the restart failed too: {e2}"))),
                    };
                    let lease = TaskLease { epoch, floor, gate: gate.clone() };
                    let resume = restore.clone().resumed();
                    match self.start_task(&plan, group, &key, &resume, &share.dead_letters, &lease).await {
                        Ok((control, metrics, next)) => {
                            if let Some(slot) =
                                share.tasks.lock().expect("tasks lock").get_mut(&group).filter(|s| s.epoch == epoch)
                            {
                                slot.control = control;
                                slot.metrics = metrics;
                            }
                            handle = next;
                            continue;
                        }
                        Err(e2) => break (RunState::Failed, Some(format!("{e}; the restart failed too: {e2}"))),
                    }
                }
                Err(e) => break (RunState::Failed, Some(e.to_string())),
            }
        };
        if share.handing_over.load(Ordering::SeqCst) && state == RunState::Stopped {
            self.hand_over(&plan, group, epoch).await;
        } else {
            match self.store.end_task(&plan.run.id, group, epoch, state, error.as_deref()).await {
                Ok(TaskEnded::Run(ended)) => {
                    let detail = match &error {
                        Some(e) => format!("run {} failed: task {group}: {e}", plan.run.id),
                        None => format!("run {} {}", plan.run.id, ended.as_str()),
                    };
                    let kind = if ended == RunState::Failed { "error" } else { "run" };
                    self.event(&plan, kind, &format!("run.{}", ended.as_str()), &detail).await;
                }
                Ok(TaskEnded::Task) => {}
                Ok(TaskEnded::Lost) => {
                    tracing::warn!(run = %plan.run.id, group, "the task was taken over; its end here is not recorded")
                }
                Err(e) => tracing::error!(error = %e, run = %plan.run.id, group, "cannot record the end of a task"),
            }
            if state == RunState::Failed {
                // The run failed: its other tasks here stop too (those
                // elsewhere see the run ended at their next heartbeat).
                for (_, control) in share.controls() {
                    let _ = control.try_send(TaskCommand::Stop { snapshot: false });
                }
            }
        }
        share.remove_slot(group, epoch);
        self.task_ended(&share);
    }

    async fn event(&self, plan: &LaunchPlan, kind: &str, action: &str, detail: &str) {
        if let Err(e) =
            self.store.record_event(Some(&plan.project.id), Some(&plan.job.id), kind, None, action, detail).await
        {
            tracing::error!(error = %e, action, "cannot record a job event");
        }
    }

    /// Stops the job's run — its tasks here now, those on other workers at
    /// their next heartbeat — with or without a final snapshot, and waits
    /// for the tasks here to end.
    pub async fn stop(&self, job_id: &str, snapshot: bool) -> WorkerResult<()> {
        let share = self.running(job_id).ok_or_else(|| conflict("the job is not running"))?;
        self.store.request_stop(&share.run_id, snapshot).await?;
        self.stop_here(&share, snapshot).await
    }

    /// Stops the tasks of `share` held here and waits for them to end.
    async fn stop_here(&self, share: &RunningJob, snapshot: bool) -> WorkerResult<()> {
        share.stopping.store(true, Ordering::SeqCst);
        for (_, control) in share.controls() {
            let _ = control.send(TaskCommand::Stop { snapshot }).await;
        }
        let mut live = share.live.subscribe();
        tokio::time::timeout(STOP_TIMEOUT, live.wait_for(|n| *n == 0))
            .await
            .map_err(|_| conflict(&format!("the job did not stop within {STOP_TIMEOUT:?}")))?
            .map_err(|_| conflict("the job's tasks ended"))?;
        Ok(())
    }

    /// Takes a snapshot of every task of the job held here now; returns
    /// them as stored (by partition group).
    pub async fn snapshot_now(&self, job_id: &str) -> WorkerResult<Vec<Snapshot>> {
        let share = self.running(job_id).ok_or_else(|| conflict("the job is not running; start it first"))?;
        let tasks: Vec<(String, mpsc::Sender<TaskCommand>)> =
            share.tasks.lock().expect("tasks lock").values().map(|t| (t.key.clone(), t.control.clone())).collect();
        let mut taken = Vec::new();
        for (key, control) in tasks {
            let key = &key;
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

    /// The job's counters and charts, when every task of its run is held
    /// here (a run spread over workers is read from their reports).
    pub fn status(&self, job_id: &str, seconds: usize) -> Option<LiveStatus> {
        let share = self.running(job_id)?;
        let metrics = share.metrics();
        let series = share.history.lock().expect("history lock").series(seconds);
        let tasks = share.task_statuses(&self.id);
        Some(LiveStatus { run_id: share.run_id.clone(), totals: Totals::of(&metrics), series, tasks })
    }

    /// Every running job's counters here (for Prometheus).
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

    /// Log lines of the job's tasks held here.
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

/// The lease a task is built under.
struct TaskLease {
    epoch: i64,
    /// The run's fencing floor.
    floor: i64,
    gate: Arc<LeaseGate>,
}

/// A running task: how it ended.
type TaskHandle = tokio::task::JoinHandle<WorkerResult<TaskEnd>>;

fn conflict(message: &str) -> WorkerError {
    WorkerError::Conflict(message.to_owned())
}

/// Samples the share's counters every second, for the charts.
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
