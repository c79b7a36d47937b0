//! The one list of connectors: spec `kind` -> config type -> instance.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ConnectorError, DimensionStore, Sink, Source};
use super::{datagen, file, memory};
use crate::job::spec::JobSpec;

/// A source in the spec, chosen by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    /// JSON lines from a file, or stdin with `path = "-"`. Bounded.
    File(file::FileSourceConfig),
    /// Generated records at a rate, for demos and benchmarks.
    Datagen(datagen::DatagenConfig),
}

/// A sink in the spec, chosen by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkSpec {
    /// JSON lines to a file, or stdout with `path = "-"`.
    File(file::FileSinkConfig),
    /// Rows kept in memory, for debug runs and tests (every row is kept).
    Memory(memory::MemorySinkConfig),
}

/// A dimension store in the spec, chosen by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DimensionSpec {
    /// An in-memory table, optionally seeded from a JSON-lines file.
    Memory(memory::MemoryDimensionConfig),
}

/// Builds the source `name` (index `index` in the job's sources).
pub fn build_source(
    spec: &JobSpec,
    name: &str,
    index: u32,
    source: &SourceSpec,
) -> Result<Box<dyn Source>, ConnectorError> {
    Ok(match source {
        SourceSpec::File(c) => Box::new(file::FileSource::open(spec, name, index, c)?),
        SourceSpec::Datagen(c) => Box::new(datagen::DatagenSource::new(name, index, c)?),
    })
}

pub fn build_sink(spec: &JobSpec, name: &str, sink: &SinkSpec) -> Result<Box<dyn Sink>, ConnectorError> {
    Ok(match sink {
        SinkSpec::File(c) => Box::new(file::FileSink::create(spec, name, c)?),
        SinkSpec::Memory(_) => Box::new(memory::MemorySink::default()),
    })
}

pub fn build_dimension(
    spec: &JobSpec,
    name: &str,
    dim: &DimensionSpec,
) -> Result<Arc<dyn DimensionStore>, ConnectorError> {
    Ok(match dim {
        DimensionSpec::Memory(c) => Arc::new(memory::MemoryDimension::open(spec, name, c)?),
    })
}
