//! Named connections: the Kafka clusters, databases and Redis servers that
//! job specs refer to by name, so addresses and secrets stay out of specs
//! (as the platform's connection registry; see docs/CONNECTIONS.md).
//!
//! A registry is a TOML file of `[connections.NAME]` tables. Secrets are
//! never written in it either: a `password` names an environment variable or
//! a file that holds it.

mod kafka_properties;
mod policy;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
pub use kafka_properties::{CONNECTION_ONLY, SPEC_TUNABLE, check_connection_property, check_spec_property};
pub use policy::{ConnectionPolicy, HostRule, HostRules};
use serde::{Deserialize, Serialize};

/// The connection registry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    #[serde(default)]
    pub connections: IndexMap<String, Connection>,
    /// Where the connections may point and what they may set: the
    /// platform's rules for a project (the console sets them); none for a
    /// local run.
    #[serde(skip)]
    pub policy: ConnectionPolicy,
}

/// One named connection, chosen by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Connection {
    Kafka(KafkaConnection),
    Database(DatabaseConnection),
    Redis(RedisConnection),
}

/// A Kafka (or Kafka-protocol) cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConnection {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Extra librdkafka client properties (security.protocol, sasl.*, ...).
    #[serde(default)]
    pub properties: IndexMap<String, String>,
    /// Sets `sasl.password`.
    #[serde(default)]
    pub password: Option<Secret>,
}

/// A SQL database: `postgres://`, `mysql://` (MySQL and MariaDB) or `sqlite:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConnection {
    pub url: String,
    /// Replaces the password of `url`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Pool size per sink or dimension store.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_max_connections() -> u32 {
    2
}

/// A Redis server: `redis://host:port/db`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConnection {
    pub url: String,
    /// Replaces the password of `url`.
    #[serde(default)]
    pub password: Option<Secret>,
}

/// Where a secret is read from.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Secret {
    /// An environment variable's value.
    Env(String),
    /// A file's contents, trailing newline removed.
    File(PathBuf),
    /// The secret itself, handed over by the console from its metadata
    /// store; never read from or written to a registry file.
    #[serde(skip)]
    Value(String),
}

/// A registry or connection that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("cannot read connection registry {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid connection registry {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "connection `{name}` is not in the connection registry; declare it under [connections.{name}] in the \
         registry file or pass --connection {name}=URL"
    )]
    Unknown { name: String },
    #[error("connection `{name}` is a {actual} connection, but {wanted} needs a {expected} connection")]
    WrongKind { name: String, actual: &'static str, expected: &'static str, wanted: String },
    #[error("connection `{name}`: {message}")]
    Secret { name: String, message: String },
}

impl Connections {
    pub fn load(path: &Path) -> Result<Self, ConnectionError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConnectionError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConnectionError::Parse { path: path.into(), message: e.to_string() })
    }

    pub fn insert(&mut self, name: &str, connection: Connection) {
        self.connections.insert(name.to_owned(), connection);
    }

    /// Applies a `NAME=VALUE` override (for local runs): VALUE replaces the
    /// URL (or broker list) of connection NAME, or declares it, the kind
    /// told by the scheme (`postgres://`, `mysql://`, `sqlite:`, `redis://`;
    /// anything else is a Kafka broker list).
    pub fn apply_override(&mut self, text: &str) -> Result<(), String> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("--connection `{text}` must be NAME=URL, e.g. db=postgres://..."))?;
        let (name, value) = (name.trim(), value.trim().to_owned());
        match self.connections.get_mut(name) {
            Some(Connection::Kafka(k)) => k.brokers = value,
            Some(Connection::Database(d)) => d.url = value,
            Some(Connection::Redis(r)) => r.url = value,
            None => {
                let connection = if ["postgres://", "postgresql://", "mysql://", "mariadb://", "sqlite:"]
                    .iter()
                    .any(|s| value.starts_with(s))
                {
                    Connection::Database(DatabaseConnection {
                        url: value,
                        password: None,
                        max_connections: default_max_connections(),
                    })
                } else if value.starts_with("redis://") || value.starts_with("rediss://") {
                    Connection::Redis(RedisConnection { url: value, password: None })
                } else {
                    Connection::Kafka(KafkaConnection { brokers: value, properties: IndexMap::new(), password: None })
                };
                self.insert(name, connection);
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<&Connection, ConnectionError> {
        self.connections.get(name).ok_or_else(|| ConnectionError::Unknown { name: name.to_owned() })
    }

    /// The Kafka connection `name`, for `wanted` (e.g. "source `orders`").
    pub fn kafka(&self, name: &str, wanted: &str) -> Result<&KafkaConnection, ConnectionError> {
        match self.get(name)? {
            Connection::Kafka(k) => Ok(k),
            other => Err(wrong_kind(name, other, "kafka", wanted)),
        }
    }

    pub fn database(&self, name: &str, wanted: &str) -> Result<&DatabaseConnection, ConnectionError> {
        match self.get(name)? {
            Connection::Database(d) => Ok(d),
            other => Err(wrong_kind(name, other, "database", wanted)),
        }
    }

    pub fn redis(&self, name: &str, wanted: &str) -> Result<&RedisConnection, ConnectionError> {
        match self.get(name)? {
            Connection::Redis(r) => Ok(r),
            other => Err(wrong_kind(name, other, "redis", wanted)),
        }
    }
}

fn wrong_kind(name: &str, actual: &Connection, expected: &'static str, wanted: &str) -> ConnectionError {
    let actual = match actual {
        Connection::Kafka(_) => "kafka",
        Connection::Database(_) => "database",
        Connection::Redis(_) => "redis",
    };
    ConnectionError::WrongKind { name: name.to_owned(), actual, expected, wanted: wanted.to_owned() }
}

/// Never prints a secret's value.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Env(var) => f.debug_tuple("Env").field(var).finish(),
            Secret::File(path) => f.debug_tuple("File").field(path).finish(),
            Secret::Value(_) => f.write_str("Value(***)"),
        }
    }
}

impl Secret {
    /// Reads the secret; `connection` names it in errors.
    pub fn read(&self, connection: &str) -> Result<String, ConnectionError> {
        let err = |message| ConnectionError::Secret { name: connection.to_owned(), message };
        match self {
            Secret::Env(var) => {
                std::env::var(var).map_err(|_| err(format!("password environment variable `{var}` is not set")))
            }
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| err(format!("cannot read password file {}: {e}", path.display()))),
            Secret::Value(value) => Ok(value.clone()),
        }
    }
}

/// Reads an optional secret.
pub fn read_secret(secret: &Option<Secret>, connection: &str) -> Result<Option<String>, ConnectionError> {
    secret.as_ref().map(|s| s.read(connection)).transpose()
}

/// The URL without its secrets, for messages, logs and the console's
/// viewers: the password of its user info and the values of query
/// parameters that look secret (`?password=`, `sslpassword`, `token`, …).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => rest[..authority_end].to_owned(),
        },
        None => rest[..authority_end].to_owned(),
    };
    let mut out = format!("{scheme}://{authority}{}", &rest[authority_end..]);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_property(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Whether a setting's value is a secret to hide from viewers: passwords,
/// secrets, tokens, private keys (`ssl.key.pem`) and the OAuth bearer
/// configuration (which may hold a client secret).
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "credential", "key.pem", "oauthbearer.config", "apikey", "api_key"]
        .iter()
        .any(|marker| key.contains(marker))
        || key == "key"
        || key == "sslkey"
        || key == "ssl-key"
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = r#"
        [connections.events]
        kind = "kafka"
        brokers = "127.0.0.1:9092"

        [connections.warehouse]
        kind = "database"
        url = "postgres://sluice@127.0.0.1/test"
        password = { env = "SLUICE_TEST_UNSET_PASSWORD" }
    "#;

    #[test]
    fn looks_up_by_name_and_kind() {
        let c: Connections = toml::from_str(REGISTRY).unwrap();
        assert_eq!(c.kafka("events", "source `in`").unwrap().brokers, "127.0.0.1:9092");
        let err = c.kafka("warehouse", "source `in`").unwrap_err().to_string();
        assert!(err.contains("`warehouse` is a database connection") && err.contains("source `in`"), "{err}");
        let err = c.database("nope", "sink `out`").unwrap_err().to_string();
        assert!(err.contains("[connections.nope]"), "{err}");
    }

    #[test]
    fn missing_secrets_name_the_variable() {
        let c: Connections = toml::from_str(REGISTRY).unwrap();
        let db = c.database("warehouse", "sink").unwrap();
        let err = read_secret(&db.password, "warehouse").unwrap_err().to_string();
        assert!(err.contains("SLUICE_TEST_UNSET_PASSWORD"), "{err}");
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact_url("redis://:secret@host:6379/2"), "redis://:***@host:6379/2");
        assert_eq!(redact_url("postgres://app:secret@host/db"), "postgres://app:***@host/db");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("redis://app@host/0"), "redis://app@host/0");
        assert_eq!(
            redact_url("postgres://app@host/db?sslmode=require&password=hunter2&sslpassword=x"),
            "postgres://app@host/db?sslmode=require&password=***&sslpassword=***"
        );
        assert_eq!(redact_url("mysql://u:p@h/db?auth_token=t"), "mysql://u:***@h/db?auth_token=***");
    }

    #[test]
    fn secret_properties_are_told_apart() {
        for key in [
            "sasl.password",
            "ssl.key.pem",
            "ssl.key.password",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret_property(key), "{key}");
        }
        for key in ["sasl.username", "security.protocol", "ssl.certificate.pem", "ssl.ca.pem", "linger.ms"] {
            assert!(!is_secret_property(key), "{key}");
        }
    }

    #[test]
    fn overrides_replace_or_declare() {
        let mut c: Connections = toml::from_str(REGISTRY).unwrap();
        c.apply_override("events=10.0.0.1:9092").unwrap();
        c.apply_override("cache=redis://127.0.0.1:6379").unwrap();
        c.apply_override("local=sqlite:out.db").unwrap();
        assert_eq!(c.kafka("events", "x").unwrap().brokers, "10.0.0.1:9092");
        assert!(c.redis("cache", "x").is_ok());
        assert_eq!(c.database("local", "x").unwrap().url, "sqlite:out.db");
        assert!(c.apply_override("no-equals").is_err());
    }
}
