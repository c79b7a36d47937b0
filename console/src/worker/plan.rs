//! Turning what the console stores (a deployment's spec text, parameters,
//! limits, a project's connections) into what the runtime runs: a
//! `JobSpec` per partition group and a connection registry.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use indexmap::IndexMap;
use sluice_runtime::connections::{
    Connection as RuntimeConnection, ConnectionPolicy, Connections, DatabaseConnection, HostRule, HostRules,
    KafkaConnection, RedisConnection, Secret,
};
use sluice_runtime::connectors::kafka::{StartPosition as KafkaStart, Timestamp};
use sluice_runtime::job::spec::SpecError;
use sluice_runtime::job::{JobSpec, SpecOverrides};

use crate::store::{Connection, Deployment};

/// The snapshot key (and runtime job name) of a job's partition group:
/// `project__job`, with `__pI-of-N` when it runs in several groups. Names
/// hold no `_`, so keys never collide.
pub fn snapshot_key(project: &str, job: &str, group: u32, groups: u32) -> String {
    if groups <= 1 { format!("{project}__{job}") } else { format!("{project}__{job}__p{group}-of-{groups}") }
}

/// The shard a snapshot key (`snapshot_key`) names: 0 for a job of one.
pub fn shard_of(key: &str) -> u32 {
    let Some((_, group)) = key.rsplit_once("__p") else { return 0 };
    group.split_once("-of-").and_then(|(s, _)| s.parse().ok()).unwrap_or(0)
}

/// How a run's sources start when it does not restore a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum StartPosition {
    Earliest,
    Latest,
    /// Kafka timestamp, ms.
    Timestamp(i64),
}

impl StartPosition {
    /// `earliest`, `latest`, an RFC 3339 time or epoch milliseconds.
    pub fn parse(text: &str) -> Result<StartPosition, String> {
        match text.trim() {
            "earliest" => Ok(StartPosition::Earliest),
            "latest" => Ok(StartPosition::Latest),
            t => t
                .parse::<i64>()
                .ok()
                .or_else(|| chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis()))
                .map(StartPosition::Timestamp)
                .ok_or_else(|| {
                    format!("start position `{t}` is not earliest, latest, an RFC 3339 time or epoch milliseconds")
                }),
        }
    }

    /// Where a Kafka source starts, in the runtime's terms.
    fn for_sources(&self) -> KafkaStart {
        match self {
            StartPosition::Earliest => KafkaStart::Earliest,
            StartPosition::Latest => KafkaStart::Latest,
            StartPosition::Timestamp(ms) => KafkaStart::Timestamp(Timestamp::Millis(*ms)),
        }
    }
}

/// The spec a deployment runs as: its text with the console's settings
/// laid over it by the runtime's typed overrides. `base_dir` is the
/// project's file area, which file connectors may not leave.
pub fn job_spec(
    deployment: &Deployment,
    key: &str,
    start: Option<&StartPosition>,
    base_dir: &Path,
) -> Result<JobSpec, String> {
    let overrides = SpecOverrides {
        name: key.to_owned(),
        // The component is the deployed version, not a path in the spec.
        component: "component.wasm".into(),
        parameters: deployment.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        // A negative figure becomes 0, which the spec check refuses.
        memory_mb: deployment.memory_mb.map(|mb| u64::try_from(mb).unwrap_or(0)),
        cpu_per_batch: deployment.cpu_ms.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        kafka_start: start.map(StartPosition::for_sources),
        confine_files: true,
    };
    JobSpec::parse_with(&deployment.spec, base_dir, &overrides).map_err(|e| match e {
        SpecError::Parse { message, .. } => format!("spec: {message}"),
        other => other.to_string(),
    })
}

/// The operator's rules for every project's connections (`sluice serve
/// --allow-hosts`, `--allow-kafka-properties`) and the platform's own
/// endpoints that connections may use (the embedded broker, `--kafka`).
#[derive(Debug, Default)]
pub struct PlatformRules {
    /// `None`: anywhere but loopback and link-local addresses.
    pub allow_hosts: Option<Vec<HostRule>>,
    /// Kafka settings connections may use beyond the standard list.
    pub kafka_properties: Vec<String>,
    platform_endpoints: Mutex<Vec<String>>,
}

impl PlatformRules {
    pub fn new(allow_hosts: Option<Vec<HostRule>>, kafka_properties: Vec<String>) -> Self {
        PlatformRules { allow_hosts, kafka_properties, platform_endpoints: Mutex::default() }
    }

    /// Lets connections use the platform's brokers `host:port,…` (started
    /// or named by the operator) whatever `--allow-hosts` says.
    pub fn allow_platform_brokers(&self, brokers: &str) {
        let mut endpoints = self.platform_endpoints.lock().expect("endpoints lock");
        endpoints.extend(brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned));
    }

    /// The runtime policy of `project`'s connections: these hosts, SQLite
    /// files in the project's file area `DATA/files/<project>`.
    pub fn policy(&self, data_dir: &Path, project: &str) -> ConnectionPolicy {
        let hosts = HostRules {
            allow: self.allow_hosts.clone(),
            platform_endpoints: self.platform_endpoints.lock().expect("endpoints lock").clone(),
        };
        ConnectionPolicy::platform(hosts, project_files(data_dir, project), self.kafka_properties.clone())
    }
}

/// A project's file area: its file connectors' files and SQLite databases.
pub fn project_files(data_dir: &Path, project: &str) -> PathBuf {
    data_dir.join("files").join(project)
}

/// A project's connections as the runtime's registry, held to `policy`;
/// secrets are handed over in memory, never written anywhere.
pub fn connections(stored: &[Connection], policy: ConnectionPolicy) -> Result<Connections, String> {
    let mut registry = Connections { policy, ..Connections::default() };
    for c in stored {
        let password = c.secret.clone().map(Secret::Value);
        let connection = match c.kind.as_str() {
            "kafka" => {
                let properties: IndexMap<String, String> = serde_json::from_str(&c.properties)
                    .map_err(|e| format!("connection `{}`: properties: {e}", c.name))?;
                RuntimeConnection::Kafka(KafkaConnection { brokers: c.url.clone(), properties, password })
            }
            "database" => {
                RuntimeConnection::Database(DatabaseConnection { url: c.url.clone(), password, max_connections: 2 })
            }
            "redis" => RuntimeConnection::Redis(RedisConnection { url: c.url.clone(), password }),
            other => return Err(format!("connection `{}` has unknown kind `{other}`", c.name)),
        };
        registry.insert(&c.name, connection);
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(spec: &str) -> Deployment {
        Deployment {
            job_id: "j".into(),
            version_id: "v".into(),
            spec: spec.into(),
            parameters: [("threshold".to_owned(), "0.2".to_owned())].into_iter().collect(),
            parallelism: 1,
            memory_mb: Some(32),
            cpu_ms: Some(500),
            schedule: None,
            updated_ms: 0,
        }
    }

    #[test]
    fn the_console_settings_lie_over_the_spec() {
        let d = deployment(
            r#"
            name = "ignored"
            [sources.orders]
            kind = "kafka"
            connection = "events"
            topic = "orders"
            start = "earliest"
            [sinks.out]
            kind = "memory"
            "#,
        );
        let spec = job_spec(&d, "demo__orders", Some(&StartPosition::Timestamp(1000)), Path::new("/tmp")).unwrap();
        assert_eq!(spec.name, "demo__orders");
        assert_eq!(spec.parameters["threshold"], "0.2");
        assert_eq!(spec.limits.memory_mb, 32);
        assert_eq!(spec.limits.cpu_per_batch, std::time::Duration::from_millis(500));
        let source = serde_json::to_value(&spec.sources["orders"]).unwrap();
        assert_eq!(source["start"]["timestamp"], 1000, "{source}");
    }

    #[test]
    fn a_bad_spec_says_what_is_wrong() {
        let err =
            job_spec(&deployment("[sources.x]\nkind = \"file\"\nbogus = 1\n"), "k", None, Path::new("/")).unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn files_stay_in_the_project_area() {
        let spec =
            |path: &str| format!("[sources.f]\nkind = \"file\"\npath = \"{path}\"\n[sinks.out]\nkind = \"memory\"\n");
        for bad in ["/etc/passwd", "../other/x.jsonl", "a/../../x", "-"] {
            let err = job_spec(&deployment(&spec(bad)), "k", None, Path::new("/d")).unwrap_err();
            assert!(err.contains("relative paths inside"), "{bad}: {err}");
        }
        job_spec(&deployment(&spec("in/orders.jsonl")), "k", None, Path::new("/d")).unwrap();
    }

    #[test]
    fn keys_of_groups_are_distinct() {
        assert_eq!(snapshot_key("demo", "orders", 0, 1), "demo__orders");
        assert_ne!(snapshot_key("demo", "orders", 0, 2), snapshot_key("demo", "orders", 1, 2));
        assert_eq!(shard_of(&snapshot_key("demo", "orders", 3, 4)), 3);
        assert_eq!(shard_of(&snapshot_key("demo", "orders", 0, 1)), 0);
    }
}
