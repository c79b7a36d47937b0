//! Host-owned keyed state of one task: named value and map states, with a
//! per-state TTL. Jobs reach it through the `state` WIT interface; snapshots
//! read and restore it whole.

use hashbrown::HashMap;
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
}

/// (key or field, value, written at ms).
pub type EntryImage = (Vec<u8>, Vec<u8>, i64);

impl StateTable {
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
        t.values.insert(key, Entry { value, written_ms: now_ms });
        Some(())
    }

    /// Removes a value or a whole map.
    pub fn remove(&mut self, state: u32, key: &[u8]) -> Option<()> {
        let t = self.table_mut(state)?;
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
        t.maps.entry(key).or_default().insert(field, Entry { value, written_ms: now_ms });
        Some(())
    }

    pub fn map_remove(&mut self, state: u32, key: &[u8], field: &[u8]) -> Option<()> {
        let t = self.table_mut(state)?;
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

    /// The live state, for a snapshot (expired entries are left out).
    pub fn image(&self, now_ms: i64) -> Vec<StateTableImage> {
        let entries = |t: &StateTable, m: &HashMap<Vec<u8>, Entry>| {
            m.iter()
                .filter(|(_, e)| t.live(e, now_ms))
                .map(|(k, e)| (k.clone(), e.value.clone(), e.written_ms))
                .collect()
        };
        // States the job no longer declares (allowed non-restored) are dropped.
        self.tables
            .iter()
            .filter(|t| t.declared)
            .map(|t| StateTableImage {
                name: t.name.clone(),
                map: t.kind == StateKind::Map,
                ttl_ms: t.ttl_ms,
                values: entries(t, &t.values),
                maps: t
                    .maps
                    .iter()
                    .map(|(k, m)| (k.clone(), entries(t, m)))
                    .filter(|(_, fields): &(_, Vec<_>)| !fields.is_empty())
                    .collect(),
            })
            .collect()
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
            })
            .collect();
        StateBackend { tables }
    }

    /// Restored states the job did not declare, with their key counts.
    pub fn undeclared(&self) -> Vec<(String, usize)> {
        self.tables.iter().filter(|t| !t.declared).map(|t| (t.name.clone(), t.len())).collect()
    }

    /// Drops every expired entry, so it is neither visible nor snapshotted.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let mut dropped = 0;
        for t in &mut self.tables {
            let Some(ttl) = t.ttl_ms else { continue };
            let live = |e: &Entry| now_ms.saturating_sub(e.written_ms) < ttl as i64;
            let before = t.values.len();
            t.values.retain(|_, e| live(e));
            dropped += before - t.values.len();
            t.maps.retain(|_, map| {
                let before = map.len();
                map.retain(|_, e| live(e));
                dropped += before - map.len();
                !map.is_empty()
            });
        }
        dropped
    }
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
