//! The threads jobs run on, apart from the console's. A job's guest code,
//! connectors and timers never share a thread with the REST API or the web
//! UI, so a busy or looping job (or many) cannot slow a request: the
//! operating system shares the cores between the two thread pools, and on
//! the jobs' own threads each guest yields every 5 ms (the runtime's CPU
//! budget), so one job cannot hold up another either.

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime};

use super::{WorkerError, WorkerResult};

pub struct JobThreads {
    /// Always `Some` until dropped.
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for JobThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobThreads").finish_non_exhaustive()
    }
}

impl JobThreads {
    /// A pool of one thread per core (at least two).
    pub fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        let runtime =
            Builder::new_multi_thread().worker_threads(threads).thread_name("sluice-job").enable_all().build()?;
        Ok(JobThreads { runtime: Some(runtime) })
    }

    pub fn handle(&self) -> &Handle {
        self.runtime.as_ref().expect("the job threads live until dropped").handle()
    }

    /// Runs `future` on the job threads and waits for its result there (the
    /// caller's thread is free meanwhile); `Err` when it panicked or the
    /// threads are shutting down.
    pub async fn run<F>(&self, future: F) -> WorkerResult<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future).await.map_err(|e| WorkerError::Task(format!("the job's thread failed: {e}")))
    }
}

impl Drop for JobThreads {
    fn drop(&mut self) {
        // A runtime may not be dropped (which waits) from async code, where
        // the console drops its worker on shutdown.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
