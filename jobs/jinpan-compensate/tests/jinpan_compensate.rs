//! Expected rows are worked out by hand from the case inputs.

use jinpan_compensate::cases::{MISSING, MISSING_USER, STALE, SYNCED};
use jinpan_compensate::tables::{self, TABLES};
use jinpan_compensate::{JinpanCompensate, cases};
use serde_json::Value;

fn keys(rows: &[Value], columns: &[&str]) -> Vec<String> {
    rows.iter()
        .map(|r| columns.iter().map(|c| r[*c].to_string().replace('"', "")).collect::<Vec<_>>().join("|"))
        .collect()
}

#[test]
fn backfill_missing_and_stale_orders() {
    let case = cases().into_iter().next().unwrap();
    let (t, out) = case.run_native::<JinpanCompensate>().unwrap();

    let orders = t.emitted(tables::ORDER);
    assert_eq!(
        keys(&orders, &["order_id", "status"]),
        [format!("{MISSING}|REJECTED"), format!("{MISSING_USER}|APPROVED"), format!("{STALE}|APPROVED")]
    );
    assert!(!orders.iter().any(|o| o["order_id"] == SYNCED), "the synced order is left alone");

    // User 10000001's rows are newer in the tables (the synced approval)
    // than in the missing rejected order, except the card only it has.
    let identities = t.emitted(tables::IDENTITY);
    assert_eq!(
        keys(&identities, &["user_id", "name", "order_id"]),
        [format!("10000002|王芳|{MISSING_USER}"), format!("10000003|张伟|{STALE}")]
    );
    assert_eq!(
        keys(&t.emitted(tables::BANK_CARD), &["user_id", "card_no", "order_id"]),
        [
            format!("10000001|6217001234567890125|{MISSING}"),
            format!("10000002|6222021234567890128|{MISSING_USER}"),
            format!("10000003|6222021234567890128|{STALE}"),
        ]
    );
    // A repayment row that post-loan inserted first gets its plan columns.
    assert_eq!(
        keys(&t.emitted(tables::REPAYMENT), &["order_id", "period"]),
        [
            format!("{MISSING_USER}|1"),
            format!("{MISSING_USER}|2"),
            format!("{MISSING_USER}|3"),
            format!("{STALE}|1"),
            format!("{STALE}|2"),
            format!("{STALE}|3"),
        ]
    );
    // The two orders of new keys wrote every table; user 10000001 nothing
    // but the order and the card.
    for table in TABLES {
        let users: Vec<i64> = t.emitted(table.name).iter().map(|r| r["user_id"].as_i64().unwrap()).collect();
        assert!(users.contains(&10_000_002) && users.contains(&10_000_003), "{}: {users:?}", table.name);
        let first_user = users.iter().filter(|u| **u == 10_000_001).count();
        let expected = usize::from(table.name == tables::ORDER || table.name == tables::BANK_CARD);
        assert_eq!(first_user, expected, "{}", table.name);
    }

    assert_eq!(out.dead_letters.len(), 1, "{:?}", out.dead_letters);
    assert_eq!(out.dead_letters[0].1, "the row's payload is NULL");
    assert_eq!(t.metric("orders_in_sync"), Some(1.0));
    assert_eq!(t.metric("orders_missing"), Some(2.0));
    assert_eq!(t.metric("orders_stale"), Some(1.0));
    let logs: Vec<String> = t.logs().into_iter().map(|(_, line)| line).collect();
    assert!(logs.iter().any(|l| l.contains(MISSING) && l.contains("missing")), "{logs:?}");
    assert!(logs.iter().any(|l| l.contains(STALE) && l.contains("older")), "{logs:?}");
}

#[test]
fn running_twice_writes_nothing_new() {
    // The second run sees its own rows (in state) as the tables' versions.
    let case = cases().into_iter().next().unwrap();
    let mut t = case.tester::<JinpanCompensate>().unwrap();
    for batch in &case.batches {
        t.send_batch(batch.clone()).unwrap();
    }
    let first = t.emitted_rows().len();
    t.clear_emitted();
    for batch in &case.batches {
        t.send_batch(batch.clone()).unwrap();
    }
    assert_eq!(first, 2 + 16 + 16, "the order and new card of one, all rows of two");
    assert_eq!(t.emitted_rows().len(), 0);
}
