//! Seed 004 (lending risk reports): the change feeds of an online lender's
//! tables, from which the funnel, pass-rate, disbursement and vintage
//! tables are computed.
//!
//! Streams:
//! - `u_user`: CDC of the registration table `u_user`, a **state table**: each
//!   event is the whole row after a change (registration, a later profile
//!   update, now and then a logical delete `isactive = 0`).
//! - `loan_list`: CDC of the application table `loan_list`, a **state
//!   table**: one row per application whose `status` moves 1 auditing →
//!   2 rejected | 3 approved → 4 cancelled | 5 disbursed ⇄ 6 overdue → 7
//!   settled; every change is the whole row with a newer `updatetime`.
//! - `repay_log`: the **log table** of the repayment plan: one record per
//!   fact — an installment `repaid` (with the days past due it was paid) or
//!   `overdue` (the nightly batch marking it 1, 30, 60 and 90 days past due).
//!
//! Time: event times span [`HORIZON_DAYS`] days from `start_ms` whatever the
//! count (a vintage needs months on book), users register during the first
//! [`REGISTRATION_DAYS`]; `step_ms` is not used. Dates are UTC+8. Channels
//! differ in apply rate, pass rate and risk, as the seed's "different
//! acquisition channels perform differently later" asks to see.
//!
//! Dirt: a late event arrives 1–72 hours after its `updatetime` (so a stale
//! loan status can arrive after a newer one, and a registration after the
//! user's first application); duplicates are the same row twice; malformed
//! values replace rows. The clean events do not depend on the dirt options.

use serde_json::{Value, json};

use crate::support::{
    DAY_MS, HOUR_MS, MINUTE_MS, add_months, between, cst_day, cst_instant, date_text, weighted, yuan,
};
use crate::{Dice, Event, GenOptions, Scenario};

pub struct Lending;

pub const USER_STREAM: &str = "u_user";
pub const LOAN_STREAM: &str = "loan_list";
pub const REPAY_STREAM: &str = "repay_log";

/// How long the generated history lasts, and when users register.
pub const HORIZON_DAYS: i64 = 183;
pub const REGISTRATION_DAYS: i64 = 120;

/// `loan_list.status`.
pub mod status {
    pub const AUDITING: i64 = 1;
    pub const REJECTED: i64 = 2;
    pub const APPROVED: i64 = 3;
    pub const CANCELLED: i64 = 4;
    pub const DISBURSED: i64 = 5;
    pub const OVERDUE: i64 = 6;
    pub const SETTLED: i64 = 7;
}
use status::*;

/// An acquisition channel (the seed's 地推, 电销, platform ads, SMS).
struct Channel {
    code: &'static str,
    weight: u64,
    /// Share of registered users who apply.
    apply: f64,
    /// Share of first applications approved.
    pass: f64,
    /// Multiplier of late payment and default.
    risk: f64,
}

const CHANNELS: &[Channel] = &[
    Channel { code: "douyin", weight: 30, apply: 0.55, pass: 0.45, risk: 1.3 },
    Channel { code: "wechat", weight: 25, apply: 0.60, pass: 0.55, risk: 1.0 },
    Channel { code: "sms", weight: 15, apply: 0.35, pass: 0.50, risk: 1.1 },
    Channel { code: "telesales", weight: 12, apply: 0.65, pass: 0.60, risk: 0.9 },
    Channel { code: "ground", weight: 10, apply: 0.75, pass: 0.65, risk: 0.7 },
    Channel { code: "weibo", weight: 8, apply: 0.40, pass: 0.40, risk: 1.5 },
];

/// A loan product: PDL (`prod_type` 1, one repayment after N days) or
/// INSTALLMENT (`prod_type` 2, monthly).
struct Product {
    id: i64,
    prod_type: i64,
    term_unit: &'static str,
    term_quantity: i64,
    period_no: i64,
    min_cents: i64,
    max_cents: i64,
    step_cents: i64,
    /// Interest per term unit (day or month), in units of 1e-5.
    rate_e5: i64,
    /// Service fee, in units of 1e-5 of the principal.
    service_e5: i64,
}

const PRODUCTS: &[Product] = &[
    Product {
        id: 101,
        prod_type: 1,
        term_unit: "D",
        term_quantity: 7,
        period_no: 1,
        min_cents: 50_000,
        max_cents: 300_000,
        step_cents: 10_000,
        rate_e5: 100,
        service_e5: 8_000,
    },
    Product {
        id: 102,
        prod_type: 1,
        term_unit: "D",
        term_quantity: 14,
        period_no: 1,
        min_cents: 50_000,
        max_cents: 500_000,
        step_cents: 10_000,
        rate_e5: 100,
        service_e5: 8_000,
    },
    Product {
        id: 201,
        prod_type: 2,
        term_unit: "M",
        term_quantity: 1,
        period_no: 3,
        min_cents: 300_000,
        max_cents: 2_000_000,
        step_cents: 50_000,
        rate_e5: 1_500,
        service_e5: 3_000,
    },
    Product {
        id: 202,
        prod_type: 2,
        term_unit: "M",
        term_quantity: 1,
        period_no: 6,
        min_cents: 500_000,
        max_cents: 3_000_000,
        step_cents: 50_000,
        rate_e5: 1_500,
        service_e5: 3_000,
    },
    Product {
        id: 203,
        prod_type: 2,
        term_unit: "M",
        term_quantity: 1,
        period_no: 12,
        min_cents: 1_000_000,
        max_cents: 5_000_000,
        step_cents: 100_000,
        rate_e5: 1_400,
        service_e5: 3_000,
    },
];
const FIRST_LOAN_PRODUCTS: &[u64] = &[30, 25, 25, 15, 5];
const REPEAT_LOAN_PRODUCTS: &[u64] = &[10, 20, 25, 30, 15];

impl Scenario for Lending {
    fn name(&self) -> &'static str {
        "lending"
    }

    fn description(&self) -> &'static str {
        "seed 004: registrations, loan applications and repayments of an online lender, for risk reports"
    }

    fn streams(&self) -> &'static [&'static str] {
        &[USER_STREAM, LOAN_STREAM, REPAY_STREAM]
    }

    fn generate(&self, options: &GenOptions) -> Vec<Event> {
        if options.count == 0 {
            return Vec::new();
        }
        // Users register over a fixed period whatever the count, so the
        // number of users is what the count decides: a pilot run measures
        // events per user.
        let pilot_users = (options.count / 8).clamp(10, 100_000);
        let pilot = simulate(options, pilot_users).len().max(1);
        let users = (pilot_users as f64 * options.count as f64 / pilot as f64).round().max(1.0) as u64;
        let mut clean = simulate(options, users);
        // In user order: what is cut is the tail of the last registrants.
        clean.truncate(options.count as usize);
        clean.sort_by_key(|e| e.event_time_ms);

        // The dirt comes from dice of its own, so the clean events do not
        // depend on how dirty the feed is asked to be.
        let mut dice = Dice::new(options.seed ^ 0x6c65_6e64_6469_7274);
        let mut sent: Vec<(i64, Event)> = clean
            .into_iter()
            .map(|e| {
                let delay = if dice.chance(options.late) { between(&mut dice, 1, 72) * HOUR_MS } else { 0 };
                (e.event_time_ms + delay, e)
            })
            .collect();
        sent.sort_by_key(|(send_at, _)| *send_at); // stable: ties keep commit order
        let mut out = Vec::with_capacity(sent.len() + sent.len() / 50);
        for (_, e) in sent {
            dice.push(&mut out, e, options);
        }
        out
    }
}

/// The clean events of `users` users, user after user (registration order).
fn simulate(options: &GenOptions, users: u64) -> Vec<Event> {
    let mut dice = Dice::new(options.seed);
    let mut reg_times: Vec<i64> =
        (0..users).map(|_| options.start_ms + dice.below((REGISTRATION_DAYS * DAY_MS) as u64) as i64).collect();
    reg_times.sort_unstable();
    let mut feed = Feed {
        out: Vec::new(),
        horizon: options.start_ms + HORIZON_DAYS * DAY_MS,
        next_loan: 500_001,
        next_log: 9_000_001,
    };
    for (i, reg) in reg_times.into_iter().enumerate() {
        user(&mut dice, &mut feed, 100_001 + i as i64, reg);
    }
    feed.out
}

/// Where the events go; nothing after the horizon is recorded.
struct Feed {
    out: Vec<Event>,
    horizon: i64,
    next_loan: i64,
    next_log: i64,
}

impl Feed {
    fn push(&mut self, stream: &'static str, key: i64, row: &Value, at: i64) {
        if at <= self.horizon {
            self.out.push(Event {
                stream,
                key: key.to_string(),
                value: row.to_string().into_bytes(),
                event_time_ms: at,
            });
        }
    }
}

enum LoanEnd {
    Rejected(i64),
    Settled(i64),
    /// Cancelled, defaulted or still running at the horizon.
    Other,
}

fn user(dice: &mut Dice, feed: &mut Feed, id: i64, reg: i64) {
    let channel = &CHANNELS[weighted(dice, &CHANNELS.iter().map(|c| c.weight).collect::<Vec<_>>())];
    let mobile = format!("1{}{}****{:04}", dice.pick(&["3", "5", "8", "9"]), dice.below(10), dice.below(10_000));
    let mut row = json!({
        "id": id, "username": mobile, "mobile": mobile, "nickname": format!("user{id}"),
        "role_type": -1, "type": 0, "status": 0, "on_off": "1", "channel": channel.code,
        "inserttime": reg, "updatetime": reg, "isactive": 1,
    });
    feed.push(USER_STREAM, id, &row, reg);
    let mut last = reg;
    if dice.chance(0.08) {
        // a profile update: identity verified
        last += between(dice, 1, 30 * 24) * HOUR_MS;
        row["status"] = json!(1);
        row["updatetime"] = json!(last);
        feed.push(USER_STREAM, id, &row, last);
    }
    if dice.chance(0.01) {
        // the account is closed (logical delete)
        last += between(dice, 1, 60) * DAY_MS;
        row["isactive"] = json!(0);
        row["on_off"] = json!("0");
        row["updatetime"] = json!(last);
        feed.push(USER_STREAM, id, &row, last);
    }

    if !dice.chance(channel.apply) {
        return;
    }
    let mut at =
        reg + if dice.chance(0.5) { between(dice, 2, 60) * MINUTE_MS } else { between(dice, 1, 5 * 24) * HOUR_MS };
    let mut repeat = false;
    for _ in 0..4 {
        if at > feed.horizon {
            return;
        }
        match loan(dice, feed, id, channel, at, repeat) {
            LoanEnd::Settled(t) if dice.chance(0.45) => {
                repeat = true;
                at = t + between(dice, 1, 20 * 24) * HOUR_MS;
            }
            LoanEnd::Rejected(t) if dice.chance(0.2) => at = t + between(dice, 7, 30) * DAY_MS,
            _ => return,
        }
    }
}

/// One application and what follows it.
fn loan(dice: &mut Dice, feed: &mut Feed, borrower: i64, channel: &Channel, applied: i64, repeat: bool) -> LoanEnd {
    let id = feed.next_loan;
    feed.next_loan += 1;
    let p = &PRODUCTS[weighted(dice, if repeat { REPEAT_LOAN_PRODUCTS } else { FIRST_LOAN_PRODUCTS })];
    let apply_cents = between(dice, p.min_cents / p.step_cents, p.max_cents / p.step_cents) * p.step_cents;
    let term_units = p.term_quantity * p.period_no;
    let mut row = json!({
        "id": id, "borrower_id": borrower, "apply_amount": yuan(apply_cents), "loan_amount": null,
        "period_no": p.period_no, "term_quantity": p.term_quantity, "term_unit": p.term_unit,
        "product_id": p.id, "prod_type": p.prod_type,
        "interest": yuan(apply_cents * p.rate_e5 * term_units / 100_000),
        "interest_rate": format!("{:.5}", p.rate_e5 as f64 / 100_000.0),
        "service_fee": yuan(apply_cents * p.service_e5 / 100_000), "service_fee_discount": "0.00",
        "service_rate": format!("{:.5}", p.service_e5 as f64 / 100_000.0), "service_fee_type": 1,
        "overdue_penalty_rate": "0.00100",
        "status": AUDITING, "lend_time": null, "inserttime": applied, "updatetime": applied,
    });
    feed.push(LOAN_STREAM, id, &row, applied);
    // Every change of the row has a strictly later updatetime.
    let mut last = applied;
    let mut change = |feed: &mut Feed, row: &mut Value, status: i64, at: i64| {
        last = at.max(last + 1);
        row["status"] = json!(status);
        row["updatetime"] = json!(last);
        feed.push(LOAN_STREAM, id, row, last);
        last
    };

    let decided =
        applied + if dice.chance(0.7) { between(dice, 3, 120) * MINUTE_MS } else { between(dice, 2, 48) * HOUR_MS };
    let pass = if repeat { 0.85 } else { channel.pass };
    if !dice.chance(pass) {
        return LoanEnd::Rejected(change(feed, &mut row, REJECTED, decided));
    }
    let loan_cents = if dice.chance(0.7) {
        apply_cents
    } else {
        let cut = apply_cents * *dice.pick(&[80, 60]) / 100;
        (cut / p.step_cents * p.step_cents).max(p.min_cents)
    };
    row["loan_amount"] = json!(yuan(loan_cents));
    row["interest"] = json!(yuan(loan_cents * p.rate_e5 * term_units / 100_000));
    row["service_fee"] = json!(yuan(loan_cents * p.service_e5 / 100_000));
    let approved = change(feed, &mut row, APPROVED, decided);
    if dice.chance(0.12) {
        change(feed, &mut row, CANCELLED, approved + between(dice, 1, 72) * HOUR_MS);
        return LoanEnd::Other;
    }
    let lend = approved + between(dice, 1, 30) * MINUTE_MS;
    row["lend_time"] = json!(lend);
    change(feed, &mut row, DISBURSED, lend);

    // The schedule: due dates in UTC+8 days.
    let lend_day = cst_day(lend);
    let due = |i: i64| if p.term_unit == "D" { lend_day + p.term_quantity * i } else { add_months(lend_day, i) };
    let risk = channel.risk * if repeat { 0.5 } else { 1.0 };
    let default_from = dice.chance(0.06 * risk).then(|| between(dice, 1, p.period_no));
    let installment = |i: i64| loan_cents / p.period_no + if i == p.period_no { loan_cents % p.period_no } else { 0 };
    let mut paid_until = lend;
    for i in 1..=p.period_no {
        let due_day = due(i);
        let log = |feed: &mut Feed, event: &str, dpd: i64, amount: Option<i64>, at: i64| {
            let row = json!({
                "id": feed.next_log, "loan_id": id, "borrower_id": borrower, "period": i,
                "due_date": date_text(due_day), "event": event, "dpd": dpd,
                "amount": amount.map(yuan), "create_time": at,
            });
            feed.next_log += 1;
            feed.push(REPAY_STREAM, id, &row, at);
        };
        // The nightly batch marks an unpaid installment overdue at 02:00–03:00.
        let nightly = |dice: &mut Dice, days_past_due: i64| {
            cst_instant(due_day + days_past_due, 2 * HOUR_MS + dice.below(HOUR_MS as u64) as i64)
        };
        if default_from.is_some_and(|d| i >= d) {
            for dpd in [1, 30, 60, 90] {
                let at = nightly(dice, dpd);
                if dpd == 1 && i == default_from.unwrap_or(i) {
                    change(feed, &mut row, OVERDUE, at);
                }
                log(feed, "overdue", dpd, None, at);
            }
            continue;
        }
        // Late by a few days now and then; 30+ days only on the last
        // installment, so a repayment never overtakes the next due date.
        let days_late = if dice.chance(0.12 * risk) {
            match (i == p.period_no, dice.below(20)) {
                (true, 0) => between(dice, 30, 45),
                (_, 0..=2) => between(dice, 11, 20),
                _ => between(dice, 1, 10),
            }
        } else {
            0
        };
        let paid = if days_late > 0 {
            let first = nightly(dice, 1);
            change(feed, &mut row, OVERDUE, first);
            log(feed, "overdue", 1, None, first);
            if days_late >= 30 {
                log(feed, "overdue", 30, None, nightly(dice, 30));
            }
            cst_instant(due_day + days_late, between(dice, 8, 21) * HOUR_MS)
        } else {
            cst_instant(due_day - between(dice, 0, 3), between(dice, 8, 21) * HOUR_MS).max(paid_until + HOUR_MS)
        };
        let penalty = installment(i) * days_late / 1000; // overdue_penalty_rate 0.1% a day
        let interest = installment(i) * p.rate_e5 * p.term_quantity / 100_000;
        log(feed, "repaid", days_late, Some(installment(i) + interest + penalty), paid);
        paid_until = paid;
        if i == p.period_no {
            return LoanEnd::Settled(change(feed, &mut row, SETTLED, paid));
        } else if days_late > 0 {
            change(feed, &mut row, DISBURSED, paid);
        }
    }
    LoanEnd::Other
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;

    fn rows(events: &[Event], stream: &str) -> Vec<Value> {
        events.iter().filter(|e| e.stream == stream).filter_map(|e| serde_json::from_slice(&e.value).ok()).collect()
    }

    fn clean(count: u64) -> Vec<Event> {
        Lending.generate(&GenOptions { count, late: 0.0, duplicated: 0.0, malformed: 0.0, ..GenOptions::default() })
    }

    #[test]
    fn reproducible_and_about_count_events() {
        let options = GenOptions { count: 3000, ..GenOptions::default() };
        let events = Lending.generate(&options);
        assert_eq!(events, Lending.generate(&options));
        assert_ne!(events, Lending.generate(&GenOptions { seed: 9, ..options.clone() }));
        let clean = clean(3000);
        assert!((2700..=3000).contains(&clean.len()), "{}", clean.len());
        assert!(events.len() >= clean.len());
    }

    #[test]
    fn clean_events_do_not_depend_on_the_dirt() {
        let dirty = Lending.generate(&GenOptions { count: 2000, late: 0.1, duplicated: 0.05, ..GenOptions::default() });
        let mut a: Vec<Vec<u8>> = dirty
            .iter()
            .filter(|e| serde_json::from_slice::<Value>(&e.value).is_ok())
            .map(|e| e.value.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut b: Vec<Vec<u8>> = clean(2000).into_iter().map(|e| e.value).collect();
        a.sort();
        b.sort();
        // malformed ones (0.1%) are missing from the dirty feed
        assert!(b.len() - a.len() <= 10, "{} vs {}", a.len(), b.len());
        let b: HashSet<_> = b.into_iter().collect();
        assert!(a.iter().all(|v| b.contains(v)));
    }

    #[test]
    fn loan_rows_follow_the_status_machine() {
        let events = clean(20_000);
        let mut by_loan: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
        for r in rows(&events, LOAN_STREAM) {
            by_loan.entry(r["id"].as_i64().unwrap()).or_default().push(r);
        }
        let allowed: HashSet<(i64, i64)> = [
            (AUDITING, REJECTED),
            (AUDITING, APPROVED),
            (APPROVED, CANCELLED),
            (APPROVED, DISBURSED),
            (DISBURSED, OVERDUE),
            (OVERDUE, DISBURSED),
            (DISBURSED, SETTLED),
            (OVERDUE, SETTLED),
        ]
        .into();
        let mut statuses = HashSet::new();
        for rows in by_loan.values() {
            assert_eq!(rows[0]["status"], AUDITING);
            for w in rows.windows(2) {
                let (a, b) = (w[0]["status"].as_i64().unwrap(), w[1]["status"].as_i64().unwrap());
                assert!(allowed.contains(&(a, b)), "{a} -> {b}: {rows:?}");
                assert!(w[1]["updatetime"].as_i64() > w[0]["updatetime"].as_i64());
                assert_eq!(w[1]["inserttime"], w[0]["inserttime"]);
            }
            for r in rows {
                statuses.insert(r["status"].as_i64().unwrap());
                let disbursed = [DISBURSED, OVERDUE, SETTLED].contains(&r["status"].as_i64().unwrap());
                assert_eq!(disbursed, !r["lend_time"].is_null(), "{r}");
            }
        }
        assert_eq!(statuses.len(), 7, "every status occurs: {statuses:?}");
    }

    #[test]
    fn the_history_spans_months_with_overdue_loans() {
        let options = GenOptions::default();
        let events = clean(20_000);
        let last = events.iter().map(|e| e.event_time_ms).max().unwrap();
        assert!(last <= options.start_ms + HORIZON_DAYS * DAY_MS);
        assert!(last > options.start_ms + (HORIZON_DAYS - 5) * DAY_MS);
        let repay = rows(&events, REPAY_STREAM);
        let dpd30 = repay.iter().filter(|r| r["dpd"].as_i64() >= Some(30)).count();
        let repaid = repay.iter().filter(|r| r["event"] == "repaid").count();
        assert!(dpd30 > 20 && repaid > 1000, "{dpd30} {repaid}");
        // registrations come from every channel, and every loan's borrower registered
        let users: HashMap<i64, Value> =
            rows(&events, USER_STREAM).into_iter().map(|r| (r["id"].as_i64().unwrap(), r)).collect();
        let channels: HashSet<&str> = users.values().map(|u| u["channel"].as_str().unwrap()).collect();
        assert_eq!(channels.len(), CHANNELS.len());
        for l in rows(&events, LOAN_STREAM) {
            assert!(users.contains_key(&l["borrower_id"].as_i64().unwrap()));
        }
    }

    #[test]
    fn late_events_arrive_after_newer_ones() {
        let events = Lending.generate(&GenOptions { count: 5000, late: 0.05, ..GenOptions::default() });
        let times: Vec<i64> = events.iter().map(|e| e.event_time_ms).collect();
        let behind = times.windows(2).filter(|w| w[1] + HOUR_MS / 2 < w[0]).count();
        assert!(behind > 50, "{behind}");
        // a stale loan status after a newer one of the same loan
        let mut newest: HashMap<i64, i64> = HashMap::new();
        let mut stale = 0;
        for r in rows(&events, LOAN_STREAM) {
            let (id, at) = (r["id"].as_i64().unwrap(), r["updatetime"].as_i64().unwrap());
            let n = newest.entry(id).or_insert(at);
            if at < *n {
                stale += 1;
            }
            *n = (*n).max(at);
        }
        assert!(stale > 5, "{stale}");
    }
}
