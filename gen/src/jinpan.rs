//! 金盘 (seed 000): the lending platform 盘宝 pushes every order, with the
//! borrower's credit report, to a message queue; 金盘 splits the reports
//! into normalised tables. Post-loan repayment status changes are a second
//! feed.
//!
//! Two streams:
//!
//! - `jinpan_order`, keyed by `user_id`: one message per order *version*.
//!   About a third of the orders are first pushed `PENDING` and pushed
//!   again when decided (`APPROVED` or `REJECTED`); the credit report is
//!   the same in both versions, approved ones carry a repayment plan.
//!   `gmt_modified` is the version's time (and the event time).
//! - `jinpan_repayment_status`, keyed by `order_id`: a status change of
//!   one installment of an approved order (`PAID`, `OVERDUE`, or
//!   `WITHDRAWN` for a withdrawn loan, 退标), with `updated_at`.
//!
//! Dirt: late messages keep their `gmt_modified` but are sent 20 to 300
//! messages later than their time (a delayed queue), so a newer version of
//! an order can arrive before an older one; duplicates are sent twice in a
//! row (a redelivery); malformed ones are cut off (not JSON). Only order
//! messages are malformed: the status feed is read from 盘宝's database in
//! the jobs, not parsed from messages.
//!
//! [`Jinpan::orders_of_record`] gives 盘宝's own order table at the end:
//! the latest version of every order, including the ones whose messages
//! were malformed, which is what the compensation job compares with.

mod people;

use serde_json::{Value, json};

use self::people::Profile;
use crate::{Dice, Event, GenOptions, Scenario};

pub const ORDER_STREAM: &str = "jinpan_order";
pub const STATUS_STREAM: &str = "jinpan_repayment_status";

/// UTC+8: dates (due dates, order numbers) are China Standard Time.
const OFFSET_MS: i64 = 8 * 3_600_000;
const PRODUCTS: &[&str] = &["随借随还", "分期贷", "小额现金贷", "消费分期"];

/// The 金盘 scenario.
#[derive(Debug, Clone, Copy)]
pub struct Jinpan;

impl Scenario for Jinpan {
    fn name(&self) -> &'static str {
        "jinpan"
    }

    fn description(&self) -> &'static str {
        "金盘: lending orders with credit reports to split into tables, and post-loan repayment status"
    }

    fn streams(&self) -> &'static [&'static str] {
        &[ORDER_STREAM, STATUS_STREAM]
    }

    fn generate(&self, options: &GenOptions) -> Vec<Event> {
        Simulation::run(options).events
    }
}

impl Jinpan {
    /// 盘宝's order table after the run: the latest version of every order
    /// created, as the JSON its messages carry, in order-id order.
    pub fn orders_of_record(&self, options: &GenOptions) -> Vec<Value> {
        Simulation::run(options).orders.iter().map(Order::to_json).collect()
    }
}

/// One order, at its latest version.
#[derive(Debug, Clone)]
struct Order {
    order_id: String,
    user_id: i64,
    merchant_id: String,
    product: &'static str,
    amount_cents: i64,
    periods: i64,
    /// Yearly rate in basis points (1/100 of a percent).
    rate_bp: i64,
    apply_time: i64,
    report: Value,
    status: &'static str,
    gmt_modified: i64,
    /// Post-loan: the next installment to settle, and whether it is overdue.
    next_period: i64,
    overdue: bool,
}

impl Order {
    fn loan_id(&self) -> Option<String> {
        (self.status == "APPROVED").then(|| format!("LN{}", &self.order_id[2..]))
    }

    fn principal(&self, period: i64) -> i64 {
        let each = self.amount_cents / self.periods;
        if period == self.periods { self.amount_cents - each * (self.periods - 1) } else { each }
    }

    fn interest(&self) -> i64 {
        // Monthly interest on the whole amount, rounded to the cent.
        (self.amount_cents * self.rate_bp + 60_000) / 120_000
    }

    fn plan(&self) -> Vec<Value> {
        if self.status != "APPROVED" {
            return Vec::new();
        }
        let (year, month, day) = civil_date(self.apply_time);
        (1..=self.periods)
            .map(|period| {
                let months = year * 12 + (month - 1) + period;
                let due = format!("{:04}-{:02}-{:02}", months / 12, months % 12 + 1, day.min(28));
                json!({
                    "period": period,
                    "due_date": due,
                    "principal": money(self.principal(period)),
                    "interest": money(self.interest()),
                })
            })
            .collect()
    }

    fn to_json(&self) -> Value {
        json!({
            "order_id": self.order_id,
            "user_id": self.user_id,
            "merchant_id": self.merchant_id,
            "loan_id": self.loan_id(),
            "product": self.product,
            "amount": money(self.amount_cents),
            "periods": self.periods,
            "annual_rate": format!("{}.{:04}", self.rate_bp / 10_000, self.rate_bp % 10_000),
            "status": self.status,
            "apply_time": self.apply_time,
            "gmt_modified": self.gmt_modified,
            "credit_report": self.report,
            "repayment_plan": self.plan(),
        })
    }
}

/// What the generator keeps while it runs.
struct Simulation<'a> {
    options: &'a GenOptions,
    dice: Dice,
    users: Vec<Profile>,
    orders: Vec<Order>,
    /// Indexes of PENDING orders and when they are decided.
    undecided: Vec<(usize, i64)>,
    /// Indexes of approved orders with installments left.
    repaying: Vec<usize>,
    /// Late events and the length of `events` at which they are sent.
    held: Vec<(usize, Event)>,
    events: Vec<Event>,
}

impl<'a> Simulation<'a> {
    fn run(options: &'a GenOptions) -> Self {
        let mut sim = Simulation {
            options,
            dice: Dice::new(options.seed ^ 0x6a69_6e70_616e),
            users: Vec::new(),
            orders: Vec::new(),
            undecided: Vec::new(),
            repaying: Vec::new(),
            held: Vec::new(),
            events: Vec::new(),
        };
        let count = options.count as usize;
        let mut now = options.start_ms;
        while sim.events.len() < count {
            now += 1 + sim.dice.below(2 * options.step_ms.max(1) as u64) as i64;
            sim.step(now);
            sim.release_held(false);
        }
        sim.release_held(true);
        sim.events.truncate(count);
        sim
    }

    /// One thing happens at `now`.
    fn step(&mut self, now: i64) {
        if let Some(i) = self.undecided.iter().position(|&(_, at)| at <= now) {
            let (order, _) = self.undecided.remove(i);
            self.decide(order, now);
        } else if !self.repaying.is_empty() && self.dice.chance(0.15) {
            let pick = self.dice.below(self.repaying.len() as u64) as usize;
            self.repay(pick, now);
        } else {
            self.new_order(now);
        }
    }

    fn new_order(&mut self, now: i64) {
        let dice = &mut self.dice;
        let user = if self.users.is_empty() || dice.chance(0.65) {
            let user_id = 10_000_001 + self.users.len() as i64;
            let profile = Profile::new(dice, user_id, civil_date(now).0);
            self.users.push(profile);
            self.users.len() - 1
        } else {
            let user = dice.below(self.users.len() as u64) as usize;
            self.users[user].evolve(dice);
            user
        };
        let seq = self.orders.len() + 1;
        let (year, month, day) = civil_date(now);
        let order_id = format!("JP{year:04}{month:02}{day:02}{seq:07}");
        let report = self.users[user].report(dice, format!("CR{}", &order_id[2..]));
        let status = if dice.chance(0.35) {
            "PENDING"
        } else if dice.chance(0.55) {
            "APPROVED"
        } else {
            "REJECTED"
        };
        // Draws keep their order, so a seed keeps giving the same orders.
        let merchant_id = format!("M{:04}", 1 + dice.below(20));
        let product = *dice.pick(PRODUCTS);
        let order = Order {
            user_id: self.users[user].user_id,
            merchant_id,
            product,
            amount_cents: (5 + dice.below(196) as i64) * 10_000,
            periods: *dice.pick(&[3, 6, 9, 12]),
            rate_bp: 1_800 + dice.below(19) as i64 * 100,
            apply_time: now,
            report,
            status,
            gmt_modified: now,
            next_period: 1,
            overdue: false,
            order_id,
        };
        if status == "PENDING" {
            let decided = now + 30_000 + self.dice.below(1_800_000) as i64;
            self.undecided.push((self.orders.len(), decided));
        } else if status == "APPROVED" {
            self.repaying.push(self.orders.len());
        }
        self.orders.push(order);
        self.send_order(self.orders.len() - 1);
    }

    fn decide(&mut self, index: usize, now: i64) {
        let approved = self.dice.chance(0.55);
        let order = &mut self.orders[index];
        order.status = if approved { "APPROVED" } else { "REJECTED" };
        order.gmt_modified = now;
        if approved {
            self.repaying.push(index);
        }
        self.send_order(index);
    }

    /// A status change of the next installment of `self.repaying[pick]`.
    fn repay(&mut self, pick: usize, now: i64) {
        let index = self.repaying[pick];
        let withdrawn = self.orders[index].next_period == 1 && self.dice.chance(0.03);
        let order = &mut self.orders[index];
        let mut changes = Vec::new();
        if withdrawn {
            // 退标: the loan is withdrawn; every installment says so.
            for period in 1..=order.periods {
                changes.push((period, "WITHDRAWN", None));
            }
            order.next_period = order.periods + 1;
        } else if !order.overdue && self.dice.chance(0.2) {
            order.overdue = true;
            changes.push((order.next_period, "OVERDUE", None));
        } else {
            let due = order.principal(order.next_period) + order.interest();
            changes.push((order.next_period, "PAID", Some(due)));
            order.overdue = false;
            order.next_period += 1;
        }
        let (order_id, user_id) = (order.order_id.clone(), order.user_id);
        if order.next_period > order.periods {
            self.repaying.swap_remove(pick);
        }
        for (period, status, repaid) in changes {
            let value = json!({
                "order_id": order_id,
                "user_id": user_id,
                "period": period,
                "status": status,
                "repaid_amount": repaid.map(money),
                "repaid_time": repaid.map(|_| now),
                "updated_at": now,
            });
            let event = Event {
                stream: STATUS_STREAM,
                key: order_id.clone(),
                value: value.to_string().into_bytes(),
                event_time_ms: now,
            };
            // The status feed is a database change log: duplicates, never
            // malformed or late.
            let clean = GenOptions { malformed: 0.0, ..self.options.clone() };
            self.dice.push(&mut self.events, event, &clean);
        }
    }

    fn send_order(&mut self, index: usize) {
        let order = &self.orders[index];
        let event = Event {
            stream: ORDER_STREAM,
            key: order.user_id.to_string(),
            value: order.to_json().to_string().into_bytes(),
            event_time_ms: order.gmt_modified,
        };
        if self.dice.chance(self.options.late) {
            let delay = 20 + self.dice.below(281) as usize;
            self.held.push((self.events.len() + delay, event));
        } else {
            self.dice.push(&mut self.events, event, self.options);
        }
    }

    /// Sends the late events whose time has come (all of them at the end).
    fn release_held(&mut self, all: bool) {
        let sent = self.events.len();
        let (due, wait): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.held).into_iter().partition(|(at, _)| all || *at <= sent);
        self.held = wait;
        for (_, event) in due {
            self.dice.push(&mut self.events, event, self.options);
        }
    }
}

/// Cents as a decimal string with two places.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// (year, month, day) in UTC+8 of epoch milliseconds.
fn civil_date(ms: i64) -> (i64, i64, i64) {
    // Howard Hinnant's civil_from_days.
    let z = (ms + OFFSET_MS).div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
