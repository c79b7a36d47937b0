//! What a job hands the host in bulk at the end of a call: emitted rows and
//! value-state writes, each kept column by column in the WIT shape (one
//! byte buffer plus lists of primitives), so a batch's output costs one
//! host call and one copy per column, with no allocation per row or write.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;

use crate::__bindings::sluice::job::output::{RowOp, Rows};
use crate::__bindings::sluice::job::state::Writes;
use crate::export::NO_KEY;

/// Origin of a row emitted while opening (`rows.origins`).
const NO_ORIGIN: u32 = u32::MAX;
/// `rows.flags` bit: the row is a delete.
const ROW_DELETE: u8 = 1;
/// `rows.flags` bit: the row's spans are in the input batch's data.
const ROW_FORWARDED: u8 = 2;
/// `rows.flags` bit: the row is of the batch as a whole (`finish_batch`).
const ROW_OF_BATCH: u8 = 4;
/// Value length of a write that removes its key (`writes.spans`).
const REMOVED: u32 = u32::MAX;

/// A row's bytes: its own (appended to the buffer), or an input record's.
pub(crate) enum RowBytes<'a> {
    /// Key bytes; the value is then written by the caller.
    Own(Option<&'a [u8]>),
    /// The four spans of a record of the batch being processed.
    Forwarded([u32; 4]),
}

/// Emitted rows not yet handed to the host.
pub(crate) struct RowBuffer {
    pub(crate) rows: Rows,
}

impl Default for RowBuffer {
    fn default() -> Self {
        let rows =
            Rows { data: Vec::new(), sinks: Vec::new(), flags: Vec::new(), spans: Vec::new(), origins: Vec::new() };
        RowBuffer { rows }
    }
}

impl RowBuffer {
    pub(crate) fn len(&self) -> usize {
        self.rows.sinks.len()
    }

    pub(crate) fn data_len(&self) -> usize {
        self.rows.data.len()
    }

    /// Appends a row. For [`RowBytes::Own`], `value` writes the value
    /// bytes at the end of the given buffer; if it fails, the row is not
    /// added.
    pub(crate) fn push<E>(
        &mut self,
        sink: u32,
        op: RowOp,
        origin: Option<u32>,
        of_batch: bool,
        bytes: RowBytes<'_>,
        value: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let r = &mut self.rows;
        let mut flags = if op == RowOp::Delete { ROW_DELETE } else { 0 };
        if of_batch {
            flags |= ROW_OF_BATCH;
        }
        let spans = match bytes {
            RowBytes::Forwarded(spans) => {
                flags |= ROW_FORWARDED;
                spans
            }
            RowBytes::Own(key) => {
                let start = r.data.len();
                let (key_start, key_len) = match key {
                    Some(key) => {
                        r.data.extend_from_slice(key);
                        (start as u32, key.len() as u32)
                    }
                    None => (0, NO_KEY),
                };
                let value_start = r.data.len();
                if let Err(e) = value(&mut r.data) {
                    r.data.truncate(start);
                    return Err(e);
                }
                [key_start, key_len, value_start as u32, (r.data.len() - value_start) as u32]
            }
        };
        r.sinks.push(sink);
        r.flags.push(flags);
        r.spans.extend_from_slice(&spans);
        r.origins.push(origin.unwrap_or(NO_ORIGIN));
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        let r = &mut self.rows;
        r.data.clear();
        r.sinks.clear();
        r.flags.clear();
        r.spans.clear();
        r.origins.clear();
    }
}

/// Value-state writes not yet handed to the host: one entry per (state,
/// key), the latest value winning, indexed so reads see the job's own
/// writes.
pub(crate) struct WriteBuffer {
    pub(crate) writes: Writes,
    /// Indexes of entries, by hash of (state, key).
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Default for WriteBuffer {
    fn default() -> Self {
        WriteBuffer {
            writes: Writes { data: Vec::new(), states: Vec::new(), spans: Vec::new() },
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

/// What the buffer holds for a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Buffered<'a> {
    /// Not written in this call: ask the host.
    Unknown,
    Removed,
    Value(&'a [u8]),
}

impl WriteBuffer {
    pub(crate) fn len(&self) -> usize {
        self.writes.states.len()
    }

    pub(crate) fn data_len(&self) -> usize {
        self.writes.data.len()
    }

    fn key(&self, i: usize) -> &[u8] {
        let s = &self.writes.spans[i * 4..];
        &self.writes.data[s[0] as usize..][..s[1] as usize]
    }

    fn find(&self, hash: u64, state: u32, key: &[u8]) -> Option<usize> {
        let found = self.index.find(hash, |&i| self.writes.states[i as usize] == state && self.key(i as usize) == key);
        found.map(|&i| i as usize)
    }

    pub(crate) fn get(&self, state: u32, key: &[u8]) -> Buffered<'_> {
        if self.index.is_empty() {
            return Buffered::Unknown;
        }
        let Some(i) = self.find(self.hasher.hash_one((state, key)), state, key) else { return Buffered::Unknown };
        let s = &self.writes.spans[i * 4..];
        match s[3] {
            REMOVED => Buffered::Removed,
            len => Buffered::Value(&self.writes.data[s[2] as usize..][..len as usize]),
        }
    }

    /// Records a write: `Some(value)` sets, `None` removes.
    pub(crate) fn put(&mut self, state: u32, key: &[u8], value: Option<&[u8]>) {
        let hash = self.hasher.hash_one((state, key));
        let found = self.find(hash, state, key);
        let w = &mut self.writes;
        match found {
            Some(i) => {
                let s = &mut w.spans[i * 4..i * 4 + 4];
                match value {
                    None => s[3] = REMOVED,
                    // Fits where the previous value was: overwrite in place.
                    Some(v) if s[3] != REMOVED && v.len() <= s[3] as usize => {
                        w.data[s[2] as usize..][..v.len()].copy_from_slice(v);
                        s[3] = v.len() as u32;
                    }
                    Some(v) => {
                        s[2] = w.data.len() as u32;
                        s[3] = v.len() as u32;
                        w.data.extend_from_slice(v);
                    }
                }
            }
            None => {
                let i = w.states.len() as u32;
                let key_start = w.data.len() as u32;
                w.data.extend_from_slice(key);
                let value_start = w.data.len() as u32;
                let value_len = match value {
                    Some(v) => {
                        w.data.extend_from_slice(v);
                        v.len() as u32
                    }
                    None => REMOVED,
                };
                w.states.push(state);
                w.spans.extend_from_slice(&[key_start, key.len() as u32, value_start, value_len]);
                let (writes, hasher) = (&self.writes, &self.hasher);
                self.index.insert_unique(hash, i, |&j| {
                    let s = &writes.spans[j as usize * 4..];
                    hasher.hash_one((writes.states[j as usize], &writes.data[s[0] as usize..][..s[1] as usize]))
                });
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.writes.data.clear();
        self.writes.states.clear();
        self.writes.spans.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_the_latest_write_and_each_key_is_written_once() {
        let mut b = WriteBuffer::default();
        assert_eq!(b.get(0, b"a"), Buffered::Unknown);
        b.put(0, b"a", Some(b"100"));
        b.put(1, b"a", Some(b"x"));
        b.put(0, b"a", Some(b"99"));
        assert_eq!(b.get(0, b"a"), Buffered::Value(b"99"), "overwritten in place");
        b.put(0, b"a", Some(b"1000"));
        assert_eq!(b.get(0, b"a"), Buffered::Value(b"1000"), "a longer value moves to the end");
        b.put(1, b"a", None);
        assert_eq!(b.get(1, b"a"), Buffered::Removed);
        b.put(1, b"a", Some(b"y"));
        assert_eq!(b.get(1, b"a"), Buffered::Value(b"y"), "set again after a remove");
        assert_eq!(b.get(0, b"b"), Buffered::Unknown);
        assert_eq!(b.len(), 2, "one entry per (state, key)");
        assert_eq!(b.writes.states, [0, 1]);

        for i in 0..1000u32 {
            b.put(2, i.to_string().as_bytes(), Some(&i.to_le_bytes()));
        }
        for i in 0..1000u32 {
            assert_eq!(
                b.get(2, i.to_string().as_bytes()),
                Buffered::Value(&i.to_le_bytes()),
                "after growing the index"
            );
        }
        b.clear();
        assert_eq!((b.len(), b.get(0, b"a")), (0, Buffered::Unknown));
    }

    #[test]
    fn rows_keep_own_and_forwarded_bytes_apart() {
        let mut b = RowBuffer::default();
        b.push::<()>(0, RowOp::Upsert, Some(3), false, RowBytes::Own(Some(b"k")), |d| {
            d.extend_from_slice(b"{}");
            Ok(())
        })
        .unwrap();
        b.push::<()>(1, RowOp::Delete, None, false, RowBytes::Own(None), |d| {
            d.extend_from_slice(b"{\"a\":1}");
            Ok(())
        })
        .unwrap();
        b.push::<()>(0, RowOp::Upsert, Some(4), true, RowBytes::Forwarded([10, 2, 12, 30]), |_| unreachable!())
            .unwrap();
        assert_eq!(
            b.push(0, RowOp::Upsert, None, false, RowBytes::Own(Some(b"lost")), |d| {
                d.extend_from_slice(b"half");
                Err("fails")
            }),
            Err("fails")
        );
        let r = &b.rows;
        assert_eq!(r.data, b"k{}{\"a\":1}", "a failed row leaves nothing behind");
        assert_eq!(r.sinks, [0, 1, 0]);
        assert_eq!(r.flags, [0, ROW_DELETE, ROW_FORWARDED | ROW_OF_BATCH]);
        assert_eq!(r.spans, [0, 1, 1, 2, 0, NO_KEY, 3, 7, 10, 2, 12, 30]);
        assert_eq!(r.origins, [3, NO_ORIGIN, 4]);
    }
}
