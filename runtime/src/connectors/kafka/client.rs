//! What source and sink share: client settings from the connection, and
//! asking the cluster for a topic's partitions with retries.

use std::time::{Duration, Instant};

use indexmap::IndexMap;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use crate::connections::{ConnectionPolicy, KafkaConnection, read_secret};
use crate::connectors::ConnectorError;
use crate::connectors::registry::BuildContext;

/// Client settings: the connection's brokers and properties, then the
/// connector's own `tuned` defaults, then the spec's `properties` (only
/// the settings a spec may tune: see `connections::SPEC_TUNABLE`). The
/// connection is checked against the registry's policy first.
pub async fn client_config(
    cx: BuildContext<'_>,
    connector: &'static str,
    name: &str,
    connection: &str,
    tuned: &[(&str, &str)],
    properties: &IndexMap<String, String>,
) -> Result<ClientConfig, ConnectorError> {
    let wanted = format!("{connector} `{name}`");
    let error = |e: String| ConnectorError::config(connector, name, e);
    let conn: &KafkaConnection = cx.connections.kafka(connection, &wanted).map_err(|e| error(e.to_string()))?;
    // Checked with the spec already; again here for specs built in code.
    properties.keys().try_for_each(|key| crate::connections::check_spec_property(key)).map_err(error)?;
    let listed: Vec<(&str, &str)> = conn.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    cx.connections
        .policy
        .check_kafka(&conn.brokers, &listed)
        .await
        .map_err(|e| error(format!("connection `{connection}`: {e}")))?;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &conn.brokers);
    // Fail a connection attempt quickly so startup retries report often.
    config.set("socket.connection.setup.timeout.ms", "5000");
    for (k, v) in &conn.properties {
        config.set(k, v);
    }
    if let Some(password) =
        read_secret(&conn.password, connection).map_err(|e| ConnectorError::config(connector, name, e))?
    {
        config.set("sasl.password", password);
    }
    for (k, v) in tuned {
        config.set(*k, *v);
    }
    for (k, v) in properties {
        config.set(k, v);
    }
    Ok(config)
}

/// The partitions of `topic`, retried until `timeout` while the cluster is
/// unreachable; the error says what went wrong last. `fetch` asks for the
/// topic's metadata (blocking, so it runs on the blocking pool). The
/// brokers the cluster advertises are checked against `policy`: a cluster
/// cannot send the client to hosts its connection could not name.
pub async fn partitions<F>(
    fetch: F,
    policy: &ConnectionPolicy,
    connector: &'static str,
    name: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, ConnectorError>
where
    F: Fn(&str) -> KafkaResult<Metadata> + Clone + Send + 'static,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (fetch, t) = (fetch.clone(), topic.to_owned());
        let result = tokio::task::spawn_blocking(move || {
            let metadata = fetch(&t).map_err(|e| e.to_string())?;
            let brokers: Vec<String> =
                metadata.brokers().iter().map(|b| format!("{}:{}", bracketed(b.host()), b.port())).collect();
            let topic = metadata.topics().iter().find(|m| m.name() == t).ok_or("no metadata for the topic")?;
            if let Some(err) = topic.error() {
                return Err(RDKafkaErrorCode::from(err).to_string());
            }
            Ok((topic.partitions().iter().map(|p| p.id()).collect::<Vec<_>>(), brokers))
        })
        .await
        .map_err(|e| ConnectorError::io(connector, name, e, false))?;
        let message = match result {
            Ok((mut ids, brokers)) if !ids.is_empty() => {
                policy.check_brokers(&brokers.join(",")).await.map_err(|e| {
                    ConnectorError::config(
                        connector,
                        name,
                        format!("the cluster advertises a broker the connection may not reach: {e}"),
                    )
                })?;
                ids.sort_unstable();
                return Ok(ids);
            }
            Ok(_) => format!("topic `{topic}` has no partitions (does it exist?)"),
            Err(e) => format!("cannot get metadata of topic `{topic}`: {e}"),
        };
        if started.elapsed() >= timeout {
            return Err(ConnectorError::io(
                connector,
                name,
                format!("{message} (gave up after {attempt} attempts in {timeout:?}; is the broker up?)"),
                true,
            ));
        }
        tracing::warn!(connector, name, attempt, "{message}; retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// An IPv6 address in brackets, as `host:port` needs it.
fn bracketed(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}
