//! Issue 16, item 2: a spec only tunes its Kafka client. Where the client
//! connects, as whom, which consumer group it joins and which files or
//! code it loads belong to the connection (a project admin's), bounded by
//! the operator — so a developer cannot send project a's SASL password to
//! a broker of their own, nor make the console load a library.

use serde_json::json;

use crate::platform::{Platform, deployment};

/// Settings a spec may not set, with what an attacker would set them to.
const NOT_A_SPECS: [(&str, &str); 13] = [
    ("bootstrap.servers", "attacker.example:9092"),
    ("metadata.broker.list", "attacker.example:9092"),
    ("security.protocol", "sasl_plaintext"),
    ("sasl.mechanism", "PLAIN"),
    ("sasl.username", "someone-else"),
    ("sasl.password", "guessed"),
    ("plugin.library.paths", "/tmp/evil.so"),
    ("ssl.ca.location", "/etc/shadow"),
    ("ssl.keystore.location", "/tmp/evil.p12"),
    ("sasl.kerberos.kinit.cmd", "touch /tmp/pwned"),
    ("group.id", "sluice-b__ledger"),
    ("transactional.id", "sluice-b__ledger"),
    ("Bootstrap.Servers", "attacker.example:9092"),
];

/// A job reading topic `orders` of connection `events` and writing topic
/// `copy`, with `properties` on the `side` ("sources.in" or "sinks.out").
fn kafka_spec(side: &str, key: &str, value: &str) -> String {
    let property = format!("properties = {{ {} = {} }}\n", toml_string(key), toml_string(value));
    let (source, sink) = if side == "sources.in" { (property.as_str(), "") } else { ("", property.as_str()) };
    format!(
        "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"orders\"\n{source}\n\
         [sinks.out]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"copy\"\n{sink}"
    )
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_settings_in_a_spec_cannot_redirect_or_load_anything() {
    let platform = Platform::start().await;
    let b_before = platform.b_ledger().await;
    // Project a's broker, with a password only its connection holds.
    let events = json!({ "kind": "kafka", "url": "203.0.113.9:9092", "secret": "a-kafka-password",
        "properties": { "security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN", "sasl.username": "a" } });
    platform.a_admin.put("/projects/a/connections/events", events).await.expect(204);
    let dev = &platform.dev;

    for side in ["sources.in", "sinks.out"] {
        for (key, value) in NOT_A_SPECS {
            let spec = kafka_spec(side, key, value);
            let what = format!("Kafka property `{key}` cannot be set in a spec");
            dev.put("/projects/a/jobs/j/deployment", deployment(&spec)).await.refused(400, &[&what]);
            let debug = json!({ "spec": spec, "records": "{}", "source": "in" });
            dev.post("/projects/a/jobs/j/debug", debug).await.refused(400, &[&what]);
        }
    }
    // The refusals say whose a setting is.
    let spec = kafka_spec("sources.in", "bootstrap.servers", "attacker.example:9092");
    let refused = dev.put("/projects/a/jobs/j/deployment", deployment(&spec)).await;
    refused.refused(400, &["it belongs to the connection"]);
    let spec = kafka_spec("sources.in", "group.id", "sluice-b__ledger");
    dev.put("/projects/a/jobs/j/deployment", deployment(&spec)).await.refused(400, &["the platform sets it"]);
    // Tuning is a spec's to set.
    let tuned = kafka_spec("sinks.out", "linger.ms", "5");
    dev.put("/projects/a/jobs/j/deployment", deployment(&tuned)).await.expect(200);

    // The connection is the project admin's, not the developer's.
    let moved = json!({ "kind": "kafka", "url": "attacker.example:9092" });
    let refused = dev.put("/projects/a/connections/events", moved.clone()).await;
    refused.refused(403, &["needs the admin role in project `a`", "you are developer"]);
    // Its secret never follows it to another host, even for its admin.
    let refused = platform
        .a_admin
        .put(
            "/projects/a/connections/events",
            json!({ "kind": "kafka",
        "url": "198.51.100.7:9092", "properties": { "security.protocol": "sasl_plaintext",
        "sasl.mechanism": "PLAIN", "sasl.username": "a" } }),
        )
        .await;
    refused.refused(400, &["now points at 198.51.100.7:9092 instead of 203.0.113.9:9092", "give its secret again"]);
    // Settings that read files or load code are the operator's to allow.
    for key in ["plugin.library.paths", "ssl.ca.location", "sasl.kerberos.kinit.cmd", "bootstrap.servers", "group.id"] {
        let body = json!({ "kind": "kafka", "url": "203.0.113.9:9092", "properties": { key: "x" } });
        let refused = platform.a_admin.put("/projects/a/connections/events", body).await;
        refused.refused(400, &[&format!("Kafka property `{key}` is not allowed on a connection")]);
    }

    // The developer never sees the secret, and the connection is as it was.
    let listed = dev.get("/projects/a/connections").await;
    assert!(!listed.text.contains("a-kafka-password"), "{}", listed.text);
    let listed = listed.expect(200);
    let events = listed.as_array().unwrap().iter().find(|c| c["name"] == "events").expect("events").clone();
    assert_eq!(events["url"], "203.0.113.9:9092", "{events}");
    let properties = &events["properties"];
    assert_eq!(properties.as_object().map(|p| p.len()), Some(3), "no property was added: {events}");
    platform.assert_dev_has_no_more_power().await;
    platform.assert_b_kept_producing(&b_before).await;
}
