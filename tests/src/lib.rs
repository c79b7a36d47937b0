//! Shared helpers of the integration suites: paths of the WASM fixtures
//! (built by build.rs) and running an SDK test [`Case`] through the real
//! runtime, so native and WASM runs can be compared.

pub mod kafka;
pub mod proxy;
pub mod seed_sql;
pub mod services;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use sluice_runtime::clock::ManualClock;
use sluice_runtime::connectors::memory::{MemoryDimension, MemoryRecord, MemorySink, MemorySource};
use sluice_runtime::connectors::{DimensionStore, RowOp, RowOrigin};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd};
use sluice_runtime::snapshot::{Snapshot, SourcePosition};
use sluice_runtime::wasm::{JobEngine, LoadedComponent};
use sluice_sdk::testing::Case;

/// Path of a fixture component, e.g. `wasm("hourly_premium")`.
pub fn wasm(name: &str) -> PathBuf {
    Path::new(env!("SLUICE_WASM_DIR")).join(format!("{name}.wasm"))
}

/// One engine per test binary (compiling is the slow part; the engine
/// caches compiled components by content hash).
pub fn engine() -> &'static JobEngine {
    static ENGINE: OnceLock<JobEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let cache = Path::new(env!("SLUICE_WASM_DIR")).join("compiled");
        JobEngine::new(Some(cache)).expect("wasmtime engine")
    })
}

pub async fn load(name: &str) -> anyhow::Result<LoadedComponent> {
    let path = wasm(name);
    engine().load_file(&path).await.with_context(|| format!("loading {}", path.display()))
}

/// A snapshot holding only source positions `(source, partition, next
/// offset)`, to resume a source from in connector tests.
pub fn snapshot_at(job: &str, positions: &[(&str, i32, i64)]) -> Snapshot {
    let mut snapshot = Snapshot::empty(job, "1-0");
    snapshot.meta.positions = positions
        .iter()
        .map(|&(source, partition, next_offset)| SourcePosition { source: source.into(), partition, next_offset })
        .collect();
    snapshot
}

/// An emitted row: (is a delete, key, value).
pub type OutRow = (bool, Option<Vec<u8>>, serde_json::Value);

/// What a run produced, in a shape both the native harness and the runtime
/// can be reduced to: rows per sink in emit order, dead letters, final
/// dimension tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// sink -> rows in emit order
    pub rows: BTreeMap<String, Vec<OutRow>>,
    /// (source name, partition, offset, reason)
    pub dead_letters: Vec<(String, i32, i64, String)>,
    pub dimensions: BTreeMap<String, Vec<(String, serde_json::Value)>>,
}

impl Outcome {
    /// The outcome of a native run of `case` (sluice_sdk::testing).
    pub fn native(case: &Case, output: &sluice_sdk::testing::CaseOutput) -> Self {
        let mut rows: BTreeMap<_, Vec<_>> = case.sinks.iter().map(|s| (s.clone(), Vec::new())).collect();
        for r in &output.emitted {
            let delete = r.op == sluice_sdk::RowOp::Delete;
            rows.entry(r.sink.clone()).or_default().push((delete, r.key.clone(), r.value.clone()));
        }
        let sources = if case.sources.is_empty() { vec!["input".to_owned()] } else { case.sources.clone() };
        Outcome {
            rows,
            dead_letters: output
                .dead_letters
                .iter()
                .map(|(p, reason)| (sources[p.source as usize].clone(), p.partition, p.offset, reason.clone()))
                .collect(),
            dimensions: output.dimensions.iter().cloned().collect(),
        }
    }
}

/// Runs `case` through the runtime with the component `name`: the same
/// batches, processing time and watermark delay as the native harness.
pub async fn run_case(name: &str, case: &Case) -> anyhow::Result<Outcome> {
    let sources = if case.sources.is_empty() { vec!["input".to_owned()] } else { case.sources.clone() };
    let max_batch = case.batches.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut toml = String::from("name = \"case\"\ncomponent = \"unused.wasm\"\n[parameters]\n");
    for (k, v) in &case.parameters {
        toml.push_str(&format!("{k:?} = {v:?}\n"));
    }
    toml.push_str(&format!(
        "[batch]\nmax_records = {max_batch}\n[watermark]\nmax_out_of_orderness = \"{}ms\"\n",
        case.watermark_delay_ms
    ));
    for s in &sources {
        toml.push_str(&format!("[sources.{s:?}]\nkind = \"file\"\npath = \"unused\"\n"));
    }
    for s in &case.sinks {
        toml.push_str(&format!("[sinks.{s:?}]\nkind = \"memory\"\n"));
    }
    for (d, _) in &case.dimensions {
        toml.push_str(&format!("[dimensions.{d:?}]\nkind = \"memory\"\n"));
    }
    let spec = JobSpec::parse(&toml, Path::new(".")).context("case spec")?;
    let mut next_offsets: BTreeMap<(u32, i32), i64> = BTreeMap::new();
    let batches: Vec<Vec<MemoryRecord>> = case
        .batches
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|r| {
                    let next = next_offsets.entry((r.source, r.partition)).or_insert(0);
                    let offset = r.offset.unwrap_or(*next);
                    *next = offset + 1;
                    MemoryRecord {
                        // The spec declares the sources in the case's order.
                        source: r.source,
                        key: r.key.clone(),
                        value: r.value.clone(),
                        event_time: r.event_time,
                        headers: r.headers.clone(),
                        partition: r.partition,
                        offset,
                    }
                })
                .collect()
        })
        .collect();

    let component = load(name).await?;
    let mut builder = TaskBuilder::new(&spec).clock(Arc::new(ManualClock::new(case.processing_time)));
    let names = spec.source_names();
    for (i, source) in names.iter().enumerate() {
        let records = if i == 0 { batches.clone() } else { Vec::new() };
        builder = builder.source(source, Box::new(MemorySource::new(records)));
    }
    let sinks: Vec<(String, MemorySink)> = case.sinks.iter().map(|s| (s.clone(), MemorySink::default())).collect();
    for (name, sink) in &sinks {
        builder = builder.sink(name, Box::new(sink.clone()));
    }
    let mut dimensions = Vec::new();
    for (name, rows) in &case.dimensions {
        let store = Arc::new(MemoryDimension::with_rows(
            rows.iter().map(|(k, v)| (k.clone().into_bytes(), v.to_string().into_bytes())),
        ));
        builder = builder.dimension(name, store.clone());
        dimensions.push((name.clone(), store));
    }
    let dead = MemorySink::default();
    builder = builder.dead_letter(Box::new(dead.clone()));
    let task = builder.build(engine(), &component).await?;
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let end = task.run(stop_rx).await?;
    anyhow::ensure!(end == TaskEnd::Finished, "case run ended with {end:?}");

    let mut outcome = Outcome { rows: BTreeMap::new(), dead_letters: Vec::new(), dimensions: BTreeMap::new() };
    for (name, sink) in sinks {
        let rows = sink
            .rows()
            .into_iter()
            .map(|r| Ok((r.op == RowOp::Delete, r.key, serde_json::from_slice(&r.value)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        outcome.rows.insert(name, rows);
    }
    for row in dead.rows() {
        let v: serde_json::Value = serde_json::from_slice(&row.value)?;
        let RowOrigin::Record { partition, offset, .. } = row.id.origin else {
            anyhow::bail!("dead letter without a record")
        };
        outcome.dead_letters.push((
            v["source"].as_str().unwrap_or_default().to_owned(),
            partition,
            offset,
            v["reason"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    for (name, store) in dimensions {
        let rows = store
            .rows()
            .await?
            .into_iter()
            .map(|(k, v)| Ok((String::from_utf8(k)?, serde_json::from_slice(&v)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        outcome.dimensions.insert(name, rows);
    }
    Ok(outcome)
}
