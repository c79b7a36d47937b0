//! Building a runnable task from a spec: connectors from the registry
//! unless the caller supplies its own (tests, debug runs).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::batch::RecordBatch;
use super::origin_dedup::{OriginCut, OriginDedup};
use super::spec::JobSpec;
use super::task::{Task, TaskSettings};
use super::timers::{TimerService, Watermarks};
use crate::clock::{Clock, SystemClock};
use crate::connections::Connections;
use crate::connectors::file::FileSinkConfig;
use crate::connectors::registry::{self, BuildContext, SinkSpec};
use crate::connectors::staged::{DimensionFence, StagedDimension, WriteMode};
use crate::connectors::{ConnectorError, DimensionStore, PartitionGroup, Sink, Source, SourceStatus};
use crate::metrics::TaskMetrics;
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::state::StateBackend;
use crate::wasm::host::{HostState, JobInfo};
use crate::wasm::{InstanceError, JobEngine, JobInstance, JobLimits, LoadedComponent, StateKeying};

/// Why a task could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("job `{job}`: {source}")]
    Connector { job: String, source: ConnectorError },
    #[error("job `{job}`: `{name}` is given as a {what} but the spec declares no such {what}")]
    UnknownOverride { job: String, what: &'static str, name: String },
    #[error(transparent)]
    Open(#[from] InstanceError),
    #[error(
        "job `{job}`: the snapshot holds state the job no longer declares: {states}; start with \
         --allow-non-restored-state to drop it, or restore a job version that declares it"
    )]
    NonRestoredState { job: String, states: String },
    #[error("job `{job}`: partition group {index} of {count} does not exist (groups are numbered 0 to count - 1)")]
    PartitionGroup { job: String, index: u32, count: u32 },
    #[error("{}", global_state_refusal(job, *count))]
    GlobalState { job: String, count: u32 },
    #[error("job `{job}`: {message}")]
    Stage { job: String, message: String },
}

/// Refuses running a job at parallelism `count` above 1 unless its
/// component declares its state keyed by the record key: a job whose state
/// combines keys would keep partial results in each task, and write them
/// over each other, without a word (issue 19).
pub fn check_state_keying(job: &str, keying: StateKeying, count: u32) -> Result<(), BuildError> {
    match keying {
        StateKeying::Global if count > 1 => Err(BuildError::GlobalState { job: job.to_owned(), count }),
        _ => Ok(()),
    }
}

/// The declaration's name in the WIT contract: `global` or `by-record-key`.
pub fn state_keying_name(keying: StateKeying) -> &'static str {
    match keying {
        StateKeying::Global => "global",
        StateKeying::ByRecordKey => "by-record-key",
    }
}

/// What [`BuildError::GlobalState`] says: why, and what to change.
fn global_state_refusal(job: &str, count: u32) -> String {
    format!(
        "job `{job}` cannot run at parallelism {count}: its component declares its state global (`Job::STATE_KEYING` \
         is `StateKeying::Global`, the SDK's default), so its state may combine records of different keys, and \
         {count} tasks, each reading a share of the input's partitions, would each hold partial results and \
         write them over each other. Run it at parallelism 1; or, if every state entry of the job is touched by \
         the records of one record key only (the key its topics are partitioned by), declare \
         `const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;` in its `impl Job` and rebuild it"
    )
}

/// Where and how often a task snapshots.
#[derive(Clone)]
pub struct SnapshotSettings {
    pub store: Arc<dyn SnapshotStore>,
    pub interval: Option<std::time::Duration>,
    pub retain: usize,
    /// Incremental snapshots, with a full one every this many (`None`: all full).
    pub full_every: Option<usize>,
}

/// Assembles a [`Task`] for a spec.
pub struct TaskBuilder<'a> {
    spec: &'a JobSpec,
    connections: Connections,
    clock: Arc<dyn Clock>,
    sources: HashMap<String, Box<dyn Source>>,
    sinks: HashMap<String, Box<dyn Sink>>,
    dimensions: HashMap<String, Arc<dyn DimensionStore>>,
    dead_letter: Option<Box<dyn Sink>>,
    metrics: Arc<TaskMetrics>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    restore: Option<Snapshot>,
    allow_non_restored_state: bool,
    group: PartitionGroup,
    /// The stage of a staged job the task runs (`job::stages`).
    stage: u32,
    lease: Arc<super::LeaseGate>,
    /// The fences dimension commits go through, under a lease.
    lease_fences: Option<LeaseFences>,
    origin_cuts: Option<Vec<OriginCut>>,
}

/// What [`TaskBuilder::lease_fences`] names the fences after, and their epochs.
struct LeaseFences {
    job: String,
    run_floor: u64,
    task_key: String,
    epoch: u64,
}

impl<'a> TaskBuilder<'a> {
    pub fn new(spec: &'a JobSpec) -> Self {
        TaskBuilder {
            spec,
            connections: Connections::default(),
            clock: Arc::new(SystemClock),
            sources: HashMap::new(),
            sinks: HashMap::new(),
            dimensions: HashMap::new(),
            dead_letter: None,
            metrics: Arc::new(TaskMetrics::default()),
            snapshots: None,
            restore: None,
            allow_non_restored_state: false,
            group: PartitionGroup::default(),
            stage: 0,
            lease: Arc::new(super::LeaseGate::unbounded()),
            lease_fences: None,
            origin_cuts: None,
        }
    }

    /// The connection registry the spec's `connection` names resolve in.
    pub fn connections(mut self, connections: Connections) -> Self {
        self.connections = connections;
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `source` instead of the spec's source `name`.
    pub fn source(mut self, name: &str, source: Box<dyn Source>) -> Self {
        self.sources.insert(name.to_owned(), source);
        self
    }

    /// Uses `sink` instead of the spec's sink `name`.
    pub fn sink(mut self, name: &str, sink: Box<dyn Sink>) -> Self {
        self.sinks.insert(name.to_owned(), sink);
        self
    }

    pub fn dimension(mut self, name: &str, store: Arc<dyn DimensionStore>) -> Self {
        self.dimensions.insert(name.to_owned(), store);
        self
    }

    pub fn dead_letter(mut self, sink: Box<dyn Sink>) -> Self {
        self.dead_letter = Some(sink);
        self
    }

    /// Where snapshots go (periodic per the spec, on stop, and on demand).
    pub fn snapshots(mut self, store: Arc<dyn SnapshotStore>) -> Self {
        self.snapshots = Some(store);
        self
    }

    /// Runs under a worker's lease: the task writes nothing (sink rows,
    /// snapshots, dimension commits) once `gate` has closed.
    pub fn lease(mut self, gate: Arc<super::LeaseGate>) -> Self {
        self.lease = gate;
        self
    }

    /// The lease this task runs under, for the fences of its dimension
    /// stores with `writes = "snapshot"`: each commits through two fences
    /// of the store's own ([`DimensionFence::for_task`]), raised when the
    /// task is built. The job's fence (named after `job`, the job's key,
    /// and shared by all its partition groups) at `run_floor`, the floor
    /// epoch of the run, the same for all its tasks and above every epoch
    /// of the job's earlier runs: it refuses every task of an older run, at
    /// any parallelism. The task's fence (named after `task_key`, the
    /// task's snapshot key) at `epoch`, the task's own lease epoch: it
    /// refuses the task's previous holder after a takeover within the run,
    /// yet never a sibling task, whose epoch is its own. A refused commit,
    /// a worker that lost the job or the task while frozen, ends the task
    /// as on a lost lease. The worker's gate ([`lease`](Self::lease)) only
    /// stops writes this process knows to be late; the fences also stop
    /// one already under way. Without this (`sluice run`) commits are plain
    /// upserts.
    pub fn lease_fences(mut self, job: &str, run_floor: u64, task_key: &str, epoch: u64) -> Self {
        self.lease_fences = Some(LeaseFences { job: job.to_owned(), run_floor, task_key: task_key.to_owned(), epoch });
        self
    }

    /// Resumes from a snapshot: its state, timers, watermark and positions.
    pub fn restore(mut self, snapshot: Snapshot) -> Self {
        self.restore = Some(snapshot);
        self
    }

    /// The cuts of a run that restored another run's state
    /// ([`OriginCut`]), replacing those in the restored state; without
    /// this the task keeps the state's.
    pub fn origin_cuts(mut self, cuts: Vec<OriginCut>) -> Self {
        self.origin_cuts = Some(cuts);
        self
    }

    /// Starts even if the snapshot holds states the job no longer declares
    /// (they are dropped), as Flink's `--allowNonRestoredState`.
    pub fn allow_non_restored_state(mut self, allow: bool) -> Self {
        self.allow_non_restored_state = allow;
        self
    }

    /// Makes this task one of `count` parallel tasks of the job, reading
    /// the partitions `p` with `p % count == index` of each source (default
    /// 0 of 1: everything). Sources that cannot be split refuse `count > 1`.
    /// Each task snapshots on its own, so give each its own job name.
    pub fn partition_group(mut self, index: u32, count: u32) -> Self {
        self.group = PartitionGroup { index, count };
        self
    }

    /// Runs stage `stage` of a staged job, with a spec made for it
    /// (`stages::stage_spec`); 0 by default.
    pub fn stage(mut self, stage: u32) -> Self {
        self.stage = stage;
        self
    }

    pub fn metrics(mut self, metrics: Arc<TaskMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Refuses a stage the component does not declare, and a stage that
    /// sends rows on without the sink to send them through (a staged job's
    /// spec as written, not made for a stage).
    fn check_stage(&self, component: &LoadedComponent) -> Result<(), BuildError> {
        let stages = component.stages.len().max(1) as u32;
        let refuse = |message: String| Err(BuildError::Stage { job: self.spec.name.clone(), message });
        if self.stage >= stages {
            return refuse(format!("stage {} does not exist: the component declares {stages}", self.stage));
        }
        if self.stage + 1 < stages && !self.spec.sinks.contains_key(super::stages::NEXT_STAGE_SINK) {
            return refuse(format!(
                "the component runs in {stages} stages ({}), which pass rows on through repartition topics, but \
                 this spec is not one stage's (it has no sink `{}`): deploy it on the console, which runs every \
                 stage, or run each stage with `sluice run --stage K --stage-topics CONNECTION:PREFIX`",
                component.stages.join(" → "),
                super::stages::NEXT_STAGE_SINK
            ));
        }
        Ok(())
    }

    /// Builds the connectors and opens the job instance.
    pub async fn build(mut self, engine: &JobEngine, component: &LoadedComponent) -> Result<Task, BuildError> {
        let spec = self.spec;
        let job = spec.name.clone();
        let connector = |source| BuildError::Connector { job: job.clone(), source };
        self.check_overrides()?;
        if self.group.index >= self.group.count {
            return Err(BuildError::PartitionGroup { job, index: self.group.index, count: self.group.count });
        }
        self.check_stage(component)?;
        // A later stage reads rows keyed by what it groups by.
        let keying = if self.stage > 0 { StateKeying::ByRecordKey } else { component.state_keying };
        check_state_keying(&job, keying, self.group.count)?;
        let connections = std::mem::take(&mut self.connections);
        let restore = self.restore.take();
        let generation = self.lease_fences.as_ref().map_or(0, |f| f.run_floor);
        let cx =
            BuildContext { spec, connections: &connections, restore: restore.as_ref(), group: self.group, generation };

        let mut sources = Vec::new();
        for (index, (name, source_spec)) in spec.sources.iter().enumerate() {
            let source = match self.sources.remove(name) {
                Some(s) => s,
                None => registry::build_source(cx, name, index as u32, source_spec).await.map_err(connector)?,
            };
            sources.push((source, SourceStatus::Open));
        }
        let mut sinks = Vec::new();
        for (name, sink_spec) in &spec.sinks {
            sinks.push(match self.sinks.remove(name) {
                Some(s) => s,
                None => registry::build_sink(cx, name, sink_spec).await.map_err(connector)?,
            });
        }
        let mut dimensions = Vec::new();
        let mut staged = Vec::new();
        for (name, dim_spec) in &spec.dimensions {
            let dimension = match self.dimensions.remove(name) {
                Some(d) => d,
                None => registry::build_dimension(cx, name, dim_spec).await.map_err(connector)?,
            };
            let snapshot_writes = dim_spec.writes() == WriteMode::Snapshot;
            if snapshot_writes && self.snapshots.is_none() {
                return Err(connector(ConnectorError::config(
                    "dimension",
                    name,
                    "`writes = \"snapshot\"` commits writes with snapshots, so the job needs a snapshot \
                     store (`sluice run --snapshots DIR`); or use `writes = \"immediate\"`",
                )));
            }
            let fence = (self.lease_fences.as_ref())
                .map(|l| DimensionFence::for_task(&l.job, l.run_floor, &l.task_key, l.epoch, name));
            let stage = Arc::new(StagedDimension::fenced(dimension.clone(), fence.clone()));
            let restored = restore.as_ref().and_then(|s| s.dimension_writes.iter().find(|(n, _)| n == name));
            // Upserts are idempotent: applying the snapshot's again is
            // harmless. Under a lease this commit also raises the store's
            // fences before the job processes anything, writes or not, so a
            // late commit of the previous owner is refused from now on.
            let writes = restored.map_or(&[][..], |(_, w)| w.as_slice());
            if (!writes.is_empty() || (snapshot_writes && fence.is_some()))
                && let Err(e) = stage.commit(writes).await
            {
                if matches!(e, ConnectorError::Fenced { .. }) {
                    // A newer owner holds the job or this task: the lease
                    // is lost, and the tasks sharing its gate stop too.
                    self.lease.revoke();
                }
                return Err(connector(e));
            }
            if snapshot_writes {
                staged.push((name.clone(), stage.clone()));
                dimensions.push(stage as Arc<dyn DimensionStore>);
            } else {
                dimensions.push(dimension);
            }
        }
        let dead_letter = match self.dead_letter.take() {
            Some(d) => d,
            None => {
                let default = SinkSpec::File(FileSinkConfig {
                    path: PathBuf::from(format!("{}.dead-letters.jsonl", spec.name)),
                    append: true,
                });
                match &spec.dead_letter {
                    Some(declared) => registry::build_sink(cx, "dead_letter", declared).await.map_err(connector)?,
                    // Named after the job, which each partition group's
                    // caller names apart: no two groups share the file.
                    None => {
                        let whole = BuildContext { group: PartitionGroup::default(), ..cx };
                        registry::build_sink(whole, "dead_letter", &default).await.map_err(connector)?
                    }
                }
            }
        };

        let info = Arc::new(JobInfo {
            name: spec.name.clone(),
            parameters: spec.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            sources: spec.source_names(),
            sinks: spec.sink_names(),
            dimensions: spec.dimension_names(),
            stage: self.stage,
        });
        let mib = |n: u64| usize::try_from(n.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let limits = JobLimits {
            memory_bytes: mib(spec.limits.memory_mb),
            cpu_per_call: spec.limits.cpu_per_batch,
            state_bytes: mib(spec.limits.state_mb),
            output_bytes: mib(spec.limits.output_mb),
            timers: usize::try_from(spec.limits.timers).unwrap_or(usize::MAX),
        };
        let mut host = HostState::new(info, dimensions, self.metrics.clone(), limits);
        let mut watermarks = Watermarks::new(spec.watermark.max_out_of_orderness.as_millis() as i64);
        if let Some(snapshot) = restore {
            host.state = StateBackend::restore(snapshot.state);
            host.timers = TimerService::restore(snapshot.timers);
            watermarks.restore(&snapshot.event_times, snapshot.watermark);
            tracing::info!(job = %spec.name, snapshot = %snapshot.meta.id, "restoring");
        }
        host.set_now(self.clock.now_ms());
        // Declared before the job's own states, whose names cannot take it.
        let declare_error = |e| connector(ConnectorError::config("kafka source", super::origin_dedup::TABLE, e));
        let mut dedup = OriginDedup::declare(spec, &mut host.state).map_err(declare_error)?;
        if let (Some(dedup), Some(cuts)) = (dedup.as_mut(), &self.origin_cuts) {
            dedup.set_cuts(cuts, &mut host.state).map_err(declare_error)?;
        }
        let instance = JobInstance::open(engine, component, host, limits).await?;
        let dropped = instance.host().state.undeclared();
        if !dropped.is_empty() && !self.allow_non_restored_state {
            let states = dropped.iter().map(|(n, keys)| format!("`{n}` ({keys} keys)")).collect::<Vec<_>>().join(", ");
            return Err(BuildError::NonRestoredState { job: spec.name.clone(), states });
        }
        let settings = TaskSettings {
            max_records: spec.batch.max_records,
            max_wait: spec.batch.max_wait,
            watermark_delay_ms: spec.watermark.max_out_of_orderness.as_millis() as i64,
        };
        Ok(Task {
            instance,
            sources,
            sinks,
            dead_letter,
            source_names: spec.source_names(),
            settings,
            clock: self.clock,
            metrics: self.metrics,
            batch: RecordBatch::with_capacity(settings.max_records, settings.max_records * 128),
            watermarks,
            first_source: 0,
            job_version: component.hash.clone(),
            snapshots: self.snapshots.map(|store| SnapshotSettings {
                store,
                interval: spec.snapshot.interval,
                retain: spec.snapshot.retain,
                full_every: spec.snapshot.incremental.then_some(spec.snapshot.full_every),
            }),
            last_snapshot_id: None,
            since_full: 0,
            last_snapshot: std::time::Instant::now(),
            snapshot_seq: 0,
            staged,
            lease: self.lease,
            dedup,
            next_stage: spec.sinks.get_index_of(super::stages::NEXT_STAGE_SINK),
        })
    }

    fn check_overrides(&self) -> Result<(), BuildError> {
        let unknown =
            |what, name: &String| BuildError::UnknownOverride { job: self.spec.name.clone(), what, name: name.clone() };
        if let Some(name) = self.sources.keys().find(|n| !self.spec.sources.contains_key(*n)) {
            return Err(unknown("source", name));
        }
        if let Some(name) = self.sinks.keys().find(|n| !self.spec.sinks.contains_key(*n)) {
            return Err(unknown("sink", name));
        }
        if let Some(name) = self.dimensions.keys().find(|n| !self.spec.dimensions.contains_key(*n)) {
            return Err(unknown("dimension", name));
        }
        Ok(())
    }
}
