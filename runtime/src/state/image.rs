//! State as snapshots keep it: whole (a full image) or as the changes since
//! the previous image (an incremental one), and restoring from either.

use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use super::{Bytes, Changes, ENTRY_OVERHEAD, Entry, StateBackend, StateTable, add_work};
use crate::wasm::bindings::StateKind;

/// A state table as a snapshot keeps it: live entries only.
///
/// In a full image `values` and `maps` hold everything. In an incremental
/// image they hold what was written since the base (for a map, the fields
/// written), `removed` the keys removed since (values, or whole maps) and
/// `removed_fields` the map fields removed; restoring applies `removed`
/// first, then `removed_fields`, then the writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateTableImage {
    pub name: String,
    pub map: bool,
    pub ttl_ms: Option<u64>,
    pub values: Vec<EntryImage>,
    pub maps: Vec<(Vec<u8>, Vec<EntryImage>)>,
    pub removed: Vec<Vec<u8>>,
    pub removed_fields: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
}

/// (key or field, value, written at ms).
pub type EntryImage = (Vec<u8>, Vec<u8>, i64);

impl StateTableImage {
    fn empty(t: &StateTable) -> Self {
        StateTableImage {
            name: t.name.clone(),
            map: t.kind == StateKind::Map,
            ttl_ms: t.ttl_ms,
            values: Vec::new(),
            maps: Vec::new(),
            removed: Vec::new(),
            removed_fields: Vec::new(),
        }
    }
}

impl StateBackend {
    /// The live state, for a full snapshot at `now_ms` (expired entries are
    /// left out). Starts (or restarts) change tracking from this point.
    pub fn image(&mut self, now_ms: i64) -> Vec<StateTableImage> {
        self.set_now(now_ms);
        self.track_changes = true;
        let mut images = Vec::new();
        for t in self.tables.iter_mut().filter(|t| t.declared) {
            t.changes = Some(Changes::default());
            let live = |e: &&Entry| t.live(e, now_ms);
            let mut image = StateTableImage::empty(t);
            image.values = t
                .values
                .iter()
                .filter(|(_, e)| live(e))
                .map(|(k, e)| (k.to_vec(), e.value.to_vec(), e.written_ms))
                .collect();
            for (key, fields) in &t.maps {
                let fields: Vec<EntryImage> = fields
                    .iter()
                    .filter(|(_, e)| live(e))
                    .map(|(f, e)| (f.to_vec(), e.value.to_vec(), e.written_ms))
                    .collect();
                add_work(&self.work, fields.len());
                if !fields.is_empty() {
                    image.maps.push((key.to_vec(), fields));
                }
            }
            add_work(&self.work, image.values.len());
            images.push(image);
        }
        images
    }

    /// Only what changed since the previous image (full or incremental), at
    /// `now_ms`: the values and map fields written, with their live entries,
    /// and those gone. `None` when changes were not tracked (no full image
    /// taken yet).
    pub fn image_changes(&mut self, now_ms: i64) -> Option<Vec<StateTableImage>> {
        if !self.track_changes {
            return None;
        }
        self.set_now(now_ms);
        let mut images = Vec::new();
        for t in self.tables.iter_mut().filter(|t| t.declared) {
            let changes = t.changes.replace(Changes::default()).unwrap_or_default();
            let mut image = StateTableImage::empty(t);
            for key in changes.values {
                match t.values.get(&key).filter(|e| t.live(e, now_ms)) {
                    Some(e) => image.values.push((key.to_vec(), e.value.to_vec(), e.written_ms)),
                    None => image.removed.push(key.to_vec()),
                }
            }
            for (key, map) in changes.maps {
                let held = t.maps.get(&key);
                let (mut set, mut gone) = (Vec::new(), Vec::new());
                for field in map.fields {
                    match held.and_then(|m| m.get(&field)).filter(|e| t.live(e, now_ms)) {
                        Some(e) => set.push((field.to_vec(), e.value.to_vec(), e.written_ms)),
                        None => gone.push(field.to_vec()),
                    }
                }
                add_work(&self.work, set.len() + gone.len());
                if map.cleared {
                    image.removed.push(key.to_vec());
                }
                if !gone.is_empty() && !map.cleared {
                    image.removed_fields.push((key.to_vec(), gone));
                }
                if !set.is_empty() {
                    image.maps.push((key.to_vec(), set));
                }
            }
            add_work(&self.work, image.values.len() + image.removed.len());
            images.push(image);
        }
        Some(images)
    }

    /// State restored from a snapshot; the job re-declares each by name.
    pub fn restore(images: Vec<StateTableImage>) -> Self {
        let mut backend = StateBackend::default();
        backend.apply_changes(images);
        backend
    }

    /// Applies an image on top of the state: an incremental one onto the
    /// state of its base, or a full one onto nothing.
    pub fn apply_changes(&mut self, images: Vec<StateTableImage>) {
        for image in images {
            let i = match self.tables.iter().position(|t| t.name == image.name) {
                Some(i) => i,
                None => {
                    let kind = if image.map { StateKind::Map } else { StateKind::Value };
                    let mut table = StateTable::new(&image.name, kind, image.ttl_ms, false);
                    table.declared = false;
                    self.tables.push(table);
                    self.tables.len() - 1
                }
            };
            for key in image.removed {
                self.remove(i as u32, &key);
            }
            for (key, fields) in image.removed_fields {
                for field in fields {
                    self.map_remove(i as u32, &key, &field);
                }
            }
            let t = &mut self.tables[i];
            t.ttl_ms = image.ttl_ms;
            for (key, value, written_ms) in image.values {
                let other = key.len() + ENTRY_OVERHEAD;
                self.bytes += other + value.len();
                if let Some(old) = t.values.insert(inline(key), Entry { value: inline(value), written_ms }) {
                    self.bytes -= other + old.value.len();
                }
            }
            for (key, fields) in image.maps {
                let map = t.maps.entry_ref(key.as_slice()).or_default();
                for (field, value, written_ms) in fields {
                    let other = key.len() + field.len() + ENTRY_OVERHEAD;
                    self.bytes += other + value.len();
                    if let Some(old) = map.insert(inline(field), Entry { value: inline(value), written_ms }) {
                        self.bytes -= other + old.value.len();
                    }
                }
            }
            // Indexed again by write time when the clock is next set.
            t.expiry_stale = t.ttl_ms.is_some();
        }
    }

    /// Every table whole (expired entries included), for materialising a
    /// chain of incremental snapshots.
    pub fn into_images(self) -> Vec<StateTableImage> {
        let entries = |m: HashMap<Bytes, Entry>| {
            m.into_iter().map(|(k, e)| (k.into_vec(), e.value.into_vec(), e.written_ms)).collect::<Vec<_>>()
        };
        self.tables
            .into_iter()
            .map(|t| StateTableImage {
                name: t.name,
                map: t.kind == StateKind::Map,
                ttl_ms: t.ttl_ms,
                values: entries(t.values),
                maps: t.maps.into_iter().map(|(k, m)| (k.into_vec(), entries(m))).collect(),
                removed: Vec::new(),
                removed_fields: Vec::new(),
            })
            .collect()
    }
}

/// Restored bytes as the tables hold them: inline when short, whatever
/// the vector's spare capacity (`SmallVec::from_vec` keeps any heap buffer
/// over the inline size).
fn inline(bytes: Vec<u8>) -> Bytes {
    if bytes.len() <= super::INLINE_BYTES { Bytes::from_slice(&bytes) } else { Bytes::from_vec(bytes) }
}

/// A state table image of snapshot formats 1 and 2, where an incremental
/// image held changed maps whole (each replacing the map restored so far).
#[derive(Debug, Clone, Deserialize)]
pub struct StateTableImageV2 {
    name: String,
    map: bool,
    ttl_ms: Option<u64>,
    values: Vec<EntryImage>,
    maps: Vec<(Vec<u8>, Vec<EntryImage>)>,
    removed: Vec<Vec<u8>>,
}

impl StateTableImageV2 {
    /// The same image today: a map it held whole replaces the map, that is,
    /// removes it before its fields are written.
    pub fn upgrade(self, incremental: bool) -> StateTableImage {
        let mut removed = self.removed;
        if incremental {
            let replaced: HashSet<Vec<u8>> = removed.iter().cloned().collect();
            removed.extend(self.maps.iter().map(|(k, _)| k).filter(|k| !replaced.contains(*k)).cloned());
        }
        StateTableImage {
            name: self.name,
            map: self.map,
            ttl_ms: self.ttl_ms,
            values: self.values,
            maps: self.maps,
            removed,
            removed_fields: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_leave_out_expired_and_undeclared_state() {
        let mut s = StateBackend::default();
        let short = s.declare("short", StateKind::Value, Some(1000)).unwrap();
        let long = s.declare("long", StateKind::Map, None).unwrap();
        s.set(short, b"old", b"1").unwrap();
        s.set_now(900);
        s.set(short, b"new", b"2").unwrap();
        s.set_now(0);
        s.map_set(long, b"k", b"f", b"3").unwrap();
        let image = s.image(1500);
        assert_eq!(image[0].values, vec![(b"new".to_vec(), b"2".to_vec(), 900)], "expired keys are not snapshotted");
        assert_eq!(image[1].maps.len(), 1);

        let mut restored = StateBackend::restore(image);
        assert_eq!(restored.undeclared().len(), 2);
        let h = restored.declare("long", StateKind::Map, None).unwrap();
        restored.set_now(1800);
        assert_eq!(restored.map_get(h, b"k", b"f"), Some(Some(&b"3"[..])));
        assert_eq!(restored.undeclared(), vec![("short".to_owned(), 1)]);
        assert_eq!(restored.image(1800).len(), 1, "a state the job dropped is not snapshotted again");
    }

    /// An incremental image of a map holds the fields that changed, not the
    /// map: its size follows the changes, whatever the map's size.
    #[test]
    fn incremental_images_hold_changed_fields_only() {
        let mut s = StateBackend::default();
        let m = s.declare("m", StateKind::Map, None).unwrap();
        for f in 0..1000u32 {
            s.map_set(m, b"g", &f.to_le_bytes(), b"1").unwrap();
        }
        s.map_set(m, b"gone", b"x", b"1").unwrap();
        let full = s.image(0);
        s.map_set(m, b"g", &1u32.to_le_bytes(), b"2").unwrap();
        s.map_remove(m, b"g", &2u32.to_le_bytes()).unwrap();
        s.remove(m, b"gone").unwrap();
        let delta = s.image_changes(0).unwrap();
        assert_eq!(delta[0].maps, vec![(b"g".to_vec(), vec![(1u32.to_le_bytes().to_vec(), b"2".to_vec(), 0)])]);
        assert_eq!(delta[0].removed_fields, vec![(b"g".to_vec(), vec![2u32.to_le_bytes().to_vec()])]);
        assert_eq!(delta[0].removed, vec![b"gone".to_vec()]);

        let mut restored = StateBackend::restore(full);
        restored.apply_changes(delta);
        let h = restored.declare("m", StateKind::Map, None).unwrap();
        assert_eq!(restored.map_len(h, b"g"), Some(999));
        assert_eq!(restored.map_get(h, b"g", &1u32.to_le_bytes()), Some(Some(&b"2"[..])));
        assert_eq!(restored.map_len(h, b"gone"), Some(0));
        assert_eq!(restored.bytes(), s.bytes(), "the restored size estimate matches the original's");
    }

    #[test]
    fn a_map_cleared_then_written_again_restores_with_only_its_new_fields() {
        let mut s = StateBackend::default();
        let m = s.declare("m", StateKind::Map, None).unwrap();
        s.map_set(m, b"g", b"a", b"1").unwrap();
        let full = s.image(0);
        s.remove(m, b"g").unwrap();
        s.map_set(m, b"g", b"b", b"2").unwrap();
        let mut restored = StateBackend::restore(full);
        restored.apply_changes(s.image_changes(0).unwrap());
        let h = restored.declare("m", StateKind::Map, None).unwrap();
        assert_eq!(restored.map_entries(h, b"g").unwrap(), vec![(b"b".to_vec(), b"2".to_vec())]);
    }

    #[test]
    fn format_2_incremental_maps_replace_the_map() {
        let old = StateTableImageV2 {
            name: "m".into(),
            map: true,
            ttl_ms: None,
            values: Vec::new(),
            maps: vec![(b"g".to_vec(), vec![(b"b".to_vec(), b"2".to_vec(), 0)])],
            removed: Vec::new(),
        };
        let mut s = StateBackend::default();
        let m = s.declare("m", StateKind::Map, None).unwrap();
        s.map_set(m, b"g", b"a", b"1").unwrap();
        s.apply_changes(vec![old.upgrade(true)]);
        assert_eq!(s.map_entries(m, b"g").unwrap(), vec![(b"b".to_vec(), b"2".to_vec())]);
    }
}
