use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, Key, MapState, Result, TimeDomain, Timer};

/// Tumbling windows of a fixed size by event time (fired when the watermark
/// passes the window's end) or processing time (fired by the clock).
///
/// `add` folds a value into the window of its time; `fire`, called from
/// `on_timer`, returns the finished window and forgets it.
#[derive(Debug, Clone)]
pub struct TumblingWindow<A> {
    name: String,
    size_ms: i64,
    domain: TimeDomain,
    /// key -> window start -> accumulator
    windows: MapState<i64, A>,
}

/// A finished window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult<A> {
    pub key: Vec<u8>,
    /// Inclusive start, ms since the Unix epoch.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
    pub value: A,
}

impl<A: Serialize + DeserializeOwned + Default> TumblingWindow<A> {
    pub fn open(ctx: &mut Context, name: &str, size: Duration, domain: TimeDomain) -> Result<Self> {
        let size_ms = size.as_millis() as i64;
        if size_ms <= 0 {
            return Err(crate::Error::fatal(format!("window `{name}` needs a positive size")));
        }
        Ok(TumblingWindow { name: name.to_owned(), size_ms, domain, windows: ctx.map_state(name)? })
    }

    /// The start of the window holding `time`.
    pub fn window_start(&self, time: i64) -> i64 {
        time - time.rem_euclid(self.size_ms)
    }

    /// Folds into the window of `time` (for processing-time windows pass
    /// `ctx.processing_time()`). Returns false, changing nothing, when that
    /// window has already fired (a late record).
    pub fn add(
        &self,
        ctx: &mut Context,
        key: &(impl Key + ?Sized),
        time: i64,
        fold: impl FnOnce(&mut A),
    ) -> Result<bool> {
        let start = self.window_start(time);
        let last_ms = start + self.size_ms - 1;
        let passed = match self.domain {
            TimeDomain::EventTime => ctx.watermark().is_some_and(|w| w >= last_ms),
            TimeDomain::ProcessingTime => ctx.processing_time() > last_ms,
        };
        if passed {
            return Ok(false);
        }
        let mut acc = self.windows.get(ctx, key, &start)?;
        if acc.is_none() {
            ctx.register_timer(self.domain, last_ms, key, &self.name);
        }
        let acc = acc.get_or_insert_with(A::default);
        fold(acc);
        self.windows.set(ctx, key, &start, acc)?;
        Ok(true)
    }

    /// If `timer` is one of this window's, the finished window (removed from
    /// state); otherwise `None`.
    pub fn fire(&self, ctx: &mut Context, timer: &Timer) -> Result<Option<WindowResult<A>>> {
        if timer.tag != self.name || timer.domain != self.domain {
            return Ok(None);
        }
        let start = timer.time + 1 - self.size_ms;
        let key = timer.key.as_slice();
        let Some(value) = self.windows.get(ctx, key, &start)? else {
            return Ok(None);
        };
        self.windows.remove(ctx, key, &start);
        Ok(Some(WindowResult { key: key.to_vec(), start, end: start + self.size_ms, value }))
    }
}
