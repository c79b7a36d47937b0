//! Host bindings of the WIT world in `sdk/wit`.

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "sluice-job",
    imports: {
        // Dimension stores do network I/O (SQL, Redis) behind their cache.
        "sluice:job/dimension.lookup": async | trappable,
        "sluice:job/dimension.upsert": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    additional_derives: [PartialEq, Eq, Hash, PartialOrd, Ord],
});

pub use exports::sluice::job::job::{JobError, Keying as StateKeying};
pub use sluice::job::output::RowOp;
pub use sluice::job::state::StateKind;
pub use sluice::job::types::{Batch, LogLevel, MetricKind, Rejected, TimeDomain, Timer};

/// Length of a key span that means "no key" (`batch.spans`, `rows.spans`).
pub const NO_KEY: u32 = u32::MAX;
/// Value length of a write that removes the key (`writes.spans`).
pub const REMOVED: u32 = u32::MAX;
/// Event time of a record whose source has none (`batch.event-times`).
pub const NO_EVENT_TIME: i64 = i64::MIN;
/// Origin of a row emitted while opening (`rows.origins`).
pub const NO_ORIGIN: u32 = u32::MAX;
/// `rows.flags` bit: the row is a delete.
pub const ROW_DELETE: u8 = 1;
/// `rows.flags` bit: the row's spans are in the input batch's data.
pub const ROW_FORWARDED: u8 = 2;
/// `rows.flags` bit: the row is of the batch as a whole (`finish-batch`).
pub const ROW_OF_BATCH: u8 = 4;
