//! Repartition stages in the runtime: rows for the next stage must come
//! from input records (`process`), whose ids let the next stage drop a
//! replay; rows from `finish_batch` fail the task before anything of the
//! batch is written. The job's sinks are its last stage's.

use std::path::Path;

use sluice_runtime::connectors::memory::{MemoryRecord, MemorySink, MemorySource};
use sluice_runtime::job::stages::{NEXT_STAGE_SINK, StageTopics, stage_spec};
use sluice_runtime::job::{JobSpec, TaskBuilder, TaskEnd, TaskError};
use sluice_tests::{engine, load};

/// The hostile guest as the first of two stages over `commands`, one batch;
/// what the task ended with, and the rows it sent to the next stage.
async fn first_stage(commands: &[&str]) -> (Result<TaskEnd, TaskError>, MemorySink) {
    first_stage_with(commands, "").await
}

/// [`first_stage`] with the guest's `open` parameter.
async fn first_stage_with(commands: &[&str], open: &str) -> (Result<TaskEnd, TaskError>, MemorySink) {
    let text = format!(
        "name = \"staged\"\ncomponent = \"unused.wasm\"\n[parameters]\nopen = \"{open}\"\n\
         [sources.input]\nkind = \"file\"\npath = \"unused.jsonl\"\n[sinks.out]\nkind = \"memory\"\n"
    );
    let spec = JobSpec::parse(&text, Path::new(".")).unwrap();
    let topics = StageTopics { connection: "events".into(), prefix: "unused".into(), bounded: true };
    let staged = stage_spec(&spec, 0, 2, &topics).unwrap();
    let records = commands
        .iter()
        .enumerate()
        .map(|(i, c)| MemoryRecord { value: c.as_bytes().to_vec(), offset: i as i64, ..MemoryRecord::default() })
        .collect();
    let next = MemorySink::default();
    let task = TaskBuilder::new(&staged)
        .source("input", Box::new(MemorySource::new(vec![records])))
        .sink(NEXT_STAGE_SINK, Box::new(next.clone()))
        .dead_letter(Box::new(MemorySink::default()))
        .build(engine(), &load("guest_hostile").await.unwrap())
        .await
        .unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    (task.run(rx).await, next)
}

#[tokio::test]
async fn rows_for_the_next_stage_come_from_input_records() {
    let (ended, next) = first_stage(&["next-stage", "next-stage"]).await;
    assert_eq!(ended.unwrap(), TaskEnd::Finished);
    let ids: Vec<String> = next.rows().iter().map(|r| r.id.render(&["input".to_owned()])).collect();
    assert_eq!(ids, ["input/0/0/0", "input/0/1/0"], "each row's id names its input record");

    let (ended, next) = first_stage(&["next-stage", "next-stage-later"]).await;
    let Err(error) = ended else { panic!("a row for the next stage from finish_batch fails the task") };
    assert!(matches!(error, TaskError::StageRow { from: "`finish_batch`", .. }), "{error:?}");
    assert!(error.to_string().contains("from `process` only"), "{error}");
    assert!(next.rows().is_empty(), "nothing of the batch went on");

    let (ended, _) = first_stage(&["next-stage-timer"]).await;
    let error = ended.expect_err("a row for the next stage from on_timer fails the task");
    assert!(matches!(error, TaskError::StageRow { from: "`on_timer`", .. }), "{error:?}");
    let (ended, _) = first_stage_with(&["next-stage"], "next-stage").await;
    let error = ended.expect_err("a row for the next stage from open fails the task");
    assert!(matches!(error, TaskError::StageRow { from: "`open`", .. }), "{error:?}");
}

/// A stage before the last has only the sink to the next stage: a row for
/// one of the job's sinks fails the task, saying where the job's sinks are
/// (`stage_spec` leaves them to the last stage, so that a run's earlier
/// stages hold no connections to them).
#[tokio::test]
async fn a_stage_before_the_last_writes_none_of_the_jobs_sinks() {
    let (ended, next) = first_stage(&["next-stage", "ok"]).await;
    let error = ended.expect_err("a row for a sink of the job from stage 0 fails the task");
    let message = error.to_string();
    assert!(message.contains("`out` is not a sink of stage 0") && message.contains("its last stage's"), "{message}");
    assert!(next.rows().is_empty(), "nothing of the batch went on");
}
