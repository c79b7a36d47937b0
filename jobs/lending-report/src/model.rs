//! The input rows (as the change feeds carry them), their validation, and
//! what the job keeps of them in state.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_sdk::{Context, Error, Result};

use crate::calendar::parse_date;

pub const USER_SOURCE: &str = "u_user";
pub const LOAN_SOURCE: &str = "loan_list";
pub const REPAY_SOURCE: &str = "repay_log";

/// What a source carries.
#[derive(Clone, Copy)]
pub enum Feed {
    Users,
    Loans,
    Repayments,
}

/// The feed of each of the job's sources, by its name; a source of
/// another name fails the job.
pub fn feeds(ctx: &mut Context) -> Result<Vec<Feed>> {
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
    Ok(feeds)
}

/// `loan_list.status`.
pub const AUDITING: i64 = 1;
pub const REJECTED: i64 = 2;
pub const APPROVED: i64 = 3;
pub const CANCELLED: i64 = 4;
pub const DISBURSED: i64 = 5;
pub const OVERDUE: i64 = 6;
pub const SETTLED: i64 = 7;

/// A `u_user` row (state table; the columns the reports read).
#[derive(Serialize, Deserialize)]
pub struct UserRow {
    pub id: i64,
    pub channel: Option<String>,
    pub inserttime: i64,
    pub updatetime: i64,
    /// Logical delete: 0 takes the user out of the funnel.
    #[serde(default = "one")]
    pub isactive: i64,
}

fn one() -> i64 {
    1
}

/// A `loan_list` row (state table; the columns the reports read).
#[derive(Deserialize)]
pub struct LoanRow {
    pub id: i64,
    pub borrower_id: i64,
    pub apply_amount: Value,
    pub loan_amount: Option<Value>,
    pub prod_type: i64,
    pub status: i64,
    pub inserttime: i64,
    pub updatetime: i64,
    pub lend_time: Option<i64>,
}

/// A `repay_log` record (log table).
#[derive(Deserialize)]
pub struct RepayLog {
    pub loan_id: i64,
    pub due_date: String,
    /// Days past due when the fact was recorded.
    pub dpd: i64,
    pub create_time: i64,
}

/// What the job keeps of a loan's latest `loan_list` row.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Loan {
    pub borrower_id: i64,
    pub prod_type: i64,
    pub status: i64,
    pub inserttime: i64,
    pub updatetime: i64,
    /// Set when the loan is disbursed (status 5, 6, 7).
    pub lend_time: Option<i64>,
    /// `coalesce(loan_amount, apply_amount)` in cents.
    pub amount_cents: i64,
}

impl Loan {
    /// Validates a row: a known status, an amount, and a `lend_time` exactly
    /// when the status says the money went out.
    pub fn from_row(row: LoanRow) -> Result<Loan> {
        if !(AUDITING..=SETTLED).contains(&row.status) {
            return Err(Error::record(format!("status {} is not a loan_list status (1..=7)", row.status)));
        }
        let amount = row.loan_amount.as_ref().filter(|v| !v.is_null()).unwrap_or(&row.apply_amount);
        let amount_cents = cents(amount)
            .filter(|c| *c >= 0)
            .ok_or_else(|| Error::record(format!("amount {amount} is not an amount of yuan")))?;
        let disbursed = row.status >= DISBURSED;
        if disbursed && row.lend_time.is_none() {
            return Err(Error::record(format!("loan {} has status {} but no lend_time", row.id, row.status)));
        }
        Ok(Loan {
            borrower_id: row.borrower_id,
            prod_type: row.prod_type,
            status: row.status,
            inserttime: row.inserttime,
            updatetime: row.updatetime,
            lend_time: if disbursed { row.lend_time } else { None },
            amount_cents,
        })
    }

    /// Passed review: approved, and everything after it.
    pub fn approved(&self) -> bool {
        self.status >= APPROVED
    }
}

/// Everything the job knows about one loan: its latest row (if it came
/// yet) and the overdue facts folded from `repay_log`.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct LoanState {
    pub row: Option<Loan>,
    /// The first local day an installment was 1+ / 30+ days past due.
    pub dpd1_day: Option<i64>,
    pub dpd30_day: Option<i64>,
}

/// A user's registration as the funnel sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Registration {
    pub date: String,
    pub channel: String,
}

/// Everything the job knows about one user: the latest `u_user` row and
/// their loans' classes (kept here so the funnel and "first loan" need no
/// scan of loans).
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct UserState {
    /// `updatetime` of the latest `u_user` row.
    pub updatetime: Option<i64>,
    /// None when not registered (yet) or logically deleted.
    pub registration: Option<Registration>,
    /// Loans (applications) of this user, and how many passed review.
    pub loans: i64,
    pub approved: i64,
    /// (lend_time, loan id) of the disbursed loans, sorted: the first is
    /// the user's first loan (首贷), the rest repeat loans (复贷).
    pub disbursed: Vec<(i64, i64)>,
}

impl UserState {
    /// Adds (`+1`) or removes (`-1`) a loan's row from the user's classes.
    pub fn account(&mut self, loan_id: i64, loan: &Loan, sign: i64) {
        self.loans += sign;
        if loan.approved() {
            self.approved += sign;
        }
        if let Some(lend) = loan.lend_time {
            let entry = (lend, loan_id);
            match (sign > 0, self.disbursed.binary_search(&entry)) {
                (true, Err(at)) => self.disbursed.insert(at, entry),
                (false, Ok(at)) => {
                    self.disbursed.remove(at);
                }
                _ => {}
            }
        }
    }
}

impl RepayLog {
    /// The local day number of the due date.
    pub fn due_day(&self) -> Result<i64> {
        if self.dpd < 0 {
            return Err(Error::record(format!("dpd {} is negative", self.dpd)));
        }
        parse_date(&self.due_date)
            .ok_or_else(|| Error::record(format!("due_date `{}` is not YYYY-MM-DD", self.due_date)))
    }
}

/// Cents of a DECIMAL(18,2) value given as text or a number (at most two
/// decimals; never through a float sum).
pub fn cents(value: &Value) -> Option<i64> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (negative, digits) = text.strip_prefix('-').map_or((false, text.as_str()), |rest| (true, rest));
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || fraction.len() > 2 || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // 10^13 yuan at most: sums of many stay far from i64's limit.
    if whole.len() > 13 {
        return None;
    }
    let c = whole.parse::<i64>().ok()? * 100 + format!("{fraction:0<2}").parse::<i64>().ok()?;
    Some(if negative { -c } else { c })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn loan(status: i64, lend_time: Option<i64>) -> LoanRow {
        LoanRow {
            id: 1,
            borrower_id: 7,
            apply_amount: json!("3000.00"),
            loan_amount: Some(json!(2500)),
            prod_type: 1,
            status,
            inserttime: 0,
            updatetime: 1,
            lend_time,
        }
    }

    #[test]
    fn loan_rows_are_validated() {
        assert_eq!(Loan::from_row(loan(5, Some(9))).unwrap().amount_cents, 250_000);
        assert_eq!(Loan::from_row(loan(3, Some(9))).unwrap().lend_time, None);
        let err = |r| match Loan::from_row(r) {
            Err(Error::Record(reason)) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(loan(6, None)), "loan 1 has status 6 but no lend_time");
        assert_eq!(err(loan(8, None)), "status 8 is not a loan_list status (1..=7)");
        let mut bad = loan(1, None);
        bad.loan_amount = None;
        bad.apply_amount = json!("12.345");
        assert_eq!(err(bad), "amount \"12.345\" is not an amount of yuan");
    }

    #[test]
    fn users_keep_their_disbursed_loans_sorted() {
        let mut u = UserState::default();
        let l = |lend| Loan::from_row(loan(5, Some(lend))).unwrap();
        u.account(3, &l(30), 1);
        u.account(2, &l(10), 1);
        u.account(4, &l(10), 1);
        assert_eq!(u.disbursed, [(10, 2), (10, 4), (30, 3)]);
        u.account(2, &l(10), -1);
        assert_eq!((u.loans, u.approved, u.disbursed.clone()), (2, 2, vec![(10, 4), (30, 3)]));
    }

    #[test]
    fn amounts() {
        assert_eq!(cents(&json!("1234.5")), Some(123_450));
        assert_eq!(cents(&json!(0.07)), Some(7));
        assert_eq!(cents(&json!("1e3")), None);
        assert_eq!(cents(&json!("99999999999999")), None);
    }
}
