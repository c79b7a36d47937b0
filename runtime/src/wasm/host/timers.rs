//! `sluice:job/timers`.

use super::HostState;
use crate::wasm::bindings::Timer;
use crate::wasm::bindings::sluice::job::timers::Host;

impl Host for HostState {
    fn register(&mut self, timer: Timer) -> wasmtime::Result<()> {
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
