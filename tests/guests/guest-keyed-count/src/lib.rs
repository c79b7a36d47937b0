//! Test job for recovery: counts records per message key in host state and
//! upserts `{"user": key, "events": count}` to the sink `counts`. A lost
//! record makes a count too low and a record processed twice too high, so
//! the final table shows any mistake in snapshot positions.

use serde::Serialize;
use sluice_sdk::prelude::*;

pub struct KeyedCount {
    counts: ValueState<u64>,
}

#[derive(Serialize)]
struct Count<'a> {
    user: &'a str,
    events: u64,
}

#[sluice_sdk::job]
impl Job for KeyedCount {
    /// Counts per record key: parallel tasks give the same counts.
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;

    fn open(ctx: &mut Context) -> Result<Self> {
        // Parameter `v2_counts_as_text` plays an incompatible "version 2"
        // that declares the counts as text (for the upgrade tests).
        if ctx.param("v2_counts_as_text").is_some() {
            let _as_text: ValueState<String> = ctx.value_state("counts")?;
        }
        Ok(KeyedCount { counts: ctx.value_state("counts")? })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let key = record.key().ok_or_else(|| Error::record("a keyed count needs a record key"))?;
        let user = std::str::from_utf8(key).map_err(|_| Error::record("the key is not UTF-8"))?;
        let events = self.counts.get(ctx, key)?.unwrap_or(0) + 1;
        self.counts.set(ctx, key, &events)?;
        ctx.emit("counts", &Count { user, events })
    }
}
