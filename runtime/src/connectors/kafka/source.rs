use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{client_config, partitions};
use super::config::{KafkaFormat, KafkaSourceConfig, StartPosition};
use super::lag::EndOffsets;
use crate::connectors::registry::BuildContext;
use crate::connectors::{ConnectorError, Source, SourceStatus, json_field_millis};
use crate::job::batch::{NewRecord, RecordBatch};

const CONNECTOR: &str = "kafka source";

/// With several topics, a record's partition is `topic index * PARTITION_SPAN
/// + Kafka partition`, so positions stay unique within the source.
pub const PARTITION_SPAN: i32 = 65_536;

/// How long a bounded source must see nothing before it finishes.
const BOUNDED_QUIET: Duration = Duration::from_secs(1);

/// Throughput settings: large fetches, no group management, no auto commit.
/// `fetch.wait.max.ms` is short because Tansu holds every fetch for the whole
/// wait, which caps a partition at one fetch per wait (measured: 500 ms ->
/// ~120k records/s, 10 ms -> ~300k/s); on Kafka it only matters when idle.
const TUNED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "false"),
    ("auto.offset.reset", "earliest"),
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "10485760"),
    ("fetch.wait.max.ms", "10"),
    ("queued.min.messages", "200000"),
];

/// Reads the topics of a source; see the module docs.
pub struct KafkaSource {
    name: String,
    index: u32,
    consumer: Arc<StreamConsumer>,
    topics: Vec<String>,
    event_time_field: Option<String>,
    /// Next offset to read, by (topic index, partition).
    positions: HashMap<(usize, i32), i64>,
    /// Partitions resumed from a snapshot whose first record at or after
    /// the position has not come yet: records before it are dropped (they
    /// were fetched for the resume lookback).
    resuming: HashMap<(usize, i32), Resume>,
    /// Resume positions the topic no longer retains.
    expired: Vec<ExpiredPosition>,
    /// Partitions the client went back on (warned once per rewind).
    rewound: HashSet<(usize, i32)>,
    /// Bounded runs: the end offsets seen at start.
    stop_at: Option<HashMap<(usize, i32), i64>>,
    /// Every assigned (topic index, partition).
    assignment: Vec<(usize, i32)>,
    /// Where each assigned partition started, for the lag of a partition
    /// that has not delivered a record yet.
    started_at: HashMap<(usize, i32), Offset>,
    /// The partitions' end offsets, refreshed in the background.
    end_offsets: EndOffsets,
    /// Since when polls have found nothing to read (bounded runs end only
    /// after a quiet spell); `None` while records keep coming.
    idle_since: Option<Instant>,
    commit_interval: Duration,
    last_commit: Instant,
    committed: HashMap<(usize, i32), i64>,
}

/// The partition count of each of the source's topics, asked of the
/// cluster as a task's start does (retried for `startup_timeout`).
pub async fn partition_counts(
    cx: BuildContext<'_>,
    name: &str,
    config: &KafkaSourceConfig,
) -> Result<Vec<u32>, ConnectorError> {
    let client = client_config(cx, CONNECTOR, name, &config.connection, TUNED, &config.properties).await?;
    let consumer: Arc<StreamConsumer> = Arc::new(
        client
            .create()
            .map_err(|e| ConnectorError::config(CONNECTOR, name, format!("invalid Kafka client settings: {e}")))?,
    );
    let mut counts = Vec::new();
    for topic in config.topic_list() {
        let c = consumer.clone();
        let fetch = move |topic: &str| c.fetch_metadata(Some(topic), Duration::from_secs(5));
        let all = partitions(fetch, &cx.connections.policy, CONNECTOR, name, &topic, config.startup_timeout).await?;
        counts.push(all.len() as u32);
    }
    Ok(counts)
}

impl KafkaSource {
    pub async fn connect(
        cx: BuildContext<'_>,
        name: &str,
        index: u32,
        config: &KafkaSourceConfig,
    ) -> Result<Self, ConnectorError> {
        let error = |m: String| ConnectorError::config(CONNECTOR, name, m);
        let topics = config.topic_list();
        if topics.is_empty() {
            return Err(error("give the topic to read as `topic = \"...\"` (or `topics = [...]`)".into()));
        }
        if config.format == KafkaFormat::Raw && config.event_time_field.is_some() {
            return Err(error("`event_time_field` needs `format = \"json\"`".into()));
        }
        let mut client = client_config(cx, CONNECTOR, name, &config.connection, TUNED, &config.properties).await?;
        // For lag monitoring only; named by the platform (the console's job
        // names are `<project>__<job>`), never by the spec.
        client.set("group.id", format!("sluice-{}", cx.spec.name));
        let consumer: Arc<StreamConsumer> =
            Arc::new(client.create().map_err(|e| error(format!("invalid Kafka client settings: {e}")))?);

        // A task of a job running as several tasks takes its partition
        // group's share of each topic.
        let mut assignment = Vec::new();
        for (t, topic) in topics.iter().enumerate() {
            let c = consumer.clone();
            let fetch = move |topic: &str| c.fetch_metadata(Some(topic), Duration::from_secs(5));
            let all = partitions(fetch, &cx.connections.policy, CONNECTOR, name, topic, config.startup_timeout).await?;
            if !all.iter().any(|&p| cx.group.owns(p)) {
                tracing::warn!(
                    source = name,
                    "topic `{topic}` has {} partitions, so partition group {} of {} reads nothing from it",
                    all.len(),
                    cx.group.index,
                    cx.group.count
                );
            }
            assignment.extend(all.into_iter().filter(|&p| cx.group.owns(p)).map(|p| (t, p)));
        }
        let mut start = start_offsets(&consumer, &topics, &assignment, &config.start)
            .await
            .map_err(|m| ConnectorError::config(CONNECTOR, name, m))?;
        // Resuming from a snapshot: its positions win over `start`, and
        // fetching starts `resume_lookback` earlier (see the config).
        let mut positions = HashMap::new();
        let mut resuming = HashMap::new();
        if let Some(resume) = cx.resume_positions(name) {
            for (i, &(t, p)) in assignment.iter().enumerate() {
                let encoded = source_partition(topics.len(), t, p);
                if let Some(&(_, next)) = resume.iter().find(|(rp, _)| *rp == encoded) {
                    let from = next.saturating_sub(config.resume_lookback.max(0)).max(0);
                    start[i] = Offset::Offset(from);
                    positions.insert((t, p), next);
                    resuming.insert((t, p), Resume { next, from, earlier_seen: false });
                }
            }
        }
        let expired = match positions.is_empty() {
            true => Vec::new(),
            false => flag_expired_positions(&consumer, &topics, &positions, name).await?,
        };
        let stop_at =
            if config.bounded { Some(end_offsets(&consumer, &topics, &assignment, name).await?) } else { None };

        let mut tpl = TopicPartitionList::new();
        for (&(t, p), offset) in assignment.iter().zip(&start) {
            tpl.add_partition_offset(&topics[t], p, *offset).map_err(|e| error(e.to_string()))?;
        }
        consumer.assign(&tpl).map_err(|e| error(format!("cannot assign partitions: {e}")))?;
        tracing::info!(source = name, partitions = assignment.len(), "kafka source assigned");
        let started_at = assignment.iter().copied().zip(start).collect();
        let end_offsets = EndOffsets::watch(consumer.clone(), topics.clone(), assignment.clone(), name.to_owned());

        Ok(KafkaSource {
            name: name.to_owned(),
            index,
            consumer,
            topics,
            event_time_field: config.event_time_field.clone(),
            positions,
            resuming,
            expired,
            rewound: HashSet::new(),
            stop_at,
            assignment,
            started_at,
            end_offsets,
            idle_since: None,
            commit_interval: config.commit_interval,
            last_commit: Instant::now(),
            committed: HashMap::new(),
        })
    }

    fn push(&mut self, batch: &mut RecordBatch, message: &BorrowedMessage<'_>) {
        let Some(t) = self.topics.iter().position(|t| t == message.topic()) else { return };
        let kafka_partition = message.partition();
        let offset = message.offset();
        if let Some(&next) = self.positions.get(&(t, kafka_partition))
            && offset < next
        {
            // Processed already: read again for the resume lookback, or
            // because the client went back (an offset reset).
            match self.resuming.get_mut(&(t, kafka_partition)) {
                Some(resume) => resume.earlier_seen = true,
                None if !self.rewound.insert((t, kafka_partition)) => {}
                None => tracing::warn!(
                    source = %self.name,
                    "{}/{kafka_partition}: offset {offset} came after {}; dropping records already processed",
                    self.topics[t],
                    next - 1
                ),
            }
            return;
        }
        // Both sets are empty once every partition is past its resume point,
        // so the per-record cost is two length checks.
        if !self.rewound.is_empty() {
            self.rewound.remove(&(t, kafka_partition));
        }
        if !self.resuming.is_empty()
            && let Some(resume) = self.resuming.get(&(t, kafka_partition))
        {
            if offset > resume.next && !resume.earlier_seen && resume.from > 0 {
                tracing::warn!(
                    source = %self.name,
                    "resuming {}/{kafka_partition} at offset {} read {offset} first, with nothing from {} on \
                     before it: offsets {}..{offset} are missing (compacted or deleted on Kafka; on a broker \
                     that skips to the next record batch, raise `resume_lookback`)",
                    self.topics[t],
                    resume.next,
                    resume.from,
                    resume.next
                );
            }
            self.resuming.remove(&(t, kafka_partition));
        }
        let partition = source_partition(self.topics.len(), t, kafka_partition);
        let value = message.payload().unwrap_or_default();
        let event_time = match &self.event_time_field {
            Some(field) => json_field_millis(value, field),
            None => message.timestamp().to_millis(),
        };
        let headers: Vec<(&str, &[u8])> = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value.unwrap_or_default())).collect())
            .unwrap_or_default();
        batch.push(NewRecord {
            key: message.key(),
            value,
            event_time,
            headers: &headers,
            source: self.index,
            partition,
            offset: message.offset(),
        });
        self.positions.insert((t, kafka_partition), message.offset() + 1);
    }

    /// A bounded source is done when every partition reached its end offset
    /// and polls have found nothing for [`BOUNDED_QUIET`]: Tansu reports the
    /// start of the last record batch as the high watermark, so reaching it
    /// does not prove the partition was read to its end. (Quiet is counted
    /// from a poll that found the client's queue empty, not from the last
    /// record, so a slow job does not mistake its own processing for it.)
    fn finished(&self) -> bool {
        self.stop_at.as_ref().is_some_and(|stop| {
            self.idle_since.is_some_and(|t| t.elapsed() >= BOUNDED_QUIET)
                && stop.iter().all(|(tp, end)| self.positions.get(tp).is_some_and(|next| next >= end))
        })
    }

    /// Asks for the end offsets again before finishing a bounded run: a
    /// partition whose messages the broker had not made visible when the
    /// run started (a busy Tansu reports it empty) is then read too.
    async fn end_confirmed(&mut self) -> Result<bool, ConnectorError> {
        let ends = end_offsets(&self.consumer, &self.topics, &self.assignment, &self.name).await?;
        let stop = self.stop_at.get_or_insert_with(HashMap::new);
        for (tp, end) in ends {
            let known = stop.entry(tp).or_insert(end);
            *known = (*known).max(end);
        }
        Ok(self.finished())
    }

    /// Commits positions under the group id, for lag monitoring only; a
    /// failure is logged, never fatal.
    fn commit_for_monitoring(&mut self) {
        if self.last_commit.elapsed() < self.commit_interval || self.positions == self.committed {
            return;
        }
        self.last_commit = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for (&(t, p), &next) in &self.positions {
            let _ = tpl.add_partition_offset(&self.topics[t], p, Offset::Offset(next));
        }
        match self.consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => self.committed = self.positions.clone(),
            Err(e) => tracing::debug!(source = %self.name, "offset commit for monitoring failed: {e}"),
        }
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn poll(
        &mut self,
        batch: &mut RecordBatch,
        max: usize,
        max_wait: Duration,
    ) -> Result<SourceStatus, ConnectorError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let consumer = self.consumer.clone();
        let mut taken = 0;
        while taken < max {
            // Take what is already fetched without a timer; wait only when
            // the local queue is empty.
            let next = match consumer.recv().now_or_never() {
                Some(r) => r,
                None => match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            match next {
                Ok(message) => {
                    self.push(batch, &message);
                    taken += 1;
                }
                Err(e) if is_transient(&e) => {
                    // librdkafka reconnects by itself (broker restarts).
                    tracing::warn!(source = %self.name, "kafka: {e}; reconnecting");
                }
                Err(e) => return Err(ConnectorError::io(CONNECTOR, &self.name, e, false)),
            }
        }
        self.commit_for_monitoring();
        if taken > 0 {
            self.idle_since = None;
            return Ok(SourceStatus::Open);
        }
        self.idle_since.get_or_insert_with(Instant::now);
        Ok(if self.finished() && self.end_confirmed().await? { SourceStatus::Finished } else { SourceStatus::Open })
    }

    fn positions(&self) -> Option<Vec<(i32, i64)>> {
        let topics = self.topics.len();
        Some(self.positions.iter().map(|(&(t, p), &next)| (source_partition(topics, t, p), next)).collect())
    }

    /// The end offsets (as last refreshed) minus the next offsets to read.
    /// Tansu reports the start of a partition's last record batch as its
    /// end, so there the last batch is not counted.
    fn lag(&self) -> Option<i64> {
        self.end_offsets.lag(|tp, (low, high)| match self.positions.get(&tp) {
            Some(&next) => next,
            None => match self.started_at.get(&tp) {
                Some(Offset::Offset(o)) => (*o).max(low),
                Some(Offset::Beginning) => low,
                _ => high,
            },
        })
    }
}

/// A partition resumed from a snapshot position.
struct Resume {
    /// The snapshot's position: the first offset to process.
    next: i64,
    /// Where fetching started (`next - resume_lookback`).
    from: i64,
    /// Whether a record before `next` came, which proves the fetch started
    /// at or before the record batch holding `next`.
    earlier_seen: bool,
}

/// The partition a record carries: the Kafka partition with one topic,
/// `topic index * PARTITION_SPAN + partition` with several.
fn source_partition(topics: usize, topic: usize, partition: i32) -> i32 {
    if topics == 1 { partition } else { topic as i32 * PARTITION_SPAN + partition }
}

fn is_transient(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(
            C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::NetworkException
            | C::RequestTimedOut
            | C::OperationTimedOut
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::UnknownTopicOrPartition
            | C::Resolve,
        ) => true,
        Some(_) => false,
        None => true,
    }
}

/// The start offset of each assigned partition.
async fn start_offsets(
    consumer: &Arc<StreamConsumer>,
    topics: &[String],
    assignment: &[(usize, i32)],
    start: &StartPosition,
) -> Result<Vec<Offset>, String> {
    Ok(match start {
        StartPosition::Earliest => vec![Offset::Beginning; assignment.len()],
        StartPosition::Latest => vec![Offset::End; assignment.len()],
        StartPosition::Offsets(explicit) => {
            for key in explicit.keys() {
                let known = assignment.iter().any(|&(t, p)| offset_key_matches(key, topics, t, p));
                if !known {
                    return Err(format!(
                        "start offset for `{key}` names no partition of {topics:?} (use \"PARTITION\" or \"TOPIC:PARTITION\")"
                    ));
                }
            }
            assignment
                .iter()
                .map(|&(t, p)| {
                    explicit
                        .iter()
                        .find(|(k, _)| offset_key_matches(k, topics, t, p))
                        .map_or(Offset::Beginning, |(_, &o)| Offset::Offset(o))
                })
                .collect()
        }
        StartPosition::Timestamp(ts) => {
            let millis = ts.millis()?;
            let mut tpl = TopicPartitionList::new();
            for &(t, p) in assignment {
                tpl.add_partition_offset(&topics[t], p, Offset::Offset(millis)).map_err(|e| e.to_string())?;
            }
            let c = consumer.clone();
            let found = tokio::task::spawn_blocking(move || c.offsets_for_times(tpl, Duration::from_secs(30)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot find offsets for the start timestamp: {e}"))?;
            assignment
                .iter()
                .map(|&(t, p)| match found.find_partition(&topics[t], p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Offset::Offset(o),
                    _ => Offset::End, // no message at or after the time yet
                })
                .collect()
        }
    })
}

fn offset_key_matches(key: &str, topics: &[String], t: usize, p: i32) -> bool {
    match key.rsplit_once(':') {
        Some((topic, part)) => topic == topics[t] && part.parse() == Ok(p),
        None => topics.len() == 1 && key.parse() == Ok(p),
    }
}

/// High watermarks (the offset after the last message) of each partition
/// that has messages.
async fn end_offsets(
    consumer: &Arc<StreamConsumer>,
    topics: &[String],
    assignment: &[(usize, i32)],
    name: &str,
) -> Result<HashMap<(usize, i32), i64>, ConnectorError> {
    let marks = watermarks(consumer, topics, assignment, name).await?;
    // An empty partition is done from the start.
    Ok(marks.into_iter().filter(|(_, (low, high))| high > low).map(|(tp, (_, high))| (tp, high)).collect())
}

/// (low, high) watermarks of each partition.
async fn watermarks(
    consumer: &Arc<StreamConsumer>,
    topics: &[String],
    assignment: &[(usize, i32)],
    name: &str,
) -> Result<HashMap<(usize, i32), (i64, i64)>, ConnectorError> {
    let (c, topics, assignment) = (consumer.clone(), topics.to_vec(), assignment.to_vec());
    tokio::task::spawn_blocking(move || {
        assignment
            .iter()
            .map(|&(t, p)| c.fetch_watermarks(&topics[t], p, Duration::from_secs(10)).map(|marks| ((t, p), marks)))
            .collect::<Result<HashMap<_, _>, _>>()
    })
    .await
    .map_err(|e| ConnectorError::io(CONNECTOR, name, e, false))?
    .map_err(|e| ConnectorError::io(CONNECTOR, name, format!("cannot read partition offsets: {e}"), true))
}

/// A resume position older than what its topic still retains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredPosition {
    pub topic: String,
    pub partition: i32,
    /// The snapshot's position.
    pub next: i64,
    /// The earliest offset the topic still has: records `next..earliest`
    /// were deleted by retention.
    pub earliest: i64,
}

impl KafkaSource {
    /// Resume positions older than the topic's retention, flagged at start.
    pub fn expired_positions(&self) -> &[ExpiredPosition] {
        &self.expired
    }
}

/// Flags resume positions older than what the topic still retains: the
/// records in between were deleted by retention and cannot be replayed.
async fn flag_expired_positions(
    consumer: &Arc<StreamConsumer>,
    topics: &[String],
    resumed: &HashMap<(usize, i32), i64>,
    name: &str,
) -> Result<Vec<ExpiredPosition>, ConnectorError> {
    let parts: Vec<_> = resumed.keys().copied().collect();
    let mut expired = Vec::new();
    for (tp, (low, _)) in watermarks(consumer, topics, &parts, name).await? {
        let next = resumed[&tp];
        if next < low {
            expired.push(ExpiredPosition { topic: topics[tp.0].clone(), partition: tp.1, next, earliest: low });
            tracing::warn!(
                source = name,
                "snapshot position {next} of {}/{} is older than the topic's retention (earliest offset {low}): \
                 records {next}..{low} were deleted and are skipped",
                topics[tp.0],
                tp.1
            );
        }
    }
    Ok(expired)
}
