//! Glue between the WIT exports and a [`Job`]: decodes batches into records,
//! turns record errors into dead letters and flushes output. The native test
//! harness drives jobs through the same functions, so both paths behave alike.

use crate::__bindings::sluice::job::types::{Batch, Rejected};
use crate::record::{Headers, Position, Record};
use crate::{Context, Error, Job, Timer};

/// Key length of a record without key (`batch.spans`).
pub(crate) const NO_KEY: u32 = u32::MAX;
/// Event time of a record whose source has none (`batch.event-times`).
pub(crate) const NO_EVENT_TIME: i64 = i64::MIN;

/// Runs every record of `batch` through the job. Returns the message of a
/// fatal error, after flushing what was emitted and written before it.
pub fn process_batch<J: Job>(job: &mut J, ctx: &mut Context, batch: &Batch) -> Result<(), String> {
    let result = process_records(job, ctx, batch);
    ctx.origin = None;
    let flushed = ctx.flush();
    result.and(flushed.map_err(message))
}

fn process_records<J: Job>(job: &mut J, ctx: &mut Context, batch: &Batch) -> Result<(), String> {
    let n = batch.positions.len() / 2;
    let columns_agree = batch.meta.len() == n * 6
        && batch.positions.len() == n * 2
        && (batch.header_ends.is_empty() || batch.header_ends.len() == n)
        && batch.headers.len().is_multiple_of(4);
    if !columns_agree {
        return Err("corrupt batch: its columns have different lengths".into());
    }
    let data = batch.data.as_slice();
    let mut first_header: usize = 0;
    for (index, (meta, position)) in batch.meta.chunks_exact(6).zip(batch.positions.chunks_exact(2)).enumerate() {
        let spans = [meta[0], meta[1], meta[2], meta[3]];
        let key = match spans[1] {
            NO_KEY => None,
            len => Some(bytes(data, spans[0], len).ok_or("corrupt batch: key out of bounds")?),
        };
        let headers = match batch.header_ends.get(index) {
            None => Headers::default(),
            Some(&end) => {
                let end = end as usize;
                // Checked: on wasm32 a corrupt `end` times 4 overflows usize.
                let range = first_header.checked_mul(4).zip(end.checked_mul(4));
                let spans = range
                    .and_then(|(start, end)| batch.headers.get(start..end))
                    .ok_or("corrupt batch: header range out of bounds")?;
                first_header = end;
                if !spans.chunks_exact(4).all(|h| bytes(data, h[0], h[1]).and(bytes(data, h[2], h[3])).is_some()) {
                    return Err("corrupt batch: header bytes out of bounds".into());
                }
                Headers { data, spans }
            }
        };
        let record = Record {
            key,
            value: bytes(data, spans[2], spans[3]).ok_or("corrupt batch: value out of bounds")?,
            event_time: (position[1] != NO_EVENT_TIME).then_some(position[1]),
            headers,
            position: Position { source: meta[4], partition: meta[5] as i32, offset: position[0] },
            in_batch: Some(spans),
        };
        let index = index as u32;
        ctx.origin = Some(index);
        match job.process(ctx, &record) {
            Ok(()) => {}
            Err(Error::Record(reason)) => ctx.rejected.push(Rejected { index, reason }),
            Err(Error::Fatal(message)) => return Err(message),
        }
    }
    if n > 0 {
        // Rows of the batch as a whole take the id of its last record, and
        // say so: which records they sum up depends on where the batch
        // ended, which a replay may change.
        ctx.origin = Some(n as u32 - 1);
        ctx.of_batch = true;
        let finished = job.finish_batch(ctx).map_err(message);
        ctx.of_batch = false;
        finished?;
    }
    Ok(())
}

/// Delivers due timers to the job, in the order given.
pub fn fire_timers<J: Job>(job: &mut J, ctx: &mut Context, timers: &[Timer]) -> Result<(), String> {
    let mut result = Ok(());
    for (index, timer) in timers.iter().enumerate() {
        ctx.origin = Some(index as u32);
        if let Err(e) = job.on_timer(ctx, timer) {
            result = Err(message(e));
            break;
        }
    }
    ctx.origin = None;
    let flushed = ctx.flush();
    result.and(flushed.map_err(message))
}

/// An error's message, where every error is fatal (the end of a call,
/// `finish_batch`, timers, `open`).
fn message(e: Error) -> String {
    match e {
        Error::Record(m) | Error::Fatal(m) => m,
    }
}

/// Opens a job against a host.
pub(crate) fn open<J: Job>(mut ctx: Context) -> Result<(Context, J), String> {
    match J::open(&mut ctx) {
        Ok(job) => {
            ctx.flush().map_err(message)?;
            Ok((ctx, job))
        }
        Err(e) => Err(message(e)),
    }
}

fn bytes(data: &[u8], start: u32, len: u32) -> Option<&[u8]> {
    let start = start as usize;
    data.get(start..start.checked_add(len as usize)?)
}

#[cfg(target_arch = "wasm32")]
pub use component::Export;

#[cfg(target_arch = "wasm32")]
mod component {
    use std::any::Any;
    use std::cell::RefCell;
    use std::marker::PhantomData;

    use crate::__bindings::exports::sluice::job::job::{Guest, Keying as WitStateKeying};
    use crate::__bindings::sluice::job::types::{Batch, JobError, Timer};
    use crate::wasm_host::WasmHost;
    use crate::{ABI_VERSION, Context, Job, StateKeying};

    struct Instance {
        ctx: Context,
        job: Box<dyn Any>,
    }

    thread_local! {
        static INSTANCE: RefCell<Option<Instance>> = const { RefCell::new(None) };
    }

    /// The component export of job type `J`; `#[sluice_sdk::job]` names it.
    pub struct Export<J>(PhantomData<J>);

    fn with_job<J: Job>(f: impl FnOnce(&mut J, &mut Context) -> Result<(), String>) -> Result<(), JobError> {
        INSTANCE.with_borrow_mut(|slot| {
            let instance = slot.as_mut().ok_or_else(|| JobError { message: "job called before open".into() })?;
            let job = instance.job.downcast_mut::<J>().expect("one job type per component");
            f(job, &mut instance.ctx).map_err(|message| JobError { message })
        })
    }

    impl<J: Job> Guest for Export<J> {
        fn abi_version() -> u32 {
            ABI_VERSION
        }

        fn state_keying() -> WitStateKeying {
            match J::STATE_KEYING {
                StateKeying::Global => WitStateKeying::Global,
                StateKeying::ByRecordKey => WitStateKeying::ByRecordKey,
            }
        }

        fn stages() -> Vec<String> {
            J::STAGES.iter().map(|s| (*s).to_owned()).collect()
        }

        fn open() -> Result<(), JobError> {
            let (ctx, job) =
                super::open::<J>(Context::new(Box::new(WasmHost))).map_err(|message| JobError { message })?;
            INSTANCE.set(Some(Instance { ctx, job: Box::new(job) }));
            Ok(())
        }

        fn process(batch: Batch) -> Result<(), JobError> {
            with_job::<J>(|job, ctx| super::process_batch(job, ctx, &batch))
        }

        fn on_timer(timers: Vec<Timer>) -> Result<(), JobError> {
            with_job::<J>(|job, ctx| super::fire_timers(job, ctx, &timers))
        }
    }
}
