//! Users and their credentials (browser sessions and API tokens).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult, conflict, new_id, now_ms};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub name: String,
    pub is_admin: bool,
    /// A disabled user cannot sign in; its sessions and tokens do not work.
    pub disabled: bool,
    pub created_ms: i64,
    #[serde(skip)]
    pub password_hash: String,
}

impl User {
    fn from_row(r: &AnyRow) -> StoreResult<User> {
        Ok(User {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            is_admin: r.try_get::<i64, _>("is_admin")? != 0,
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            created_ms: r.try_get("created_ms")?,
            password_hash: r.try_get("password_hash")?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Session,
    Token,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Session => "session",
            CredentialKind::Token => "token",
        }
    }
}

/// An API token as listed (never with its secret).
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Credential {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
}

const USER_COLUMNS: &str = "id, name, password_hash, is_admin, disabled, created_ms";

/// How long an API token made before tokens had an expiry keeps working
/// after the upgrade that gave them one.
const ENDLESS_TOKEN_GRACE_MS: i64 = 90 * 24 * 3600 * 1000;

impl Store {
    pub async fn create_user(&self, name: &str, password_hash: &str, is_admin: bool) -> StoreResult<User> {
        let user = User {
            id: new_id(),
            name: name.to_owned(),
            is_admin,
            disabled: false,
            created_ms: now_ms(),
            password_hash: password_hash.to_owned(),
        };
        sqlx::query("insert into users (id, name, password_hash, is_admin, created_ms) values ($1, $2, $3, $4, $5)")
            .bind(&user.id)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(is_admin as i64)
            .bind(user.created_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, || format!("a user named `{name}` already exists")))?;
        Ok(user)
    }

    pub async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query("select count(*) as n from users").fetch_one(&self.pool).await?.try_get("n")?)
    }

    pub async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("select {USER_COLUMNS} from users where name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(User::from_row).transpose()
    }

    pub async fn users(&self) -> StoreResult<Vec<User>> {
        let rows =
            sqlx::query(&format!("select {USER_COLUMNS} from users order by name")).fetch_all(&self.pool).await?;
        rows.iter().map(User::from_row).collect()
    }

    pub async fn set_password(&self, user_id: &str, password_hash: &str) -> StoreResult<()> {
        sqlx::query("update users set password_hash = $1 where id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a credential by the hash of its secret.
    pub async fn add_credential(
        &self,
        user_id: &str,
        kind: CredentialKind,
        name: &str,
        secret_hash: &str,
        expires_ms: Option<i64>,
    ) -> StoreResult<Credential> {
        let credential = Credential { id: new_id(), name: name.to_owned(), created_ms: now_ms(), expires_ms };
        sqlx::query(
            "insert into credentials (id, user_id, kind, name, secret_hash, created_ms, expires_ms)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&credential.id)
        .bind(user_id)
        .bind(kind.as_str())
        .bind(name)
        .bind(secret_hash)
        .bind(credential.created_ms)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(credential)
    }

    /// The user a live credential belongs to (never a disabled user).
    pub async fn user_by_credential(&self, secret_hash: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "select {} from users u join credentials c on c.user_id = u.id
             where c.secret_hash = $1 and (c.expires_ms is null or c.expires_ms > $2) and u.disabled = 0",
            USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(secret_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(User::from_row).transpose()
    }

    /// The user's roles, one per project it is a member of.
    pub async fn roles(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let rows =
            sqlx::query("select role from memberships where user_id = $1").bind(user_id).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get("role")?)).collect()
    }

    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<()> {
        sqlx::query("update users set disabled = $1 where id = $2")
            .bind(disabled as i64)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends the user's browser sessions, but the one whose secret hashes to
    /// `keep`; returns how many ended.
    pub async fn delete_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
        let done = sqlx::query("delete from credentials where user_id = $1 and kind = 'session' and secret_hash <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Ends every session and API token of the user; returns how many.
    pub async fn delete_credentials(&self, user_id: &str) -> StoreResult<u64> {
        let done = sqlx::query("delete from credentials where user_id = $1").bind(user_id).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Gives API tokens made before tokens expired an expiry
    /// (`ENDLESS_TOKEN_GRACE_MS` from now), so no token works for ever.
    pub(super) async fn expire_endless_tokens(&self) -> StoreResult<()> {
        sqlx::query("update credentials set expires_ms = $1 where expires_ms is null")
            .bind(now_ms() + ENDLESS_TOKEN_GRACE_MS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_credential_by_hash(&self, secret_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from credentials where secret_hash = $1").bind(secret_hash).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn tokens(&self, user_id: &str) -> StoreResult<Vec<Credential>> {
        let rows = sqlx::query(
            "select id, name, created_ms, expires_ms from credentials
             where user_id = $1 and kind = 'token' order by created_ms",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Credential {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_ms: r.try_get("created_ms")?,
                    expires_ms: r.try_get("expires_ms")?,
                })
            })
            .collect()
    }

    /// Deletes one of the user's tokens; false when there is none by that id.
    pub async fn delete_token(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("delete from credentials where id = $1 and user_id = $2 and kind = 'token'")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
