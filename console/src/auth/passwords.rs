//! Password hashing and checking for the API: argon2 costs tens of
//! milliseconds of CPU and ~19 MiB of memory per call, so it runs on
//! blocking threads, never on the async workers that answer every other
//! request, and at most `limit` at once (more callers wait their turn).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::secrets::{hash_password, verify_password};
use crate::api::{ApiError, ApiResult, take_turn};

/// Hashes and checks passwords off the async runtime, a few at a time.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// How long a check waits for its turn before the caller gets 503.
    wait: Duration,
}

/// A hash of a password nobody knows: an unknown user's sign-in is checked
/// against it, so it takes as long as a known user's.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password(&hex::encode(rand::random::<[u8; 16]>())));

impl Passwords {
    pub fn new(limit: usize, wait: Duration) -> Passwords {
        Passwords { permits: Arc::new(Semaphore::new(limit.max(1))), wait }
    }

    pub async fn hash(&self, password: String) -> ApiResult<String> {
        self.run(move || hash_password(&password)).await
    }

    /// Whether `password` matches `hash`; with no hash (no such user) the
    /// same work is done against a dummy hash, and the answer is no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> ApiResult<bool> {
        self.run(move || match hash {
            Some(hash) => verify_password(&password, &hash),
            None => {
                verify_password(&password, &DUMMY_HASH);
                false
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
        let permit = take_turn(&self.permits, self.wait, "checking passwords").await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
    }
}
