//! Projects (namespaces), their members and their connections.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Dialect, Store, StoreError, StoreResult, conflict, new_id, now_ms};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_ms: i64,
}

impl Project {
    fn from_row(r: &AnyRow) -> StoreResult<Project> {
        Ok(Project {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            created_ms: r.try_get("created_ms")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Membership {
    pub user: String,
    pub role: String,
}

/// A connection as stored. The secret never leaves the server: the API
/// shows only whether one is set.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub secret: Option<String>,
    /// JSON object of extra properties (Kafka client settings).
    pub properties: String,
    pub updated_ms: i64,
}

impl Store {
    pub async fn create_project(&self, name: &str, description: &str) -> StoreResult<Project> {
        let project =
            Project { id: new_id(), name: name.to_owned(), description: description.to_owned(), created_ms: now_ms() };
        sqlx::query("insert into projects (id, name, description, created_ms) values ($1, $2, $3, $4)")
            .bind(&project.id)
            .bind(&project.name)
            .bind(&project.description)
            .bind(project.created_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, || format!("a project named `{name}` already exists")))?;
        Ok(project)
    }

    pub async fn project(&self, name: &str) -> StoreResult<Option<Project>> {
        let row = sqlx::query("select id, name, description, created_ms from projects where name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Project::from_row).transpose()
    }

    pub async fn project_by_id(&self, id: &str) -> StoreResult<Option<Project>> {
        let row = sqlx::query("select id, name, description, created_ms from projects where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Project::from_row).transpose()
    }

    /// Every project, or only those `user_id` is a member of.
    pub async fn projects(&self, member: Option<&str>) -> StoreResult<Vec<Project>> {
        let rows = match member {
            None => {
                sqlx::query("select id, name, description, created_ms from projects order by name")
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(user) => {
                sqlx::query(
                    "select p.id, p.name, p.description, p.created_ms from projects p
                 join memberships m on m.project_id = p.id where m.user_id = $1 order by p.name",
                )
                .bind(user)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(Project::from_row).collect()
    }

    /// Gives `user_id` `role` in the project (replacing any role it had).
    pub async fn set_member(&self, project_id: &str, user_id: &str, role: &str) -> StoreResult<()> {
        sqlx::query("delete from memberships where project_id = $1 and user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        sqlx::query("insert into memberships (project_id, user_id, role) values ($1, $2, $3)")
            .bind(project_id)
            .bind(user_id)
            .bind(role)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn remove_member(&self, project_id: &str, user_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("delete from memberships where project_id = $1 and user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn role_of(&self, project_id: &str, user_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("select role from memberships where project_id = $1 and user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("role")).transpose()?)
    }

    pub async fn members(&self, project_id: &str) -> StoreResult<Vec<Membership>> {
        let rows = sqlx::query(
            "select u.name, m.role from memberships m join users u on u.id = m.user_id
             where m.project_id = $1 order by u.name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(Membership { user: r.try_get("name")?, role: r.try_get("role")? })).collect()
    }

    /// Creates or replaces a connection. A `None` secret keeps the one
    /// stored (so editing a URL does not need the password again).
    pub async fn put_connection(&self, project_id: &str, c: &Connection) -> StoreResult<()> {
        let kept = match &c.secret {
            Some(s) => Some(s.clone()),
            None => self.connection(project_id, &c.name).await?.and_then(|old| old.secret),
        };
        let seal = |column: &str, value: &str| self.key.seal(value, &sealing_context(project_id, &c.name, column));
        sqlx::query("delete from connections where project_id = $1 and name = $2")
            .bind(project_id)
            .bind(&c.name)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "insert into connections (project_id, name, kind, url, secret, properties, updated_ms, sealed)
             values ($1, $2, $3, $4, $5, $6, $7, 1)",
        )
        .bind(project_id)
        .bind(&c.name)
        .bind(&c.kind)
        .bind(seal("url", &c.url))
        .bind(kept.map(|secret| seal("secret", &secret)))
        .bind(seal("properties", &c.properties))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn connection(&self, project_id: &str, name: &str) -> StoreResult<Option<Connection>> {
        Ok(self.connections(project_id).await?.into_iter().find(|c| c.name == name))
    }

    pub async fn connections(&self, project_id: &str) -> StoreResult<Vec<Connection>> {
        let rows = sqlx::query(
            "select name, kind, url, secret, properties, updated_ms, sealed from connections
             where project_id = $1 order by name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                let sealed = r.try_get::<i64, _>("sealed")? != 0;
                let open = |column: &str, value: String| {
                    if !sealed {
                        return Ok(value);
                    }
                    self.key.open(&value, &sealing_context(project_id, &name, column)).ok_or_else(|| {
                        StoreError::Secret(format!(
                            "connection `{name}`: its stored {column} does not open with this console's secret key \
                             (the row was altered or copied from another store); set the connection again"
                        ))
                    })
                };
                let secret: Option<String> = r.try_get("secret")?;
                Ok(Connection {
                    kind: r.try_get("kind")?,
                    url: open("url", r.try_get("url")?)?,
                    secret: secret.map(|s| open("secret", s)).transpose()?,
                    properties: open("properties", r.try_get("properties")?)?,
                    updated_ms: r.try_get("updated_ms")?,
                    name,
                })
            })
            .collect()
    }

    pub async fn delete_connection(&self, project_id: &str, name: &str) -> StoreResult<bool> {
        let done = sqlx::query("delete from connections where project_id = $1 and name = $2")
            .bind(project_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// What a connection's sealed column is bound to: its project, its name and
/// the column (project ids are hex, so the parts cannot run together).
fn sealing_context(project_id: &str, name: &str, column: &str) -> String {
    format!("connection:{project_id}:{column}:{name}")
}

/// The value sealed into `secret_key_check`, and what it is bound to.
const KEY_CHECK: &str = "sluice secret key check";

impl Store {
    /// Refuses a key other than the one the stored connections were sealed
    /// with: better at start than when a job first needs a password.
    pub(super) async fn check_secret_key(&self) -> StoreResult<()> {
        // The first start on a store seals the check value; consoles
        // starting together on one store agree on whichever came first.
        sqlx::query("insert into secret_key_check (id, sealed) values (1, $1) on conflict (id) do nothing")
            .bind(self.key.seal(KEY_CHECK, KEY_CHECK))
            .execute(&self.pool)
            .await?;
        let sealed: String = sqlx::query("select sealed from secret_key_check where id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get("sealed")?;
        if self.key.open(&sealed, KEY_CHECK).as_deref() != Some(KEY_CHECK) {
            return Err(StoreError::Secret(
                "the secret key is not the one this metadata store's connections were sealed with; \
                 give the console the key file it had"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Seals the connections written before sealing existed.
    pub(super) async fn seal_unsealed_connections(&self) -> StoreResult<()> {
        let rows =
            sqlx::query("select project_id, name from connections where sealed = 0").fetch_all(&self.pool).await?;
        for r in &rows {
            let project_id: String = r.try_get("project_id")?;
            let name: String = r.try_get("name")?;
            // Read as given (unsealed), written back sealed.
            if let Some(connection) = self.connection(&project_id, &name).await? {
                self.put_connection(&project_id, &connection).await?;
            }
        }
        if !rows.is_empty() {
            self.scrub_freed_pages().await?;
        }
        Ok(())
    }

    /// Rewrites the database files so that the rows just replaced do not
    /// linger, readable, in freed pages (SQLite) or dead tuples (PostgreSQL).
    async fn scrub_freed_pages(&self) -> StoreResult<()> {
        let statements: &[&str] = match self.dialect {
            Dialect::Sqlite => &["vacuum", "pragma wal_checkpoint(truncate)"],
            Dialect::Postgres => &["vacuum full connections"],
        };
        for statement in statements {
            sqlx::query(statement).execute(&self.pool).await?;
        }
        Ok(())
    }
}
