//! Repartition stages (docs/ARCHITECTURE.md, "Repartition stages"): the
//! spec each stage of a staged job runs with.
//!
//! A component declares its stages (`job.stages`, the SDK's `Job::STAGES`).
//! Every instance runs one of them (`context.stage`). Stage 0 reads the
//! job's sources; it and every stage but the last send rows on through the
//! sink `sluice.next-stage`, a Kafka sink with row ids on the repartition
//! topic of the next stage, partitioned by the row's key. Stage k > 0 has
//! one source, `sluice.stage`, that topic, read with `dedup_by_row_id`: the
//! rows of stage k - 1 are applied once however often it replays. So each
//! later stage is keyed by its record key, and its shards are the topic's
//! partitions. Kafka Streams re-keys through repartition topics the same way.

use indexmap::IndexMap;
use serde_json::json;

use super::JobSpec;
use super::spec::SpecError;
use crate::connectors::registry::{SinkSpec, SourceSpec};

/// The sink a stage sends rows to the next stage through (the SDK's
/// `NEXT_STAGE`).
pub const NEXT_STAGE_SINK: &str = "sluice.next-stage";
/// The one source of a stage after the first: its repartition topic.
pub const STAGE_SOURCE: &str = "sluice.stage";
/// The most stages a job may declare.
pub const MAX_STAGES: usize = 8;
/// The longest stage name.
pub const MAX_STAGE_NAME: usize = 64;

/// Checks a component's declared stages: at most `MAX_STAGES`, each named
/// with letters, digits, `-` or `_` (at most 64), no name twice.
pub fn check_declared(stages: &[String]) -> Result<(), String> {
    if stages.len() > MAX_STAGES {
        return Err(format!("the job declares {} stages; at most {MAX_STAGES} are allowed", stages.len()));
    }
    for (i, name) in stages.iter().enumerate() {
        let valid = !name.is_empty()
            && name.len() <= MAX_STAGE_NAME
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "stage {i} is named `{}`: a stage name is 1 to {MAX_STAGE_NAME} letters, digits, `-` or `_`",
                name.escape_debug()
            ));
        }
        if stages[..i].contains(name) {
            return Err(format!("the job declares stage `{name}` twice"));
        }
    }
    Ok(())
}

/// Refuses names the platform keeps for stages in a spec as written:
/// `sluice.` sources and sinks, and Kafka topics beginning with `sluice.` or
/// `sluice_` (repartition topics are `sluice.<project>.<job>.…`, and Kafka
/// takes `.` and `_` for one in metric names), so a job can neither read
/// another job's stage rows nor write into them.
pub fn check_reserved_names(spec: &JobSpec) -> Result<(), SpecError> {
    let sources = spec.sources.keys().map(|n| ("source", n));
    let sinks = spec.sinks.keys().map(|n| ("sink", n));
    if let Some((what, name)) = sources.chain(sinks).find(|(_, name)| name.starts_with("sluice.")) {
        return Err(SpecError::Invalid(format!(
            "{what} `{name}`: names beginning with `sluice.` are the platform's (repartition stages); rename it"
        )));
    }
    let source_topics = spec.sources.iter().flat_map(|(name, s)| match s {
        SourceSpec::Kafka(k) => k.topic_list().into_iter().map(|t| (name.as_str(), t)).collect(),
        _ => Vec::new(),
    });
    let dead_letter = spec.dead_letter.iter().map(|d| ("dead_letter", d));
    let sink_topics =
        spec.sinks.iter().map(|(n, s)| (n.as_str(), s)).chain(dead_letter).filter_map(|(name, s)| match s {
            SinkSpec::Kafka(k) => Some((name, k.topic.clone())),
            _ => None,
        });
    match source_topics.chain(sink_topics).find(|(_, topic)| is_reserved_topic(topic)) {
        Some((name, topic)) => Err(SpecError::Invalid(format!(
            "`{name}`: topic `{topic}` begins with `sluice.` or `sluice_`, which name the platform's repartition \
             topics; use another topic"
        ))),
        None => Ok(()),
    }
}

/// Whether a Kafka topic name is the platform's (repartition topics).
pub fn is_reserved_topic(topic: &str) -> bool {
    topic.starts_with("sluice.") || topic.starts_with("sluice_")
}

/// Where a staged job's repartition topics are: a Kafka connection of the
/// registry and the topics' common prefix. Stage k (k ≥ 1) reads
/// `<prefix>-s<k>`.
#[derive(Debug, Clone)]
pub struct StageTopics {
    pub connection: String,
    pub prefix: String,
    /// Each stage after the first reads its topic up to the end offsets
    /// seen when it starts, then finishes: for a run over bounded input,
    /// which starts each stage once the one before it has finished.
    pub bounded: bool,
}

impl StageTopics {
    /// The repartition topic stage `stage` (≥ 1) reads.
    pub fn topic(&self, stage: u32) -> String {
        format!("{}-s{stage}", self.prefix)
    }
}

/// The name stage `stage` runs under: the job's for stage 0, `<job>__s<k>`
/// after.
/// Its snapshots and the `sluice-row-job` of the rows it sends on go by it.
pub fn stage_job_name(job: &str, stage: u32) -> String {
    if stage == 0 { job.to_owned() } else { format!("{job}__s{stage}") }
}

/// The spec stage `stage` of `stages` runs: `spec` (the job's, checked)
/// with the stage's source (the job's for stage 0, else the repartition
/// topic it reads) and its sinks: the job's for the last stage, only the
/// sink to the next one before it. The job's results come from its last
/// stage; keeping its sinks there alone means a run of `n` shards holds
/// `n` connections per sink, not `n × stages` (a SQL sink keeps its pool
/// open from the start). The caller names it (`stage_job_name`, then a
/// shard's suffix).
pub fn stage_spec(spec: &JobSpec, stage: u32, stages: u32, topics: &StageTopics) -> Result<JobSpec, SpecError> {
    if stage >= stages.max(1) {
        return Err(SpecError::Invalid(format!("stage {stage} does not exist: the job declares {stages}")));
    }
    let mut staged = spec.clone();
    if stage > 0 {
        let source = json!({
            "connection": topics.connection,
            "topic": topics.topic(stage),
            "start": "earliest",
            "format": "raw",
            "dedup_by_row_id": true,
            "bounded": topics.bounded,
        });
        let source = serde_json::from_value(source).map_err(|e| SpecError::Invalid(format!("stage source: {e}")))?;
        staged.sources = IndexMap::from([(STAGE_SOURCE.to_owned(), SourceSpec::Kafka(source))]);
    }
    if stage + 1 < stages {
        let sink = json!({ "connection": topics.connection, "topic": topics.topic(stage + 1), "row_id_header": true });
        let sink = serde_json::from_value(sink).map_err(|e| SpecError::Invalid(format!("stage sink: {e}")))?;
        staged.sinks = IndexMap::from([(NEXT_STAGE_SINK.to_owned(), SinkSpec::Kafka(sink))]);
    }
    staged.validate()?;
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SPEC: &str = r#"
        name = "p__hourly"
        component = "c.wasm"
        [sources.user_order]
        kind = "kafka"
        connection = "events"
        topic = "user_order"
        [sinks.hs_order]
        kind = "memory"
    "#;

    fn topics() -> StageTopics {
        StageTopics { connection: "events".into(), prefix: "sluice-p-hourly".into(), bounded: false }
    }

    #[test]
    fn stage_zero_keeps_the_sources_and_sends_on() {
        let spec = JobSpec::parse(SPEC, Path::new("/")).unwrap();
        let first = stage_spec(&spec, 0, 2, &topics()).unwrap();
        assert_eq!(stage_job_name(&spec.name, 0), "p__hourly");
        assert_eq!(first.source_names(), ["user_order"]);
        assert_eq!(first.sink_names(), [NEXT_STAGE_SINK], "the job's sinks are its last stage's");
        let SinkSpec::Kafka(next) = &first.sinks[NEXT_STAGE_SINK] else { panic!("a Kafka sink") };
        assert_eq!((next.topic.as_str(), next.row_id_header), ("sluice-p-hourly-s1", true));
    }

    #[test]
    fn a_later_stage_reads_its_topic_once() {
        let spec = JobSpec::parse(SPEC, Path::new("/")).unwrap();
        let last = stage_spec(&spec, 1, 2, &topics()).unwrap();
        assert_eq!(stage_job_name(&spec.name, 1), "p__hourly__s1");
        assert_eq!(last.source_names(), [STAGE_SOURCE]);
        let SourceSpec::Kafka(source) = &last.sources[STAGE_SOURCE] else { panic!("a Kafka source") };
        assert_eq!(source.topic.as_deref(), Some("sluice-p-hourly-s1"));
        assert!(source.dedup_by_row_id);
        assert_eq!(last.sink_names(), ["hs_order"], "the last stage sends nothing on");
        let middle = stage_spec(&spec, 1, 3, &topics()).unwrap();
        assert_eq!(middle.sink_names(), [NEXT_STAGE_SINK]);
        assert!(stage_spec(&spec, 2, 2, &topics()).unwrap_err().to_string().contains("does not exist"));
    }

    #[test]
    fn a_job_of_one_stage_is_unchanged() {
        let spec = JobSpec::parse(SPEC, Path::new("/")).unwrap();
        let only = stage_spec(&spec, 0, 0, &topics()).unwrap();
        assert_eq!((only.name.as_str(), only.sink_names()), ("p__hourly", vec!["hs_order".to_owned()]));
    }

    #[test]
    fn declared_stages_are_checked() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        check_declared(&names(&["last_order", "hour_totals"])).unwrap();
        check_declared(&[]).unwrap();
        for (bad, says) in [
            (names(&["a", "a"]), "twice"),
            (names(&["a b"]), "letters"),
            (names(&[""]), "letters"),
            (vec!["x".repeat(65)], "letters"),
            ((0..9).map(|i| format!("s{i}")).collect(), "at most 8"),
        ] {
            let err = check_declared(&bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn specs_cannot_name_the_platforms_topics() {
        for topic in ["sluice.p.hourly.0190-s1", "sluice_p_hourly"] {
            let text = SPEC.replace("topic = \"user_order\"", &format!("topic = \"{topic}\""));
            let err = JobSpec::parse(&text, Path::new("/")).unwrap_err().to_string();
            assert!(err.contains("repartition topics"), "{topic}: {err}");
        }
        let sink =
            format!("{SPEC}\n[sinks.out]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"sluice.x.y.z-s1\"\n");
        assert!(JobSpec::parse(&sink, Path::new("/")).unwrap_err().to_string().contains("`out`"));
        JobSpec::parse(&SPEC.replace("user_order", "sluicey"), Path::new("/")).unwrap();
    }

    #[test]
    fn specs_cannot_take_the_platforms_names() {
        let text = SPEC.replace("[sinks.hs_order]", "[sinks.\"sluice.next-stage\"]");
        let spec = JobSpec::parse(&text, Path::new("/"));
        let err = spec.unwrap_err().to_string();
        assert!(err.contains("`sluice.next-stage`") && err.contains("platform's"), "{err}");
    }
}
