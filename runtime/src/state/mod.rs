//! Host-owned keyed state of one task: named value and map states, with a
//! per-state TTL. Jobs reach it through the `state` WIT interface; snapshots
//! read and restore it whole or by its changes.
//!
//! No operation costs more than the entries it returns or drops: a map's
//! length is kept, expired entries are found through an index by write
//! time (`expiry.rs`), and changes are tracked per value and per map
//! field, so an incremental snapshot holds what changed, not whole maps.

mod expiry;
mod image;

use std::cell::Cell;

use hashbrown::hash_map::EntryRef;
use hashbrown::{HashMap, HashSet};
use smallvec::SmallVec;

use self::expiry::ExpiryIndex;
pub use self::image::{EntryImage, StateTableImage, StateTableImageV2};
use crate::wasm::bindings::StateKind;

/// Keys, map fields and values up to this many bytes are held inline in
/// the hash table's slot: ids, tuple keys and counters cost no allocation
/// of their own, and a lookup touches one slot instead of following a
/// pointer to the key and another to the value.
const INLINE_BYTES: usize = 24;

/// The bytes of a key, map field or value, as the tables hold them.
pub type Bytes = SmallVec<[u8; INLINE_BYTES]>;

/// Bytes of bookkeeping an entry costs besides its key, field and value
/// bytes (hash slots, vector headers, write time), for the size estimate.
const ENTRY_OVERHEAD: usize = 64;

/// A stored value and when it was last written (processing time, ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Bytes,
    pub written_ms: i64,
}

/// One named state.
#[derive(Debug, Clone)]
pub struct StateTable {
    pub name: String,
    pub kind: StateKind,
    pub ttl_ms: Option<u64>,
    pub values: HashMap<Bytes, Entry>,
    pub maps: HashMap<Bytes, HashMap<Bytes, Entry>>,
    /// Whether the running job declared it (a restored state the job no
    /// longer declares is "non-restored" after an upgrade).
    pub declared: bool,
    /// The host's own (`sluice.` names): the job was given no handle to it
    /// and may not use one.
    pub platform: bool,
    /// What changed since the last snapshot image, when incremental
    /// snapshots are on (`None`: not tracked).
    changes: Option<Changes>,
    /// Entries by write time; kept when the state has a TTL.
    expiry: Option<ExpiryIndex>,
    /// Entries were restored without being indexed by write time yet.
    expiry_stale: bool,
}

/// Keys and map fields written or removed since the last image.
#[derive(Debug, Clone, Default)]
struct Changes {
    values: HashSet<Bytes>,
    maps: HashMap<Bytes, MapChanges>,
}

#[derive(Debug, Clone, Default)]
struct MapChanges {
    /// The whole map was removed (fields set since are in `fields`).
    cleared: bool,
    fields: HashSet<Bytes>,
}

impl Changes {
    fn value(&mut self, key: &[u8]) {
        if !self.values.contains(key) {
            self.values.insert(Bytes::from_slice(key));
        }
    }

    fn field(&mut self, key: &[u8], field: &[u8]) {
        let map = match self.maps.entry_ref(key) {
            EntryRef::Occupied(e) => e.into_mut(),
            EntryRef::Vacant(e) => e.insert(MapChanges::default()),
        };
        if !map.fields.contains(field) {
            map.fields.insert(Bytes::from_slice(field));
        }
    }

    fn map_cleared(&mut self, key: &[u8]) {
        let map = self.maps.entry_ref(key).or_default();
        map.cleared = true;
        map.fields.clear();
    }
}

impl StateTable {
    fn new(name: &str, kind: StateKind, ttl_ms: Option<u64>, track_changes: bool) -> Self {
        StateTable {
            name: name.to_owned(),
            kind,
            ttl_ms,
            values: HashMap::new(),
            maps: HashMap::new(),
            declared: true,
            platform: false,
            changes: track_changes.then(Changes::default),
            expiry: ttl_ms.map(|_| ExpiryIndex::default()),
            expiry_stale: false,
        }
    }

    fn live(&self, entry: &Entry, now_ms: i64) -> bool {
        self.ttl_ms.is_none_or(|ttl| now_ms.saturating_sub(entry.written_ms) < ttl as i64)
    }

    /// A zero TTL hides every write at once, so nothing is kept.
    fn keeps_nothing(&self) -> bool {
        self.ttl_ms == Some(0)
    }

    /// Number of keys held (values, or maps).
    pub fn len(&self) -> usize {
        self.values.len() + self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Indexes every entry by write time (a TTL was set on a state that had
    /// none, or state was restored).
    fn rebuild_expiry(&mut self) {
        self.expiry_stale = false;
        let index = self.expiry.get_or_insert_default();
        index.clear();
        for (key, e) in &self.values {
            index.written(key, b"", None, e.written_ms);
        }
        for (key, fields) in &self.maps {
            for (field, e) in fields {
                index.written(key, field, None, e.written_ms);
            }
        }
    }
}

/// Why a state declaration was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    #[error("state `{name}` is declared as {declared:?} but was {existing:?}")]
    KindChanged { name: String, declared: StateKind, existing: StateKind },
}

/// All states of a task. Handles are indexes into `tables`.
#[derive(Debug, Clone, Default)]
pub struct StateBackend {
    tables: Vec<StateTable>,
    /// Record changes, for incremental snapshots.
    track_changes: bool,
    /// Processing time of the current call; entries expired by then are gone.
    now_ms: i64,
    /// Estimated bytes held (keys, fields, values and bookkeeping).
    bytes: usize,
    /// Entries looked at, written, returned or dropped so far: the work done,
    /// which tests compare across state sizes.
    work: Cell<u64>,
}

impl StateBackend {
    /// Sets the processing time of the next calls and drops the entries it
    /// expires: every entry held afterwards is live.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        for t in 0..self.tables.len() {
            self.expire_table(t);
        }
    }

    /// Declares a state or re-opens an existing one (after a restore).
    pub fn declare(&mut self, name: &str, kind: StateKind, ttl_ms: Option<u64>) -> Result<u32, DeclareError> {
        let Some(i) = self.tables.iter().position(|t| t.name == name) else {
            self.tables.push(StateTable::new(name, kind, ttl_ms, self.track_changes));
            return Ok(self.tables.len() as u32 - 1);
        };
        let table = &mut self.tables[i];
        if table.kind != kind {
            return Err(DeclareError::KindChanged { name: name.to_owned(), declared: kind, existing: table.kind });
        }
        table.declared = true;
        if table.ttl_ms != ttl_ms {
            table.ttl_ms = ttl_ms;
            table.expiry = None;
            table.expiry_stale = ttl_ms.is_some();
            self.expire_table(i);
        }
        Ok(i as u32)
    }

    /// Declares a state of the host's own: as [`declare`](Self::declare),
    /// and marked so that the job cannot use its handle.
    pub fn declare_platform(&mut self, name: &str, kind: StateKind) -> Result<u32, DeclareError> {
        let handle = self.declare(name, kind, None)?;
        self.tables[handle as usize].platform = true;
        Ok(handle)
    }

    /// Whether the job may use `handle`: one the host gave it, not a
    /// platform table's.
    pub fn is_guest_handle(&self, handle: u32) -> bool {
        self.tables.get(handle as usize).is_some_and(|t| !t.platform)
    }

    /// The table behind a handle. A handle the host never gave out is a guest
    /// bug, reported as a trap by the caller.
    pub fn table(&self, state: u32) -> Option<&StateTable> {
        self.tables.get(state as usize)
    }

    pub fn tables(&self) -> &[StateTable] {
        &self.tables
    }

    pub fn table_by_name(&self, name: &str) -> Option<&StateTable> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Estimated bytes the state holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries looked at, written, returned or dropped since the backend
    /// was made.
    pub fn work(&self) -> u64 {
        self.work.get()
    }

    pub fn get(&self, state: u32, key: &[u8]) -> Option<Option<&[u8]>> {
        add_work(&self.work, 1);
        let now = self.now_ms;
        let t = self.tables.get(state as usize)?;
        Some(t.values.get(key).filter(|e| t.live(e, now)).map(|e| e.value.as_slice()))
    }

    /// Sets a value. A key already held keeps its allocations (the value is
    /// overwritten in place), so a job updating the same keys allocates
    /// nothing.
    pub fn set(&mut self, state: u32, key: &[u8], value: &[u8]) -> Option<()> {
        add_work(&self.work, 1);
        let now = self.now_ms;
        let t = self.tables.get_mut(state as usize)?;
        if t.keeps_nothing() {
            return Some(());
        }
        if let Some(changes) = &mut t.changes {
            changes.value(key);
        }
        let before = write_entry(&mut t.values, key, value, now, &mut self.bytes, 0);
        if let Some(index) = &mut t.expiry {
            index.written(key, b"", before, now);
        }
        Some(())
    }

    /// Removes a value or a whole map.
    pub fn remove(&mut self, state: u32, key: &[u8]) -> Option<()> {
        add_work(&self.work, 1);
        let t = self.tables.get_mut(state as usize)?;
        if let Some(e) = t.values.remove(key) {
            self.bytes -= key.len() + e.value.len() + ENTRY_OVERHEAD;
            if let Some(index) = &mut t.expiry {
                index.forget(key, b"", e.written_ms);
            }
            if let Some(changes) = &mut t.changes {
                changes.value(key);
            }
        }
        if let Some(fields) = t.maps.remove(key) {
            add_work(&self.work, fields.len());
            for (field, e) in &fields {
                self.bytes -= key.len() + field.len() + e.value.len() + ENTRY_OVERHEAD;
                if let Some(index) = &mut t.expiry {
                    index.forget(key, field, e.written_ms);
                }
            }
            if let Some(changes) = &mut t.changes {
                changes.map_cleared(key);
            }
        }
        Some(())
    }

    pub fn map_get(&self, state: u32, key: &[u8], field: &[u8]) -> Option<Option<&[u8]>> {
        add_work(&self.work, 1);
        let now = self.now_ms;
        let t = self.tables.get(state as usize)?;
        Some(t.maps.get(key).and_then(|m| m.get(field)).filter(|e| t.live(e, now)).map(|e| e.value.as_slice()))
    }

    pub fn map_set(&mut self, state: u32, key: &[u8], field: &[u8], value: &[u8]) -> Option<()> {
        add_work(&self.work, 1);
        let now = self.now_ms;
        let t = self.tables.get_mut(state as usize)?;
        if t.keeps_nothing() {
            return Some(());
        }
        if let Some(changes) = &mut t.changes {
            changes.field(key, field);
        }
        let fields = match t.maps.entry_ref(key) {
            EntryRef::Occupied(e) => e.into_mut(),
            EntryRef::Vacant(e) => e.insert(HashMap::new()),
        };
        let before = write_entry(fields, field, value, now, &mut self.bytes, key.len());
        if let Some(index) = &mut t.expiry {
            index.written(key, field, before, now);
        }
        Some(())
    }

    pub fn map_remove(&mut self, state: u32, key: &[u8], field: &[u8]) -> Option<()> {
        add_work(&self.work, 1);
        let t = self.tables.get_mut(state as usize)?;
        let Some(fields) = t.maps.get_mut(key) else { return Some(()) };
        let Some(e) = fields.remove(field) else { return Some(()) };
        if fields.is_empty() {
            t.maps.remove(key);
        }
        self.bytes -= key.len() + field.len() + e.value.len() + ENTRY_OVERHEAD;
        if let Some(index) = &mut t.expiry {
            index.forget(key, field, e.written_ms);
        }
        if let Some(changes) = &mut t.changes {
            changes.field(key, field);
        }
        Some(())
    }

    /// Adds `delta` to the counter in a map field (absent: 0) and returns
    /// the total; a total of 0 or less removes the field (WIT `map-add`).
    /// `Err` when the field holds something that is not a counter.
    pub fn map_add(&mut self, state: u32, key: &[u8], field: &[u8], delta: i64) -> Option<Result<i64, String>> {
        let current = match self.map_get(state, key, field)? {
            None => 0,
            Some(value) => match counter_value(value) {
                Some(n) => n,
                None => {
                    return Some(Err(format!(
                        "map-add on a field that holds a {}-byte non-counter value",
                        value.len()
                    )));
                }
            },
        };
        let total = current.saturating_add(delta);
        if total > 0 {
            let mut stored = [0u8; 9];
            stored[0] = COUNTER;
            stored[1..].copy_from_slice(&total.to_le_bytes());
            self.map_set(state, key, field, &stored)?;
        } else if current > 0 {
            self.map_remove(state, key, field)?;
        }
        Some(Ok(total))
    }

    /// Live fields of a map, sorted by field so output order is deterministic.
    pub fn map_entries(&self, state: u32, key: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let now = self.now_ms;
        let t = self.tables.get(state as usize)?;
        let mut entries: Vec<_> = t
            .maps
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(_, e)| t.live(e, now))
            .map(|(f, e)| (f.to_vec(), e.value.to_vec()))
            .collect();
        entries.sort_unstable();
        add_work(&self.work, 1 + entries.len());
        Some(entries)
    }

    /// Number of live fields of a map: every entry held is live (see
    /// [`StateBackend::set_now`]), so this is the map's length.
    pub fn map_len(&self, state: u32, key: &[u8]) -> Option<u32> {
        add_work(&self.work, 1);
        let t = self.tables.get(state as usize)?;
        Some(t.maps.get(key).map_or(0, |m| m.len() as u32))
    }

    /// Up to `max` live values (map states: field values), for the SDK's
    /// type check of restored state.
    pub fn sample(&self, state: u32, max: usize) -> Option<Vec<Vec<u8>>> {
        let now = self.now_ms;
        let t = self.tables.get(state as usize)?;
        let values = t.values.values().chain(t.maps.values().flat_map(|m| m.values()));
        let sample: Vec<_> = values.filter(|e| t.live(e, now)).take(max).map(|e| e.value.to_vec()).collect();
        add_work(&self.work, sample.len());
        Some(sample)
    }

    /// Restored states the job did not declare, with their key counts.
    pub fn undeclared(&self) -> Vec<(String, usize)> {
        self.tables.iter().filter(|t| !t.declared).map(|t| (t.name.clone(), t.len())).collect()
    }

    /// Drops the entries of table `t` that are expired at `now_ms`.
    fn expire_table(&mut self, t: usize) {
        let now = self.now_ms;
        let table = &mut self.tables[t];
        if table.expiry_stale {
            add_work(&self.work, table.len());
            table.rebuild_expiry();
        }
        let (Some(ttl), Some(index)) = (table.ttl_ms, &mut table.expiry) else { return };
        let due = index.take_due(now.saturating_sub(ttl as i64));
        add_work(&self.work, due.len());
        for (key, field) in due {
            if table.kind == StateKind::Map {
                let Some(fields) = table.maps.get_mut(&key) else { continue };
                let Some(e) = fields.remove(&field) else { continue };
                if fields.is_empty() {
                    table.maps.remove(&key);
                }
                self.bytes -= key.len() + field.len() + e.value.len() + ENTRY_OVERHEAD;
                if let Some(changes) = &mut table.changes {
                    changes.field(&key, &field);
                }
            } else if let Some(e) = table.values.remove(&key) {
                self.bytes -= key.len() + e.value.len() + ENTRY_OVERHEAD;
                if let Some(changes) = &mut table.changes {
                    changes.value(&key);
                }
            }
        }
    }
}

/// First byte of a counter (WIT `map-add`): then an s64, little-endian.
const COUNTER: u8 = 0xc0;

/// The number in a counter field: its own encoding, or JSON integer text
/// (counters an earlier SDK kept as JSON values).
fn counter_value(value: &[u8]) -> Option<i64> {
    match value.split_first() {
        Some((&COUNTER, rest)) => Some(i64::from_le_bytes(rest.try_into().ok()?)),
        _ => std::str::from_utf8(value).ok()?.trim().parse().ok(),
    }
}

/// Writes `value` under `key` of `entries` at `now`, keeping `bytes` (a
/// new entry also counts `owner_bytes`: a map field its map's key). An entry
/// already held is overwritten in place, keeping its allocation. Returns
/// when the entry was written before, if it was.
fn write_entry(
    entries: &mut HashMap<Bytes, Entry>,
    key: &[u8],
    value: &[u8],
    now: i64,
    bytes: &mut usize,
    owner_bytes: usize,
) -> Option<i64> {
    match entries.entry_ref(key) {
        EntryRef::Occupied(mut e) => {
            let entry = e.get_mut();
            *bytes = *bytes - entry.value.len() + value.len();
            entry.value.clear();
            entry.value.extend_from_slice(value);
            Some(std::mem::replace(&mut entry.written_ms, now))
        }
        EntryRef::Vacant(e) => {
            *bytes += owner_bytes + key.len() + value.len() + ENTRY_OVERHEAD;
            e.insert(Entry { value: Bytes::from_slice(value), written_ms: now });
            None
        }
    }
}

/// Counts `entries` into a backend's work.
fn add_work(work: &Cell<u64>, entries: usize) {
    work.set(work.get() + entries as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_hides_then_drops_entries() {
        let mut s = StateBackend::default();
        let v = s.declare("last", StateKind::Value, Some(1000)).unwrap();
        s.set(v, b"k", b"1").unwrap();
        s.set_now(999);
        assert_eq!(s.get(v, b"k").unwrap(), Some(&b"1"[..]));
        s.set_now(1000);
        assert_eq!(s.get(v, b"k").unwrap(), None);
        assert!(s.table(v).unwrap().is_empty(), "dropped when the clock passed its expiry");
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn keys_and_values_on_both_sides_of_the_inline_size_round_trip() {
        let mut s = StateBackend::default();
        let v = s.declare("v", StateKind::Value, Some(1000)).unwrap();
        let m = s.declare("m", StateKind::Map, None).unwrap();
        let sizes = [0, 1, INLINE_BYTES, INLINE_BYTES + 1, 1000];
        let bytes = |n: usize, fill: u8| vec![fill; n];
        for &k in &sizes {
            for &n in &sizes {
                s.set(v, &bytes(k + 1, b'k'), &bytes(n, b'v')).unwrap();
                s.map_set(m, &bytes(k + 1, b'k'), &bytes(n + 1, b'f'), &bytes(n, b'v')).unwrap();
            }
            // Overwritten with every size in turn (inline to heap and back):
            // the last one is held.
            assert_eq!(s.get(v, &bytes(k + 1, b'k')).unwrap(), Some(&bytes(1000, b'v')[..]));
        }
        s.set(v, &bytes(3, b'k'), b"short again").unwrap();
        let restored = StateBackend::restore(s.image(0));
        for backend in [&s, &restored] {
            assert_eq!(backend.get(v, &bytes(3, b'k')).unwrap(), Some(&b"short again"[..]));
            assert_eq!(backend.get(v, &bytes(INLINE_BYTES + 2, b'k')).unwrap(), Some(&bytes(1000, b'v')[..]));
            assert_eq!(backend.map_len(m, &bytes(INLINE_BYTES + 1, b'k')), Some(sizes.len() as u32));
            let fields = backend.map_entries(m, &bytes(1001, b'k')).unwrap();
            assert_eq!(
                fields.iter().map(|(f, v)| (f.len(), v.len())).collect::<Vec<_>>(),
                [(1, 0), (2, 1), (INLINE_BYTES + 1, INLINE_BYTES), (INLINE_BYTES + 2, INLINE_BYTES + 1), (1001, 1000)]
            );
        }
        assert_eq!(restored.bytes(), s.bytes());
    }

    #[test]
    fn an_entry_written_again_lives_from_its_last_write() {
        let mut s = StateBackend::default();
        let m = s.declare("m", StateKind::Map, Some(100)).unwrap();
        s.map_set(m, b"g", b"a", b"1").unwrap();
        s.map_set(m, b"g", b"b", b"1").unwrap();
        s.set_now(60);
        s.map_set(m, b"g", b"a", b"2").unwrap();
        s.set_now(100);
        assert_eq!(s.map_len(m, b"g"), Some(1), "b expired, a was written again at 60");
        assert_eq!(s.map_get(m, b"g", b"a").unwrap(), Some(&b"2"[..]));
        s.set_now(160);
        assert_eq!(s.map_len(m, b"g"), Some(0));
        assert!(s.table(m).unwrap().maps.is_empty());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let mut s = StateBackend::default();
        let v = s.declare("v", StateKind::Value, Some(0)).unwrap();
        let m = s.declare("m", StateKind::Map, Some(0)).unwrap();
        s.set(v, b"k", b"1").unwrap();
        s.map_set(m, b"k", b"f", b"1").unwrap();
        assert_eq!(s.get(v, b"k").unwrap(), None);
        assert_eq!(s.map_len(m, b"k"), Some(0));
    }

    #[test]
    fn a_ttl_set_on_redeclaration_applies_to_restored_entries() {
        let mut s = StateBackend::default();
        let v = s.declare("v", StateKind::Value, None).unwrap();
        s.set(v, b"old", b"1").unwrap();
        s.set_now(500);
        s.set(v, b"new", b"2").unwrap();
        s.set_now(1000);
        s.declare("v", StateKind::Value, Some(600)).unwrap();
        assert_eq!(s.get(v, b"old").unwrap(), None);
        assert_eq!(s.get(v, b"new").unwrap(), Some(&b"2"[..]));
    }

    #[test]
    fn redeclaring_with_another_kind_is_refused() {
        let mut s = StateBackend::default();
        s.declare("x", StateKind::Value, None).unwrap();
        let err = s.declare("x", StateKind::Map, None).unwrap_err();
        assert!(err.to_string().contains("state `x`"), "{err}");
    }

    #[test]
    fn map_len_and_entries_follow_writes() {
        let mut s = StateBackend::default();
        let m = s.declare("m", StateKind::Map, None).unwrap();
        s.map_set(m, b"g", b"b", b"2").unwrap();
        s.map_set(m, b"g", b"a", b"1").unwrap();
        assert_eq!(s.map_len(m, b"g"), Some(2));
        assert_eq!(s.map_entries(m, b"g").unwrap()[0].0, b"a".to_vec());
        s.map_remove(m, b"g", b"a").unwrap();
        s.map_remove(m, b"g", b"b").unwrap();
        assert!(s.table(m).unwrap().maps.is_empty());
        assert_eq!(s.bytes(), 0, "every byte counted in is counted out");
    }

    #[test]
    fn map_add_keeps_counters_and_removes_them_at_zero() {
        let mut s = StateBackend::default();
        let m = s.declare("m", StateKind::Map, None).unwrap();
        assert_eq!(s.map_add(m, b"g", b"a", 2), Some(Ok(2)));
        assert_eq!(s.map_add(m, b"g", b"b", -1), Some(Ok(-1)), "nothing to take from: nothing kept");
        assert_eq!(s.map_len(m, b"g"), Some(1));
        s.map_set(m, b"g", b"old", b"3").unwrap();
        assert_eq!(s.map_add(m, b"g", b"old", 1), Some(Ok(4)), "JSON integer text of an earlier SDK");
        assert_eq!(s.map_add(m, b"g", b"a", -2), Some(Ok(0)));
        assert_eq!(s.map_len(m, b"g"), Some(1));
        s.map_set(m, b"g", b"text", b"\xc1\x81").unwrap();
        assert!(s.map_add(m, b"g", b"text", 1).unwrap().is_err());
    }

    /// The guard against per-record costs that grow with a group: the
    /// length of a map, a field's read and write cost the same work at 10
    /// fields as at 100,000.
    #[test]
    fn map_operations_cost_the_same_whatever_the_map_size() {
        let work_per_op = |fields: u32| {
            let mut s = StateBackend::default();
            let m = s.declare("m", StateKind::Map, Some(3_600_000)).unwrap();
            for f in 0..fields {
                s.map_set(m, b"g", &f.to_le_bytes(), b"1").unwrap();
            }
            let before = s.work();
            s.map_len(m, b"g").unwrap();
            s.map_get(m, b"g", &0u32.to_le_bytes()).unwrap();
            s.map_set(m, b"g", &0u32.to_le_bytes(), b"2").unwrap();
            s.map_remove(m, b"g", &1u32.to_le_bytes()).unwrap();
            s.set_now(1);
            s.work() - before
        };
        assert_eq!(work_per_op(10), work_per_op(100_000));
    }
}
