//! `sluice gen SCENARIO`: sends a scenario's generated events to Kafka
//! (one topic per stream) or to JSON-lines files, at a chosen rate.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use sluice_gen::{Event, GenOptions};

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// The scenario (see --list).
    #[arg(required_unless_present = "list")]
    pub scenario: Option<String>,
    /// List the scenarios and their streams.
    #[arg(long)]
    pub list: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Events to generate.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Events per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Mean event-time gap between consecutive events, in ms (the events
    /// span about COUNT × STEP_MS from 2024-03-15 00:00 +08:00).
    #[arg(long, default_value_t = GenOptions::default().step_ms, value_parser = clap::value_parser!(i64).range(1..))]
    pub step_ms: i64,
    /// Share of late events (0..1).
    #[arg(long, default_value_t = 0.01)]
    pub late: f64,
    /// Share of duplicated events (0..1).
    #[arg(long, default_value_t = 0.01)]
    pub duplicated: f64,
    /// Share of malformed events (0..1).
    #[arg(long, default_value_t = 0.001)]
    pub malformed: f64,
    /// Kafka bootstrap servers: each stream goes to topic PREFIX+stream.
    #[arg(long, conflicts_with = "out")]
    pub kafka: Option<String>,
    /// Prefix of the topic names.
    #[arg(long, default_value = "")]
    pub topic_prefix: String,
    /// Partitions of the topics created when missing.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// A directory: each stream goes to DIR/<stream>.jsonl.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn generate(args: &GenArgs) -> anyhow::Result<()> {
    if args.list {
        for s in sluice_gen::scenarios() {
            println!("{:<20} {} (streams: {})", s.name(), s.description(), s.streams().join(", "));
        }
        return Ok(());
    }
    let name = args.scenario.as_deref().unwrap_or_default();
    let scenario = sluice_gen::scenario(name).with_context(|| {
        let known: Vec<_> = sluice_gen::scenarios().iter().map(|s| s.name()).collect();
        format!("unknown scenario `{name}`; known: {}", known.join(", "))
    })?;
    let options = GenOptions {
        seed: args.seed,
        count: args.count,
        step_ms: args.step_ms,
        late: args.late,
        duplicated: args.duplicated,
        malformed: args.malformed,
        ..GenOptions::default()
    };
    let events = scenario.generate(&options);
    let mut output = match (&args.kafka, &args.out) {
        (Some(brokers), _) => {
            let topics: Vec<String> = scenario.streams().iter().map(|s| format!("{}{s}", args.topic_prefix)).collect();
            runtime()?.block_on(create_missing_topics(brokers, &topics, args.partitions))?;
            Output::kafka(brokers)?
        }
        (None, Some(dir)) => Output::Files { dir: dir.clone(), files: Default::default() },
        (None, None) => anyhow::bail!("say where the events go: --kafka BROKERS or --out DIR"),
    };
    let started = Instant::now();
    for (i, event) in events.iter().enumerate() {
        if args.rate > 0 {
            let due = started + Duration::from_secs_f64(i as f64 / args.rate as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        output.send(&args.topic_prefix, event)?;
    }
    output.finish()?;
    eprintln!("{name}: {} events in {:.1}s", events.len(), started.elapsed().as_secs_f64());
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Creates the topics that do not exist yet (brokers such as Tansu do not
/// create them on first use, and records sent to a missing topic are lost).
async fn create_missing_topics(brokers: &str, topics: &[String], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("cannot create a Kafka admin client")?;
    let new: Vec<NewTopic> = topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
    let results = admin.create_topics(&new, &AdminOptions::new()).await.context("cannot create the topics")?;
    for result in results {
        match result {
            Ok(topic) => eprintln!("created topic {topic} ({partitions} partitions)"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, e)) => anyhow::bail!("cannot create topic {topic}: {e}"),
        }
    }
    Ok(())
}

/// Counts records the broker did not accept, so a run that lost some fails.
#[derive(Default)]
struct CountFailures {
    failed: Arc<AtomicU64>,
}

impl ClientContext for CountFailures {}

impl ProducerContext for CountFailures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result
            && self.failed.fetch_add(1, Ordering::Relaxed) == 0
        {
            eprintln!("error: an event was not delivered: {e}");
        }
    }
}

enum Output {
    Kafka(ThreadedProducer<CountFailures>, Arc<AtomicU64>),
    Files { dir: PathBuf, files: std::collections::HashMap<&'static str, std::io::BufWriter<std::fs::File>> },
}

impl Output {
    fn kafka(brokers: &str) -> anyhow::Result<Self> {
        let context = CountFailures::default();
        let failed = context.failed.clone();
        let producer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create_with_context(context)
            .context("cannot create a Kafka producer")?;
        Ok(Output::Kafka(producer, failed))
    }

    fn send(&mut self, prefix: &str, event: &Event) -> anyhow::Result<()> {
        match self {
            Output::Kafka(producer, _) => {
                let topic = format!("{prefix}{}", event.stream);
                let mut record =
                    BaseRecord::to(&topic).key(&event.key).payload(&event.value).timestamp(event.event_time_ms);
                loop {
                    match producer.send(record) {
                        Ok(()) => return Ok(()),
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                            back,
                        )) => {
                            record = back;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err((e, _)) => return Err(e).context("cannot send to Kafka"),
                    }
                }
            }
            Output::Files { dir, files } => {
                if !files.contains_key(event.stream) {
                    std::fs::create_dir_all(&*dir)?;
                    let path = dir.join(format!("{}.jsonl", event.stream));
                    let file =
                        std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
                    files.insert(event.stream, std::io::BufWriter::new(file));
                }
                let file = files.get_mut(event.stream).expect("opened above");
                file.write_all(&event.value)?;
                file.write_all(b"\n")?;
                Ok(())
            }
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Kafka(producer, failed) => {
                producer.flush(Duration::from_secs(60)).context("Kafka did not acknowledge every event")?;
                let failed = failed.load(Ordering::Relaxed);
                anyhow::ensure!(failed == 0, "{failed} events were not delivered");
                Ok(())
            }
            Output::Files { files, .. } => {
                for (_, mut f) in files {
                    f.flush()?;
                }
                Ok(())
            }
        }
    }
}
