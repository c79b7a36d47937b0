//! The one list of connectors: spec `kind` -> config type -> instance.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cache::{CacheConfig, CachedDimension};
use super::staged::WriteMode;
use super::{ConnectorError, DimensionStore, PartitionGroup, Sink, Source};
use super::{datagen, file, kafka, memory, redis, sql};
use crate::connections::Connections;
use crate::job::spec::JobSpec;
use crate::snapshot::Snapshot;

/// What building a connector may need: the spec (for paths and the job's
/// name) and the connection registry (for addresses and secrets).
#[derive(Clone, Copy)]
pub struct BuildContext<'a> {
    pub spec: &'a JobSpec,
    pub connections: &'a Connections,
    /// The snapshot the task resumes from: sources start at its positions.
    pub restore: Option<&'a Snapshot>,
    /// The share of each source's partitions this task reads.
    pub group: PartitionGroup,
}

impl<'a> BuildContext<'a> {
    /// A context for a fresh start (no snapshot).
    pub fn new(spec: &'a JobSpec, connections: &'a Connections) -> Self {
        BuildContext { spec, connections, restore: None, group: PartitionGroup::default() }
    }

    /// Where source `name` resumes, when the task restores a snapshot.
    pub fn resume_positions(&self, name: &str) -> Option<Vec<(i32, i64)>> {
        self.restore.map(|s| s.positions_of(name))
    }
}

/// A source in the spec, chosen by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    /// JSON lines from a file, or stdin with `path = "-"`. Bounded.
    File(file::FileSourceConfig),
    /// Generated records at a rate, for demos and benchmarks.
    Datagen(datagen::DatagenConfig),
    /// One or more Kafka topics, all partitions, assigned at explicit positions.
    Kafka(kafka::KafkaSourceConfig),
    /// The rows of a SQL query, read once in key order (bounded).
    Sql(sql::SqlSourceConfig),
}

/// A sink in the spec, chosen by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkSpec {
    /// JSON lines to a file, or stdout with `path = "-"`.
    File(file::FileSinkConfig),
    /// Rows kept in memory, for debug runs and tests (every row is kept).
    Memory(memory::MemorySinkConfig),
    /// A Kafka topic: the emit's key, the row as the value, deletes as tombstones.
    Kafka(kafka::KafkaSinkConfig),
    /// A table in PostgreSQL, MySQL/MariaDB or SQLite, upserted or appended.
    Sql(sql::SqlSinkConfig),
}

/// A dimension store in the spec, chosen by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DimensionSpec {
    /// An in-memory table, optionally seeded from a JSON-lines file.
    Memory(memory::MemoryDimensionConfig),
    /// A SQL table keyed by its key column(s), read through a cache.
    Sql(sql::SqlDimensionConfig),
    /// Redis keys (JSON strings or hashes), read through a cache.
    Redis(redis::RedisDimensionConfig),
}

impl DimensionSpec {
    /// When the job's upserts reach the store.
    pub fn writes(&self) -> WriteMode {
        match self {
            DimensionSpec::Memory(_) => WriteMode::Immediate,
            DimensionSpec::Sql(c) => c.writes,
            DimensionSpec::Redis(c) => c.writes,
        }
    }
}

impl SourceSpec {
    /// What the spec alone can tell is wrong (names, SQL, settings a spec
    /// may not set), checked when the spec is read.
    pub fn check(&self) -> Result<(), String> {
        match self {
            SourceSpec::Kafka(c) => kafka_properties(&c.properties),
            SourceSpec::Sql(c) => c.check(),
            SourceSpec::File(_) | SourceSpec::Datagen(_) => Ok(()),
        }
    }
}

impl SinkSpec {
    /// See [`SourceSpec::check`].
    pub fn check(&self) -> Result<(), String> {
        match self {
            SinkSpec::Kafka(c) => kafka_properties(&c.properties),
            SinkSpec::Sql(c) => c.check(),
            SinkSpec::File(_) | SinkSpec::Memory(_) => Ok(()),
        }
    }
}

impl DimensionSpec {
    /// See [`SourceSpec::check`].
    pub fn check(&self) -> Result<(), String> {
        match self {
            DimensionSpec::Sql(c) => c.check(),
            DimensionSpec::Memory(_) | DimensionSpec::Redis(_) => Ok(()),
        }
    }
}

fn kafka_properties(properties: &indexmap::IndexMap<String, String>) -> Result<(), String> {
    properties.keys().try_for_each(|key| crate::connections::check_spec_property(key))
}

/// Checks what can be checked of the spec's sources without connecting
/// (a `datagen` source's settings), so a deployment is refused when it is
/// saved rather than when its task is built.
pub fn check_sources(spec: &JobSpec) -> Result<(), ConnectorError> {
    for (index, (name, source)) in spec.sources.iter().enumerate() {
        if let SourceSpec::Datagen(config) = source {
            datagen::DatagenSource::new(name, index as u32, config)?;
        }
    }
    Ok(())
}

/// Builds the source `name` (index `index` in the job's sources).
pub async fn build_source(
    cx: BuildContext<'_>,
    name: &str,
    index: u32,
    source: &SourceSpec,
) -> Result<Box<dyn Source>, ConnectorError> {
    Ok(match source {
        SourceSpec::File(_) if !cx.group.is_whole() => {
            return Err(ConnectorError::config(
                "file source",
                name,
                "a file source cannot be split into partition groups, so the job's parallelism must be 1",
            ));
        }
        SourceSpec::File(c) => {
            let mut source = file::FileSource::open(cx.spec, name, index, c)?;
            if let Some(positions) = cx.resume_positions(name) {
                source.resume(&positions);
            }
            Box::new(source)
        }
        SourceSpec::Datagen(c) => {
            let mut source = datagen::DatagenSource::new(name, index, c)?.group(cx.group)?;
            if let Some(positions) = cx.resume_positions(name) {
                source.resume(&positions);
            }
            Box::new(source)
        }
        SourceSpec::Kafka(c) => Box::new(kafka::KafkaSource::connect(cx, name, index, c).await?),
        // Resumes at the snapshot's row itself (cx.restore).
        SourceSpec::Sql(c) => Box::new(sql::SqlSource::connect(cx, name, index, c).await?),
    })
}

pub async fn build_sink(cx: BuildContext<'_>, name: &str, sink: &SinkSpec) -> Result<Box<dyn Sink>, ConnectorError> {
    Ok(match sink {
        SinkSpec::File(c) => Box::new(file::FileSink::create(cx, name, c)?),
        SinkSpec::Memory(_) => Box::new(memory::MemorySink::default()),
        SinkSpec::Kafka(c) => Box::new(kafka::KafkaSink::connect(cx, name, c).await?),
        SinkSpec::Sql(c) => Box::new(sql::SqlSink::connect(cx, name, c).await?),
    })
}

pub async fn build_dimension(
    cx: BuildContext<'_>,
    name: &str,
    dim: &DimensionSpec,
) -> Result<Arc<dyn DimensionStore>, ConnectorError> {
    let cached = |store: Arc<dyn DimensionStore>, cache: &CacheConfig| -> Arc<dyn DimensionStore> {
        Arc::new(CachedDimension::new(store, cache))
    };
    Ok(match dim {
        DimensionSpec::Memory(c) => Arc::new(memory::MemoryDimension::open(cx.spec, name, c)?),
        DimensionSpec::Sql(c) => cached(Arc::new(sql::SqlDimension::connect(cx, name, c).await?), &c.cache),
        DimensionSpec::Redis(c) => cached(Arc::new(redis::RedisDimension::connect(cx, name, c).await?), &c.cache),
    })
}
