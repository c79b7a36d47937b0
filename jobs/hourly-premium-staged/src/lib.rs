//! Hourly premium in two repartition stages: the seed's SQL as its two
//! `group by` levels, so the job runs at any parallelism with the same
//! `hs_order` table (issue 19). `jobs/hourly-premium` is the same job as one
//! stage, which must run as one task: its hour totals combine every user.
//!
//! - Stage `last_order`, keyed by user id (the `user_order` topic's record
//!   key): the `last_order` view. Each change of a user's row is sent on as
//!   its changelog, `-old` to the old row's hour and `+current` to the new
//!   one's, keyed by that hour (`biz_date`).
//! - Stage `hour_totals`, keyed by `biz_date` (the key the first stage
//!   sends with): the `hs_order` aggregate, emitted once per batch for each
//!   hour the batch changed, as `jobs/hourly-premium` does.
//!
//! The platform routes the changes through a repartition topic partitioned
//! by hour and applies each once, whatever crashes and replays
//! (docs/ARCHITECTURE.md, "Repartition stages"). Sums and distinct counts
//! do not depend on the order in which different users' changes reach an
//! hour, and one user's changes keep their order (one key, one partition),
//! so every parallelism ends with the same table. The parameters are those
//! of `jobs/hourly-premium`, but `since_ms` is required: the next stage
//! keeps what it applied from a first run, so a stage must send the same
//! rows when it replays, and "since the start of today" in processing time
//! would filter a replay after midnight otherwise.

use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;

#[path = "../../hourly-premium/src/model.rs"]
mod model;
use model::{Hours, LastOrder, Params, UserOrder};
pub use model::{SINK, SOURCE};

/// One line of the changelog of `last_order`, sent to the stage holding
/// its hour (the row's key).
#[derive(Serialize, Deserialize)]
struct Change {
    /// `-old` (the user's row leaves the hour) rather than `+current`.
    retract: bool,
    row: LastOrder,
}

pub enum HourlyPremiumStaged {
    /// Stage 0: user id -> last order.
    LastOrders { params: Params, last_order: LastValue<LastOrder> },
    /// Stage 1: biz_date -> totals.
    HourTotals { hours: Hours },
}

#[sluice_sdk::job]
impl Job for HourlyPremiumStaged {
    /// Stage 0 keeps state by user id, the input's record key.
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;
    const STAGES: &'static [&'static str] = &["last_order", "hour_totals"];

    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(match ctx.stage() {
            0 => {
                if ctx.param("since_ms").is_none() {
                    return Err(Error::fatal(
                        "parameter `since_ms` is required: the filter of a stage must not depend on when it runs \
                         (`0` keeps every order)",
                    ));
                }
                HourlyPremiumStaged::LastOrders {
                    params: Params::open(ctx)?,
                    last_order: LastValue::open(ctx, "last_order")?,
                }
            }
            _ => HourlyPremiumStaged::HourTotals { hours: Hours::open(ctx)? },
        })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        match self {
            HourlyPremiumStaged::LastOrders { params, last_order } => {
                let order = UserOrder::read(record)?;
                let Some(gmt_modified) = params.passes(ctx, &order) else {
                    ctx.count("filtered", 1);
                    return Ok(());
                };
                let previous = last_order.get(ctx, &order.id)?;
                let id = order.id;
                let current = LastOrder::merged(order, gmt_modified, previous.as_ref());
                if previous.as_ref() == Some(&current) {
                    return Ok(()); // the view row did not change: nothing downstream changes
                }
                last_order.set(ctx, &id, &current)?;
                if let Some(old) = previous {
                    ctx.to_next_stage(&params.biz_date(old.gmt_modified), &Change { retract: true, row: old })?;
                }
                let hour = params.biz_date(current.gmt_modified);
                ctx.to_next_stage(&hour, &Change { retract: false, row: current })
            }
            HourlyPremiumStaged::HourTotals { hours } => {
                let hour = record.key_str().ok_or_else(|| Error::record("a change without its hour as key"))?;
                let change: Change = record.json()?;
                hours.apply(ctx, hour, &change.row, change.retract)
            }
        }
    }

    fn finish_batch(&mut self, ctx: &mut Context) -> Result<()> {
        match self {
            HourlyPremiumStaged::LastOrders { .. } => Ok(()),
            HourlyPremiumStaged::HourTotals { hours } => hours.finish_batch(ctx),
        }
    }
}
