//! A running instance of a job: its store, the guest's exports, and the
//! limits around every call.

use std::time::Instant;

use wasmtime::Store;

use super::bindings::{Batch, JobError, SluiceJob, Timer};
use super::engine::{JobEngine, LoadedComponent};
use super::host::{HostState, Output};
use super::limits::{JobLimits, LimitHit};
use crate::metrics::TaskMetrics;

/// Why a guest call failed. Each names the job, and the limit when one was hit.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(
        "job `{job}` exceeded its CPU limit of {limit_ms} ms for one call (a batch or a round of timers; \
         time it ran, host lookups included): an endless loop, or raise limits.cpu_per_batch"
    )]
    CpuLimit { job: String, limit_ms: u128 },
    #[error("job `{job}` exceeded its memory limit of {limit_mib} MiB")]
    MemoryLimit { job: String, limit_mib: usize },
    #[error("job `{job}` went past a limit: {limit}")]
    Limit { job: String, limit: LimitHit },
    #[error("job `{job}` trapped: {message}")]
    Trap { job: String, message: String },
    #[error("job `{job}` failed: {message}")]
    Job { job: String, message: String },
}

pub struct JobInstance {
    store: Store<HostState>,
    guest: SluiceJob,
    limits: JobLimits,
}

impl JobInstance {
    /// Instantiates the component and calls the job's `open`.
    pub async fn open(
        engine: &JobEngine,
        component: &LoadedComponent,
        host: HostState,
        limits: JobLimits,
    ) -> Result<Self, InstanceError> {
        let mut store = engine.new_store(host);
        store.data_mut().budget.start(limits.cpu_per_call);
        let guest = match component.pre.instantiate_async(&mut store).await {
            Ok(g) => g,
            Err(e) => {
                let host = store.data();
                let job = host.job.name.clone();
                if host.limiter.exceeded {
                    return Err(InstanceError::MemoryLimit { job, limit_mib: limits.memory_bytes >> 20 });
                }
                return Err(InstanceError::Trap { job, message: format!("instantiation failed: {e:#}") });
            }
        };
        let mut instance = JobInstance { store, guest, limits };
        let started = instance.start_call(0, 0);
        let result = instance.guest.sluice_job_job().call_open(&mut instance.store).await;
        instance.finish_call(started, result)?;
        instance.store.data_mut().opened = true;
        Ok(instance)
    }

    /// Processes a batch. Rows that forward input records refer to
    /// `batch.data`: route the output (see [`Output::rows`]) against the
    /// same batch.
    pub async fn process(&mut self, batch: &Batch) -> Result<(), InstanceError> {
        let started = self.start_call(batch.data.len(), batch.positions.len() / 2);
        let result = self.guest.sluice_job_job().call_process(&mut self.store, batch).await;
        self.finish_call(started, result)
    }

    pub async fn on_timer(&mut self, timers: &[Timer]) -> Result<(), InstanceError> {
        let started = self.start_call(0, 0);
        let result = self.guest.sluice_job_job().call_on_timer(&mut self.store, timers).await;
        self.finish_call(started, result)
    }

    /// The rows and rejections of the calls since the output was last
    /// cleared.
    pub fn output(&self) -> &Output {
        self.store.data().output()
    }

    /// Empties the output once it is routed (its buffers are kept for the
    /// next call).
    pub fn clear_output(&mut self) {
        self.store.data_mut().clear_output();
    }

    pub fn host(&self) -> &HostState {
        self.store.data()
    }

    pub fn host_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// `input_len`, `records`: bytes and records of the batch handed to the
    /// call (0 but in `process`).
    fn start_call(&mut self, input_len: usize, records: usize) -> Instant {
        self.store.data_mut().begin_call(input_len, records);
        self.store.data_mut().budget.start(self.limits.cpu_per_call);
        self.store.set_epoch_deadline(1);
        Instant::now()
    }

    /// Turns every way a guest call can fail into an error that names the
    /// job and, when one was hit, the limit.
    fn finish_call(
        &mut self,
        started: Instant,
        result: wasmtime::Result<Result<(), JobError>>,
    ) -> Result<(), InstanceError> {
        let host = self.store.data_mut();
        TaskMetrics::add(&host.metrics.job_nanos, started.elapsed().as_nanos() as u64);
        let job = host.job.name.clone();
        let limit_hit = host.limit_hit.take();
        let host = self.store.data();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(InstanceError::Job { job, message: e.message }),
            Err(_) if let Some(limit) = limit_hit => Err(InstanceError::Limit { job, limit }),
            Err(_) if host.limiter.exceeded => {
                Err(InstanceError::MemoryLimit { job, limit_mib: self.limits.memory_bytes >> 20 })
            }
            Err(e) if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
                Err(InstanceError::CpuLimit { job, limit_ms: self.limits.cpu_per_call.as_millis() })
            }
            Err(e) => {
                let mut message = format!("{e:#}");
                let stderr = host.take_stderr();
                if !stderr.trim().is_empty() {
                    message.push_str("\njob stderr:\n");
                    message.push_str(stderr.trim_end());
                }
                Err(InstanceError::Trap { job, message })
            }
        }
    }
}
