//! `sluice run --spec job.toml`: runs a job in this process, printing a
//! progress line (records in/out, rate) every second.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sluice_runtime::connections::Connections;
use sluice_runtime::job::stages::{StageTopics, stage_job_name, stage_spec};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::snapshot::{Snapshot, SnapshotStore};
use sluice_runtime::wasm::{JobEngine, LoadedComponent};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job spec (TOML).
    #[arg(long)]
    pub spec: PathBuf,
    /// The component to run, overriding the spec's `component`.
    #[arg(long)]
    pub component: Option<PathBuf>,
    /// Set a parameter, overriding the spec: `--param name=value`.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// The connection registry (TOML, `[connections.NAME]` tables). Default:
    /// `$SLUICE_CONNECTIONS`, else `connections.toml` beside the spec if present.
    #[arg(long, env = "SLUICE_CONNECTIONS")]
    pub connections: Option<PathBuf>,
    /// Point a connection elsewhere for this run, or declare it:
    /// `--connection warehouse=postgres://localhost/test`.
    #[arg(long = "connection")]
    pub connection_overrides: Vec<String>,
    /// Where snapshots go: a directory (`DIR/<job>/<id>.snapshot`), a
    /// `postgres://` URL (table `sluice_snapshots`) or `s3://BUCKET/PREFIX`
    /// (endpoint and credentials from the `AWS_*` variables). With it, the
    /// job snapshots on the spec's `snapshot.interval` and when it stops.
    #[arg(long, env = "SLUICE_SNAPSHOTS")]
    pub snapshots: Option<String>,
    /// Start from `none` (fresh state, sources at their `start`), `latest`
    /// (the newest intact snapshot, or fresh when there is none) or a
    /// snapshot id. Needs --snapshots unless `none`.
    #[arg(long, default_value = "none")]
    pub from: String,
    /// Start even if the snapshot holds state the job no longer declares
    /// (that state is dropped).
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Run stage K of a job in repartition stages (`Job::STAGES`), which
    /// needs --stage-topics. Run each stage as a process of its own; over
    /// bounded input, start a stage once the one before has finished.
    #[arg(long, requires = "stage_topics")]
    pub stage: Option<u32>,
    /// Where a staged job's stages pass rows on: `CONNECTION:PREFIX`, a
    /// Kafka connection and the topics' prefix; stage k reads
    /// `PREFIX-s<k>`. Create those topics first, each with as many
    /// partitions as its stage is to have shards.
    #[arg(long, value_parser = parse_stage_topics)]
    pub stage_topics: Option<(String, String)>,
    /// Run shard I of N (`I/N`): the input partitions p with p % N == I
    /// (of a later stage, its topic's), with snapshots of its own.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
}

fn parse_stage_topics(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((c, p)) if !c.is_empty() && !p.is_empty() => Ok((c.to_owned(), p.to_owned())),
        _ => Err(format!("`{text}` is not CONNECTION:PREFIX")),
    }
}

fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let parsed = text.split_once('/').and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
    match parsed {
        Some((i, n)) if i < n && n <= 64 => Ok((i, n)),
        _ => Err(format!("`{text}` is not I/N with I < N <= 64")),
    }
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("`{text}` is not name=value"))
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut spec = JobSpec::load(&args.spec)?;
    spec.parameters.extend(args.params.iter().cloned());
    let component = component_path(&spec, args.component.as_deref())?;
    let engine = JobEngine::new(Some(cache_dir()))?;
    let loaded = engine.load_file(&component).await.with_context(|| format!("cannot load {}", component.display()))?;

    let connections = load_connections(&spec, &args)?;
    let spec = one_task_of(spec, &loaded, &args)?;
    let metrics = Arc::new(TaskMetrics::default());
    let mut builder = TaskBuilder::new(&spec)
        .connections(connections)
        .metrics(metrics.clone())
        .allow_non_restored_state(args.allow_non_restored_state)
        .stage(args.stage.unwrap_or(0));
    if let Some((index, count)) = args.shard {
        builder = builder.partition_group(index, count);
    }
    if let Some(location) = &args.snapshots {
        let store = sluice_runtime::snapshot::open_store(location).await?;
        if let Some(snapshot) = snapshot_to_restore(store.as_ref(), &spec.name, &args.from).await? {
            eprintln!("{}: restoring snapshot {}", spec.name, snapshot.meta.id);
            builder = builder.restore(snapshot);
        }
        builder = builder.snapshots(store);
    } else {
        anyhow::ensure!(args.from == "none", "--from {} needs --snapshots DIR", args.from);
    }
    let task = builder.build(&engine, &loaded).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::serve::shutdown_signal().await;
        // The task stops between batches and flushes its sinks.
        let _ = stop_tx.send(true);
    });
    let progress = (!args.quiet).then(|| tokio::spawn(report_progress(spec.name.clone(), metrics.clone())));
    let started = Instant::now();
    let result = task.run(stop_rx).await;
    if let Some(p) = progress {
        p.abort();
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let records_in = TaskMetrics::get(&metrics.records_in);
    eprintln!(
        "{}: {} — in {records_in} ({:.0}/s), out {}, dead letters {}, {elapsed:.2}s",
        spec.name,
        match &result {
            Ok(TaskEnd::Finished) => "finished",
            Ok(TaskEnd::Stopped) => "stopped",
            Err(_) => "failed",
        },
        records_in as f64 / elapsed,
        TaskMetrics::get(&metrics.records_out),
        TaskMetrics::get(&metrics.dead_letters),
    );
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The spec of the task this run is: with `--stage-topics`, the stage's
/// (`job::stages::stage_spec`, named `<name>__s<k>` after stage 0), and with
/// `--shard I/N` named `<name>__pI-of-N`, so each keeps snapshots of its own.
fn one_task_of(spec: JobSpec, loaded: &LoadedComponent, args: &RunArgs) -> anyhow::Result<JobSpec> {
    let mut spec = match &args.stage_topics {
        Some((connection, prefix)) => {
            let stage = args.stage.unwrap_or(0);
            let stages = loaded.stages.len().max(1) as u32;
            let bounded = spec.sources.values().all(|s| s.is_bounded());
            let topics = StageTopics { connection: connection.clone(), prefix: prefix.clone(), bounded };
            let mut staged = stage_spec(&spec, stage, stages, &topics)?;
            staged.name = stage_job_name(&spec.name, stage);
            staged
        }
        None => spec,
    };
    if let Some((index, count)) = args.shard {
        spec.name = format!("{}__p{index}-of-{count}", spec.name);
    }
    Ok(spec)
}

/// The snapshot `--from` names: none, the latest intact one, or an id.
async fn snapshot_to_restore(store: &dyn SnapshotStore, job: &str, from: &str) -> anyhow::Result<Option<Snapshot>> {
    Ok(match from {
        "none" => None,
        "latest" => store.latest(job).await?,
        id => Some(store.get(job, id).await?),
    })
}

/// The connection registry of this run, with `--connection` overrides.
fn load_connections(spec: &JobSpec, args: &RunArgs) -> anyhow::Result<Connections> {
    let beside_spec = spec.base_dir.join("connections.toml");
    let path = args.connections.clone().or_else(|| beside_spec.exists().then_some(beside_spec));
    let mut connections = match path {
        Some(path) => Connections::load(&path)?,
        None => Connections::default(),
    };
    for text in &args.connection_overrides {
        connections.apply_override(text).map_err(anyhow::Error::msg)?;
    }
    Ok(connections)
}

/// The component to run: `--component`; else, when the spec sits in a job
/// crate, that crate built now (cargo makes this a no-op when nothing
/// changed, and a stale component is never run); else the spec's `component`.
fn component_path(spec: &JobSpec, given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    if spec.base_dir.join("Cargo.toml").exists() {
        let dir = if spec.base_dir.as_os_str().is_empty() { Path::new(".") } else { spec.base_dir.as_path() };
        return super::build::compile(dir, true);
    }
    let from_spec = spec.resolve(&spec.component);
    anyhow::ensure!(
        from_spec.exists(),
        "component {} not found (build it with `sluice build`, or pass --component)",
        from_spec.display()
    );
    Ok(from_spec)
}

fn cache_dir() -> PathBuf {
    std::env::var_os("SLUICE_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("sluice-cache"))
}

async fn report_progress(job: String, metrics: Arc<TaskMetrics>) {
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let records_in = TaskMetrics::get(&metrics.records_in);
        let rate = (records_in - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), records_in);
        eprintln!(
            "{job}: in {records_in} ({rate:.0}/s), out {}, dead letters {}",
            TaskMetrics::get(&metrics.records_out),
            TaskMetrics::get(&metrics.dead_letters)
        );
    }
}
