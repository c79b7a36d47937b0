//! Entries of a state with a TTL, ordered by when they were last written,
//! so the ones that expire are found without looking at any other: a step
//! whose clock moved drops exactly the entries due, in time proportional
//! to their number, and every entry still held is live.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashSet};

use super::Bytes;

/// An entry of a table: (key, field); the field is empty in a value state.
pub(super) type Slot = (Bytes, Bytes);

/// A borrowed [`Slot`], for lookups without copying the bytes.
struct SlotRef<'a>(&'a [u8], &'a [u8]);

impl Hash for SlotRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The same bytes as `(Bytes, Bytes)` hashes: each as a slice.
        (self.0, self.1).hash(state);
    }
}

impl Equivalent<Slot> for SlotRef<'_> {
    fn equivalent(&self, slot: &Slot) -> bool {
        self.0 == slot.0.as_slice() && self.1 == slot.1.as_slice()
    }
}

/// Write time (processing time, ms) → the entries last written then.
#[derive(Debug, Clone, Default)]
pub(super) struct ExpiryIndex {
    by_time: BTreeMap<i64, HashSet<Slot>>,
}

impl ExpiryIndex {
    /// Records that (key, field) was written at `now`, having been written
    /// at `before` (`None`: it is new).
    pub(super) fn written(&mut self, key: &[u8], field: &[u8], before: Option<i64>, now: i64) {
        if before == Some(now) {
            return;
        }
        if let Some(before) = before {
            self.forget(key, field, before);
        }
        self.by_time.entry(now).or_default().insert((Bytes::from_slice(key), Bytes::from_slice(field)));
    }

    /// Forgets (key, field), last written at `written`.
    pub(super) fn forget(&mut self, key: &[u8], field: &[u8], written: i64) {
        if let Some(slots) = self.by_time.get_mut(&written) {
            slots.remove(&SlotRef(key, field));
            if slots.is_empty() {
                self.by_time.remove(&written);
            }
        }
    }

    /// Takes every entry last written at or before `cutoff`.
    pub(super) fn take_due(&mut self, cutoff: i64) -> Vec<Slot> {
        let mut due = Vec::new();
        while let Some(entry) = self.by_time.first_entry() {
            if *entry.key() > cutoff {
                break;
            }
            due.extend(entry.remove());
        }
        due
    }

    pub(super) fn clear(&mut self) {
        self.by_time.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_written_again_moves_to_its_new_time() {
        let mut index = ExpiryIndex::default();
        index.written(b"k", b"", None, 10);
        index.written(b"j", b"f", None, 10);
        index.written(b"k", b"", Some(10), 20);
        assert_eq!(index.take_due(15), vec![(Bytes::from_slice(b"j"), Bytes::from_slice(b"f"))]);
        assert!(index.take_due(15).is_empty());
        index.forget(b"k", b"", 20);
        assert!(index.take_due(i64::MAX).is_empty(), "a forgotten entry is not due");
    }
}
