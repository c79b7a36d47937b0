//! The Kafka source and sink against the real broker (Tansu).

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::registry::{BuildContext, build_sink, build_source};
use sluice_runtime::connectors::{RowId, RowOp, RowOrigin, SinkRow, Source, SourceStatus};
use sluice_runtime::job::JobSpec;
use sluice_runtime::job::batch::RecordBatch;
use sluice_tests::kafka::{PrivateBroker, create_topic, produce, produce_unbatched, read_topic, unique_topic};
use sluice_tests::services::kafka_brokers;

/// A spec whose `[sources.in]` / `[sinks.out]` tables are `connectors`.
fn spec(connectors: &str) -> JobSpec {
    let text = format!("name = \"kafka_test\"\ncomponent = \"unused.wasm\"\n{connectors}");
    JobSpec::parse(&text, Path::new(".")).expect("spec")
}

fn connections(brokers: &str) -> Connections {
    let mut c = Connections::default();
    c.apply_override(&format!("events={brokers}")).unwrap();
    c
}

/// A record as read: (partition, offset, key, value, event time).
type Read = (i32, i64, Option<String>, String, Option<i64>);

async fn source(spec: &JobSpec, connections: &Connections) -> Box<dyn Source> {
    let cx = BuildContext::new(spec, connections);
    build_source(cx, "in", 0, &spec.sources["in"]).await.expect("kafka source")
}

/// Polls until the source finishes (bounded) or `count` records came.
async fn drain(source: &mut dyn Source, count: usize) -> Vec<Read> {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut batch = RecordBatch::default();
    while out.len() < count {
        assert!(started.elapsed() < Duration::from_secs(30), "only {} of {count} records came", out.len());
        batch.clear();
        let status = source.poll(&mut batch, 500, Duration::from_millis(100)).await.expect("poll");
        for m in batch.records() {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push((
                m.partition,
                m.offset,
                m.key.map(|k| text(batch.bytes(k))),
                text(batch.bytes(m.value)),
                m.event_time,
            ));
        }
        if status == SourceStatus::Finished {
            break;
        }
    }
    out
}

fn messages(partitions: i32, per_partition: usize) -> Vec<(i32, String, String)> {
    (0..partitions)
        .flat_map(|p| {
            (0..per_partition)
                .map(move |i| (p, format!("k{p}-{i}"), format!(r#"{{"p":{p},"i":{i},"ts":{}}}"#, 1000 + i)))
        })
        .collect()
}

async fn produce_owned(brokers: &str, topic: &str, msgs: &[(i32, String, String)]) {
    produce(brokers, topic, msgs.iter().map(|(p, k, v)| (*p, k.as_str(), v.clone()))).await;
}

#[tokio::test]
async fn bounded_source_reads_every_partition_from_the_earliest() {
    let brokers = kafka_brokers();
    let topic = unique_topic("earliest");
    create_topic(&brokers, &topic, 3).await;
    let sent = messages(3, 400);
    produce_owned(&brokers, &topic, &sent).await;

    let spec = spec(&format!(
        "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nbounded = true\nevent_time_field = \"ts\"\n"
    ));
    let mut src = source(&spec, &connections(&brokers)).await;
    let mut got = drain(src.as_mut(), usize::MAX).await;
    got.sort();
    assert_eq!(got.len(), 1200, "bounded run reads exactly what was there at start");
    for (p, offset, key, value, event_time) in &got {
        let doc: serde_json::Value = serde_json::from_str(value).unwrap();
        assert_eq!(doc["p"], *p, "record kept its partition");
        assert_eq!(doc["i"], *offset, "offsets count from 0 per partition");
        assert_eq!(key.as_deref(), Some(format!("k{p}-{offset}").as_str()));
        assert_eq!(*event_time, Some(1000 + offset), "event time from the JSON field");
    }
}

#[tokio::test]
async fn start_positions_latest_offsets_and_timestamp() {
    let brokers = kafka_brokers();
    let topic = unique_topic("positions");
    create_topic(&brokers, &topic, 2).await;
    // One message per record batch: Tansu 0.6 fetches from the first batch
    // that *starts* at or after the offset asked for, so a start inside a
    // batch would skip to the next one (see docs/CONNECTORS.md).
    produce_unbatched(&brokers, &topic, messages(2, 10).iter().map(|(p, k, v)| (*p, k.as_str(), v.clone()))).await;
    let cx = connections(&brokers);
    let table = |start: &str| {
        spec(&format!(
            "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nstart = {start}\n"
        ))
    };

    // Explicit offsets: partition 0 from 7; partition 1 is unlisted, so from the earliest.
    let mut src = source(&table(r#"{ offsets = { "0" = 7 } }"#), &cx).await;
    let got = drain(src.as_mut(), 13).await;
    assert_eq!(got.iter().filter(|r| r.0 == 0).map(|r| r.1).min(), Some(7));
    assert_eq!(got.iter().filter(|r| r.0 == 1).count(), 10);

    // Latest: only what is produced after the start.
    let mut src = source(&table("\"latest\""), &cx).await;
    let mut batch = RecordBatch::default();
    src.poll(&mut batch, 100, Duration::from_millis(500)).await.unwrap();
    assert!(batch.is_empty(), "nothing new yet");
    produce(&brokers, &topic, [(1, "new", r#"{"new":true}"#.to_owned())]).await;
    let got = drain(src.as_mut(), 1).await;
    assert_eq!((got[0].0, got[0].1, got[0].3.as_str()), (1, 10, r#"{"new":true}"#));

    // Timestamp: the first message at or after the time, per partition.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mid = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (Both partitions get later messages: Tansu answers "offset 0" rather
    // than "none" for a partition with nothing after the time.)
    let later = [(0, "a"), (1, "b"), (0, "c")].map(|(p, k)| (p, k, format!(r#"{{"later":"{k}"}}"#)));
    produce_unbatched(&brokers, &topic, later).await;
    let mut src = source(&table(&format!("{{ timestamp = {mid} }}")), &cx).await;
    let got = drain(src.as_mut(), 3).await;
    let mut keys: Vec<_> = got.iter().map(|r| r.2.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c"], "only what was produced after the time");
    batch.clear();
    src.poll(&mut batch, 100, Duration::from_millis(300)).await.unwrap();
    assert!(batch.is_empty(), "and nothing from before it");
    let mut past = source(&table("{ timestamp = \"2000-01-01T00:00:00Z\" }"), &cx).await;
    let got = drain(past.as_mut(), 24).await;
    assert_eq!(got.len(), 24, "a start in the past reads everything");
}

/// A snapshot position can fall inside a producer's record batch. Tansu
/// answers a fetch there with the *next* batch; the source fetches from
/// `resume_lookback` earlier and drops what precedes the position, so
/// resuming neither skips nor repeats a record.
#[tokio::test]
async fn resuming_inside_a_record_batch_skips_nothing() {
    let brokers = kafka_brokers();
    let topic = unique_topic("mid-batch");
    create_topic(&brokers, &topic, 1).await;
    produce_owned(&brokers, &topic, &messages(1, 3000)).await; // batches of up to 10,000
    let resumed_at = |lookback: i64| {
        let spec = spec(&format!(
            "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nbounded = true\n\
             resume_lookback = {lookback}\n"
        ));
        let brokers = brokers.clone();
        async move {
            let connections = connections(&brokers);
            let snapshot = sluice_tests::snapshot_at("kafka_test", &[("in", 0, 1234)]);
            let cx = BuildContext { restore: Some(&snapshot), ..BuildContext::new(&spec, &connections) };
            let mut src = build_source(cx, "in", 0, &spec.sources["in"]).await.expect("kafka source");
            let offsets: Vec<i64> = drain(src.as_mut(), usize::MAX).await.iter().map(|r| r.1).collect();
            offsets
        }
    };
    let offsets = resumed_at(10_000).await;
    assert_eq!(offsets, (1234..3000).collect::<Vec<_>>(), "every record from the position on, once");
    // The control: fetching at the position itself loses the rest of its
    // batch on Tansu, which is what the lookback is for.
    let skipped = resumed_at(0).await;
    assert!(skipped.len() < offsets.len(), "Tansu skipped to the next batch: {} records", skipped.len());
}

#[tokio::test]
async fn several_topics_keep_positions_apart() {
    let brokers = kafka_brokers();
    let (a, b) = (unique_topic("multi-a"), unique_topic("multi-b"));
    create_topic(&brokers, &a, 1).await;
    create_topic(&brokers, &b, 1).await;
    produce(&brokers, &a, [(0, "x", "{}".to_owned())]).await;
    produce(&brokers, &b, [(0, "y", "{}".to_owned())]).await;
    let spec = spec(&format!(
        "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopics = [\"{a}\", \"{b}\"]\nbounded = true\n"
    ));
    let mut got = drain(source(&spec, &connections(&brokers)).await.as_mut(), usize::MAX).await;
    got.sort();
    let positions: Vec<_> = got.iter().map(|r| (r.0, r.1, r.2.clone().unwrap())).collect();
    assert_eq!(positions, vec![(0, 0, "x".into()), (65_536, 0, "y".into())], "topic index * 65536 + partition");
}

#[tokio::test]
async fn unreachable_broker_is_a_clear_error_not_a_hang() {
    let spec =
        spec("[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"t\"\nstartup_timeout = \"2s\"\n");
    let started = Instant::now();
    let cx = connections("127.0.0.1:1");
    let err =
        build_source(BuildContext::new(&spec, &cx), "in", 0, &spec.sources["in"]).await.err().expect("no broker there");
    let text = err.to_string();
    assert!(started.elapsed() < Duration::from_secs(15), "gave up in time: {:?}", started.elapsed());
    assert!(text.contains("kafka source `in`") && text.contains("is the broker up"), "{text}");
}

#[tokio::test]
async fn missing_connection_is_named() {
    let spec = spec("[sources.in]\nkind = \"kafka\"\nconnection = \"nope\"\ntopic = \"t\"\n");
    let cx = Connections::default();
    let err =
        build_source(BuildContext::new(&spec, &cx), "in", 0, &spec.sources["in"]).await.err().unwrap().to_string();
    assert!(err.contains("`nope` is not in the connection registry"), "{err}");
}

#[tokio::test]
async fn sink_writes_keys_values_and_tombstones() {
    let brokers = kafka_brokers();
    let topic = unique_topic("sink");
    create_topic(&brokers, &topic, 1).await;
    let spec = spec(&format!(
        "[sources.in]\nkind = \"file\"\npath = \"-\"\n[sinks.out]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nrow_id_header = true\n"
    ));
    let cx = connections(&brokers);
    let mut sink = build_sink(BuildContext::new(&spec, &cx), "out", &spec.sinks["out"]).await.unwrap();
    let row = |op, key: &str, value: &str, offset| SinkRow {
        op,
        key: Some(key.as_bytes().to_vec()),
        value: value.as_bytes().to_vec(),
        id: RowId { origin: RowOrigin::Record { source: 0, partition: 0, offset }, emit_index: 0 },
    };
    let rows: Vec<_> = (0..1000).map(|i| row(RowOp::Upsert, &format!("k{i}"), &format!("{{\"i\":{i}}}"), i)).collect();
    sink.write(&rows).await.unwrap();
    sink.write(&[row(RowOp::Delete, "k0", "{\"i\":0}", 1000)]).await.unwrap();
    sink.flush().await.unwrap();

    let got = read_topic(&brokers, &topic, 1, 1001, Duration::from_secs(20));
    assert_eq!(got[0].2.as_deref(), Some("k0"));
    assert_eq!(got[999].3.as_deref(), Some("{\"i\":999}"));
    assert_eq!((got[1000].2.as_deref(), got[1000].3.as_deref()), (Some("k0"), None), "a delete is a tombstone");
}

// Multi-threaded: the proxy runs on the runtime while the test blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_rides_out_a_broker_outage_without_loss_or_duplicates() {
    let broker = PrivateBroker::start().await;
    let brokers = broker.brokers();
    let topic = unique_topic("outage");
    create_topic(&brokers, &topic, 2).await;
    produce_owned(&brokers, &topic, &messages(2, 500)).await;

    let spec = spec(&format!("[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\n"));
    let mut src = source(&spec, &connections(&brokers)).await;
    let mut got = drain(src.as_mut(), 600).await;

    // The broker goes away: polls return (empty or with what was already
    // fetched) instead of failing or hanging.
    broker.proxy.cut();
    let mut batch = RecordBatch::default();
    for _ in 0..10 {
        batch.clear();
        src.poll(&mut batch, 500, Duration::from_millis(200)).await.expect("an outage is not an error");
        for m in batch.records() {
            got.push((m.partition, m.offset, None, String::new(), None));
        }
    }
    broker.proxy.restore();
    // More data after the outage; the source picks up where it was.
    let later: Vec<_> =
        (0..2).flat_map(|p| (500..700).map(move |i| (p, format!("k{p}-{i}"), "{}".to_owned()))).collect();
    produce_owned(&brokers, &topic, &later).await;
    let rest = 1400 - got.len();
    got.extend(drain(src.as_mut(), rest).await);

    let mut positions: Vec<(i32, i64)> = got.iter().map(|r| (r.0, r.1)).collect();
    positions.sort();
    let expected: Vec<(i32, i64)> = (0..2).flat_map(|p| (0..700).map(move |o| (p, o))).collect();
    assert_eq!(positions, expected, "every offset exactly once");
}

// Multi-threaded: the proxy runs on the runtime while the test blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_holds_rows_through_a_broker_outage() {
    let broker = PrivateBroker::start().await;
    let brokers = broker.brokers();
    let topic = unique_topic("sink-outage");
    create_topic(&brokers, &topic, 1).await;
    let spec = spec(&format!(
        "[sources.in]\nkind = \"file\"\npath = \"-\"\n[sinks.out]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\n"
    ));
    let cx = connections(&brokers);
    let mut sink = build_sink(BuildContext::new(&spec, &cx), "out", &spec.sinks["out"]).await.unwrap();
    let rows = |from: i64| -> Vec<SinkRow> {
        (from..from + 500)
            .map(|i| SinkRow {
                op: RowOp::Upsert,
                key: Some(format!("k{i}").into_bytes()),
                value: format!("{{\"i\":{i}}}").into_bytes(),
                id: RowId { origin: RowOrigin::Record { source: 0, partition: 0, offset: i }, emit_index: 0 },
            })
            .collect()
    };
    sink.write(&rows(0)).await.unwrap();
    sink.flush().await.unwrap();
    broker.proxy.cut();
    sink.write(&rows(500)).await.expect("rows are queued while the broker is away");
    let flushing = tokio::spawn(async move { sink.flush().await.map(|()| sink) });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!flushing.is_finished(), "flush waits for the broker (back-pressure)");
    broker.proxy.restore();
    let _sink = flushing.await.unwrap().expect("flush completes once the broker is back");

    let got = read_topic(&brokers, &topic, 1, 1000, Duration::from_secs(20));
    let values: Vec<String> = got.iter().map(|m| m.3.clone().unwrap()).collect();
    let expected: Vec<String> = (0..1000).map(|i| format!("{{\"i\":{i}}}")).collect();
    assert_eq!(values, expected, "every row once, in order (idempotent producer)");
}

#[tokio::test]
async fn positions_are_committed_for_lag_monitoring_and_raw_values_pass_as_bytes() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let brokers = kafka_brokers();
    let topic = unique_topic("commit");
    create_topic(&brokers, &topic, 1).await;
    let raw = "not json \u{1F600}".to_owned();
    produce(&brokers, &topic, (0..50).map(|_| (0, "k", raw.clone()))).await;
    // The group is the platform's name for the job, `sluice-<job>`: a spec
    // cannot name another group and move its committed offsets.
    let job = unique_topic("lag_job").replace('-', "_");
    let group = format!("sluice-{job}");
    let source_table = format!(
        "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nformat = \"raw\"\n\
         commit_interval = \"100ms\"\n"
    );
    let named = |extra: &str| format!("name = \"{job}\"\ncomponent = \"unused.wasm\"\n{source_table}{extra}");
    let err = JobSpec::parse(&named("group_id = \"payments\"\n"), Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("unknown field `group_id`"), "{err}");
    let err = JobSpec::parse(&named("properties = { \"group.id\" = \"payments\" }\n"), Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Kafka property `group.id` cannot be set in a spec: the platform sets it"), "{err}");
    let spec = JobSpec::parse(&named(""), Path::new(".")).expect("spec");
    let mut src = source(&spec, &connections(&brokers)).await;
    let got = drain(src.as_mut(), 50).await;
    assert!(got.iter().all(|r| r.3 == raw), "raw values arrive as they are");
    // One more poll after the interval commits the position.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut batch = RecordBatch::default();
    src.poll(&mut batch, 10, Duration::from_millis(50)).await.unwrap();

    let admin: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", &group).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let started = Instant::now();
    loop {
        let committed = admin.committed_offsets(tpl.clone(), Duration::from_secs(5)).unwrap();
        let offset = committed.find_partition(&topic, 0).unwrap().offset();
        if offset == rdkafka::Offset::Offset(50) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "committed offset is {offset:?}, not 50");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs task `index` of `count` over the bounded source `in` to its end with
/// the passthrough job; returns the (partition, offset) of every record it
/// forwarded.
async fn run_group(spec: &JobSpec, connections: &Connections, index: u32, count: u32) -> Vec<(i32, i64)> {
    use sluice_runtime::connectors::memory::MemorySink;
    use sluice_runtime::job::{TaskBuilder, TaskEnd};
    let sink = MemorySink::default();
    let component = sluice_tests::load("bench_passthrough").await.unwrap();
    let task = TaskBuilder::new(spec)
        .connections(connections.clone())
        .partition_group(index, count)
        .sink("out", Box::new(sink.clone()))
        .dead_letter(Box::new(MemorySink::default()))
        .build(sluice_tests::engine(), &component)
        .await
        .expect("task");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let end = tokio::time::timeout(Duration::from_secs(60), task.run(rx)).await.expect("a bounded run ends");
    assert_eq!(end.unwrap(), TaskEnd::Finished);
    sink.rows()
        .iter()
        .map(|row| match row.id.origin {
            RowOrigin::Record { partition, offset, .. } => (partition, offset),
            ref other => panic!("a forwarded record's row comes from {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn partition_groups_read_disjoint_partitions_and_together_every_record_once() {
    let brokers = kafka_brokers();
    let topic = unique_topic("groups");
    create_topic(&brokers, &topic, 4).await;
    produce_owned(&brokers, &topic, &messages(4, 100)).await;
    let spec = spec(&format!(
        "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nbounded = true\n\
         [sinks.out]\nkind = \"memory\"\n"
    ));
    let cx = connections(&brokers);
    let (first, second) = tokio::join!(run_group(&spec, &cx, 0, 2), run_group(&spec, &cx, 1, 2));
    assert!(first.iter().all(|(p, _)| p % 2 == 0), "group 0 of 2 reads partitions 0 and 2");
    assert!(second.iter().all(|(p, _)| p % 2 == 1), "group 1 of 2 reads partitions 1 and 3");
    let mut all: Vec<_> = first.into_iter().chain(second).collect();
    all.sort();
    let expected: Vec<(i32, i64)> = (0..4).flat_map(|p| (0..100).map(move |o| (p, o))).collect();
    assert_eq!(all, expected, "together every record exactly once");
}

#[tokio::test]
async fn a_file_source_cannot_be_split_into_groups() {
    use sluice_runtime::connectors::PartitionGroup;
    let spec = spec("[sources.in]\nkind = \"file\"\npath = \"-\"\n");
    let cx = Connections::default();
    let mut build = BuildContext::new(&spec, &cx);
    build.group = PartitionGroup { index: 1, count: 2 };
    let err = build_source(build, "in", 0, &spec.sources["in"]).await.err().expect("refused").to_string();
    assert!(err.contains("cannot be split") && err.contains("parallelism must be 1"), "{err}");
}

/// Waits (up to 30 s) until the source reports a lag that `wanted` accepts.
async fn lag_until(source: &dyn Source, what: &str, wanted: impl Fn(i64) -> bool) -> i64 {
    let started = Instant::now();
    loop {
        match source.lag() {
            Some(lag) if wanted(lag) => return lag,
            lag => assert!(started.elapsed() < Duration::from_secs(30), "lag is {lag:?}, not {what}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn lag_counts_the_records_behind_the_end_until_the_source_catches_up() {
    let brokers = kafka_brokers();
    let topic = unique_topic("lag");
    create_topic(&brokers, &topic, 2).await;
    // Three rounds, so each partition holds several record batches (Tansu
    // reports the start of the last batch as the end offset).
    for round in 0..3 {
        let msgs: Vec<_> = messages(2, 50).into_iter().map(|(p, k, v)| (p, format!("{k}-{round}"), v)).collect();
        produce_owned(&brokers, &topic, &msgs).await;
    }
    let spec = spec(&format!("[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\n"));
    let mut src = source(&spec, &connections(&brokers)).await;
    // Started at the earliest offsets and nothing read yet: behind by what
    // the topic holds (all of it on Kafka, up to the last batches on Tansu).
    // (A busy Tansu may show a partition's records a little late, hence
    // "eventually".)
    let behind = lag_until(src.as_ref(), "at least 200", |lag| lag >= 200).await;
    assert!(behind <= 300, "behind by {behind} of 300 records");

    let got = drain(src.as_mut(), 300).await;
    assert_eq!(got.len(), 300);
    lag_until(src.as_ref(), "0 once caught up", |lag| lag == 0).await;
}

/// A snapshot position older than what the topic still retains is flagged
/// (the records in between are gone) and reading starts at the earliest
/// offset left. Tansu cannot delete records, so this runs on librdkafka's
/// mock cluster, whose partitions keep at most 5 MB: 80 messages of 100 KB
/// push the earliest offset forward.
#[tokio::test]
async fn a_position_older_than_the_retention_is_flagged() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    use sluice_runtime::connectors::kafka::{ExpiredPosition, KafkaSource};
    use sluice_runtime::connectors::registry::SourceSpec;

    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("retained", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).set("linger.ms", "0").create().unwrap();
    let big = "x".repeat(100_000);
    for i in 0..80 {
        let record = FutureRecord::to("retained").partition(0).key("k").payload(&big);
        producer.send(record, Duration::from_secs(10)).await.unwrap_or_else(|(e, _)| panic!("message {i}: {e}"));
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let spec = spec(
        "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"retained\"\nbounded = true\nformat = \"raw\"\n",
    );
    let SourceSpec::Kafka(config) = &spec.sources["in"] else { unreachable!() };
    let connections = connections(&brokers);
    let snapshot = sluice_tests::snapshot_at("kafka_test", &[("in", 0, 5)]);
    let cx = BuildContext { restore: Some(&snapshot), ..BuildContext::new(&spec, &connections) };
    let mut source = KafkaSource::connect(cx, "in", 0, config).await.expect("kafka source");
    let expired = source.expired_positions().to_vec();
    assert_eq!(expired.len(), 1, "{expired:?}");
    let ExpiredPosition { ref topic, partition, next, earliest } = expired[0];
    assert_eq!((topic.as_str(), partition, next), ("retained", 0, 5));
    assert!(earliest > 5 && earliest < 80, "retention moved the earliest offset: {earliest}");
    let offsets: Vec<i64> = drain(&mut source, usize::MAX).await.iter().map(|r| r.1).collect();
    assert_eq!(offsets, (earliest..80).collect::<Vec<_>>(), "reading goes on from the earliest retained offset");
}

/// On the platform a connection may not use a setting that reads a file,
/// nor point at this machine unless the operator allows it; and a cluster
/// cannot send the client to a broker the connection could not name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_platform_connections_cannot_read_files_or_be_sent_elsewhere() {
    use sluice_runtime::connections::{Connection, ConnectionPolicy, HostRule, HostRules};
    let brokers = kafka_brokers();
    let topic = unique_topic("policy");
    create_topic(&brokers, &topic, 1).await;
    let spec = spec(&format!(
        "[sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nstartup_timeout = \"5s\"\n"
    ));
    let dir = tempfile::tempdir().unwrap();
    let on_platform = |brokers: &str, allow: &str, endpoints: &[&str]| {
        let mut c = connections(brokers);
        let hosts = HostRules {
            allow: Some(HostRule::parse_list(allow).unwrap()),
            platform_endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        };
        c.policy = ConnectionPolicy::platform(hosts, dir.path().to_path_buf(), Vec::new());
        c
    };
    let build = |c: Connections| {
        let spec = spec.clone();
        async move {
            let cx = BuildContext::new(&spec, &c);
            build_source(cx, "in", 0, &spec.sources["in"]).await.map(drop).map_err(|e| e.to_string())
        }
    };

    let mut reads_a_file = on_platform(&brokers, "127.0.0.0/8", &[]);
    if let Some(Connection::Kafka(k)) = reads_a_file.connections.get_mut("events") {
        k.properties.insert("ssl.ca.location".into(), "/etc/passwd".into());
    }
    let err = build(reads_a_file).await.unwrap_err();
    assert!(err.contains("Kafka property `ssl.ca.location` is not allowed on a connection"), "{err}");

    let err = build(on_platform(&brokers, "192.0.2.0/24", &[])).await.unwrap_err();
    assert!(err.contains(&format!("broker `{brokers}`")) && err.contains("--allow-hosts"), "{err}");

    // Through a proxy the platform allows, to a cluster that advertises
    // itself at an address the list does not hold.
    let proxy = sluice_tests::proxy::Proxy::start(&brokers).await.expect("proxy");
    let via = proxy.addr().to_string();
    let err = build(on_platform(&via, "192.0.2.0/24", &[&via])).await.unwrap_err();
    assert!(err.contains("the cluster advertises a broker the connection may not reach: broker `127.0.0.1:"), "{err}");

    build(on_platform(&brokers, "127.0.0.0/8", &[])).await.expect("allowed by the operator");
}
