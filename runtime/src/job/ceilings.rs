//! The operator's ceilings on what a job spec may ask for. A platform runs
//! many teams' jobs in one process: a spec is tenant input, and every
//! resource it sets (memory, CPU per call, state, output, timers, batch
//! sizes, generated data) must stay under a bound the operator chose, so no
//! job can take the process down or starve the others.

use std::time::Duration;

use super::spec::JobSpec;
use crate::connectors::datagen::FieldGen;
use crate::connectors::registry::SourceSpec;

/// Largest values a spec may set. `sluice serve` takes them from its
/// `--max-*` flags; the defaults suit one machine shared by many jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceilings {
    /// `limits.memory_mb`
    pub memory_mb: u64,
    /// `limits.cpu_per_batch`
    pub cpu_per_batch: Duration,
    /// `limits.state_mb`
    pub state_mb: u64,
    /// `limits.output_mb`
    pub output_mb: u64,
    /// `limits.timers`
    pub timers: u64,
    /// `batch.max_records`
    pub batch_records: usize,
    /// `batch.max_wait`
    pub batch_wait: Duration,
    /// A `datagen` source's `rate` (records per second; 0, as fast as the
    /// job reads, is allowed: the job's own CPU limit bounds it).
    pub datagen_rate: u64,
    /// A `datagen` source's `partitions`.
    pub datagen_partitions: i32,
    /// Characters of a `datagen` text field, and items of a choice field.
    pub datagen_field_size: usize,
}

impl Default for Ceilings {
    fn default() -> Self {
        Ceilings {
            memory_mb: 4096,
            cpu_per_batch: Duration::from_secs(60),
            state_mb: 8192,
            output_mb: 256,
            timers: 10_000_000,
            batch_records: 100_000,
            batch_wait: Duration::from_secs(10),
            datagen_rate: 1_000_000,
            datagen_partitions: 1024,
            datagen_field_size: 65_536,
        }
    }
}

/// What a spec asked for above the ceilings, one line per setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the spec asks for more than this platform allows: {}", .0.join("; "))]
pub struct OverCeiling(pub Vec<String>);

impl Ceilings {
    /// Every setting of `spec` above its ceiling, each named with the
    /// value asked for and the ceiling.
    pub fn check(&self, spec: &JobSpec) -> Result<(), OverCeiling> {
        let mut over = Vec::new();
        let mut at_most = |field: &str, asked: String, ceiling: String, flag: &str| {
            over.push(format!("{field} = {asked} is above the ceiling of {ceiling} (the operator's {flag})"));
        };
        let l = &spec.limits;
        let secs = |d: Duration| humantime::format_duration(d).to_string();
        if l.memory_mb > self.memory_mb {
            at_most("limits.memory_mb", l.memory_mb.to_string(), self.memory_mb.to_string(), "--max-memory-mb");
        }
        if l.cpu_per_batch > self.cpu_per_batch {
            at_most("limits.cpu_per_batch", secs(l.cpu_per_batch), secs(self.cpu_per_batch), "--max-cpu-per-batch");
        }
        if l.state_mb > self.state_mb {
            at_most("limits.state_mb", l.state_mb.to_string(), self.state_mb.to_string(), "--max-state-mb");
        }
        if l.output_mb > self.output_mb {
            at_most("limits.output_mb", l.output_mb.to_string(), self.output_mb.to_string(), "--max-output-mb");
        }
        if l.timers > self.timers {
            at_most("limits.timers", l.timers.to_string(), self.timers.to_string(), "--max-timers");
        }
        if spec.batch.max_records > self.batch_records {
            let (asked, ceiling) = (spec.batch.max_records.to_string(), self.batch_records.to_string());
            at_most("batch.max_records", asked, ceiling, "--max-batch-records");
        }
        if spec.batch.max_wait > self.batch_wait {
            at_most("batch.max_wait", secs(spec.batch.max_wait), secs(self.batch_wait), "--max-batch-wait");
        }
        for (name, source) in &spec.sources {
            let SourceSpec::Datagen(datagen) = source else { continue };
            if datagen.rate > self.datagen_rate {
                let field = format!("sources.{name}.rate");
                at_most(&field, datagen.rate.to_string(), self.datagen_rate.to_string(), "--max-datagen-rate");
            }
            if datagen.partitions > self.datagen_partitions {
                let field = format!("sources.{name}.partitions");
                let ceiling = self.datagen_partitions.to_string();
                at_most(&field, datagen.partitions.to_string(), ceiling, "--max-datagen-partitions");
            }
            for (field_name, field) in &datagen.fields {
                let size = match field {
                    FieldGen::Text { len } => *len,
                    FieldGen::Choice { values } => values.len(),
                    _ => continue,
                };
                if size > self.datagen_field_size {
                    let field = format!("sources.{name}.fields.{field_name}");
                    at_most(&field, size.to_string(), self.datagen_field_size.to_string(), "--max-datagen-field-size");
                }
            }
        }
        if over.is_empty() { Ok(()) } else { Err(OverCeiling(over)) }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_setting_above_its_ceiling_is_named() {
        let spec = JobSpec::parse(
            r#"
            name = "greedy"
            component = "x.wasm"
            [limits]
            memory_mb = 100000
            cpu_per_batch = "120s"
            [batch]
            max_records = 10000000
            [sources.gen]
            kind = "datagen"
            partitions = 100000
            fields = { blob = { gen = "text", len = 100000000 } }
            "#,
            Path::new("."),
        )
        .unwrap();
        let err = Ceilings::default().check(&spec).unwrap_err();
        let text = err.to_string();
        for expected in [
            "limits.memory_mb = 100000 is above the ceiling of 4096 (the operator's --max-memory-mb)",
            "limits.cpu_per_batch = 2m is above the ceiling of 1m",
            "batch.max_records = 10000000",
            "sources.gen.partitions = 100000",
            "sources.gen.fields.blob = 100000000",
        ] {
            assert!(text.contains(expected), "`{expected}` missing from: {text}");
        }
        assert_eq!(err.0.len(), 5);
    }

    #[test]
    fn a_modest_spec_passes() {
        let spec = JobSpec::parse(
            "name = \"ok\"\ncomponent = \"x.wasm\"\n[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(Ceilings::default().check(&spec), Ok(()));
    }
}
