//! Seed 001 (an insurer's real-time operations): the three feeds the
//! `jobs/` of that seed read, with the shapes of their sample files.
//!
//! - `insurance-orders`: `user_order` rows (hourly-premium). Users order
//!   several times in a short while (the last order counts), order numbers
//!   and phones repeat (the distinct counts). Keyed by user `id`.
//! - `premium-updates`: the watched users' `raw_info` rows first (the
//!   premium-drop dimension), then `update_info` rows of watched and
//!   unwatched users, a fifth of them not saved. Keyed by `id`.
//! - `page-views`: `user_log` rows (last-page): accounts on a few devices
//!   each, a tenth anonymous (`account_id` null). Keyed by account.
//!
//! Event time advances by `step_ms` per event; a late event's time field is
//! 10–90 minutes behind. Premiums are decimal text or numbers with two
//! decimals, as in the samples.

use serde_json::{Value, json};

use crate::support::{MINUTE_MS, between, weighted, yuan};
use crate::{Dice, Event, GenOptions, Scenario};

pub struct InsuranceOrders;
pub struct PremiumUpdates;
pub struct PageViews;

const NAMES: &[&str] = &[
    "Wang Fang",
    "Li Na",
    "Zhang Wei",
    "Liu Yang",
    "Chen Jing",
    "Yang Min",
    "Zhao Lei",
    "Huang Li",
    "Zhou Jie",
    "Wu Xia",
];
const PLANS: &[&str] = &[
    "Critical illness 500k",
    "Accident 200k",
    "Medical basic",
    "Whole life 1M",
    "Term life 500k",
    "Car comprehensive",
    "Pet care",
    "Home contents",
];
const PAGES: &[&str] =
    &["home", "life-insurance", "claims", "car", "health", "pay", "profile", "faq", "news", "contact"];

/// The event time of event `i`, `late` when the dice say so.
fn event_time(dice: &mut Dice, options: &GenOptions, i: u64) -> i64 {
    let slot = options.start_ms + i as i64 * options.step_ms + dice.below(options.step_ms.max(1) as u64) as i64;
    if dice.chance(options.late) { slot - between(dice, 10, 90) * MINUTE_MS } else { slot }
}

fn event(stream: &'static str, key: impl ToString, row: &Value, event_time_ms: i64) -> Event {
    Event { stream, key: key.to_string(), value: row.to_string().into_bytes(), event_time_ms }
}

impl Scenario for InsuranceOrders {
    fn name(&self) -> &'static str {
        "insurance-orders"
    }

    fn description(&self) -> &'static str {
        "seed 001: insurance orders (user_order) for hourly premium totals"
    }

    fn streams(&self) -> &'static [&'static str] {
        &["user_order"]
    }

    fn generate(&self, options: &GenOptions) -> Vec<Event> {
        let mut dice = Dice::new(options.seed);
        // Sized like the seed's tables: a user orders ten times on average,
        // policies and phones are shared between users.
        let users = (options.count / 10).max(1);
        let mut out = Vec::new();
        for i in 0..options.count {
            // A user's orders come close together (within about 30 events),
            // so the last orders spread over the whole period.
            let id = 1000 + (i / 10) as i64 + dice.below(30) as i64;
            let at = event_time(&mut dice, options, i);
            let premium = 100 + dice.below(500_000) as i64;
            let order = json!({
                "id": id,
                "order_no": format!("PO{:06}", dice.below(users * 7)),
                "order_type": 1 + dice.below(2),
                "pay_time": at,
                "order_price": premium as f64 / 100.0,
                "customer_name": dice.pick(NAMES),
                "customer_tel": format!("138{:08}", dice.below(users * 8 / 10 + 1)),
                "certificate_no": format!("1101051990{:08}", id),
                "gmt_created": at - between(&mut dice, 1, 10) * MINUTE_MS,
                "gmt_modified": at,
                "account_payble": premium as f64 / 100.0,
            });
            dice.push(&mut out, event("user_order", id, &order, at), options);
        }
        out
    }
}

impl Scenario for PremiumUpdates {
    fn name(&self) -> &'static str {
        "premium-updates"
    }

    fn description(&self) -> &'static str {
        "seed 001: watched users' premiums (raw_info) and their updates (update_info) for premium-drop alerts"
    }

    fn streams(&self) -> &'static [&'static str] {
        &["raw_info", "update_info"]
    }

    fn generate(&self, options: &GenOptions) -> Vec<Event> {
        let mut dice = Dice::new(options.seed);
        // Two thirds of the users are watched (have a raw_info row).
        let users = (options.count / 20).max(3);
        let watched = users * 2 / 3;
        let mut out = Vec::new();
        for id in 0..watched {
            let row = json!({ "id": 2000 + id, "raw_premium": premium(&mut dice), "raw_info": dice.pick(PLANS) });
            out.push(event("raw_info", 2000 + id, &row, options.start_ms));
        }
        for i in 0..options.count.saturating_sub(watched) {
            let id = 2000 + dice.below(users);
            let at = event_time(&mut dice, options, i);
            let row = json!({
                "id": id,
                "channel": dice.pick(&["app", "h5", "wechat"]),
                "open_id": format!("OD{:011}", i),
                "event": if dice.below(5) == 0 { "failed" } else { "saved" },
                "now_premium": premium(&mut dice),
                "creator": "system",
                "modifier": "system",
                "gmt_modified": at,
                "now_info": format!("{} v{i}", dice.pick(PLANS)),
            });
            dice.push(&mut out, event("update_info", id, &row, at), options);
        }
        out
    }
}

/// A premium as the seed stores it: decimal text, whole or with cents.
fn premium(dice: &mut Dice) -> String {
    let cents = 5_000 + dice.below(500_000) as i64;
    if dice.chance(0.3) { (cents / 100).to_string() } else { yuan(cents) }
}

impl Scenario for PageViews {
    fn name(&self) -> &'static str {
        "page-views"
    }

    fn description(&self) -> &'static str {
        "seed 001: page views and clicks (user_log) for the last page per account and device"
    }

    fn streams(&self) -> &'static [&'static str] {
        &["user_log"]
    }

    fn generate(&self, options: &GenOptions) -> Vec<Event> {
        let mut dice = Dice::new(options.seed);
        let accounts = (options.count / 15).max(1);
        let mut out = Vec::new();
        for i in 0..options.count {
            let account = dice.below(accounts);
            let anonymous = dice.below(10) == 0;
            let at = event_time(&mut dice, options, i);
            let device = format!("dev-{account:04}-{}", dice.below(3));
            let page = PAGES[weighted(&mut dice, &[30, 12, 10, 8, 8, 8, 6, 6, 6, 6])];
            let row = json!({
                "log_time": at / 1000,
                "device_id": device,
                "account_id": if anonymous { None } else { Some(format!("acc-{account:05}")) },
                "bury_point_type": if dice.below(4) == 0 { "click" } else { "page" },
                "page_name": page,
            });
            dice.push(&mut out, event("user_log", account, &row, at), options);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(events: &[Event]) -> Vec<Value> {
        events.iter().filter_map(|e| serde_json::from_slice(&e.value).ok()).collect()
    }

    #[test]
    fn reproducible() {
        let options = GenOptions { count: 500, ..GenOptions::default() };
        for s in [&InsuranceOrders as &dyn Scenario, &PremiumUpdates, &PageViews] {
            assert_eq!(s.generate(&options), s.generate(&options), "{}", s.name());
            let events = s.generate(&options);
            assert!(events.len() >= 490, "{}: {}", s.name(), events.len());
            assert!(events.iter().all(|e| s.streams().contains(&e.stream)));
        }
    }

    #[test]
    fn orders_repeat_users_policies_and_phones() {
        let events = InsuranceOrders.generate(&GenOptions { count: 3000, ..GenOptions::default() });
        let rows = values(&events);
        let distinct = |f: &str| rows.iter().map(|r| r[f].to_string()).collect::<std::collections::HashSet<_>>().len();
        assert!(distinct("id") < 400 && distinct("order_no") < 2100 && distinct("customer_tel") < 300);
        for e in &events {
            if let Ok(r) = serde_json::from_slice::<Value>(&e.value) {
                assert_eq!(r["id"].to_string(), e.key);
            }
        }
    }

    #[test]
    fn premium_updates_watch_two_thirds() {
        let events = PremiumUpdates.generate(&GenOptions { count: 3000, ..GenOptions::default() });
        let raw: Vec<Value> = values(&events[..100]);
        assert_eq!(raw.len(), 100);
        assert!(events[..100].iter().all(|e| e.stream == "raw_info"));
        assert!(events[100..].iter().all(|e| e.stream == "update_info"));
        let saved = values(&events[100..]).iter().filter(|r| r["event"] == "saved").count();
        assert!((2100..2700).contains(&saved), "{saved}");
    }

    #[test]
    fn a_tenth_of_page_views_are_anonymous() {
        let rows = values(&PageViews.generate(&GenOptions { count: 5000, ..GenOptions::default() }));
        let anonymous = rows.iter().filter(|r| r["account_id"].is_null()).count();
        assert!((350..650).contains(&anonymous), "{anonymous}");
    }
}
