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
pub mod tables;

pub use cases::cases;
pub use tables::{APPROVAL, DISBURSEMENT, FUNNEL, VINTAGE};

use calendar::date_text;
use model::{Feed, Loan, LoanRow, LoanState, Registration, RepayLog, UserRow, UserState};
pub use model::{LOAN_SOURCE, REPAY_SOURCE, USER_SOURCE};
use tables::{Part, Report, Touched};

pub struct LendingReport {
    feeds: Vec<Feed>,
    report: Report,
    users: ValueState<UserState>,
    loans: ValueState<LoanState>,
    /// What the current batch added to the report cells, applied when it ends.
    touched: Touched,
}

#[sluice_sdk::job]
impl Job for LendingReport {
    fn open(ctx: &mut Context) -> Result<Self> {
        let report = Report::open(ctx)?;
        let feeds = model::feeds(ctx)?;
        Ok(LendingReport {
            feeds,
            report,
            users: ctx.value_state("users")?,
            loans: ctx.value_state("loans")?,
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
        self.report.flush(ctx, touched)
    }
}

impl LendingReport {
    /// A `u_user` row: the user's registration replaces the one held.
    fn user(&self, ctx: &mut Context, touched: &mut Touched, row: UserRow) -> Result<()> {
        self.report.advance_clock(ctx, touched, row.updatetime)?;
        let mut user = self.users.get(ctx, &row.id)?.unwrap_or_default();
        if user.updatetime.is_some_and(|held| row.updatetime <= held) {
            ctx.count("stale_rows", 1);
            return Ok(());
        }
        self.apply_user(ctx, touched, row.id, -1)?;
        user.updatetime = Some(row.updatetime);
        user.registration = (row.isactive != 0).then(|| Registration {
            date: date_text(self.report.calendar.day(row.inserttime)),
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
        self.report.advance_clock(ctx, touched, loan.updatetime)?;
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
        self.report.advance_clock(ctx, touched, log.create_time)?;
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

    /// Adds (`+1`) or retracts (`-1`) a user's funnel row.
    fn apply_user(&self, ctx: &mut Context, touched: &mut Touched, user_id: i64, sign: i64) -> Result<()> {
        let Some(user) = self.users.get(ctx, &user_id)? else { return Ok(()) };
        let Some(reg) = &user.registration else { return Ok(()) };
        let part = Part::funnel(reg, user.loans, user.approved, !user.disbursed.is_empty());
        self.report.add(ctx, touched, &part, sign)
    }

    /// Adds (`+1`) or retracts (`-1`) a loan's parts of the approval,
    /// disbursement and vintage tables.
    fn apply_loan(&self, ctx: &mut Context, touched: &mut Touched, loan_id: i64, sign: i64) -> Result<()> {
        let Some(state) = self.loans.get(ctx, &loan_id)? else { return Ok(()) };
        let Some(loan) = &state.row else { return Ok(()) };
        let first = match loan.lend_time {
            Some(lend) => {
                self.users.get(ctx, &loan.borrower_id)?.unwrap_or_default().disbursed.first() == Some(&(lend, loan_id))
            }
            None => false,
        };
        for part in Part::of_loan(&self.report.calendar, loan, first, state.dpd1_day, state.dpd30_day) {
            self.report.add(ctx, touched, &part, sign)?;
        }
        Ok(())
    }
}
