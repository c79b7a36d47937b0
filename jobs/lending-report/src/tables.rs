//! The four report tables: their running aggregates (state), their rows,
//! and how a user's or a loan's contribution is added or retracted.
//!
//! Every change follows one pattern (as hourly-premium's retraction does):
//! retract the contributions of everything the change affects, change the
//! state, add the contributions back, then emit, for each table cell
//! touched, the rows that differ from before (an upsert) or disappeared (a
//! delete). Cells remember their rows from before they were first touched,
//! so a retract followed by the same add emits nothing.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_sdk::prelude::*;

use crate::LendingReport;
use crate::calendar::{date_text, month_index, month_text};
use crate::model::{APPROVED, AUDITING, REJECTED};

pub const FUNNEL: &str = "loan_funnel";
pub const APPROVAL: &str = "loan_approval";
pub const DISBURSEMENT: &str = "loan_disbursement";
pub const VINTAGE: &str = "loan_vintage";

/// One group of a report table: one row, or for the vintage one row per
/// month on book of a disbursement month.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    /// (registration date, channel)
    Funnel(String, String),
    /// (application date, prod_type)
    Approval(String, i64),
    /// (disbursement date, prod_type)
    Disbursement(String, i64),
    /// disbursement month index
    Vintage(i64),
}

/// Users who registered on one day through one channel, and how far they got.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct FunnelTotals {
    registered: i64,
    applied: i64,
    approved: i64,
    disbursed: i64,
}

/// Applications of one day and product type, by the class of their status.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct ApprovalTotals {
    applied: i64,
    auditing: i64,
    rejected: i64,
    approved: i64,
}

/// Loans disbursed on one day, of one product type.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct DisbursementTotals {
    loans: i64,
    first_loans: i64,
    amount_cents: i64,
}

/// Loans disbursed in one month, and in which month on book each first
/// reached 1+ and 30+ days past due (offset -> loans).
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct VintageMonth {
    loans: i64,
    dpd1: BTreeMap<i64, i64>,
    dpd30: BTreeMap<i64, i64>,
}

/// Job-wide facts: the data clock and the months that had disbursements.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct Meta {
    /// The latest event time seen on any input (never goes back).
    pub clock: Option<i64>,
    pub months: Vec<i64>,
}

pub const META_KEY: &str = "meta";

/// Rows of the touched cells, as they were before the change.
pub type Touched = BTreeMap<Cell, BTreeMap<String, Value>>;

impl LendingReport {
    /// Remembers `cell`'s rows before its first change.
    pub(crate) fn touch(&self, ctx: &mut Context, touched: &mut Touched, cell: Cell) -> Result<()> {
        if let Entry::Vacant(entry) = touched.entry(cell) {
            let rows = self.rows(ctx, entry.key())?;
            entry.insert(rows);
        }
        Ok(())
    }

    /// Emits what changed in the touched cells.
    pub(crate) fn flush(&self, ctx: &mut Context, touched: Touched) -> Result<()> {
        for (cell, before) in touched {
            let sink = match cell {
                Cell::Funnel(..) => FUNNEL,
                Cell::Approval(..) => APPROVAL,
                Cell::Disbursement(..) => DISBURSEMENT,
                Cell::Vintage(_) => VINTAGE,
            };
            let after = self.rows(ctx, &cell)?;
            for (key, row) in &before {
                if !after.contains_key(key) {
                    ctx.delete(sink, row)?;
                }
            }
            for (key, row) in &after {
                if before.get(key) != Some(row) {
                    ctx.emit(sink, row)?;
                }
            }
        }
        Ok(())
    }

    /// The rows a cell holds now, by row key.
    fn rows(&self, ctx: &mut Context, cell: &Cell) -> Result<BTreeMap<String, Value>> {
        let mut rows = BTreeMap::new();
        match cell {
            Cell::Funnel(date, channel) => {
                if let Some(t) = self.funnel.get(ctx, &(date, channel))? {
                    rows.insert(String::new(), json!({
                        "reg_date": date, "channel": channel, "registered": t.registered, "applied": t.applied,
                        "approved": t.approved, "disbursed": t.disbursed,
                        "pass_rate": ratio(t.approved, t.applied), "conversion_rate": ratio(t.disbursed, t.registered),
                    }));
                }
            }
            Cell::Approval(date, prod_type) => {
                if let Some(t) = self.approval.get(ctx, &(date, *prod_type))? {
                    rows.insert(
                        String::new(),
                        json!({
                            "apply_date": date, "prod_type": prod_type, "applied": t.applied, "auditing": t.auditing,
                            "rejected": t.rejected, "approved": t.approved,
                            "pass_rate": ratio(t.approved, t.approved + t.rejected),
                        }),
                    );
                }
            }
            Cell::Disbursement(date, prod_type) => {
                if let Some(t) = self.disbursement.get(ctx, &(date, *prod_type))? {
                    rows.insert(
                        String::new(),
                        json!({
                            "lend_date": date, "prod_type": prod_type, "loans": t.loans, "first_loans": t.first_loans,
                            // cents / 100 prints as the exact two-decimal text
                            "amount": t.amount_cents as f64 / 100.0,
                        }),
                    );
                }
            }
            Cell::Vintage(month) => {
                let clock = self.meta.get(ctx, META_KEY)?.and_then(|m| m.clock);
                if let (Some(t), Some(clock)) = (self.vintage.get(ctx, month)?, clock) {
                    // Months on book that have been reached by the data.
                    let last = (month_index(self.calendar.day(clock)) - month).min(self.max_mob);
                    let (mut dpd1, mut dpd30) = (0, 0);
                    for mob in 0..=last {
                        dpd1 += t.dpd1.get(&mob).copied().unwrap_or(0);
                        dpd30 += t.dpd30.get(&mob).copied().unwrap_or(0);
                        rows.insert(
                            format!("{mob:04}"),
                            json!({
                                "lend_month": month_text(*month), "mob": mob, "loans": t.loans,
                                "overdue_1": dpd1, "overdue_30": dpd30,
                                "overdue_1_rate": ratio(dpd1, t.loans), "overdue_30_rate": ratio(dpd30, t.loans),
                            }),
                        );
                    }
                }
            }
        }
        Ok(rows)
    }

    /// Adds (`+1`) or retracts (`-1`) a user's funnel contribution.
    pub(crate) fn apply_user(&self, ctx: &mut Context, touched: &mut Touched, user_id: i64, sign: i64) -> Result<()> {
        let Some(user) = self.users.get(ctx, &user_id)? else { return Ok(()) };
        let Some(reg) = user.registration else { return Ok(()) };
        self.touch(ctx, touched, Cell::Funnel(reg.date.clone(), reg.channel.clone()))?;
        let key = (&reg.date, &reg.channel);
        let mut t = self.funnel.get(ctx, &key)?.unwrap_or_default();
        t.registered += sign;
        t.applied += sign * i64::from(user.loans > 0);
        t.approved += sign * i64::from(user.approved > 0);
        t.disbursed += sign * i64::from(!user.disbursed.is_empty());
        if t.registered == 0 {
            self.funnel.remove(ctx, &key);
        } else {
            self.funnel.set(ctx, &key, &t)?;
        }
        Ok(())
    }

    /// Adds (`+1`) or retracts (`-1`) a loan's contributions to the
    /// approval, disbursement and vintage tables.
    pub(crate) fn apply_loan(&self, ctx: &mut Context, touched: &mut Touched, loan_id: i64, sign: i64) -> Result<()> {
        let Some(state) = self.loans.get(ctx, &loan_id)? else { return Ok(()) };
        let Some(loan) = state.row else { return Ok(()) };

        let date = date_text(self.calendar.day(loan.inserttime));
        self.touch(ctx, touched, Cell::Approval(date.clone(), loan.prod_type))?;
        let key = (&date, loan.prod_type);
        let mut t = self.approval.get(ctx, &key)?.unwrap_or_default();
        t.applied += sign;
        match loan.status {
            AUDITING => t.auditing += sign,
            REJECTED => t.rejected += sign,
            s if s >= APPROVED => t.approved += sign,
            _ => {}
        }
        store(ctx, &self.approval, &key, t, |t| t.applied == 0)?;

        let Some(lend) = loan.lend_time else { return Ok(()) };
        let borrower = self.users.get(ctx, &loan.borrower_id)?.unwrap_or_default();
        let first = borrower.disbursed.first() == Some(&(lend, loan_id));
        let day = self.calendar.day(lend);
        let date = date_text(day);
        self.touch(ctx, touched, Cell::Disbursement(date.clone(), loan.prod_type))?;
        let key = (&date, loan.prod_type);
        let mut t = self.disbursement.get(ctx, &key)?.unwrap_or_default();
        t.loans += sign;
        t.first_loans += sign * i64::from(first);
        t.amount_cents += sign * loan.amount_cents;
        store(ctx, &self.disbursement, &key, t, |t| t.loans == 0)?;

        let month = month_index(day);
        self.touch(ctx, touched, Cell::Vintage(month))?;
        let mut t = self.vintage.get(ctx, &month)?.unwrap_or_default();
        t.loans += sign;
        // The month on book in which a milestone was first reached; one
        // before the disbursement month (bad data) counts as month 0.
        for (day, counts) in [(state.dpd1_day, &mut t.dpd1), (state.dpd30_day, &mut t.dpd30)] {
            if let Some(day) = day {
                let mob = (month_index(day) - month).max(0);
                *counts.entry(mob).or_default() += sign;
                if counts[&mob] == 0 {
                    counts.remove(&mob);
                }
            }
        }
        store(ctx, &self.vintage, &month, t, |t| t.loans == 0)?;
        if sign > 0 {
            let mut meta = self.meta.get(ctx, META_KEY)?.unwrap_or_default();
            if let Err(at) = meta.months.binary_search(&month) {
                meta.months.insert(at, month);
                self.meta.set(ctx, META_KEY, &meta)?;
            }
        }
        Ok(())
    }
}

/// Stores an aggregate, or removes it once its group is empty.
fn store<K: Key + ?Sized, T: StateValue>(
    ctx: &mut Context,
    state: &ValueState<T>,
    key: &K,
    value: T,
    empty: impl Fn(&T) -> bool,
) -> Result<()> {
    if empty(&value) {
        state.remove(ctx, key);
        Ok(())
    } else {
        state.set(ctx, key, &value)
    }
}

/// `round(n / d, 4)`, half up (all counts are non-negative), as a JSON
/// number whose text is the exact four-decimal value; None when `d` is 0.
pub fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| ((n * 20_000 + d) / (2 * d)) as f64 / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::ratio;

    #[test]
    fn ratios_round_half_up_to_four_decimals() {
        assert_eq!(ratio(1, 3), Some(0.3333));
        assert_eq!(ratio(2, 3), Some(0.6667));
        assert_eq!(ratio(1, 20_000), Some(0.0001)); // 0.00005 rounds up
        assert_eq!(ratio(1, 40_000), Some(0.0)); // 0.000025 rounds down
        assert_eq!(ratio(5, 5), Some(1.0));
        assert_eq!(ratio(0, 0), None);
        assert_eq!(serde_json::to_string(&ratio(1, 3)).unwrap(), "0.3333");
    }
}
