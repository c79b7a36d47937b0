//! Large-transaction alerts: the real-time large-movement monitoring of
//! seed 003 (内蒙农信: "监控客户实时大额动账交易，让网点客户经理及时察觉客户
//! 大额资金动向 … 提醒客户避免遭受网络、电信诈骗").
//!
//! The seed has no SQL; in Flink SQL the job would be a lookup join plus an
//! OVER window (see docs/jobs/large-tx.md). For each account movement:
//!
//! 1. **large_amount** — the amount (either direction) is at or above the
//!    threshold of the customer's segment. The customer's segment comes from
//!    the `customer` dimension (customer → segment, manager), the threshold
//!    from the `segment_threshold` dimension (segment → threshold); a
//!    customer or segment the stores do not know gets `default_threshold`.
//! 2. **sudden_outflow** — an outflow of at least `outflow_min_amount` that
//!    is at least `outflow_multiple` times the average of the customer's
//!    last `outflow_window` outflows, once there are `outflow_min_history`
//!    of them. The history is state (per customer, TTL `history_days`).
//!
//! Every alert goes to two sinks: `alert_topic` (Kafka, keyed by alert id)
//! and `alert_table` (SQL, upserted by `alert_id`).
//!
//! Exactness and replay:
//! - Amounts are integer cents (see `money`); the average test is
//!   `amount × n ≥ multiple × sum`, with no division, and the reported
//!   average is rounded half up to the cent.
//! - `alert_id` is `<txn_id>:<rule>`, so an alert is the same row however
//!   often its movement is seen; movements are also de-duplicated by
//!   `txn_id` (state with TTL `dedup_hours`), so a duplicate neither alerts
//!   twice nor enters the history twice.
//! - "Recent" is arrival order, which the feed keeps per customer (one Kafka
//!   partition per customer key). A late movement (old `txn_time`) is judged
//!   when it arrives, against the history so far, and then joins it: an
//!   alert is about money moving now, so it is never held back or retracted.
//!
//! Sources: the movements (any source name), and optionally `customer` and
//! `segment_threshold`: change feeds of the reference data, whose rows are
//! upserted into the dimension of the same name (a movement of a customer
//! the store does not know yet gets the default threshold).

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_sdk::prelude::*;

pub mod cases;
pub mod money;
pub use cases::cases;

/// Dimensions, and the optional sources that maintain them.
pub const CUSTOMERS: &str = "customer";
pub const THRESHOLDS: &str = "segment_threshold";
pub const TXN_SOURCE: &str = "account_txn";
pub const ALERT_TOPIC: &str = "alert_topic";
pub const ALERT_TABLE: &str = "alert_table";

pub const LARGE_AMOUNT: &str = "large_amount";
pub const SUDDEN_OUTFLOW: &str = "sudden_outflow";

/// An account movement (动账), as the core system's feed carries it. Its
/// text borrows from the record where it has no escapes (`json_ref`): a
/// movement rarely alerts, so most are read and dropped.
#[derive(Deserialize)]
struct Movement<'a> {
    #[serde(borrow)]
    txn_id: Cow<'a, str>,
    #[serde(borrow)]
    account_no: Cow<'a, str>,
    #[serde(borrow)]
    customer_id: Cow<'a, str>,
    /// `in` or `out`.
    #[serde(borrow)]
    direction: Cow<'a, str>,
    /// Yuan, DECIMAL(18,2) text or a number.
    #[serde(borrow)]
    amount: Amount<'a>,
    #[serde(borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    branch_id: Option<Cow<'a, str>>,
    /// ms since the epoch.
    txn_time: i64,
}

/// An amount as it came: decimal text, or a JSON number (read as the text
/// serde_json writes for it, as `money::cents` reads a `Value`).
enum Amount<'a> {
    Text(Cow<'a, str>),
    Number(serde_json::Number),
    Other(Value),
}

impl Amount<'_> {
    fn cents(&self) -> Option<i64> {
        match self {
            Amount::Text(text) => money::text_cents(text),
            Amount::Number(n) => money::number_cents(n),
            Amount::Other(_) => None,
        }
    }
}

impl std::fmt::Display for Amount<'_> {
    /// As JSON, as the reasons of rejected movements always showed it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Text(text) => write!(f, "{}", Value::String(text.to_string())),
            Amount::Number(n) => write!(f, "{n}"),
            Amount::Other(value) => write!(f, "{value}"),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Amount<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Amount<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an amount")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(Amount::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Amount::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(Amount::Number(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(Amount::Number(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Self::Value, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Amount::Other(Value::Null), Amount::Number))
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(Amount::Other(Value::Null))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Self::Value, E> {
                Ok(Amount::Other(Value::Bool(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> std::result::Result<Self::Value, A::Error> {
                Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Amount::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
                Value::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Amount::Other)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// What the job reads of a `customer` dimension row (other columns pass).
#[derive(Deserialize)]
struct CustomerRow {
    segment: Option<String>,
    manager_id: Option<String>,
}

/// What the job reads of a `segment_threshold` row. A Redis hash gives the
/// threshold as text, a SQL table as a number: both are read exactly.
#[derive(Deserialize)]
struct SegmentRow {
    threshold: Value,
}

/// A row of `alert_topic` and `alert_table`.
#[derive(Serialize, Debug, PartialEq)]
pub struct Alert {
    pub alert_id: String,
    pub rule: &'static str,
    pub txn_id: String,
    pub customer_id: String,
    pub account_no: String,
    pub segment: Option<String>,
    pub manager_id: Option<String>,
    pub branch_id: Option<String>,
    pub direction: String,
    pub channel: Option<String>,
    /// Yuan.
    pub amount: f64,
    /// The threshold (large_amount) or the recent average outflow
    /// (sudden_outflow) it was compared with, in yuan.
    pub reference_amount: f64,
    pub txn_time: i64,
}

/// What a source carries.
#[derive(Clone, Copy, PartialEq)]
enum Feed {
    Movements,
    Customers,
    Thresholds,
}

pub struct LargeTxAlert {
    feeds: Vec<Feed>,
    default_threshold: i64,
    window: usize,
    min_history: usize,
    multiple: i64,
    min_outflow: i64,
    /// txn_id -> seen
    seen: ValueState<u8>,
    /// customer_id -> their last `window` outflows in cents, oldest first
    recent: ValueState<Vec<i64>>,
}

#[sluice_sdk::job]
impl Job for LargeTxAlert {
    /// Runs split by partition (issue 19). The movements are keyed by
    /// customer id, so one customer's movements meet in one task, in order:
    /// `recent_outflows` is keyed by customer id, and `seen_txn` by a txn id,
    /// whose copies are one customer's movements. The reference feeds
    /// upsert into the dimensions: `customer` rows are keyed by customer id
    /// (co-partitioned with the movements when the two topics have as many
    /// partitions); `segment_threshold` rows are read by every customer's
    /// movements, so with that feed they must be in a store every task
    /// shares (`sql`, `redis`): a `memory` dimension is held by each task
    /// (docs/SPEC.md). A lookup reads the store as it is when the movement
    /// is processed, as Flink's lookup join does, through a cache whose
    /// `ttl` bounds how long another task's upsert takes to be seen.
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;

    fn open(ctx: &mut Context) -> Result<Self> {
        let default_threshold = amount_param(ctx, "default_threshold", "50000.00")?;
        let min_outflow = amount_param(ctx, "outflow_min_amount", "10000.00")?;
        let window: usize = ctx.param_or("outflow_window", 10)?;
        let min_history: usize = ctx.param_or("outflow_min_history", 3)?;
        let multiple: i64 = ctx.param_or("outflow_multiple", 5)?;
        let dedup_hours: u64 = ctx.param_or("dedup_hours", 72)?;
        let history_days: u64 = ctx.param_or("history_days", 90)?;
        if !(1..=1000).contains(&window) || !(1..=window).contains(&min_history) {
            return Err(Error::fatal(format!(
                "parameters `outflow_window` = {window} and `outflow_min_history` = {min_history} need 1 <= min_history <= window <= 1000"
            )));
        }
        if !(1..=1000).contains(&multiple) {
            return Err(Error::fatal(format!("parameter `outflow_multiple` = {multiple} must be within 1..=1000")));
        }
        if dedup_hours == 0 || history_days == 0 {
            return Err(Error::fatal("parameters `dedup_hours` and `history_days` must be positive"));
        }
        let mut feeds = Vec::new();
        while let Some(name) = ctx.source_name(feeds.len() as u32) {
            feeds.push(match name.as_str() {
                CUSTOMERS => Feed::Customers,
                THRESHOLDS => Feed::Thresholds,
                _ => Feed::Movements,
            });
        }
        let hours = |h: u64| Duration::from_secs(h.saturating_mul(3600));
        Ok(LargeTxAlert {
            feeds,
            default_threshold,
            window,
            min_history,
            multiple,
            min_outflow,
            seen: ctx.value_state_with("seen_txn", StateOptions::ttl(hours(dedup_hours)))?,
            recent: ctx
                .value_state_with("recent_outflows", StateOptions::ttl(hours(history_days.saturating_mul(24))))?,
        })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        match self.feeds.get(record.position().source as usize).copied().unwrap_or(Feed::Movements) {
            Feed::Movements => self.movement(ctx, record),
            Feed::Customers => reference_row(ctx, record, CUSTOMERS, "customer_id"),
            Feed::Thresholds => {
                let row: Value = record.json()?;
                if money::cents(&row["threshold"]).is_none_or(|c| c < 0) {
                    return Err(Error::record(format!("threshold {} is not an amount", row["threshold"])));
                }
                reference_row(ctx, record, THRESHOLDS, "segment")
            }
        }
    }
}

impl LargeTxAlert {
    fn movement(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let m: Movement = record.json_ref()?;
        let cents = m
            .amount
            .cents()
            .filter(|c| *c > 0)
            .ok_or_else(|| Error::record(format!("amount {} is not a positive amount of yuan", m.amount)))?;
        let outflow = match m.direction.as_ref() {
            "out" => true,
            "in" => false,
            other => return Err(Error::record(format!("direction `{other}` is neither `in` nor `out`"))),
        };
        // The state is per customer and the job runs split by partition: a
        // movement keyed by anything else could meet its customer's history,
        // or its own copy, in another task. (Records without a key, from a
        // file, are one task's anyway.)
        if let Some(key) = record.key()
            && key != m.customer_id.as_bytes()
        {
            return Err(Error::record(format!(
                "record key `{}` is not the movement's customer_id `{}`: the feed must be keyed by customer_id, \
                 so that a customer's movements stay in one partition, in order",
                String::from_utf8_lossy(key),
                m.customer_id
            )));
        }
        // Checked after validation: a rejected record leaves no trace, so
        // its (equally bad) duplicate is rejected too.
        if self.seen.get(ctx, &*m.txn_id)?.is_some() {
            ctx.count("duplicates", 1);
            return Ok(());
        }
        self.seen.set(ctx, &*m.txn_id, &1)?;

        let customer: Option<CustomerRow> = ctx.lookup(CUSTOMERS, &*m.customer_id)?;
        let (segment, manager_id) = customer.map_or((None, None), |c| (c.segment, c.manager_id));
        let threshold = match &segment {
            Some(s) => match ctx.lookup::<SegmentRow>(THRESHOLDS, s)? {
                Some(row) => money::cents(&row.threshold).ok_or_else(|| {
                    Error::record(format!("threshold {} of segment `{s}` is not an amount", row.threshold))
                })?,
                None => self.default_threshold,
            },
            None => self.default_threshold,
        };

        let alert = |rule: &'static str, reference: i64| Alert {
            alert_id: format!("{}:{rule}", m.txn_id),
            rule,
            txn_id: m.txn_id.to_string(),
            customer_id: m.customer_id.to_string(),
            account_no: m.account_no.to_string(),
            segment: segment.clone(),
            manager_id: manager_id.clone(),
            branch_id: m.branch_id.as_deref().map(str::to_owned),
            direction: m.direction.to_string(),
            channel: m.channel.as_deref().map(str::to_owned),
            amount: money::yuan(cents),
            reference_amount: money::yuan(reference),
            txn_time: m.txn_time,
        };
        let mut alerts = Vec::new();
        if cents >= threshold {
            alerts.push(alert(LARGE_AMOUNT, threshold));
        }
        if outflow {
            let mut history = self.recent.get(ctx, &*m.customer_id)?.unwrap_or_default();
            let (n, sum) = (history.len() as i64, history.iter().sum::<i64>());
            // amount >= multiple * (sum / n), without the division; in i128,
            // since a thousand amounts near MAX_CENTS times 1000 overflow i64.
            let sudden = i128::from(cents) * i128::from(n) >= i128::from(self.multiple) * i128::from(sum);
            if history.len() >= self.min_history && cents >= self.min_outflow && sudden {
                alerts.push(alert(SUDDEN_OUTFLOW, (sum + n / 2) / n));
            }
            history.push(cents);
            if history.len() > self.window {
                history.remove(0);
            }
            self.recent.set(ctx, &*m.customer_id, &history)?;
        }
        for a in &alerts {
            ctx.count(a.rule, 1);
            ctx.emit_keyed(ALERT_TOPIC, &a.alert_id, a)?;
            ctx.emit(ALERT_TABLE, a)?;
        }
        Ok(())
    }
}

/// Upserts a reference row into `dimension`, keyed by its `key` field.
fn reference_row(ctx: &mut Context, record: &Record, dimension: &str, key: &str) -> Result<()> {
    let row: Value = record.json()?;
    let Some(id) = row[key].as_str().filter(|k| !k.is_empty()) else {
        return Err(Error::record(format!("{dimension} row without a `{key}` text")));
    };
    ctx.upsert(dimension, id, &row)
}

fn amount_param(ctx: &mut Context, name: &str, default: &str) -> Result<i64> {
    let text = ctx.param(name).unwrap_or_else(|| default.to_owned());
    money::cents(&Value::String(text.clone()))
        .filter(|c| *c >= 0)
        .ok_or_else(|| Error::fatal(format!("parameter `{name}` = `{text}` is not an amount of yuan (e.g. 50000.00)")))
}
