//! Applying another Sluice job's rows once (`dedup_by_row_id` on a Kafka
//! source), however often that job replays them.
//!
//! A Kafka sink with `row_id_header = true` stamps every message with its
//! row's deterministic id, `<source>/<partition>/<offset>/<emit index>`: the
//! input record of the upstream job that produced it, and its place among
//! that record's rows; and with the job's name (`sluice-row-job`, without a
//! shard's suffix), so the streams of two jobs writing one topic stay
//! apart. The upstream job handles each of its input
//! partitions in offset order, and its producer is idempotent and gapless,
//! so within one partition of the topic between the two jobs the ids of one
//! upstream input partition (an *origin stream*) only grow, until the
//! upstream job restores a snapshot and replays: it then writes ids it has
//! written before, with the same rows (a job's output is a function of its
//! state and input). The downstream source keeps, per (its partition, origin
//! job, source and partition), the highest id it let through (a *mark*) and drops every record
//! at or below it.
//!
//! The marks are the task's state, in a platform table
//! ([`TABLE`]), so a snapshot holds them with the source positions they go
//! with, a restore brings both back together, and a shard takes its
//! partitions' marks along when it moves. Written once per batch for each
//! stream that moved, read once per stream when the task first sees it: the
//! per-record cost is a header scan and a lookup, whatever the state size.
//!
//! Messages without the header (another producer), and rows a timer or
//! `open` emitted (their ids name no input position), pass unchecked.
//!
//! **Cuts.** When a run restores another run's state, the stage before may
//! restore a snapshot older than where its rows in the topic end: past its
//! restored positions the topic holds rows of a history the restore left,
//! which a version with another output would not write. The platform gives
//! the restored task a cut ([`OriginCut`]): rows of an earlier run (their
//! `sluice-row-gen`, the run's generation, below the cut's) from at or past
//! the upstream's restored position are dropped, so the task applies the
//! restoring run's rows for that span instead. Rows from before that
//! position that it had not applied (in flight when the snapshots were
//! taken) are still applied. The cuts are state too, and they add up: each
//! restore adds one (the task is given those of its restored state and its
//! newest snapshots besides), since the topic keeps every abandoned
//! history, and a task that restarts within the run keeps them.

use hashbrown::hash_map::EntryRef;
use hashbrown::{Equivalent, HashMap};
use serde::{Deserialize, Serialize};

use super::batch::{RecordBatch, RecordMeta};
use crate::connectors::registry::SourceSpec;
use crate::job::spec::JobSpec;
use crate::state::{DeclareError, StateBackend, StateTableImage};
use crate::wasm::bindings::StateKind;

/// The state table of the marks. Job declarations cannot use names that
/// start with `sluice.` (see [`is_reserved`]).
pub const TABLE: &str = "sluice.applied_origins";

/// The headers a Kafka sink with `row_id_header = true` writes: the row's
/// id, and the job it is of.
pub const ROW_ID_HEADER: &str = "sluice-row-id";
pub const ROW_JOB_HEADER: &str = "sluice-row-job";
/// The generation of the run that wrote a row (its lease floor on the
/// platform, increasing with every run of a job); none is generation 0.
pub const ROW_GEN_HEADER: &str = "sluice-row-gen";

/// The most cuts a task keeps per upstream job (one per restore of the
/// job's state); past it the oldest go, so the check per row stays
/// bounded however often the job is restored.
pub const MAX_CUTS: usize = 64;

/// The state table of the cuts: one value per (upstream job, generation).
pub const CUTS_TABLE: &str = "sluice.origin_cuts";

/// Where a restoring run's upstream stage `job` starts again (see the
/// module docs): its rows written by runs of a generation below
/// `generation`, from at or past `from`'s offset of their input partition
/// (0 for a partition `from` does not list), are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginCut {
    /// The upstream job, as its `sluice-row-job` header names it.
    pub job: String,
    pub generation: u64,
    /// (upstream source, partition, first offset not covered by the
    /// upstream's restored snapshot).
    pub from: Vec<(String, i32, i64)>,
}

/// A cut, for lookups: generation, and per source and partition the first
/// cut offset.
struct Cut {
    generation: u64,
    from: HashMap<Box<str>, HashMap<i32, i64>>,
}

impl From<&OriginCut> for Cut {
    fn from(c: &OriginCut) -> Self {
        let mut from: HashMap<Box<str>, HashMap<i32, i64>> = HashMap::new();
        for (source, partition, offset) in &c.from {
            from.entry(source.as_str().into()).or_default().insert(*partition, *offset);
        }
        Cut { generation: c.generation, from }
    }
}

impl Cut {
    /// Whether `offset` of the upstream's `source` partition is at or past
    /// the cut.
    fn past(&self, source: &str, partition: i32, offset: i64) -> bool {
        offset >= self.from.get(source).and_then(|p| p.get(&partition)).copied().unwrap_or(0)
    }
}

/// Whether a snapshot's marks show rows of `cut`'s job applied at or past
/// the cut: a snapshot that cannot go with the upstream's restored one (it
/// applied rows the upstream will write again, maybe otherwise).
pub fn applied_past(state: &[StateTableImage], cut: &OriginCut) -> bool {
    let past = Cut::from(cut);
    let Some(table) = state.iter().find(|t| t.name == TABLE) else { return false };
    table.values.iter().any(|(key, value, _)| {
        let key = serde_json::from_slice::<(String, i32, String, String, i32)>(key);
        let mark = serde_json::from_slice::<(i64, u32)>(value);
        matches!((key, mark), (Ok((_, _, job, source, partition)), Ok((offset, _)))
            if job == cut.job && past.past(&source, partition, offset))
    })
}

/// The cuts a state holds (its task's restores').
pub fn cuts_in(state: &[StateTableImage]) -> Vec<OriginCut> {
    let Some(table) = state.iter().find(|t| t.name == CUTS_TABLE) else { return Vec::new() };
    table.values.iter().filter_map(|(key, value, _)| parse_cut(key, value)).collect()
}

fn cuts_of_table(table: &crate::state::StateTable) -> Vec<OriginCut> {
    table.values.iter().filter_map(|(key, entry)| parse_cut(key, &entry.value)).collect()
}

/// A cut as [`OriginDedup::set_cuts`] stores it.
fn parse_cut(key: &[u8], value: &[u8]) -> Option<OriginCut> {
    let (job, generation) = serde_json::from_slice(key).ok()?;
    Some(OriginCut { job, generation, from: serde_json::from_slice(value).ok()? })
}

/// Marks one task keeps: one per (partition it reads, upstream source and
/// partition). Past this, rows of new streams pass unchecked (with a
/// warning), so a topic written by something other than Sluice jobs cannot
/// grow the task's memory without bound, nor stop it.
pub const MAX_STREAMS: usize = 65_536;

/// Longest upstream job or source name checked; a longer one passes
/// unchecked.
pub const MAX_ORIGIN_NAME: usize = 128;

/// Whether a state name belongs to the platform.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with("sluice.")
}

/// An upstream row's place in its origin stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Mark {
    offset: i64,
    emit: u32,
}

/// A parsed `sluice-row-id` of a row that came from an input record.
#[derive(Debug, PartialEq, Eq)]
struct RowId<'a> {
    /// The upstream job (empty when the header is missing: an older one).
    job: &'a str,
    /// The generation of the run that wrote it (0 without the header).
    generation: u64,
    source: &'a str,
    partition: i32,
    mark: Mark,
}

/// Parses `<source>/<partition>/<offset>/<emit index>`; `None` for any other
/// form (a batch's, a timer's or `open`'s rows, a source name with `/` or
/// longer than [`MAX_ORIGIN_NAME`], not a row id at all).
fn parse_row_id(id: &[u8]) -> Option<RowId<'_>> {
    let text = std::str::from_utf8(id).ok()?;
    let mut parts = text.rsplitn(4, '/');
    let emit = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let source = parts.next()?;
    if source.contains('/') || source.len() > MAX_ORIGIN_NAME {
        return None;
    }
    Some(RowId { job: "", generation: 0, source, partition, mark: Mark { offset, emit } })
}

/// An origin stream as one partition of this task sees it.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Stream {
    source: u32,
    partition: i32,
    origin_partition: i32,
    origin_job: Box<str>,
    origin: Box<str>,
}

/// [`Stream`] borrowed from a record, for lookups without allocating.
/// Hashes as `Stream` does: the same fields in the same order, `&str`
/// hashing as `str`.
#[derive(Hash)]
struct StreamRef<'a> {
    source: u32,
    partition: i32,
    origin_partition: i32,
    origin_job: &'a str,
    origin: &'a str,
}

impl StreamRef<'_> {
    /// The mark's key in [`TABLE`], readable in the console's state view:
    /// `["<source>",<partition>,"<origin job>","<origin source>",<origin partition>]`.
    fn key(&self, source_names: &[String]) -> Vec<u8> {
        let source = &source_names[self.source as usize];
        let key = (source, self.partition, self.origin_job, self.origin, self.origin_partition);
        serde_json::to_vec(&key).expect("strings and numbers serialize")
    }
}

impl From<&StreamRef<'_>> for Stream {
    fn from(s: &StreamRef<'_>) -> Self {
        Stream {
            source: s.source,
            partition: s.partition,
            origin_partition: s.origin_partition,
            origin_job: s.origin_job.into(),
            origin: s.origin.into(),
        }
    }
}

/// A stream's mark, and whether it moved in the current batch.
struct Marked {
    mark: Option<Mark>,
    moved: bool,
}

impl Equivalent<Stream> for StreamRef<'_> {
    fn equivalent(&self, s: &Stream) -> bool {
        (self.source, self.partition, self.origin_partition, self.origin_job, self.origin)
            == (s.source, s.partition, s.origin_partition, &*s.origin_job, &*s.origin)
    }
}

/// The marks of a task; see the module docs.
pub struct OriginDedup {
    /// By the job's source index: whether its records are checked.
    checked: Vec<bool>,
    source_names: Vec<String>,
    table: u32,
    /// Loaded from the state on first sight.
    marks: HashMap<Stream, Marked>,
    /// Marks in the state, counted toward [`MAX_STREAMS`].
    count: usize,
    /// Whether the task has warned that streams pass unchecked.
    warned: bool,
    /// Streams whose mark moved in the current batch.
    moved: Vec<Stream>,
    /// Which records of the current batch to keep (filled only once one is
    /// dropped).
    keep: Vec<bool>,
    /// By upstream job: the cuts of the restores, from the state.
    cuts: HashMap<Box<str>, Vec<Cut>>,
}

impl OriginDedup {
    /// Declares the marks' table in `state` (restored or new) when a source
    /// of `spec` dedups, or when the restored state has marks; the dedup
    /// when a source does. A job that no longer dedups empties the table
    /// (declared, so the restore does not refuse it as state the job
    /// dropped): marks that stopped moving would be wrong for a later
    /// version that dedups again.
    pub fn declare(spec: &JobSpec, state: &mut StateBackend) -> Result<Option<Self>, DeclareError> {
        let checked: Vec<bool> = spec.sources.values().map(dedups).collect();
        let wanted = checked.iter().any(|c| *c);
        if !wanted && state.table_by_name(TABLE).is_none() {
            return Ok(None);
        }
        let table = state.declare_platform(TABLE, StateKind::Value)?;
        let cuts_table = match state.table_by_name(CUTS_TABLE) {
            Some(_) => Some(state.declare_platform(CUTS_TABLE, StateKind::Value)?),
            None => None,
        };
        if !wanted {
            for table in [Some(table), cuts_table].into_iter().flatten() {
                let keys: Vec<Vec<u8>> =
                    state.table(table).map(|t| t.values.keys().map(|k| k.to_vec()).collect()).unwrap_or_default();
                for key in keys {
                    state.remove(table, &key);
                }
            }
            return Ok(None);
        }
        let count = state.table(table).map_or(0, |t| t.len());
        let mut cuts: HashMap<Box<str>, Vec<Cut>> = HashMap::new();
        for cut in cuts_table.and_then(|t| state.table(t)).map(cuts_of_table).unwrap_or_default() {
            cuts.entry(cut.job.as_str().into()).or_default().push(Cut::from(&cut));
        }
        for job_cuts in cuts.values_mut() {
            job_cuts.sort_by_key(|c| std::cmp::Reverse(c.generation));
        }
        Ok(Some(OriginDedup {
            checked,
            source_names: spec.source_names(),
            table,
            marks: HashMap::new(),
            count,
            warned: false,
            moved: Vec::new(),
            keep: Vec::new(),
            cuts,
        }))
    }

    /// Drops the records of `batch` whose rows were applied before, and
    /// records the marks that moved in `state`. Returns how many it dropped.
    pub fn filter(&mut self, batch: &mut RecordBatch, state: &mut StateBackend) -> usize {
        self.keep.clear();
        let mut dropped = 0;
        for (i, record) in batch.records().iter().enumerate() {
            let applied = match self.row_id(batch, record) {
                Some(id) => self.cut(&id) || self.applied(record, &id, state),
                None => false,
            };
            if applied {
                if dropped == 0 {
                    self.keep.resize(i, true);
                }
                dropped += 1;
            }
            if dropped > 0 {
                self.keep.push(!applied);
            }
        }
        for stream in self.moved.drain(..) {
            let Some(Marked { mark: Some(mark), moved }) = self.marks.get_mut(&stream) else { continue };
            *moved = false;
            let key = StreamRef {
                source: stream.source,
                partition: stream.partition,
                origin_partition: stream.origin_partition,
                origin_job: &stream.origin_job,
                origin: &stream.origin,
            }
            .key(&self.source_names);
            let value = serde_json::to_vec(&(mark.offset, mark.emit)).expect("two numbers serialize");
            state.set(self.table, &key, &value);
        }
        if dropped > 0 {
            batch.retain(&self.keep);
        }
        dropped
    }

    /// The row id of a record of a checked source.
    fn row_id<'b>(&self, batch: &'b RecordBatch, record: &RecordMeta) -> Option<RowId<'b>> {
        if !self.checked.get(record.source as usize).copied().unwrap_or(false) {
            return None;
        }
        let (mut id, mut job, mut generation) = (None, &b""[..], 0);
        for (name, value) in batch.headers(record) {
            if name == ROW_ID_HEADER.as_bytes() {
                id = Some(value);
            } else if name == ROW_JOB_HEADER.as_bytes() {
                job = value;
            } else if name == ROW_GEN_HEADER.as_bytes() {
                generation = std::str::from_utf8(value).ok().and_then(|g| g.parse().ok()).unwrap_or(0);
            }
        }
        let job = std::str::from_utf8(job).ok().filter(|j| j.len() <= MAX_ORIGIN_NAME)?;
        Some(RowId { job, generation, ..parse_row_id(id?)? })
    }

    /// Whether the row is of a history a restore left (see [`OriginCut`]).
    fn cut(&self, id: &RowId<'_>) -> bool {
        if self.cuts.is_empty() {
            return false;
        }
        // Newest generation first: the restoring run's own rows, nearly
        // all of them, stop at the first comparison.
        self.cuts.get(id.job).is_some_and(|cuts| {
            cuts.iter()
                .take_while(|c| id.generation < c.generation)
                .any(|c| c.past(id.source, id.partition, id.mark.offset))
        })
    }

    /// Replaces the task's cuts with `cuts` (every restore's, for a task
    /// that restored another run's state), in `state` too.
    /// Past [`MAX_CUTS`] per upstream job, the oldest go.
    pub fn set_cuts(&mut self, cuts: &[OriginCut], state: &mut StateBackend) -> Result<(), DeclareError> {
        let mut cuts: Vec<&OriginCut> = cuts.iter().collect();
        cuts.sort_by(|a, b| (&a.job, b.generation).cmp(&(&b.job, a.generation)));
        let mut kept: HashMap<&str, usize> = HashMap::new();
        cuts.retain(|c| {
            let n = kept.entry(c.job.as_str()).or_default();
            *n += 1;
            *n <= MAX_CUTS
        });
        let table = state.declare_platform(CUTS_TABLE, StateKind::Value)?;
        let keys: Vec<Vec<u8>> =
            state.table(table).map(|t| t.values.keys().map(|k| k.to_vec()).collect()).unwrap_or_default();
        for key in keys {
            state.remove(table, &key);
        }
        self.cuts.clear();
        for cut in cuts {
            let key = serde_json::to_vec(&(&cut.job, cut.generation)).expect("a string and a number serialize");
            let value = serde_json::to_vec(&cut.from).expect("numbers and strings serialize");
            state.set(table, &key, &value);
            self.cuts.entry(cut.job.as_str().into()).or_default().push(Cut::from(cut));
        }
        Ok(())
    }

    /// Whether the row was applied before; if not, it is now (unless its
    /// stream is past [`MAX_STREAMS`]: then it passes unchecked).
    fn applied(&mut self, record: &RecordMeta, id: &RowId<'_>, state: &StateBackend) -> bool {
        let at = StreamRef {
            source: record.source,
            partition: record.partition,
            origin_partition: id.partition,
            origin_job: id.job,
            origin: id.source,
        };
        let entry = match self.marks.entry_ref(&at) {
            EntryRef::Occupied(e) => e.into_mut(),
            EntryRef::Vacant(e) => {
                let key = at.key(&self.source_names);
                let stored = state.get(self.table, &key).flatten();
                let stored = stored.and_then(|v| serde_json::from_slice::<(i64, u32)>(v).ok());
                if stored.is_none() {
                    if self.count >= MAX_STREAMS {
                        if !self.warned {
                            self.warned = true;
                            tracing::warn!(
                                source = %self.source_names[record.source as usize],
                                "more than {MAX_STREAMS} origin streams in `sluice-row-id` headers: rows of new \
                                 ones pass unchecked (is the topic written by something other than Sluice jobs?)"
                            );
                        }
                        return false;
                    }
                    self.count += 1;
                }
                e.insert(Marked { mark: stored.map(|(offset, emit)| Mark { offset, emit }), moved: false })
            }
        };
        if entry.mark.is_some_and(|m| id.mark <= m) {
            return true;
        }
        entry.mark = Some(id.mark);
        if !entry.moved {
            entry.moved = true;
            self.moved.push(Stream::from(&at));
        }
        false
    }
}

/// Whether a source checks row ids.
fn dedups(source: &SourceSpec) -> bool {
    matches!(source, SourceSpec::Kafka(k) if k.dedup_by_row_id)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::job::batch::NewRecord;

    #[test]
    fn row_ids_of_records_parse_and_others_do_not() {
        let id = parse_row_id(b"orders/3/1234/2").expect("a record's id");
        assert_eq!(
            id,
            RowId { job: "", generation: 0, source: "orders", partition: 3, mark: Mark { offset: 1234, emit: 2 } }
        );
        for other in [
            &b"timer/event/1700000000000/6b6579/window/0"[..],
            b"timer/event/1700000000000/6b6579/5/0",
            b"open/0",
            b"a/b/1/2/3",
            b"orders/x/1/0",
            b"orders/0/1/-1",
            b"\xff/0/1/0",
            b"",
        ] {
            assert_eq!(parse_row_id(other), None, "{}", String::from_utf8_lossy(other));
        }
        assert!(Mark { offset: 5, emit: 0 } > Mark { offset: 4, emit: 9 }, "the offset comes first");
    }

    fn spec(dedup: bool) -> JobSpec {
        let text = format!(
            "name = \"down\"\ncomponent = \"x.wasm\"\n[sources.mid]\nkind = \"kafka\"\nconnection = \"c\"\n\
             topic = \"t\"\ndedup_by_row_id = {dedup}\n[sinks.out]\nkind = \"memory\"\n"
        );
        JobSpec::parse(&text, Path::new(".")).expect("spec")
    }

    /// A batch of (partition, row id) records of source 0; an id
    /// `job@id` also has the job's header, and `gen:job@id` the run
    /// generation's.
    fn batch(records: &[(i32, &str)]) -> RecordBatch {
        let mut batch = RecordBatch::default();
        for (offset, (partition, id)) in records.iter().enumerate() {
            let value = format!("{offset}");
            let (generation, id) = id.split_once(':').unwrap_or(("", id));
            let (job, id) = id.split_once('@').unwrap_or(("", id));
            let all = [(ROW_ID_HEADER, id.as_bytes()), (ROW_JOB_HEADER, job.as_bytes())];
            let mut headers = match (id.is_empty(), job.is_empty()) {
                (true, _) => all[..0].to_vec(),
                (false, true) => all[..1].to_vec(),
                (false, false) => all.to_vec(),
            };
            if !generation.is_empty() {
                headers.push((ROW_GEN_HEADER, generation.as_bytes()));
            }
            let headers = &headers[..];
            batch.push(NewRecord {
                key: None,
                value: value.as_bytes(),
                event_time: None,
                headers,
                source: 0,
                partition: *partition,
                offset: offset as i64,
            });
        }
        batch
    }

    fn values(batch: &RecordBatch) -> Vec<String> {
        batch.records().iter().map(|r| String::from_utf8_lossy(batch.bytes(r.value)).into_owned()).collect()
    }

    #[test]
    fn replayed_rows_are_dropped_per_partition_and_origin_and_the_marks_survive_a_restore() {
        let mut state = StateBackend::default();
        let mut dedup = OriginDedup::declare(&spec(true), &mut state).unwrap().expect("a source dedups");
        let mut first = batch(&[(0, "in/0/10/0"), (0, "in/0/10/1"), (0, "in/1/3/0"), (1, "in/0/11/0"), (0, "")]);
        assert_eq!(dedup.filter(&mut first, &mut state), 0);
        assert_eq!(first.len(), 5);

        // A replay: partition 0 gets origin 0 again from offset 10 (emit 1
        // is a duplicate, emit 2 is new), partition 1 gets 11 again and 12.
        let mut replay = batch(&[
            (0, "in/0/10/1"),
            (0, "in/0/10/2"),
            (1, "in/0/11/0"),
            (1, "in/0/12/0"),
            (0, "in/1/3/0"),
            (0, "other/1/3/0"),
            (0, "timer/event/5/6b/w/0"),
        ]);
        assert_eq!(dedup.filter(&mut replay, &mut state), 3);
        assert_eq!(values(&replay), ["1", "3", "5", "6"], "the new rows and the unchecked ones, in order");

        // The marks are state: a task restored from its image drops the same.
        let image = state.image(0);
        let mut restored = StateBackend::restore(image);
        let mut again = OriginDedup::declare(&spec(true), &mut restored).unwrap().unwrap();
        assert!(restored.undeclared().is_empty());
        let mut replay = batch(&[(0, "in/0/10/2"), (1, "in/0/12/0"), (0, "other/1/3/0"), (0, "in/0/13/0")]);
        assert_eq!(again.filter(&mut replay, &mut restored), 3);
        assert_eq!(values(&replay), ["3"]);

        // A version without dedup empties the marks (and is no "state not
        // restored"), so a later one that dedups again starts afresh.
        let mut without = StateBackend::restore(restored.image(0));
        assert!(OriginDedup::declare(&spec(false), &mut without).unwrap().is_none());
        assert!(without.undeclared().is_empty() && without.table_by_name(TABLE).is_some_and(|t| t.is_empty()));
    }

    #[test]
    fn two_upstream_jobs_with_the_same_source_names_are_apart() {
        let mut state = StateBackend::default();
        let mut dedup = OriginDedup::declare(&spec(true), &mut state).unwrap().unwrap();
        let mut first = batch(&[(0, "p__a@in/0/10/0"), (0, "p__b@in/0/5/0"), (0, "p__b@in/0/10/0")]);
        assert_eq!(dedup.filter(&mut first, &mut state), 0, "b's rows are not a's");
        let mut again = batch(&[(0, "p__a@in/0/10/0"), (0, "p__b@in/0/10/0"), (0, "p__b@in/0/11/0")]);
        assert_eq!(dedup.filter(&mut again, &mut state), 2);
        let keys: Vec<String> = state
            .table_by_name(TABLE)
            .unwrap()
            .values
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert!(keys.contains(&r#"["mid",0,"p__b","in",0]"#.to_owned()), "{keys:?}");
        let long_job = format!("{}@in/0/1/0", "j".repeat(MAX_ORIGIN_NAME + 1));
        assert_eq!(dedup.filter(&mut batch(&[(0, &long_job), (0, &long_job)]), &mut state), 0, "passes unchecked");
    }

    #[test]
    fn a_restores_cut_drops_the_left_historys_rows_and_applies_those_in_flight() {
        let mut state = StateBackend::default();
        let mut dedup = OriginDedup::declare(&spec(true), &mut state).unwrap().unwrap();
        let mut before = batch(&[(0, "1:up@in/0/7/0")]);
        assert_eq!(dedup.filter(&mut before, &mut state), 0);

        // The upstream restored a snapshot at offset 10 of its partition 0,
        // and none of its partition 1; this task's marks (7) are below.
        let cut = OriginCut { job: "up".into(), generation: 2, from: vec![("in".into(), 0, 10)] };
        assert!(!applied_past(&state.image(0), &cut));
        assert!(applied_past(&state.image(0), &OriginCut { from: vec![("in".into(), 0, 7)], ..cut.clone() }));
        dedup.set_cuts(std::slice::from_ref(&cut), &mut state).unwrap();

        // The topic past the mark: run 1's rows in flight (8, 9), its rows
        // past the cut (10, and partition 1's), another job's, then the
        // restoring run 2's from the cut on.
        let mut rows = batch(&[
            (0, "1:up@in/0/8/0"),
            (0, "1:up@in/0/9/0"),
            (0, "1:up@in/0/10/0"),
            (0, "1:up@in/1/0/0"),
            (0, "1:other@in/0/10/0"),
            (0, "2:up@in/0/10/0"),
            (0, "2:up@in/0/11/0"),
        ]);
        assert_eq!(dedup.filter(&mut rows, &mut state), 2);
        assert_eq!(values(&rows), ["0", "1", "4", "5", "6"]);

        // The cut is state: a task restarted within the run keeps it.
        let image = state.image(0);
        assert_eq!(cuts_in(&image), std::slice::from_ref(&cut));
        let mut restored = StateBackend::restore(image);
        let mut again = OriginDedup::declare(&spec(true), &mut restored).unwrap().unwrap();
        let mut later = batch(&[(0, "1:up@in/0/12/0"), (0, "2:up@in/0/12/0"), (0, "2:up@in/0/12/0")]);
        assert_eq!(again.filter(&mut later, &mut restored), 2);
        assert_eq!(values(&later), ["1"]);

        // A later restore (run 3, its upstream at 20) adds its cut: run 1's
        // rows stay cut from 10, run 2's from 20, run 3's pass.
        let third = OriginCut { job: "up".into(), generation: 3, from: vec![("in".into(), 0, 20)] };
        again.set_cuts(&[cut.clone(), third.clone()], &mut restored).unwrap();
        let mut rows =
            batch(&[(0, "1:up@in/0/15/0"), (0, "2:up@in/0/15/0"), (0, "2:up@in/0/20/0"), (0, "3:up@in/0/20/0")]);
        assert_eq!(again.filter(&mut rows, &mut restored), 2);
        assert_eq!(values(&rows), ["1", "3"]);
        let mut kept = cuts_in(&restored.image(0));
        kept.sort_by_key(|c| c.generation);
        assert_eq!(kept, [cut.clone(), third]);

        // However often the state is restored, the newest MAX_CUTS stay.
        let many: Vec<OriginCut> =
            (1..=MAX_CUTS as u64 + 5).map(|generation| OriginCut { generation, ..cut.clone() }).collect();
        again.set_cuts(&many, &mut restored).unwrap();
        let kept = cuts_in(&restored.image(0));
        assert_eq!(kept.len(), MAX_CUTS);
        assert!(kept.iter().all(|c| c.generation > 5), "the oldest went");
    }

    #[test]
    fn a_job_without_dedup_has_no_table() {
        let mut state = StateBackend::default();
        assert!(OriginDedup::declare(&spec(false), &mut state).unwrap().is_none());
        assert!(state.table_by_name(TABLE).is_none());
        assert!(is_reserved(TABLE) && !is_reserved("totals"));
    }

    #[test]
    fn past_the_bound_new_streams_pass_unchecked_and_known_ones_are_still_checked() {
        let mut state = StateBackend::default();
        let mut dedup = OriginDedup::declare(&spec(true), &mut state).unwrap().unwrap();
        dedup.count = MAX_STREAMS - 1;
        let mut first = batch(&[(0, "a/0/1/0"), (0, "a/0/2/0")]);
        assert_eq!(dedup.filter(&mut first, &mut state), 0);
        let mut past = batch(&[(0, "b/0/1/0"), (0, "b/0/1/0"), (0, "a/0/2/0")]);
        assert_eq!(dedup.filter(&mut past, &mut state), 1, "only the known stream's replay is dropped");
        assert_eq!(values(&past), ["0", "1"]);
        assert_eq!(state.table_by_name(TABLE).map(|t| t.len()), Some(1), "no mark for the stream past the bound");

        // A restored task counts the marks it restored.
        let mut restored = StateBackend::restore(state.image(0));
        let again = OriginDedup::declare(&spec(true), &mut restored).unwrap().unwrap();
        assert_eq!(again.count, 1);
    }

    #[test]
    fn long_origin_names_and_batch_rows_pass_unchecked() {
        let long = format!("{}/0/1/0", "n".repeat(MAX_ORIGIN_NAME + 1));
        assert_eq!(parse_row_id(long.as_bytes()), None);
        assert!(parse_row_id(format!("{}/0/1/0", "n".repeat(MAX_ORIGIN_NAME)).as_bytes()).is_some());
        assert_eq!(parse_row_id(b"batch/in/0/10/0"), None, "a batch's rows depend on where it ended");
    }
}
