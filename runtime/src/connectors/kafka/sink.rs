use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::client::{client_config, partitions};
use super::config::KafkaSinkConfig;
use crate::connectors::registry::BuildContext;
use crate::connectors::{ConnectorError, PartitionGroup, RowOp, RowOrigin, Sink, SinkRow};
use crate::job::origin_dedup::{ROW_GEN_HEADER, ROW_ID_HEADER, ROW_JOB_HEADER};

const CONNECTOR: &str = "kafka sink";

/// Idempotent producer (no duplicates from its own retries, order kept per
/// partition), batched by librdkafka.
const TUNED: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
    ("batch.num.messages", "10000"),
    ("batch.size", "1048576"),
    ("queue.buffering.max.messages", "1000000"),
    ("queue.buffering.max.kbytes", "1048576"),
];

/// Writes rows to a topic: the emit's key as the message key, the row as
/// the value, a delete as a tombstone (null value) for its key.
pub struct KafkaSink {
    name: String,
    topic: String,
    producer: Arc<ThreadedProducer<DeliveryErrors>>,
    row_id_header: bool,
    /// The job the ids are of (`sluice-row-job`): the job's name without a
    /// shard's suffix, since the origin streams of a job are the same
    /// whatever its shards.
    row_job: String,
    /// The run's generation, stamped with the row ids (none for 0).
    row_generation: Option<String>,
    /// The topic's partitions, where rows without a key go with row ids.
    partitions: i32,
    source_names: Vec<String>,
    flush_timeout: Duration,
}

/// Remembers the first delivery failure; librdkafka reports deliveries on
/// its own thread.
#[derive(Default, Clone)]
pub struct DeliveryErrors(Arc<Mutex<Option<String>>>);

impl ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.0.lock().unwrap().get_or_insert_with(|| e.to_string());
        }
    }
}

/// A shard's job name (`<job>__p<s>-of-<S>`, see the console's plan) without
/// its suffix.
fn job_of_shard(name: &str, group: PartitionGroup) -> &str {
    if group.is_whole() {
        return name;
    }
    name.strip_suffix(&format!("__p{}-of-{}", group.index, group.count)).unwrap_or(name)
}

/// Where a row without a key goes when rows carry ids: its input partition's
/// stream in one partition of the topic.
fn origin_partition(origin: &RowOrigin, partitions: i32) -> i32 {
    let stream = match origin {
        RowOrigin::Record { source, partition, .. } | RowOrigin::Batch { source, partition, .. } => {
            i64::from(*partition) + i64::from(*source) * 7919
        }
        RowOrigin::Timer { .. } | RowOrigin::Open => 0,
    };
    stream.rem_euclid(i64::from(partitions.max(1))) as i32
}

impl KafkaSink {
    pub async fn connect(cx: BuildContext<'_>, name: &str, config: &KafkaSinkConfig) -> Result<Self, ConnectorError> {
        // A consumer dropping replays by row id (`dedup_by_row_id`) takes a
        // higher id in a partition as proof of every lower one of its
        // stream: a message given up on while a later one was delivered
        // would then be dropped as a replay. So no message times out (a
        // flush that cannot finish fails the task, which restores and
        // writes again; `delivery.timeout.ms` is the same setting's other
        // name), errors that could leave a gap stop the producer, and a row
        // goes where it went before (`consistent` hashes an empty key too,
        // where the default spreads it at random). These override the
        // connection's settings, and a spec cannot set them (`ROW_ID_FIXED`).
        let row_ids = [
            ("message.timeout.ms", "0"),
            ("delivery.timeout.ms", "0"),
            ("partitioner", "consistent"),
            ("enable.gapless.guarantee", "true"),
        ];
        let tuned: Vec<(&str, &str)> =
            TUNED.iter().chain(if config.row_id_header { &row_ids[..] } else { &[] }).copied().collect();
        config.check_row_ids().map_err(|e| ConnectorError::config(CONNECTOR, name, e))?;
        let client = client_config(cx, CONNECTOR, name, &config.connection, &tuned, &config.properties).await?;
        let producer: ThreadedProducer<DeliveryErrors> = client
            .create_with_context(DeliveryErrors::default())
            .map_err(|e| ConnectorError::config(CONNECTOR, name, format!("invalid Kafka client settings: {e}")))?;
        let producer = Arc::new(producer);
        // Fails early, with retries, when the cluster or topic is missing.
        let p = producer.clone();
        let fetch = move |topic: &str| p.client().fetch_metadata(Some(topic), Duration::from_secs(5));
        let all =
            partitions(fetch, &cx.connections.policy, CONNECTOR, name, &config.topic, config.startup_timeout).await?;
        Ok(KafkaSink {
            name: name.to_owned(),
            topic: config.topic.clone(),
            producer,
            row_id_header: config.row_id_header,
            row_job: job_of_shard(&cx.spec.name, cx.group).to_owned(),
            row_generation: (cx.generation > 0).then(|| cx.generation.to_string()),
            partitions: all.len().max(1) as i32,
            source_names: cx.spec.source_names(),
            flush_timeout: config.flush_timeout,
        })
    }

    fn delivery_error(&self) -> Result<(), ConnectorError> {
        match self.producer.context().0.lock().unwrap().take() {
            Some(e) => Err(ConnectorError::io(
                CONNECTOR,
                &self.name,
                format!("delivery to `{}` failed: {e}", self.topic),
                false,
            )),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write(&mut self, rows: &[SinkRow]) -> Result<(), ConnectorError> {
        self.delivery_error()?;
        for row in rows {
            let id = self.row_id_header.then(|| row.id.render(&self.source_names));
            let mut full_since = None;
            loop {
                let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic);
                match (&row.key, self.row_id_header) {
                    (Some(key), _) => record = record.key(key.as_slice()),
                    // The default partitioner spreads rows without a key at
                    // random: with row ids, all rows of one input partition
                    // go to one partition, the same on every replay.
                    (None, true) => record = record.partition(origin_partition(&row.id.origin, self.partitions)),
                    (None, false) => {}
                }
                if row.op == RowOp::Upsert {
                    record = record.payload(row.value.as_slice());
                }
                if let Some(id) = &id {
                    let mut headers = OwnedHeaders::new()
                        .insert(Header { key: ROW_ID_HEADER, value: Some(id) })
                        .insert(Header { key: ROW_JOB_HEADER, value: Some(&self.row_job) });
                    if let Some(generation) = &self.row_generation {
                        headers = headers.insert(Header { key: ROW_GEN_HEADER, value: Some(generation) });
                    }
                    record = record.headers(headers);
                }
                match self.producer.send(record) {
                    Ok(()) => break,
                    // The local queue is full: wait for deliveries
                    // (back-pressure), as long as a flush would.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        self.delivery_error()?;
                        let since = *full_since.get_or_insert_with(std::time::Instant::now);
                        if since.elapsed() >= self.flush_timeout {
                            return Err(ConnectorError::io(
                                CONNECTOR,
                                &self.name,
                                format!(
                                    "the producer's queue stayed full for {:?} (flush_timeout): is `{}` reachable?",
                                    self.flush_timeout, self.topic
                                ),
                                true,
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => return Err(ConnectorError::io(CONNECTOR, &self.name, e, false)),
                }
            }
        }
        Ok(())
    }

    /// Waits until every message written so far is acknowledged.
    async fn flush(&mut self) -> Result<(), ConnectorError> {
        let (producer, timeout) = (self.producer.clone(), self.flush_timeout);
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| ConnectorError::io(CONNECTOR, &self.name, e, false))?
            .map_err(|e| ConnectorError::io(CONNECTOR, &self.name, format!("flush: {e}"), true))?;
        self.delivery_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_writes_its_job_name_and_rows_without_a_key_keep_their_stream_together() {
        let group = |index, count| PartitionGroup { index, count };
        assert_eq!(job_of_shard("p__sums__p1-of-4", group(1, 4)), "p__sums");
        assert_eq!(job_of_shard("p__sums", group(0, 1)), "p__sums");
        assert_eq!(job_of_shard("p__sums__p1-of-4", group(2, 4)), "p__sums__p1-of-4", "not its suffix");
        let at = |partition, offset| RowOrigin::Record { source: 0, partition, offset };
        assert_eq!(origin_partition(&at(5, 1), 4), origin_partition(&at(5, 99), 4));
        let batch = RowOrigin::Batch { source: 0, partition: 5, offset: 7 };
        assert_eq!(origin_partition(&batch, 4), origin_partition(&at(5, 1), 4));
        assert!((0..64).all(|p| (0..3).contains(&origin_partition(&at(p, 0), 3))));
    }
}
