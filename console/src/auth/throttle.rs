//! Sign-in throttling: a rate per client address (governor), and a lock on
//! a user name after repeated wrong passwords. Names that belong to no user
//! are counted and locked the same way, so neither answer tells whether a
//! user exists. Kept in memory: a console that restarts forgets them.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::api::ApiError;

/// Wrong passwords in a row that lock a user name.
pub const LOCK_AFTER_FAILURES: u32 = 5;
/// How long a locked name stays locked.
pub const LOCK_DURATION: Duration = Duration::from_secs(15 * 60);
/// Names tracked at once (the oldest are forgotten first).
const TRACKED_NAMES: u64 = 100_000;
/// Client addresses tracked before the idle ones are dropped.
const TRACKED_ADDRESSES: usize = 100_000;

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    in_a_row: u32,
    locked_until: Option<Instant>,
}

pub struct LoginThrottle {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    by_name: moka::sync::Cache<String, Failures>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

impl LoginThrottle {
    pub fn new(attempts_per_minute: u32) -> LoginThrottle {
        let per_minute = NonZeroU32::new(attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        LoginThrottle {
            per_address: RateLimiter::keyed(Quota::per_minute(per_minute)),
            by_name: moka::sync::Cache::builder().max_capacity(TRACKED_NAMES).time_to_idle(LOCK_DURATION).build(),
        }
    }

    /// Refuses a sign-in attempt (429) when its address has tried too often
    /// or the name is locked; checked before the password is.
    pub fn check(&self, address: IpAddr, name: &str) -> Result<(), ApiError> {
        if self.per_address.len() > TRACKED_ADDRESSES {
            self.per_address.retain_recent();
        }
        if let Err(not_until) = self.per_address.check_key(&address) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ApiError::TooMany {
                message: format!(
                    "too many sign-in attempts from your address; try again in {} s",
                    wait.as_secs().max(1)
                ),
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        if let Some(until) = self.by_name.get(&key(name)).and_then(|f| f.locked_until) {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                return Err(locked(left));
            }
        }
        Ok(())
    }

    /// Counts a wrong password for `name`; the one that locks it is
    /// answered as locked.
    pub fn failed(&self, name: &str) -> Option<ApiError> {
        let key = key(name);
        let mut failures = self.by_name.get(&key).unwrap_or_default();
        failures.in_a_row += 1;
        let lock = failures.in_a_row >= LOCK_AFTER_FAILURES;
        if lock {
            failures = Failures { in_a_row: 0, locked_until: Some(Instant::now() + LOCK_DURATION) };
        }
        self.by_name.insert(key, failures);
        lock.then(|| locked(LOCK_DURATION))
    }

    /// A right password (or an admin's reset) clears the name's failures.
    pub fn clear(&self, name: &str) {
        self.by_name.invalidate(&key(name));
    }
}

fn locked(left: Duration) -> ApiError {
    let minutes = left.as_secs().div_ceil(60).max(1);
    ApiError::TooMany {
        message: format!(
            "this account is locked for {minutes} more minute(s) after {LOCK_AFTER_FAILURES} wrong passwords in a row; \
             try again later, or ask a global admin to reset the password"
        ),
        retry_after_secs: left.as_secs().max(1),
    }
}

/// Names are keyed as given, cut to a bounded length.
fn key(name: &str) -> String {
    name.chars().take(64).collect()
}
