//! Benchmark job (a): a stateless filter. Decodes each ~100-byte JSON
//! transaction and re-emits the large ones.

use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;

/// Emit transactions above this amount (about half of the benchmark data).
pub const THRESHOLD: f64 = 500.0;

#[derive(Debug, Deserialize, Serialize)]
pub struct Txn<'a> {
    pub id: u64,
    pub user: &'a str,
    pub amount: f64,
    pub currency: &'a str,
    pub channel: &'a str,
    pub ts: i64,
}

#[sluice_sdk::job]
pub fn large_transactions(ctx: &mut Context, record: &Record) -> Result<()> {
    let txn: Txn = record.json_ref()?;
    if txn.amount > THRESHOLD {
        ctx.emit("large", &txn)?;
    }
    Ok(())
}
