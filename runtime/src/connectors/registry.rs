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
    /// The generation of the run the task is of (its lease floor on the
    /// platform; 0 under `sluice run`): sinks with row ids stamp it on
    /// their rows (`origin_dedup::ROW_GEN_HEADER`).
    pub generation: u64,
}

impl<'a> BuildContext<'a> {
    /// A context for a fresh start (no snapshot).
    pub fn new(spec: &'a JobSpec, connections: &'a Connections) -> Self {
        BuildContext { spec, connections, restore: None, group: PartitionGroup::default(), generation: 0 }
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

impl SourceSpec {
    /// Whether the source ends: files and SQL queries, Kafka sources with
    /// `bounded`, datagen with a `count`.
    pub fn is_bounded(&self) -> bool {
        match self {
            SourceSpec::File(_) | SourceSpec::Sql(_) => true,
            SourceSpec::Datagen(d) => d.count.is_some(),
            SourceSpec::Kafka(k) => k.bounded,
        }
    }
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
            SinkSpec::Kafka(c) => {
                kafka_properties(&c.properties)?;
                c.check_row_ids()
            }
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

/// How many shards a job keyed by record key splits its state into: the
/// greatest common divisor of its inputs' partition counts (each Kafka
/// topic's, datagen's `partitions`). Shard `s` of `S` reads the partitions
/// `p` with `p % S == s` of every input; a key on partition `h % P` of an
/// input of `P` partitions (Kafka's default partitioner, datagen) is then in
/// shard `h % S` of every input, since `S` divides each `P`: co-partitioned
/// inputs meet in one shard. A job with a connector that cannot be split (a
/// file source or sink, a SQL source) has one shard. Kafka metadata is
/// waited for as long as a source's `startup_timeout`.
pub async fn shard_count(spec: &JobSpec, connections: &Connections) -> Result<u32, ConnectorError> {
    let cx = BuildContext::new(spec, connections);
    let unsplittable_sink =
        spec.sinks.values().chain(spec.dead_letter.as_ref()).any(|s| matches!(s, SinkSpec::File(_)));
    let unsplittable_source = spec.sources.values().any(|s| matches!(s, SourceSpec::File(_) | SourceSpec::Sql(_)));
    if unsplittable_sink || unsplittable_source {
        return Ok(1);
    }
    let mut counts = Vec::new();
    for (name, source) in &spec.sources {
        match source {
            SourceSpec::Kafka(c) => counts.extend(kafka::partition_counts(cx, name, c).await?),
            SourceSpec::Datagen(c) => counts.push(c.partitions.clamp(1, i32::MAX) as u32),
            SourceSpec::File(_) | SourceSpec::Sql(_) => counts.push(1),
        }
    }
    Ok(counts.into_iter().reduce(gcd).unwrap_or(1).max(1))
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

pub async fn build_sink(cx: BuildContext<'_>, name: &str, sink: &SinkSpec) -> Result<Box<dyn Sink>, ConnectorError> {
    Ok(match sink {
        SinkSpec::File(_) if !cx.group.is_whole() => {
            return Err(ConnectorError::config(
                "file sink",
                name,
                "a file sink writes one file and cannot be shared by partition groups, so the job's parallelism \
                 must be 1",
            ));
        }
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

#[cfg(test)]
mod shard_tests {
    use super::gcd;

    #[test]
    fn co_partitioned_inputs_share_their_shards() {
        assert_eq!([8, 4].into_iter().reduce(gcd), Some(4));
        assert_eq!([3, 1].into_iter().reduce(gcd), Some(1));
        assert_eq!([6, 4].into_iter().reduce(gcd), Some(2));
        // A key on partition h % 8 of one input and h % 4 of the other is in
        // shard h % 4 of both.
        for h in 0..64u32 {
            assert_eq!((h % 8) % 4, (h % 4) % 4);
        }
    }
}
