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

pub use exports::sluice::job::job::JobError;
pub use sluice::job::output::{Emitted, RowOp};
pub use sluice::job::state::StateKind;
pub use sluice::job::types::{Batch, HeaderMeta, LogLevel, MetricKind, RecordMeta, Rejected, Span, TimeDomain, Timer};
