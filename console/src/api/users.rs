//! Users, for global admins: create, list, disable, reset a password and
//! revoke every credential of a user.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::accounts::{EndedAnswer, check_password};
use super::{ApiError, ApiResult, AppState, Json, audit, check_name};
use crate::auth::CurrentUser;
use crate::store::User;

fn require_admin(user: &User) -> ApiResult<()> {
    if user.is_admin { Ok(()) } else { Err(ApiError::Forbidden("this needs a global admin".into())) }
}

async fn target(state: &AppState, name: &str) -> ApiResult<User> {
    state.store.user_by_name(name).await?.ok_or_else(|| ApiError::NotFound(format!("no user named `{name}`")))
}

#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = Vec<User>), (status = 403, body = super::ErrorBody)))]
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

#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    require_admin(&user)?;
    check_name("user", &body.name)?;
    check_password(&body.password)?;
    let hash = state.guards.passwords.hash(body.password).await?;
    let created = state.store.create_user(&body.name, &hash, body.is_admin).await?;
    audit(&state, None, None, &user, "user.create", &created.name).await;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// A disabled user cannot sign in, and its sessions and API tokens end.
    pub disabled: Option<bool>,
}

#[utoipa::path(patch, path = "/users/{name}", tag = "users", request_body = UserChange,
    responses((status = 200, body = User), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
    Json(body): Json<UserChange>,
) -> ApiResult<Json<User>> {
    require_admin(&user)?;
    let mut target = target(&state, &name).await?;
    if let Some(disabled) = body.disabled {
        if disabled && target.id == user.id {
            return Err(ApiError::bad("you cannot disable your own account; ask another global admin"));
        }
        state.store.set_disabled(&target.id, disabled).await?;
        if disabled {
            state.store.delete_credentials(&target.id).await?;
        }
        target.disabled = disabled;
        audit(&state, None, None, &user, if disabled { "user.disable" } else { "user.enable" }, &name).await;
    }
    Ok(Json(target))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub password: String,
}

#[utoipa::path(put, path = "/users/{name}/password", tag = "users", request_body = PasswordReset,
    responses((status = 204, description = "Set; the user's browser sessions end and a sign-in lock is lifted"),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
    Json(body): Json<PasswordReset>,
) -> ApiResult<StatusCode> {
    require_admin(&user)?;
    let target = target(&state, &name).await?;
    check_password(&body.password)?;
    let hash = state.guards.passwords.hash(body.password).await?;
    state.store.set_password(&target.id, &hash).await?;
    state.store.delete_sessions(&target.id, None).await?;
    state.guards.logins.clear(&target.name);
    audit(&state, None, None, &user, "user.password_reset", &name).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/users/{name}/credentials", tag = "users",
    responses((status = 200, body = EndedAnswer, description = "Every session and API token of the user ended"),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn revoke_credentials(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
) -> ApiResult<Json<EndedAnswer>> {
    require_admin(&user)?;
    let target = target(&state, &name).await?;
    let ended = state.store.delete_credentials(&target.id).await?;
    audit(&state, None, None, &user, "user.revoke", &format!("{name}: {ended} session(s) and token(s)")).await;
    Ok(Json(EndedAnswer { ended }))
}
