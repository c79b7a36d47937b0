//! The signed-in user of a request — from the session cookie, or from an
//! `Authorization: Bearer` API token — and the client's address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::hash_secret;
use crate::api::{ApiError, AppState};
use crate::store::User;

pub const SESSION_COOKIE: &str = "sluice_session";

/// The user a request acts as. Extracting it fails with 401 when the request
/// carries no valid credential (unknown, expired, revoked, or of a disabled
/// user).
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

/// The address a request came from: the peer's, or the one the operator's
/// proxy wrote into `--client-address-header` (its last entry, the one the
/// proxy itself added). `0.0.0.0` when neither is known.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let from_header = state.guards.settings.client_address_header.as_deref().and_then(|name| {
            let value = parts.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).next_back()?;
            value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        });
        let peer = || parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientAddress(from_header.or_else(peer).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}
