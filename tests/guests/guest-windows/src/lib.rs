//! Test job for timers: per-user counts and sums in one-minute event-time
//! tumbling windows, emitted when the watermark passes the window's end.
//! Late records are rejected. Its cases run natively and as WASM.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;
use sluice_sdk::testing::{Case, TestRecord};

#[derive(Deserialize)]
struct Click {
    user: String,
    amount: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Totals {
    clicks: u64,
    amount: i64,
}

pub struct MinuteTotals {
    window: TumblingWindow<Totals>,
}

#[sluice_sdk::job]
impl Job for MinuteTotals {
    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(MinuteTotals {
            window: TumblingWindow::open(ctx, "minute", Duration::from_secs(60), TimeDomain::EventTime)?,
        })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let click: Click = record.json()?;
        let time = record.event_time().ok_or_else(|| Error::record("no event time"))?;
        let on_time = self.window.add(ctx, &click.user, time, |t| {
            t.clicks += 1;
            t.amount += click.amount;
        })?;
        if on_time { Ok(()) } else { Err(Error::record(format!("late: window of {time} already fired"))) }
    }

    fn on_timer(&mut self, ctx: &mut Context, timer: &Timer) -> Result<()> {
        if let Some(w) = self.window.fire(ctx, timer)? {
            let user = String::from_utf8_lossy(&w.key);
            ctx.emit_keyed(
                "totals",
                &*user,
                &serde_json::json!({
                    "user": user, "start": w.start, "end": w.end, "clicks": w.value.clicks, "amount": w.value.amount,
                }),
            )?;
        }
        Ok(())
    }
}

fn click(user: &str, amount: i64, at: i64) -> TestRecord {
    TestRecord::json(&serde_json::json!({"user": user, "amount": amount})).at(at)
}

/// Two partitions; the watermark follows the slower one; a late record; the
/// last windows fire at the end of input.
pub fn cases() -> Vec<Case> {
    let p1 = |mut r: TestRecord| {
        r.partition = 1;
        r
    };
    vec![
        Case::new("two_partitions")
            .sink("totals")
            .watermark_delay(5_000)
            .batch(vec![click("ann", 1, 1_000), click("bob", 2, 2_000), p1(click("ann", 3, 3_000))])
            .batch(vec![click("ann", 4, 61_000), click("bob", 5, 125_000)])
            .batch(vec![p1(click("cid", 6, 70_000)), p1(click("ann", 7, 130_000))])
            .batch(vec![
                click("bob", 8, 10_000),
                TestRecord { value: b"{broken".to_vec(), event_time: Some(131_000), ..Default::default() },
            ]),
        // A record the job refuses says nothing about event time: its wild
        // time (the host reads the field without checking the rest of the
        // record) must not move the watermark, or ann's next click would
        // be late and her first window would fire with one click.
        Case::new("a_refused_record_does_not_move_event_time")
            .sink("totals")
            .batch(vec![click("ann", 1, 1_000)])
            .batch(vec![TestRecord {
                value: b"{\"user\":\"ann\",".to_vec(),
                event_time: Some(9_000_000),
                ..Default::default()
            }])
            .batch(vec![click("ann", 2, 2_000)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_record_does_not_move_event_time() {
        let case = &cases()[1];
        let (tester, _) = case.run_native::<MinuteTotals>().unwrap();
        assert_eq!(tester.dead_letters().len(), 1, "only the broken record: ann's second click is on time");
        assert_eq!(
            tester.emitted("totals"),
            vec![serde_json::json!({"user": "ann", "start": 0, "end": 60_000, "clicks": 2, "amount": 3})]
        );
    }

    #[test]
    fn windows_fire_once_the_slowest_partition_passes_them() {
        let case = &cases()[0];
        let mut t = case.tester::<MinuteTotals>().unwrap();
        t.send_batch(case.batches[0].clone()).unwrap();
        t.send_batch(case.batches[1].clone()).unwrap();
        assert!(t.emitted("totals").is_empty(), "partition 1 still at 3s holds the watermark back");
        t.send_batch(case.batches[2].clone()).unwrap();
        // watermark = min(125s, 130s) - 5s = 120s: minutes 0 and 1 are done.
        let fired = t.emitted("totals");
        assert_eq!(fired.len(), 4, "{fired:?}");
        assert_eq!(fired[0], serde_json::json!({"user": "ann", "start": 0, "end": 60_000, "clicks": 2, "amount": 4}));
        t.send_batch(case.batches[3].clone()).unwrap();
        let dead = t.dead_letters();
        assert_eq!(dead.len(), 2);
        assert!(dead[0].reason.starts_with("late"), "{}", dead[0].reason);
        t.finish().unwrap();
        let all = t.emitted("totals");
        assert_eq!(all.len(), 6);
        // Timers due at the same time fire in key order.
        assert_eq!(
            all[4],
            serde_json::json!({"user": "ann", "start": 120_000, "end": 180_000, "clicks": 1, "amount": 7})
        );
        assert_eq!(all[5]["user"], "bob");
    }
}
