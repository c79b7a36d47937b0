//! Benchmark job: forwards every record unchanged to the sink `out`, so a
//! pipeline benchmark measures I/O and the runtime, not the job's logic.

use sluice_sdk::prelude::*;

#[sluice_sdk::job]
pub fn passthrough(ctx: &mut Context, record: &Record) -> Result<()> {
    ctx.forward("out", record)
}
