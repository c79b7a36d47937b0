//! Expected rows are worked out by hand from the case inputs.

use premium_drop::{DIMENSION, PremiumDrop, SINK, SOURCE, cases};
use serde_json::{Value, json};
use sluice_sdk::RowOp;
use sluice_sdk::testing::{Case, JobTester};

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case `{name}`"))
}

fn alert(id: i64, raw_info: &str, now_info: &str, raw_premium: &str, now_premium: &str) -> Value {
    json!({ "id": id, "raw_info": raw_info, "now_info": now_info, "raw_premium": raw_premium, "now_premium": now_premium })
}

fn raw(id: i64, raw_premium: &str, raw_info: &str) -> Value {
    json!({ "id": id, "raw_premium": raw_premium, "raw_info": raw_info })
}

#[test]
fn there_are_two_cases() {
    let names: Vec<_> = cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["drops_and_dimension_updates", "saved_event_filter"]);
}

#[test]
fn drops_and_dimension_updates() {
    let (t, out) = case("drops_and_dimension_updates").run_native::<PremiumDrop>().unwrap();
    assert!(t.emitted_rows().iter().all(|r| r.op == RowOp::Upsert && r.sink == SINK));
    assert_eq!(
        t.emitted(SINK),
        vec![
            alert(2, "plan B", "plan B lite", "500", "400"),          // 400 < 425
            alert(1, "plan A silver", "plan A bronze", "900", "760"), // 760 < 765: compared with the update
            alert(2, "plan B lite", "plan B mini", "400", "339.99"),  // 339.99 < 340
        ]
    );
    assert_eq!(
        t.upserted(SINK, &["id"]).into_values().collect::<Vec<_>>(),
        vec![
            alert(1, "plan A silver", "plan A bronze", "900", "760"),
            alert(2, "plan B lite", "plan B mini", "400", "339.99")
        ]
    );

    let dead: Vec<_> = out.dead_letters.iter().map(|(p, reason)| (p.offset, reason.as_str())).collect();
    assert_eq!(dead.len(), 5, "{dead:?}");
    assert_eq!(dead[0], (5, "now_premium `n/a` is not a number"));
    assert_eq!(dead[1].0, 6);
    assert!(dead[1].1.contains("EOF while parsing"), "{}", dead[1].1);
    assert_eq!(dead[2], (7, "raw_premium `abc` of raw_info row 4 is not a number"));
    assert_eq!(dead[3], (8, "now_premium `xyz` is not a number"));
    assert_eq!(dead[4].0, 9);
    assert!(dead[4].1.contains("missing field `now_premium`"), "{}", dead[4].1);

    // every joined, valid record replaced its user's row; nothing else did
    assert_eq!(
        out.dimensions,
        vec![(
            DIMENSION.to_string(),
            vec![
                ("1".to_string(), raw(1, "760", "plan A bronze")),
                ("2".to_string(), raw(2, "339.99", "plan B mini")),
                ("3".to_string(), raw(3, "85", "plan C basic")),
                ("4".to_string(), raw(4, "abc", "broken row")),
            ]
        )]
    );
    assert_eq!(t.dimension_row(DIMENSION, &99i64), None);
}

#[test]
fn saved_event_filter() {
    let (t, out) = case("saved_event_filter").run_native::<PremiumDrop>().unwrap();
    assert_eq!(
        t.emitted(SINK),
        vec![
            alert(8, "solo plan", "solo plan, minimal", "100", "69.99"), // 69.99 < 70
            alert(7, "family plan, smaller", "family plan, cut", "150", "104.99"), // 104.99 < 105
        ]
    );
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(t.dimension_row(DIMENSION, &7i64), Some(raw(7, "104.99", "family plan, cut")));
    assert_eq!(t.dimension_row(DIMENSION, &8i64), Some(raw(8, "70", "solo plan, back up")));
}

fn tester(params: &[(&str, &str)], rows: Vec<(i64, Value)>) -> JobTester<PremiumDrop> {
    let mut b = JobTester::builder().source(SOURCE).sink(SINK).dimension(DIMENSION, rows);
    for (k, v) in params {
        b = b.param(k, v);
    }
    b.open().unwrap()
}

fn send(t: &mut JobTester<PremiumDrop>, id: i64, now_premium: &str) {
    t.send_json(json!({ "id": id, "event": "saved", "now_premium": now_premium, "now_info": "now" })).unwrap();
}

#[test]
fn fifteen_percent_boundary() {
    let rows = (1..=3).map(|id| (id, raw(id, "100", "before"))).collect();
    let mut t = tester(&[], rows);
    send(&mut t, 1, "85"); // exactly 15% down: not more than 15%
    send(&mut t, 2, "84.99");
    send(&mut t, 3, "85.01");
    let ids: Vec<_> = t.emitted(SINK).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![json!(2)]);
}

#[test]
fn zero_ratio_alerts_on_any_fall() {
    let mut t = tester(&[("drop_ratio", "0")], vec![(1, raw(1, "100", "before"))]);
    send(&mut t, 1, "100"); // unchanged
    send(&mut t, 1, "99.99");
    send(&mut t, 1, "1e2"); // scientific notation is a number too: a rise
    assert_eq!(t.emitted(SINK), vec![alert(1, "now", "now", "100", "99.99")]);
    assert_eq!(t.dimension_row(DIMENSION, &1i64), Some(raw(1, "1e2", "now")));
}

#[test]
fn unwatched_users_change_nothing() {
    let mut t = tester(&[], vec![(1, raw(1, "100", "before"))]);
    send(&mut t, 2, "1");
    assert!(t.emitted_rows().is_empty());
    assert_eq!(t.dimension_row(DIMENSION, &2i64), None);
    assert_eq!(t.dimension_row(DIMENSION, &1i64), Some(raw(1, "100", "before")));
}

#[test]
fn non_finite_premiums_are_rejected() {
    let mut t = tester(&[], vec![(1, raw(1, "100", "before"))]);
    send(&mut t, 1, "NaN");
    send(&mut t, 1, "inf");
    send(&mut t, 1, "");
    let reasons: Vec<_> = t.dead_letters().into_iter().map(|d| d.reason).collect();
    assert_eq!(
        reasons,
        ["now_premium `NaN` is not a number", "now_premium `inf` is not a number", "now_premium `` is not a number"]
    );
    assert_eq!(t.dimension_row(DIMENSION, &1i64), Some(raw(1, "100", "before")));
}

#[test]
fn bad_drop_ratio_fails_open() {
    for bad in ["1.5", "-0.1", "fifteen", "NaN"] {
        let err = JobTester::<PremiumDrop>::builder()
            .source(SOURCE)
            .sink(SINK)
            .dimension(DIMENSION, Vec::<(i64, Value)>::new())
            .param("drop_ratio", bad)
            .open()
            .err();
        assert!(err.as_deref().is_some_and(|e| e.contains("drop_ratio")), "{bad}: {err:?}");
    }
}
