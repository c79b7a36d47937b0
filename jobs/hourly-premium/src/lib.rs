//! Hourly premium: scenario 1 ("operations analysis") of the insurance seed.
//!
//! Replaces this Flink SQL, with the same continuous-query semantics:
//!
//! ```sql
//! create view last_order as
//! select id, last_value(order_no) as order_no, last_value(customer_tel) as customer_tel,
//!        last_value(gmt_modified) as gmt_modified, last_value(account_payble) as account_payble
//! from user_order
//! where gmt_modified >= <start of today, ms>
//! group by id;
//!
//! insert into hs_order
//! select from_unixtime(gmt_modified / 1000, 'yyyyMMddHH') as biz_date,
//!        sum(coalesce(account_payble, 0)) as total_premium,
//!        count(distinct order_no) as policy_cnt,
//!        count(distinct customer_tel) as policy_holder_cnt
//! from last_order group by from_unixtime(gmt_modified / 1000, 'yyyyMMddHH');
//! ```
//!
//! Parameters:
//! - `utc_offset_minutes` (default 480, UTC+8): the time zone of "today" and
//!   of `biz_date`. Changing it on a running job needs fresh state, since old
//!   orders are retracted from the hour this offset gives them.
//! - `since_ms` (optional): replaces the start-of-today bound of the filter
//!   (e.g. `0` to replay old data).
//!
//! `hs_order` is an upsert table keyed by `biz_date`: an hour whose last
//! order moved elsewhere is deleted (`ctx.delete` with its last row).
//!
//! Mini-batch, as Flink's `table.exec.mini-batch`: a batch's orders are
//! folded per user first (`process` merges them into the user's view row),
//! and `finish_batch` applies each user's change (-row before the batch,
//! +row after) to the hours once, then emits one `hs_order` row per hour
//! the batch changed. The table is the same as with a change per record;
//! a user ordering several times in a batch costs one update of the hours
//! instead of one per order. (Only an hour whose premium sum reaches the
//! saturation of i64 millionths, ~9.2e12 in all, could differ, since sums
//! saturate in a different order.)

use std::collections::BTreeMap;

use sluice_sdk::prelude::*;

mod cases;
mod model;
pub use cases::cases;
use model::{Hours, LastOrder, Params, UserOrder};
pub use model::{SINK, SOURCE};

pub struct HourlyPremium {
    params: Params,
    /// user id -> last order
    last_order: LastValue<LastOrder>,
    hours: Hours,
    /// Users with orders in the current batch, by id (ordered, so the
    /// hours are updated in the same order on every run).
    folded: BTreeMap<i64, Folded>,
}

/// A user's `last_order` row before the current batch and after its
/// orders so far.
struct Folded {
    before: Option<LastOrder>,
    current: LastOrder,
}

#[sluice_sdk::job]
impl Job for HourlyPremium {
    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(HourlyPremium {
            params: Params::open(ctx)?,
            last_order: LastValue::open(ctx, "last_order")?,
            hours: Hours::open(ctx)?,
            folded: BTreeMap::new(),
        })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let order = UserOrder::read(record)?;
        let Some(gmt_modified) = self.params.passes(ctx, &order) else {
            ctx.count("filtered", 1);
            return Ok(());
        };
        match self.folded.get_mut(&order.id) {
            Some(user) => user.current = LastOrder::merged(order, gmt_modified, Some(&user.current)),
            None => {
                let before = self.last_order.get(ctx, &order.id)?;
                let id = order.id;
                let current = LastOrder::merged(order, gmt_modified, before.as_ref());
                self.folded.insert(id, Folded { before, current });
            }
        }
        Ok(())
    }

    /// Applies the batch's changes of `last_order` (-old +current per user)
    /// to the hours they touch, then emits one `hs_order` change per hour
    /// touched (an upsert of its row, or the delete of an hour left without
    /// orders), where the SQL's continuous query emits one per record.
    fn finish_batch(&mut self, ctx: &mut Context) -> Result<()> {
        for (id, Folded { before, current }) in std::mem::take(&mut self.folded) {
            if before.as_ref() == Some(&current) {
                continue; // the view row did not change: nothing downstream changes
            }
            self.last_order.set(ctx, &id, &current)?;
            if let Some(old) = before {
                self.hours.apply(ctx, &self.params.biz_date(old.gmt_modified), &old, true)?;
            }
            self.hours.apply(ctx, &self.params.biz_date(current.gmt_modified), &current, false)?;
        }
        self.hours.finish_batch(ctx)
    }
}
