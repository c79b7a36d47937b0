//! Benchmark job (a2): a stateless filter that reads no value. It forwards
//! unchanged the records whose key (the account) is on a watch list given
//! as the job parameter `accounts` (comma-separated), as a compliance feed
//! routing the trades of watched accounts would.

use hashbrown::HashSet;
use sluice_sdk::prelude::*;

pub struct Watchlist {
    accounts: Accounts,
}

/// The watched accounts (key bytes).
pub type Accounts = HashSet<Vec<u8>>;

/// Parses the `accounts` parameter.
pub fn accounts(list: &str) -> Accounts {
    list.split(',').map(str::trim).filter(|a| !a.is_empty()).map(|a| a.as_bytes().to_vec()).collect()
}

/// Whether `record` is on the watch list: the job's whole logic, which the
/// benchmark's native side runs too.
pub fn is_watched(accounts: &Accounts, record: &Record) -> bool {
    record.key().is_some_and(|key| accounts.contains(key))
}

#[sluice_sdk::job]
impl Job for Watchlist {
    /// Stateless.
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;

    fn open(ctx: &mut Context) -> Result<Self> {
        let list = ctx.param("accounts").ok_or_else(|| Error::fatal("parameter `accounts` is required"))?;
        Ok(Watchlist { accounts: accounts(&list) })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        if is_watched(&self.accounts, record) {
            ctx.forward("watched", record)?;
        }
        Ok(())
    }
}
