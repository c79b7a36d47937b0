//! Glue between the WIT exports and a [`Job`]: decodes batches into records,
//! turns record errors into dead letters and flushes output. The native test
//! harness drives jobs through the same functions, so both paths behave alike.

use crate::__bindings::sluice::job::types::{Batch, Rejected, Span};
use crate::record::{Position, Record};
use crate::{Context, Error, Job, Timer};

/// Runs every record of `batch` through the job. Returns the message of a
/// fatal error, after flushing what was emitted before it.
pub fn process_batch<J: Job>(job: &mut J, ctx: &mut Context, batch: &Batch) -> Result<(), String> {
    let result = process_records(job, ctx, batch);
    ctx.origin = None;
    ctx.flush_output();
    result
}

fn process_records<J: Job>(job: &mut J, ctx: &mut Context, batch: &Batch) -> Result<(), String> {
    let data = batch.data.as_slice();
    for (index, meta) in batch.records.iter().enumerate() {
        let index = index as u32;
        let headers = slice(&batch.headers, meta.headers)
            .ok_or("corrupt batch: header range out of bounds")?
            .iter()
            .map(|h| Some((bytes(data, h.name)?, bytes(data, h.value)?)))
            .collect::<Option<Vec<_>>>()
            .ok_or("corrupt batch: header bytes out of bounds")?;
        let key = match meta.key {
            Some(span) => Some(bytes(data, span).ok_or("corrupt batch: key out of bounds")?),
            None => None,
        };
        let record = Record {
            key,
            value: bytes(data, meta.value).ok_or("corrupt batch: value out of bounds")?,
            event_time: meta.event_time,
            headers,
            position: Position { source: meta.source, partition: meta.partition, offset: meta.offset },
        };
        ctx.origin = Some(index);
        match job.process(ctx, &record) {
            Ok(()) => {}
            Err(Error::Record(reason)) => ctx.rejected.push(Rejected { index, reason }),
            Err(Error::Fatal(message)) => return Err(message),
        }
    }
    Ok(())
}

/// Delivers due timers to the job, in the order given.
pub fn fire_timers<J: Job>(job: &mut J, ctx: &mut Context, timers: &[Timer]) -> Result<(), String> {
    let mut result = Ok(());
    for (index, timer) in timers.iter().enumerate() {
        ctx.origin = Some(index as u32);
        if let Err(e) = job.on_timer(ctx, timer) {
            result = Err(match e {
                Error::Record(reason) | Error::Fatal(reason) => reason,
            });
            break;
        }
    }
    ctx.origin = None;
    ctx.flush_output();
    result
}

/// Opens a job against a host.
pub(crate) fn open<J: Job>(mut ctx: Context) -> Result<(Context, J), String> {
    match J::open(&mut ctx) {
        Ok(job) => {
            ctx.flush_output();
            Ok((ctx, job))
        }
        Err(Error::Record(m) | Error::Fatal(m)) => Err(m),
    }
}

fn bytes(data: &[u8], span: Span) -> Option<&[u8]> {
    slice(data, span)
}

fn slice<T>(items: &[T], span: Span) -> Option<&[T]> {
    let start = span.start as usize;
    items.get(start..start.checked_add(span.len as usize)?)
}

#[cfg(target_arch = "wasm32")]
pub use component::Export;

#[cfg(target_arch = "wasm32")]
mod component {
    use std::any::Any;
    use std::cell::RefCell;
    use std::marker::PhantomData;

    use crate::__bindings::exports::sluice::job::job::Guest;
    use crate::__bindings::sluice::job::types::{Batch, JobError, Timer};
    use crate::wasm_host::WasmHost;
    use crate::{ABI_VERSION, Context, Job};

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
