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

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sluice_sdk::prelude::*;

mod cases;
pub use cases::cases;

pub const SOURCE: &str = "user_log";
pub const SINK: &str = "user_last_log";

/// An input row of `user_log`: only the columns the SQL reads, borrowed
/// from the record where they have no escapes (`json_ref`).
#[derive(Deserialize)]
struct UserLog<'a> {
    #[serde(borrow)]
    account_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    bury_point_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    page_name: Option<Cow<'a, str>>,
}

/// The last page of one (account_id, device_id) group: the aggregated columns.
#[derive(Serialize, Deserialize, PartialEq, Clone)]
struct Page {
    bury_point_type: Option<String>,
    page_name: Option<String>,
}

/// A row of `user_last_log`. (Its columns are listed rather than
/// `#[serde(flatten)]`ed from a `Page`: flattening serializes through a
/// map, at every emitted row.)
#[derive(Serialize)]
struct UserLastLog<'a> {
    account_id: &'a str,
    device_id: Option<&'a str>,
    bury_point_type: Option<&'a str>,
    page_name: Option<&'a str>,
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
        let log: UserLog = record.json_ref()?;
        let Some(account_id) = log.account_id else {
            return Ok(()); // where account_id is not null
        };
        let device_id = log.device_id.as_deref();
        let group = group_key(&account_id, device_id);

        // Flink's LAST_VALUE skips nulls: a null keeps the previous value.
        let previous = self.last.get(ctx, &group)?;
        let prev = previous.as_ref();
        let current = Page {
            bury_point_type: log
                .bury_point_type
                .map(Cow::into_owned)
                .or_else(|| prev.and_then(|p| p.bury_point_type.clone())),
            page_name: log.page_name.map(Cow::into_owned).or_else(|| prev.and_then(|p| p.page_name.clone())),
        };
        if prev == Some(&current) {
            return Ok(()); // same page again: the sink row already says so
        }
        self.last.set(ctx, &group, &current)?;
        ctx.emit(
            SINK,
            &UserLastLog {
                account_id: &account_id,
                device_id,
                bury_point_type: current.bury_point_type.as_deref(),
                page_name: current.page_name.as_deref(),
            },
        )
    }
}

/// The state key of an (account_id, device_id) group: the pair as JSON
/// (`["a","d"]`, `["a",null]`) rather than the SDK's `a|b` tuple key, since
/// ids may contain `|` and a null device_id is its own group. Written
/// straight from the pair, without a JSON tree; the text is the one
/// `json!([account_id, device_id]).to_string()` gives, which earlier
/// versions stored.
fn group_key(account_id: &str, device_id: Option<&str>) -> String {
    serde_json::to_string(&(account_id, device_id)).expect("strings serialize")
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn group_keys_are_the_json_pair_earlier_versions_stored() {
        for (account, device) in [("a", Some("d")), ("a", None), ("x|y", Some("\"q\" \\ é\n")), ("", Some(""))] {
            assert_eq!(group_key(account, device), serde_json::json!([account, device]).to_string());
        }
    }
}
