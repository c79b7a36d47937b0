//! Benchmark job (b): a keyed count held in host state, keyed by the record
//! key (as after a `keyBy` on the message key). Two host calls per record.

use sluice_sdk::prelude::*;

pub struct KeyedCount {
    counts: ValueState<u64>,
}

#[sluice_sdk::job]
impl Job for KeyedCount {
    /// Counts per record key: parallel tasks give the same counts.
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;

    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(KeyedCount { counts: ctx.value_state("counts")? })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let key = record.key().ok_or_else(|| Error::record("a keyed count needs a record key"))?;
        let n = self.counts.get(ctx, key)?.unwrap_or(0);
        self.counts.set(ctx, key, &(n + 1))
    }
}
