//! The sample data of `job.toml` gives the tables an independent batch
//! reading of the seed's definitions gives (worked out outside the job, in
//! Python with exact decimals, over the same files), whatever order the
//! three feeds are read in.

use lending_report::{APPROVAL, DISBURSEMENT, FUNNEL, LOAN_SOURCE, LendingReport, REPAY_SOURCE, USER_SOURCE, VINTAGE};
use serde_json::{Value, json};
use sluice_sdk::testing::{JobTester, TestRecord};

fn feed(file: &str, source: u32) -> Vec<TestRecord> {
    let path = format!("{}/sample/{file}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(|l| TestRecord { value: l.as_bytes().to_vec(), source, ..Default::default() }).collect()
}

/// Runs the job over the three files, fed in `order` (source indexes).
fn run(order: [u32; 3]) -> JobTester<LendingReport> {
    // the parameters of job.toml are the defaults
    let mut t = JobTester::<LendingReport>::builder()
        .source(USER_SOURCE)
        .source(LOAN_SOURCE)
        .source(REPAY_SOURCE)
        .sink(FUNNEL)
        .sink(APPROVAL)
        .sink(DISBURSEMENT)
        .sink(VINTAGE)
        .open()
        .unwrap();
    for source in order {
        let file = [USER_SOURCE, LOAN_SOURCE, REPAY_SOURCE][source as usize];
        for chunk in feed(file, source).chunks(50) {
            t.send_batch(chunk.to_vec()).unwrap();
        }
    }
    assert!(t.dead_letters().is_empty());
    t
}

fn table(t: &JobTester<LendingReport>, sink: &str, keys: &[&str]) -> Vec<Value> {
    t.upserted(sink, keys).into_values().collect()
}

/// Column sums of a table.
fn sums(rows: &[Value], columns: &[&str]) -> Vec<f64> {
    columns.iter().map(|c| rows.iter().map(|r| r[*c].as_f64().unwrap()).sum::<f64>()).collect()
}

fn vintage(month: &str, mob: i64, loans: i64, o1: i64, o30: i64, r1: f64, r30: f64) -> Value {
    json!({ "lend_month": month, "mob": mob, "loans": loans, "overdue_1": o1, "overdue_30": o30,
            "overdue_1_rate": r1, "overdue_30_rate": r30 })
}

#[test]
fn sample_data() {
    let t = run([0, 1, 2]);
    let funnel = table(&t, FUNNEL, &["reg_date", "channel"]);
    assert_eq!(funnel.len(), 126);
    assert_eq!(sums(&funnel, &["registered", "applied", "approved", "disbursed"]), [138.0, 87.0, 44.0, 38.0]);
    assert_eq!(
        funnel.iter().find(|r| r["reg_date"] == "2024-05-21" && r["channel"] == "telesales"),
        Some(&json!({ "reg_date": "2024-05-21", "channel": "telesales", "registered": 3, "applied": 3, "approved": 1,
                      "disbursed": 1, "pass_rate": 0.3333, "conversion_rate": 0.3333 }))
    );
    let approval = table(&t, APPROVAL, &["apply_date", "prod_type"]);
    assert_eq!(approval.len(), 91);
    assert_eq!(sums(&approval, &["applied", "auditing", "rejected", "approved"]), [111.0, 0.0, 57.0, 54.0]);
    let disbursement = table(&t, DISBURSEMENT, &["lend_date", "prod_type"]);
    assert_eq!(disbursement.len(), 43);
    assert_eq!(sums(&disbursement, &["loans", "first_loans", "amount"]), [45.0, 39.0, 258_900.0]);
    assert_eq!(
        table(&t, VINTAGE, &["lend_month", "mob"]),
        vec![
            vintage("2024-03", 0, 3, 1, 0, 0.3333, 0.0),
            vintage("2024-03", 1, 3, 1, 0, 0.3333, 0.0),
            vintage("2024-03", 2, 3, 1, 0, 0.3333, 0.0),
            vintage("2024-03", 3, 3, 1, 0, 0.3333, 0.0),
            vintage("2024-03", 4, 3, 1, 0, 0.3333, 0.0),
            vintage("2024-03", 5, 3, 1, 0, 0.3333, 0.0),
            vintage("2024-03", 6, 3, 1, 0, 0.3333, 0.0),
            vintage("2024-04", 0, 11, 2, 0, 0.1818, 0.0),
            vintage("2024-04", 1, 11, 5, 1, 0.4545, 0.0909),
            vintage("2024-04", 2, 11, 5, 2, 0.4545, 0.1818),
            vintage("2024-04", 3, 11, 5, 2, 0.4545, 0.1818),
            vintage("2024-04", 4, 11, 5, 2, 0.4545, 0.1818),
            vintage("2024-04", 5, 11, 5, 2, 0.4545, 0.1818),
            vintage("2024-05", 0, 15, 1, 0, 0.0667, 0.0),
            vintage("2024-05", 1, 15, 2, 0, 0.1333, 0.0),
            vintage("2024-05", 2, 15, 2, 0, 0.1333, 0.0),
            vintage("2024-05", 3, 15, 3, 0, 0.2, 0.0),
            vintage("2024-05", 4, 15, 3, 0, 0.2, 0.0),
            vintage("2024-06", 0, 9, 1, 0, 0.1111, 0.0),
            vintage("2024-06", 1, 9, 1, 0, 0.1111, 0.0),
            vintage("2024-06", 2, 9, 2, 0, 0.2222, 0.0),
            vintage("2024-06", 3, 9, 2, 0, 0.2222, 0.0),
            vintage("2024-07", 0, 5, 0, 0, 0.0, 0.0),
            vintage("2024-07", 1, 5, 0, 0, 0.0, 0.0),
            vintage("2024-07", 2, 5, 0, 0, 0.0, 0.0),
            vintage("2024-08", 0, 2, 0, 0, 0.0, 0.0),
            vintage("2024-08", 1, 2, 0, 0, 0.0, 0.0),
        ]
    );
}

#[test]
fn the_feeds_in_another_order_give_the_same_tables() {
    let (a, b) = (run([0, 1, 2]), run([2, 1, 0]));
    for (sink, keys) in [
        (FUNNEL, &["reg_date", "channel"][..]),
        (APPROVAL, &["apply_date", "prod_type"]),
        (DISBURSEMENT, &["lend_date", "prod_type"]),
        (VINTAGE, &["lend_month", "mob"]),
    ] {
        assert_eq!(table(&a, sink, keys), table(&b, sink, keys), "{sink}");
    }
}
