//! # sluice-sdk
//!
//! Write Sluice stream jobs in plain Rust. A job is a type implementing [`Job`]
//! marked with `#[sluice_sdk::job]`; it compiles to a WASM component with
//! `cargo build --target wasm32-wasip2` and runs natively in unit tests through
//! [`testing`].
//!
//! ```
//! use sluice_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Click { user: String, page: String }
//!
//! struct Clicks { per_user: ValueState<u64> }
//!
//! #[sluice_sdk::job]
//! impl Job for Clicks {
//!     fn open(ctx: &mut Context) -> Result<Self> {
//!         Ok(Clicks { per_user: ctx.value_state("per_user")? })
//!     }
//!     fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
//!         let click: Click = record.json()?;
//!         let n = self.per_user.get(ctx, &click.user)?.unwrap_or(0) + 1;
//!         self.per_user.set(ctx, &click.user, &n)?;
//!         ctx.emit("clicks", &serde_json::json!({ "user": click.user, "clicks": n }))
//!     }
//! }
//! ```

extern crate self as sluice_sdk;

mod buffer;
mod codec;
mod context;
mod error;
#[doc(hidden)]
pub mod export;
#[cfg(test)]
mod fuzz_batch;
pub mod helpers;
mod host;
mod key;
mod record;
mod state;
pub mod testing;
mod value_cache;
#[cfg(target_arch = "wasm32")]
mod wasm_host;

pub use context::Context;
pub use error::{Error, Result};
pub use host::{LogLevel, MetricKind, RowOp, TimeDomain, Timer};
pub use key::Key;
pub use record::{Position, Record};
pub use sluice_sdk_macros::job;
pub use state::{MapState, StateOptions, StateValue, ValueState};

/// The job author's guide: every Rust sample in it is compiled and run as a
/// doctest of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../docs/AUTHOR_GUIDE.md")]
mod author_guide {}

/// The ABI revision of the WIT contract this SDK speaks; the runtime refuses
/// components built against another one.
pub const ABI_VERSION: u32 = 4;

/// The sink a stage of a staged job ([`Job::STAGES`]) sends its rows to the
/// next stage through; [`Context::to_next_stage`] emits to it. The platform
/// adds it to every stage but the last.
pub const NEXT_STAGE: &str = "sluice.next-stage";

/// How a job's state relates to its input's partitioning: what decides
/// whether the platform may run it in parallel. At parallelism n, n tasks
/// each read a share of the input's partitions and keep state of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKeying {
    /// State combines records of different record keys (a total, a count
    /// per hour, a join on a value field). Split between tasks it would
    /// give partial results, so the platform refuses parallelism above 1.
    Global,
    /// Every state entry is touched by the records of one record key only
    /// (state keyed by the record key, or by something finer such as the
    /// key and a field), or the job keeps no state. Kafka partitions by
    /// record key, so each key's records meet in one task and the results
    /// are the same at any parallelism. Dimension writes count as state
    /// when another key's records read them.
    ByRecordKey,
}

/// A stream job. `open` runs once per instance (declare state, resolve
/// sinks); `process` runs for every record; `on_timer` for every due timer.
pub trait Job: Sized + 'static {
    /// The job's declaration of how its state is keyed ([`StateKeying`]).
    /// The default, `Global`, is always right and keeps the job at
    /// parallelism 1; a job that keys all its state by the record key
    /// declares `StateKeying::ByRecordKey` to be allowed to run in parallel:
    ///
    /// ```ignore
    /// const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;
    /// ```
    const STATE_KEYING: StateKeying = StateKeying::Global;

    /// The job's repartition stages, by name, in order; empty (the default)
    /// for a job of one stage. A job whose state is keyed by something other
    /// than its input's key (hourly-premium: the last order per user, then
    /// totals per hour) declares two stages, as a SQL query has a
    /// `group by` per level:
    ///
    /// ```ignore
    /// const STATE_KEYING: StateKeying = StateKeying::ByRecordKey; // stage 0
    /// const STAGES: &'static [&'static str] = &["last_order", "hour_totals"];
    /// ```
    ///
    /// Every instance runs one stage ([`Context::stage`]). Stage 0 reads the
    /// job's sources and is keyed as `STATE_KEYING` says; it sends rows on
    /// with [`Context::to_next_stage`], keyed by the next stage's key. The
    /// platform routes them through a repartition topic partitioned by that
    /// key, exactly once in effect, and stage k reads them as its only
    /// source, so each later stage keeps state by its record key and the
    /// whole job may run in parallel, up to its shard count. The job's
    /// sinks are its last stage's: a stage before it only sends rows on.
    /// Send stage rows from `process` only (their ids then name their input
    /// record; the runtime refuses others), and make them a function of the
    /// input and state alone: the next stage keeps what it applied of a
    /// first run and drops the replay's rows by id.
    const STAGES: &'static [&'static str] = &[];

    /// Creates the job: declare state handles and read parameters here.
    fn open(ctx: &mut Context) -> Result<Self>;

    /// Handles one record. Returning [`Error::Record`] (what `?` on a decode
    /// error gives) sends the record to the dead-letter output and goes on;
    /// [`Error::Fatal`] fails the task.
    fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()>;

    /// Called once after the last record of every batch (after `process`
    /// has seen each of them): where a job emits what it aggregated over the
    /// batch, one row per key rather than one per record, as Flink's
    /// mini-batch aggregation does. An upsert sink needs only a key's last
    /// row, so this gives the same table with fewer rows to encode and
    /// write. Rows emitted here take their id from the batch's last record,
    /// marked as the batch's (`batch/<source>/<partition>/<offset>/<n>`),
    /// so they suit upsert sinks (keyed by their primary key), not append
    /// sinks, whose rows would depend on where batches begin and end; a
    /// downstream job's `dedup_by_row_id` passes them unchecked. An
    /// error returned here fails the task: there is no one record to reject.
    fn finish_batch(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Handles a due timer registered with [`Context::register_timer`] or a
    /// window helper.
    fn on_timer(&mut self, ctx: &mut Context, timer: &Timer) -> Result<()> {
        let _ = (ctx, timer);
        Ok(())
    }
}

/// What job code usually needs.
pub mod prelude {
    pub use crate::helpers::{CountDistinct, LastValue, TumblingWindow, WindowResult};
    pub use crate::{
        Context, Error, Job, Key, MapState, NEXT_STAGE, Record, Result, StateKeying, StateOptions, StateValue,
        TimeDomain, Timer, ValueState,
    };
}

/// Generated bindings of the WIT world; used by `#[sluice_sdk::job]`, not by
/// job code.
#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "sluice-job",
        path: "wit",
        pub_export_macro: true,
        default_bindings_module: "::sluice_sdk::__bindings",
        runtime_path: "::sluice_sdk::__rt",
        additional_derives: [PartialEq, Eq, Hash, PartialOrd, Ord],
    });
}

#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen::rt::*;
}
