//! Benchmark job (a): a stateless filter. Decodes each ~100-byte JSON
//! transaction and forwards the large ones unchanged.

use serde::Deserialize;
use sluice_sdk::prelude::*;

/// Emit transactions above this amount (about half of the benchmark data).
pub const THRESHOLD: f64 = 500.0;

/// The fields the filter reads (serde skips the others).
#[derive(Debug, Deserialize)]
pub struct Txn<'a> {
    pub user: &'a str,
    pub amount: f64,
}

/// Whether `record` is a large transaction: the job's whole logic, which
/// the benchmark's native side runs too.
pub fn is_large(record: &Record) -> Result<bool> {
    let txn: Txn = record.json_ref()?;
    Ok(txn.amount > THRESHOLD && !txn.user.is_empty())
}

#[sluice_sdk::job]
pub fn large_transactions(ctx: &mut Context, record: &Record) -> Result<()> {
    if is_large(record)? {
        ctx.forward("large", record)?;
    }
    Ok(())
}
