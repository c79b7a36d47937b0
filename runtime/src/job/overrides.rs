//! What a platform lays over a tenant's spec text: the settings it owns
//! (the job's name and component, deployment parameters and resources,
//! where a run starts). Applied to the parsed spec, before it is checked,
//! so no tenant text is ever rewritten as text.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use super::spec::{JobSpec, SpecError};
use crate::connectors::kafka::StartPosition;
use crate::connectors::registry::{DimensionSpec, SinkSpec, SourceSpec};

/// The platform's settings of one task's spec.
#[derive(Debug, Clone, Default)]
pub struct SpecOverrides {
    /// The job's name as the platform knows it (its snapshot key).
    pub name: String,
    /// The deployed component, whatever the spec says.
    pub component: PathBuf,
    /// Parameter values of the deployment, over the spec's own.
    pub parameters: IndexMap<String, String>,
    /// Guest memory of the deployment, over `limits.memory_mb`.
    pub memory_mb: Option<u64>,
    /// Guest time per batch of the deployment, over `limits.cpu_per_batch`.
    pub cpu_per_batch: Option<Duration>,
    /// Where every Kafka source starts when the run restores no position.
    pub kafka_start: Option<StartPosition>,
    /// File connectors may only name relative paths that stay inside the
    /// spec's directory (a tenant's file area).
    pub confine_files: bool,
}

impl JobSpec {
    /// Parses a tenant's spec text, lays `overrides` over it and checks the
    /// result; relative paths resolve against `base_dir`.
    pub fn parse_with(text: &str, base_dir: &Path, overrides: &SpecOverrides) -> Result<JobSpec, SpecError> {
        let mut spec = JobSpec::unchecked(text)?;
        overrides.apply(&mut spec);
        spec.base_dir = base_dir.to_path_buf();
        if overrides.confine_files {
            spec.confine_files()?;
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Every file path the spec's connectors name, with where it is
    /// (`sources.orders`, `dead_letter`).
    pub fn file_paths(&self) -> Vec<(String, &Path)> {
        let mut paths = Vec::new();
        for (name, source) in &self.sources {
            if let SourceSpec::File(c) = source {
                paths.push((format!("sources.{name}"), c.path.as_path()));
            }
        }
        let sinks = self.sinks.iter().map(|(name, sink)| (format!("sinks.{name}"), sink));
        for (place, sink) in sinks.chain(self.dead_letter.iter().map(|d| ("dead_letter".to_owned(), d))) {
            if let SinkSpec::File(c) = sink {
                paths.push((place, c.path.as_path()));
            }
        }
        for (name, dimension) in &self.dimensions {
            if let DimensionSpec::Memory(c) = dimension
                && let Some(path) = &c.path
            {
                paths.push((format!("dimensions.{name}"), path.as_path()));
            }
        }
        paths
    }

    /// Refuses a file path that is absolute, climbs out with `..`, or is
    /// stdin/stdout (`-`): a platform job's files stay in its file area.
    fn confine_files(&self) -> Result<(), SpecError> {
        for (place, path) in self.file_paths() {
            let inside = path != Path::new("-")
                && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !inside {
                return Err(SpecError::Invalid(format!(
                    "`{place}.path` = `{}`: a console job's files must be relative paths inside the project's file \
                     area (no `/` at the start, no `..`, no `-`)",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

impl SpecOverrides {
    fn apply(&self, spec: &mut JobSpec) {
        spec.name = self.name.clone();
        spec.component = self.component.clone();
        spec.parameters.extend(self.parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(mb) = self.memory_mb {
            spec.limits.memory_mb = mb;
        }
        if let Some(cpu) = self.cpu_per_batch {
            spec.limits.cpu_per_batch = cpu;
        }
        if let Some(start) = &self.kafka_start {
            for source in spec.sources.values_mut() {
                if let SourceSpec::Kafka(c) = source {
                    c.start = start.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::kafka::Timestamp;

    const TENANT: &str = r#"
        name = "whatever-the-tenant-wrote"
        [parameters]
        threshold = "0.5"
        keep = "yes"
        [sources.orders]
        kind = "kafka"
        connection = "events"
        topic = "orders"
        start = "latest"
        [sinks.out]
        kind = "memory"
        [limits]
        memory_mb = 512
    "#;

    #[test]
    fn the_platform_settings_win_and_the_rest_stays() {
        let overrides = SpecOverrides {
            name: "demo__orders".into(),
            component: "component.wasm".into(),
            parameters: [("threshold".to_owned(), "0.2".to_owned())].into_iter().collect(),
            memory_mb: Some(32),
            cpu_per_batch: Some(Duration::from_millis(500)),
            kafka_start: Some(StartPosition::Timestamp(Timestamp::Millis(1000))),
            confine_files: true,
        };
        let spec = JobSpec::parse_with(TENANT, Path::new("/tmp"), &overrides).unwrap();
        assert_eq!((spec.name.as_str(), spec.component.as_path()), ("demo__orders", Path::new("component.wasm")));
        assert_eq!((spec.parameters["threshold"].as_str(), spec.parameters["keep"].as_str()), ("0.2", "yes"));
        assert_eq!((spec.limits.memory_mb, spec.limits.cpu_per_batch), (32, Duration::from_millis(500)));
        let SourceSpec::Kafka(source) = &spec.sources["orders"] else { panic!("a kafka source") };
        assert!(matches!(source.start, StartPosition::Timestamp(Timestamp::Millis(1000))), "{:?}", source.start);
    }

    #[test]
    fn a_spec_without_name_or_component_is_complete_once_overridden() {
        let text = "[sources.f]\nkind = \"file\"\npath = \"in.jsonl\"\n[sinks.out]\nkind = \"memory\"\n";
        let overrides = SpecOverrides { name: "k".into(), component: "c.wasm".into(), ..SpecOverrides::default() };
        JobSpec::parse_with(text, Path::new("/d"), &overrides).unwrap();
        let err = JobSpec::parse(text, Path::new("/d")).unwrap_err().to_string();
        assert!(err.contains("`name`"), "a standalone spec still needs its name: {err}");
    }

    #[test]
    fn confined_files_stay_inside() {
        let overrides = SpecOverrides {
            name: "k".into(),
            component: "c.wasm".into(),
            confine_files: true,
            ..SpecOverrides::default()
        };
        let with_path = |place: &str, path: &str| match place {
            "source" => format!("[sources.f]\nkind = \"file\"\npath = \"{path}\"\n[sinks.out]\nkind = \"memory\"\n"),
            "sink" => format!(
                "[sources.f]\nkind = \"file\"\npath = \"in.jsonl\"\n[sinks.out]\nkind = \"file\"\npath = \"{path}\"\n"
            ),
            _ => format!(
                "[sources.f]\nkind = \"file\"\npath = \"in.jsonl\"\n[sinks.out]\nkind = \"memory\"\n\
                 [dimensions.d]\nkind = \"memory\"\npath = \"{path}\"\nkey_field = \"id\"\n"
            ),
        };
        for place in ["source", "sink", "dimension"] {
            for bad in ["/etc/passwd", "../other/x.jsonl", "a/../../x", "-"] {
                let err = JobSpec::parse_with(&with_path(place, bad), Path::new("/d"), &overrides).unwrap_err();
                assert!(err.to_string().contains("relative paths inside"), "{place} {bad}: {err}");
            }
            JobSpec::parse_with(&with_path(place, "in/x.jsonl"), Path::new("/d"), &overrides).unwrap();
        }
    }
}
