//! What hourly-premium and its staged form (`jobs/hourly-premium-staged`,
//! which includes this file) share: the rows, the parameters, the
//! `last_order` view's merge and the per-hour aggregate with its mini-batch
//! output. State names are the job's, so both keep the same state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;

pub const SOURCE: &str = "user_order";
pub const SINK: &str = "hs_order";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Premiums are summed in millionths: integer sums retract exactly, where
/// `a + b - b` in floating point does not always give `a` back.
const MICROS: f64 = 1_000_000.0;
/// Larger premiums are rejected, so sums in millionths cannot overflow.
const MAX_PREMIUM: f64 = 1e12;

/// An input row of `user_order`: only the columns the SQL reads.
#[derive(Deserialize)]
pub struct UserOrder {
    pub id: i64,
    order_no: Option<String>,
    customer_tel: Option<String>,
    gmt_modified: Option<i64>,
    account_payble: Option<f64>,
}

impl UserOrder {
    /// The order of `record`; a premium out of range is the record's error.
    pub fn read(record: &Record) -> Result<UserOrder> {
        let order: UserOrder = record.json()?;
        if order.account_payble.is_some_and(|p| p.abs() >= MAX_PREMIUM) {
            return Err(Error::record(format!("account_payble is out of range (±{MAX_PREMIUM:e})")));
        }
        Ok(order)
    }
}

/// A row of the `last_order` view.
#[derive(Serialize, Deserialize, PartialEq, Clone)]
pub struct LastOrder {
    order_no: Option<String>,
    customer_tel: Option<String>,
    pub gmt_modified: i64,
    account_payble: Option<f64>,
}

impl LastOrder {
    /// The user's view row after `order` (modified at `gmt_modified`, which
    /// passed the filter). Flink's LAST_VALUE skips nulls, column by column:
    /// a null keeps the user's previous value of that column.
    pub fn merged(order: UserOrder, gmt_modified: i64, prev: Option<&LastOrder>) -> LastOrder {
        LastOrder {
            order_no: order.order_no.or_else(|| prev.and_then(|p| p.order_no.clone())),
            customer_tel: order.customer_tel.or_else(|| prev.and_then(|p| p.customer_tel.clone())),
            gmt_modified,
            account_payble: order.account_payble.or_else(|| prev.and_then(|p| p.account_payble)),
        }
    }
}

/// The parameters: the time zone and the filter's bound.
pub struct Params {
    offset_ms: i64,
    since_ms: Option<i64>,
}

impl Params {
    pub fn open(ctx: &mut Context) -> Result<Params> {
        let offset_minutes: i64 = ctx.param_or("utc_offset_minutes", 480)?;
        if offset_minutes.abs() > 18 * 60 {
            return Err(Error::fatal(format!(
                "parameter `utc_offset_minutes` = {offset_minutes} is not within ±18 hours"
            )));
        }
        let since_ms = match ctx.param("since_ms") {
            None => None,
            Some(text) => Some(
                text.parse().map_err(|e| Error::fatal(format!("parameter `since_ms` = `{text}` is invalid: {e}")))?,
            ),
        };
        Ok(Params { offset_ms: offset_minutes * 60_000, since_ms })
    }

    /// `gmt_modified` when the order passes `WHERE gmt_modified >= start of
    /// today` (a null fails it too).
    pub fn passes(&self, ctx: &mut Context, order: &UserOrder) -> Option<i64> {
        let since = self.since_ms.unwrap_or_else(|| start_of_day(ctx.processing_time(), self.offset_ms));
        order.gmt_modified.filter(|t| *t >= since)
    }

    pub fn biz_date(&self, ms: i64) -> String {
        biz_date(ms, self.offset_ms)
    }
}

/// The running aggregate of one hour, besides its distinct counts.
#[derive(Serialize, Deserialize, Default, Clone)]
struct HourTotals {
    /// Users whose last order falls in this hour; 0 means the group is gone.
    users: u64,
    /// `sum(coalesce(account_payble, 0))` in millionths.
    premium_micros: i64,
}

/// A row of `hs_order`.
#[derive(Serialize, PartialEq)]
pub struct HsOrder {
    biz_date: String,
    total_premium: f64,
    policy_cnt: u64,
    policy_holder_cnt: u64,
}

/// The `hs_order` aggregate per hour (biz_date), fed the changelog of
/// `last_order` (-old +current), with its rows emitted once per batch for
/// each hour the batch changed (mini-batch output): an upsert of its row,
/// or the delete of an hour left without orders.
pub struct Hours {
    /// biz_date -> totals
    hours: ValueState<HourTotals>,
    /// biz_date -> distinct order numbers / customer phones
    policies: CountDistinct,
    holders: CountDistinct,
    /// Hours changed in the current batch, with their rows before it.
    touched: BTreeMap<String, Option<HsOrder>>,
}

impl Hours {
    pub fn open(ctx: &mut Context) -> Result<Hours> {
        Ok(Hours {
            hours: ctx.value_state("hour_totals")?,
            policies: CountDistinct::open(ctx, "hour_policies")?,
            holders: CountDistinct::open(ctx, "hour_holders")?,
            touched: BTreeMap::new(),
        })
    }

    /// Adds (or, with `retract`, takes away) a user's view row in `hour`.
    pub fn apply(&mut self, ctx: &mut Context, hour: &str, order: &LastOrder, retract: bool) -> Result<()> {
        self.touch(ctx, hour)?;
        if retract { self.retract(ctx, hour, order) } else { self.accumulate(ctx, hour, order) }
    }

    /// Emits one `hs_order` change per hour touched since the last call.
    pub fn finish_batch(&mut self, ctx: &mut Context) -> Result<()> {
        for (hour, before) in std::mem::take(&mut self.touched) {
            match (before, self.hour_row(ctx, &hour)?) {
                (Some(gone), None) => ctx.delete(SINK, &gone)?,
                (before, Some(row)) if before.as_ref() != Some(&row) => ctx.emit(SINK, &row)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Notes that `hour` changes in this batch, keeping its row as it was
    /// before the batch (what the sink holds).
    fn touch(&mut self, ctx: &mut Context, hour: &str) -> Result<()> {
        if !self.touched.contains_key(hour) {
            let before = self.hour_row(ctx, hour)?;
            self.touched.insert(hour.to_owned(), before);
        }
        Ok(())
    }

    fn accumulate(&self, ctx: &mut Context, hour: &str, order: &LastOrder) -> Result<()> {
        let mut totals = self.hours.get(ctx, hour)?.unwrap_or_default();
        totals.users += 1;
        totals.premium_micros = totals.premium_micros.saturating_add(premium_micros(order));
        self.hours.set(ctx, hour, &totals)?;
        // count(distinct ..) ignores nulls
        if let Some(no) = &order.order_no {
            self.policies.add(ctx, hour, no)?;
        }
        if let Some(tel) = &order.customer_tel {
            self.holders.add(ctx, hour, tel)?;
        }
        Ok(())
    }

    fn retract(&self, ctx: &mut Context, hour: &str, order: &LastOrder) -> Result<()> {
        let mut totals = self.hours.get(ctx, hour)?.unwrap_or_default();
        totals.users = totals.users.saturating_sub(1);
        totals.premium_micros = totals.premium_micros.saturating_sub(premium_micros(order));
        if totals.users == 0 {
            self.hours.remove(ctx, hour);
        } else {
            self.hours.set(ctx, hour, &totals)?;
        }
        if let Some(no) = &order.order_no {
            self.policies.remove(ctx, hour, no)?;
        }
        if let Some(tel) = &order.customer_tel {
            self.holders.remove(ctx, hour, tel)?;
        }
        Ok(())
    }

    /// The `hs_order` row of an hour, or `None` when no user's last order is in it.
    fn hour_row(&self, ctx: &mut Context, hour: &str) -> Result<Option<HsOrder>> {
        let Some(totals) = self.hours.get(ctx, hour)? else {
            return Ok(None);
        };
        Ok(Some(HsOrder {
            biz_date: hour.to_owned(),
            total_premium: totals.premium_micros as f64 / MICROS,
            policy_cnt: self.policies.count(ctx, hour),
            policy_holder_cnt: self.holders.count(ctx, hour),
        }))
    }
}

/// `from_unixtime(ms / 1000, 'yyyyMMddHH')` at UTC offset `offset_ms`.
/// Written digit by digit: it runs twice per order.
fn biz_date(ms: i64, offset_ms: i64) -> String {
    let local = ms.saturating_add(offset_ms);
    let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
    let h = local.rem_euclid(DAY_MS) / HOUR_MS;
    if !(0..=9999).contains(&y) {
        return format!("{y:04}{m:02}{d:02}{h:02}");
    }
    let mut text = String::with_capacity(10);
    for (value, digits) in [(y, 4), (m, 2), (d, 2), (h, 2)] {
        for place in (0..digits).rev() {
            text.push(char::from(b'0' + (value / 10i64.pow(place) % 10) as u8));
        }
    }
    text
}

/// `coalesce(account_payble, 0)` in millionths.
fn premium_micros(order: &LastOrder) -> i64 {
    (order.account_payble.unwrap_or(0.0) * MICROS).round() as i64
}

/// The first millisecond of the local day holding `now_ms`, as UTC ms:
/// `UNIX_TIMESTAMP(FROM_UNIXTIME(UNIX_TIMESTAMP(), 'yyyy-MM-dd'), 'yyyy-MM-dd') * 1000`.
fn start_of_day(now_ms: i64, offset_ms: i64) -> i64 {
    let local = now_ms.saturating_add(offset_ms);
    local - local.rem_euclid(DAY_MS) - offset_ms
}

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn biz_dates_match_the_sql_format() {
        assert_eq!(biz_date(1_710_469_800_000, 480 * 60_000), "2024031510");
        assert_eq!(biz_date(-1, 0), "1969123123");
        for ms in [0, 1_710_469_800_000, 253_402_300_799_999, 253_402_300_800_000, i64::MIN, i64::MAX] {
            let local = ms.saturating_add(3_600_000);
            let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
            let expected = format!("{y:04}{m:02}{d:02}{:02}", local.rem_euclid(DAY_MS) / HOUR_MS);
            assert_eq!(biz_date(ms, 3_600_000), expected, "{ms}");
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29)); // leap day
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn start_of_day_in_a_time_zone() {
        // 2024-03-15 10:30 +08:00 -> 2024-03-15 00:00 +08:00
        assert_eq!(start_of_day(1_710_469_800_000, 480 * 60_000), 1_710_432_000_000);
        // the same instant is 02:30 UTC -> 2024-03-15 00:00 UTC
        assert_eq!(start_of_day(1_710_469_800_000, 0), 1_710_460_800_000);
        // midnight itself starts its own day
        assert_eq!(start_of_day(1_710_432_000_000, 480 * 60_000), 1_710_432_000_000);
    }
}
