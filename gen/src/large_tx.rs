//! Seed 003 (内蒙农信, real-time large-movement monitoring): account
//! movements (动账) of a rural credit union's customers, with the reference
//! data the alert job looks up.
//!
//! Streams, in sending order:
//! - `segment_threshold`: one row per customer segment with its alert
//!   threshold (a Redis or SQL dimension of the job);
//! - `customer`: the customer master (customer → segment, branch, manager),
//!   a SQL dimension of the job;
//! - `account_txn`: the movements, keyed by `customer_id` so one customer's
//!   movements keep their order in one Kafka partition.
//!
//! Reference rows come first and clean (they are extracts, not a feed); the
//! movements carry the dirt: duplicates (the same `txn_id` twice), late
//! movements (`txn_time` up to two hours behind their neighbours) and
//! malformed values. Amounts are decimal text in yuan with two decimals, as
//! a DECIMAL(18,2) column arrives from CDC. About 2% of movements are
//! spikes (15–60× the customer's usual amount), so both alert rules fire.

use serde_json::json;

use crate::support::{MINUTE_MS, between, normal, unit, weighted, yuan};
use crate::{Dice, Event, GenOptions, Scenario};

pub struct LargeTx;

pub const SEGMENT_STREAM: &str = "segment_threshold";
pub const CUSTOMER_STREAM: &str = "customer";
pub const TXN_STREAM: &str = "account_txn";

/// A customer segment: its code, its name at the credit union, its alert
/// threshold in cents, how often customers fall in it (weight) and the
/// median movement of its customers in cents.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub code: &'static str,
    pub name: &'static str,
    pub threshold_cents: i64,
    weight: u64,
    median_cents: i64,
}

pub const SEGMENTS: &[Segment] = &[
    Segment { code: "mass", name: "大众客户", threshold_cents: 5_000_000, weight: 55, median_cents: 60_000 },
    Segment { code: "farmer", name: "农户", threshold_cents: 2_000_000, weight: 25, median_cents: 150_000 },
    Segment {
        code: "micro_business",
        name: "个体工商户",
        threshold_cents: 10_000_000,
        weight: 10,
        median_cents: 400_000,
    },
    Segment { code: "wealth", name: "财富客户", threshold_cents: 20_000_000, weight: 6, median_cents: 800_000 },
    Segment {
        code: "private_banking",
        name: "私人银行客户",
        threshold_cents: 100_000_000,
        weight: 1,
        median_cents: 3_000_000,
    },
    Segment {
        code: "corporate", name: "对公客户", threshold_cents: 50_000_000, weight: 3, median_cents: 6_000_000
    },
];

/// League (盟) and city codes of Inner Mongolia: branch ids start with them.
const CITIES: &[(&str, &str)] = &[
    ("1501", "呼和浩特"),
    ("1502", "包头"),
    ("1503", "乌海"),
    ("1504", "赤峰"),
    ("1505", "通辽"),
    ("1506", "鄂尔多斯"),
    ("1507", "呼伦贝尔"),
    ("1508", "巴彦淖尔"),
    ("1509", "乌兰察布"),
];
const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "高", "郭", "乌", "包", "白"];
const GIVEN: &[&str] = &["明", "华", "芳", "军", "丽", "强", "敏", "静", "勇", "巴特尔", "其其格", "娜仁"];

/// Channels and their weights, for outflows and inflows.
const CHANNELS: &[&str] = &["mobile_banking", "counter", "atm", "pos", "online_banking", "agent_point"];
const OUT_WEIGHTS: &[u64] = &[35, 10, 15, 20, 12, 8];
const IN_WEIGHTS: &[u64] = &[45, 20, 5, 0, 20, 10];
const OUT_SUMMARIES: &[&str] = &["消费", "取现", "转账", "还款", "缴费"];
const IN_SUMMARIES: &[&str] = &["工资", "转账", "存现", "贷款发放", "惠农补贴"];

/// One customer of the generated population.
#[derive(Debug, Clone)]
struct Customer {
    id: String,
    segment: &'static Segment,
    accounts: Vec<(String, String)>, // (account_no, branch_id)
}

impl Scenario for LargeTx {
    fn name(&self) -> &'static str {
        "large-tx"
    }

    fn description(&self) -> &'static str {
        "seed 003: account movements of a rural credit union, for large-transaction alerts"
    }

    fn streams(&self) -> &'static [&'static str] {
        &[SEGMENT_STREAM, CUSTOMER_STREAM, TXN_STREAM]
    }

    fn generate(&self, options: &GenOptions) -> Vec<Event> {
        let mut dice = Dice::new(options.seed);
        let mut out = Vec::new();
        for s in SEGMENTS {
            let row = json!({ "segment": s.code, "segment_name": s.name, "threshold": yuan(s.threshold_cents) });
            out.push(event(SEGMENT_STREAM, s.code, &row, options.start_ms));
        }
        // One customer per 40 movements: a few dozen movements each, so the
        // recent-average rule has history to work with.
        let reference = SEGMENTS.len() as u64;
        let customers_n = (options.count.saturating_sub(reference) / 41).clamp(5, 50_000);
        let customers: Vec<Customer> = (0..customers_n).map(|i| customer(&mut dice, i)).collect();
        for c in &customers {
            let (city_code, _) = CITIES.iter().find(|(code, _)| c.accounts[0].1.starts_with(code)).expect("a city");
            let row = json!({
                "customer_id": c.id,
                "name": masked_name(&mut dice),
                "segment": c.segment.code,
                "branch_id": c.accounts[0].1,
                "manager_id": format!("M{city_code}{:03}", dice.below(40)),
            });
            out.push(event(CUSTOMER_STREAM, &c.id, &row, options.start_ms));
        }
        let txns = options.count.saturating_sub(reference + customers_n);
        for i in 0..txns {
            let c = &customers[dice.below(customers_n) as usize];
            let slot = options.start_ms + i as i64 * options.step_ms + dice.below(options.step_ms.max(1) as u64) as i64;
            let late = dice.chance(options.late);
            let txn_time = if late { slot - between(&mut dice, 5, 120) * MINUTE_MS } else { slot };
            let row = movement(&mut dice, c, i, txn_time);
            dice.push(&mut out, event(TXN_STREAM, &c.id, &row, txn_time), options);
        }
        out
    }
}

fn event(stream: &'static str, key: &str, row: &serde_json::Value, event_time_ms: i64) -> Event {
    Event { stream, key: key.to_owned(), value: row.to_string().into_bytes(), event_time_ms }
}

fn customer(dice: &mut Dice, index: u64) -> Customer {
    let weights: Vec<u64> = SEGMENTS.iter().map(|s| s.weight).collect();
    let segment = &SEGMENTS[weighted(dice, &weights)];
    let (city, _) = *dice.pick(CITIES);
    let branch = format!("{city}{:02}", 1 + dice.below(12));
    let accounts = (0..1 + dice.below(2))
        .map(|a| {
            // 19-digit debit card numbers under one BIN, unique per (customer, account).
            (format!("6229{:013}{a:02}", 1_000_000 + index * 7 + dice.below(7)), branch.clone())
        })
        .collect();
    Customer { id: format!("C{city}{:08}", 10_000 + index), segment, accounts }
}

fn masked_name(dice: &mut Dice) -> String {
    let given = *dice.pick(GIVEN);
    let stars = "*".repeat(given.chars().count());
    format!("{}{stars}", dice.pick(SURNAMES))
}

/// One movement: log-normal around the segment's median, now and then a spike.
fn movement(dice: &mut Dice, c: &Customer, index: u64, txn_time: i64) -> serde_json::Value {
    let (account_no, branch_id) = dice.pick(&c.accounts).clone();
    let outflow = dice.chance(0.55);
    let spike = if dice.chance(0.02) { between(dice, 15, 60) as f64 } else { 1.0 };
    let cents = ((c.segment.median_cents as f64) * (0.9 * normal(dice)).exp() * spike).round().max(1.0) as i64;
    // Round figures are common at counters and ATMs.
    let cents = if unit(dice) < 0.3 { (cents / 10_000).max(1) * 10_000 } else { cents };
    let (channel, summary) = if outflow {
        (CHANNELS[weighted(dice, OUT_WEIGHTS)], *dice.pick(OUT_SUMMARIES))
    } else {
        (CHANNELS[weighted(dice, IN_WEIGHTS)], *dice.pick(IN_SUMMARIES))
    };
    json!({
        "txn_id": format!("TX{:014}", 10_000_000 + index),
        "account_no": account_no,
        "customer_id": c.id,
        "direction": if outflow { "out" } else { "in" },
        "amount": yuan(cents),
        "currency": "CNY",
        "channel": channel,
        "summary": summary,
        "branch_id": branch_id,
        "txn_time": txn_time,
        // When the core system booked it, a few seconds later; the job does not use it.
        "posted_at": txn_time + dice.below(5000) as i64,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn rows(events: &[Event], stream: &str) -> Vec<serde_json::Value> {
        events.iter().filter(|e| e.stream == stream).filter_map(|e| serde_json::from_slice(&e.value).ok()).collect()
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let options = GenOptions { count: 2000, ..GenOptions::default() };
        assert_eq!(LargeTx.generate(&options), LargeTx.generate(&options));
        assert_ne!(LargeTx.generate(&options), LargeTx.generate(&GenOptions { seed: 2, ..options }));
    }

    #[test]
    fn reference_rows_come_first_and_every_customer_is_known() {
        let events = LargeTx.generate(&GenOptions { count: 5000, ..GenOptions::default() });
        let first_txn = events.iter().position(|e| e.stream == TXN_STREAM).unwrap();
        assert!(events[..first_txn].iter().all(|e| e.stream != TXN_STREAM));
        assert!(events[first_txn..].iter().all(|e| e.stream == TXN_STREAM));
        let customers: HashSet<String> =
            rows(&events, CUSTOMER_STREAM).iter().map(|r| r["customer_id"].as_str().unwrap().to_owned()).collect();
        let segments: HashSet<String> =
            rows(&events, SEGMENT_STREAM).iter().map(|r| r["segment"].as_str().unwrap().to_owned()).collect();
        assert_eq!(segments.len(), SEGMENTS.len());
        for c in rows(&events, CUSTOMER_STREAM) {
            assert!(segments.contains(c["segment"].as_str().unwrap()));
        }
        for t in rows(&events, TXN_STREAM) {
            assert!(customers.contains(t["customer_id"].as_str().unwrap()), "{t}");
        }
    }

    #[test]
    fn amounts_are_two_decimal_yuan_and_some_exceed_their_threshold() {
        let events = LargeTx.generate(&GenOptions { count: 20_000, ..GenOptions::default() });
        let segment_of: HashMap<String, &Segment> = rows(&events, CUSTOMER_STREAM)
            .iter()
            .map(|c| {
                let s = SEGMENTS.iter().find(|s| s.code == c["segment"]).unwrap();
                (c["customer_id"].as_str().unwrap().to_owned(), s)
            })
            .collect();
        let mut over = 0;
        for t in rows(&events, TXN_STREAM) {
            let amount = t["amount"].as_str().unwrap();
            let (whole, cents) = amount.split_once('.').unwrap();
            assert!(cents.len() == 2 && whole.bytes().all(|b| b.is_ascii_digit()), "{amount}");
            let value: i64 = format!("{whole}{cents}").parse().unwrap();
            assert!(value > 0);
            if value >= segment_of[t["customer_id"].as_str().unwrap()].threshold_cents {
                over += 1;
            }
        }
        assert!(over > 20, "{over} movements over their threshold");
    }

    #[test]
    fn dirt_in_the_asked_proportions() {
        let options =
            GenOptions { count: 20_000, late: 0.05, duplicated: 0.03, malformed: 0.01, ..GenOptions::default() };
        let events = LargeTx.generate(&options);
        let txns: Vec<&Event> = events.iter().filter(|e| e.stream == TXN_STREAM).collect();
        let malformed = txns.iter().filter(|e| serde_json::from_slice::<serde_json::Value>(&e.value).is_err()).count();
        let ids: Vec<String> =
            rows(&events, TXN_STREAM).iter().map(|r| r["txn_id"].as_str().unwrap().to_owned()).collect();
        let duplicates = ids.len() - ids.iter().collect::<HashSet<_>>().len();
        // late: txn_time behind the previous movement's by 5 minutes or more
        let times: Vec<i64> = rows(&events, TXN_STREAM).iter().map(|r| r["txn_time"].as_i64().unwrap()).collect();
        let late = times.windows(2).filter(|w| w[1] < w[0] - 4 * MINUTE_MS).count();
        let n = txns.len() as f64;
        assert!((0.005..0.02).contains(&(malformed as f64 / n)), "malformed {malformed}");
        assert!((0.02..0.045).contains(&(duplicates as f64 / n)), "duplicates {duplicates}");
        assert!((0.03..0.07).contains(&(late as f64 / n)), "late {late}");
    }

    #[test]
    fn one_customer_one_key() {
        let events = LargeTx.generate(&GenOptions { count: 3000, ..GenOptions::default() });
        for e in events.iter().filter(|e| e.stream == TXN_STREAM) {
            if let Ok(row) = serde_json::from_slice::<serde_json::Value>(&e.value) {
                assert_eq!(row["customer_id"], e.key.as_str());
                assert_eq!(row["txn_time"], e.event_time_ms);
            }
        }
    }
}
