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
