//! Sign-in, sessions, API tokens and users.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiResult, AppState, Json, audit, check_name};
use crate::auth::{self, CurrentUser, SESSION_COOKIE, SESSION_TTL_MS};
use crate::store::{Credential, CredentialKind, User, now_ms};

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    pub user: User,
}

#[utoipa::path(post, path = "/login", tag = "accounts", request_body = LoginRequest,
    responses((status = 200, body = LoginAnswer), (status = 400, body = super::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    Json(body): Json<LoginRequest>,
) -> ApiResult<(CookieJar, Json<LoginAnswer>)> {
    let user = state.store.user_by_name(&body.name).await?;
    let Some(user) = user.filter(|u| auth::verify_password(&body.password, &u.password_hash)) else {
        return Err(ApiError::BadRequest("wrong user name or password".into()));
    };
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
    let cookie = Cookie::build((SESSION_COOKIE, secret)).http_only(true).same_site(SameSite::Strict).path("/").build();
    Ok((jar.add(cookie), Json(LoginAnswer { user })))
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

#[utoipa::path(get, path = "/tokens", tag = "accounts", responses((status = 200, body = Vec<Credential>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<Vec<Credential>>> {
    Ok(Json(state.store.tokens(&user.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
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
    let token = auth::new_secret("slt");
    let credential = state
        .store
        .add_credential(&user.id, CredentialKind::Token, body.name.trim(), &auth::hash_secret(&token), None)
        .await?;
    audit(&state, None, None, &user, "token.create", &credential.name).await;
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

fn require_admin(user: &User) -> ApiResult<()> {
    if user.is_admin { Ok(()) } else { Err(ApiError::Forbidden("this needs a global admin".into())) }
}

#[utoipa::path(get, path = "/users", tag = "accounts", responses((status = 200, body = Vec<User>)))]
pub async fn list_users(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> ApiResult<Json<Vec<User>>> {
    require_admin(&user)?;
    Ok(Json(state.store.users().await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// Shortest password accepted.
const MIN_PASSWORD: usize = 8;

#[utoipa::path(post, path = "/users", tag = "accounts", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = super::ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    require_admin(&user)?;
    check_name("user", &body.name)?;
    if body.password.chars().count() < MIN_PASSWORD {
        return Err(ApiError::bad(format!("the password needs at least {MIN_PASSWORD} characters")));
    }
    let created = state.store.create_user(&body.name, &auth::hash_password(&body.password), body.is_admin).await?;
    audit(&state, None, None, &user, "user.create", &created.name).await;
    Ok((StatusCode::CREATED, Json(created)))
}
