//! `sluice:job/timers`.

use super::HostState;
use crate::wasm::bindings::Timer;
use crate::wasm::bindings::sluice::job::timers::Host;
use crate::wasm::limits::{LimitHit, MAX_TIMER_KEY, MAX_TIMER_TAG};

impl Host for HostState {
    fn register(&mut self, timer: Timer) -> wasmtime::Result<()> {
        if timer.key.len() > MAX_TIMER_KEY || timer.tag.len() > MAX_TIMER_TAG {
            return Err(self.hit(LimitHit::TimerSize { key: timer.key.len(), tag: timer.tag.len() }));
        }
        // Registering a timer that is already registered adds none (a
        // window helper registers its window's end for every record), so
        // it is no reason to fail a job that is at its limit.
        if self.timers.len() >= self.limits.timers && !self.timers.contains(&timer) {
            return Err(self.hit(LimitHit::Timers { limit: self.limits.timers }));
        }
        self.timers.register(timer);
        Ok(())
    }

    fn cancel(&mut self, timer: Timer) -> wasmtime::Result<()> {
        self.timers.cancel(&timer);
        Ok(())
    }

    fn watermark(&mut self) -> wasmtime::Result<Option<i64>> {
        Ok(self.watermark)
    }

    fn processing_time(&mut self) -> wasmtime::Result<i64> {
        Ok(self.now_ms)
    }
}
