//! `sluice:job/context`: names, parameters, logs and custom metrics.

use super::output::truncate;
use super::{HostState, bad_handle};
use crate::metrics::TaskMetrics;
use crate::wasm::bindings::sluice::job::context::Host;
use crate::wasm::bindings::{LogLevel, MetricKind};
use crate::wasm::limits::{LimitHit, MAX_LOG_LINE, MAX_LOGS_PER_CALL, MAX_METRIC_NAME, MAX_METRICS};

impl Host for HostState {
    fn job_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.job.name.clone())
    }

    fn parameters(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.job.parameters.clone())
    }

    fn source_names(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.job.sources.clone())
    }

    fn stage(&mut self) -> wasmtime::Result<u32> {
        Ok(self.job.stage)
    }

    fn log(&mut self, level: LogLevel, mut message: String) -> wasmtime::Result<()> {
        self.logs_in_call += 1;
        if self.logs_in_call > MAX_LOGS_PER_CALL {
            TaskMetrics::add(&self.metrics.logs_dropped, 1);
            return Ok(());
        }
        truncate(&mut message, MAX_LOG_LINE);
        let job = self.job.name.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(target: "sluice::job", job, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "sluice::job", job, "{message}"),
            LogLevel::Info => tracing::info!(target: "sluice::job", job, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "sluice::job", job, "{message}"),
            LogLevel::Error => tracing::error!(target: "sluice::job", job, "{message}"),
        }
        self.metrics.log(level, message);
        Ok(())
    }

    fn metric(&mut self, name: String, kind: MetricKind) -> wasmtime::Result<u32> {
        // The name is checked before it is declared: the task's metrics
        // outlive it (the console shows a failed job's), so a refused name
        // must not be kept among them.
        if name.len() > MAX_METRIC_NAME {
            return Err(self.hit(LimitHit::Metrics));
        }
        match self.metrics.declare(&name, kind, MAX_METRICS) {
            Some(handle) => Ok(handle),
            None => Err(self.hit(LimitHit::Metrics)),
        }
    }

    fn record_metric(&mut self, metric: u32, value: f64) -> wasmtime::Result<()> {
        if self.metrics.record(metric, value) { Ok(()) } else { Err(bad_handle("metric", metric)) }
    }
}
