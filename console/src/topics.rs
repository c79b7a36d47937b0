//! Preparing upstream topics (step two of the development flow in seed
//! 002): listing and creating topics on a project's Kafka connection.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::store::Connection;

/// How long metadata requests may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: usize,
}

fn admin(connection: &Connection) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &connection.url);
    config.set("socket.connection.setup.timeout.ms", "5000");
    let properties: indexmap::IndexMap<String, String> =
        serde_json::from_str(&connection.properties).unwrap_or_default();
    for (k, v) in &properties {
        config.set(k, v);
    }
    if let Some(secret) = &connection.secret {
        config.set("sasl.password", secret);
    }
    config.create().context("cannot create a Kafka admin client")
}

/// The topics of the cluster, without internal ones.
pub async fn list(connection: &Connection) -> anyhow::Result<Vec<TopicInfo>> {
    let admin = admin(connection)?;
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, TIMEOUT))
        .await?
        .with_context(|| format!("cannot read the topics of `{}`", connection.name))?;
    let mut topics: Vec<TopicInfo> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| TopicInfo { name: t.name().to_owned(), partitions: t.partitions().len() })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// Creates a topic and waits until the cluster lists all its partitions.
pub async fn create(connection: &Connection, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin = admin(connection)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for result in admin.create_topics([&new], &options).await.context("the create-topic request failed")? {
        result.map_err(|(t, e)| anyhow::anyhow!("cannot create topic `{t}`: {e}"))?;
    }
    // A new topic may be listed before all its partitions are.
    let started = Instant::now();
    let topic = topic.to_owned();
    loop {
        let found = list(connection).await?.into_iter().find(|t| t.name == topic).map_or(0, |t| t.partitions);
        if found == partitions as usize {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < TIMEOUT, "topic `{topic}` lists {found} of {partitions} partitions");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
