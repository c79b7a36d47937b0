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
use crate::connectors::{ConnectorError, RowOp, Sink, SinkRow};

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

impl KafkaSink {
    pub async fn connect(cx: BuildContext<'_>, name: &str, config: &KafkaSinkConfig) -> Result<Self, ConnectorError> {
        let client = client_config(cx, CONNECTOR, name, &config.connection, TUNED, &config.properties).await?;
        let producer: ThreadedProducer<DeliveryErrors> = client
            .create_with_context(DeliveryErrors::default())
            .map_err(|e| ConnectorError::config(CONNECTOR, name, format!("invalid Kafka client settings: {e}")))?;
        let producer = Arc::new(producer);
        // Fails early, with retries, when the cluster or topic is missing.
        let p = producer.clone();
        let fetch = move |topic: &str| p.client().fetch_metadata(Some(topic), Duration::from_secs(5));
        partitions(fetch, &cx.connections.policy, CONNECTOR, name, &config.topic, config.startup_timeout).await?;
        Ok(KafkaSink {
            name: name.to_owned(),
            topic: config.topic.clone(),
            producer,
            row_id_header: config.row_id_header,
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
            loop {
                let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic);
                if let Some(key) = &row.key {
                    record = record.key(key.as_slice());
                }
                if row.op == RowOp::Upsert {
                    record = record.payload(row.value.as_slice());
                }
                if let Some(id) = &id {
                    record =
                        record.headers(OwnedHeaders::new().insert(Header { key: "sluice-row-id", value: Some(id) }));
                }
                match self.producer.send(record) {
                    Ok(()) => break,
                    // The local queue is full: wait for deliveries (back-pressure).
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
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
