//! Host-owned keyed state of one task: named value and map states, with a
//! per-state TTL. Jobs reach it through the `state` WIT interface; snapshots
//! read and restore it whole.

use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use crate::wasm::bindings::StateKind;

/// A stored value and when it was last written (processing time, ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub written_ms: i64,
}

/// One named state.
#[derive(Debug, Clone)]
pub struct StateTable {
    pub name: String,
    pub kind: StateKind,
    pub ttl_ms: Option<u64>,
    pub values: HashMap<Vec<u8>, Entry>,
    pub maps: HashMap<Vec<u8>, HashMap<Vec<u8>, Entry>>,
    /// Whether the running job declared it (a restored state the job no
    /// longer declares is "non-restored" after an upgrade).
    pub declared: bool,
    /// Keys written or removed since the last snapshot, when incremental
    /// snapshots are on (`None`: not tracked).
    pub changed: Option<HashSet<Vec<u8>>>,
}

/// A state table as a snapshot keeps it: live entries only, as (key,
/// value, written at) and, for map states, (key, fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateTableImage {
    pub name: String,
    pub map: bool,
    pub ttl_ms: Option<u64>,
    pub values: Vec<EntryImage>,
    pub maps: Vec<(Vec<u8>, Vec<EntryImage>)>,
    /// In an incremental image: keys removed (or expired) since the base.
    pub removed: Vec<Vec<u8>>,
}

/// (key or field, value, written at ms).
pub type EntryImage = (Vec<u8>, Vec<u8>, i64);

impl StateTable {
    fn touch(&mut self, key: &[u8]) {
        if let Some(changed) = &mut self.changed {
            changed.insert(key.to_vec());
        }
    }

    fn live(&self, entry: &Entry, now_ms: i64) -> bool {
        self.ttl_ms.is_none_or(|ttl| now_ms.saturating_sub(entry.written_ms) < ttl as i64)
    }

    /// Number of keys held (values, or maps).
    pub fn len(&self) -> usize {
        self.values.len() + self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// Record changed keys, for incremental snapshots.
    track_changes: bool,
}

impl StateBackend {
    /// Declares a state or re-opens an existing one (after a restore).
    pub fn declare(&mut self, name: &str, kind: StateKind, ttl_ms: Option<u64>) -> Result<u32, DeclareError> {
        if let Some(i) = self.tables.iter().position(|t| t.name == name) {
            let table = &mut self.tables[i];
            if table.kind != kind {
                return Err(DeclareError::KindChanged { name: name.to_owned(), declared: kind, existing: table.kind });
            }
            table.ttl_ms = ttl_ms;
            table.declared = true;
            return Ok(i as u32);
        }
        self.tables.push(StateTable {
            name: name.to_owned(),
            kind,
            ttl_ms,
            values: HashMap::new(),
            maps: HashMap::new(),
            declared: true,
            changed: self.track_changes.then(HashSet::new),
        });
        Ok(self.tables.len() as u32 - 1)
    }

    /// The table behind a handle. A handle the host never gave out is a guest
    /// bug, reported as a trap by the caller.
    pub fn table(&self, state: u32) -> Option<&StateTable> {
        self.tables.get(state as usize)
    }

    fn table_mut(&mut self, state: u32) -> Option<&mut StateTable> {
        self.tables.get_mut(state as usize)
    }

    pub fn tables(&self) -> &[StateTable] {
        &self.tables
    }

    pub fn table_by_name(&self, name: &str) -> Option<&StateTable> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn get(&self, state: u32, key: &[u8], now_ms: i64) -> Option<Option<&[u8]>> {
        let t = self.table(state)?;
        Some(t.values.get(key).filter(|e| t.live(e, now_ms)).map(|e| e.value.as_slice()))
    }

    pub fn set(&mut self, state: u32, key: Vec<u8>, value: Vec<u8>, now_ms: i64) -> Option<()> {
        let t = self.table_mut(state)?;
        t.touch(&key);
        t.values.insert(key, Entry { value, written_ms: now_ms });
        Some(())
    }

    /// `set` from borrowed bytes: a key already held keeps its allocations
    /// (the value is overwritten in place), so a job updating the same keys
    /// allocates nothing.
    pub fn set_from(&mut self, state: u32, key: &[u8], value: &[u8], now_ms: i64) -> Option<()> {
        let t = self.table_mut(state)?;
        if t.changed.as_ref().is_some_and(|changed| !changed.contains(key)) {
            t.touch(key);
        }
        match t.values.entry_ref(key) {
            hashbrown::hash_map::EntryRef::Occupied(mut e) => {
                let entry = e.get_mut();
                entry.value.clear();
                entry.value.extend_from_slice(value);
                entry.written_ms = now_ms;
            }
            hashbrown::hash_map::EntryRef::Vacant(e) => {
                e.insert(Entry { value: value.to_vec(), written_ms: now_ms });
            }
        }
        Some(())
    }

    /// Removes a value or a whole map.
    pub fn remove(&mut self, state: u32, key: &[u8]) -> Option<()> {
        let t = self.table_mut(state)?;
        t.touch(key);
        t.values.remove(key);
        t.maps.remove(key);
        Some(())
    }

    pub fn map_get(&self, state: u32, key: &[u8], field: &[u8], now_ms: i64) -> Option<Option<&[u8]>> {
        let t = self.table(state)?;
        Some(t.maps.get(key).and_then(|m| m.get(field)).filter(|e| t.live(e, now_ms)).map(|e| e.value.as_slice()))
    }

    pub fn map_set(&mut self, state: u32, key: Vec<u8>, field: Vec<u8>, value: Vec<u8>, now_ms: i64) -> Option<()> {
        let t = self.table_mut(state)?;
        t.touch(&key);
        t.maps.entry(key).or_default().insert(field, Entry { value, written_ms: now_ms });
        Some(())
    }

    pub fn map_remove(&mut self, state: u32, key: &[u8], field: &[u8]) -> Option<()> {
        let t = self.table_mut(state)?;
        t.touch(key);
        if let Some(map) = t.maps.get_mut(key) {
            map.remove(field);
            if map.is_empty() {
                t.maps.remove(key);
            }
        }
        Some(())
    }

    /// Live fields of a map, sorted by field so output order is deterministic.
    pub fn map_entries(&self, state: u32, key: &[u8], now_ms: i64) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let t = self.table(state)?;
        let mut entries: Vec<_> = t
            .maps
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(_, e)| t.live(e, now_ms))
            .map(|(f, e)| (f.clone(), e.value.clone()))
            .collect();
        entries.sort_unstable();
        Some(entries)
    }

    pub fn map_len(&self, state: u32, key: &[u8], now_ms: i64) -> Option<u32> {
        let t = self.table(state)?;
        Some(t.maps.get(key).map_or(0, |m| m.values().filter(|e| t.live(e, now_ms)).count() as u32))
    }

    /// The live state, for a full snapshot (expired entries are left out).
    /// Starts (or restarts) change tracking from this point.
    pub fn image(&mut self, now_ms: i64) -> Vec<StateTableImage> {
        self.track_changes = true;
        self.tables
            .iter_mut()
            .filter(|t| t.declared)
            .map(|t| {
                t.changed = Some(HashSet::new());
                let values = t.values.keys().cloned().collect::<Vec<_>>();
                let maps = t.maps.keys().cloned().collect::<Vec<_>>();
                let mut image = image_of(t, values.iter().chain(&maps), now_ms);
                image.removed.clear(); // a full image has no base to remove from
                image
            })
            .collect()
    }

    /// Only what changed since the previous image (full or incremental):
    /// changed keys with their live entries, and the keys now gone. `None`
    /// when changes were not tracked (no full image taken yet).
    pub fn image_changes(&mut self, now_ms: i64) -> Option<Vec<StateTableImage>> {
        if !self.track_changes {
            return None;
        }
        let mut images = Vec::new();
        for t in self.tables.iter_mut().filter(|t| t.declared) {
            let changed = t.changed.replace(HashSet::new()).unwrap_or_default();
            images.push(image_of(t, changed.iter(), now_ms));
        }
        Some(images)
    }

    /// State restored from a snapshot; the job re-declares each by name.
    pub fn restore(images: Vec<StateTableImage>) -> Self {
        let entries = |list: Vec<EntryImage>| {
            list.into_iter().map(|(k, value, written_ms)| (k, Entry { value, written_ms })).collect()
        };
        let tables = images
            .into_iter()
            .map(|i| StateTable {
                name: i.name,
                kind: if i.map { StateKind::Map } else { StateKind::Value },
                ttl_ms: i.ttl_ms,
                values: entries(i.values),
                maps: i.maps.into_iter().map(|(k, fields)| (k, entries(fields))).collect(),
                declared: false,
                changed: None,
            })
            .collect();
        StateBackend { tables, track_changes: false }
    }

    /// Applies an incremental image on top of restored state.
    pub fn apply_changes(&mut self, images: Vec<StateTableImage>) {
        for image in images {
            let i = match self.tables.iter().position(|t| t.name == image.name) {
                Some(i) => i,
                None => {
                    self.tables.extend(
                        StateBackend::restore(vec![StateTableImage {
                            values: Vec::new(),
                            maps: Vec::new(),
                            removed: Vec::new(),
                            ..image.clone()
                        }])
                        .tables,
                    );
                    self.tables.len() - 1
                }
            };
            let t = &mut self.tables[i];
            t.ttl_ms = image.ttl_ms;
            for key in image.removed {
                t.values.remove(&key);
                t.maps.remove(&key);
            }
            for (key, value, written_ms) in image.values {
                t.values.insert(key, Entry { value, written_ms });
            }
            for (key, fields) in image.maps {
                let fields =
                    fields.into_iter().map(|(f, value, written_ms)| (f, Entry { value, written_ms })).collect();
                t.maps.insert(key, fields);
            }
        }
    }

    /// Every table whole (expired entries included), for materialising a
    /// chain of incremental snapshots.
    pub fn into_images(self) -> Vec<StateTableImage> {
        let entries = |m: HashMap<Vec<u8>, Entry>| m.into_iter().map(|(k, e)| (k, e.value, e.written_ms)).collect();
        self.tables
            .into_iter()
            .map(|t| StateTableImage {
                name: t.name,
                map: t.kind == StateKind::Map,
                ttl_ms: t.ttl_ms,
                values: entries(t.values),
                maps: t.maps.into_iter().map(|(k, m)| (k, entries(m))).collect(),
                removed: Vec::new(),
            })
            .collect()
    }

    /// Restored states the job did not declare, with their key counts.
    pub fn undeclared(&self) -> Vec<(String, usize)> {
        self.tables.iter().filter(|t| !t.declared).map(|t| (t.name.clone(), t.len())).collect()
    }

    /// Up to `max` live values (map states: field values), for the SDK's
    /// type check of restored state.
    pub fn sample(&self, state: u32, max: usize, now_ms: i64) -> Option<Vec<Vec<u8>>> {
        let t = self.table(state)?;
        let values = t.values.values().chain(t.maps.values().flat_map(|m| m.values()));
        Some(values.filter(|e| t.live(e, now_ms)).take(max).map(|e| e.value.clone()).collect())
    }

    /// Drops every expired entry, so it is neither visible nor snapshotted.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let mut dropped = 0;
        for t in &mut self.tables {
            let Some(ttl) = t.ttl_ms else { continue };
            let live = |e: &Entry| now_ms.saturating_sub(e.written_ms) < ttl as i64;
            let before = t.values.len();
            let changed = &mut t.changed;
            t.values.retain(|k, e| {
                let keep = live(e);
                if let (false, Some(changed)) = (keep, changed.as_mut()) {
                    changed.insert(k.clone());
                }
                keep
            });
            dropped += before - t.values.len();
            t.maps.retain(|k, map| {
                let before = map.len();
                map.retain(|_, e| live(e));
                dropped += before - map.len();
                if before != map.len()
                    && let Some(changed) = changed.as_mut()
                {
                    changed.insert(k.clone());
                }
                !map.is_empty()
            });
        }
        dropped
    }
}

/// The image of `keys` of a table: live entries, and keys with nothing
/// live left as removed.
fn image_of<'a>(t: &StateTable, keys: impl Iterator<Item = &'a Vec<u8>>, now_ms: i64) -> StateTableImage {
    let live = |m: &HashMap<Vec<u8>, Entry>| -> Vec<EntryImage> {
        m.iter().filter(|(_, e)| t.live(e, now_ms)).map(|(k, e)| (k.clone(), e.value.clone(), e.written_ms)).collect()
    };
    let mut image = StateTableImage {
        name: t.name.clone(),
        map: t.kind == StateKind::Map,
        ttl_ms: t.ttl_ms,
        values: Vec::new(),
        maps: Vec::new(),
        removed: Vec::new(),
    };
    for key in keys {
        if let Some(e) = t.values.get(key).filter(|e| t.live(e, now_ms)) {
            image.values.push((key.clone(), e.value.clone(), e.written_ms));
        } else if let Some(fields) = t.maps.get(key).map(&live).filter(|f| !f.is_empty()) {
            image.maps.push((key.clone(), fields));
        } else {
            image.removed.push(key.clone());
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_hides_then_drops_entries() {
        let mut s = StateBackend::default();
        let v = s.declare("last", StateKind::Value, Some(1000)).unwrap();
        s.set(v, b"k".to_vec(), b"1".to_vec(), 0).unwrap();
        assert_eq!(s.get(v, b"k", 999).unwrap(), Some(&b"1"[..]));
        assert_eq!(s.get(v, b"k", 1000).unwrap(), None);
        assert_eq!(s.expire(1000), 1);
        assert!(s.table(v).unwrap().is_empty());
    }

    #[test]
    fn images_leave_out_expired_and_undeclared_state() {
        let mut s = StateBackend::default();
        let short = s.declare("short", StateKind::Value, Some(1000)).unwrap();
        let long = s.declare("long", StateKind::Map, None).unwrap();
        s.set(short, b"old".to_vec(), b"1".to_vec(), 0).unwrap();
        s.set(short, b"new".to_vec(), b"2".to_vec(), 900).unwrap();
        s.map_set(long, b"k".to_vec(), b"f".to_vec(), b"3".to_vec(), 0).unwrap();
        let image = s.image(1500);
        assert_eq!(image[0].values, vec![(b"new".to_vec(), b"2".to_vec(), 900)], "expired keys are not snapshotted");
        assert_eq!(image[1].maps.len(), 1);

        let mut restored = StateBackend::restore(image);
        assert_eq!(restored.undeclared().len(), 2);
        let h = restored.declare("long", StateKind::Map, None).unwrap();
        assert_eq!(restored.map_get(h, b"k", b"f", 2000), Some(Some(&b"3"[..])));
        assert_eq!(restored.undeclared(), vec![("short".to_owned(), 1)]);
        assert_eq!(restored.image(2000).len(), 1, "a state the job dropped is not snapshotted again");
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
        s.map_set(m, b"g".to_vec(), b"b".to_vec(), b"2".to_vec(), 0).unwrap();
        s.map_set(m, b"g".to_vec(), b"a".to_vec(), b"1".to_vec(), 0).unwrap();
        assert_eq!(s.map_len(m, b"g", 0), Some(2));
        assert_eq!(s.map_entries(m, b"g", 0).unwrap()[0].0, b"a".to_vec());
        s.map_remove(m, b"g", b"a").unwrap();
        s.map_remove(m, b"g", b"b").unwrap();
        assert!(s.table(m).unwrap().maps.is_empty());
    }
}
