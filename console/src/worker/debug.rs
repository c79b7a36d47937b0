//! Debug runs and previews: a job run over a handful of records — pasted
//! JSON lines, or the first records of its live sources — with every sink
//! replaced by memory, so nothing is written anywhere. Dimension stores are
//! read for real, but the run's own upserts stay in an overlay and are
//! dropped with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::memory::{MemoryRecord, MemorySink, MemorySource};
use sluice_runtime::connectors::registry::{self, BuildContext};
use sluice_runtime::connectors::staged::StagedDimension;
use sluice_runtime::connectors::{ConnectorError, RowOp, SinkRow, Source, SourceStatus};
use sluice_runtime::job::batch::RecordBatch;
use sluice_runtime::job::stages::{NEXT_STAGE_SINK, STAGE_SOURCE, StageTopics, stage_spec};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::wasm::LoadedComponent;

use super::{DebugSlot, Worker, WorkerError, WorkerResult};

/// Most records a debug run takes (and a later stage of it).
pub const MAX_DEBUG_RECORDS: usize = 10_000;
/// Most rows a debug run returns, over all its stages.
const MAX_DEBUG_ROWS: usize = 100_000;
/// Longest a debug run (or a preview's read of live sources) may take.
const DEBUG_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a preview waits for live records.
const LIVE_WAIT: Duration = Duration::from_secs(10);

/// Where a debug run's records come from.
#[derive(Debug, Clone)]
pub enum DebugInput {
    /// JSON lines, as records of `source`.
    Lines { source: Option<String>, text: String },
    /// The first `limit` records of the job's live sources.
    Live { limit: usize },
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DebugRow {
    pub sink: String,
    /// `upsert` or `delete`.
    pub op: String,
    pub key: Option<String>,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DebugOutput {
    pub records_in: u64,
    pub rows: Vec<DebugRow>,
    #[schema(value_type = Vec<Object>)]
    pub dead_letters: Vec<serde_json::Value>,
    pub logs: Vec<LogLine>,
}

impl Worker {
    /// Runs `component` with `spec` over `input`, sinks disabled, on the job
    /// threads (never the console's), within the platform's ceilings.
    pub async fn debug_run(
        self: &Arc<Self>,
        slot: DebugSlot,
        component: &LoadedComponent,
        spec: &JobSpec,
        connections: &Connections,
        input: DebugInput,
    ) -> WorkerResult<DebugOutput> {
        self.ceilings.check(spec).map_err(|e| WorkerError::Invalid(e.to_string()))?;
        let (worker, component, spec, connections) =
            (self.clone(), component.clone(), spec.clone(), connections.clone());
        // The slot goes with the run: a caller that hangs up does not free
        // its place while the run goes on.
        self.threads
            .run(async move {
                let output = worker.debug_run_here(&component, &spec, &connections, input).await;
                drop(slot);
                output
            })
            .await?
    }

    /// Runs the job's stages one after the other (a job of one stage runs
    /// once): the first over `input`, each later one over the rows the one
    /// before sent on, which the output shows as sink `sluice.next-stage`.
    async fn debug_run_here(
        &self,
        component: &LoadedComponent,
        spec: &JobSpec,
        connections: &Connections,
        input: DebugInput,
    ) -> WorkerResult<DebugOutput> {
        let stages = component.stages.len().max(1) as u32;
        // Every stage's connectors between stages are memory ones: the
        // repartition topics' connection is never used.
        let topics = StageTopics { connection: "debug".into(), prefix: "debug".into(), bounded: true };
        let mut output = DebugOutput { records_in: 0, rows: Vec::new(), dead_letters: Vec::new(), logs: Vec::new() };
        let mut carried = Vec::new();
        // One deadline for every stage.
        let deadline = Instant::now() + DEBUG_TIMEOUT;
        for stage in 0..stages {
            let staged = if stages > 1 {
                stage_spec(spec, stage, stages, &topics).map_err(|e| WorkerError::Invalid(e.to_string()))?
            } else {
                spec.clone()
            };
            let metrics = Arc::new(TaskMetrics::default());
            let builder =
                TaskBuilder::new(&staged).connections(connections.clone()).metrics(metrics.clone()).stage(stage);
            let builder = if stage == 0 {
                self.debug_sources(builder, spec, connections, input.clone()).await?
            } else {
                let batches = vec![std::mem::take(&mut carried)];
                builder.source(STAGE_SOURCE, Box::new(MemorySource::new(batches)))
            };
            let (ran, next) = self.debug_stage(builder, &staged, connections, component, deadline).await?;
            if stage == 0 {
                output.records_in = TaskMetrics::get(&metrics.records_in);
            }
            // What the next stage reads, as many as a debug run takes.
            carried = next
                .into_iter()
                .take(MAX_DEBUG_RECORDS)
                .enumerate()
                .map(|(i, row)| MemoryRecord {
                    key: row.key,
                    value: row.value,
                    offset: i as i64,
                    ..MemoryRecord::default()
                })
                .collect();
            let room = MAX_DEBUG_ROWS.saturating_sub(output.rows.len());
            output.rows.extend(ran.rows.into_iter().take(room));
            output.dead_letters.extend(ran.dead_letters);
            output.logs.extend(
                metrics
                    .logs()
                    .into_iter()
                    .map(|(level, message)| LogLine { level: format!("{level:?}").to_lowercase(), message }),
            );
        }
        Ok(output)
    }

    /// The first stage's sources: the pasted lines, or the live sources cut short.
    async fn debug_sources<'a>(
        &self,
        mut builder: TaskBuilder<'a>,
        spec: &JobSpec,
        connections: &Connections,
        input: DebugInput,
    ) -> WorkerResult<TaskBuilder<'a>> {
        let cx = BuildContext::new(spec, connections);
        match input {
            DebugInput::Lines { source, text } => {
                let names = spec.source_names();
                let chosen = match &source {
                    Some(s) => names.iter().position(|n| n == s).ok_or_else(|| {
                        WorkerError::Invalid(format!(
                            "the spec has no source `{s}`; its sources are {}",
                            names.join(", ")
                        ))
                    })?,
                    None => 0,
                };
                let records: Vec<MemoryRecord> = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .take(MAX_DEBUG_RECORDS)
                    .enumerate()
                    .map(|(i, line)| MemoryRecord {
                        source: chosen as u32,
                        value: line.as_bytes().to_vec(),
                        offset: i as i64,
                        ..MemoryRecord::default()
                    })
                    .collect();
                for (i, name) in names.iter().enumerate() {
                    let batches = if i == chosen { vec![records.clone()] } else { Vec::new() };
                    builder = builder.source(name, Box::new(MemorySource::new(batches)));
                }
            }
            DebugInput::Live { limit } => {
                for (i, (name, source_spec)) in spec.sources.iter().enumerate() {
                    let inner =
                        registry::build_source(cx, name, i as u32, source_spec).await.map_err(WorkerError::task)?;
                    let take =
                        TakeSource { inner, left: limit.min(MAX_DEBUG_RECORDS), deadline: Instant::now() + LIVE_WAIT };
                    builder = builder.source(name, Box::new(take));
                }
            }
        }
        Ok(builder)
    }

    /// Runs one stage with memory sinks and staged dimension writes, until
    /// `deadline`; its rows and dead letters (no records in, no logs), and
    /// the rows it sent to the next stage as they are.
    async fn debug_stage(
        &self,
        mut builder: TaskBuilder<'_>,
        spec: &JobSpec,
        connections: &Connections,
        component: &LoadedComponent,
        deadline: Instant,
    ) -> WorkerResult<(DebugOutput, Vec<SinkRow>)> {
        let cx = BuildContext::new(spec, connections);
        let mut sinks = Vec::new();
        for name in spec.sink_names() {
            let sink = MemorySink::default();
            builder = builder.sink(&name, Box::new(sink.clone()));
            sinks.push((name, sink));
        }
        for (name, dim_spec) in &spec.dimensions {
            let real = registry::build_dimension(cx, name, dim_spec).await.map_err(WorkerError::task)?;
            // Staged writes that are never committed: the run reads its own
            // writes, and the store is left as it was.
            builder = builder.dimension(name, Arc::new(StagedDimension::new(real)));
        }
        let dead = MemorySink::default();
        builder = builder.dead_letter(Box::new(dead.clone()));
        let task = builder.build(self.engine(), component).await.map_err(WorkerError::task)?;
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let end = tokio::time::timeout_at(deadline.into(), task.run(stop_rx))
            .await
            .map_err(|_| WorkerError::Task(format!("the debug run did not finish within {DEBUG_TIMEOUT:?}")))?
            .map_err(WorkerError::task)?;
        debug_assert_eq!(end, TaskEnd::Finished);
        let rows = sinks
            .iter()
            .flat_map(|(name, sink)| {
                sink.rows().into_iter().map(move |r| DebugRow {
                    sink: name.clone(),
                    op: if r.op == RowOp::Delete { "delete".into() } else { "upsert".into() },
                    key: r.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                    value: serde_json::from_slice(&r.value)
                        .unwrap_or_else(|_| String::from_utf8_lossy(&r.value).into_owned().into()),
                })
            })
            .collect();
        let next = sinks.iter().find(|(name, _)| name == NEXT_STAGE_SINK).map(|(_, s)| s.rows()).unwrap_or_default();
        let output = DebugOutput {
            records_in: 0,
            rows,
            dead_letters: dead.rows().iter().map(|r| serde_json::from_slice(&r.value).unwrap_or_default()).collect(),
            logs: Vec::new(),
        };
        Ok((output, next))
    }
}

/// A live source cut after `left` records or at `deadline`.
struct TakeSource {
    inner: Box<dyn Source>,
    left: usize,
    deadline: Instant,
}

#[async_trait]
impl Source for TakeSource {
    async fn poll(
        &mut self,
        batch: &mut RecordBatch,
        max: usize,
        max_wait: Duration,
    ) -> Result<SourceStatus, ConnectorError> {
        if self.left == 0 || Instant::now() >= self.deadline {
            return Ok(SourceStatus::Finished);
        }
        let before = batch.len();
        let status = self.inner.poll(batch, max.min(self.left), max_wait).await?;
        self.left = self.left.saturating_sub(batch.len() - before);
        Ok(if self.left == 0 { SourceStatus::Finished } else { status })
    }
}
