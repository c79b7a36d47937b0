//! What keeps the console answering under load and hostile callers: the
//! operator's settings, a cap on requests handled at once and on the time
//! each may take, per-route body limits, uploads read only after the
//! caller is known, and compiles off the async runtime a few at a time.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use sluice_runtime::wasm::LoadedComponent;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, ApiResult, AppState};
use crate::auth::{LoginThrottle, Passwords};

/// Largest body of a route other than the component uploads.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// How long a refused upload is read (and thrown away) so that its sender
/// can read the answer instead of a reset connection.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The operator's limits for the API (flags of `sluice serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct ApiSettings {
    /// Largest component upload (`/validate`, a job's versions), MiB.
    #[arg(long, env = "SLUICE_MAX_UPLOAD_MB", default_value_t = DEFAULT_MAX_UPLOAD_MB)]
    pub max_upload_mb: usize,
    /// Components compiled at once; more uploads wait for a turn (up to
    /// `--queue-wait-secs`), then are answered 503.
    #[arg(long, env = "SLUICE_MAX_COMPILES", default_value_t = DEFAULT_MAX_COMPILES)]
    pub max_compiles: usize,
    /// Password hashes and checks (argon2) at once.
    #[arg(long, env = "SLUICE_MAX_PASSWORD_CHECKS", default_value_t = DEFAULT_MAX_PASSWORD_CHECKS)]
    pub max_password_checks: usize,
    /// API requests handled at once; more wait for a turn, then 503.
    #[arg(long, env = "SLUICE_MAX_REQUESTS", default_value_t = DEFAULT_MAX_REQUESTS)]
    pub max_requests: usize,
    /// How long a request waits for its turn (a request slot, a compile, a
    /// password check) before it is answered 503, seconds.
    #[arg(long, env = "SLUICE_QUEUE_WAIT_SECS", default_value_t = DEFAULT_QUEUE_WAIT_SECS)]
    pub queue_wait_secs: u64,
    /// Longest time an API request may take, seconds (then 503).
    #[arg(long, env = "SLUICE_REQUEST_TIMEOUT_SECS", default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout_secs: u64,
    /// Time a client has to send a request's headers (and an idle
    /// connection to start its next request), seconds.
    #[arg(long, env = "SLUICE_HEADER_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout_secs: u64,
    /// Sign-in attempts per minute from one client address (then 429).
    #[arg(long, env = "SLUICE_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = DEFAULT_LOGIN_ATTEMPTS_PER_MINUTE)]
    pub login_attempts_per_minute: u32,
    /// The header a TLS-terminating proxy puts the client's address in
    /// (e.g. `X-Forwarded-For`, its last entry is used); unset: the peer
    /// address. Set it only behind a proxy that overwrites the header.
    #[arg(long, env = "SLUICE_CLIENT_ADDRESS_HEADER")]
    pub client_address_header: Option<String>,
    /// Always mark the session cookie `Secure` (sent over HTTPS only).
    /// Without it the cookie is `Secure` when the request came through a
    /// proxy that says `X-Forwarded-Proto: https`.
    #[arg(long, env = "SLUICE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Lifetime of a new API token when its creator gives none, days.
    #[arg(long, env = "SLUICE_TOKEN_DEFAULT_DAYS", default_value_t = DEFAULT_TOKEN_DAYS)]
    pub token_default_days: u32,
    /// Longest lifetime an API token may be given, days.
    #[arg(long, env = "SLUICE_TOKEN_MAX_DAYS", default_value_t = DEFAULT_TOKEN_MAX_DAYS)]
    pub token_max_days: u32,
    /// The bearer token Prometheus scrapes `/metrics` with (prefer the
    /// environment variable: a flag is visible in the process list).
    /// Without it only a signed-in global admin reads `/metrics`.
    #[arg(long, env = "SLUICE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

const DEFAULT_MAX_UPLOAD_MB: usize = 64;
const DEFAULT_MAX_COMPILES: usize = 2;
const DEFAULT_MAX_PASSWORD_CHECKS: usize = 2;
const DEFAULT_MAX_REQUESTS: usize = 256;
const DEFAULT_QUEUE_WAIT_SECS: u64 = 10;
const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 120;
const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 30;
const DEFAULT_LOGIN_ATTEMPTS_PER_MINUTE: u32 = 20;
const DEFAULT_TOKEN_DAYS: u32 = 90;
const DEFAULT_TOKEN_MAX_DAYS: u32 = 365;

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_upload_mb: DEFAULT_MAX_UPLOAD_MB,
            max_compiles: DEFAULT_MAX_COMPILES,
            max_password_checks: DEFAULT_MAX_PASSWORD_CHECKS,
            max_requests: DEFAULT_MAX_REQUESTS,
            queue_wait_secs: DEFAULT_QUEUE_WAIT_SECS,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
            login_attempts_per_minute: DEFAULT_LOGIN_ATTEMPTS_PER_MINUTE,
            client_address_header: None,
            secure_cookies: false,
            token_default_days: DEFAULT_TOKEN_DAYS,
            token_max_days: DEFAULT_TOKEN_MAX_DAYS,
            metrics_token: None,
        }
    }
}

impl ApiSettings {
    pub fn upload_limit(&self) -> usize {
        self.max_upload_mb.saturating_mul(1024 * 1024)
    }

    pub fn queue_wait(&self) -> Duration {
        Duration::from_secs(self.queue_wait_secs)
    }
}

/// The settings and the shared counters that enforce them.
#[derive(Debug)]
pub struct Guards {
    pub settings: ApiSettings,
    /// A permit per API request being answered.
    pub requests: Arc<Semaphore>,
    /// A permit per component being compiled.
    pub compiles: Arc<Semaphore>,
    pub passwords: Passwords,
    pub logins: LoginThrottle,
}

impl Guards {
    pub fn new(settings: ApiSettings) -> Guards {
        Guards {
            requests: Arc::new(Semaphore::new(settings.max_requests.max(1))),
            compiles: Arc::new(Semaphore::new(settings.max_compiles.max(1))),
            passwords: Passwords::new(settings.max_password_checks, settings.queue_wait()),
            logins: LoginThrottle::new(settings.login_attempts_per_minute),
            settings,
        }
    }
}

/// A permit of `permits`, waiting up to `wait`; then 503 saying the
/// console is busy with `what`.
pub async fn take_turn(permits: &Arc<Semaphore>, wait: Duration, what: &str) -> ApiResult<OwnedSemaphorePermit> {
    match tokio::time::timeout(wait, permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(ApiError::Internal(anyhow::anyhow!("the semaphore for {what} is closed"))),
        Err(_) => Err(ApiError::Busy {
            message: format!(
                "the console is busy {what} (waited {} s for a turn); try again in a few seconds",
                wait.as_secs()
            ),
            retry_after_secs: 5,
        }),
    }
}

/// Middleware of the API: at most `max_requests` at once, each stopped
/// after `request_timeout_secs` with a 503 saying so.
pub async fn limit_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let guards = &state.guards;
    let _permit = match take_turn(&guards.requests, guards.settings.queue_wait(), "answering other requests").await {
        Ok(permit) => permit,
        Err(e) => return e.into_response(),
    };
    let limit = Duration::from_secs(guards.settings.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Busy {
            message: format!("the request took longer than {} s and was stopped", limit.as_secs()),
            retry_after_secs: 5,
        }
        .into_response(),
    }
}

/// The body of an upload route (`/validate`, a job's versions), not read
/// until the handler has checked who sends it.
pub struct Upload {
    body: Body,
    /// The `Content-Length` the sender declared.
    declared: Option<u64>,
    /// The sender waits for `100 Continue` before it sends the body, which
    /// hyper sends only once the body is read: a refusal before that costs
    /// the sender nothing.
    expects_continue: bool,
}

impl<S: Send + Sync> FromRequest<S> for Upload {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let headers = request.headers();
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let expects_continue = headers
            .get(header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        Ok(Upload { body: request.into_body(), declared, expects_continue })
    }
}

impl Upload {
    /// Reads the body (after its sender was checked), refusing one over
    /// `limit` bytes with 413 — before reading it when its length says so.
    pub async fn read(self, limit: usize) -> ApiResult<Bytes> {
        let too_large = || {
            ApiError::TooLarge(format!(
                "the upload is larger than {} MiB, the most this console accepts (`sluice serve --max-upload-mb`)",
                limit / (1024 * 1024)
            ))
        };
        if self.declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut stream = self.body.into_data_stream();
        let mut bytes = Vec::with_capacity(self.declared.unwrap_or(0) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad(format!("the upload could not be read: {e}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes.into())
    }

    /// Answers with `error` without keeping the body. A body the sender is
    /// already sending is read and thrown away (up to `limit` bytes, for a
    /// few seconds), so it sees the answer rather than a connection reset.
    pub async fn refuse(self, limit: usize, error: ApiError) -> ApiError {
        if self.expects_continue || self.declared.is_some_and(|n| n > limit as u64) {
            return error;
        }
        let drain = async {
            let mut stream = self.body.into_data_stream();
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
                if seen > limit {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        error
    }
}

/// Validates and compiles a component on a blocking thread, at most
/// `max_compiles` at once: Cranelift can take seconds of CPU for a large
/// component, which must not hold an async worker that answers requests.
pub async fn compile(state: &AppState, bytes: Bytes) -> ApiResult<LoadedComponent> {
    let guards = &state.guards;
    let permit = take_turn(&guards.compiles, guards.settings.queue_wait(), "compiling other components").await?;
    let worker = state.worker.clone();
    let runtime = tokio::runtime::Handle::current();
    // The permit goes with the work: a request that times out does not
    // free a turn while its compile still runs.
    let loaded = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        runtime.block_on(worker.load(&bytes))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("compiling a component failed: {e}")))?;
    loaded.map_err(|e| ApiError::bad(format!("not a valid job component: {e}")))
}
