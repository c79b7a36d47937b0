//! Premium drop: scenario 2 ("user behaviour monitoring") of the insurance seed.
//!
//! Replaces this Flink SQL:
//!
//! ```sql
//! create view info_join as
//! select t1.id, t2.raw_info, t1.now_info, t2.raw_premium, t1.now_premium
//! from update_info t1
//! inner join raw_info for system_time as of proctime() as t2 on t1.id = t2.id;
//!
//! insert into wechat_activity_user
//! select id, raw_info, now_info, raw_premium, now_premium
//! from info_join where now_premium < raw_premium * 0.85;
//!
//! insert into raw_info
//! select id, now_premium as raw_premium, now_info as raw_info from info_join;
//! ```
//!
//! Parameters:
//! - `saved_event` (optional): only records whose `event` equals it count
//!   (the seed's "orders that were not saved are filtered out").
//! - `drop_ratio` (default 0.15): alert when the premium falls by more than this.
//!
//! Premiums are text columns compared as numbers (DOUBLE, as the SQL's
//! implicit cast does). A premium that is not a number rejects the record.

use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;

mod cases;
pub use cases::cases;

pub const SOURCE: &str = "update_info";
pub const DIMENSION: &str = "raw_info";
pub const SINK: &str = "wechat_activity_user";

/// An input row of `update_info`: only the columns the SQL reads.
#[derive(Deserialize)]
struct UpdateInfo {
    id: i64,
    event: Option<String>,
    now_premium: String,
    now_info: Option<String>,
}

/// A row of the `raw_info` dimension, keyed by `id`: the premium the user
/// had before.
#[derive(Serialize, Deserialize)]
struct RawInfo {
    id: i64,
    raw_premium: String,
    raw_info: Option<String>,
}

/// A row of `wechat_activity_user` (keyed by `id`).
#[derive(Serialize)]
struct WechatActivityUser {
    id: i64,
    raw_info: Option<String>,
    now_info: Option<String>,
    raw_premium: String,
    now_premium: String,
}

pub struct PremiumDrop {
    saved_event: Option<String>,
    /// An alert needs `now < raw * keep_ratio`.
    keep_ratio: f64,
}

#[sluice_sdk::job]
impl Job for PremiumDrop {
    /// No state of its own; the `raw_info` row it reads and writes is the
    /// one of the update's user, the record key: safe in parallel.
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;

    fn open(ctx: &mut Context) -> Result<Self> {
        let drop_ratio: f64 = ctx.param_or("drop_ratio", 0.15)?;
        if !(0.0..=1.0).contains(&drop_ratio) {
            return Err(Error::fatal(format!("parameter `drop_ratio` = {drop_ratio} must be within 0..=1")));
        }
        Ok(PremiumDrop { saved_event: ctx.param("saved_event"), keep_ratio: 1.0 - drop_ratio })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let update: UpdateInfo = record.json()?;
        if self.saved_event.is_some() && update.event != self.saved_event {
            return Ok(()); // not a saved order
        }
        // Checked before the join so a bad record is rejected whatever the
        // dimension holds.
        let now = number(&update.now_premium)
            .ok_or_else(|| Error::record(format!("now_premium `{}` is not a number", update.now_premium)))?;

        // Inner join: users not in `raw_info` are not watched.
        let Some(raw) = ctx.lookup::<RawInfo>(DIMENSION, &update.id)? else {
            return Ok(());
        };
        let before = number(&raw.raw_premium).ok_or_else(|| {
            Error::record(format!("raw_premium `{}` of {DIMENSION} row {} is not a number", raw.raw_premium, update.id))
        })?;

        if now < before * self.keep_ratio {
            let alert = WechatActivityUser {
                id: update.id,
                raw_info: raw.raw_info,
                now_info: update.now_info.clone(),
                raw_premium: raw.raw_premium,
                now_premium: update.now_premium.clone(),
            };
            ctx.emit(SINK, &alert)?;
        }
        // Every joined record becomes the user's new reference premium.
        let row = RawInfo { id: update.id, raw_premium: update.now_premium, raw_info: update.now_info };
        ctx.upsert(DIMENSION, &update.id, &row)
    }
}

/// A premium column (text) as a number.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}
