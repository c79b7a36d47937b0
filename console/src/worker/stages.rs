//! Staged runs (docs/ARCHITECTURE.md, "Staged runs"): a job whose component
//! declares repartition stages runs each stage in the run's shards, stage
//! k > 0 on the partitions of a repartition topic the platform makes on the
//! Kafka cluster of the job's first Kafka source.
//!
//! The topics of a run are `<prefix>-s<k>`. The prefix names the state they
//! go with: a run from empty state makes a new one,
//! `sluice.<project>.<job>.<run id>`, so it never reads rows an earlier
//! state wrote; a run that restores keeps the prefix of the run whose
//! snapshots it restores. The topics of a job's earlier states are deleted
//! when a run starts from empty state (as Kafka Streams' reset deletes its
//! internal topics): their snapshots can then no longer be restored, which
//! is refused with the reason.

use sluice_runtime::connectors::registry::SourceSpec;
use sluice_runtime::job::JobSpec;
use sluice_runtime::job::origin_dedup::{OriginCut, applied_past, cuts_in};
use sluice_runtime::job::stages::StageTopics;
use sluice_runtime::snapshot::{Snapshot, SnapshotError, SourcePosition};

use super::restore::RestoreFrom;
use super::{LaunchPlan, Worker, WorkerError, WorkerResult, plan};
use crate::store::{Connection, Deployment, Job, Project, Run, RunShape};

/// The snapshot key (and runtime job name) of group `group` of a run of
/// `shape`: `plan::snapshot_key` of its shard, with `__s<k>` after the job's
/// name for stage k > 0, so stage 0 keeps the keys of a job of one stage.
pub fn group_key(project: &str, job: &str, shape: &RunShape, group: u32) -> String {
    let stage = shape.stage_of(group);
    let name = sluice_runtime::job::stages::stage_job_name(job, stage);
    plan::snapshot_key(project, &name, shape.shard_of(group), shape.shards)
}

/// The stage a snapshot key (`group_key`) names: 0 for a job of one.
/// Project and job names hold no `_`, so the key's `__` parts are
/// project, job, then `s<k>` and `p<s>-of-<n>` where present.
pub fn stage_of_key(key: &str) -> u32 {
    key.split("__").skip(2).find_map(|part| part.strip_prefix('s')?.parse().ok()).unwrap_or(0)
}

/// The first words of every repartition topic of `job`. Project and job
/// names hold no `.`, so no job's are another's.
fn job_prefix(project: &str, job: &str) -> String {
    format!("sluice.{project}.{job}.")
}

/// The time a snapshot was taken, from its id (which begins with it).
fn snapshot_ms(id: &str) -> i64 {
    id.get(..13).and_then(|t| t.parse::<i64>().ok()).unwrap_or(0)
}

/// When the state a staged run's topics go with began: the time in the id
/// of the run that started it from empty state, which ends the prefix
/// (`sluice.<project>.<job>.<run id>`; run ids begin with their creation
/// time in hex, `store::new_id`). A restore takes only snapshots taken
/// since: older ones go with the topics of an earlier state.
pub fn state_began_ms(prefix: &str) -> Option<i64> {
    let run = prefix.rsplit('.').next()?;
    i64::from_str_radix(run.get(..12)?, 16).ok()
}

/// Why a version cannot restore state kept in another number of stages.
pub fn stages_changed(job: &str, kept: u32, now: u32) -> String {
    format!(
        "job `{job}` keeps its state in {kept} stage(s), but this version declares {now}: its later stages would \
         start from empty state while the first restores its own. Run a version with the same stages, or start \
         with restore `none` to begin afresh"
    )
}

/// The Kafka connection a staged job's repartition topics live on: its
/// first Kafka source's.
fn topics_connection(spec: &JobSpec) -> WorkerResult<String> {
    spec.sources
        .values()
        .find_map(|s| match s {
            SourceSpec::Kafka(k) => Some(k.connection.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            WorkerError::Invalid(
                "the job runs in repartition stages, whose topics are kept on the Kafka cluster of its first Kafka \
                 source, and its spec reads none: read the input from Kafka"
                    .into(),
            )
        })
}

/// The name stage `stage`'s rows carry as their upstream job
/// (`sluice-row-job`): its groups' snapshot key without the shard.
fn row_job(project: &str, job: &str, stage: u32) -> String {
    plan::snapshot_key(project, &sluice_runtime::job::stages::stage_job_name(job, stage), 0, 1)
}

/// The cut a stage's restored snapshots make for the stage after:
/// everything past their positions (`origin_dedup::OriginCut`).
fn cut_after(job: String, generation: u64, restored: &[Option<Vec<SourcePosition>>]) -> OriginCut {
    let from = restored.iter().flatten().flatten().map(|p| (p.source.clone(), p.partition, p.next_offset)).collect();
    OriginCut { job, generation, from }
}

/// What a group of a staged run restores from another run's state: its
/// snapshot, and for a later stage the cuts to give its task.
pub(super) type StagedRestore = (Option<Snapshot>, Option<Vec<OriginCut>>);

/// Which snapshots a staged restore may take: those `first` allows, of the
/// state begun at `state_began`, taken before `before_ms` (the restoring
/// run's first start).
struct Window<'a> {
    first: &'a RestoreFrom,
    state_began: Option<i64>,
    before_ms: i64,
}

/// A shard's snapshot for a staged restore, the cuts of earlier restores
/// seen in its snapshots, and how many it passed over.
struct Pick {
    snapshot: Option<Snapshot>,
    earlier_cuts: Vec<OriginCut>,
    passed_over: usize,
}

/// The longest a run's repartition topics may take to list, make and check.
const PREPARE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One group's snapshots: its stage, its shard and its snapshot key.
#[derive(Debug, Clone)]
pub struct GroupKey {
    pub stage: u32,
    pub shard: u32,
    pub key: String,
}

/// The snapshot keys of every group of a run of `shards` shards in
/// `stages` stages.
pub fn group_keys(project: &str, job: &str, shards: u32, stages: u32) -> Vec<GroupKey> {
    let shape = RunShape { shards, parallelism: 1, stages };
    (0..shape.groups())
        .map(|g| GroupKey {
            stage: shape.stage_of(g),
            shard: shape.shard_of(g),
            key: group_key(project, job, &shape, g),
        })
        .collect()
}

impl Worker {
    /// The snapshot keys of every group the job's state is kept in: its
    /// shards (one when it has no snapshots) in the stages of the run that
    /// last kept them.
    pub async fn kept_keys(&self, project: &Project, job: &Job) -> WorkerResult<Vec<GroupKey>> {
        let shards = self.kept_shards(&project.name, job, "").await?.unwrap_or(1);
        let stages = self.store.last_planned_run(&job.id, "").await?.and_then(|r| r.stages).unwrap_or(1);
        Ok(group_keys(&project.name, &job.name, shards, stages.clamp(1, 64) as u32))
    }

    /// The run whose state `run` restores: the one that took its chosen
    /// snapshot, else the job's newest planned run (for `latest`); none for
    /// a start from empty state.
    async fn restored_run(&self, job: &Job, run: &Run) -> WorkerResult<Option<Run>> {
        Ok(match RestoreFrom::parse(run.restore_from.as_deref()) {
            RestoreFrom::None => None,
            RestoreFrom::Snapshot(id) => self.store.run_at(&job.id, snapshot_ms(&id)).await?,
            RestoreFrom::Latest | RestoreFrom::Resume(_) | RestoreFrom::Continue { .. } => {
                self.store.last_planned_run(&job.id, &run.id).await?
            }
        })
    }

    /// Refuses restoring state kept in another number of stages than the
    /// version declares (`kept_shards` said the state exists).
    pub(super) async fn check_kept_stages(&self, job: &Job, run: &Run, stages: u32) -> WorkerResult<()> {
        let kept = self.restored_run(job, run).await?;
        let kept_stages = kept.and_then(|r| r.stages).unwrap_or(1).clamp(1, 64) as u32;
        if kept_stages != stages {
            return Err(WorkerError::Invalid(stages_changed(&job.name, kept_stages, stages)));
        }
        Ok(())
    }

    /// What group `group` (snapshot key `key`) of a staged run restores
    /// when the run restores another run's state (`restore`'s first start
    /// is `latest` or a snapshot; a group resuming with its own snapshot
    /// since the run first started takes that, and keeps its state's
    /// cuts). Stage by stage, each shard takes the newest snapshot the
    /// one-stage rules allow, taken before the run first started, whose
    /// marks stop short of where the stage before restarts (else none: it
    /// reads its topic from the start); a later stage's task gets the cut
    /// of the stage before at the run's `generation` (rows the earlier runs
    /// wrote past that stage's restored positions are of a history the
    /// restore left), with the earlier restores' cuts, which its snapshots
    /// hold (docs/ARCHITECTURE.md, "Staged runs"). `None`: not a staged
    /// restore (the one-stage rules).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn staged_restore(
        &self,
        plan: &LaunchPlan,
        group: u32,
        key: &str,
        restore: &RestoreFrom,
        first_started: i64,
        state_began: Option<i64>,
        generation: u64,
    ) -> WorkerResult<Option<StagedRestore>> {
        let first = restore.first();
        if plan.shape.stages <= 1 || *first == RestoreFrom::None {
            return Ok(None);
        }
        if matches!(restore, RestoreFrom::Resume(_))
            && let Some(own) = self.newest_since(key, first_started).await?
        {
            return Ok(Some((Some(own), None)));
        }
        let stage = plan.shape.stage_of(group);
        let (project, job) = (&plan.project.name, &plan.job.name);
        let window = Window { first, state_began, before_ms: first_started };
        let mut cut: Option<OriginCut> = None;
        for k in 0..=stage {
            let mut restored = Vec::new();
            for shard in 0..plan.shape.shards {
                let g = k * plan.shape.shards + shard;
                let shard_key = group_key(project, job, &plan.shape, g);
                let known = plan.restored_positions.lock().expect("positions lock").get(&shard_key).cloned();
                if g != group
                    && let Some(positions) = known
                {
                    restored.push(positions);
                    continue;
                }
                let pick = self.consistent_snapshot(plan, &shard_key, &window, cut.as_ref()).await?;
                let positions = pick.snapshot.as_ref().map(|s| s.meta.positions.clone());
                plan.restored_positions.lock().expect("positions lock").insert(shard_key.clone(), positions);
                if g == group {
                    if pick.snapshot.is_none() && pick.passed_over > 0 {
                        let detail = format!(
                            "run {}: shard `{shard_key}` passed over its {} snapshot(s), each of which applied rows \
                             of the stage before past where that stage restarts; it reads its repartition topic \
                             from the start",
                            plan.run.id, pick.passed_over
                        );
                        self.event(plan, "run", "run.stage_reads_from_start", &detail).await;
                    }
                    let cuts = cut.map(|c| {
                        let new = OriginCut { generation, ..c };
                        let mut cuts: Vec<OriginCut> = pick.earlier_cuts;
                        cuts.retain(|e| (&e.job, e.generation) != (&new.job, new.generation));
                        cuts.push(new);
                        cuts
                    });
                    return Ok(Some((pick.snapshot, cuts)));
                }
                restored.push(pick.snapshot.map(|s| s.meta.positions));
            }
            cut = Some(cut_after(row_job(project, job, k), generation, &restored));
        }
        Ok(None)
    }

    /// The newest snapshot of `key` that `window` allows whose marks stop
    /// short of `cut`. Without a cut (the first stage) a chosen snapshot is
    /// taken as by a job of one stage: damaged or missing, it is refused.
    async fn consistent_snapshot(
        &self,
        plan: &LaunchPlan,
        key: &str,
        window: &Window<'_>,
        cut: Option<&OriginCut>,
    ) -> WorkerResult<Pick> {
        let chosen = matches!(window.first, RestoreFrom::Snapshot(_));
        let candidates = self.candidates(plan, key, window.first, window, cut.is_some()).await?;
        let mut pick = Pick { snapshot: None, earlier_cuts: Vec::new(), passed_over: 0 };
        for id in candidates {
            let snapshot = match self.snapshots.load(key, &id).await {
                Ok(snapshot) => snapshot,
                Err(e @ (SnapshotError::Corrupt { .. } | SnapshotError::NotFound { .. }))
                    if chosen && cut.is_none() =>
                {
                    return Err(WorkerError::Invalid(e.to_string()));
                }
                Err(e @ (SnapshotError::Corrupt { .. } | SnapshotError::NotFound { .. })) => {
                    tracing::warn!(key, snapshot = %id, "skipping a snapshot that cannot be restored: {e}");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for earlier in cuts_in(&snapshot.state) {
                if !pick.earlier_cuts.contains(&earlier) {
                    pick.earlier_cuts.push(earlier);
                }
            }
            if cut.is_some_and(|c| applied_past(&snapshot.state, c)) {
                tracing::info!(key, snapshot = %id, "passing over a snapshot that applied rows past the stage before's");
                pick.passed_over += 1;
                continue;
            }
            pick.snapshot = Some(snapshot);
            break;
        }
        Ok(pick)
    }

    /// The snapshots of `key` a staged restore from `first` may take,
    /// newest first; `later` for a stage after the first.
    async fn candidates(
        &self,
        plan: &LaunchPlan,
        key: &str,
        first: &RestoreFrom,
        window: &Window<'_>,
        later: bool,
    ) -> WorkerResult<Vec<String>> {
        let since = |ms: i64| format!("{:013}", ms.max(window.state_began.unwrap_or(0)).max(0));
        let before = format!("{:013}", window.before_ms.max(0));
        Ok(match first {
            RestoreFrom::Snapshot(id) => match (self.chosen_for_shard(&plan.job.id, key, id).await?, later) {
                (Some(at), false) => vec![at],
                (Some(at), true) => {
                    let same_run = self.same_run_snapshots(&plan.job.id, key, id).await?;
                    same_run.into_iter().filter(|s| *s <= at).rev().collect()
                }
                // The first stage's shards must have one (as a job of one
                // stage); a later stage's reads its topic from the start.
                (None, false) => {
                    return Err(WorkerError::Invalid(format!(
                        "snapshot `{id}` cannot be restored: shard `{key}` has no snapshot taken at or before it by \
                         the run that took it; pick a snapshot taken by a stop or by \"snapshot now\", which cover \
                         every shard"
                    )));
                }
                (None, true) => Vec::new(),
            },
            // The run it goes on with's own, then what that run restored.
            RestoreFrom::Continue { since_ms, first } => {
                let ids = self.snapshots.list(key).await?;
                let from = since(*since_ms);
                let mut own: Vec<String> = ids.into_iter().filter(|id| *id >= from && *id < before).rev().collect();
                match Box::pin(self.candidates(plan, key, first, window, later)).await {
                    Ok(earlier) => own.extend(earlier.into_iter().filter(|id| *id < from)),
                    Err(e) if own.is_empty() => return Err(e),
                    Err(_) => {}
                }
                own
            }
            RestoreFrom::None => Vec::new(),
            // The state's snapshots, not the restoring run's own: every
            // worker finds the same, whenever it plans.
            RestoreFrom::Latest | RestoreFrom::Resume(_) => {
                let ids = self.snapshots.list(key).await?;
                let from = since(0);
                ids.into_iter().filter(|id| *id >= from && *id < before).rev().collect()
            }
        })
    }

    /// Where `run`'s stages pass rows on, for a run of several stages: the
    /// connection of the job's first Kafka source, and the topics' prefix
    /// (the run's own once planned; else that of the run whose state it
    /// restores; else a new one).
    pub(super) async fn stage_topics(
        &self,
        run: &Run,
        project: &Project,
        job: &Job,
        deployment: &Deployment,
        shape: &RunShape,
    ) -> WorkerResult<Option<StageTopics>> {
        if shape.stages <= 1 {
            return Ok(None);
        }
        let base_dir = plan::project_files(&self.data_dir, &project.name);
        let spec = plan::job_spec(deployment, &plan::snapshot_key(&project.name, &job.name, 0, 1), None, &base_dir)
            .map_err(WorkerError::Invalid)?;
        let connection = topics_connection(&spec)?;
        let prefix = match &run.stage_topics {
            Some(prefix) => prefix.clone(),
            // A restoring run keeps the topics of the state it restores,
            // even when some of its groups have no snapshot (those start
            // from their sources' start, and dedup covers the rest).
            None => self
                .restored_run(job, run)
                .await?
                .and_then(|r| r.stage_topics)
                .unwrap_or_else(|| format!("{}{}", job_prefix(&project.name, &job.name), run.id)),
        };
        Ok(Some(StageTopics { connection, prefix, bounded: false }))
    }

    /// Makes the repartition topics of a run about to be planned, each
    /// with the run's shards as partitions, when the run starts from empty
    /// state (its own prefix), after deleting those of the job's earlier
    /// states; a restoring run needs the topics of the state it restores.
    /// Bounded by `PREPARE_TIMEOUT` in all: the cluster is the tenant's.
    pub(super) async fn prepare_stage_topics(
        &self,
        run: &Run,
        project: &Project,
        job: &Job,
        topics: &StageTopics,
        shape: &RunShape,
    ) -> WorkerResult<()> {
        let prepared = self.prepare_stage_topics_now(run, project, job, topics, shape);
        tokio::time::timeout(PREPARE_TIMEOUT, prepared).await.map_err(|_| {
            WorkerError::Task(format!(
                "the repartition topics on connection `{}` were not ready within {PREPARE_TIMEOUT:?}",
                topics.connection
            ))
        })?
    }

    async fn prepare_stage_topics_now(
        &self,
        run: &Run,
        project: &Project,
        job: &Job,
        topics: &StageTopics,
        shape: &RunShape,
    ) -> WorkerResult<()> {
        let connection = self.kafka_connection(project, &topics.connection).await?;
        let policy = self.connection_policy(&project.name);
        let listed = crate::topics::list_reachable(&connection, &policy)
            .await
            .map_err(|e| WorkerError::Task(format!("repartition topics, connection `{}`: {e:#}", topics.connection)))?;
        let partitions = i32::try_from(shape.shards).unwrap_or(i32::MAX);
        if topics.prefix != format!("{}{}", job_prefix(&project.name, &job.name), run.id) {
            for stage in 1..shape.stages {
                let topic = topics.topic(stage);
                match listed.iter().find(|t| t.name == topic) {
                    Some(t) if t.partitions == partitions as usize => {}
                    Some(t) => {
                        return Err(WorkerError::Invalid(format!(
                            "repartition topic `{topic}` has {} partitions where the job's state has {partitions} \
                             shards; start with restore `none` to begin afresh",
                            t.partitions
                        )));
                    }
                    None => {
                        return Err(WorkerError::Invalid(format!(
                            "the state this run restores was kept with repartition topic `{topic}`, which is gone; \
                             start with restore `none` to begin afresh"
                        )));
                    }
                }
            }
            return Ok(());
        }
        // A start from empty state: new topics. Those of earlier states go
        // once the run is planned (`retire_old_stage_topics`).
        for stage in 1..shape.stages {
            crate::topics::ensure(&connection, &policy, &topics.topic(stage), partitions)
                .await
                .map_err(|e| WorkerError::Task(format!("repartition topic of stage {stage}: {e:#}")))?;
        }
        Ok(())
    }

    /// Once a run from empty state is planned: deletes the repartition
    /// topics the job's earlier runs recorded (those of earlier states; a
    /// restore of such a state is refused), on the run's connection, best
    /// effort and bounded. Only topics the platform made for this job go:
    /// names recorded in its runs, not whatever matches a prefix.
    pub(super) async fn retire_old_stage_topics(&self, run: &Run, project: &Project, job: &Job, topics: &StageTopics) {
        if topics.prefix != format!("{}{}", job_prefix(&project.name, &job.name), run.id) {
            return;
        }
        let retired = async {
            let connection = self.kafka_connection(project, &topics.connection).await?;
            let policy = self.connection_policy(&project.name);
            let old: Vec<String> = self
                .store
                .stage_topic_prefixes(&job.id)
                .await?
                .into_iter()
                .filter(|(prefix, _)| *prefix != topics.prefix)
                .flat_map(|(prefix, stages)| {
                    let old = StageTopics { prefix, ..topics.clone() };
                    (1..stages.clamp(1, 64) as u32).map(move |k| old.topic(k))
                })
                .collect();
            let listed = crate::topics::list_reachable(&connection, &policy).await.map_err(WorkerError::task)?;
            let present: Vec<String> = old.into_iter().filter(|n| listed.iter().any(|t| t.name == *n)).collect();
            crate::topics::delete(&connection, &policy, &present).await.map_err(WorkerError::task)?;
            Ok::<_, WorkerError>(present)
        };
        match tokio::time::timeout(PREPARE_TIMEOUT, retired).await {
            Ok(Ok(deleted)) if !deleted.is_empty() => {
                tracing::info!(run = %run.id, topics = ?deleted, "deleted the repartition topics of earlier states")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(run = %run.id, error = %e, "cannot delete old repartition topics"),
            Err(_) => tracing::warn!(run = %run.id, "deleting old repartition topics took too long"),
        }
    }

    /// The project's Kafka connection `name`, held to the platform's rules.
    async fn kafka_connection(&self, project: &Project, name: &str) -> WorkerResult<Connection> {
        let connection =
            self.store.connection(&project.id, name).await?.filter(|c| c.kind == "kafka").ok_or_else(|| {
                WorkerError::Invalid(format!("project `{}` has no Kafka connection `{name}`", project.name))
            })?;
        let properties: indexmap::IndexMap<String, String> =
            serde_json::from_str(&connection.properties).unwrap_or_default();
        let listed: Vec<(&str, &str)> = properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.connection_policy(&project.name)
            .check_kafka(&connection.url, &listed)
            .await
            .map_err(|e| WorkerError::Invalid(format!("connection `{name}`: {e}")))?;
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_zero_keeps_the_keys_of_a_job_of_one_stage() {
        let shape = RunShape { shards: 2, parallelism: 1, stages: 2 };
        let keys: Vec<String> = (0..shape.groups()).map(|g| group_key("demo", "hp", &shape, g)).collect();
        assert_eq!(keys, ["demo__hp__p0-of-2", "demo__hp__p1-of-2", "demo__hp__s1__p0-of-2", "demo__hp__s1__p1-of-2"]);
        assert_eq!(plan::shard_of(&keys[3]), 1);
        assert_eq!(state_began_ms("sluice.demo.hp.019af0e2b3c4deadbeef"), Some(0x019af0e2b3c4));
        assert_eq!(state_began_ms("sluice.demo.hp.x"), None);
        let now = crate::store::now_ms();
        let began = state_began_ms(&format!("sluice.demo.hp.{}", crate::store::new_id())).unwrap();
        assert!((now..now + 1000).contains(&began), "a real run id: {began} vs {now}");
        let stages: Vec<u32> = keys.iter().map(|k| stage_of_key(k)).collect();
        assert_eq!(stages, [0, 0, 1, 1]);
        assert_eq!(stage_of_key("demo__s1"), 0, "a job named s1 is of one stage");
        assert_eq!(stage_of_key("demo__s1__s1"), 1);
        let one = RunShape::new(1, 1);
        assert_eq!(group_key("demo", "hp", &one, 0), plan::snapshot_key("demo", "hp", 0, 1));
    }
}
