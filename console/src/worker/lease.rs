//! The worker's side of scale-out (docs/OPERATIONS.md): it registers in
//! the metadata store, and every third of the lease time it heartbeats,
//! renews the leases of the runs it holds and reads them back. From that
//! it learns which runs were given to it (it launches them), which it lost
//! (their tasks stop writing at once), and what consoles asked of them
//! (stop, snapshot now). Its tasks may write only until 3/4 of the lease
//! after the last renewal that succeeded, so a worker cut off from the
//! store stops writing before anyone else can take its runs over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sluice_runtime::job::task::TaskCommand;

use super::{LaunchPlan, RunningJob, TaskStatus, Totals, Worker};
use crate::store::{OwnedRun, RunState, WorkerState};

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
        // Taken before the renewal: a run launched meanwhile is judged at
        // the next beat, not by a read older than its claim.
        let local: Vec<Arc<RunningJob>> = self.running.lock().expect("running lock").values().cloned().collect();
        let state = if self.draining.load(Ordering::SeqCst) { WorkerState::Draining } else { WorkerState::Up };
        self.store.heartbeat(&self.id, state, &serde_json::to_value(self.reports())?).await?;
        let owned = self.store.renew_leases(&self.id, self.lease_ms()).await?;
        for running in &local {
            match owned.iter().find(|o| o.run.id == running.run_id) {
                // A gate that lapsed stays shut: the lease may have been
                // taken over meanwhile, so the run restarts under a new epoch.
                Some(o) if o.epoch == running.epoch && running.gate.is_open() => {
                    running.gate.extend(renewed_at, self.write_window());
                    self.answer_requests(running, o);
                }
                _ => self.lose(running),
            }
        }
        for o in owned {
            // Epoch 0: created for this worker by a start on this process,
            // which launches it itself.
            if o.epoch == 0 || self.holds(&o.run.id) {
                continue;
            }
            match o.run.state {
                // Left stopping by this worker's previous process, or
                // asked to stop before it was launched.
                _ if o.run.state == RunState::Stopping || o.stop_request.is_some() => {
                    let _ = self.store.set_run_state_as(&o.run.id, o.epoch, RunState::Stopped, None).await;
                }
                _ if self.draining.load(Ordering::SeqCst) => {
                    let restore = super::RestoreFrom::parse(o.run.restore_from.as_deref()).resumed();
                    let _ = self.store.release_run(&o.run.id, &self.id, o.epoch, &restore.as_text()).await;
                }
                state => {
                    let mut run = o.run.clone();
                    if state == RunState::Running {
                        // Running here before this process started: resume it.
                        run.restore_from =
                            Some(super::RestoreFrom::parse(run.restore_from.as_deref()).resumed().as_text());
                    }
                    let worker = self.clone();
                    tokio::spawn(async move {
                        let id = run.id.clone();
                        if let Err(e) = worker.launch(run).await {
                            tracing::warn!(run = %id, error = %e, "an assigned run did not start");
                        }
                    });
                }
            }
        }
        Ok(())
    }

    /// The lease of `running` went elsewhere: its tasks write nothing more.
    fn lose(&self, running: &RunningJob) {
        running.gate.revoke();
        for control in running.controls() {
            let _ = control.try_send(TaskCommand::Stop { snapshot: false });
        }
    }

    /// Acts on a console's stop or snapshot request for a run held here.
    fn answer_requests(self: &Arc<Self>, running: &Arc<RunningJob>, owned: &OwnedRun) {
        if let Some(request) = &owned.stop_request
            && !running.stopping.load(Ordering::SeqCst)
        {
            let (worker, job, snapshot) = (self.clone(), running.job_id.clone(), request == "snapshot");
            tokio::spawn(async move {
                if let Err(e) = worker.stop(&job, snapshot).await {
                    tracing::warn!(job = %job, error = %e, "a requested stop failed");
                }
            });
        }
        let asked = owned.snapshot_request_ms.unwrap_or(0);
        if asked > owned.snapshot_done_ms.unwrap_or(0) && !running.snapshot_busy.swap(true, Ordering::SeqCst) {
            let (worker, running) = (self.clone(), running.clone());
            tokio::spawn(async move {
                // Answered only once stored: the console reads the newest.
                match worker.snapshot_now(&running.job_id).await {
                    Ok(_) => {
                        let _ = worker.store.snapshot_done(&running.run_id, asked).await;
                    }
                    Err(e) => tracing::warn!(job = %running.job_id, error = %e, "a requested snapshot failed"),
                }
                running.snapshot_busy.store(false, Ordering::SeqCst);
            });
        }
    }

    /// What each run held here has done so far.
    pub fn reports(&self) -> Vec<RunReport> {
        let running: Vec<Arc<RunningJob>> = self.running.lock().expect("running lock").values().cloned().collect();
        running
            .iter()
            .map(|r| {
                let metrics = r.metrics();
                RunReport {
                    run_id: r.run_id.clone(),
                    job_id: r.job_id.clone(),
                    epoch: r.epoch,
                    totals: Totals::of(&metrics),
                    tasks: metrics
                        .iter()
                        .enumerate()
                        .map(|(i, m)| TaskStatus {
                            task: i,
                            key: r.keys.get(i).cloned().unwrap_or_default(),
                            worker: self.id.clone(),
                            records_in: sluice_runtime::metrics::TaskMetrics::get(&m.records_in),
                            records_out: sluice_runtime::metrics::TaskMetrics::get(&m.records_out),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// SIGTERM: every run held here stops with a snapshot and goes back to
    /// be assigned to another worker; then the worker signs off.
    pub async fn drain(self: &Arc<Self>) {
        self.draining.store(true, Ordering::SeqCst);
        let jobs: Vec<Arc<RunningJob>> = self.running.lock().expect("running lock").values().cloned().collect();
        for running in &jobs {
            running.handing_over.store(true, Ordering::SeqCst);
        }
        for running in jobs {
            if let Err(e) = self.stop(&running.job_id, true).await {
                tracing::warn!(job = %running.job_id, error = %e, "stopping to hand over");
            }
        }
        // Runs assigned meanwhile go back too.
        let _ = self.beat().await;
        let _ = self.store.worker_stopped(&self.id).await;
    }

    /// After a drain stopped `running` with a snapshot: back to assignment.
    pub(super) async fn hand_over(&self, plan: &LaunchPlan, running: &RunningJob) {
        let restore = running.restore.clone().resumed();
        match self.store.release_run(&plan.run.id, &self.id, running.epoch, &restore.as_text()).await {
            Ok(true) => {
                self.event(
                    plan,
                    "run",
                    "run.handover",
                    &format!(
                        "run {} left worker {} (drained) with a snapshot; it resumes on another worker",
                        plan.run.id, self.id
                    ),
                )
                .await;
            }
            Ok(false) => tracing::warn!(run = %plan.run.id, "the run moved before it could be handed over"),
            Err(e) => tracing::error!(run = %plan.run.id, error = %e, "cannot hand the run over"),
        }
    }
}
