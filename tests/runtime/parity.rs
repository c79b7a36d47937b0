//! Every case of every example job gives the same rows, dead letters and
//! dimension tables natively (sluice_sdk::testing) and as WASM in the runtime.

use sluice_sdk::Job;
use sluice_sdk::testing::Case;
use sluice_tests::{Outcome, run_case};

async fn assert_same<J: Job>(component: &str, cases: Vec<Case>) {
    assert!(!cases.is_empty(), "{component} has no cases");
    for case in cases {
        let (_, native) =
            case.run_native::<J>().unwrap_or_else(|e| panic!("{component}/{}: native run failed: {e}", case.name));
        let native = Outcome::native(&case, &native);
        let wasm = run_case(component, &case)
            .await
            .unwrap_or_else(|e| panic!("{component}/{}: wasm run failed: {e:#}", case.name));
        assert_eq!(wasm, native, "{component}/{}: WASM and native outputs differ", case.name);
        let rows: usize = native.rows.values().map(Vec::len).sum();
        assert!(
            rows + native.dead_letters.len() > 0,
            "{component}/{}: the case produces nothing to compare",
            case.name
        );
    }
}

#[tokio::test]
async fn hourly_premium_matches_native() {
    assert_same::<hourly_premium::HourlyPremium>("hourly_premium", hourly_premium::cases()).await;
}

#[tokio::test]
async fn premium_drop_matches_native() {
    assert_same::<premium_drop::PremiumDrop>("premium_drop", premium_drop::cases()).await;
}

#[tokio::test]
async fn last_page_matches_native() {
    assert_same::<last_page::LastPage>("last_page", last_page::cases()).await;
}

#[tokio::test]
async fn jinpan_sync_matches_native() {
    assert_same::<jinpan_sync::JinpanSync>("jinpan_sync", jinpan_sync::cases()).await;
}

#[tokio::test]
async fn jinpan_compensate_matches_native() {
    assert_same::<jinpan_compensate::JinpanCompensate>("jinpan_compensate", jinpan_compensate::cases()).await;
}

#[tokio::test]
async fn jinpan_postloan_matches_native() {
    assert_same::<jinpan_postloan::JinpanPostloan>("jinpan_postloan", jinpan_postloan::cases()).await;
}

#[tokio::test]
async fn large_tx_alert_matches_native() {
    assert_same::<large_tx_alert::LargeTxAlert>("large_tx_alert", large_tx_alert::cases()).await;
}

#[tokio::test]
async fn lending_report_matches_native() {
    assert_same::<lending_report::LendingReport>("lending_report", lending_report::cases()).await;
}

#[tokio::test]
async fn event_time_windows_match_native() {
    assert_same::<guest_windows::MinuteTotals>("guest_windows", guest_windows::cases()).await;
}

#[tokio::test]
async fn forward_matches_native() {
    assert_same::<forward::Forward>("forward", forward::cases()).await;
}
