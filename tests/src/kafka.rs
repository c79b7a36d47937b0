//! Kafka helpers for the suites: unique topics, producing test data and
//! reading a topic back, all through rdkafka against the real broker.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin.create_topics([&new], &AdminOptions::new()).await.expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
    // Tansu may list a new topic before all its partitions: wait until the
    // metadata shows every one, so readers assign them all.
    let started = Instant::now();
    loop {
        let metadata = admin.inner().fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
        let listed = metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
        if listed == partitions as usize {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "topic {topic} shows {listed} of {partitions} partitions");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A producer batching up to `per_batch` messages per record batch.
pub fn producer(brokers: &str, per_batch: usize) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", if per_batch == 1 { "0" } else { "5" })
        .set("batch.num.messages", per_batch.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

/// Produces `(partition, key, value)` messages and waits until all are
/// acknowledged.
pub async fn produce<'a>(brokers: &str, topic: &str, messages: impl IntoIterator<Item = (i32, &'a str, String)>) {
    produce_with(producer(brokers, 10_000), topic, messages).await
}

/// Produces with one message per record batch, so that every offset is a
/// batch start (Tansu cannot start a fetch inside a batch).
pub async fn produce_unbatched<'a>(
    brokers: &str,
    topic: &str,
    messages: impl IntoIterator<Item = (i32, &'a str, String)>,
) {
    produce_with(producer(brokers, 1), topic, messages).await
}

async fn produce_with<'a>(
    producer: FutureProducer,
    topic: &str,
    messages: impl IntoIterator<Item = (i32, &'a str, String)>,
) {
    let mut pending = Vec::new();
    for (partition, key, value) in messages {
        let record = FutureRecord::to(topic).partition(partition).key(key).payload(&value);
        match producer.send_result(record) {
            Ok(delivery) => pending.push(delivery),
            Err((e, _)) => panic!("producing to {topic}: {e}"),
        }
    }
    for delivery in pending {
        delivery.await.expect("delivery canceled").map_err(|(e, _)| e).expect("delivery failed");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// A message read back: partition, offset, key, value (None for a tombstone).
pub type ReadMessage = (i32, i64, Option<String>, Option<String>);

/// Reads `topic` from the start until `count` messages came, or fails after
/// `timeout` saying how many did.
pub fn read_topic(brokers: &str, topic: &str, partitions: i32, count: usize, timeout: Duration) -> Vec<ReadMessage> {
    let consumer = reader_from_start(brokers, topic, partitions, "sluice-tests-reader");
    let started = Instant::now();
    let mut out = Vec::new();
    while out.len() < count {
        assert!(started.elapsed() < timeout, "read {} of {count} messages from {topic} in {timeout:?}", out.len());
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            // Transport errors (a broker that was just cut off) pass.
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("read_topic: {e}");
                    continue;
                }
            };
            let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            out.push((m.partition(), m.offset(), text(m.key()), text(m.payload())));
        }
    }
    out
}

/// What `topic` holds, read from the start until nothing new came for
/// three seconds: per partition the messages, their offsets' range and the
/// broker's watermarks. For a failing count's message, to tell records the
/// broker lost from records a reader missed.
pub fn topic_census(brokers: &str, topic: &str, partitions: i32) -> String {
    let consumer = reader_from_start(brokers, topic, partitions, "sluice-tests-census");
    let mut seen: Vec<(usize, i64, i64)> = vec![(0, i64::MAX, -1); partitions.max(0) as usize];
    let mut last_new = Instant::now();
    while last_new.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
            && let Some(p) = seen.get_mut(m.partition() as usize)
        {
            *p = (p.0 + 1, p.1.min(m.offset()), p.2.max(m.offset()));
            last_new = Instant::now();
        }
    }
    let parts: Vec<String> = (0..partitions)
        .map(|p| {
            let (n, first, last) = seen[p as usize];
            let marks = consumer.fetch_watermarks(topic, p, Duration::from_secs(5));
            let offsets = if n == 0 { "none".to_owned() } else { format!("{first}..={last}") };
            format!("partition {p}: {n} messages, offsets {offsets}, watermarks {marks:?}")
        })
        .collect();
    let total: usize = seen.iter().map(|p| p.0).sum();
    format!("{topic} holds {total} messages ({})", parts.join("; "))
}

/// A consumer assigned every partition of `topic` from its first offset.
fn reader_from_start(brokers: &str, topic: &str, partitions: i32, group: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// A broker of one test's own, reached only through a [`Proxy`] that can cut
/// it off (it advertises the proxy's address, so every connection goes
/// through it). Stopped when dropped.
pub struct PrivateBroker {
    pub proxy: crate::proxy::Proxy,
    port: u16,
}

impl PrivateBroker {
    pub async fn start() -> PrivateBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let proxy = crate::proxy::Proxy::start(&format!("127.0.0.1:{port}")).await.expect("proxy");
        let script = crate::services::repo_root().join("scripts/tansu.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .args(["start", &port.to_string()])
            .env("SLUICE_TANSU_ADVERTISE", proxy.addr().to_string())
            .status()
            .expect("run scripts/tansu.sh");
        assert!(
            status.success(),
            "scripts/tansu.sh start {port} failed (is tansu installed? bash scripts/tansu.sh install)"
        );
        PrivateBroker { proxy, port }
    }

    /// The brokers to give clients: the proxy.
    pub fn brokers(&self) -> String {
        self.proxy.addr().to_string()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let script = crate::services::repo_root().join("scripts/tansu.sh");
        let _ = std::process::Command::new("bash").arg(&script).args(["stop", &self.port.to_string()]).status();
    }
}
