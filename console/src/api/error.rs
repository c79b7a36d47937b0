//! The one error type of the API. Client mistakes carry a message that says
//! what to fix; internal failures are logged once and answered with a
//! generic message, never echoed to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;
use crate::worker::WorkerError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in first (a session cookie or an `Authorization: Bearer` API token)")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A body over the route's limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts (sign-ins): 429, with when to try again.
    #[error("{message}")]
    TooMany { message: String, retry_after_secs: u64 },
    /// The console is at a limit it set itself (requests, compiles,
    /// password checks at once; a request's time): 503, try again later.
    #[error("{message}")]
    Busy { message: String, retry_after_secs: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => ApiError::Conflict(message),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<WorkerError> for ApiError {
    /// The tenant's mistakes are answered with what to fix; the platform's
    /// own failures (its stores) are logged and answered generically.
    fn from(e: WorkerError) -> Self {
        match e {
            WorkerError::Invalid(message) | WorkerError::Task(message) => ApiError::BadRequest(message),
            WorkerError::Conflict(message) => ApiError::Conflict(message),
            WorkerError::Gone(message) => ApiError::NotFound(message),
            WorkerError::Store(e) => e.into(),
            WorkerError::Snapshots(e) => ApiError::Internal(e.into()),
        }
    }
}

impl ApiError {
    /// A worker's refusal to start a job, saying so first.
    pub fn could_not_start(e: WorkerError) -> ApiError {
        match ApiError::from(e) {
            ApiError::BadRequest(message) => ApiError::bad(format!("the job could not start: {message}")),
            other => other,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            ApiError::TooMany { retry_after_secs, .. } | ApiError::Busy { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            _ => None,
        };
        let error = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error answering a request");
                "internal error; the server log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(ErrorBody { error })).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use sluice_runtime::snapshot::SnapshotError;

    use super::*;

    /// What the worker reports reaches the tenant only when it is the
    /// tenant's to fix; the platform's store failures stay in the log.
    #[test]
    fn worker_errors_answer_by_whose_they_are() {
        let spec = ApiError::could_not_start(WorkerError::Invalid("spec: `bogus` is unknown".into()));
        assert_eq!(
            (spec.status(), spec.to_string().as_str()),
            (StatusCode::BAD_REQUEST, "the job could not start: spec: `bogus` is unknown")
        );
        assert_eq!(ApiError::from(WorkerError::Conflict("not running".into())).status(), StatusCode::CONFLICT);
        assert_eq!(ApiError::from(WorkerError::Gone("the job was deleted".into())).status(), StatusCode::NOT_FOUND);

        let storage =
            SnapshotError::Storage { location: "postgres://sluice:hunter2@db/meta".into(), message: "x".into() };
        let platform = ApiError::could_not_start(WorkerError::Snapshots(storage));
        assert_eq!(platform.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let response = platform.into_response();
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 16)).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("hunter2") && body.contains("internal error"), "{body}");
    }
}
