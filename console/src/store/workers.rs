//! Workers, run leases and the control plane's leader lease
//! (docs/OPERATIONS.md). Lease times are on the database's clock, so the
//! machines' clocks need not agree; every takeover raises a run's fencing
//! epoch past every epoch its job had before.

use serde::Serialize;
use sqlx::Row;

use super::runs::RUN_COLUMNS;
use super::{Dialect, Run, RunState, Store, StoreResult, now_ms};

/// A registered worker as the Workers view shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub slots: i64,
    /// `up`, `draining`, `stopped` or `lost` (stopped heartbeating).
    pub state: WorkerState,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    /// Active runs it holds.
    pub runs: i64,
    /// What it reported at its last heartbeat (runs, tasks, counters).
    #[schema(value_type = Object)]
    pub status: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Up,
    Draining,
    Stopped,
    Lost,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Up => "up",
            WorkerState::Draining => "draining",
            WorkerState::Stopped => "stopped",
            WorkerState::Lost => "lost",
        }
    }

    fn parse(text: &str) -> WorkerState {
        match text {
            "up" => WorkerState::Up,
            "draining" => WorkerState::Draining,
            "stopped" => WorkerState::Stopped,
            _ => WorkerState::Lost,
        }
    }
}

/// A run a worker holds, as its renewal reads it back.
#[derive(Debug, Clone)]
pub struct OwnedRun {
    pub run: Run,
    pub epoch: i64,
    /// `snapshot` or `no-snapshot` when a console asked it to stop.
    pub stop_request: Option<String>,
    /// Set when a console asked for a snapshot now (answered by
    /// `snapshot_done_ms` reaching it).
    pub snapshot_request_ms: Option<i64>,
    pub snapshot_done_ms: Option<i64>,
}

const ACTIVE_HELD: &str = "('starting', 'running', 'stopping')";

/// The `NOTIFY` channel that wakes a worker (the payload is its name).
const WAKE_CHANNEL: &str = "sluice_worker_wake";

/// The next epoch of `runs`' job: above every epoch the job had.
const NEXT_EPOCH: &str = "(select coalesce(max(r.lease_epoch), 0) + 1 from runs r where r.job_id = runs.job_id)";

impl Store {
    /// Now on the database's clock (the one all leases are measured on).
    pub async fn clock_ms(&self) -> StoreResult<i64> {
        match self.dialect {
            Dialect::Sqlite => Ok(now_ms()),
            Dialect::Postgres => {
                let row = sqlx::query("select cast(extract(epoch from clock_timestamp()) * 1000 as bigint) as now")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("now")?)
            }
        }
    }

    /// Registers (or re-registers, after a restart) worker `id`, up.
    pub async fn register_worker(&self, id: &str, host: &str, slots: u32) -> StoreResult<()> {
        let now = self.clock_ms().await?;
        sqlx::query(
            "insert into workers (id, host, slots, state, started_ms, heartbeat_ms) values ($1, $2, $3, 'up', $4, $4)
             on conflict (id) do update set host = excluded.host, slots = excluded.slots, state = 'up',
             started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms",
        )
        .bind(id)
        .bind(host)
        .bind(i64::from(slots))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A worker's heartbeat: its state and what it runs.
    pub async fn heartbeat(&self, id: &str, state: WorkerState, status: &serde_json::Value) -> StoreResult<()> {
        let now = self.clock_ms().await?;
        sqlx::query("update workers set state = $1, heartbeat_ms = $2, status = $3 where id = $4")
            .bind(state.as_str())
            .bind(now)
            .bind(status.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks workers silent for longer than `lease_ms` lost; returns them.
    pub async fn mark_lost_workers(&self, lease_ms: i64) -> StoreResult<Vec<String>> {
        let now = self.clock_ms().await?;
        let rows = sqlx::query("select id from workers where state in ('up', 'draining') and heartbeat_ms < $1")
            .bind(now - lease_ms)
            .fetch_all(&self.pool)
            .await?;
        let lost: Vec<String> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
        for id in &lost {
            sqlx::query("update workers set state = 'lost' where id = $1 and heartbeat_ms < $2")
                .bind(id)
                .bind(now - lease_ms)
                .execute(&self.pool)
                .await?;
        }
        Ok(lost)
    }

    /// Every registered worker, with the runs it holds.
    pub async fn workers(&self) -> StoreResult<Vec<WorkerInfo>> {
        self.workers_named(None).await
    }

    /// Worker `id` as the Workers view shows it.
    pub async fn worker(&self, id: &str) -> StoreResult<Option<WorkerInfo>> {
        Ok(self.workers_named(Some(id)).await?.pop())
    }

    async fn workers_named(&self, id: Option<&str>) -> StoreResult<Vec<WorkerInfo>> {
        let rows = sqlx::query(&format!(
            "select w.id, w.host, w.slots, w.state, w.started_ms, w.heartbeat_ms, w.status,
             (select count(*) from runs r where r.worker = w.id and r.state in {ACTIVE_HELD}) as runs
             from workers w where ($1 is null or w.id = $1) order by w.id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkerInfo {
                    id: r.try_get("id")?,
                    host: r.try_get("host")?,
                    slots: r.try_get("slots")?,
                    state: WorkerState::parse(&r.try_get::<String, _>("state")?),
                    started_ms: r.try_get("started_ms")?,
                    heartbeat_ms: r.try_get("heartbeat_ms")?,
                    runs: r.try_get("runs")?,
                    status: serde_json::from_str(&r.try_get::<String, _>("status")?).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Extends the leases of every run `worker` holds to `lease_ms` from
    /// now, and returns those runs (so the worker learns which it lost,
    /// which it was given, and what consoles asked of them).
    pub async fn renew_leases(&self, worker: &str, lease_ms: i64) -> StoreResult<Vec<OwnedRun>> {
        let now = self.clock_ms().await?;
        sqlx::query(&format!(
            "update runs set lease_expires_ms = $1 where worker = $2 and state in {ACTIVE_HELD} and lease_epoch > 0"
        ))
        .bind(now + lease_ms)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        let rows = sqlx::query(&format!(
            "select {RUN_COLUMNS}, lease_epoch, stop_request, snapshot_request_ms, snapshot_done_ms
             from runs where worker = $1 and state in {ACTIVE_HELD} order by created_ms"
        ))
        .bind(worker)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OwnedRun {
                    run: Run::from_row(r)?,
                    epoch: r.try_get("lease_epoch")?,
                    stop_request: r.try_get("stop_request")?,
                    snapshot_request_ms: r.try_get("snapshot_request_ms")?,
                    snapshot_done_ms: r.try_get("snapshot_done_ms")?,
                })
            })
            .collect()
    }

    /// Takes the lease of active run `id` for `owner` with a new epoch, if
    /// it is held by `held_by` (`None`: by nobody) at `epoch` (`None`: any).
    /// Returns the new epoch, or `None` when someone else moved first.
    pub async fn claim_run(
        &self,
        id: &str,
        owner: &str,
        held_by: Option<&str>,
        epoch: Option<i64>,
        lease_ms: i64,
    ) -> StoreResult<Option<i64>> {
        let now = self.clock_ms().await?;
        let done = sqlx::query(&format!(
            "update runs set worker = $1, lease_epoch = {NEXT_EPOCH}, lease_expires_ms = $2
             where id = $3 and state in {ACTIVE_HELD}
               and (($4 is null and worker is null) or worker = $4)
               and ($5 is null or lease_epoch = $5)"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(id)
        .bind(held_by)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row =
            sqlx::query("select lease_epoch, worker from runs where id = $1").bind(id).fetch_one(&self.pool).await?;
        let (now_epoch, now_owner): (i64, Option<String>) = (row.try_get("lease_epoch")?, row.try_get("worker")?);
        Ok((now_owner.as_deref() == Some(owner)).then_some(now_epoch))
    }

    /// Active runs whose lease expired (their worker stopped renewing).
    pub async fn expired_runs(&self) -> StoreResult<Vec<(Run, i64)>> {
        let now = self.clock_ms().await?;
        let rows = sqlx::query(&format!(
            "select {RUN_COLUMNS}, lease_epoch from runs
             where state in {ACTIVE_HELD} and worker is not null and coalesce(lease_expires_ms, 0) < $1
             order by created_ms"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((Run::from_row(r)?, r.try_get("lease_epoch")?))).collect()
    }

    /// Hands run `id` (held at `epoch` by a worker that stopped renewing)
    /// to `owner` with a new epoch, to resume from its latest snapshot;
    /// `None` when it moved meanwhile.
    pub async fn take_over_run(
        &self,
        id: &str,
        epoch: i64,
        owner: Option<&str>,
        restore_from: &str,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let now = self.clock_ms().await?;
        let done = sqlx::query(&format!(
            "update runs set worker = $1, lease_epoch = {NEXT_EPOCH}, lease_expires_ms = $2, state = 'starting',
             restore_from = $3, stop_request = null
             where id = $4 and lease_epoch = $5 and state in ('starting', 'running')
               and coalesce(lease_expires_ms, 0) < $6"
        ))
        .bind(owner)
        .bind(owner.map(|_| now + lease_ms))
        .bind(restore_from)
        .bind(id)
        .bind(epoch)
        // Still expired: the owner may have renewed since the leader looked.
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Runs waiting for a worker: starting, held by nobody.
    pub async fn unassigned_runs(&self) -> StoreResult<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where state = 'starting' and worker is null order by created_ms"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Run::from_row).collect()
    }

    /// Hands run `id` (held by `from`, at `epoch`) back for assignment to
    /// another worker (a draining worker's runs, stopped with a snapshot).
    pub async fn release_run(&self, id: &str, from: &str, epoch: i64, restore_from: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "update runs set worker = null, lease_expires_ms = null, state = 'starting', restore_from = $1
             where id = $2 and worker = $3 and lease_epoch = $4",
        )
        .bind(restore_from)
        .bind(id)
        .bind(from)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Asks the worker holding run `id` to stop it (picked up at its next
    /// heartbeat); a run no worker holds (just taken over, or handed back
    /// by a drain) stops at once.
    pub async fn request_stop(&self, id: &str, snapshot: bool) -> StoreResult<bool> {
        let done = sqlx::query(&format!(
            "update runs set stop_request = $1,
             state = case when worker is null then 'stopped' else 'stopping' end,
             ended_ms = case when worker is null then $2 else ended_ms end
             where id = $3 and state in {ACTIVE_HELD}"
        ))
        .bind(if snapshot { "snapshot" } else { "no-snapshot" })
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stops run `id` if it is starting and no worker holds it yet.
    pub async fn cancel_unassigned(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "update runs set state = 'stopped', ended_ms = $1 where id = $2 and state = 'starting' and worker is null",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends run `id`, stopping at `epoch` when its worker stopped renewing,
    /// if its lease is still expired.
    pub async fn end_expired_stop(&self, id: &str, epoch: i64, why: &str) -> StoreResult<bool> {
        let now = self.clock_ms().await?;
        let done = sqlx::query(
            "update runs set state = 'stopped', ended_ms = $1, error = $2
             where id = $3 and lease_epoch = $4 and state = 'stopping' and coalesce(lease_expires_ms, 0) < $5",
        )
        .bind(now_ms())
        .bind(why)
        .bind(id)
        .bind(epoch)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Asks the worker holding run `id` for a snapshot now; returns the
    /// request's time, which `snapshot_done_ms` reaches when it is taken.
    pub async fn request_snapshot(&self, id: &str) -> StoreResult<i64> {
        let now = self.clock_ms().await?;
        sqlx::query("update runs set snapshot_request_ms = $1 where id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(now)
    }

    /// The worker answers a snapshot request (`done` = the request's time).
    pub async fn snapshot_done(&self, id: &str, done: i64) -> StoreResult<()> {
        sqlx::query("update runs set snapshot_done_ms = $1 where id = $2")
            .bind(done)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `snapshot_done_ms` of run `id`.
    pub async fn snapshot_answer(&self, id: &str) -> StoreResult<Option<i64>> {
        let row =
            sqlx::query("select snapshot_done_ms from runs where id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => r.try_get("snapshot_done_ms")?,
            None => None,
        })
    }

    /// Wakes worker `id` so it reads the runs just given to it now, not at
    /// its next heartbeat (PostgreSQL `NOTIFY`; on SQLite the only worker
    /// is in the leader's own process).
    pub async fn wake_worker(&self, id: &str) -> StoreResult<()> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("select pg_notify($1, $2)").bind(WAKE_CHANNEL).bind(id).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Waits for wake-ups of worker `id` and calls `wake` for each; ends
    /// only when it cannot listen at all (the heartbeat then does the work).
    pub async fn listen_for_wakeups(&self, id: &str, wake: impl Fn()) -> StoreResult<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(WAKE_CHANNEL).await?;
        loop {
            // `recv` reconnects by itself after a lost connection.
            match listener.recv().await {
                Ok(note) if note.payload() == id => wake(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(worker = id, error = %e, "listening for wake-ups; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Takes or renews leader lease `name` for `holder` until `lease_ms`
    /// from now; says whether `holder` holds it.
    pub async fn lead(&self, name: &str, holder: &str, lease_ms: i64) -> StoreResult<bool> {
        let now = self.clock_ms().await?;
        let taken = sqlx::query(
            "update leader_leases set holder = $1, expires_ms = $2,
             epoch = case when holder = $1 then epoch else epoch + 1 end
             where name = $3 and (holder = $1 or expires_ms < $4)",
        )
        .bind(holder)
        .bind(now + lease_ms)
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(true);
        }
        let inserted = sqlx::query(
            "insert into leader_leases (name, holder, epoch, expires_ms) values ($1, $2, 1, $3)
             on conflict (name) do nothing",
        )
        .bind(name)
        .bind(holder)
        .bind(now + lease_ms)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Gives leader lease `name` up (on shutdown), if `holder` holds it.
    pub async fn resign(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("delete from leader_leases where name = $1 and holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A stopping worker's farewell.
    pub async fn worker_stopped(&self, id: &str) -> StoreResult<()> {
        sqlx::query("update workers set state = 'stopped' where id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Changes a run's state as the owner of lease `epoch`: refused (false)
    /// once the run was taken over, so a zombie cannot overwrite it.
    pub async fn set_run_state_as(
        &self,
        id: &str,
        epoch: i64,
        state: RunState,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        self.change_run_state_fenced(id, Some(epoch), state, error).await
    }
}
