//! Projects' quotas: what one project's jobs may hold at once, so one team
//! cannot take every task slot, all the memory or every job thread of a
//! shared platform. Ceilings (`--max-*`) bound one job; quotas bound the
//! sum of a project's jobs, as Kubernetes' ResourceQuota bounds a
//! namespace's pods.
//!
//! Tasks and memory are counted over the project's runs that hold tasks in
//! the metadata store (on any worker): a run's tasks are its parallelism
//! (worker slots), and its memory is its deployment's memory per instance
//! times its shards (each shard is a guest instance of its own).
//!
//! A run being launched is in state `starting` before the check, and
//! counts its deployment's parallelism until its shards are planned; the
//! check and the planning of a run are one step per console process
//! (`Worker::admitting`), so runs planned by one console never pass the
//! quota together. Two consoles launching at once each count the other's
//! run at its parallelism: they may both be refused, and pass the memory
//! quota together only by the shards of a run beyond its parallelism.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sluice_runtime::job::spec::LimitsSpec;

use super::shards::{MAX_SHARDS, RunShape};
use super::{Worker, WorkerError, WorkerResult};
use crate::store::{Deployment, Project, ProjectQuota, Run};

/// The quota of a project that has none of its own (`sluice serve
/// --project-max-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Quota {
    pub max_tasks: u64,
    pub max_memory_mb: u64,
    pub max_debug_runs: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota { max_tasks: 32, max_memory_mb: 16 * 1024, max_debug_runs: 2 }
    }
}

impl Quota {
    /// `own` settings over these defaults.
    pub fn with(self, own: &ProjectQuota) -> Quota {
        let or = |own: Option<i64>, default: u64| own.map_or(default, |n| n.max(0) as u64);
        Quota {
            max_tasks: or(own.max_tasks, self.max_tasks),
            max_memory_mb: or(own.max_memory_mb, self.max_memory_mb),
            max_debug_runs: or(own.max_debug_runs, self.max_debug_runs),
        }
    }
}

/// What a project's jobs hold now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub tasks: u64,
    pub memory_mb: u64,
    pub debug_runs: u64,
}

/// A run's tasks and guest instances (shards) as planned; a run planned
/// before shards ran each group as a task. A run not planned yet counts
/// its deployment's parallelism for both (its shards are not known yet).
pub fn planned_shape(run: &Run, deployment: &Deployment) -> RunShape {
    let bounded = |n: i64| n.clamp(1, i64::from(MAX_SHARDS)) as u32;
    let shards = bounded(run.task_groups.unwrap_or(deployment.parallelism));
    let stages = run.stages.unwrap_or(1).clamp(1, 64) as u32;
    RunShape { shards, parallelism: run.parallelism.map_or(shards, |n| bounded(n).min(shards)), stages }
}

/// Guest memory per task of a deployment, MiB: its `memory_mb` over the
/// spec's `limits.memory_mb` over the runtime's default.
pub fn task_memory_mb(deployment: &Deployment) -> u64 {
    let from_spec = || {
        let table: toml::Table = deployment.spec.parse().ok()?;
        table.get("limits")?.get("memory_mb")?.as_integer()
    };
    deployment.memory_mb.or_else(from_spec).map_or(LimitsSpec::default().memory_mb, |mb| mb.max(0) as u64)
}

/// Debug runs in progress, per project (they live in this process).
#[derive(Debug, Default)]
pub struct DebugRuns(Mutex<HashMap<String, u64>>);

/// A debug run's place in its project's quota, given back when dropped.
#[derive(Debug)]
pub struct DebugSlot {
    worker: Arc<Worker>,
    project: String,
}

impl Drop for DebugSlot {
    fn drop(&mut self) {
        let mut runs = self.worker.debug_runs.0.lock().expect("debug runs lock");
        if let Some(n) = runs.get_mut(&self.project) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Worker {
    /// `project`'s quota and what its jobs hold now; `except` leaves out a
    /// run (the one being launched).
    pub async fn quota(&self, project: &Project, except: Option<&str>) -> WorkerResult<(Quota, Usage)> {
        let own = self.store.project_quota(&project.id).await?;
        let mut usage = Usage {
            debug_runs: self.debug_runs.0.lock().expect("debug runs lock").get(&project.name).copied().unwrap_or(0),
            ..Usage::default()
        };
        // Two reads whatever the number of runs: the control plane plans
        // every new run through here.
        let deployments: std::collections::HashMap<String, Deployment> =
            self.store.project_deployments(&project.id).await?.into_iter().map(|d| (d.job_id.clone(), d)).collect();
        for run in self.store.runs_holding_tasks(&project.id).await? {
            if Some(run.id.as_str()) == except {
                continue;
            }
            if let Some(deployment) = deployments.get(&run.job_id) {
                let shape = planned_shape(&run, deployment);
                usage.tasks += u64::from(shape.parallelism);
                usage.memory_mb += u64::from(shape.groups()) * task_memory_mb(deployment);
            }
        }
        Ok((self.quotas.with(&own), usage))
    }

    /// Refuses a run of `shape` whose tasks would take `project` past its
    /// quota.
    pub(super) async fn check_quota(
        &self,
        project: &Project,
        run_id: &str,
        deployment: &Deployment,
        shape: RunShape,
    ) -> WorkerResult<()> {
        let (quota, usage) = self.quota(project, Some(run_id)).await?;
        let tasks = u64::from(shape.parallelism);
        let memory = u64::from(shape.groups()) * task_memory_mb(deployment);
        let mut over = Vec::new();
        if usage.tasks + tasks > quota.max_tasks {
            over.push(format!(
                "{tasks} task(s) with {} already running would pass max_tasks = {}",
                usage.tasks, quota.max_tasks
            ));
        }
        if usage.memory_mb + memory > quota.max_memory_mb {
            over.push(format!(
                "{memory} MiB of guest memory with {} MiB already held would pass max_memory_mb = {}",
                usage.memory_mb, quota.max_memory_mb
            ));
        }
        if over.is_empty() {
            return Ok(());
        }
        Err(WorkerError::Invalid(format!(
            "project `{}` is over its quota: {}; stop another of its jobs, lower this job's parallelism or \
             memory, or ask a global admin to raise the quota (PUT /api/v1/projects/{}/quota)",
            project.name,
            over.join("; "),
            project.name
        )))
    }

    /// A place for one more debug run of `project`, or why there is none.
    pub async fn debug_slot(self: &Arc<Self>, project: &Project) -> WorkerResult<DebugSlot> {
        let own = self.store.project_quota(&project.id).await?;
        let most = self.quotas.with(&own).max_debug_runs;
        let mut runs = self.debug_runs.0.lock().expect("debug runs lock");
        let held = runs.entry(project.name.clone()).or_default();
        if *held >= most {
            return Err(WorkerError::Conflict(format!(
                "project `{}` already has {held} debug run(s) in progress, its max_debug_runs; wait for one to end",
                project.name
            )));
        }
        *held += 1;
        Ok(DebugSlot { worker: self.clone(), project: project.name.clone() })
    }
}
