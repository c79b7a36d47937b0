//! Lending risk reports (seed 004, 风控业务常见指标) as continuously updated
//! tables, from the change feeds of `u_user` (registrations), `loan_list`
//! (applications) and `repay_log` (the repayment plan's log):
//!
//! - `loan_funnel` (转化率表), per registration day and channel: users
//!   registered → who applied → who passed review → who got money, with
//!   `pass_rate` = approved / applied and `conversion_rate` = disbursed /
//!   registered;
//! - `loan_approval` (通过率表), per application day and product type:
//!   applications by status class, `pass_rate` = approved / (approved +
//!   rejected);
//! - `loan_disbursement` (放款表), per disbursement day and product type:
//!   loans, first loans (首贷: the borrower's earliest disbursed loan), amount;
//! - `loan_vintage` (vintage 表), per disbursement month and month on book
//!   (0 = the disbursement month): loans, and how many had reached 1+ / 30+
//!   days past due by the end of that month on book ("ever" overdue), with
//!   rates. Months on book appear once the data reaches them (the latest
//!   event time seen, on any feed), up to `max_mob`.
//!
//! **State tables vs log tables** (the seed's 状态表 / log表): `u_user` and
//! `loan_list` are state tables — each event is the row's new version, which
//! replaces the one held (the newer `updatetime` wins; on a tie the higher
//! loan status). A loan moving from auditing to approved is retracted from
//! its old class and added to the new one, in every table it touches, like
//! hourly-premium's exact retraction. A row older than the one held (a late
//! or duplicated event) changes nothing. `repay_log` is a log table — every
//! record is a fact, folded into the earliest day each loan reached 1 and
//! 30 days past due; a fact seen twice folds the same way.
//!
//! Hence the reports depend only on the set of events, not on their order
//! or repetition: a registration arriving after the user's loans, a stale
//! status after a newer one, a duplicate — all converge to what a batch
//! query over the same events gives. **Late events** are counted in the
//! day, month and channel they belong to (the tables are upserts keyed by
//! business dates, so an old row is simply updated); they are not dropped.
//!
//! Exactness: amounts in integer cents; rates rounded half up to four
//! decimals from integer counts; dates and months in `utc_offset_minutes`
//! (default 480, UTC+8, the seeds' business time zone).
//!
//! Parameters: `utc_offset_minutes` (480), `max_mob` (12).

use sluice_sdk::prelude::*;

pub mod calendar;
pub mod cases;
pub mod model;
mod tables;

pub use cases::cases;
pub use tables::{APPROVAL, DISBURSEMENT, FUNNEL, VINTAGE};

use calendar::{Calendar, date_text};
use model::{Loan, LoanRow, LoanState, Registration, RepayLog, UserRow, UserState};
use tables::{ApprovalTotals, DisbursementTotals, FunnelTotals, META_KEY, Meta, Touched, VintageMonth};

pub const USER_SOURCE: &str = "u_user";
pub const LOAN_SOURCE: &str = "loan_list";
pub const REPAY_SOURCE: &str = "repay_log";

#[derive(Clone, Copy)]
enum Feed {
    Users,
    Loans,
    Repayments,
}

pub struct LendingReport {
    feeds: Vec<Feed>,
    calendar: Calendar,
    max_mob: i64,
    users: ValueState<UserState>,
    loans: ValueState<LoanState>,
    funnel: ValueState<FunnelTotals>,
    approval: ValueState<ApprovalTotals>,
    disbursement: ValueState<DisbursementTotals>,
    vintage: ValueState<VintageMonth>,
    meta: ValueState<Meta>,
    /// Report cells the current batch changed, with their rows before it.
    touched: Touched,
}

#[sluice_sdk::job]
impl Job for LendingReport {
    fn open(ctx: &mut Context) -> Result<Self> {
        let offset_minutes: i64 = ctx.param_or("utc_offset_minutes", 480)?;
        if offset_minutes.abs() > 18 * 60 {
            return Err(Error::fatal(format!(
                "parameter `utc_offset_minutes` = {offset_minutes} is not within ±18 hours"
            )));
        }
        let max_mob: i64 = ctx.param_or("max_mob", 12)?;
        if !(0..=120).contains(&max_mob) {
            return Err(Error::fatal(format!("parameter `max_mob` = {max_mob} must be within 0..=120")));
        }
        let mut feeds = Vec::new();
        while let Some(name) = ctx.source_name(feeds.len() as u32) {
            feeds.push(match name.as_str() {
                USER_SOURCE => Feed::Users,
                LOAN_SOURCE => Feed::Loans,
                REPAY_SOURCE => Feed::Repayments,
                other => {
                    return Err(Error::fatal(format!(
                        "source `{other}`: the lending report reads sources named `{USER_SOURCE}`, `{LOAN_SOURCE}` and `{REPAY_SOURCE}`"
                    )));
                }
            });
        }
        Ok(LendingReport {
            feeds,
            calendar: Calendar { offset_ms: offset_minutes * 60_000 },
            max_mob,
            users: ctx.value_state("users")?,
            loans: ctx.value_state("loans")?,
            funnel: ctx.value_state("funnel")?,
            approval: ctx.value_state("approval")?,
            disbursement: ctx.value_state("disbursement")?,
            vintage: ctx.value_state("vintage")?,
            meta: ctx.value_state("meta")?,
            touched: Touched::new(),
        })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let mut touched = std::mem::take(&mut self.touched);
        let applied = match self.feeds.get(record.position().source as usize) {
            Some(Feed::Users) => record.json().and_then(|row| self.user(ctx, &mut touched, row)),
            Some(Feed::Loans) => record.json().and_then(|row| self.loan(ctx, &mut touched, row)),
            Some(Feed::Repayments) => record.json().and_then(|log| self.repayment(ctx, &mut touched, log)),
            None => Err(Error::fatal("a record from a source the job was not told about")),
        };
        self.touched = touched;
        applied
    }

    /// Mini-batch output: the rows of every report cell the batch changed,
    /// once per batch, where the SQL's continuous queries emit per record.
    fn finish_batch(&mut self, ctx: &mut Context) -> Result<()> {
        let touched = std::mem::take(&mut self.touched);
        self.flush(ctx, touched)
    }
}

impl LendingReport {
    /// A `u_user` row: the user's registration replaces the one held.
    fn user(&self, ctx: &mut Context, touched: &mut Touched, row: UserRow) -> Result<()> {
        self.advance_clock(ctx, touched, row.updatetime)?;
        let mut user = self.users.get(ctx, &row.id)?.unwrap_or_default();
        if user.updatetime.is_some_and(|held| row.updatetime <= held) {
            ctx.count("stale_rows", 1);
            return Ok(());
        }
        self.apply_user(ctx, touched, row.id, -1)?;
        user.updatetime = Some(row.updatetime);
        user.registration = (row.isactive != 0).then(|| Registration {
            date: date_text(self.calendar.day(row.inserttime)),
            channel: row.channel.unwrap_or_else(|| "unknown".to_owned()),
        });
        self.users.set(ctx, &row.id, &user)?;
        self.apply_user(ctx, touched, row.id, 1)
    }

    /// A `loan_list` row: the loan's new version replaces the one held, in
    /// every table, and in its borrower's funnel and first loan.
    fn loan(&self, ctx: &mut Context, touched: &mut Touched, row: LoanRow) -> Result<()> {
        let id = row.id;
        let loan = Loan::from_row(row)?;
        self.advance_clock(ctx, touched, loan.updatetime)?;
        let mut state = self.loans.get(ctx, &id)?.unwrap_or_default();
        if let Some(held) = &state.row
            && (loan.updatetime, loan.status) <= (held.updatetime, held.status)
        {
            ctx.count("stale_rows", 1);
            return Ok(());
        }
        // Whose first loan may change: the borrower's other disbursed loans
        // are retracted and re-added with this one.
        let mut borrowers = vec![loan.borrower_id];
        if let Some(held) = &state.row
            && held.borrower_id != loan.borrower_id
        {
            borrowers.push(held.borrower_id);
        }
        let mut group = vec![id];
        for b in &borrowers {
            let user = self.users.get(ctx, b)?.unwrap_or_default();
            group.extend(user.disbursed.iter().map(|(_, l)| *l).filter(|l| *l != id));
        }

        for b in &borrowers {
            self.apply_user(ctx, touched, *b, -1)?;
        }
        for l in &group {
            self.apply_loan(ctx, touched, *l, -1)?;
        }
        if let Some(held) = &state.row {
            self.account(ctx, held.borrower_id, id, held, -1)?;
        }
        self.account(ctx, loan.borrower_id, id, &loan, 1)?;
        state.row = Some(loan);
        self.loans.set(ctx, &id, &state)?;
        for l in &group {
            self.apply_loan(ctx, touched, *l, 1)?;
        }
        for b in &borrowers {
            self.apply_user(ctx, touched, *b, 1)?;
        }
        Ok(())
    }

    /// A `repay_log` fact: the loan's first days 1+ and 30+ past due.
    fn repayment(&self, ctx: &mut Context, touched: &mut Touched, log: RepayLog) -> Result<()> {
        let due = log.due_day()?;
        self.advance_clock(ctx, touched, log.create_time)?;
        let mut state = self.loans.get(ctx, &log.loan_id)?.unwrap_or_default();
        let earliest = |held: Option<i64>, reached: bool, day: i64| match (held, reached) {
            (Some(h), true) => Some(h.min(day)),
            (None, true) => Some(day),
            (held, false) => held,
        };
        let dpd1 = earliest(state.dpd1_day, log.dpd >= 1, due + 1);
        let dpd30 = earliest(state.dpd30_day, log.dpd >= 30, due + 30);
        if (dpd1, dpd30) == (state.dpd1_day, state.dpd30_day) {
            return Ok(()); // nothing new (e.g. an on-time repayment, or a fact seen before)
        }
        self.apply_loan(ctx, touched, log.loan_id, -1)?;
        (state.dpd1_day, state.dpd30_day) = (dpd1, dpd30);
        self.loans.set(ctx, &log.loan_id, &state)?;
        self.apply_loan(ctx, touched, log.loan_id, 1)
    }

    /// Adds or removes a loan from its borrower's classes.
    fn account(&self, ctx: &mut Context, user_id: i64, loan_id: i64, loan: &Loan, sign: i64) -> Result<()> {
        let mut user = self.users.get(ctx, &user_id)?.unwrap_or_default();
        user.account(loan_id, loan, sign);
        self.users.set(ctx, &user_id, &user)
    }

    /// Moves the data clock forward to `time`; a new month brings every
    /// disbursement month's next month on book.
    fn advance_clock(&self, ctx: &mut Context, touched: &mut Touched, time: i64) -> Result<()> {
        let mut meta = self.meta.get(ctx, META_KEY)?.unwrap_or_default();
        if meta.clock.is_some_and(|c| time <= c) {
            return Ok(());
        }
        let month = |t: i64| calendar::month_index(self.calendar.day(t));
        if meta.clock.map(month) != Some(month(time)) {
            for m in &meta.months {
                self.touch(ctx, touched, tables::Cell::Vintage(*m))?;
            }
        }
        meta.clock = Some(time);
        self.meta.set(ctx, META_KEY, &meta)
    }
}
