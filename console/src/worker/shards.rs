//! A run's shape: its shards and the tasks they are packed into
//! (docs/ARCHITECTURE.md, "Shards and parallelism").
//!
//! A job keyed by record key splits its state into shards, one per input
//! partition (with several inputs, the greatest common divisor of their
//! partition counts), as Kafka Streams makes one task per input partition. Shard `s` reads the partitions `p`
//! with `p % shards == s`, keeps its own state and snapshots (snapshot key
//! `…__p{s}-of-{shards}`) and is one runtime task. A run at parallelism
//! `n` packs shard `s` into task `s % n`, and a task takes one worker
//! slot: changing the parallelism only moves whole shards, with their
//! snapshots, between tasks, so every shard restores its own state at any
//! parallelism. A global job has one shard, at parallelism 1.
//!
//! A job's shard count is fixed by its state: once it has snapshots, its
//! runs that restore them keep the shard count they were taken at, as
//! Flink's maximum parallelism is fixed once a job has state. A run from
//! empty state counts its inputs' partitions again.

use std::time::Duration;

use sluice_runtime::connectors::registry::shard_count;
use sluice_runtime::job::check_state_keying;
use sluice_runtime::wasm::StateKeying;

use super::restore::RestoreFrom;
use super::{Worker, WorkerError, WorkerResult, plan};
pub use crate::store::RunShape;
use crate::store::{Deployment, Job, Project, Run};

/// The most shards (and tasks) a run may have; a staged run's groups
/// (shards × stages) too, so each stage has at most `64 / stages` shards.
pub const MAX_SHARDS: u32 = 64;

/// How long planning waits for its inputs' partition counts in all
/// (each Kafka source also stops at its own `startup_timeout`).
const PARTITIONS_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a version whose state is global (one shard) cannot restore state
/// kept in `shards` shards.
pub fn global_over_shards(job: &str, shards: u32) -> String {
    format!(
        "job `{job}` keeps its state in {shards} shards (snapshots of a version keyed by the record key), but this \
         version declares its state global, which is one shard: it would start from empty state. Run a version \
         keyed by the record key, or start with restore `none` to begin afresh"
    )
}

impl Worker {
    /// The shape of `run`: what it was planned with, else its job's shards
    /// (kept by its state when it restores, else counted from its inputs'
    /// partitions) packed into the deployment's parallelism. A global job
    /// asked to run in parallel is refused with what to change, and so is a
    /// run whose state would not be where it looks for it.
    pub(super) async fn run_shape(
        &self,
        run: &Run,
        project: &Project,
        job: &Job,
        deployment: &Deployment,
        keying: StateKeying,
        stages: u32,
    ) -> WorkerResult<RunShape> {
        let asked = run.parallelism.unwrap_or(deployment.parallelism).clamp(1, i64::from(MAX_SHARDS)) as u32;
        if let Some(groups) = run.task_groups {
            let shards = groups.clamp(1, i64::from(MAX_SHARDS)) as u32;
            // A run planned before shards ran each group as a task.
            let parallelism = run.parallelism.map_or(shards, |_| asked.min(shards));
            check_state_keying(&job.name, keying, parallelism).map_err(|e| WorkerError::Invalid(e.to_string()))?;
            let planned = run.stages.unwrap_or(1).clamp(1, 64) as u32;
            if planned != stages {
                return Err(WorkerError::Invalid(format!(
                    "run {} was planned in {planned} stage(s) and its version declares {stages}",
                    run.id
                )));
            }
            return Ok(RunShape { shards, parallelism, stages });
        }
        check_state_keying(&job.name, keying, asked).map_err(|e| WorkerError::Invalid(e.to_string()))?;
        let restores_state = !matches!(RestoreFrom::parse(run.restore_from.as_deref()), RestoreFrom::None);
        let kept = if restores_state { self.kept_shards(&project.name, job, &run.id).await? } else { None };
        if kept.is_some() {
            self.check_kept_stages(job, run, stages).await?;
        }
        let shards = match (kept, keying) {
            (Some(kept), _) => kept,
            (None, StateKeying::Global) => 1,
            (None, StateKeying::ByRecordKey) => {
                self.input_partitions(project, deployment, &job.name, MAX_SHARDS / stages.max(1)).await?
            }
        };
        if keying == StateKeying::Global && shards > 1 {
            return Err(WorkerError::Invalid(global_over_shards(&job.name, shards)));
        }
        if shards * stages > MAX_SHARDS {
            return Err(WorkerError::Invalid(format!(
                "job `{}` keeps its state in {shards} shards, and {stages} stages of them make more than {MAX_SHARDS} \
                 tasks' state; start with restore `none` to shard it afresh",
                job.name
            )));
        }
        Ok(RunShape { shards, parallelism: asked.min(shards), stages })
    }

    /// The shards the job's state is kept in: those of its newest run
    /// before `except` when they have snapshots, else one when the job has
    /// snapshots of one shard (runs that recorded no shards kept one).
    pub async fn kept_shards(&self, project: &str, job: &Job, except: &str) -> WorkerResult<Option<u32>> {
        let recorded = self.store.last_task_groups(&job.id, except).await?;
        let candidates = recorded.map(|n| n.clamp(1, i64::from(MAX_SHARDS)) as u32).into_iter().chain([1]);
        for shards in candidates {
            let first = plan::snapshot_key(project, &job.name, 0, shards);
            if !self.snapshots.list(&first).await?.is_empty() {
                return Ok(Some(shards));
            }
        }
        Ok(None)
    }

    /// What a rescale of `job` to `deployment`'s parallelism will run: the
    /// shards its state is kept in — those of its `running` run, which
    /// stops with a snapshot of each, else of its snapshots (none known
    /// before it has any) — and the tasks they make. Refused, before the
    /// job is stopped, when the tasks would take the project past its quota
    /// (the running run left out).
    pub async fn check_rescale(
        &self,
        project: &Project,
        job: &Job,
        deployment: &Deployment,
        running: Option<&Run>,
    ) -> WorkerResult<(Option<u32>, u32)> {
        // A scheduled run is not restarted: only a running one is checked.
        let running = running.filter(|r| r.state != crate::store::RunState::Scheduled);
        let running_shards = running.and_then(|r| r.task_groups).map(|n| n.clamp(1, i64::from(MAX_SHARDS)) as u32);
        let kept = match running_shards {
            Some(shards) => Some(shards),
            None => self.kept_shards(&project.name, job, "").await?,
        };
        let except = running.map(|r| r.id.as_str());
        let restarts = running.is_some();
        let asked = deployment.parallelism.clamp(1, i64::from(MAX_SHARDS)) as u32;
        let stages = running.and_then(|r| r.stages).unwrap_or(1).clamp(1, 64) as u32;
        let shape =
            RunShape { shards: kept.unwrap_or(asked), parallelism: kept.map_or(asked, |k| asked.min(k)), stages };
        if restarts {
            self.check_quota(project, except.unwrap_or(""), deployment, shape).await?;
        }
        Ok((kept, shape.parallelism))
    }

    /// The snapshot shard `key` of job `job_id` restores when the job's
    /// snapshot `chosen` (one shard's) is chosen: of the shard's snapshots
    /// taken by the run that took it (ids begin with their time), the
    /// newest at or before it, else the first after it (the shards of one
    /// "snapshot now" store theirs a few milliseconds apart). No shard comes
    /// from a history that run had left behind, and shards hold different
    /// keys, so each may stand at its own point of the input.
    pub async fn chosen_for_shard(&self, job_id: &str, key: &str, chosen: &str) -> WorkerResult<Option<String>> {
        let same_run = self.same_run_snapshots(job_id, key, chosen).await?;
        let before = same_run.iter().rev().find(|id| id.as_str() <= chosen);
        Ok(before.or_else(|| same_run.iter().find(|id| id.as_str() > chosen)).cloned())
    }

    /// The snapshots of shard `key` taken by the run that took the job's
    /// snapshot `chosen`, oldest first.
    pub async fn same_run_snapshots(&self, job_id: &str, key: &str, chosen: &str) -> WorkerResult<Vec<String>> {
        let taken_ms = chosen.get(..13).and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
        let (began, next) = self.store.run_window(job_id, taken_ms).await?;
        let since = format!("{:013}", began.unwrap_or(0).max(0));
        let ended = next.map(|ms| format!("{ms:013}"));
        let ids = self.snapshots.list(key).await?;
        Ok(ids
            .into_iter()
            .filter(|id| id == chosen || (id.as_str() >= since.as_str() && ended.as_ref().is_none_or(|e| id < e)))
            .collect())
    }

    /// The shard count of the deployment's inputs (`registry::shard_count`),
    /// brought down to at most `max` (to a divisor of it, so that it still
    /// divides every input's partitions). A broker that does not answer in
    /// time, or a spec that cannot work, fails the run.
    async fn input_partitions(
        &self,
        project: &Project,
        deployment: &Deployment,
        job: &str,
        max: u32,
    ) -> WorkerResult<u32> {
        let stored = self.store.connections(&project.id).await?;
        let connections = self.project_connections(&project.name, &stored)?;
        let base_dir = plan::project_files(&self.data_dir, &project.name);
        let key = plan::snapshot_key(&project.name, job, 0, 1);
        let spec = plan::job_spec(deployment, &key, None, &base_dir).map_err(WorkerError::Invalid)?;
        let shards = match tokio::time::timeout(PARTITIONS_TIMEOUT, shard_count(&spec, &connections)).await {
            Ok(Ok(shards)) => shards,
            Ok(Err(e)) => return Err(WorkerError::Task(format!("cannot count the job's input partitions: {e}"))),
            Err(_) => {
                return Err(WorkerError::Task(format!(
                    "cannot count the job's input partitions: no answer within {PARTITIONS_TIMEOUT:?}"
                )));
            }
        };
        // More partitions than shards: a shard reads several. The count
        // must still divide every input's partitions (co-partitioning).
        Ok((1..=shards.min(max.max(1))).rev().find(|d| shards % d == 0).unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_packed_round_robin() {
        let shape = RunShape::new(4, 2);
        let tasks: Vec<u32> = (0..4).map(|s| shape.task_of(s)).collect();
        assert_eq!(tasks, [0, 1, 0, 1]);
        assert_eq!(RunShape::new(4, 1).task_of(3), 0);
        let staged = RunShape { shards: 2, parallelism: 2, stages: 2 };
        let groups: Vec<(u32, u32, u32)> =
            (0..staged.groups()).map(|g| (staged.stage_of(g), staged.shard_of(g), staged.task_of(g))).collect();
        assert_eq!(groups, [(0, 0, 0), (0, 1, 1), (1, 0, 0), (1, 1, 1)], "(stage, shard, task)");
    }
}
