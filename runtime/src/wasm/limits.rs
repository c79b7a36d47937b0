use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Limits of one job's instances.
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    /// Largest linear memory, bytes.
    pub memory_bytes: usize,
    /// Longest one guest call may run.
    pub cpu_per_call: Duration,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits { memory_bytes: 256 << 20, cpu_per_call: Duration::from_secs(10) }
    }
}

/// Enforces the memory limit and remembers that it was hit, so the error
/// can name the limit instead of a bare trap.
#[derive(Debug)]
pub struct MemoryLimiter {
    pub max_bytes: usize,
    pub exceeded: bool,
}

/// Tables hold function references; no job needs more entries than this.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: the job asked for {} MiB, its limit is {} MiB",
                desired >> 20,
                self.max_bytes >> 20
            )));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
