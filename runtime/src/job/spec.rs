//! The job spec: what a job reads, writes and looks up, and its limits.
//! TOML, every field documented; unknown fields are errors so typos surface.
//! `docs/SPEC.md` documents the same fields for users.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::connectors::registry::{DimensionSpec, SinkSpec, SourceSpec};

/// A job spec (`job.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Job name: letters, digits, `-` and `_`. (Defaulted only so a
    /// platform can lay its own over a spec without one; `validate` wants it.)
    #[serde(default)]
    pub name: String,
    /// Path of the compiled component (`.wasm`), relative to the spec file.
    #[serde(default)]
    pub component: PathBuf,
    /// Parameters handed to the job (`ctx.param(..)`).
    #[serde(default)]
    pub parameters: IndexMap<String, String>,
    /// Sources by name. Records carry the index of their source in the order
    /// the spec declares them (the first is 0).
    pub sources: IndexMap<String, SourceSpec>,
    /// Sinks by name; the job emits to these names.
    #[serde(default)]
    pub sinks: IndexMap<String, SinkSpec>,
    /// Dimension (lookup) stores by name.
    #[serde(default)]
    pub dimensions: IndexMap<String, DimensionSpec>,
    /// Where rejected records go, with reason and position. Default: a file
    /// `<name>.dead-letters.jsonl` beside the spec.
    #[serde(default)]
    pub dead_letter: Option<SinkSpec>,
    #[serde(default)]
    pub batch: BatchSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default)]
    pub watermark: WatermarkSpec,
    #[serde(default)]
    pub snapshot: SnapshotSpec,
    /// The directory relative paths are resolved against (the spec's own);
    /// not part of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// How records are grouped into batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSpec {
    /// Most records per batch (one guest call per batch).
    pub max_records: usize,
    /// Longest wait for a batch to fill, e.g. "100ms".
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec { max_records: 1024, max_wait: Duration::from_millis(100) }
    }
}

/// Per-job resource limits. Hitting one fails only this job's task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSpec {
    /// Guest linear memory limit in MiB.
    pub memory_mb: u64,
    /// Longest time one guest call (a batch, or a round of timers) may run,
    /// e.g. "5s". Enforced by epoch interruption.
    #[serde(with = "humantime_serde")]
    pub cpu_per_batch: Duration,
    /// Largest keyed state the task may hold, in MiB (keys, values and
    /// bookkeeping, estimated).
    pub state_mb: u64,
    /// Most row bytes one guest call may emit, in MiB.
    pub output_mb: u64,
    /// Most timers registered at once.
    pub timers: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            memory_mb: 256,
            cpu_per_batch: Duration::from_secs(10),
            state_mb: 1024,
            output_mb: 64,
            timers: 1_000_000,
        }
    }
}

/// Event-time watermark settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatermarkSpec {
    /// How far the watermark trails the highest event time seen (bounded
    /// out-of-orderness), e.g. "5s".
    #[serde(with = "humantime_serde")]
    pub max_out_of_orderness: Duration,
}

/// Snapshots of the job's state and source positions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSpec {
    /// Take a snapshot this often (between batches), e.g. "30s"; none by
    /// default (snapshots are then taken on stop and on demand only).
    #[serde(with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// How many snapshots to keep per job (at least 1); the bases an
    /// incremental one needs are kept too.
    pub retain: usize,
    /// Snapshots after the first hold only the state changed since the
    /// previous one, so the pause stays short when state is large.
    pub incremental: bool,
    /// With `incremental`, every this many snapshots one is full again
    /// (compaction: restore never applies more than this many increments).
    pub full_every: usize,
}

impl Default for SnapshotSpec {
    fn default() -> Self {
        SnapshotSpec { interval: None, retain: 3, incremental: true, full_every: 10 }
    }
}

/// A spec that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid spec {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid spec: {0}")]
    Invalid(String),
}

impl JobSpec {
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.into(), source })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base_dir).map_err(|e| match e {
            SpecError::Parse { message, .. } => SpecError::Parse { path: path.into(), message },
            other => other,
        })
    }

    /// Parses and checks spec text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, SpecError> {
        let mut spec = Self::unchecked(text)?;
        spec.base_dir = base_dir.to_path_buf();
        spec.validate()?;
        Ok(spec)
    }

    /// The spec as written, not yet checked.
    pub(super) fn unchecked(text: &str) -> Result<Self, SpecError> {
        let spec =
            toml::from_str(text).map_err(|e| SpecError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        super::stages::check_reserved_names(&spec)?;
        Ok(spec)
    }

    pub(super) fn validate(&self) -> Result<(), SpecError> {
        if self.name.is_empty() {
            return Err(SpecError::Invalid("`name` is missing: the job's name, letters, digits, `-` or `_`".into()));
        }
        if self.component.as_os_str().is_empty() {
            return Err(SpecError::Invalid("`component` is missing: the path of the job's compiled `.wasm`".into()));
        }
        let valid_name = |n: &str| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name(&self.name) {
            return Err(SpecError::Invalid(format!("job name `{}` must be letters, digits, `-` or `_`", self.name)));
        }
        if self.sources.is_empty() {
            return Err(SpecError::Invalid("a job needs at least one source under [sources.NAME]".into()));
        }
        if self.batch.max_records == 0 {
            return Err(SpecError::Invalid("batch.max_records must be at least 1".into()));
        }
        if self.limits.memory_mb < 2 {
            return Err(SpecError::Invalid("limits.memory_mb must be at least 2 (MiB)".into()));
        }
        if self.snapshot.interval.is_some_and(|i| i.is_zero())
            || self.snapshot.retain == 0
            || self.snapshot.full_every == 0
        {
            return Err(SpecError::Invalid(
                "snapshot.interval must be positive, snapshot.retain and snapshot.full_every at least 1".into(),
            ));
        }
        if self.limits.cpu_per_batch.is_zero() {
            return Err(SpecError::Invalid("limits.cpu_per_batch must be positive, e.g. \"5s\"".into()));
        }
        if self.limits.state_mb == 0 || self.limits.output_mb == 0 {
            return Err(SpecError::Invalid("limits.state_mb and limits.output_mb must be at least 1 (MiB)".into()));
        }
        let invalid = |what: &str, name: &str, e: String| SpecError::Invalid(format!("{what} `{name}`: {e}"));
        for (name, source) in &self.sources {
            source.check().map_err(|e| invalid("source", name, e))?;
        }
        for (name, sink) in &self.sinks {
            sink.check().map_err(|e| invalid("sink", name, e))?;
        }
        self.check_row_id_topics()?;
        for (name, dimension) in &self.dimensions {
            dimension.check().map_err(|e| invalid("dimension", name, e))?;
        }
        if let Some(dead_letter) = &self.dead_letter {
            dead_letter.check().map_err(|e| invalid("sink", "dead_letter", e))?;
        }
        Ok(())
    }

    /// Refuses two Kafka sinks stamping row ids into one topic: each has its
    /// producer, so the rows of one input record could arrive out of their
    /// emit order, and a consumer dropping replays by id would drop the
    /// earlier one.
    fn check_row_id_topics(&self) -> Result<(), SpecError> {
        let mut seen: Vec<(&str, &str, &str)> = Vec::new();
        let dead_letter = self.dead_letter.iter().map(|d| ("dead_letter", d));
        for (name, sink) in self.sinks.iter().map(|(n, s)| (n.as_str(), s)).chain(dead_letter) {
            let SinkSpec::Kafka(k) = sink else { continue };
            if !k.row_id_header {
                continue;
            }
            if let Some((other, ..)) = seen.iter().find(|(_, c, t)| *c == k.connection && *t == k.topic) {
                return Err(SpecError::Invalid(format!(
                    "sinks `{other}` and `{name}` both write row ids to topic `{}`: rows of one record could \
                     arrive out of order; write that topic from one sink",
                    k.topic
                )));
            }
            seen.push((name, &k.connection, &k.topic));
        }
        Ok(())
    }

    /// A path from the spec, resolved against the spec's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() || path == Path::new("-") { path.to_path_buf() } else { self.base_dir.join(path) }
    }

    pub fn source_names(&self) -> Vec<String> {
        self.sources.keys().cloned().collect()
    }

    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.keys().cloned().collect()
    }

    pub fn dimension_names(&self) -> Vec<String> {
        self.dimensions.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "demo"
        component = "demo.wasm"
        [sources.in]
        kind = "file"
        path = "in.jsonl"
        [sinks.out]
        kind = "file"
        path = "-"
    "#;

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec = JobSpec::parse(MINIMAL, Path::new("/jobs")).unwrap();
        assert_eq!(spec.batch.max_records, 1024);
        assert_eq!(spec.resolve(&spec.component), PathBuf::from("/jobs/demo.wasm"));
        assert_eq!(spec.source_names(), vec!["in".to_string()]);
    }

    #[test]
    fn sources_are_numbered_in_declaration_order() {
        let text = MINIMAL.replace("[sinks.out]", "[sources.alpha]\nkind = \"file\"\npath = \"a.jsonl\"\n[sinks.out]");
        let spec = JobSpec::parse(&text, Path::new(".")).unwrap();
        assert_eq!(spec.source_names(), vec!["in".to_string(), "alpha".to_string()]);
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = JobSpec::parse(&format!("{MINIMAL}\n[batch]\nmax_recods = 5\n"), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("max_recods"), "{err}");
        let err =
            JobSpec::parse(&MINIMAL.replace("path = \"in.jsonl\"", "path = \"in.jsonl\"\npaht = 1"), Path::new("."))
                .unwrap_err();
        assert!(err.to_string().contains("paht"), "{err}");
    }

    #[test]
    fn row_id_sinks_keep_their_partitioning_and_timeouts_and_one_topic_to_themselves() {
        let sink = |name: &str, topic: &str, extra: &str| {
            format!(
                "[sinks.{name}]\nkind = \"kafka\"\nconnection = \"c\"\ntopic = \"{topic}\"\nrow_id_header = true\n{extra}"
            )
        };
        let parse = |sinks: String| {
            JobSpec::parse(&MINIMAL.replace("[sinks.out]", &format!("{sinks}[sinks.out]")), Path::new("."))
        };
        assert!(parse(sink("a", "t", "") + &sink("b", "u", "")).is_ok());
        let dead_letter = sink("a", "t", "").replace("[sinks.a]", "[dead_letter]");
        let err = parse(sink("a", "t", "") + &dead_letter).unwrap_err().to_string();
        assert!(err.contains("sinks `a` and `dead_letter` both write row ids to topic `t`"), "{err}");
        let err = parse(sink("a", "t", "") + &sink("b", "t", "")).unwrap_err().to_string();
        assert!(err.contains("sinks `a` and `b` both write row ids to topic `t`"), "{err}");
        for key in ["partitioner", "message.timeout.ms", "delivery.timeout.ms"] {
            let err =
                parse(sink("a", "t", &format!("[sinks.a.properties]\n\"{key}\" = \"1\"\n"))).unwrap_err().to_string();
            assert!(
                err.contains(&format!("Kafka property `{key}` cannot be set with `row_id_header = true`")),
                "{err}"
            );
        }
        let plain = "[sinks.a]\nkind = \"kafka\"\nconnection = \"c\"\ntopic = \"t\"\n[sinks.a.properties]\npartitioner = \"random\"\n";
        assert!(parse(plain.to_owned()).is_ok(), "without row ids the spec may choose");
    }

    #[test]
    fn unknown_connector_kinds_are_named() {
        let err = JobSpec::parse(
            &MINIMAL.replace("kind = \"file\"\n        path = \"in.jsonl\"", "kind = \"ftp\""),
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
    }
}
