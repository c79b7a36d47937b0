//! Which librdkafka settings (CONFIGURATION.md of librdkafka 2.x) a spec
//! and a connection may set. Everything else is refused by name, so an
//! alias (`metadata.broker.list` for `bootstrap.servers`) is refused too.
//!
//! - A **spec** (a developer's) may tune how the client batches, fetches,
//!   compresses, times out and retries: nothing that says where the client
//!   connects, as whom, or which files or code it loads.
//! - A **connection** (a project admin's) may also set how it
//!   authenticates (SASL, TLS with certificates given inline as PEM) and
//!   the client id. Settings that read files or load code on the server
//!   (`*.location`, `plugin.library.paths`, `sasl.kerberos.*`,
//!   `ssl.engine.*`, ...) are refused unless the operator allows them by
//!   name (`sluice serve --allow-kafka-properties`). Where it points
//!   (`bootstrap.servers`) is its URL, and `group.id` / `transactional.id`
//!   are the platform's.

/// What a spec may set: batching, linger, fetch sizes, compression,
/// timeouts, retries, buffers.
pub const SPEC_TUNABLE: &[&str] = &[
    // Both clients.
    "socket.timeout.ms",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "socket.keepalive.enable",
    "socket.nagle.disable",
    "socket.connection.setup.timeout.ms",
    "connections.max.idle.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "metadata.max.age.ms",
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.fast.interval.ms",
    "message.max.bytes",
    "receive.message.max.bytes",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    // Consumer.
    "fetch.wait.max.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.message.max.bytes",
    "fetch.error.backoff.ms",
    "fetch.queue.backoff.ms",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "isolation.level",
    "check.crcs",
    // Producer.
    "linger.ms",
    "queue.buffering.max.ms",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "batch.num.messages",
    "batch.size",
    "compression.type",
    "compression.codec",
    "compression.level",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "request.timeout.ms",
    "acks",
    "request.required.acks",
    "message.send.max.retries",
    "retries",
    "partitioner",
    "sticky.partitioning.linger.ms",
];

/// What a connection may set beyond [`SPEC_TUNABLE`]: authentication with
/// secrets given inline, TLS checks, the client's identity.
pub const CONNECTION_ONLY: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.extensions",
    // Its host is checked like a broker's.
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.config",
    "enable.sasl.oauthbearer.unsecure.jwt",
    "ssl.ca.pem",
    "ssl.certificate.pem",
    "ssl.key.pem",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
    "ssl.cipher.suites",
    "ssl.curves.list",
    "ssl.sigalgs.list",
    "client.id",
    "client.rack",
    "api.version.request",
    "broker.version.fallback",
];

/// Refuses a spec's property that is not [`SPEC_TUNABLE`].
pub fn check_spec_property(key: &str) -> Result<(), String> {
    if SPEC_TUNABLE.contains(&key) {
        return Ok(());
    }
    let owner = if CONNECTION_ONLY.contains(&key) || key == "bootstrap.servers" {
        "it belongs to the connection (where it points and its credentials are the project admin's)"
    } else if matches!(key, "group.id" | "group.instance.id" | "transactional.id") {
        "the platform sets it (a source's consumer group is `sluice-<job>`)"
    } else {
        "it is not one of the settings a spec may tune"
    };
    Err(format!(
        "Kafka property `{}` cannot be set in a spec: {owner}; a spec may set only {}",
        shown(key),
        SPEC_TUNABLE.join(", ")
    ))
}

/// Refuses a connection's property that is neither [`SPEC_TUNABLE`],
/// [`CONNECTION_ONLY`] nor one of `operator_allowed`.
pub fn check_connection_property(key: &str, operator_allowed: &[String]) -> Result<(), String> {
    if SPEC_TUNABLE.contains(&key) || CONNECTION_ONLY.contains(&key) || operator_allowed.iter().any(|k| k == key) {
        return Ok(());
    }
    let why = if matches!(key, "bootstrap.servers" | "metadata.broker.list") {
        "the brokers are the connection's url".to_owned()
    } else if matches!(key, "group.id" | "group.instance.id" | "transactional.id") {
        "the platform sets it".to_owned()
    } else if reads_files_or_code(key) {
        "it makes the server read files or load code; the operator can allow it by name with \
         `sluice serve --allow-kafka-properties`"
            .to_owned()
    } else {
        "it is not one of the settings a connection may set; the operator can allow it by name with \
         `sluice serve --allow-kafka-properties`"
            .to_owned()
    };
    Err(format!(
        "Kafka property `{}` is not allowed on a connection: {why}; allowed: {}, {}",
        shown(key),
        CONNECTION_ONLY.join(", "),
        SPEC_TUNABLE.join(", ")
    ))
}

fn reads_files_or_code(key: &str) -> bool {
    key.ends_with(".location")
        || key.starts_with("sasl.kerberos.")
        || key.starts_with("ssl.engine.")
        || key.starts_with("ssl_engine.")
        || matches!(key, "plugin.library.paths" | "ssl.providers" | "ssl.ca.certificate.stores")
}

fn shown(key: &str) -> String {
    key.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_tune_and_connections_authenticate() {
        check_spec_property("linger.ms").unwrap();
        check_spec_property("fetch.max.bytes").unwrap();
        for key in ["bootstrap.servers", "metadata.broker.list", "security.protocol", "sasl.password", "group.id"] {
            let err = check_spec_property(key).unwrap_err();
            assert!(err.contains("cannot be set in a spec") && err.contains("linger.ms"), "{key}: {err}");
        }
        check_connection_property("sasl.username", &[]).unwrap();
        check_connection_property("ssl.key.pem", &[]).unwrap();
        check_connection_property("compression.type", &[]).unwrap();
        for key in [
            "plugin.library.paths",
            "ssl.ca.location",
            "ssl.keystore.location",
            "sasl.kerberos.kinit.cmd",
            "bootstrap.servers",
            "group.id",
        ] {
            let err = check_connection_property(key, &[]).unwrap_err();
            assert!(err.contains("is not allowed on a connection"), "{key}: {err}");
        }
        let err = check_connection_property("ssl.ca.location", &[]).unwrap_err();
        assert!(err.contains("--allow-kafka-properties"), "{err}");
        check_connection_property("ssl.ca.location", &["ssl.ca.location".to_owned()]).unwrap();
    }
}
