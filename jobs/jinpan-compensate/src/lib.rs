//! 金盘 order compensation (seed 000, "补偿机制"): the message queue can
//! lose orders, so once a day 盘宝's own order table — the source of
//! record — is compared with the synced `jp_order`, and every order that
//! is missing there, or older there than in 盘宝, is back-filled into all
//! the normalised tables, exactly as the sync job would have written it.
//!
//! A bounded job, meant to be started daily by the console's cron
//! scheduler (see `daily.toml`): a `sql` source over 盘宝's orders
//! (`SELECT order_id, payload FROM pb_order WHERE …`, the order document
//! in a JSON column `payload`, or the order's fields as columns) and a
//! `sql` dimension over each table, named like it, through which the job
//! reads the versions of the rows already there.
//!
//! Per order of record, `jp_order` says whether the sync job has seen this
//! very version (same `order_id` and `gmt_modified`): then every row it
//! gives is already settled and the order is skipped (one lookup).
//! Otherwise its rows are written where the table has nothing newer, the
//! same rule as the sync job's ([`jinpan_model::Versions`]), so running
//! compensation twice, or while the sync job runs, changes nothing.
//!
//! Metrics: `orders_in_sync`, `orders_missing`, `orders_stale` (an older
//! version synced), `orders_superseded` (a newer version synced: its rows
//! are settled one by one), `rows_backfilled`. Each back-filled order is
//! logged with its id.

use jinpan_model::tables::ORDER;
use jinpan_model::{OrderEvent, Version, Versions, emit_order};
use serde_json::{Map, Value};
use sluice_sdk::prelude::*;

pub mod cases;
pub use cases::cases;

pub use jinpan_model::tables;

/// 盘宝's order table.
pub const SOURCE: &str = "orders_of_record";

pub struct JinpanCompensate {
    versions: Versions,
}

#[sluice_sdk::job]
impl Job for JinpanCompensate {
    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(JinpanCompensate { versions: Versions::open(ctx, true)? })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        // The order document is the `payload` column, or the row itself.
        let mut row: Map<String, Value> = record.json()?;
        let document = match row.remove("payload") {
            Some(Value::Null) => return Err(Error::record("the row's payload is NULL")),
            Some(payload) => payload,
            None => Value::Object(row),
        };
        let order = OrderEvent::from_json(document)?;
        let version = Version::of(&order);
        match self.versions.known(ctx, ORDER, &order.order_id)? {
            Some(synced) if synced == version => {
                ctx.count("orders_in_sync", 1);
                return Ok(());
            }
            None => {
                ctx.count("orders_missing", 1);
                ctx.info(&format!("order {} is missing from {ORDER}: back-filling it", order.order_id));
            }
            Some(synced) if synced < version => {
                ctx.count("orders_stale", 1);
                ctx.info(&format!(
                    "order {} is older in {ORDER} ({}) than in the source of record ({}): back-filling it",
                    order.order_id, synced.gmt_modified, version.gmt_modified
                ));
            }
            Some(_) => ctx.count("orders_superseded", 1),
        }
        let split = emit_order(ctx, &self.versions, &order)?;
        ctx.count("rows_backfilled", split.written);
        Ok(())
    }
}
