//! Waiting for a condition in tests that drive real processes.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it gives a value; fails after
/// `timeout` with `what` and the last thing `check` saw.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if started.elapsed() > timeout => panic!("waited {timeout:?} for {what}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
