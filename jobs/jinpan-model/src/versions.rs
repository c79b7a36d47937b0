//! Which order version a row of a table came from, and the rule that a
//! row is only replaced by a newer one.
//!
//! Upserting every message's rows as they come would make the tables
//! depend on arrival order: a late `PENDING` version would overwrite the
//! `APPROVED` one, an old order's report a newer one's. Instead each row's
//! version is kept in state under (table, key) and a row is emitted only
//! when its version is strictly newer than the one known. Replays and
//! duplicates carry the same version, so they emit nothing.
//!
//! The compensation job starts with empty state, but the tables already
//! hold the sync job's rows; it reads a key's version from the table (a
//! dimension of the same name) when its state has none.

use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;

use crate::OrderEvent;

/// An order version: ordered by `gmt_modified`, then `order_id` (two
/// orders of one user written in the same millisecond still have an order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    pub gmt_modified: i64,
    pub order_id: String,
}

impl Version {
    pub fn of(order: &OrderEvent) -> Version {
        Version { gmt_modified: order.gmt_modified, order_id: order.order_id.clone() }
    }
}

/// The version columns of a table row; `None` when the row has no plan
/// columns yet (a repayment that post-loan inserted first).
#[derive(Deserialize)]
struct StoredVersion {
    gmt_modified: Option<i64>,
    order_id: Option<String>,
}

pub const STATE: &str = "row_versions";

/// The versions of the rows written, by (table, key).
pub struct Versions {
    state: ValueState<Version>,
    /// Fall back on the tables (dimensions named like them) for keys the
    /// state does not know.
    read_tables: bool,
}

impl Versions {
    /// `read_tables`: the job declares a dimension over each table, named
    /// like it, to read the versions of rows other jobs wrote.
    pub fn open(ctx: &mut Context, read_tables: bool) -> Result<Self> {
        Ok(Versions { state: ctx.value_state(STATE)?, read_tables })
    }

    /// The version of the row of `table` under `key`, if there is a row.
    pub fn known(&self, ctx: &mut Context, table: &str, key: &(impl Key + ?Sized)) -> Result<Option<Version>> {
        if let Some(v) = self.state.get(ctx, &(table, key))? {
            return Ok(Some(v));
        }
        if !self.read_tables {
            return Ok(None);
        }
        let stored = ctx.lookup::<StoredVersion>(table, key)?;
        Ok(stored.and_then(|s| Some(Version { gmt_modified: s.gmt_modified?, order_id: s.order_id? })))
    }

    /// Whether a row of `version` may replace the row of `table` under
    /// `key`: true when it is newer than the row there (or there is none),
    /// and then it is remembered as the row's version.
    pub fn claim(&self, ctx: &mut Context, table: &str, key: &(impl Key + ?Sized), version: &Version) -> Result<bool> {
        if self.known(ctx, table, key)?.is_some_and(|known| known >= *version) {
            return Ok(false);
        }
        self.state.set(ctx, &(table, key), version)?;
        Ok(true)
    }
}
