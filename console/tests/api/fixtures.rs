//! Test data of the hourly-premium job: insurance orders, the specs it is
//! deployed with, the `hs_order` table those orders must give, and reading
//! that table back from the SQLite warehouse.

use std::collections::BTreeMap;

use sqlx::Row;

/// 2024-03-15 00:00 in UTC+8: order times are old, so deployments set
/// the job's `since_ms` parameter to 0 (its default keeps only today's).
pub const DAY_START_MS: i64 = 1_710_432_000_000;

/// `hs_order` as in `jobs/hourly-premium/kafka.toml`.
const SINK: &str = r#"
[sinks.hs_order]
kind = "sql"
connection = "warehouse"
table = "hs_order"
primary_key = ["biz_date"]
create_table = true
columns = { biz_date = "varchar(10)", total_premium = "decimal(18,2)", policy_cnt = "bigint", policy_holder_cnt = "bigint" }
"#;

/// Reads `topic` of the `events` connection into `hs_order`.
pub fn kafka_spec(topic: &str) -> String {
    format!(
        r#"
[parameters]
utc_offset_minutes = "480"

[sources.user_order]
kind = "kafka"
connection = "events"
topic = "{topic}"
start = "earliest"
event_time_field = "gmt_modified"

[batch]
max_records = 50
{SINK}"#
    )
}

/// Reads a JSON-lines file (bounded) of the project's file area into
/// `hs_order`.
pub fn file_spec(path: &std::path::Path) -> String {
    let path = std::path::Path::new(path.file_name().expect("a file"));
    format!(
        r#"
[parameters]
utc_offset_minutes = "480"

[sources.user_order]
kind = "file"
path = "{}"
event_time_field = "gmt_modified"
{SINK}"#,
        path.display()
    )
}

/// Generated orders (as `jobs/hourly-premium/live.toml`), `count` of them
/// or unbounded, into `hs_order`.
pub fn datagen_spec(count: Option<u64>) -> String {
    let count = count.map(|c| format!("count = {c}\n")).unwrap_or_default();
    format!(
        r#"
[parameters]
utc_offset_minutes = "480"

[sources.user_order]
kind = "datagen"
rate = 200
keys = 50
seed = 42
{count}
[sources.user_order.fields]
id = {{ gen = "key" }}
order_no = {{ gen = "sequence", prefix = "PO" }}
order_type = {{ gen = "choice", values = [1, 2, 3] }}
customer_tel = {{ gen = "key_text", prefix = "1380000" }}
account_payble = {{ gen = "float", min = 100.0, max = 5000.0 }}
gmt_modified = {{ gen = "event_time" }}
{SINK}"#
    )
}

/// One order.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: u64,
    pub order_no: String,
    pub tel: String,
    pub gmt_modified: i64,
    /// In cents, so sums are exact.
    pub cents: i64,
}

impl Order {
    pub fn json(&self) -> String {
        format!(
            r#"{{"id":{},"order_no":"{}","customer_tel":"{}","gmt_modified":{},"account_payble":{}.{:02}}}"#,
            self.id,
            self.order_no,
            self.tel,
            self.gmt_modified,
            self.cents / 100,
            self.cents % 100
        )
    }
}

/// Orders `from..to` of one endless, deterministic stream: `users` users
/// ordering again and again, a minute apart, so a user's later order moves
/// their premium to a later hour (retractions included).
pub fn orders(from: usize, to: usize, users: u64) -> Vec<Order> {
    (from..to)
        .map(|i| {
            let id = 1 + (i as u64 * 7919) % users;
            Order {
                id,
                order_no: format!("PO{i:06}"),
                tel: format!("138{id:08}"),
                gmt_modified: DAY_START_MS + i as i64 * 60_000,
                cents: 10_000 + (i as i64 * 137) % 50_000,
            }
        })
        .collect()
}

/// A row of `hs_order`: total premium (cents), policy count, holder count.
pub type HourRow = (i64, i64, i64);

/// What `hs_order` holds after the job read `orders` in this order:
/// each user's last order, summed by hour (UTC+8).
pub fn expected_hs_order(orders: &[Order]) -> BTreeMap<String, HourRow> {
    let mut last: BTreeMap<u64, &Order> = BTreeMap::new();
    for o in orders {
        last.insert(o.id, o);
    }
    let mut hours: BTreeMap<String, HourRow> = BTreeMap::new();
    for o in last.values() {
        let local = o.gmt_modified + 8 * 3_600_000;
        let hour = (local - (DAY_START_MS + 8 * 3_600_000)) / 3_600_000;
        let row = hours.entry(format!("20240315{hour:02}")).or_default();
        row.0 += o.cents;
        row.1 += 1;
        row.2 += 1;
    }
    hours
}

/// `hs_order` as the SQLite warehouse holds it now (empty when the table
/// does not exist).
pub async fn hs_order(url: &str) -> BTreeMap<String, HourRow> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(url).await.expect("warehouse");
    let exists = sqlx::query("select name from sqlite_master where type = 'table' and name = 'hs_order'")
        .fetch_optional(&pool)
        .await
        .expect("sqlite_master");
    let mut out = BTreeMap::new();
    if exists.is_some() {
        let rows = sqlx::query(
            "select biz_date, cast(round(total_premium * 100) as integer) as cents, policy_cnt, policy_holder_cnt from hs_order",
        )
        .fetch_all(&pool)
        .await
        .expect("select hs_order");
        for r in rows {
            out.insert(r.get("biz_date"), (r.get("cents"), r.get("policy_cnt"), r.get("policy_holder_cnt")));
        }
    }
    pool.close().await;
    out
}
