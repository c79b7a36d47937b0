//! Pipelines on the real services, each beside its ceiling, in one run:
//!
//! (a) Kafka -> WASM passthrough -> Kafka, against a plain rdkafka
//!     consume -> produce loop on the same broker and data (the I/O ceiling);
//! (b) Kafka -> WASM passthrough -> PostgreSQL upsert, in rows/s on one
//!     connection;
//! (c) the hop between two jobs: the passthrough writing row ids
//!     (`row_id_header`), and a second passthrough reading that topic with
//!     `dedup_by_row_id` against the same without it.
//!
//! `cargo bench -p sluice-tests --bench pipeline` (starts Tansu through
//! scripts/tansu.sh when it is not up; PostgreSQL must be up). `BENCH_RECORDS`
//! sets the number of records (default 300000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_runtime::connections::Connections;
use sluice_runtime::job::{JobSpec, TaskBuilder};
use sluice_runtime::metrics::TaskMetrics;
use sluice_tests::kafka::{create_topic, produce, unique_topic};
use sluice_tests::services::{kafka_brokers, postgres_url};
use sluice_tests::{engine, load};

fn records(n: usize) -> Vec<(i32, String, String)> {
    (0..n as u64)
        .map(|i| {
            let user = (i * 7919) % 10_000;
            let value = format!(
                r#"{{"id":{i},"account":"user-{user:05}","amount":{}.{:02},"currency":"CNY","channel":"app","ts":{}}}"#,
                (i * 37) % 1000,
                i % 100,
                1_700_000_000_000 + i as i64
            );
            (0, format!("user-{user:05}"), value)
        })
        .collect()
}

/// The ceiling: consume every message and produce it to `out`, then flush.
async fn plain_copy(brokers: &str, input: &str, out: &str, n: usize) -> Duration {
    let started = Instant::now();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-ceiling")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.min.messages", "200000")
        .set("fetch.wait.max.ms", fetch_wait())
        .create()
        .unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(input, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut copied = 0;
    // Batched like the task loop: drain what is fetched (up to 4096), then
    // produce it, so the ceiling is not held back by per-message alternation.
    let mut batch: Vec<(Option<Vec<u8>>, Vec<u8>)> = Vec::with_capacity(4096);
    while copied < n {
        batch.clear();
        // Wait for the first message, then take what is already fetched.
        let Ok(first) = consumer.recv().await else { continue };
        batch.push((first.key().map(<[u8]>::to_vec), first.payload().unwrap_or_default().to_vec()));
        while batch.len() < 4096 {
            let Some(Ok(m)) = consumer.recv().now_or_never() else { break };
            batch.push((m.key().map(<[u8]>::to_vec), m.payload().unwrap_or_default().to_vec()));
        }
        for (key, payload) in &batch {
            let mut record = BaseRecord::<[u8], [u8]>::to(out).payload(payload.as_slice());
            if let Some(k) = key {
                record = record.key(k.as_slice());
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                if let Err((_, r)) = producer.send(r) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    record = Some(r);
                }
            }
        }
        copied += batch.len();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    started.elapsed()
}

/// Runs the passthrough job from `input` to the sink in `sink_toml` until `n`
/// records went in, then stops it (which flushes its sinks).
async fn sluice_copy(brokers: &str, input: &str, sink_toml: &str, n: usize) -> Duration {
    sluice_copy_with(brokers, input, "", sink_toml, n).await
}

/// [`sluice_copy`] with `source_toml` added to the source's table.
async fn sluice_copy_with(brokers: &str, input: &str, source_toml: &str, sink_toml: &str, n: usize) -> Duration {
    let spec = format!(
        "name = \"bench\"\ncomponent = \"unused.wasm\"\n[batch]\nmax_records = 4096\n\
         [sources.in]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{input}\"\nproperties = {{ \"fetch.wait.max.ms\" = \"{}\" }}\n{source_toml}{sink_toml}\n\
         [dead_letter]\nkind = \"memory\"\n",
        fetch_wait()
    );
    let spec = JobSpec::parse(&spec, std::path::Path::new(".")).unwrap();
    let mut connections = Connections::default();
    connections.apply_override(&format!("events={brokers}")).unwrap();
    connections.apply_override(&format!("warehouse={}", postgres_url())).unwrap();
    let component = load("bench_passthrough").await.unwrap();
    let metrics = Arc::new(TaskMetrics::default());
    // Timed from building the task: its consumer starts fetching then, as the
    // plain loop's does from its creation.
    let started = Instant::now();
    let task = TaskBuilder::new(&spec)
        .connections(connections)
        .metrics(metrics.clone())
        .build(engine(), &component)
        .await
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(async move {
        while TaskMetrics::get(&metrics.records_in) < n as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop.send(true);
    });
    task.run(stop_rx).await.unwrap();
    let elapsed = started.elapsed();
    watcher.abort();
    elapsed
}

/// `fetch.wait.max.ms` of both consumers (`BENCH_FETCH_WAIT`, default 100).
fn fetch_wait() -> String {
    std::env::var("BENCH_FETCH_WAIT").unwrap_or_else(|_| "100".into())
}

/// Rounds of (a), best of each side.
const ROUNDS: usize = 3;

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000);
    let brokers = kafka_brokers();
    let input = unique_topic("bench-in");
    create_topic(&brokers, &input, 1).await;
    let data = records(n);
    produce(&brokers, &input, data.iter().map(|(p, k, v)| (*p, k.as_str(), v.clone()))).await;
    println!("{n} records of ~{} bytes JSON in one partition\n", data[0].2.len());

    // Alternating rounds, best of each: the first read of a topic is slower
    // on the broker, and the machine is noisy.
    let (mut ceiling, mut wasm) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let (ceiling_out, sluice_out) = (unique_topic("bench-ceiling-out"), unique_topic("bench-sluice-out"));
        create_topic(&brokers, &ceiling_out, 1).await;
        create_topic(&brokers, &sluice_out, 1).await;
        let kafka_sink = format!("[sinks.out]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{sluice_out}\"\n");
        wasm = wasm.min(sluice_copy(&brokers, &input, &kafka_sink, n).await);
        ceiling = ceiling.min(plain_copy(&brokers, &input, &ceiling_out, n).await);
    }
    println!("| pipeline | records/s | vs ceiling |");
    println!("|---|---|---|");
    println!("| (a) plain rdkafka consume -> produce (ceiling) | {:.0} | 100% |", rate(n, ceiling));
    println!(
        "| (a) Kafka -> WASM passthrough -> Kafka | {:.0} | {:.0}% |",
        rate(n, wasm),
        100.0 * ceiling.as_secs_f64() / wasm.as_secs_f64()
    );

    let table = format!("bench_upsert_{}", std::process::id());
    let sql_sink = format!(
        "[sinks.out]\nkind = \"sql\"\nconnection = \"warehouse\"\ntable = \"{table}\"\nprimary_key = [\"id\"]\n\
         create_table = true\nbatch_size = 10000\n\
         columns = {{ id = \"bigint\", account = \"text\", amount = \"decimal(12,2)\", currency = \"text\", channel = \"text\", ts = \"bigint\" }}\n"
    );
    let pg = sluice_copy(&brokers, &input, &sql_sink, n).await;
    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    let (rows,): (i64,) = sqlx::query_as(&format!("select count(*) from {table}")).fetch_one(&pool).await.unwrap();
    sqlx::query(&format!("drop table {table}")).execute(&pool).await.unwrap();
    println!("| (b) Kafka -> WASM passthrough -> PostgreSQL upsert (1 connection) | {:.0} | — |", rate(n, pg));
    assert_eq!(rows as usize, n, "every record is a row");

    // (c) One job's output, with row ids, read by another with and without
    // dedup, alternating.
    let kafka_sink = |topic: &str, ids: bool| {
        format!("[sinks.out]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\nrow_id_header = {ids}\n")
    };
    let hop = unique_topic("bench-hop");
    create_topic(&brokers, &hop, 1).await;
    let stamped = sluice_copy(&brokers, &input, &kafka_sink(&hop, true), n).await;
    let (mut plain, mut dedup) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let (plain_out, dedup_out) = (unique_topic("bench-hop-plain"), unique_topic("bench-hop-dedup"));
        create_topic(&brokers, &plain_out, 1).await;
        create_topic(&brokers, &dedup_out, 1).await;
        plain = plain.min(sluice_copy(&brokers, &hop, &kafka_sink(&plain_out, false), n).await);
        let dedup_source = "dedup_by_row_id = true\n";
        dedup = dedup.min(sluice_copy_with(&brokers, &hop, dedup_source, &kafka_sink(&dedup_out, false), n).await);
    }
    println!(
        "| (c) Kafka -> WASM passthrough -> Kafka with `row_id_header` (one run) | {:.0} | {:.0}% |",
        rate(n, stamped),
        100.0 * ceiling.as_secs_f64() / stamped.as_secs_f64()
    );
    println!("| (c) that topic -> WASM passthrough -> Kafka | {:.0} | — |", rate(n, plain));
    println!(
        "| (c) that topic -> WASM passthrough -> Kafka, `dedup_by_row_id` | {:.0} | {:.0}% of the line above |",
        rate(n, dedup),
        100.0 * plain.as_secs_f64() / dedup.as_secs_f64()
    );
}
