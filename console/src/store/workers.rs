//! Workers and the control plane's leader lease (docs/OPERATIONS.md; the
//! task leases are in `tasks.rs`). Lease times are on the database's
//! clock, so the machines' clocks need not agree.

use serde::Serialize;
use sqlx::Row;

use super::tasks::TASKS;
use super::{Dialect, Store, StoreResult, now_ms};

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
    /// Active runs it holds tasks of.
    pub runs: i64,
    /// Active tasks it holds (each takes a slot; a task is one or more
    /// shards of a run).
    pub tasks: i64,
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

const ACTIVE_HELD: &str = "('starting', 'running', 'stopping')";

/// The `NOTIFY` channel that wakes a worker (the payload is its name).
const WAKE_CHANNEL: &str = "sluice_worker_wake";

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
        // A beat read before a drain began never undoes it.
        sqlx::query(
            "update workers set state = case when state = 'draining' and $1 = 'up' then state else $1 end,
             heartbeat_ms = $2, status = $3 where id = $4",
        )
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
             (select count(distinct t.run_id) from run_tasks t join runs r on r.id = t.run_id
              where t.worker = w.id and t.state = 'active' and r.state in {ACTIVE_HELD}) as runs,
             (select count(distinct t.run_id || ':' || cast(t.task_group % {TASKS} as text))
              from run_tasks t join runs r on r.id = t.run_id
              where t.worker = w.id and t.state = 'active' and r.state in {ACTIVE_HELD}) as tasks
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
                    tasks: r.try_get("tasks")?,
                    status: serde_json::from_str(&r.try_get::<String, _>("status")?).unwrap_or_default(),
                })
            })
            .collect()
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
}
