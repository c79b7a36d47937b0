use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::people::{id_check, luhn_check};
use super::*;

fn options(count: u64) -> GenOptions {
    GenOptions { count, ..GenOptions::default() }
}

fn json(event: &Event) -> Option<Value> {
    serde_json::from_slice(&event.value).ok()
}

#[test]
fn the_same_options_give_the_same_events() {
    let a = Jinpan.generate(&options(3000));
    let b = Jinpan.generate(&options(3000));
    assert_eq!(a, b);
    assert_eq!(a.len(), 3000, "exactly `count` events");
    let other = Jinpan.generate(&GenOptions { seed: 2, ..options(3000) });
    assert_ne!(a, other, "another seed gives other events");
    assert_eq!(Jinpan.orders_of_record(&options(3000)), Jinpan.orders_of_record(&options(3000)));
}

#[test]
fn is_registered() {
    assert_eq!(crate::scenario("jinpan").map(|s| s.streams()), Some(&[ORDER_STREAM, STATUS_STREAM][..]));
}

#[test]
fn dirt_comes_in_the_proportions_asked_for() {
    let opts = GenOptions { count: 20_000, late: 0.05, duplicated: 0.04, malformed: 0.01, ..GenOptions::default() };
    let events = Jinpan.generate(&opts);
    let orders = events.iter().filter(|e| e.stream == ORDER_STREAM).count() as f64;

    let malformed = events.iter().filter(|e| json(e).is_none()).count() as f64;
    assert!(events.iter().filter(|e| json(e).is_none()).all(|e| e.stream == ORDER_STREAM));
    assert!((0.005..0.015).contains(&(malformed / orders)), "malformed share {}", malformed / orders);

    let twice = events.windows(2).filter(|w| w[0] == w[1]).count() as f64;
    let share = twice / events.len() as f64;
    assert!((0.025..0.055).contains(&share), "duplicated share {share}");

    // Late: sent after a message of the same stream that is more than a
    // few seconds newer (on-time messages go out in time order).
    let mut newest = BTreeMap::new();
    let mut late = 0;
    for e in events.iter().filter(|e| e.stream == ORDER_STREAM) {
        let seen = newest.entry(e.stream).or_insert(i64::MIN);
        if e.event_time_ms < seen.saturating_sub(5_000) {
            late += 1;
        }
        *seen = (*seen).max(e.event_time_ms);
    }
    let share = late as f64 / orders;
    assert!((0.03..0.07).contains(&share), "late share {share}");
}

#[test]
fn without_dirt_messages_are_in_time_order_and_all_json() {
    let clean = GenOptions { late: 0.0, duplicated: 0.0, malformed: 0.0, ..options(5000) };
    let events = Jinpan.generate(&clean);
    assert!(events.windows(2).all(|w| w[0].event_time_ms <= w[1].event_time_ms));
    assert!(events.iter().all(|e| json(e).is_some()));
    assert!(events.windows(2).all(|w| w[0] != w[1]));
}

#[test]
fn orders_carry_valid_reports_and_plans() {
    let events = Jinpan.generate(&options(5000));
    let orders: Vec<Value> = events.iter().filter(|e| e.stream == ORDER_STREAM).filter_map(json).collect();
    assert!(orders.len() > 3500, "{}", orders.len());
    let mut statuses = BTreeMap::new();
    let (mut cards, mut cards_without_number, mut devices, mut devices_without_id) = (0, 0, 0, 0);
    let mut reports_with_repeated_phone = 0;
    for o in &orders {
        let status = o["status"].as_str().unwrap();
        *statuses.entry(status.to_owned()).or_insert(0) += 1;
        assert_eq!(o["order_id"].as_str().unwrap().len(), 17, "{o}");
        assert!(o["user_id"].as_i64().unwrap() > 10_000_000);
        let report = &o["credit_report"];
        let id = report["identity"]["id_card"].as_str().unwrap();
        assert_eq!(id.len(), 18);
        assert_eq!(id.chars().last(), Some(id_check(&id[..17])), "check character of {id}");
        let male = (id.as_bytes()[16] - b'0') % 2 == 1;
        assert_eq!(report["identity"]["gender"], if male { "男" } else { "女" });
        assert_eq!(&id[6..10], &report["identity"]["birthday"].as_str().unwrap()[..4]);
        for card in report["bank_cards"].as_array().unwrap() {
            cards += 1;
            match card["card_no"].as_str() {
                Some(no) => assert_eq!(no.chars().last(), Some(luhn_check(&no[..no.len() - 1])), "Luhn of {no}"),
                None => cards_without_number += 1,
            }
        }
        for device in report["devices"].as_array().unwrap() {
            devices += 1;
            if device["device_id"] == "" {
                devices_without_id += 1;
            }
        }
        let phones: Vec<&Value> = report["phones"].as_array().unwrap().iter().map(|p| &p["mobile"]).collect();
        if phones.len() != phones.iter().collect::<HashSet<_>>().len() {
            reports_with_repeated_phone += 1;
        }
        let plan = o["repayment_plan"].as_array().unwrap();
        if status == "APPROVED" {
            assert_eq!(plan.len() as i64, o["periods"].as_i64().unwrap());
            let cents = |v: &Value| v.as_str().unwrap().replace('.', "").parse::<i64>().unwrap();
            let principal: i64 = plan.iter().map(|p| cents(&p["principal"])).sum();
            assert_eq!(principal, cents(&o["amount"]), "the plan repays the amount: {o}");
            assert!(o["loan_id"].is_string());
        } else {
            assert!(plan.is_empty());
            assert!(o["loan_id"].is_null());
        }
    }
    for status in ["PENDING", "APPROVED", "REJECTED"] {
        assert!(statuses.get(status).copied().unwrap_or(0) > 300, "{statuses:?}");
    }
    assert!(cards_without_number > 0 && cards_without_number * 10 < cards, "{cards_without_number} of {cards}");
    assert!(devices_without_id > 0 && devices_without_id * 4 < devices, "{devices_without_id} of {devices}");
    assert!(reports_with_repeated_phone > orders.len() / 10, "{reports_with_repeated_phone}");

    let statuses: Vec<Value> = events.iter().filter(|e| e.stream == STATUS_STREAM).filter_map(json).collect();
    assert!(statuses.len() > 300, "{}", statuses.len());
    assert!(statuses.iter().any(|s| s["status"] == "PAID") && statuses.iter().any(|s| s["status"] == "OVERDUE"));
}

#[test]
fn users_come_back_with_evolving_reports() {
    let events = Jinpan.generate(&GenOptions { malformed: 0.0, ..options(5000) });
    let mut by_user: BTreeMap<i64, HashSet<String>> = BTreeMap::new();
    for o in events.iter().filter(|e| e.stream == ORDER_STREAM).filter_map(json) {
        by_user.entry(o["user_id"].as_i64().unwrap()).or_default().insert(o["order_id"].as_str().unwrap().to_owned());
    }
    let returning = by_user.values().filter(|orders| orders.len() > 1).count();
    assert!(returning * 10 > by_user.len(), "{returning} of {} users ordered again", by_user.len());
}

#[test]
fn orders_of_record_are_the_latest_versions() {
    let opts = GenOptions { late: 0.05, ..options(4000) };
    let record = Jinpan.orders_of_record(&opts);
    let ids: Vec<&str> = record.iter().map(|o| o["order_id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "one per order, in order-id order");
    // Every order message is a version of a recorded order, never newer.
    let by_id: BTreeMap<&str, &Value> = ids.iter().copied().zip(&record).collect();
    let mut matched = 0;
    for o in Jinpan.generate(&opts).iter().filter(|e| e.stream == ORDER_STREAM).filter_map(json) {
        let latest = by_id[o["order_id"].as_str().unwrap()];
        assert!(o["gmt_modified"].as_i64() <= latest["gmt_modified"].as_i64());
        assert_eq!(o["credit_report"], latest["credit_report"], "versions share the report");
        if o == *latest {
            matched += 1;
        }
    }
    assert!(matched * 10 > record.len() * 9, "{matched} of {} latest versions were sent", record.len());
}

#[test]
fn dates_are_china_standard_time() {
    // 2024-03-14 16:00 UTC is 2024-03-15 00:00 in UTC+8.
    assert_eq!(civil_date(1_710_432_000_000), (2024, 3, 15));
    assert_eq!(civil_date(1_710_431_999_999), (2024, 3, 14));
    assert_eq!(civil_date(951_782_400_000), (2000, 2, 29));
}
