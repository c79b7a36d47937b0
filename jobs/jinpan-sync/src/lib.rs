//! 金盘 order sync (seed 000, "金盘数据的来源"): every order message of
//! 盘宝 — the order and the borrower's credit report — split into the
//! normalised tables of [`jinpan_model::tables`], one sink per table,
//! upserted by `user_id` / `order_id` (composite keys where a user has
//! several rows: bank cards by `(user_id, card_no)`, ...).
//!
//! Idempotent and independent of arrival order: a row is only emitted when
//! its order version (`gmt_modified`, then `order_id`) is newer than the
//! version of the row the table holds ([`jinpan_model::Versions`], kept in
//! state). Duplicated and replayed messages emit nothing; a late, older
//! version of an order (`PENDING` after `APPROVED`) changes nothing.
//!
//! Messages that are not JSON, or lack `order_id`, `user_id` or
//! `gmt_modified`, are rejected (dead letters); the daily compensation
//! job (`jinpan-compensate`) back-fills such orders from 盘宝's order table.
//!
//! Metrics: `orders`, `rows_written`, `rows_superseded` (older than the
//! table's) and `rows_without_key` (bank cards without a number, devices
//! without an id: they cannot be keyed and are not stored).

use jinpan_model::{OrderEvent, Split, Versions, emit_order};
use sluice_sdk::prelude::*;

pub mod cases;
pub use cases::cases;

pub use jinpan_model::tables;

/// The order messages.
pub const SOURCE: &str = "jinpan_order";

pub struct JinpanSync {
    versions: Versions,
}

#[sluice_sdk::job]
impl Job for JinpanSync {
    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(JinpanSync { versions: Versions::open(ctx, false)? })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let order: OrderEvent = record.json()?;
        order.check()?;
        let split = emit_order(ctx, &self.versions, &order)?;
        count(ctx, &split);
        Ok(())
    }
}

fn count(ctx: &mut Context, split: &Split) {
    ctx.count("orders", 1);
    ctx.count("rows_written", split.written);
    ctx.count("rows_superseded", split.superseded);
    ctx.count("rows_without_key", split.without_key);
}
