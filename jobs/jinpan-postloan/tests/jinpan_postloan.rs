//! Expected rows are worked out by hand from the case inputs.

use jinpan_model::samples::T0;
use jinpan_postloan::cases::DAY;
use jinpan_postloan::tables::REPAYMENT;
use jinpan_postloan::{JinpanPostloan, cases};
use serde_json::{Value, json};

fn row(order_id: &str, period: i64, status: &str, amount: Value, updated_at: i64) -> Value {
    let paid = !amount.is_null();
    json!({
        "order_id": order_id, "period": period, "repay_status": status, "repaid_amount": amount,
        "repaid_time": if paid { Value::from(updated_at) } else { Value::Null }, "status_updated_at": updated_at,
    })
}

#[test]
fn statuses_into_repayment() {
    let case = cases().into_iter().next().unwrap();
    let (t, out) = case.run_native::<JinpanPostloan>().unwrap();
    let order = "JP20240315000001";
    assert_eq!(
        t.upserted(REPAYMENT, &["order_id", "period"]).into_values().collect::<Vec<_>>(),
        vec![
            row(order, 1, "PAID", json!("1060.0"), T0 + 31 * DAY),
            row(order, 2, "PAID", json!("1060.00"), T0 + 62 * DAY),
            row(order, 3, "OVERDUE", Value::Null, T0 + 92 * DAY),
            row("JP20240315000007", 1, "WITHDRAWN", Value::Null, T0 + 2 * DAY),
        ]
    );
    assert_eq!(t.metric("statuses_older"), Some(1.0));
    let reasons: Vec<&str> = out.dead_letters.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(
        reasons[0],
        "repayment status `LOST` of order JP20240315000001 is none of PENDING, PAID, OVERDUE, WITHDRAWN"
    );
    assert_eq!(reasons[1], "period 0 of order JP20240315000001 is not an installment");
    assert!(reasons[2].contains("`about 1060` is not a decimal amount"), "{}", reasons[2]);
}
