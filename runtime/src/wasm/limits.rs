use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Limits of one job's instances.
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    /// Largest linear memory, bytes.
    pub memory_bytes: usize,
    /// Longest one guest call may run.
    pub cpu_per_call: Duration,
    /// Largest keyed state (`StateBackend::bytes`), bytes.
    pub state_bytes: usize,
    /// Most row bytes one call may emit (a forwarded row counts its
    /// record's bytes: the task copies them for the sinks).
    pub output_bytes: usize,
    /// Most timers registered at once.
    pub timers: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            memory_bytes: 256 << 20,
            cpu_per_call: Duration::from_secs(10),
            state_bytes: 1 << 30,
            output_bytes: 64 << 20,
            timers: 1_000_000,
        }
    }
}

/// Longest timer key and tag: a timer is kept until it fires, so its bytes
/// are bounded like a state key's.
pub const MAX_TIMER_KEY: usize = 64 << 10;
pub const MAX_TIMER_TAG: usize = 256;
/// Custom metrics one job may declare, and the longest name.
pub const MAX_METRICS: usize = 256;
pub const MAX_METRIC_NAME: usize = 128;
/// Longest log line and dead-letter reason kept (longer ones are cut).
pub const MAX_LOG_LINE: usize = 4096;
pub const MAX_REASON: usize = 1024;
/// Log lines kept per guest call; later ones are counted as dropped.
pub const MAX_LOGS_PER_CALL: usize = 1000;

/// A limit a guest call went past: the trap it caused is reported as
/// this, naming the limit, rather than as a bare trap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("its state grew past limits.state_mb = {mb} MiB ({keys} keys)")]
    State { mb: usize, keys: usize },
    #[error("the rows it wrote to dimension `{name}` kept in the process grew past limits.state_mb = {mb} MiB")]
    DimensionRows { name: String, mb: usize },
    #[error("one call emitted more than limits.output_mb = {mb} MiB of rows")]
    Output { mb: usize },
    #[error("it registered more than limits.timers = {limit} timers")]
    Timers { limit: usize },
    #[error("a timer's key ({key} bytes) or tag ({tag} bytes) is longer than {MAX_TIMER_KEY} / {MAX_TIMER_TAG} bytes")]
    TimerSize { key: usize, tag: usize },
    #[error("it declared more than {MAX_METRICS} custom metrics, or a metric name longer than {MAX_METRIC_NAME} bytes")]
    Metrics,
    #[error("one call rejected {rejected} records, more than the {records} it was given")]
    Rejections { rejected: usize, records: usize },
}

/// Enforces the memory limit over all of an instance's linear memories
/// together (a composed component has several), and remembers that it was
/// hit, so the error can name the limit instead of a bare trap.
#[derive(Debug)]
pub struct MemoryLimiter {
    pub max_bytes: usize,
    /// Bytes of linear memory granted so far (wasm memories never shrink).
    pub used_bytes: usize,
    pub exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        MemoryLimiter { max_bytes, used_bytes: 0, exceeded: false }
    }
}

/// Tables hold function references; no job needs more entries than this.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.used_bytes.saturating_add(desired.saturating_sub(current));
        if total > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: the job asked for {} MiB in all, its limit is {} MiB",
                total >> 20,
                self.max_bytes >> 20
            )));
        }
        self.used_bytes = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_covers_all_memories_together() {
        let mut limiter = MemoryLimiter::new(10 << 20);
        assert!(limiter.memory_growing(0, 6 << 20, None).unwrap(), "first memory: 6 MiB");
        assert!(limiter.memory_growing(0, 3 << 20, None).unwrap(), "second memory: 9 MiB in all");
        let err = limiter.memory_growing(3 << 20, 5 << 20, None).unwrap_err();
        assert!(err.to_string().contains("11 MiB in all"), "{err}");
        assert!(limiter.exceeded);
    }
}
