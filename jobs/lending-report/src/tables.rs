//! The four report tables: their running aggregates (state), their rows,
//! and what one user or one loan adds to them ([`Part`]).
//!
//! Every change follows one pattern (as hourly-premium's retraction does):
//! retract the parts of everything the change affects, change the state,
//! add the parts back, then emit, for each table cell touched, the rows
//! that differ from before (an upsert) or disappeared (a delete).
//!
//! Mini-batch: the parts a batch adds are summed per cell in the job
//! ([`Touched`]) and reach the cells' state once, when the batch ends; the
//! rows before the batch and after it are compared then, so a retract
//! followed by the same add emits nothing and costs no state access. (A
//! loan's update retracts and re-adds up to four parts; summing them costs
//! a map lookup each instead of a state read and write.) The staged form of the job
//! (`jobs/lending-report-staged`) sends the parts' differences to the
//! stage keyed by cell, which adds them to a [`Report`] the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_sdk::prelude::*;

use crate::calendar::{Calendar, date_text, month_index, month_text};
use crate::model::{APPROVED, AUDITING, Loan, REJECTED, Registration};

pub const FUNNEL: &str = "loan_funnel";
pub const APPROVAL: &str = "loan_approval";
pub const DISBURSEMENT: &str = "loan_disbursement";
pub const VINTAGE: &str = "loan_vintage";

/// One group of a report table: one row, or for the vintage one row per
/// month on book of a disbursement month.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct FunnelTotals {
    pub registered: i64,
    pub applied: i64,
    pub approved: i64,
    pub disbursed: i64,
}

/// Applications of one day and product type, by the class of their status.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct ApprovalTotals {
    pub applied: i64,
    pub auditing: i64,
    pub rejected: i64,
    pub approved: i64,
}

/// Loans disbursed on one day, of one product type.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct DisbursementTotals {
    pub loans: i64,
    pub first_loans: i64,
    pub amount_cents: i64,
}

/// Loans disbursed in one month, and in which month on book each first
/// reached 1+ and 30+ days past due (offset -> loans).
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct VintageMonth {
    pub loans: i64,
    pub dpd1: BTreeMap<i64, i64>,
    pub dpd30: BTreeMap<i64, i64>,
}

/// Job-wide facts: the data clock and the months that had disbursements.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct Meta {
    /// The latest event time seen on any input (never goes back).
    pub clock: Option<i64>,
    pub months: Vec<i64>,
}

pub const META_KEY: &str = "meta";

/// What the current batch did to the report, not yet in its state: the
/// parts it added, summed per cell (`None`: a cell whose rows may change
/// with the clock alone), and the job-wide facts as they were when the
/// batch first read them and as they are now.
#[derive(Default)]
pub struct Touched {
    cells: BTreeMap<Cell, Option<Totals>>,
    meta: Option<(Meta, Meta)>,
}

impl Touched {
    pub fn new() -> Touched {
        Touched::default()
    }
}

/// What one user (their funnel row) or one loan adds to one cell; with a
/// sign, what a change adds or takes away.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Part {
    pub cell: Cell,
    pub totals: Totals,
}

/// The totals of a [`Part`], of its cell's table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Totals {
    Funnel(FunnelTotals),
    Approval(ApprovalTotals),
    Disbursement(DisbursementTotals),
    Vintage(VintageMonth),
}

impl Part {
    /// A registered user's funnel row: counted, and whether they applied,
    /// passed review and got money.
    pub fn funnel(reg: &Registration, loans: i64, approved: i64, disbursed: bool) -> Part {
        let totals = FunnelTotals {
            registered: 1,
            applied: i64::from(loans > 0),
            approved: i64::from(approved > 0),
            disbursed: i64::from(disbursed),
        };
        Part { cell: Cell::Funnel(reg.date.clone(), reg.channel.clone()), totals: Totals::Funnel(totals) }
    }

    /// A loan's parts: its application, and once disbursed its
    /// disbursement (`first`: the borrower's first loan) and vintage, with
    /// the months on book it first reached 1+ and 30+ days past due.
    pub fn of_loan(
        calendar: &Calendar,
        loan: &Loan,
        first: bool,
        dpd1_day: Option<i64>,
        dpd30_day: Option<i64>,
    ) -> impl Iterator<Item = Part> {
        let mut applied = ApprovalTotals { applied: 1, ..ApprovalTotals::default() };
        match loan.status {
            AUDITING => applied.auditing = 1,
            REJECTED => applied.rejected = 1,
            s if s >= APPROVED => applied.approved = 1,
            _ => {}
        }
        let approval = Part {
            cell: Cell::Approval(date_text(calendar.day(loan.inserttime)), loan.prod_type),
            totals: Totals::Approval(applied),
        };
        let lent = loan.lend_time.map(|lend| {
            let day = calendar.day(lend);
            let disbursement =
                DisbursementTotals { loans: 1, first_loans: i64::from(first), amount_cents: loan.amount_cents };
            let month = month_index(day);
            let mut vintage = VintageMonth { loans: 1, ..VintageMonth::default() };
            // The month on book in which a milestone was first reached; one
            // before the disbursement month (bad data) counts as month 0.
            for (day, counts) in [(dpd1_day, &mut vintage.dpd1), (dpd30_day, &mut vintage.dpd30)] {
                if let Some(day) = day {
                    counts.insert((month_index(day) - month).max(0), 1);
                }
            }
            [
                Part {
                    cell: Cell::Disbursement(date_text(day), loan.prod_type),
                    totals: Totals::Disbursement(disbursement),
                },
                Part { cell: Cell::Vintage(month), totals: Totals::Vintage(vintage) },
            ]
        });
        std::iter::once(approval).chain(lent.into_iter().flatten())
    }

    /// Adds `other` (a part of the same cell) times `sign`.
    pub fn add(&mut self, other: &Part, sign: i64) {
        self.totals.add(&other.totals, sign);
    }

    /// A part of the same cell that adds nothing.
    pub fn zeroed(&self) -> Part {
        Part { cell: self.cell.clone(), totals: self.totals.zeroed() }
    }

    /// Whether its totals are of its cell's table.
    fn fits(&self) -> bool {
        matches!(
            (&self.cell, &self.totals),
            (Cell::Funnel(..), Totals::Funnel(_))
                | (Cell::Approval(..), Totals::Approval(_))
                | (Cell::Disbursement(..), Totals::Disbursement(_))
                | (Cell::Vintage(_), Totals::Vintage(_))
        )
    }

    /// Whether it adds nothing.
    pub fn is_zero(&self) -> bool {
        self.totals.is_zero()
    }
}

impl Totals {
    /// Adds `other` (totals of the same table) times `sign`.
    fn add(&mut self, other: &Totals, sign: i64) {
        match (self, other) {
            (Totals::Funnel(t), Totals::Funnel(o)) => t.add(o, sign),
            (Totals::Approval(t), Totals::Approval(o)) => t.add(o, sign),
            (Totals::Disbursement(t), Totals::Disbursement(o)) => t.add(o, sign),
            (Totals::Vintage(t), Totals::Vintage(o)) => t.add(o, sign),
            (me, other) => debug_assert!(false, "{me:?} and {other:?} are totals of different tables"),
        }
    }

    /// Whether they add nothing.
    fn is_zero(&self) -> bool {
        match self {
            Totals::Funnel(t) => *t == FunnelTotals::default(),
            Totals::Approval(t) => *t == ApprovalTotals::default(),
            Totals::Disbursement(t) => *t == DisbursementTotals::default(),
            Totals::Vintage(t) => *t == VintageMonth::default(),
        }
    }

    /// Totals of the same table that add nothing.
    fn zeroed(&self) -> Totals {
        match self {
            Totals::Funnel(_) => Totals::Funnel(FunnelTotals::default()),
            Totals::Approval(_) => Totals::Approval(ApprovalTotals::default()),
            Totals::Disbursement(_) => Totals::Disbursement(DisbursementTotals::default()),
            Totals::Vintage(_) => Totals::Vintage(VintageMonth::default()),
        }
    }
}

impl FunnelTotals {
    fn add(&mut self, o: &FunnelTotals, sign: i64) {
        self.registered += sign * o.registered;
        self.applied += sign * o.applied;
        self.approved += sign * o.approved;
        self.disbursed += sign * o.disbursed;
    }
}

impl ApprovalTotals {
    fn add(&mut self, o: &ApprovalTotals, sign: i64) {
        self.applied += sign * o.applied;
        self.auditing += sign * o.auditing;
        self.rejected += sign * o.rejected;
        self.approved += sign * o.approved;
    }
}

impl DisbursementTotals {
    fn add(&mut self, o: &DisbursementTotals, sign: i64) {
        self.loans += sign * o.loans;
        self.first_loans += sign * o.first_loans;
        self.amount_cents += sign * o.amount_cents;
    }
}

impl VintageMonth {
    fn add(&mut self, o: &VintageMonth, sign: i64) {
        self.loans += sign * o.loans;
        for (counts, other) in [(&mut self.dpd1, &o.dpd1), (&mut self.dpd30, &o.dpd30)] {
            for (mob, n) in other {
                let count = counts.entry(*mob).or_default();
                *count += sign * n;
                if *count == 0 {
                    counts.remove(mob);
                }
            }
        }
    }
}

/// The report tables' state: a running aggregate per cell, and the clock.
pub struct Report {
    pub calendar: Calendar,
    max_mob: i64,
    funnel: ValueState<FunnelTotals>,
    approval: ValueState<ApprovalTotals>,
    disbursement: ValueState<DisbursementTotals>,
    vintage: ValueState<VintageMonth>,
    meta: ValueState<Meta>,
}

impl Report {
    /// Reads the parameters `utc_offset_minutes` (480) and `max_mob` (12)
    /// and declares the tables' state.
    pub fn open(ctx: &mut Context) -> Result<Report> {
        let calendar = Report::calendar(ctx)?;
        let max_mob: i64 = ctx.param_or("max_mob", 12)?;
        if !(0..=120).contains(&max_mob) {
            return Err(Error::fatal(format!("parameter `max_mob` = {max_mob} must be within 0..=120")));
        }
        Ok(Report {
            calendar,
            max_mob,
            funnel: ctx.value_state("funnel")?,
            approval: ctx.value_state("approval")?,
            disbursement: ctx.value_state("disbursement")?,
            vintage: ctx.value_state("vintage")?,
            meta: ctx.value_state("meta")?,
        })
    }

    /// The business calendar of parameter `utc_offset_minutes` (480).
    pub fn calendar(ctx: &mut Context) -> Result<Calendar> {
        let offset_minutes: i64 = ctx.param_or("utc_offset_minutes", 480)?;
        if offset_minutes.abs() > 18 * 60 {
            return Err(Error::fatal(format!(
                "parameter `utc_offset_minutes` = {offset_minutes} is not within ±18 hours"
            )));
        }
        Ok(Calendar { offset_ms: offset_minutes * 60_000 })
    }

    /// The job-wide facts as the batch has them now (read from state
    /// once per batch).
    fn meta<'t>(&self, ctx: &mut Context, meta: &'t mut Option<(Meta, Meta)>) -> Result<&'t mut Meta> {
        if meta.is_none() {
            let held = self.meta.get(ctx, META_KEY)?.unwrap_or_default();
            *meta = Some((held.clone(), held));
        }
        Ok(meta.as_mut().map(|(_, now)| now).expect("just set"))
    }

    /// Adds `part` times `sign` to its cell's sum for this batch.
    pub fn add(&self, ctx: &mut Context, touched: &mut Touched, part: &Part, sign: i64) -> Result<()> {
        if !part.fits() {
            return Err(Error::fatal(format!("totals {:?} do not belong to cell {:?}", part.totals, part.cell)));
        }
        if let (Cell::Vintage(month), Totals::Vintage(d)) = (&part.cell, &part.totals)
            && sign * d.loans > 0
        {
            let meta = self.meta(ctx, &mut touched.meta)?;
            if let Err(at) = meta.months.binary_search(month) {
                meta.months.insert(at, *month);
            }
        }
        // One lookup per part; the cell is cloned once per batch.
        match touched.cells.get_mut(&part.cell) {
            Some(sum) => sum.get_or_insert_with(|| part.totals.zeroed()).add(&part.totals, sign),
            None => {
                let mut sum = part.totals.zeroed();
                sum.add(&part.totals, sign);
                touched.cells.insert(part.cell.clone(), Some(sum));
            }
        }
        Ok(())
    }

    /// Moves the data clock forward to `time`; a new month brings every
    /// disbursement month's next month on book.
    pub fn advance_clock(&self, ctx: &mut Context, touched: &mut Touched, time: i64) -> Result<()> {
        let meta = self.meta(ctx, &mut touched.meta)?;
        if meta.clock.is_some_and(|c| time <= c) {
            return Ok(());
        }
        let month = |t: i64| month_index(self.calendar.day(t));
        if meta.clock.map(month) != Some(month(time)) {
            for m in &meta.months {
                touched.cells.entry(Cell::Vintage(*m)).or_default();
            }
        }
        meta.clock = Some(time);
        Ok(())
    }

    /// Applies the batch's sums to the cells' state and emits what changed:
    /// each touched cell's rows before the batch against its rows now.
    pub fn flush(&self, ctx: &mut Context, touched: Touched) -> Result<()> {
        let Touched { cells, meta } = touched;
        if cells.is_empty() && meta.is_none() {
            return Ok(());
        }
        let (before, now) = match meta {
            Some(m) => m,
            None => {
                let held = self.meta.get(ctx, META_KEY)?.unwrap_or_default();
                (held.clone(), held)
            }
        };
        for (cell, sum) in cells {
            let sink = match cell {
                Cell::Funnel(..) => FUNNEL,
                Cell::Approval(..) => APPROVAL,
                Cell::Disbursement(..) => DISBURSEMENT,
                Cell::Vintage(_) => VINTAGE,
            };
            let rows_before = self.rows(ctx, &cell, before.clock)?;
            // A retraction and the same addition cancel out: no state access.
            if let Some(sum) = sum.filter(|sum| !sum.is_zero()) {
                self.apply(ctx, &cell, &sum)?;
            }
            let rows_after = self.rows(ctx, &cell, now.clock)?;
            for (key, row) in &rows_before {
                if !rows_after.contains_key(key) {
                    ctx.delete(sink, row)?;
                }
            }
            for (key, row) in &rows_after {
                if rows_before.get(key) != Some(row) {
                    ctx.emit(sink, row)?;
                }
            }
        }
        if (&now.clock, &now.months) != (&before.clock, &before.months) {
            self.meta.set(ctx, META_KEY, &now)?;
        }
        Ok(())
    }

    /// Adds a batch's sum to its cell's state; a cell left empty is removed.
    fn apply(&self, ctx: &mut Context, cell: &Cell, sum: &Totals) -> Result<()> {
        match (cell, sum) {
            (Cell::Funnel(date, channel), Totals::Funnel(d)) => {
                let key = (date, channel);
                let mut t = self.funnel.get(ctx, &key)?.unwrap_or_default();
                t.add(d, 1);
                store(ctx, &self.funnel, &key, t, |t| t.registered == 0)
            }
            (Cell::Approval(date, prod_type), Totals::Approval(d)) => {
                let key = (date, *prod_type);
                let mut t = self.approval.get(ctx, &key)?.unwrap_or_default();
                t.add(d, 1);
                store(ctx, &self.approval, &key, t, |t| t.applied == 0)
            }
            (Cell::Disbursement(date, prod_type), Totals::Disbursement(d)) => {
                let key = (date, *prod_type);
                let mut t = self.disbursement.get(ctx, &key)?.unwrap_or_default();
                t.add(d, 1);
                store(ctx, &self.disbursement, &key, t, |t| t.loans == 0)
            }
            (Cell::Vintage(month), Totals::Vintage(d)) => {
                let mut t = self.vintage.get(ctx, month)?.unwrap_or_default();
                t.add(d, 1);
                store(ctx, &self.vintage, month, t, |t| t.loans == 0)
            }
            (cell, totals) => Err(Error::fatal(format!("totals {totals:?} do not belong to cell {cell:?}"))),
        }
    }

    /// The rows a cell's state gives at the data clock `clock`, by row key.
    fn rows(&self, ctx: &mut Context, cell: &Cell, clock: Option<i64>) -> Result<BTreeMap<String, Value>> {
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
