//! The CPU budget of a guest call. A guest never holds its thread for long:
//! at every epoch tick (5 ms) it yields to the async executor, so other
//! tasks on the same threads go on while a busy or looping job runs. The call
//! is interrupted once the time it has run passes its budget; the time it
//! spent waiting for its turn after a yield does not count, so a busy
//! machine does not fail jobs, while time awaiting the host's own I/O (a
//! dimension lookup) does, so no job escapes its budget through the host.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

/// The budget of the call in progress.
#[derive(Debug)]
pub(crate) struct CallBudget {
    started: Instant,
    limit: Duration,
    /// Nanoseconds the call waited to be scheduled again after yielding.
    waited: Arc<AtomicU64>,
}

impl Default for CallBudget {
    fn default() -> Self {
        CallBudget { started: Instant::now(), limit: Duration::MAX, waited: Arc::default() }
    }
}

impl CallBudget {
    /// Starts the budget of a new call.
    pub(crate) fn start(&mut self, limit: Duration) {
        self.started = Instant::now();
        self.limit = limit;
        self.waited = Arc::default();
    }

    /// How long the call has run, waits for its turn left out.
    pub(crate) fn ran(&self) -> Duration {
        self.started.elapsed().saturating_sub(Duration::from_nanos(self.waited.load(Ordering::Relaxed)))
    }

    /// What the guest does at an epoch tick: stop when the budget is spent,
    /// else yield and go on for another tick.
    pub(crate) fn on_tick(&self) -> UpdateDeadline {
        if self.ran() >= self.limit {
            return UpdateDeadline::Interrupt;
        }
        let waited = self.waited.clone();
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                let paused = Instant::now();
                tokio::task::yield_now().await;
                waited.fetch_add(paused.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_interrupts_and_waits_do_not_count() {
        let mut budget = CallBudget::default();
        budget.start(Duration::from_millis(20));
        assert!(matches!(budget.on_tick(), UpdateDeadline::YieldCustom(1, _)));
        budget.waited.store(Duration::from_secs(10).as_nanos() as u64, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(25));
        assert!(matches!(budget.on_tick(), UpdateDeadline::YieldCustom(..)), "the call waited most of the time");
        budget.start(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(25));
        assert!(matches!(budget.on_tick(), UpdateDeadline::Interrupt));
    }
}
