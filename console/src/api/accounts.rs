//! Sign-in, sessions, password change and API tokens of the signed-in user.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiResult, AppState, Json, audit};
use crate::auth::{self, ClientAddress, CurrentUser, SESSION_COOKIE, SESSION_TTL_MS};
use crate::store::{Credential, CredentialKind, User, now_ms};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    pub user: User,
}

/// The answer to every failed sign-in, whether the user exists or not.
const WRONG_LOGIN: &str = "wrong user name or password";

#[utoipa::path(post, path = "/login", tag = "accounts", request_body = LoginRequest,
    responses((status = 200, body = LoginAnswer),
        (status = 400, body = super::ErrorBody, description = "Wrong user name or password"),
        (status = 403, body = super::ErrorBody, description = "The account is disabled"),
        (status = 429, body = super::ErrorBody, description = "Too many attempts from the address, or the account is locked")))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<LoginRequest>,
) -> ApiResult<(CookieJar, Json<LoginAnswer>)> {
    let guards = &state.guards;
    guards.logins.check(address, &body.name)?;
    let user = state.store.user_by_name(&body.name).await?;
    // An unknown user costs the same check as a known one.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let right = guards.passwords.verify(body.password, hash).await?;
    let user = match user {
        Some(user) if right => user,
        _ => return Err(guards.logins.failed(&body.name).unwrap_or_else(|| ApiError::bad(WRONG_LOGIN))),
    };
    guards.logins.clear(&body.name);
    if user.disabled {
        return Err(ApiError::Forbidden(format!("the account `{}` is disabled; ask a global admin", user.name)));
    }
    let secret = auth::new_secret("sls");
    state
        .store
        .add_credential(
            &user.id,
            CredentialKind::Session,
            "browser",
            &auth::hash_secret(&secret),
            Some(now_ms() + SESSION_TTL_MS),
        )
        .await?;
    let secure = guards.settings.secure_cookies || came_over_https(&headers);
    let cookie = Cookie::build((SESSION_COOKIE, secret))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .build();
    Ok((jar.add(cookie), Json(LoginAnswer { user })))
}

/// Whether a TLS-terminating proxy says the request came over HTTPS.
fn came_over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

#[utoipa::path(post, path = "/logout", tag = "accounts", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, jar: CookieJar) -> ApiResult<(CookieJar, StatusCode)> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        state.store.delete_credential_by_hash(&auth::hash_secret(c.value())).await?;
    }
    Ok((jar.remove(Cookie::build(SESSION_COOKIE).path("/")), StatusCode::NO_CONTENT))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectRole {
    pub name: String,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeAnswer {
    pub user: User,
    pub projects: Vec<ProjectRole>,
}

#[utoipa::path(get, path = "/me", tag = "accounts", responses((status = 200, body = MeAnswer)))]
pub async fn me(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> ApiResult<Json<MeAnswer>> {
    let mut projects = Vec::new();
    let visible = state.store.projects(if user.is_admin { None } else { Some(&user.id) }).await?;
    for p in visible {
        let role = match state.store.role_of(&p.id, &user.id).await? {
            Some(role) => role,
            None => "admin".to_owned(),
        };
        projects.push(ProjectRole { name: p.name, role });
    }
    Ok(Json(MeAnswer { user, projects }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub old_password: String,
    pub new_password: String,
}

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

pub fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ApiError::bad(format!("the password needs at least {MIN_PASSWORD} characters")));
    }
    Ok(())
}

#[utoipa::path(post, path = "/me/password", tag = "accounts", request_body = PasswordChange,
    responses((status = 204, description = "Changed; the user's other browser sessions are ended"),
        (status = 400, body = super::ErrorBody, description = "The old password is wrong, or the new one too short"),
        (status = 429, body = super::ErrorBody, description = "The account is locked after wrong passwords")))]
pub async fn change_password(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ClientAddress(address): ClientAddress,
    jar: CookieJar,
    Json(body): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    let guards = &state.guards;
    // Wrong old passwords count as failed sign-ins: a stolen session must
    // not become a way to guess the password.
    guards.logins.check(address, &user.name)?;
    if !guards.passwords.verify(body.old_password, Some(user.password_hash.clone())).await? {
        return Err(guards.logins.failed(&user.name).unwrap_or_else(|| ApiError::bad("the old password is wrong")));
    }
    check_password(&body.new_password)?;
    let hash = guards.passwords.hash(body.new_password).await?;
    state.store.set_password(&user.id, &hash).await?;
    let current = jar.get(SESSION_COOKIE).map(|c| auth::hash_secret(c.value()));
    let ended = state.store.delete_sessions(&user.id, current.as_deref()).await?;
    audit(&state, None, None, &user, "password.change", &format!("{ended} other session(s) ended")).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndedAnswer {
    /// How many sessions (and tokens) ended.
    pub ended: u64,
}

#[utoipa::path(delete, path = "/me/sessions", tag = "accounts",
    responses((status = 200, body = EndedAnswer, description = "Every browser session of the user ended, this one too; API tokens stay")))]
pub async fn end_my_sessions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<EndedAnswer>> {
    let ended = state.store.delete_sessions(&user.id, None).await?;
    audit(&state, None, None, &user, "sessions.end", &format!("{ended} session(s)")).await;
    Ok(Json(EndedAnswer { ended }))
}

#[utoipa::path(get, path = "/tokens", tag = "accounts", responses((status = 200, body = Vec<Credential>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<Vec<Credential>>> {
    Ok(Json(state.store.tokens(&user.id).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    /// Days the token works; default `--token-default-days` (90), at most
    /// `--token-max-days` (365).
    #[schema(minimum = 1)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenAnswer {
    /// The secret: shown this once, never again.
    pub token: String,
    pub credential: Credential,
}

#[utoipa::path(post, path = "/tokens", tag = "accounts", request_body = TokenRequest,
    responses((status = 201, body = TokenAnswer)))]
pub async fn create_token(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenAnswer>)> {
    if body.name.trim().is_empty() {
        return Err(ApiError::bad("give the token a name (what it is for)"));
    }
    let settings = &state.guards.settings;
    let days = body.expires_in_days.unwrap_or(settings.token_default_days);
    if !(1..=settings.token_max_days).contains(&days) {
        return Err(ApiError::bad(format!(
            "a token lasts 1 to {} days (`expires_in_days`); this console allows no more",
            settings.token_max_days
        )));
    }
    let token = auth::new_secret("slt");
    let expires_ms = now_ms() + i64::from(days) * 24 * 3600 * 1000;
    let credential = state
        .store
        .add_credential(&user.id, CredentialKind::Token, body.name.trim(), &auth::hash_secret(&token), Some(expires_ms))
        .await?;
    audit(&state, None, None, &user, "token.create", &format!("{} ({days} days)", credential.name)).await;
    Ok((StatusCode::CREATED, Json(TokenAnswer { token, credential })))
}

#[utoipa::path(delete, path = "/tokens/{id}", tag = "accounts", responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn delete_token(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !state.store.delete_token(&user.id, &id).await? {
        return Err(ApiError::NotFound(format!("you have no token `{id}`")));
    }
    audit(&state, None, None, &user, "token.delete", &id).await;
    Ok(StatusCode::NO_CONTENT)
}
