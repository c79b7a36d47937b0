//! `sluice run --spec job.toml`: runs a job in this process, printing a
//! progress line (records in/out, rate) every second.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sluice_runtime::connections::Connections;
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::snapshot::{Snapshot, SnapshotStore};
use sluice_runtime::wasm::JobEngine;

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
    let metrics = Arc::new(TaskMetrics::default());
    let mut builder = TaskBuilder::new(&spec)
        .connections(connections)
        .metrics(metrics.clone())
        .allow_non_restored_state(args.allow_non_restored_state);
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
