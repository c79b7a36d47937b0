//! Projects, members, connections and the event log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sluice_runtime::connections::redact_url;

use super::{ApiError, ApiResult, AppState, Json, Query, audit, check_name, project_access};
use crate::auth::{CurrentUser, Role};
use crate::store::{Connection, Event, EventFilter, Membership, Project, now_ms};

#[utoipa::path(get, path = "/projects", tag = "projects", responses((status = 200, body = Vec<Project>)))]
pub async fn list_projects(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<Vec<Project>>> {
    Ok(Json(state.store.projects(if user.is_admin { None } else { Some(&user.id) }).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProject {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[utoipa::path(post, path = "/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = Project), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<NewProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    if !user.is_admin {
        return Err(ApiError::Forbidden("creating a project needs a global admin".into()));
    }
    check_name("project", &body.name)?;
    let project = state.store.create_project(&body.name, &body.description).await?;
    state.store.set_member(&project.id, &user.id, Role::Admin.as_str()).await?;
    audit(&state, Some(&project), None, &user, "project.create", &project.name).await;
    Ok((StatusCode::CREATED, Json(project)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectAnswer {
    pub project: Project,
    /// The caller's role.
    pub role: Role,
    pub members: Vec<Membership>,
}

#[utoipa::path(get, path = "/projects/{p}", tag = "projects", responses((status = 200, body = ProjectAnswer)))]
pub async fn get_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(p): Path<String>,
) -> ApiResult<Json<ProjectAnswer>> {
    let (project, role) = project_access(&state, &user, &p, Role::Viewer).await?;
    let members = state.store.members(&project.id).await?;
    Ok(Json(ProjectAnswer { project, role, members }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberRole {
    pub role: Role,
}

#[utoipa::path(put, path = "/projects/{p}/members/{user}", tag = "projects", request_body = MemberRole,
    responses((status = 204), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn set_member(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, member)): Path<(String, String)>,
    Json(body): Json<MemberRole>,
) -> ApiResult<StatusCode> {
    let (project, _) = project_access(&state, &user, &p, Role::Admin).await?;
    let target = state
        .store
        .user_by_name(&member)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user named `{member}`")))?;
    state.store.set_member(&project.id, &target.id, body.role.as_str()).await?;
    audit(&state, Some(&project), None, &user, "member.set", &format!("{member}: {}", body.role.as_str())).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/projects/{p}/members/{user}", tag = "projects",
    responses((status = 204), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (project, _) = project_access(&state, &user, &p, Role::Admin).await?;
    let target = state
        .store
        .user_by_name(&member)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user named `{member}`")))?;
    if !state.store.remove_member(&project.id, &target.id).await? {
        return Err(ApiError::NotFound(format!("`{member}` is not a member of `{p}`")));
    }
    audit(&state, Some(&project), None, &user, "member.remove", &member).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A connection as the API shows it: the URL without a password, and only
/// whether a secret is set.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub secret_set: bool,
    #[schema(value_type = Object)]
    pub properties: serde_json::Value,
    pub updated_ms: i64,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        ConnectionView {
            url: redact_url(&c.url),
            properties: redact_properties(&c.properties),
            secret_set: c.secret.is_some(),
            name: c.name,
            kind: c.kind,
            updated_ms: c.updated_ms,
        }
    }
}

/// The Kafka properties with the values of secret ones hidden: the
/// password belongs in the write-only `secret`, but a property can carry
/// one too (`sasl.password`, `ssl.key.pem`, `sasl.oauthbearer.config`, …).
fn redact_properties(stored: &str) -> serde_json::Value {
    let mut properties: serde_json::Map<String, serde_json::Value> = serde_json::from_str(stored).unwrap_or_default();
    for (key, value) in properties.iter_mut() {
        if sluice_runtime::connections::is_secret_property(key) {
            *value = "***".into();
        }
    }
    properties.into()
}

#[utoipa::path(get, path = "/projects/{p}/connections", tag = "projects", responses((status = 200, body = Vec<ConnectionView>)))]
pub async fn list_connections(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(p): Path<String>,
) -> ApiResult<Json<Vec<ConnectionView>>> {
    let (project, _) = project_access(&state, &user, &p, Role::Viewer).await?;
    Ok(Json(state.store.connections(&project.id).await?.into_iter().map(ConnectionView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    /// `kafka`, `database` or `redis`.
    pub kind: String,
    /// Kafka: bootstrap servers `host:port,…`; database: `postgres://`,
    /// `mysql://` or `sqlite:` URL; redis: `redis://` URL.
    pub url: String,
    /// Password (write-only; omitted keeps the stored one).
    #[serde(default)]
    pub secret: Option<String>,
    /// Kafka client properties.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: indexmap::IndexMap<String, String>,
}

#[utoipa::path(put, path = "/projects/{p}/connections/{name}", tag = "projects", request_body = ConnectionInput,
    responses((status = 204), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn put_connection(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, name)): Path<(String, String)>,
    Json(body): Json<ConnectionInput>,
) -> ApiResult<StatusCode> {
    let (project, _) = project_access(&state, &user, &p, Role::Admin).await?;
    check_connection(&name, &body)?;
    // What the list shows hidden (`***`) and comes back unchanged keeps the
    // stored value, so editing a connection does not need its passwords —
    // unless it now points elsewhere: secrets never follow a connection to
    // a new host.
    let stored = state.store.connection(&project.id, &name).await?;
    let mut url = body.url.trim().to_owned();
    let mut properties = body.properties;
    let new_secret = body.secret.as_deref().is_some_and(|s| !s.is_empty());
    if let Some(stored) = &stored {
        if url == redact_url(&stored.url) {
            url = stored.url.clone();
        }
        let old: indexmap::IndexMap<String, String> = serde_json::from_str(&stored.properties).unwrap_or_default();
        let moved = body.kind != stored.kind || endpoints(&body.kind, &url) != endpoints(&stored.kind, &stored.url);
        let mut kept = Vec::new();
        for (key, value) in properties.iter_mut() {
            if value == "***"
                && let Some(old_value) = old.get(key)
            {
                *value = old_value.clone();
                kept.push(key.clone());
            }
        }
        if moved && ((stored.secret.is_some() && !new_secret) || !kept.is_empty()) {
            let what =
                if kept.is_empty() { "its secret".to_owned() } else { format!("{} and its secret", kept.join(", ")) };
            return Err(ApiError::bad(format!(
                "connection `{name}` now points at {} instead of {}: give {what} again (stored secrets are never \
                 sent to a new host)",
                endpoints(&body.kind, &url).join(","),
                endpoints(&stored.kind, &stored.url).join(",")
            )));
        }
    }
    check_destination(&state, &project, &body.kind, &url, &properties).await?;
    let connection = Connection {
        name: name.clone(),
        kind: body.kind.clone(),
        url,
        secret: body.secret.filter(|s| !s.is_empty()),
        properties: serde_json::to_string(&properties).expect("strings serialize"),
        updated_ms: now_ms(),
    };
    state.store.put_connection(&project.id, &connection).await?;
    let shown = redact_url(&connection.url);
    audit(&state, Some(&project), None, &user, "connection.put", &format!("{name} ({}) {shown}", body.kind)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Where a connection points: its brokers, or its URL's host and port
/// (a SQLite URL's path).
fn endpoints(kind: &str, url: &str) -> Vec<String> {
    if kind == "kafka" {
        let mut brokers: Vec<String> =
            url.split(',').map(|b| b.trim().to_ascii_lowercase()).filter(|b| !b.is_empty()).collect();
        brokers.sort();
        return brokers;
    }
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "sqlite" => vec![format!("sqlite:{}", u.path())],
        Ok(u) => {
            let default_port = match u.scheme() {
                "postgres" | "postgresql" => 5432,
                "mysql" | "mariadb" => 3306,
                _ => 6379,
            };
            let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
            vec![format!("{host}:{}", u.port().unwrap_or(default_port))]
        }
        Err(_) => vec![url.to_owned()],
    }
}

/// Refuses a connection that points where the operator does not allow
/// (`--allow-hosts`), at a SQLite file outside the project's folder, or
/// with settings a connection may not use.
async fn check_destination(
    state: &AppState,
    project: &Project,
    kind: &str,
    url: &str,
    properties: &indexmap::IndexMap<String, String>,
) -> ApiResult<()> {
    let policy = state.worker.connection_policy(&project.name);
    let checked = match kind {
        "kafka" => {
            let listed: Vec<(&str, &str)> = properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            policy.check_kafka(url, &listed).await
        }
        "database" => policy.database_url(url).await.map(drop),
        _ => policy.check_redis(url).await,
    };
    checked.map_err(ApiError::BadRequest)?;
    if kind != "kafka" && !properties.is_empty() {
        return Err(ApiError::bad("only kafka connections have properties"));
    }
    Ok(())
}

fn check_connection(name: &str, c: &ConnectionInput) -> ApiResult<()> {
    let valid_name = !name.is_empty() && name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
    if !valid_name {
        return Err(ApiError::bad(format!("connection name `{name}` may hold only letters, digits, `_` and `-`")));
    }
    let url = c.url.trim();
    let fits = match c.kind.as_str() {
        "kafka" => !url.is_empty() && !url.contains("://"),
        "database" => {
            ["postgres://", "postgresql://", "mysql://", "mariadb://", "sqlite:"].iter().any(|s| url.starts_with(s))
        }
        "redis" => url.starts_with("redis://") || url.starts_with("rediss://"),
        other => {
            return Err(ApiError::bad(format!("connection kind `{other}` is not known; use kafka, database or redis")));
        }
    };
    if !fits {
        return Err(ApiError::bad(match c.kind.as_str() {
            "kafka" => "a kafka connection's url is its bootstrap servers, `host:port[,host:port]`, without a scheme",
            "database" => "a database url starts with postgres://, mysql:// or sqlite:",
            _ => "a redis url starts with redis://",
        }));
    }
    Ok(())
}

#[utoipa::path(delete, path = "/projects/{p}/connections/{name}", tag = "projects",
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn delete_connection(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (project, _) = project_access(&state, &user, &p, Role::Admin).await?;
    if !state.store.delete_connection(&project.id, &name).await? {
        return Err(ApiError::NotFound(format!("project `{p}` has no connection `{name}`")));
    }
    audit(&state, Some(&project), None, &user, "connection.delete", &name).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventQuery {
    /// Only this job's events.
    pub job: Option<String>,
    /// `audit`, `run` or `error`.
    pub kind: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/projects/{p}/events", tag = "projects", params(EventQuery),
    responses((status = 200, body = Vec<Event>)))]
pub async fn list_events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(p): Path<String>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<Vec<Event>>> {
    let (project, _) = project_access(&state, &user, &p, Role::Viewer).await?;
    let job = match &q.job {
        Some(name) => Some(
            state.store.job(&project.id, name).await?.ok_or_else(|| ApiError::NotFound(format!("no job `{name}`")))?,
        ),
        None => None,
    };
    let filter = EventFilter {
        project_id: Some(&project.id),
        job_id: job.as_ref().map(|j| j.id.as_str()),
        kind: q.kind.as_deref(),
        limit: q.limit.unwrap_or(200).clamp(1, 1000),
    };
    Ok(Json(state.store.events(filter).await?))
}

#[utoipa::path(get, path = "/projects/{p}/connections/{name}/topics", tag = "projects",
    responses((status = 200, body = Vec<crate::topics::TopicInfo>), (status = 400, body = super::ErrorBody)))]
pub async fn list_topics(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<crate::topics::TopicInfo>>> {
    let (project, _) = project_access(&state, &user, &p, Role::Viewer).await?;
    let connection = kafka_connection(&state, &project, &name).await?;
    let topics = crate::topics::list(&connection).await.map_err(|e| ApiError::bad(format!("{e:#}")))?;
    Ok(Json(topics))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTopic {
    pub name: String,
    #[serde(default = "one_partition")]
    pub partitions: i32,
}

fn one_partition() -> i32 {
    1
}

#[utoipa::path(post, path = "/projects/{p}/connections/{name}/topics", tag = "projects", request_body = NewTopic,
    responses((status = 201), (status = 400, body = super::ErrorBody)))]
pub async fn create_topic(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((p, name)): Path<(String, String)>,
    Json(body): Json<NewTopic>,
) -> ApiResult<StatusCode> {
    let (project, _) = project_access(&state, &user, &p, Role::Developer).await?;
    let connection = kafka_connection(&state, &project, &name).await?;
    let valid = !body.name.is_empty()
        && body.name.len() <= 249
        && body.name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if !valid {
        return Err(ApiError::bad(format!(
            "topic name `{}` is not valid: use letters, digits, `.`, `_` and `-` (at most 249)",
            body.name
        )));
    }
    if !(1..=1024).contains(&body.partitions) {
        return Err(ApiError::bad("partitions must be between 1 and 1024"));
    }
    if sluice_runtime::job::stages::is_reserved_topic(&body.name) {
        return Err(ApiError::bad(format!(
            "topic name `{}` begins with `sluice.` or `sluice_`, which name the platform's repartition topics",
            body.name
        )));
    }
    crate::topics::create(&connection, &body.name, body.partitions)
        .await
        .map_err(|e| ApiError::bad(format!("{e:#}")))?;
    audit(
        &state,
        Some(&project),
        None,
        &user,
        "topic.create",
        &format!("{name}/{} ({} partitions)", body.name, body.partitions),
    )
    .await;
    Ok(StatusCode::CREATED)
}

/// A Kafka connection of the project, checked against the rules (it may
/// have been stored before they were stricter).
async fn kafka_connection(state: &AppState, project: &Project, name: &str) -> ApiResult<Connection> {
    let connection = state
        .store
        .connection(&project.id, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project `{}` has no connection `{name}`", project.name)))?;
    if connection.kind != "kafka" {
        return Err(ApiError::bad(format!("connection `{name}` is a {} connection, not kafka", connection.kind)));
    }
    let properties: indexmap::IndexMap<String, String> =
        serde_json::from_str(&connection.properties).unwrap_or_default();
    check_destination(state, project, "kafka", &connection.url, &properties)
        .await
        .map_err(|e| ApiError::bad(format!("connection `{name}`: {e}")))?;
    Ok(connection)
}
