//! A hostile guest for the runtime's failure tests: an SDK job whose
//! behaviour depends on each record's value, a command followed by optional
//! numbers (`COMMAND [COUNT [SIZE]]`; anything after them, e.g. padding
//! that makes the record large, is ignored). A missing COUNT means "without
//! end": only a limit of the host stops the command.
//!
//! - `ok`: emits `{"ok":true}` to the sink `out`;
//! - `panic`: panics with "hostile guest asked to panic";
//! - `loop`: spins forever (only the CPU deadline stops it);
//! - `alloc`: allocates and touches 1 MiB blocks forever (only the memory
//!   limit stops it);
//! - `emit-bomb COUNT SIZE`: emits one row of SIZE bytes (default 1 MiB)
//!   COUNT times;
//! - `forward-bomb COUNT`: forwards the record itself COUNT times (the
//!   test pads it to the size it wants);
//! - `state-bomb COUNT SIZE`: writes COUNT value-state entries of SIZE
//!   bytes (default 64 KiB), each under a 1 KiB key of its own;
//! - `map-bomb COUNT SIZE`: the same through a map state (`map-set`);
//! - `distinct-bomb COUNT SIZE`: adds COUNT distinct items of SIZE bytes to
//!   a count-distinct (`map-add`);
//! - `timer-bomb COUNT SIZE`: registers COUNT event-time timers in the far
//!   future (they never fire), each with a key of SIZE bytes (default 8);
//! - `metric-bomb COUNT SIZE`: bumps COUNT custom counters of distinct
//!   names, each about SIZE bytes long (default 16);
//! - `log-bomb COUNT SIZE`: writes COUNT log lines of SIZE bytes (default
//!   1 MiB);
//! - `reject-bomb COUNT SIZE`: calls `output.reject` directly (the SDK
//!   rejects a record once) with COUNT rejections of the batch's first
//!   record, each with a reason of SIZE bytes (default 1 MiB);
//! - `dimension-bomb COUNT SIZE`: upserts COUNT rows of SIZE bytes (default
//!   64 KiB) under keys of their own into the dimension `bomb`;
//! - `next-stage`: sends `{"ok":true}` to the next repartition stage;
//! - `next-stage-later`: does so at the end of the batch (`finish_batch`),
//!   which the runtime refuses: such a row's id names no input record;
//! - `next-stage-timer`: does so from a processing-time timer (refused too).
//!
//! Any other value is rejected (dead letter).
//!
//! The job parameter `open = "loop"` makes `open` spin forever instead;
//! `open = "platform-state"` makes it declare the platform's state
//! `sluice.applied_origins` (refused); `open = "next-stage"` makes it send
//! a row to the next repartition stage from `open` (refused).

use std::hint::black_box;

use sluice_sdk::__bindings::sluice::job::output;
use sluice_sdk::__bindings::sluice::job::types::Rejected;
use sluice_sdk::helpers::CountDistinct;
use sluice_sdk::prelude::*;

pub const SINK: &str = "out";

const MIB: u64 = 1 << 20;
/// Event time of the timers `timer-bomb` registers: no watermark reaches it.
const FAR_FUTURE: i64 = 1 << 60;

pub struct Hostile {
    values: ValueState<String>,
    maps: MapState<str, String>,
    distinct: CountDistinct,
    /// A row for the next stage to send in `finish_batch`.
    next_stage_later: bool,
}

#[sluice_sdk::job]
impl Job for Hostile {
    fn open(ctx: &mut Context) -> Result<Self> {
        match ctx.param("open").as_deref() {
            Some("loop") => spin(),
            Some("platform-state") => {
                ctx.value_state::<String>("sluice.applied_origins")?;
            }
            Some("next-stage") => ctx.to_next_stage("open", &serde_json::json!({ "ok": true }))?,
            _ => {}
        }
        Ok(Hostile {
            values: ctx.value_state("values")?,
            maps: ctx.map_state("maps")?,
            distinct: CountDistinct::open(ctx, "distinct")?,
            next_stage_later: false,
        })
    }

    fn on_timer(&mut self, ctx: &mut Context, timer: &Timer) -> Result<()> {
        if timer.tag == "next-stage" {
            ctx.to_next_stage("timer", &serde_json::json!({ "ok": true }))?;
        }
        Ok(())
    }

    fn finish_batch(&mut self, ctx: &mut Context) -> Result<()> {
        if std::mem::take(&mut self.next_stage_later) {
            ctx.to_next_stage("later", &serde_json::json!({ "ok": true }))?;
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let mut words = record.value().split(u8::is_ascii_whitespace).filter(|w| !w.is_empty());
        let command = words.next().unwrap_or_default();
        let mut number = || words.next().and_then(|w| std::str::from_utf8(w).ok()?.parse::<u64>().ok());
        let (count, size) = (number().unwrap_or(u64::MAX), number());
        match command {
            b"ok" => ctx.emit(SINK, &serde_json::json!({ "ok": true })),
            b"next-stage" => ctx.to_next_stage("now", &serde_json::json!({ "ok": true })),
            b"next-stage-later" => {
                self.next_stage_later = true;
                Ok(())
            }
            b"next-stage-timer" => {
                let now = ctx.processing_time();
                ctx.register_timer(TimeDomain::ProcessingTime, now, "k", "next-stage");
                Ok(())
            }
            b"panic" => panic!("hostile guest asked to panic"),
            b"loop" => spin(),
            b"alloc" => hog(),
            b"emit-bomb" => {
                let row = text('r', size.unwrap_or(MIB));
                (0..count).try_for_each(|_| ctx.emit(SINK, &row))
            }
            b"forward-bomb" => (0..count).try_for_each(|_| ctx.forward(SINK, record)),
            b"state-bomb" => {
                let value = text('v', size.unwrap_or(64 << 10));
                (0..count).try_for_each(|i| self.values.set(ctx, &big_key(i), &value))
            }
            b"map-bomb" => {
                let value = text('v', size.unwrap_or(64 << 10));
                (0..count).try_for_each(|i| self.maps.set(ctx, "bomb", &big_key(i), &value))
            }
            b"distinct-bomb" => {
                let item = text('i', size.unwrap_or(64 << 10));
                (0..count).try_for_each(|i| self.distinct.add(ctx, "bomb", &format!("{i}{item}")).map(drop))
            }
            b"dimension-bomb" => {
                let row = text('d', size.unwrap_or(64 << 10));
                (0..count).try_for_each(|i| ctx.upsert("bomb", &big_key(i), &row))
            }
            b"timer-bomb" => {
                let key = text('k', size.unwrap_or(8));
                for i in 0..count {
                    ctx.register_timer(TimeDomain::EventTime, FAR_FUTURE + i as i64, key.as_str(), "bomb");
                }
                Ok(())
            }
            b"metric-bomb" => {
                let padding = text('m', size.unwrap_or(16).saturating_sub(20));
                for i in 0..count {
                    ctx.count(&format!("bomb_{i}_{padding}"), 1);
                }
                Ok(())
            }
            b"log-bomb" => {
                let line = text('l', size.unwrap_or(MIB));
                for _ in 0..count {
                    ctx.info(&line);
                }
                Ok(())
            }
            b"reject-bomb" => {
                let reason = text('x', size.unwrap_or(MIB));
                let rejected: Vec<Rejected> =
                    (0..count).map(|_| Rejected { index: 0, reason: reason.clone() }).collect();
                output::reject(&rejected);
                Ok(())
            }
            other => Err(Error::Record(format!("unknown command {:?}", String::from_utf8_lossy(other)))),
        }
    }
}

/// `len` copies of `c`.
fn text(c: char, len: u64) -> String {
    std::iter::repeat_n(c, len as usize).collect()
}

/// A distinct state key of about 1 KiB.
fn big_key(i: u64) -> String {
    format!("{i:01024}")
}

/// Never returns; `black_box` keeps the optimiser from proving the loop
/// side-effect free and deleting it.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Never returns: keeps every block alive and writes to each page of it,
/// so the memory is really committed.
fn hog() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(black_box(block));
        black_box(&blocks);
    }
}
