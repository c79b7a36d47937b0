//! The worker's side of scale-out (docs/OPERATIONS.md): it registers in
//! the metadata store, and every third of the lease time it heartbeats,
//! renews the leases of the tasks it holds and reads them back. From that
//! it learns which tasks were given to it (it launches them), which it
//! lost (they stop writing at once), and what consoles asked of their runs
//! (stop, snapshot now). Its tasks may write only until 3/4 of the lease
//! after the last renewal that succeeded, so a worker cut off from the
//! store stops writing before anyone else can take its tasks over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{HeldGroup, LaunchPlan, RunningJob, TaskStatus, Totals, Worker};
use crate::store::{OwnedTask, RunState, TaskEnded, WorkerState};

/// What a worker reports of one run at each heartbeat (the Workers view,
/// and the job view of a run on another process).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub job_id: String,
    pub epoch: i64,
    pub totals: Totals,
    pub tasks: Vec<TaskStatus>,
}

impl Worker {
    /// Registers, then heartbeats until the process ends.
    pub async fn keep_leases(self: Arc<Self>) {
        let host = super::hostname();
        loop {
            match self.store.register_worker(&self.id, &host, self.slots).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(worker = %self.id, error = %e, "cannot register; retrying");
                    tokio::time::sleep(self.lease / 3).await;
                }
            }
        }
        let listener = self.clone();
        tokio::spawn(async move {
            let nudge = || listener.nudge.notify_one();
            if let Err(e) = listener.store.listen_for_wakeups(&listener.id, nudge).await {
                tracing::warn!(worker = %listener.id, error = %e, "no wake-ups: new runs start at the next heartbeat");
            }
        });
        loop {
            if let Err(e) = self.beat().await {
                tracing::warn!(worker = %self.id, error = %e, "heartbeat failed; the runs' tasks stop writing if it keeps failing");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.lease / 3) => {}
                _ = self.nudge.notified() => {}
            }
        }
    }

    /// One heartbeat: report, renew, and act on what the store says.
    async fn beat(self: &Arc<Self>) -> anyhow::Result<()> {
        let renewed_at = Instant::now();
        // Taken before the renewal: a task launched meanwhile is judged at
        // the next beat, not by a read older than its claim.
        let local: Vec<(Arc<RunningJob>, Vec<HeldGroup>)> =
            self.running.lock().expect("running lock").values().map(|r| (r.clone(), r.groups())).collect();
        let state = if self.draining.load(Ordering::SeqCst) { WorkerState::Draining } else { WorkerState::Up };
        self.store.heartbeat(&self.id, state, &serde_json::to_value(self.reports())?).await?;
        let owned = self.store.renew_leases(&self.id, self.lease_ms()).await?;
        for (share, groups) in &local {
            let mut answered = None;
            for &(group, _, epoch) in groups {
                let open = share.tasks.lock().expect("tasks lock").get(&group).is_some_and(|t| t.gate.is_open());
                match owned.iter().find(|o| o.run.id == share.run_id && o.group == group) {
                    // A gate that lapsed stays shut: the lease may have been
                    // taken over meanwhile, so the task restarts under a new
                    // epoch.
                    Some(o) if o.epoch == epoch && open => {
                        if let Some(slot) = share.tasks.lock().expect("tasks lock").get(&group) {
                            slot.gate.extend(renewed_at, self.write_window());
                        }
                        let done = o.snapshot_done_ms.unwrap_or(0);
                        answered = Some(answered.map_or(done, |a: i64| a.min(done)));
                        self.answer_stop(share, o);
                    }
                    _ => share.lose(group),
                }
            }
            if let (Some(done), Some(o)) = (answered, owned.iter().find(|o| o.run.id == share.run_id)) {
                self.answer_snapshot(share, o.snapshot_request_ms.unwrap_or(0), done);
            }
        }
        for o in owned {
            // A task at epoch 0 was planned for this worker by a start on
            // this process, which launches it itself (it is `held` then);
            // one not held was left by a start that did not finish.
            if self.holds(&o.run.id, o.group) {
                continue;
            }
            if o.run.state == RunState::Stopping || o.stop_request.is_some() {
                // Left stopping by this worker's previous process, or asked
                // to stop before it was launched.
                let _ = self.store.end_task(&o.run.id, o.group, o.epoch, RunState::Stopped, None).await;
            } else if self.draining.load(Ordering::SeqCst) {
                let _ = self.store.release_task(&o.run.id, o.group, &self.id, o.epoch).await;
            } else {
                let worker = self.clone();
                tokio::spawn(async move {
                    let (id, group) = (o.run.id.clone(), o.group);
                    if let Err(e) = worker.launch_assigned(o.run, o.group, o.epoch).await {
                        tracing::warn!(run = %id, group, error = %e, "an assigned task did not start");
                    }
                });
            }
        }
        Ok(())
    }

    /// Acts on a console's stop request for a run with tasks held here.
    fn answer_stop(self: &Arc<Self>, share: &Arc<RunningJob>, owned: &OwnedTask) {
        if let Some(request) = &owned.stop_request
            && !share.stopping.swap(true, Ordering::SeqCst)
        {
            let (worker, share, snapshot) = (self.clone(), share.clone(), request == "snapshot");
            tokio::spawn(async move {
                if let Err(e) = worker.stop_here(&share, snapshot).await {
                    tracing::warn!(job = %share.job_id, error = %e, "a requested stop failed");
                }
            });
        }
    }

    /// Answers a console's snapshot request (`asked`) that the tasks held
    /// here answered only up to `done`.
    fn answer_snapshot(self: &Arc<Self>, share: &Arc<RunningJob>, asked: i64, done: i64) {
        if asked > done && !share.snapshot_busy.swap(true, Ordering::SeqCst) {
            let (worker, share) = (self.clone(), share.clone());
            tokio::spawn(async move {
                // Answered only once stored: the console reads the newest.
                match worker.snapshot_now(&share.job_id).await {
                    Ok(_) => {
                        for (group, _, _) in share.groups() {
                            let _ = worker.store.snapshot_done(&share.run_id, group, asked).await;
                        }
                    }
                    Err(e) => tracing::warn!(job = %share.job_id, error = %e, "a requested snapshot failed"),
                }
                share.snapshot_busy.store(false, Ordering::SeqCst);
            });
        }
    }

    /// What each run with tasks held here has done so far.
    pub fn reports(&self) -> Vec<RunReport> {
        let running: Vec<Arc<RunningJob>> = self.running.lock().expect("running lock").values().cloned().collect();
        running
            .iter()
            .map(|r| RunReport {
                run_id: r.run_id.clone(),
                job_id: r.job_id.clone(),
                epoch: r.groups().iter().map(|(_, _, epoch)| *epoch).max().unwrap_or(0),
                totals: Totals::of(&r.metrics()),
                tasks: r.task_statuses(&self.id),
            })
            .collect()
    }

    /// SIGTERM: every task held here stops with a snapshot and goes back to
    /// be assigned to another worker; then the worker signs off.
    pub async fn drain(self: &Arc<Self>) {
        self.draining.store(true, Ordering::SeqCst);
        // Said before any task is handed back, so that the control plane
        // sends no released shard back here to join the rest of its task.
        if let Err(e) = self
            .store
            .heartbeat(&self.id, WorkerState::Draining, &serde_json::to_value(self.reports()).unwrap_or_default())
            .await
        {
            tracing::warn!(error = %e, "cannot say the worker is draining");
        }
        let shares: Vec<Arc<RunningJob>> = self.running.lock().expect("running lock").values().cloned().collect();
        for share in &shares {
            share.handing_over.store(true, Ordering::SeqCst);
        }
        for share in shares {
            if let Err(e) = self.stop_here(&share, true).await {
                tracing::warn!(job = %share.job_id, error = %e, "stopping to hand over");
            }
        }
        // Tasks assigned meanwhile go back too.
        let _ = self.beat().await;
        let _ = self.store.worker_stopped(&self.id).await;
    }

    /// After a drain stopped task `group` (held at `epoch`) with a
    /// snapshot: back to assignment.
    pub(super) async fn hand_over(&self, plan: &LaunchPlan, group: u32, epoch: i64) {
        match self.store.release_task(&plan.run.id, group, &self.id, epoch).await {
            Ok(true) => {
                self.event(
                    plan,
                    "run",
                    "run.handover",
                    &format!(
                        "task {group} of run {} left worker {} (drained) with a snapshot; it resumes on another worker",
                        plan.run.id, self.id
                    ),
                )
                .await;
            }
            // The run is stopping or ended meanwhile (or the task moved):
            // the task ends here, stopped with its snapshot.
            Ok(false) => {
                if let Ok(TaskEnded::Run(ended)) =
                    self.store.end_task(&plan.run.id, group, epoch, RunState::Stopped, None).await
                {
                    self.event(
                        plan,
                        "run",
                        &format!("run.{}", ended.as_str()),
                        &format!("run {} {}", plan.run.id, ended.as_str()),
                    )
                    .await;
                }
            }
            Err(e) => tracing::error!(run = %plan.run.id, group, error = %e, "cannot hand the task over"),
        }
    }
}
