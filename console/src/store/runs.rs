//! Runs: one start of a job, from scheduled to an end state.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult, conflict, new_id, now_ms};

/// Where a run is in its life. Transitions: scheduled → starting → running
/// → stopping → stopped | finished | failed; scheduled → cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Scheduled,
    Starting,
    Running,
    Stopping,
    Stopped,
    Finished,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Scheduled => "scheduled",
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::Stopped => "stopped",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> RunState {
        match s {
            "scheduled" => RunState::Scheduled,
            "starting" => RunState::Starting,
            "running" => RunState::Running,
            "stopping" => RunState::Stopping,
            "stopped" => RunState::Stopped,
            "finished" => RunState::Finished,
            "cancelled" => RunState::Cancelled,
            _ => RunState::Failed,
        }
    }

    /// Still holds (or will hold) a worker's task.
    pub fn is_active(self) -> bool {
        matches!(self, RunState::Scheduled | RunState::Starting | RunState::Running | RunState::Stopping)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub id: String,
    pub job_id: String,
    pub version_id: String,
    pub state: RunState,
    /// `none`, `latest`, a snapshot id, or `resume:…` / `continue:<ms>:…`
    /// (`worker::restore::RestoreFrom`).
    pub restore_from: Option<String>,
    /// Source start override: `earliest`, `latest` or a timestamp (ms).
    pub start_position: Option<String>,
    pub scheduled_ms: Option<i64>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub error: Option<String>,
    pub worker: Option<String>,
    pub created_by: String,
    pub created_ms: i64,
    /// Its shards (partition groups): one per input partition of a job
    /// keyed by record key, one for a global job. Each shard has its own
    /// state and snapshots, and keeps them at any parallelism. Kept for
    /// the run's life; none until it is planned.
    #[serde(default)]
    pub task_groups: Option<i64>,
    /// The tasks (worker slots) its shards are packed into: shard `s` runs
    /// in task `s % parallelism`. None until it is planned, and for runs
    /// planned before shards (each group was a task of its own).
    #[serde(default)]
    pub parallelism: Option<i64>,
    /// Its repartition stages (`Job::STAGES`), when the job has several:
    /// each has the run's shards, so its groups are `stages × shards`.
    /// None until planned, and for a job of one stage.
    #[serde(default)]
    pub stages: Option<i64>,
    /// The prefix of its repartition topics (`<prefix>-s<k>`), when staged.
    #[serde(default)]
    pub stage_topics: Option<String>,
}

pub(super) const RUN_COLUMNS: &str = "id, job_id, version_id, state, restore_from, start_position, scheduled_ms, started_ms, \
                           ended_ms, error, worker, created_by, created_ms, task_groups, parallelism, stages, stage_topics";

impl Run {
    /// The tasks a planned run's shards are packed into (a run planned
    /// before shards: one per group).
    pub fn tasks(&self) -> u32 {
        self.parallelism.or(self.task_groups).unwrap_or(1).clamp(1, 64) as u32
    }

    pub(super) fn from_row(r: &AnyRow) -> StoreResult<Run> {
        Ok(Run {
            id: r.try_get("id")?,
            job_id: r.try_get("job_id")?,
            version_id: r.try_get("version_id")?,
            state: RunState::parse(&r.try_get::<String, _>("state")?),
            restore_from: r.try_get("restore_from")?,
            start_position: r.try_get("start_position")?,
            scheduled_ms: r.try_get("scheduled_ms")?,
            started_ms: r.try_get("started_ms")?,
            ended_ms: r.try_get("ended_ms")?,
            error: r.try_get("error")?,
            worker: r.try_get("worker")?,
            created_by: r.try_get("created_by")?,
            created_ms: r.try_get("created_ms")?,
            task_groups: r.try_get("task_groups")?,
            parallelism: r.try_get("parallelism")?,
            stages: r.try_get("stages")?,
            stage_topics: r.try_get("stage_topics")?,
        })
    }
}

/// A run's shards and the tasks they are packed into. A job of several
/// repartition stages runs every stage in `shards` shards: group `g` is
/// shard `g % shards` of stage `g / shards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunShape {
    pub shards: u32,
    /// Tasks: at most the shards (a task with no shard would idle).
    pub parallelism: u32,
    /// Repartition stages: 1 for a job of one stage.
    pub stages: u32,
}

impl RunShape {
    /// One stage's shards packed into `parallelism` tasks.
    pub fn new(shards: u32, parallelism: u32) -> RunShape {
        RunShape { shards, parallelism, stages: 1 }
    }

    /// Every (stage, shard) of the run: its lease rows and runtime tasks.
    pub fn groups(&self) -> u32 {
        self.shards.max(1) * self.stages.max(1)
    }

    /// The stage group `group` runs.
    pub fn stage_of(&self, group: u32) -> u32 {
        group / self.shards.max(1)
    }

    /// The shard of its stage group `group` is.
    pub fn shard_of(&self, group: u32) -> u32 {
        group % self.shards.max(1)
    }

    /// The task group `group` runs in.
    pub fn task_of(&self, group: u32) -> u32 {
        group % self.parallelism.max(1)
    }
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub job_id: &'a str,
    pub version_id: &'a str,
    pub state: RunState,
    pub restore_from: Option<&'a str>,
    pub start_position: Option<&'a str>,
    pub scheduled_ms: Option<i64>,
    pub created_by: &'a str,
    /// The worker that will launch it at once (this console's own, for a
    /// start from the API); `None` leaves it to the assignment.
    pub worker: Option<&'a str>,
}

impl Store {
    /// Records the shards run `run_id` is launched with and the tasks
    /// they are packed into, the first time only: a run keeps them for life.
    pub async fn set_task_groups(&self, run_id: &str, groups: i64, parallelism: Option<i64>) -> StoreResult<()> {
        sqlx::query(
            "update runs set task_groups = $1, parallelism = coalesce(parallelism, $3)
             where id = $2 and task_groups is null",
        )
        .bind(groups)
        .bind(run_id)
        .bind(parallelism)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the stages and repartition topics of a run that goes on in
    /// another's (a resumed run), before it is planned.
    pub async fn set_stages(&self, run_id: &str, stages: Option<i64>, stage_topics: Option<&str>) -> StoreResult<()> {
        sqlx::query("update runs set stages = $1, stage_topics = $2 where id = $3 and stages is null")
            .bind(stages)
            .bind(stage_topics)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The history of the job's run that was running at `ms` (ms since the
    /// epoch): when it started, and when the job's next run started (none
    /// while it is the last). Runs that never started took no snapshots.
    pub async fn run_window(&self, job_id: &str, ms: i64) -> StoreResult<(Option<i64>, Option<i64>)> {
        let row = sqlx::query(
            "select (select max(started_ms) from runs where job_id = $1 and started_ms <= $2) as began,
                    (select min(started_ms) from runs where job_id = $1 and started_ms > $2) as next",
        )
        .bind(job_id)
        .bind(ms)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("began")?, row.try_get("next")?))
    }

    /// The shards of the job's newest run before `except` that recorded
    /// them: the shards the job's state was last kept in.
    pub async fn last_task_groups(&self, job_id: &str, except: &str) -> StoreResult<Option<i64>> {
        Ok(self.last_planned_run(job_id, except).await?.and_then(|r| r.task_groups))
    }

    /// The job's run that was running at `ms` (the newest started by
    /// then): the run that took a snapshot taken at `ms`.
    pub async fn run_at(&self, job_id: &str, ms: i64) -> StoreResult<Option<Run>> {
        let row = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where job_id = $1 and started_ms <= $2 \
             order by started_ms desc, id desc limit 1"
        ))
        .bind(job_id)
        .bind(ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Run::from_row).transpose()
    }

    /// The repartition topic prefixes the job's runs recorded, with their
    /// stages: the topics the platform made for the job.
    pub async fn stage_topic_prefixes(&self, job_id: &str) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "select stage_topics, max(stages) as stages from runs where job_id = $1 and stage_topics is not null \
             group by stage_topics",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("stage_topics")?, r.try_get::<Option<i64>, _>("stages")?.unwrap_or(1))))
            .collect()
    }

    /// The job's newest run before `except` that was planned (recorded its
    /// shards): the run whose shards, stages and repartition topics the
    /// job's state was last kept in.
    pub async fn last_planned_run(&self, job_id: &str, except: &str) -> StoreResult<Option<Run>> {
        let row = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where job_id = $1 and id <> $2 and task_groups is not null \
             order by created_ms desc, id desc limit 1"
        ))
        .bind(job_id)
        .bind(except)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Run::from_row).transpose()
    }

    pub async fn create_run(&self, new: NewRun<'_>) -> StoreResult<Run> {
        let id = new_id();
        sqlx::query(
            "insert into runs (id, job_id, version_id, state, restore_from, start_position, scheduled_ms, created_by,
             created_ms, worker)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(new.job_id)
        .bind(new.version_id)
        .bind(new.state.as_str())
        .bind(new.restore_from)
        .bind(new.start_position)
        .bind(new.scheduled_ms)
        .bind(new.created_by)
        .bind(now_ms())
        .bind(new.worker)
        .execute(&self.pool)
        .await
        // The store keeps one active run per job (a partial unique index).
        .map_err(|e| {
            conflict(e, || {
                "the job already has an active run (scheduled, starting, running or stopping); stop it first".into()
            })
        })?;
        Ok(self.run(&id).await?.expect("just inserted"))
    }

    pub async fn run(&self, id: &str) -> StoreResult<Option<Run>> {
        let row = sqlx::query(&format!("select {RUN_COLUMNS} from runs where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Run::from_row).transpose()
    }

    /// The job's runs, newest first.
    pub async fn runs(&self, job_id: &str, limit: i64) -> StoreResult<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where job_id = $1 order by created_ms desc, id desc limit $2"
        ))
        .bind(job_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Run::from_row).collect()
    }

    /// The job's run that is scheduled or holds a task, if any.
    pub async fn active_run(&self, job_id: &str) -> StoreResult<Option<Run>> {
        Ok(self.runs(job_id, 20).await?.into_iter().find(|r| r.state.is_active()))
    }

    /// Runs in `state`, across jobs (the scheduler's and recovery's view).
    pub async fn runs_in_state(&self, state: RunState) -> StoreResult<Vec<Run>> {
        let rows = sqlx::query(&format!("select {RUN_COLUMNS} from runs where state = $1 order by created_ms"))
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Run::from_row).collect()
    }

    pub async fn set_run_state(&self, id: &str, state: RunState, error: Option<&str>) -> StoreResult<()> {
        self.change_run_state(id, None, state, error).await.map(drop)
    }

    /// Records why run `id` ended.
    pub async fn set_run_error(&self, id: &str, error: &str) -> StoreResult<()> {
        sqlx::query("update runs set error = $1 where id = $2").bind(error).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Moves the run from `from` to `to` only if it is still in `from`, and
    /// says whether it did: of two consoles (or a stop and the scheduler)
    /// acting on one scheduled run, exactly one wins.
    pub async fn move_run(&self, id: &str, from: RunState, to: RunState) -> StoreResult<bool> {
        self.change_run_state(id, Some(from), to, None).await
    }

    async fn change_run_state(
        &self,
        id: &str,
        from: Option<RunState>,
        state: RunState,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        self.update_run_state(id, from, state, error).await
    }

    async fn update_run_state(
        &self,
        id: &str,
        from: Option<RunState>,
        state: RunState,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let (started, ended) = match state {
            RunState::Running => (Some(now), None),
            s if !s.is_active() => (None, Some(now)),
            _ => (None, None),
        };
        let done = sqlx::query(
            "update runs set state = $1, error = coalesce($2, error),
             started_ms = coalesce(started_ms, $3), ended_ms = coalesce($4, ended_ms)
             where id = $5 and ($6 is null or state = $6)",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(started)
        .bind(ended)
        .bind(id)
        .bind(from.map(RunState::as_str))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
