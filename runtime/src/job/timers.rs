//! Timers and the event-time watermark of one task.

use std::collections::{BTreeSet, HashMap};

use crate::wasm::bindings::{TimeDomain, Timer};

/// Registered timers, ordered by (time, domain, key, tag): the order in which
/// they fire. Registering an identical timer twice keeps one.
#[derive(Debug, Clone, Default)]
pub struct TimerService {
    timers: BTreeSet<(i64, TimeDomain, Vec<u8>, String)>,
}

impl TimerService {
    /// Every registered timer, as a snapshot keeps it.
    pub fn image(&self) -> Vec<crate::snapshot::TimerImage> {
        self.timers
            .iter()
            .map(|(time, domain, key, tag)| (*time, *domain == TimeDomain::EventTime, key.clone(), tag.clone()))
            .collect()
    }

    pub fn restore(images: Vec<crate::snapshot::TimerImage>) -> Self {
        let domain = |event| if event { TimeDomain::EventTime } else { TimeDomain::ProcessingTime };
        TimerService { timers: images.into_iter().map(|(t, event, key, tag)| (t, domain(event), key, tag)).collect() }
    }

    pub fn register(&mut self, t: Timer) {
        self.timers.insert((t.time, t.domain, t.key, t.tag));
    }

    /// Whether a timer identical to `t` is registered.
    pub fn contains(&self, t: &Timer) -> bool {
        self.timers.contains(&(t.time, t.domain, t.key.clone(), t.tag.clone()))
    }

    pub fn cancel(&mut self, t: &Timer) {
        self.timers.remove(&(t.time, t.domain, t.key.clone(), t.tag.clone()));
    }

    /// Removes and returns the timers due at processing time `now` and
    /// watermark `watermark`, in firing order.
    pub fn take_due(&mut self, now: i64, watermark: Option<i64>) -> Vec<Timer> {
        let due: Vec<_> = self
            .timers
            .iter()
            .take_while(|(time, _, _, _)| *time <= now.max(watermark.unwrap_or(i64::MIN)))
            .filter(|(time, domain, _, _)| match domain {
                TimeDomain::ProcessingTime => *time <= now,
                TimeDomain::EventTime => watermark.is_some_and(|w| *time <= w),
            })
            .cloned()
            .collect();
        for t in &due {
            self.timers.remove(t);
        }
        due.into_iter().map(|(time, domain, key, tag)| Timer { domain, time, key, tag }).collect()
    }

    pub fn len(&self) -> usize {
        self.timers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }
}

/// The watermark: the lowest, over the (source, partition) pairs seen, of
/// the highest event time seen there, minus the allowed delay. It never goes
/// back.
#[derive(Debug, Clone, Default)]
pub struct Watermarks {
    delay_ms: i64,
    max_event_time: HashMap<(u32, i32), i64>,
    current: Option<i64>,
}

impl Watermarks {
    pub fn new(delay_ms: i64) -> Self {
        Watermarks { delay_ms, ..Default::default() }
    }

    pub fn observe(&mut self, source: u32, partition: i32, event_time: i64) {
        let max = self.max_event_time.entry((source, partition)).or_insert(event_time);
        *max = (*max).max(event_time);
    }

    /// (source, partition, highest event time) and the watermark, for a snapshot.
    pub fn image(&self) -> (Vec<(u32, i32, i64)>, Option<i64>) {
        let mut seen: Vec<_> = self.max_event_time.iter().map(|(&(s, p), &t)| (s, p, t)).collect();
        seen.sort();
        (seen, self.current)
    }

    pub fn restore(&mut self, seen: &[(u32, i32, i64)], current: Option<i64>) {
        self.max_event_time = seen.iter().map(|&(s, p, t)| ((s, p), t)).collect();
        self.current = current;
    }

    /// Recomputes the watermark after a batch.
    pub fn advance(&mut self) -> Option<i64> {
        if let Some(lowest) = self.max_event_time.values().min() {
            let candidate = lowest.saturating_sub(self.delay_ms);
            self.current = Some(self.current.map_or(candidate, |w| w.max(candidate)));
        }
        self.current
    }

    /// Ends event time, as at the end of a bounded input: every event-time
    /// timer becomes due.
    pub fn finish(&mut self) {
        self.current = Some(i64::MAX);
    }

    pub fn current(&self) -> Option<i64> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(domain: TimeDomain, time: i64, key: &str) -> Timer {
        Timer { domain, time, key: key.into(), tag: "t".into() }
    }

    #[test]
    fn due_timers_come_in_time_order_and_once() {
        let mut s = TimerService::default();
        s.register(timer(TimeDomain::EventTime, 20, "b"));
        s.register(timer(TimeDomain::ProcessingTime, 10, "a"));
        s.register(timer(TimeDomain::EventTime, 20, "b"));
        s.register(timer(TimeDomain::EventTime, 30, "c"));
        let due = s.take_due(15, Some(25));
        assert_eq!(due.iter().map(|t| t.time).collect::<Vec<_>>(), vec![10, 20]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn watermark_is_the_slowest_partition_minus_delay() {
        let mut w = Watermarks::new(5);
        w.observe(0, 0, 100);
        w.observe(0, 1, 50);
        assert_eq!(w.advance(), Some(45));
        w.observe(0, 1, 40);
        assert_eq!(w.advance(), Some(45), "never goes back");
    }
}
