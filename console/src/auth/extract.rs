//! The signed-in user of a request: from the session cookie, or from an
//! `Authorization: Bearer` API token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::hash_secret;
use crate::api::{ApiError, AppState};
use crate::store::User;

pub const SESSION_COOKIE: &str = "sluice_session";

/// The user a request acts as. Extracting it fails with 401 when the request
/// carries no valid credential.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let secret = match bearer {
            Some(token) => token,
            None => CookieJar::from_headers(&parts.headers)
                .get(SESSION_COOKIE)
                .map(|c| c.value().to_owned())
                .ok_or(ApiError::Unauthorized)?,
        };
        let user = state.store.user_by_credential(&hash_secret(secret.trim())).await?.ok_or(ApiError::Unauthorized)?;
        Ok(CurrentUser(user))
    }
}
