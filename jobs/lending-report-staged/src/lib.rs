//! The lending risk reports (`jobs/lending-report`, seed 004) in four
//! repartition stages, so the job runs at any parallelism with the same
//! four tables (issue 19). The one-stage job must run as one task: a
//! report cell combines many users' and loans' rows.
//!
//! - Stage `route`, keyed by each feed's record key: checks every record
//!   (the dead letters are the one-stage job's) and sends it on as it came:
//!   `loan_list` rows and `repay_log` facts keyed by loan id, `u_user` rows
//!   by user id. It keeps no state of the records: its rows are a function
//!   of each record alone (below, "Replays").
//! - Stage `loans`, keyed by loan id: each loan's latest row and its first
//!   days 1+ and 30+ past due, as the one-stage job keeps them. Every change
//!   of a loan is sent on to its borrower (keyed by borrower id): the loan
//!   as it is now, or, when the loan changed borrower, its removal from the
//!   old one. `u_user` rows pass through to their user.
//! - Stage `borrowers`, keyed by user id: the user's registration and
//!   loans. A user's parts of the reports (their funnel row, and each
//!   loan's application, disbursement — with whether it is the user's
//!   first loan — and vintage) are worked out before and after each change,
//!   and the differences sent on, keyed by report cell.
//! - Stage `cells`, keyed by report cell: adds the differences to the
//!   cell's totals and emits the rows of every cell a batch changed, once
//!   per batch, as the one-stage job does. The vintage cells share one key,
//!   with the data clock, since a new month of the clock brings every
//!   disbursement month's next month on book.
//!
//! **Replays.** The next stage drops the rows a replay sends again by id
//! (input position and index), so a stage must send the same rows for a
//! record every time. A task reads its sources interleaved as their data
//! comes, differently on each run; so rows that depend on state written by
//! another source's records (a loan's row and its repayment facts) are
//! worked out in stage `loans`, whose one input is a repartition topic,
//! read in the same order every time. Stage `route` only passes records on.
//!
//! **The data clock** (the latest event time on any feed) only matters by
//! its month. Each task of the first three stages keeps the latest month it
//! has seen and sends a clock row on when a record moves it forward, so
//! the last stage sees every month the clock reaches, and ends at the same
//! month whatever the parallelism. This is the one piece of state kept per
//! shard rather than per key: a maximum, which moves with its shard on a
//! rescale and whose maximum over the shards is the job's. Which record
//! moves it depends on the interleaving, so a clock row is always sent
//! after the record's other rows (their ids stay the same) and applying
//! one twice, or one of a replay's, changes nothing.
//!
//! Sums do not depend on the order in which different users' differences
//! reach a cell, and one user's differences keep their order (one key, one
//! partition), so every parallelism ends with the one-stage job's tables.
//! Parameters are the one-stage job's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;

#[path = "../../lending-report/src/calendar.rs"]
pub mod calendar;
#[path = "../../lending-report/src/model.rs"]
pub mod model;
#[path = "../../lending-report/src/tables.rs"]
pub mod tables;

use calendar::{Calendar, date_text, month_index};
use model::{Feed, Loan, LoanRow, LoanState, Registration, RepayLog, UserRow};
pub use model::{LOAN_SOURCE, REPAY_SOURCE, USER_SOURCE};
pub use tables::{APPROVAL, DISBURSEMENT, FUNNEL, VINTAGE};
use tables::{Cell, Part, Report, Touched};

/// The key of the vintage cells and the clock in the last stage.
const VINTAGE_KEY: &str = "vintage";
/// The key clock rows go to the second stage with (any key would do).
const CLOCK_KEY: &str = "clock";
/// The state key of a task's latest clock month.
const SHARD_CLOCK: &str = "clock";

/// What the first stage sends on: a checked record, as it came.
#[derive(Serialize, Deserialize)]
enum ToLoans {
    /// A `u_user` row, to pass on to its user.
    User(UserRow),
    /// A `loan_list` row.
    Loan { id: i64, loan: Loan },
    /// A `repay_log` fact: the local day an installment was due, and how
    /// many days past due it was.
    Repayment { loan_id: i64, due_day: i64, dpd: i64 },
    /// The data clock reached a new month at this event time.
    Clock(i64),
}

/// What stage `loans` sends to a borrower.
#[derive(Serialize, Deserialize)]
enum ToBorrower {
    /// A `u_user` row.
    User(UserRow),
    /// Loan `id` as it is now, or `None` when it is no longer this
    /// borrower's.
    Loan { id: i64, loan: Option<LoanFacts> },
    /// The data clock reached a new month at this event time.
    Clock(i64),
}

/// What the second stage sends to a report cell.
#[derive(Serialize, Deserialize)]
enum ToCell {
    /// A difference to add to the cell.
    Part(Part),
    Clock(i64),
}

/// A loan as its borrower's reports see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct LoanFacts {
    loan: Loan,
    dpd1_day: Option<i64>,
    dpd30_day: Option<i64>,
}

/// What the second stage keeps of a user.
#[derive(Serialize, Deserialize, Default, Clone)]
struct Borrower {
    /// `updatetime` of the latest `u_user` row.
    updatetime: Option<i64>,
    /// None when not registered (yet) or logically deleted.
    registration: Option<Registration>,
    /// The user's loans, by id.
    loans: BTreeMap<i64, LoanFacts>,
}

/// The job: one instance runs one stage.
pub struct LendingReportStaged(Stage);

enum Stage {
    /// Stage 0: each feed's record key -> nothing (checks and routes).
    Route { feeds: Vec<Feed>, clock: ShardClock },
    /// Stage 1: loan id -> the loan.
    Loans { clock: ShardClock, loans: ValueState<LoanState> },
    /// Stage 2: user id -> the user and their loans.
    Borrowers { clock: ShardClock, borrowers: ValueState<Borrower> },
    /// Stage 3: report cell -> its totals.
    Cells { report: Report, touched: Touched },
}

/// The latest clock month a task has seen (module doc, "The data clock").
struct ShardClock {
    calendar: Calendar,
    month: ValueState<i64>,
}

impl ShardClock {
    fn open(ctx: &mut Context) -> Result<ShardClock> {
        Ok(ShardClock { calendar: Report::calendar(ctx)?, month: ctx.value_state("clock_month")? })
    }

    /// Sends `time` on, keyed by `key`, when its month is later than any
    /// this task has seen.
    fn advance<T: Serialize>(&self, ctx: &mut Context, time: i64, key: &str, row: impl Fn(i64) -> T) -> Result<()> {
        let month = month_index(self.calendar.day(time));
        if self.month.get(ctx, SHARD_CLOCK)?.is_some_and(|held| month <= held) {
            return Ok(());
        }
        self.month.set(ctx, SHARD_CLOCK, &month)?;
        ctx.to_next_stage(key, &row(time))
    }
}

#[sluice_sdk::job]
impl Job for LendingReportStaged {
    /// Stage 0 keeps no state of its records (only its shard's clock month).
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;
    const STAGES: &'static [&'static str] = &["route", "loans", "borrowers", "cells"];

    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(LendingReportStaged(match ctx.stage() {
            0 => {
                let feeds = model::feeds(ctx)?;
                Stage::Route { feeds, clock: ShardClock::open(ctx)? }
            }
            1 => Stage::Loans { clock: ShardClock::open(ctx)?, loans: ctx.value_state("loans")? },
            2 => Stage::Borrowers { clock: ShardClock::open(ctx)?, borrowers: ctx.value_state("borrowers")? },
            _ => Stage::Cells { report: Report::open(ctx)?, touched: Touched::new() },
        }))
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        match &mut self.0 {
            Stage::Route { feeds, clock } => {
                // The record's own row first, then a clock row if any: the
                // clock row's index may differ on a replay, the other's not.
                let time = match feeds.get(record.position().source as usize) {
                    Some(Feed::Users) => {
                        let row: UserRow = record.json()?;
                        let (id, time) = (row.id, row.updatetime);
                        ctx.to_next_stage(&id, &ToLoans::User(row))?;
                        time
                    }
                    Some(Feed::Loans) => {
                        let row: LoanRow = record.json()?;
                        let id = row.id;
                        let loan = Loan::from_row(row)?;
                        let time = loan.updatetime;
                        ctx.to_next_stage(&id, &ToLoans::Loan { id, loan })?;
                        time
                    }
                    Some(Feed::Repayments) => {
                        let log: RepayLog = record.json()?;
                        let due_day = log.due_day()?;
                        let fact = ToLoans::Repayment { loan_id: log.loan_id, due_day, dpd: log.dpd };
                        ctx.to_next_stage(&log.loan_id, &fact)?;
                        log.create_time
                    }
                    None => return Err(Error::fatal("a record from a source the job was not told about")),
                };
                clock.advance(ctx, time, CLOCK_KEY, ToLoans::Clock)
            }
            Stage::Loans { clock, loans } => match record.json::<ToLoans>()? {
                ToLoans::User(row) => {
                    let id = row.id;
                    ctx.to_next_stage(&id, &ToBorrower::User(row))
                }
                ToLoans::Loan { id, loan } => self::loan(ctx, loans, id, loan),
                ToLoans::Repayment { loan_id, due_day, dpd } => repayment(ctx, loans, loan_id, due_day, dpd),
                ToLoans::Clock(time) => clock.advance(ctx, time, CLOCK_KEY, ToBorrower::Clock),
            },
            Stage::Borrowers { clock, borrowers } => {
                let change: ToBorrower = record.json()?;
                if let ToBorrower::Clock(time) = change {
                    return clock.advance(ctx, time, VINTAGE_KEY, ToCell::Clock);
                }
                let id: i64 = record
                    .key_str()
                    .and_then(|k| k.parse().ok())
                    .ok_or_else(|| Error::record("a borrower's change without the user id as key"))?;
                let mut borrower = borrowers.get(ctx, &id)?.unwrap_or_default();
                let before = parts(&clock.calendar, &borrower);
                match change {
                    ToBorrower::User(row) => {
                        if borrower.updatetime.is_some_and(|held| row.updatetime <= held) {
                            ctx.count("stale_rows", 1);
                            return Ok(());
                        }
                        borrower.updatetime = Some(row.updatetime);
                        borrower.registration = (row.isactive != 0).then(|| Registration {
                            date: date_text(clock.calendar.day(row.inserttime)),
                            channel: row.channel.unwrap_or_else(|| "unknown".to_owned()),
                        });
                    }
                    ToBorrower::Loan { id: loan_id, loan: Some(facts) } => {
                        borrower.loans.insert(loan_id, facts);
                    }
                    ToBorrower::Loan { id: loan_id, loan: None } => {
                        borrower.loans.remove(&loan_id);
                    }
                    ToBorrower::Clock(_) => unreachable!("handled above"),
                }
                borrowers.set(ctx, &id, &borrower)?;
                send_differences(ctx, before, parts(&clock.calendar, &borrower))
            }
            Stage::Cells { report, touched } => match record.json::<ToCell>()? {
                ToCell::Part(part) => report.add(ctx, touched, &part, 1),
                ToCell::Clock(time) => report.advance_clock(ctx, touched, time),
            },
        }
    }

    /// Mini-batch output, as the one-stage job's.
    fn finish_batch(&mut self, ctx: &mut Context) -> Result<()> {
        match &mut self.0 {
            Stage::Cells { report, touched } => report.flush(ctx, std::mem::take(touched)),
            _ => Ok(()),
        }
    }
}

/// A `loan_list` row: the loan's new version replaces the one held (the
/// newer `updatetime` wins, on a tie the higher status) and goes to its
/// borrower; a borrower it left is told so.
fn loan(ctx: &mut Context, loans: &ValueState<LoanState>, id: i64, loan: Loan) -> Result<()> {
    let mut state = loans.get(ctx, &id)?.unwrap_or_default();
    if let Some(held) = &state.row
        && (loan.updatetime, loan.status) <= (held.updatetime, held.status)
    {
        ctx.count("stale_rows", 1);
        return Ok(());
    }
    let left = state.row.as_ref().map(|held| held.borrower_id).filter(|b| *b != loan.borrower_id);
    state.row = Some(loan);
    loans.set(ctx, &id, &state)?;
    if let Some(old) = left {
        ctx.to_next_stage(&old, &ToBorrower::Loan { id, loan: None })?;
    }
    send_loan(ctx, id, &state)
}

/// A `repay_log` fact: the loan's first days 1+ and 30+ past due.
fn repayment(ctx: &mut Context, loans: &ValueState<LoanState>, loan_id: i64, due: i64, dpd: i64) -> Result<()> {
    let mut state = loans.get(ctx, &loan_id)?.unwrap_or_default();
    let earliest = |held: Option<i64>, reached: bool, day: i64| match (held, reached) {
        (Some(h), true) => Some(h.min(day)),
        (None, true) => Some(day),
        (held, false) => held,
    };
    let dpd1 = earliest(state.dpd1_day, dpd >= 1, due + 1);
    let dpd30 = earliest(state.dpd30_day, dpd >= 30, due + 30);
    if (dpd1, dpd30) == (state.dpd1_day, state.dpd30_day) {
        return Ok(()); // nothing new
    }
    (state.dpd1_day, state.dpd30_day) = (dpd1, dpd30);
    loans.set(ctx, &loan_id, &state)?;
    send_loan(ctx, loan_id, &state)
}

/// Sends a loan as it is now to its borrower (nothing before its row came).
fn send_loan(ctx: &mut Context, id: i64, state: &LoanState) -> Result<()> {
    let Some(loan) = &state.row else { return Ok(()) };
    let facts = LoanFacts { loan: loan.clone(), dpd1_day: state.dpd1_day, dpd30_day: state.dpd30_day };
    ctx.to_next_stage(&loan.borrower_id, &ToBorrower::Loan { id, loan: Some(facts) })
}

/// A user's parts of the reports: their funnel row (when registered) and
/// each of their loans' parts, the first disbursed loan marked first.
fn parts(calendar: &Calendar, borrower: &Borrower) -> Vec<Part> {
    let first = borrower.loans.iter().filter_map(|(id, f)| Some((f.loan.lend_time?, *id))).min();
    let mut parts = Vec::new();
    if let Some(reg) = &borrower.registration {
        let approved = borrower.loans.values().filter(|f| f.loan.approved()).count() as i64;
        let disbursed = first.is_some();
        parts.push(Part::funnel(reg, borrower.loans.len() as i64, approved, disbursed));
    }
    for (id, f) in &borrower.loans {
        let is_first = f.loan.lend_time.is_some_and(|lend| first == Some((lend, *id)));
        parts.extend(Part::of_loan(calendar, &f.loan, is_first, f.dpd1_day, f.dpd30_day));
    }
    parts
}

/// Sends `after - before`, cell by cell, keyed by cell; nothing for a cell
/// whose parts did not change.
fn send_differences(ctx: &mut Context, before: Vec<Part>, after: Vec<Part>) -> Result<()> {
    let mut differences: BTreeMap<Cell, Part> = BTreeMap::new();
    for (parts, sign) in [(before, -1), (after, 1)] {
        for part in parts {
            differences.entry(part.cell.clone()).or_insert_with(|| part.zeroed()).add(&part, sign);
        }
    }
    for (cell, part) in differences {
        if !part.is_zero() {
            ctx.to_next_stage(&cell_key(&cell), &ToCell::Part(part))?;
        }
    }
    Ok(())
}

/// The key a cell's differences go to the last stage with.
fn cell_key(cell: &Cell) -> String {
    match cell {
        Cell::Funnel(date, channel) => format!("funnel/{date}/{channel}"),
        Cell::Approval(date, prod_type) => format!("approval/{date}/{prod_type}"),
        Cell::Disbursement(date, prod_type) => format!("disbursement/{date}/{prod_type}"),
        Cell::Vintage(_) => VINTAGE_KEY.to_owned(),
    }
}
