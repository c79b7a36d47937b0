//! The API's own `Json` and `Query` extractors: axum's, except that a body
//! or query string that does not parse (bad JSON, a missing or unknown
//! field, a wrong type) is answered like every other client mistake — 400
//! with `{"error": …}` naming the problem — instead of axum's plain-text
//! 415/422 answers; a body over the route's limit is a 413 saying so.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiError;

#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge(format!(
                "the request body is larger than the {} KiB this route accepts",
                super::limits::JSON_BODY_LIMIT / 1024
            ));
        }
        ApiError::BadRequest(format!("the request body is not valid: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(format!("the query string is not valid: {}", rejection.body_text()))
    }
}
