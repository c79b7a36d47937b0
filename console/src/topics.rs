//! Preparing upstream topics (step two of the development flow in seed
//! 002): listing and creating topics on a project's Kafka connection.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use sluice_runtime::connections::ConnectionPolicy;

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
    Ok(cluster(connection).await?.0)
}

/// The topics of the cluster, once the brokers it advertises are checked
/// against `policy`: a cluster cannot send the platform's admin requests to
/// hosts its connection could not name.
pub async fn list_reachable(connection: &Connection, policy: &ConnectionPolicy) -> anyhow::Result<Vec<TopicInfo>> {
    let (topics, brokers) = cluster(connection).await?;
    policy
        .check_brokers(&brokers.join(","))
        .await
        .map_err(|e| anyhow::anyhow!("the cluster advertises a broker the connection may not reach: {e}"))?;
    Ok(topics)
}

/// The cluster's topics (without internal ones) and its brokers.
async fn cluster(connection: &Connection) -> anyhow::Result<(Vec<TopicInfo>, Vec<String>)> {
    let admin = admin(connection)?;
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, TIMEOUT))
        .await?
        .with_context(|| format!("cannot read the topics of `{}`", connection.name))?;
    let brokers: Vec<String> = metadata
        .brokers()
        .iter()
        .map(|b| {
            if b.host().contains(':') {
                format!("[{}]:{}", b.host(), b.port())
            } else {
                format!("{}:{}", b.host(), b.port())
            }
        })
        .collect();
    let mut topics: Vec<TopicInfo> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| TopicInfo { name: t.name().to_owned(), partitions: t.partitions().len() })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((topics, brokers))
}

/// Settings of the repartition topics the platform makes: rows are kept
/// until deleted with the topic (a stage that restores an old snapshot, or
/// one with none, reads from where its state left off, however long ago),
/// and replicated as the cluster's default says (`-1`).
const REPARTITION_RETENTION: (&str, &str) = ("retention.ms", "-1");
const REPARTITION_REPLICATION: i32 = -1;

/// Makes sure repartition topic `topic` exists with `partitions`
/// partitions: creates it when it is missing, and refuses one with another
/// count.
pub async fn ensure(
    connection: &Connection,
    policy: &ConnectionPolicy,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let found = |topics: Vec<TopicInfo>| topics.into_iter().find(|t| t.name == topic).map(|t| t.partitions);
    let exists = match found(list_reachable(connection, policy).await?) {
        None => {
            let settings = [REPARTITION_RETENTION];
            match create_with(connection, topic, partitions, REPARTITION_REPLICATION, &settings).await {
                Ok(()) => return Ok(()),
                // Created meanwhile by another planner: check what it made.
                Err(e) => found(list_reachable(connection, policy).await?).ok_or(e)?,
            }
        }
        Some(n) => n,
    };
    anyhow::ensure!(
        exists == partitions as usize,
        "topic `{topic}` has {exists} partitions where {partitions} are needed"
    );
    Ok(())
}

/// Deletes `names`, once the brokers the cluster advertises are checked.
pub async fn delete(connection: &Connection, policy: &ConnectionPolicy, names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    list_reachable(connection, policy).await?;
    let admin = admin(connection)?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for result in admin.delete_topics(&refs, &options).await.context("the delete-topics request failed")? {
        result.map_err(|(t, e)| anyhow::anyhow!("cannot delete topic `{t}`: {e}"))?;
    }
    Ok(())
}

/// Creates a topic and waits until the cluster lists all its partitions.
pub async fn create(connection: &Connection, topic: &str, partitions: i32) -> anyhow::Result<()> {
    create_with(connection, topic, partitions, 1, &[]).await
}

/// [`create`] with a replication factor (`-1`: the cluster's default) and
/// topic settings.
async fn create_with(
    connection: &Connection,
    topic: &str,
    partitions: i32,
    replication: i32,
    settings: &[(&str, &str)],
) -> anyhow::Result<()> {
    let admin = admin(connection)?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (key, value) in settings {
        new = new.set(key, value);
    }
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
