//! Last page: scenario 3 ("user behaviour analysis") of the insurance seed.
//!
//! Replaces this Flink SQL:
//!
//! ```sql
//! insert into user_last_log
//! select account_id, device_id,
//!        last_value(bury_point_type) as bury_point_type,
//!        last_value(page_name) as page_name
//! from user_log
//! where account_id is not null
//! group by account_id, device_id;
//! ```
//!
//! "Last" is arrival order, as in the SQL (`log_time` is not consulted).
//! A row is emitted (an upsert) only when the group's values change.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sluice_sdk::prelude::*;

mod cases;
pub use cases::cases;

pub const SOURCE: &str = "user_log";
pub const SINK: &str = "user_last_log";

/// An input row of `user_log`: only the columns the SQL reads.
#[derive(Deserialize)]
struct UserLog {
    account_id: Option<String>,
    device_id: Option<String>,
    bury_point_type: Option<String>,
    page_name: Option<String>,
}

/// The last page of one (account_id, device_id) group: the aggregated columns.
#[derive(Serialize, Deserialize, PartialEq)]
struct Page {
    bury_point_type: Option<String>,
    page_name: Option<String>,
}

/// A row of `user_last_log`.
#[derive(Serialize)]
struct UserLastLog {
    account_id: String,
    device_id: Option<String>,
    #[serde(flatten)]
    last: Page,
}

pub struct LastPage {
    last: LastValue<Page>,
}

#[sluice_sdk::job]
impl Job for LastPage {
    /// State is keyed by (account, device), finer than the record key
    /// (`user_log` is keyed by account): parallel tasks give the same table.
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;

    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(LastPage { last: LastValue::open(ctx, "last_page")? })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let log: UserLog = record.json()?;
        let Some(account_id) = log.account_id else {
            return Ok(()); // where account_id is not null
        };
        // The group key as JSON rather than the SDK's `a|b` tuple key: ids
        // may contain `|`, and a null device_id is its own group.
        let group = json!([account_id, log.device_id]).to_string();

        // Flink's LAST_VALUE skips nulls: a null keeps the previous value.
        let previous = self.last.get(ctx, &group)?;
        let prev = previous.as_ref();
        let current = Page {
            bury_point_type: log.bury_point_type.or_else(|| prev.and_then(|p| p.bury_point_type.clone())),
            page_name: log.page_name.or_else(|| prev.and_then(|p| p.page_name.clone())),
        };
        if prev == Some(&current) {
            return Ok(()); // same page again: the sink row already says so
        }
        self.last.set(ctx, &group, &current)?;
        ctx.emit(SINK, &UserLastLog { account_id, device_id: log.device_id, last: current })
    }
}
