//! 金盘 post-loan status (seed 000, "贷后数据"): once a day, 盘宝's
//! repayment status — paid, overdue, withdrawn (退标) — is pulled into the
//! status columns of `jp_repayment`, keyed by `(order_id, period)`.
//!
//! A bounded job, meant to be started daily by the console's cron
//! scheduler (see `daily.toml`): a `sql` source over 盘宝's status table
//! (all rows, or those updated lately), an upsert sink that writes only
//! the status columns — the plan columns belong to the order sync, so the
//! two never overwrite each other. Upserts are idempotent: running it
//! again, or over rows already pulled, changes nothing; a 退标 corrected
//! late is simply the row's newer status.
//!
//! Within a run a row replaces an earlier one of the same installment only
//! when its `updated_at` is not older, so a query over a status *history*
//! still leaves the latest status.
//!
//! Rejected (dead letters): rows without `order_id`, a period below 1, or
//! a status other than `PENDING`, `PAID`, `OVERDUE`, `WITHDRAWN`.

use jinpan_model::Decimal;
use jinpan_model::tables::REPAYMENT;
use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;

pub mod cases;
pub use cases::cases;

pub use jinpan_model::tables;

/// 盘宝's repayment status rows.
pub const SOURCE: &str = "repayment_status";
pub const STATUSES: &[&str] = &["PENDING", "PAID", "OVERDUE", "WITHDRAWN"];

/// A row of 盘宝's status table.
#[derive(Deserialize)]
struct StatusRow {
    order_id: String,
    period: i64,
    status: String,
    repaid_amount: Option<Decimal>,
    repaid_time: Option<i64>,
    updated_at: i64,
}

/// The status columns of `jp_repayment`.
#[derive(Serialize)]
struct RepaymentStatus<'a> {
    order_id: &'a str,
    period: i64,
    repay_status: &'a str,
    repaid_amount: Option<&'a Decimal>,
    repaid_time: Option<i64>,
    status_updated_at: i64,
}

pub struct JinpanPostloan {
    /// `updated_at` of the status written per (order_id, period).
    written: ValueState<i64>,
}

#[sluice_sdk::job]
impl Job for JinpanPostloan {
    /// State is keyed by (order, period), finer than the record key (the
    /// order): parallel tasks give the same table.
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;

    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(JinpanPostloan { written: ctx.value_state("status_updated_at")? })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let row: StatusRow = record.json()?;
        let order_id = row.order_id.trim();
        if order_id.is_empty() {
            return Err(Error::record("order_id is empty"));
        }
        if row.period < 1 {
            return Err(Error::record(format!("period {} of order {order_id} is not an installment", row.period)));
        }
        if !STATUSES.contains(&row.status.as_str()) {
            return Err(Error::record(format!(
                "repayment status `{}` of order {order_id} is none of {}",
                row.status,
                STATUSES.join(", ")
            )));
        }
        let key = (order_id, row.period);
        if self.written.get(ctx, &key)?.is_some_and(|at| at > row.updated_at) {
            ctx.count("statuses_older", 1);
            return Ok(());
        }
        self.written.set(ctx, &key, &row.updated_at)?;
        ctx.count("statuses_written", 1);
        ctx.emit(
            REPAYMENT,
            &RepaymentStatus {
                order_id,
                period: row.period,
                repay_status: &row.status,
                repaid_amount: row.repaid_amount.as_ref(),
                repaid_time: row.repaid_time,
                status_updated_at: row.updated_at,
            },
        )
    }
}
