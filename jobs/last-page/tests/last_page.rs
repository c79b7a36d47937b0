//! Expected rows are worked out by hand from the case inputs.

use last_page::{LastPage, SINK, SOURCE, cases};
use serde_json::{Value, json};
use sluice_sdk::RowOp;
use sluice_sdk::testing::{Case, JobTester};

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case `{name}`"))
}

fn row(account_id: &str, device_id: Value, bury_point_type: Value, page_name: Value) -> Value {
    json!({ "account_id": account_id, "device_id": device_id, "bury_point_type": bury_point_type, "page_name": page_name })
}

fn visit(account_id: &str, device_id: &str, bury_point_type: &str, page_name: &str) -> Value {
    row(account_id, json!(device_id), json!(bury_point_type), json!(page_name))
}

#[test]
fn there_are_two_cases() {
    let names: Vec<_> = cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["last_page_per_account_device", "awkward_keys"]);
}

#[test]
fn last_page_per_account_device() {
    let (t, out) = case("last_page_per_account_device").run_native::<LastPage>().unwrap();
    assert!(t.emitted_rows().iter().all(|r| r.op == RowOp::Upsert));
    assert_eq!(
        t.emitted(SINK),
        vec![
            visit("u1", "d1", "banner", "home"),
            visit("u1", "d2", "page", "car-insurance"),
            visit("u2", "d1", "page", "life-insurance"),
            visit("u1", "d1", "click", "home"),
            visit("u1", "d1", "page", "checkout"),
            row("u2", Value::Null, json!("page"), json!("claims")),
        ]
    );
    // The table by the group key...
    assert_eq!(
        t.upserted(SINK, &["account_id", "device_id"]).into_values().collect::<Vec<_>>(),
        vec![
            visit("u1", "d1", "page", "checkout"),
            visit("u1", "d2", "page", "car-insurance"),
            visit("u2", "d1", "page", "life-insurance"),
            row("u2", Value::Null, json!("page"), json!("claims")),
        ]
    );
    // ...and by the seed's RDS primary key (account_id alone): the device
    // that changed last wins.
    assert_eq!(
        t.upserted(SINK, &["account_id"]).into_values().collect::<Vec<_>>(),
        vec![visit("u1", "d1", "page", "checkout"), row("u2", Value::Null, json!("page"), json!("claims"))]
    );

    let dead: Vec<_> = out.dead_letters.iter().map(|(p, reason)| (p.offset, reason.as_str())).collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0, 5);
    assert!(dead[0].1.contains("EOF while parsing"), "{}", dead[0].1);
    assert_eq!(dead[1].0, 9);
    assert!(dead[1].1.contains("invalid type: integer `42`, expected a string"), "{}", dead[1].1);
}

#[test]
fn awkward_keys() {
    let (t, out) = case("awkward_keys").run_native::<LastPage>().unwrap();
    assert_eq!(
        t.emitted(SINK),
        vec![
            visit("a|b", "c", "page", "p1"),
            visit("a", "b|c", "page", "p1"),
            visit("a", "", "page", "p2"),
            row("a", Value::Null, json!("page"), json!("p2")),
            row("z", json!("d"), Value::Null, Value::Null),
            row("z", json!("d"), Value::Null, json!("p3")),
        ]
    );
    assert!(out.dead_letters.is_empty());
}

#[test]
fn only_changes_are_emitted() {
    let mut t = JobTester::<LastPage>::builder().source(SOURCE).sink(SINK).open().unwrap();
    for _ in 0..3 {
        t.send_json(json!({ "account_id": "u", "device_id": "d", "bury_point_type": "page", "page_name": "home" }))
            .unwrap();
    }
    // all-null values keep everything
    t.send_json(json!({ "account_id": "u", "device_id": "d", "bury_point_type": null })).unwrap();
    t.send_json(json!({ "account_id": "u", "device_id": "d", "bury_point_type": "page", "page_name": "quote" }))
        .unwrap();
    t.send_json(json!({ "account_id": "u", "device_id": "d", "bury_point_type": "page", "page_name": "home" }))
        .unwrap();
    let pages: Vec<_> = t.emitted(SINK).iter().map(|r| r["page_name"].clone()).collect();
    assert_eq!(pages, [json!("home"), json!("quote"), json!("home")]);
}
