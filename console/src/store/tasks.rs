//! Task leases (docs/OPERATIONS.md): each shard (partition group) of a run
//! has a lease row of its own (`task_group` is the shard; the shards of one
//! task, `shard % runs.parallelism`, are kept on one worker and take one
//! slot): its worker, an expiry on the
//! database's clock, and a fencing epoch. Epochs come from one counter per
//! job, so they grow across takeovers and runs; a run's fencing floor
//! (`runs.lease_epoch`, set when its tasks are planned) is above every
//! epoch of the job's earlier runs and at or below every epoch of its own
//! tasks. The run keeps the run's own: its state, and the stop and
//! snapshot requests of consoles, which each task's worker answers.

use sqlx::Row;

use super::runs::{RUN_COLUMNS, RunShape};
use super::{Run, RunState, Store, StoreResult, now_ms};

/// A task a worker holds, as its renewal reads it back.
#[derive(Debug, Clone)]
pub struct OwnedTask {
    pub run: Run,
    pub group: u32,
    pub epoch: i64,
    /// `snapshot` or `no-snapshot` when a console asked the run to stop.
    pub stop_request: Option<String>,
    /// Set when a console asked the run for a snapshot now (answered by
    /// the task's `snapshot_done_ms` reaching it).
    pub snapshot_request_ms: Option<i64>,
    pub snapshot_done_ms: Option<i64>,
}

/// A task's lease as the control plane sees it.
#[derive(Debug, Clone)]
pub struct TaskLease {
    pub run: Run,
    pub group: u32,
    pub worker: Option<String>,
    pub epoch: i64,
}

/// Where one shard of a run is (the job view).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TaskPlace {
    /// The shard (partition group).
    pub group: u32,
    /// The task it is packed into (`group % parallelism`): one worker slot.
    #[serde(default)]
    pub task: u32,
    /// Its worker; none while it waits for one.
    pub worker: Option<String>,
    pub epoch: i64,
    /// `active`, `finished`, `stopped` or `failed`.
    pub state: String,
}

/// How ending a task went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnded {
    /// The task was taken over meanwhile: nothing was recorded.
    Lost,
    /// Recorded; the run goes on with its other tasks.
    Task,
    /// Recorded, and it ended the run in this state.
    Run(RunState),
}

const ACTIVE_RUN: &str = "('starting', 'running', 'stopping')";

/// A run's tasks, through the alias `r`: its parallelism; for runs planned
/// before shards, each group was a task of its own.
pub(super) const TASKS: &str = "coalesce(r.parallelism, r.task_groups, 1)";

/// The run columns as read through the alias `r`.
fn run_columns() -> String {
    RUN_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
}

/// The job's next epoch: above every epoch of its runs and their tasks.
/// `$J` is replaced by the parameter that binds the job's id.
const NEXT_EPOCH: &str = "(select coalesce(max(e), 0) + 1 from (
      select t.lease_epoch as e from run_tasks t join runs r on r.id = t.run_id where r.job_id = $J
      union all select r.lease_epoch as e from runs r where r.job_id = $J) as epochs)";

fn next_epoch(job_param: &str) -> String {
    NEXT_EPOCH.replace("$J", job_param)
}

/// The task `$G` of run `$R` is held at epoch `$E` and still active.
const HELD_AT: &str = "exists (select 1 from run_tasks t where t.run_id = $R and t.task_group = $G
      and t.lease_epoch = $E and t.state = 'active')";

fn held_at(run: &str, group: &str, epoch: &str) -> String {
    HELD_AT.replace("$R", run).replace("$G", group).replace("$E", epoch)
}

impl Store {
    /// Plans run `run`'s tasks the first time only: a lease row per shard
    /// of `shape` (the run's own shards when it has them already), held by
    /// `owner` at epoch 0 (it launches them itself) or waiting for
    /// assignment, and the run's fencing floor. Says whether it planned
    /// them now.
    pub async fn plan_tasks(
        &self,
        run: &Run,
        shape: RunShape,
        stage_topics: Option<&str>,
        owner: Option<&str>,
    ) -> StoreResult<bool> {
        let now = self.clock_ms().await?;
        let groups = shape.groups();
        let stages = (shape.stages > 1).then_some(i64::from(shape.stages));
        let mut tx = self.pool.begin().await?;
        let planned = sqlx::query(&format!(
            "update runs set task_groups = coalesce(task_groups, $1), parallelism = coalesce(parallelism, $4),
               stages = coalesce(stages, $5), stage_topics = coalesce(stage_topics, $6), lease_epoch = {}
             where id = $2 and state = 'starting' and not exists (select 1 from run_tasks t where t.run_id = $2)",
            next_epoch("$3")
        ))
        .bind(i64::from(shape.shards))
        .bind(&run.id)
        .bind(&run.job_id)
        .bind(i64::from(shape.parallelism))
        .bind(stages)
        .bind(stage_topics)
        .execute(&mut *tx)
        .await?;
        if planned.rows_affected() != 1 {
            return Ok(false);
        }
        for group in 0..groups {
            sqlx::query(
                "insert into run_tasks (run_id, task_group, worker, lease_expires_ms, state)
                 values ($1, $2, $3, $4, 'active')",
            )
            .bind(&run.id)
            .bind(i64::from(group))
            .bind(owner)
            // Until its owner claims it; if it never does (its process
            // died), it is taken over like any task whose lease expired.
            .bind(owner.map(|_| now + 60_000))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Run `run_id`'s fencing floor.
    pub async fn run_floor(&self, run_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("select lease_epoch from runs where id = $1").bind(run_id).fetch_one(&self.pool).await?;
        Ok(row.try_get("lease_epoch")?)
    }

    /// Extends the leases of every task of an active run `worker` holds
    /// to `lease_ms` from now, and returns those tasks (so it learns which
    /// it lost, which it was given, and what consoles asked of their runs).
    pub async fn renew_leases(&self, worker: &str, lease_ms: i64) -> StoreResult<Vec<OwnedTask>> {
        let now = self.clock_ms().await?;
        sqlx::query(&format!(
            "update run_tasks set lease_expires_ms = $1 where worker = $2 and state = 'active'
               and exists (select 1 from runs r where r.id = run_tasks.run_id and r.state in {ACTIVE_RUN})"
        ))
        .bind(now + lease_ms)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        let columns = run_columns();
        let rows = sqlx::query(&format!(
            "select {columns}, t.task_group, t.lease_epoch as task_epoch, r.stop_request, r.snapshot_request_ms,
             t.snapshot_done_ms as task_snapshot_done_ms
             from run_tasks t join runs r on r.id = t.run_id
             where t.worker = $1 and t.state = 'active' and r.state in {ACTIVE_RUN}
             order by r.created_ms, t.task_group"
        ))
        .bind(worker)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OwnedTask {
                    run: Run::from_row(r)?,
                    group: r.try_get::<i64, _>("task_group")? as u32,
                    epoch: r.try_get("task_epoch")?,
                    stop_request: r.try_get("stop_request")?,
                    snapshot_request_ms: r.try_get("snapshot_request_ms")?,
                    snapshot_done_ms: r.try_get("task_snapshot_done_ms")?,
                })
            })
            .collect()
    }

    /// Takes the lease of task `group` of active run `run` for `owner`
    /// with a new epoch, if it is held by `held_by` (`None`: by nobody) at
    /// `epoch` (`None`: any). Returns the new epoch, or `None` when someone
    /// else moved first.
    pub async fn claim_task(
        &self,
        run: &Run,
        group: u32,
        owner: &str,
        held_by: Option<&str>,
        epoch: Option<i64>,
        lease_ms: i64,
    ) -> StoreResult<Option<i64>> {
        let now = self.clock_ms().await?;
        let done = sqlx::query(&format!(
            "update run_tasks set worker = $1, lease_epoch = {}, lease_expires_ms = $2
             where run_id = $3 and task_group = $4 and state = 'active'
               and (($5 is null and worker is null) or worker = $5)
               and ($6 is null or lease_epoch = $6)
               and exists (select 1 from runs r where r.id = $3 and r.state in ('starting', 'running'))",
            next_epoch("$7")
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(&run.id)
        .bind(i64::from(group))
        .bind(held_by)
        .bind(epoch)
        .bind(&run.job_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query("select lease_epoch, worker from run_tasks where run_id = $1 and task_group = $2")
            .bind(&run.id)
            .bind(i64::from(group))
            .fetch_one(&self.pool)
            .await?;
        let (now_epoch, now_owner): (i64, Option<String>) = (row.try_get("lease_epoch")?, row.try_get("worker")?);
        if now_owner.as_deref() != Some(owner) {
            return Ok(None);
        }
        self.mirror_first_worker(&run.id).await?;
        Ok(Some(now_epoch))
    }

    /// `runs.worker` names the holder of group 0 (the run lists and older
    /// clients; the job view shows every task's worker).
    async fn mirror_first_worker(&self, run_id: &str) -> StoreResult<()> {
        sqlx::query(
            "update runs set worker = (select t.worker from run_tasks t where t.run_id = runs.id and t.task_group = 0)
             where id = $1",
        )
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Active tasks whose lease expired (their worker stopped renewing).
    pub async fn expired_tasks(&self) -> StoreResult<Vec<TaskLease>> {
        let now = self.clock_ms().await?;
        let columns = run_columns();
        let rows = sqlx::query(&format!(
            "select {columns}, t.task_group, t.worker as task_worker, t.lease_epoch as task_epoch
             from run_tasks t join runs r on r.id = t.run_id
             where t.state = 'active' and r.state in {ACTIVE_RUN} and t.worker is not null
               and coalesce(t.lease_expires_ms, 0) < $1
             order by r.created_ms, t.task_group"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TaskLease {
                    run: Run::from_row(r)?,
                    group: r.try_get::<i64, _>("task_group")? as u32,
                    worker: r.try_get("task_worker")?,
                    epoch: r.try_get("task_epoch")?,
                })
            })
            .collect()
    }

    /// Hands task `group` of run `run` (held at `epoch` by a worker that
    /// stopped renewing) to `owner` with a new epoch, or back to waiting
    /// when `owner` is none; false when it moved meanwhile.
    pub async fn take_over_task(
        &self,
        run: &Run,
        group: u32,
        epoch: i64,
        owner: Option<&str>,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let now = self.clock_ms().await?;
        let done = sqlx::query(&format!(
            "update run_tasks set worker = $1, lease_epoch = {}, lease_expires_ms = $2
             where run_id = $3 and task_group = $4 and lease_epoch = $5 and state = 'active'
               and coalesce(lease_expires_ms, 0) < $6
               and exists (select 1 from runs r where r.id = $3 and r.state in ('starting', 'running'))",
            next_epoch("$7")
        ))
        .bind(owner)
        .bind(owner.map(|_| now + lease_ms))
        .bind(&run.id)
        .bind(i64::from(group))
        .bind(epoch)
        // Still expired: the owner may have renewed since the leader looked.
        .bind(now)
        .bind(&run.job_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.mirror_first_worker(&run.id).await?;
        Ok(true)
    }

    /// The live worker that holds another shard of the same task as shard
    /// `group` of run `run_id` (other than `except`): where the shard goes,
    /// so that a task's shards share one worker and one slot.
    pub async fn task_partner(&self, run_id: &str, group: u32, except: Option<&str>) -> StoreResult<Option<String>> {
        let now = self.clock_ms().await?;
        let row = sqlx::query(&format!(
            "select t.worker from run_tasks t join runs r on r.id = t.run_id
             where t.run_id = $1 and t.task_group <> $2 and t.state = 'active' and t.worker is not null
               and coalesce(t.lease_expires_ms, 0) >= $3 and ($4 is null or t.worker <> $4)
               and t.task_group % {TASKS} = $2 % {TASKS}
               and exists (select 1 from workers w where w.id = t.worker and w.state = 'up')
             order by t.task_group limit 1"
        ))
        .bind(run_id)
        .bind(i64::from(group))
        .bind(now)
        .bind(except)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("worker")?,
            None => None,
        })
    }

    /// Shards waiting for a worker, of runs that are starting or running,
    /// each with the live worker holding another shard of its task (where
    /// it goes: see `task_partner`).
    pub async fn unassigned_tasks(&self) -> StoreResult<Vec<(Run, u32, Option<String>)>> {
        let now = self.clock_ms().await?;
        let columns = run_columns();
        let rows = sqlx::query(&format!(
            "select {columns}, t.task_group,
               (select p.worker from run_tasks p join workers w on w.id = p.worker
                where p.run_id = t.run_id and p.task_group <> t.task_group and p.state = 'active'
                  and coalesce(p.lease_expires_ms, 0) >= $1 and w.state = 'up'
                  and p.task_group % {TASKS} = t.task_group % {TASKS}
                order by p.task_group limit 1) as partner
             from run_tasks t join runs r on r.id = t.run_id
             where t.state = 'active' and t.worker is null and r.state in ('starting', 'running')
             order by r.created_ms, t.task_group"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((Run::from_row(r)?, r.try_get::<i64, _>("task_group")? as u32, r.try_get("partner")?)))
            .collect()
    }

    /// Starting runs whose tasks are not planned yet (the control plane
    /// plans them, then assigns them): left for assignment, or created for
    /// a console's own worker that did not plan them within a minute (its
    /// process died).
    /// Each with its project's id.
    pub async fn unplanned_runs(&self) -> StoreResult<Vec<(Run, String)>> {
        let columns = run_columns();
        let rows = sqlx::query(&format!(
            "select {columns}, j.project_id from runs r join jobs j on j.id = r.job_id where r.state = 'starting'
               and not exists (select 1 from run_tasks t where t.run_id = r.id)
               and (r.worker is null or r.created_ms < $1)
             order by r.created_ms"
        ))
        .bind(now_ms() - 60_000)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((Run::from_row(r)?, r.try_get("project_id")?))).collect()
    }

    /// Hands task `group` of run `run_id` (held by `from` at `epoch`) back
    /// for assignment to another worker (a draining worker's tasks, stopped
    /// with a snapshot); false when it moved or its run is stopping or
    /// ended (the task then ends instead).
    pub async fn release_task(&self, run_id: &str, group: u32, from: &str, epoch: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "update run_tasks set worker = null, lease_expires_ms = null
             where run_id = $1 and task_group = $2 and worker = $3 and lease_epoch = $4 and state = 'active'
               and exists (select 1 from runs r where r.id = $1 and r.state in ('starting', 'running'))",
        )
        .bind(run_id)
        .bind(i64::from(group))
        .bind(from)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.mirror_first_worker(run_id).await?;
        Ok(true)
    }

    /// The run is running, as the holder of task `group` at `epoch` says
    /// (false once that task was taken over or the run ended).
    pub async fn mark_run_running(&self, run_id: &str, group: u32, epoch: i64) -> StoreResult<bool> {
        let done = sqlx::query(&format!(
            "update runs set state = 'running', started_ms = coalesce(started_ms, $1)
             where id = $2 and state in ('starting', 'running') and {}",
            held_at("$2", "$3", "$4")
        ))
        .bind(now_ms())
        .bind(run_id)
        .bind(i64::from(group))
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how task `group` (held at `epoch`) ended. A failure fails
    /// the run (its other tasks stop, as their workers see the run ended);
    /// the last task to end ends the run: stopped if any of its tasks
    /// stopped, else finished.
    pub async fn end_task(
        &self,
        run_id: &str,
        group: u32,
        epoch: i64,
        outcome: RunState,
        error: Option<&str>,
    ) -> StoreResult<TaskEnded> {
        let task_state = match outcome {
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            _ => "stopped",
        };
        let done = sqlx::query(
            "update run_tasks set state = $1, lease_expires_ms = null
             where run_id = $2 and task_group = $3 and lease_epoch = $4 and state = 'active'",
        )
        .bind(task_state)
        .bind(run_id)
        .bind(i64::from(group))
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(TaskEnded::Lost);
        }
        self.end_run_if_done(run_id, outcome == RunState::Failed, error).await
    }

    /// Ends run `run_id` when it failed (`failed`) or none of its tasks is
    /// active any more.
    async fn end_run_if_done(&self, run_id: &str, failed: bool, error: Option<&str>) -> StoreResult<TaskEnded> {
        let state = if failed {
            "'failed'"
        } else {
            "case when exists (select 1 from run_tasks t where t.run_id = runs.id)
               and not exists (select 1 from run_tasks t where t.run_id = runs.id and t.state <> 'finished')
             then 'finished' else 'stopped' end"
        };
        let done = sqlx::query(&format!(
            "update runs set state = {state}, error = coalesce($1, error), ended_ms = $2
             where id = $3 and state in {ACTIVE_RUN}
               and ($4 or not exists (select 1 from run_tasks t where t.run_id = runs.id and t.state = 'active'))"
        ))
        .bind(error)
        .bind(now_ms())
        .bind(run_id)
        .bind(failed)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(TaskEnded::Task);
        }
        // Tasks still held elsewhere (the run failed) are ended with it:
        // their workers see the run gone and stop them, recording nothing.
        sqlx::query(
            "update run_tasks set state = 'stopped', lease_expires_ms = null where run_id = $1 and state = 'active'",
        )
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        let run = self.run(run_id).await?;
        Ok(TaskEnded::Run(run.map_or(RunState::Stopped, |r| r.state)))
    }

    /// Ends task `group` of stopping run `run_id`, held at `epoch` by a
    /// worker that stopped renewing, if its lease is still expired.
    pub async fn end_expired_stop(
        &self,
        run_id: &str,
        group: u32,
        epoch: i64,
        why: &str,
    ) -> StoreResult<Option<TaskEnded>> {
        let now = self.clock_ms().await?;
        let done = sqlx::query(
            "update run_tasks set state = 'stopped'
             where run_id = $1 and task_group = $2 and lease_epoch = $3 and state = 'active'
               and coalesce(lease_expires_ms, 0) < $4",
        )
        .bind(run_id)
        .bind(i64::from(group))
        .bind(epoch)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(Some(self.end_run_if_done(run_id, false, Some(why)).await?))
    }

    /// Asks the workers holding run `id`'s tasks to stop them (picked up
    /// at their next heartbeat); tasks no worker holds stop at once, and a
    /// run none of whose tasks is held stops at once.
    pub async fn request_stop(&self, id: &str, snapshot: bool) -> StoreResult<bool> {
        // The run first: from then on no task of it can be claimed.
        let done = sqlx::query(&format!(
            "update runs set stop_request = $1, state = 'stopping' where id = $2 and state in {ACTIVE_RUN}"
        ))
        .bind(if snapshot { "snapshot" } else { "no-snapshot" })
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.settle_stopping(id).await?;
        Ok(true)
    }

    /// Ends the tasks of stopping run `id` that no worker runs (waiting
    /// for one, or planned for a worker that never claimed them), and the
    /// run when none is left.
    async fn settle_stopping(&self, id: &str) -> StoreResult<TaskEnded> {
        sqlx::query(
            "update run_tasks set state = 'stopped'
             where run_id = $1 and state = 'active' and (worker is null or lease_epoch = 0)",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.end_run_if_done(id, false, None).await
    }

    /// The control plane's sweep: stopping runs whose remaining tasks no
    /// worker runs, and active runs left with no active task (a process
    /// that died between ending a run's last task and ending the run), end.
    /// Returns the runs it ended, with their end.
    pub async fn settle_runs(&self) -> StoreResult<Vec<(Run, RunState)>> {
        let rows = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where state in {ACTIVE_RUN}
               and exists (select 1 from run_tasks t where t.run_id = runs.id)
               and (not exists (select 1 from run_tasks t where t.run_id = runs.id and t.state = 'active')
                    or (state = 'stopping' and exists (select 1 from run_tasks t where t.run_id = runs.id
                        and t.state = 'active' and t.worker is null)))"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut ended = Vec::new();
        for run in rows.iter().map(Run::from_row).collect::<StoreResult<Vec<Run>>>()? {
            let end = if run.state == RunState::Stopping {
                self.settle_stopping(&run.id).await?
            } else {
                self.end_run_if_done(&run.id, false, None).await?
            };
            if let TaskEnded::Run(state) = end {
                ended.push((run, state));
            }
        }
        Ok(ended)
    }

    /// Stops run `id` if it is starting and no worker holds any of its
    /// tasks yet.
    pub async fn cancel_unassigned(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "update runs set state = 'stopped', ended_ms = $1 where id = $2 and state = 'starting'
               and not exists (select 1 from run_tasks t where t.run_id = $2 and t.state = 'active'
                               and t.worker is not null)",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("update run_tasks set state = 'stopped' where run_id = $1 and state = 'active'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// Asks the workers holding run `id`'s tasks for a snapshot now;
    /// returns the request's time, which every active task's
    /// `snapshot_done_ms` reaches once they are taken.
    pub async fn request_snapshot(&self, id: &str) -> StoreResult<i64> {
        let now = self.clock_ms().await?;
        sqlx::query("update runs set snapshot_request_ms = $1 where id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(now)
    }

    /// A worker answers a snapshot request for task `group` (`done` = the
    /// request's time).
    pub async fn snapshot_done(&self, id: &str, group: u32, done: i64) -> StoreResult<()> {
        sqlx::query("update run_tasks set snapshot_done_ms = $1 where run_id = $2 and task_group = $3")
            .bind(done)
            .bind(id)
            .bind(i64::from(group))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The oldest snapshot request every active task of run `id` answered.
    pub async fn snapshot_answer(&self, id: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "select min(coalesce(snapshot_done_ms, 0)) as done from run_tasks where run_id = $1 and state = 'active'",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("done")?,
            None => None,
        })
    }

    /// Where run `id`'s tasks are.
    pub async fn run_tasks(&self, id: &str) -> StoreResult<Vec<TaskPlace>> {
        let rows = sqlx::query(&format!(
            "select t.task_group, t.task_group % {TASKS} as task, t.worker, t.lease_epoch, t.state
             from run_tasks t join runs r on r.id = t.run_id where t.run_id = $1 order by t.task_group"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TaskPlace {
                    group: r.try_get::<i64, _>("task_group")? as u32,
                    task: r.try_get::<i64, _>("task")? as u32,
                    worker: r.try_get("worker")?,
                    epoch: r.try_get("lease_epoch")?,
                    state: r.try_get("state")?,
                })
            })
            .collect()
    }
}
