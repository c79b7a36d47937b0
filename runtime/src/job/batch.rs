//! The host side of a batch: records laid out the way the WIT `batch` type
//! wants them, one byte buffer plus a few lists of primitives, so handing a
//! batch to the guest is a handful of bulk copies whatever its size. Sources push records; the task reads them back through
//! [`RecordMeta`] (a host-side row view kept alongside the columns).

use crate::wasm::bindings::{Batch, NO_EVENT_TIME, NO_KEY};

/// A byte range `[start, start + len)` of a batch's data (or, for
/// [`RecordMeta::headers`], a range of header indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

/// One record of a batch, as the host reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub key: Option<Span>,
    pub value: Span,
    /// Event time in ms since the Unix epoch, if the source has one.
    pub event_time: Option<i64>,
    /// The record's headers: a range of header indexes.
    pub headers: Span,
    /// Index into the job's sources.
    pub source: u32,
    pub partition: i32,
    pub offset: i64,
}

/// A batch being filled by sources and then handed to the job.
#[derive(Debug)]
pub struct RecordBatch {
    inner: Batch,
    records: Vec<RecordMeta>,
}

impl Default for RecordBatch {
    fn default() -> Self {
        RecordBatch::with_capacity(0, 0)
    }
}

/// One record to append.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub event_time: Option<i64>,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub source: u32,
    pub partition: i32,
    pub offset: i64,
}

impl RecordBatch {
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        RecordBatch {
            inner: Batch {
                data: Vec::with_capacity(bytes),
                meta: Vec::with_capacity(records * 6),
                positions: Vec::with_capacity(records * 2),
                headers: Vec::new(),
                header_ends: Vec::new(),
            },
            records: Vec::with_capacity(records),
        }
    }

    pub fn push(&mut self, r: NewRecord<'_>) {
        let b = &mut self.inner;
        let key = r.key.map(|k| push_bytes(&mut b.data, k));
        let value = push_bytes(&mut b.data, r.value);
        let (key_start, key_len) = key.map_or((0, NO_KEY), |k| (k.start, k.len));
        b.meta.extend_from_slice(&[key_start, key_len, value.start, value.len, r.source, r.partition as u32]);
        b.positions.extend_from_slice(&[r.offset, r.event_time.unwrap_or(NO_EVENT_TIME)]);

        let first_header = (b.headers.len() / 4) as u32;
        // `header_ends` is sent only once some record has headers. Whether
        // one has is `headers` being non-empty: `header_ends` itself is
        // still empty when the batch's first record is that one.
        if !r.headers.is_empty() && b.headers.is_empty() {
            // The first record with headers: the ones before it have none.
            b.header_ends.resize(self.records.len(), 0);
        }
        for (name, value) in r.headers {
            let name = push_bytes(&mut b.data, name.as_bytes());
            let value = push_bytes(&mut b.data, value);
            b.headers.extend_from_slice(&[name.start, name.len, value.start, value.len]);
        }
        let header_end = (b.headers.len() / 4) as u32;
        if !b.headers.is_empty() {
            b.header_ends.push(header_end);
        }

        self.records.push(RecordMeta {
            key,
            value,
            event_time: r.event_time,
            headers: Span { start: first_header, len: header_end - first_header },
            source: r.source,
            partition: r.partition,
            offset: r.offset,
        });
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        let b = &mut self.inner;
        b.data.clear();
        b.meta.clear();
        b.positions.clear();
        b.headers.clear();
        b.header_ends.clear();
        self.records.clear();
    }

    /// Keeps the records whose entry of `keep` is true, in order (a record
    /// past the end of `keep` is kept). Copies the kept ones into fresh
    /// buffers of the same capacity: for the rare batch that drops some.
    pub fn retain(&mut self, keep: &[bool]) {
        let mut kept = RecordBatch::with_capacity(self.records.capacity(), self.inner.data.capacity());
        for (i, r) in self.records.iter().enumerate() {
            if !keep.get(i).copied().unwrap_or(true) {
                continue;
            }
            let headers: Vec<(&str, &[u8])> =
                self.headers(r).map(|(name, value)| (std::str::from_utf8(name).unwrap_or_default(), value)).collect();
            kept.push(NewRecord {
                key: r.key.map(|k| self.bytes(k)),
                value: self.bytes(r.value),
                event_time: r.event_time,
                headers: &headers,
                source: r.source,
                partition: r.partition,
                offset: r.offset,
            });
        }
        *self = kept;
    }

    pub fn records(&self) -> &[RecordMeta] {
        &self.records
    }

    pub fn bytes(&self, span: Span) -> &[u8] {
        &self.inner.data[span.start as usize..(span.start + span.len) as usize]
    }

    /// The `(name, value)` of each header of `record`.
    pub fn headers(&self, record: &RecordMeta) -> impl Iterator<Item = (&[u8], &[u8])> {
        let h = &self.inner.headers;
        (record.headers.start..record.headers.start + record.headers.len).map(move |i| {
            let s = &h[i as usize * 4..i as usize * 4 + 4];
            (self.bytes(Span { start: s[0], len: s[1] }), self.bytes(Span { start: s[2], len: s[3] }))
        })
    }

    pub fn as_wit(&self) -> &Batch {
        &self.inner
    }
}

fn push_bytes(data: &mut Vec<u8>, bytes: &[u8]) -> Span {
    let span = Span { start: data.len() as u32, len: bytes.len() as u32 };
    data.extend_from_slice(bytes);
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(key: Option<&'a [u8]>, value: &'a [u8], headers: &'a [(&'a str, &'a [u8])]) -> NewRecord<'a> {
        NewRecord { key, value, event_time: None, headers, source: 0, partition: 0, offset: 0 }
    }

    #[test]
    fn columns_and_rows_agree() {
        let mut batch = RecordBatch::default();
        batch.push(NewRecord { event_time: Some(7), offset: 3, partition: 2, source: 1, ..record(None, b"v1", &[]) });
        batch.push(record(Some(b"k"), b"v2", &[("h", b"x"), ("i", b"y")]));
        batch.push(record(Some(b""), b"", &[]));

        let wit = batch.as_wit();
        assert_eq!(wit.meta, [0, NO_KEY, 0, 2, 1, 2, 2, 1, 3, 2, 0, 0, 9, 0, 9, 0, 0, 0]);
        assert_eq!(wit.positions, [3, 7, 0, NO_EVENT_TIME, 0, NO_EVENT_TIME]);
        assert_eq!(wit.header_ends, [0, 2, 2], "the record before the first with headers gets an end too");

        let [a, b, c] = batch.records() else { panic!("three records") };
        assert_eq!((a.key, batch.bytes(a.value), a.event_time), (None, &b"v1"[..], Some(7)));
        assert_eq!(b.key.map(|k| batch.bytes(k)), Some(&b"k"[..]));
        assert_eq!(batch.headers(b).collect::<Vec<_>>(), [(&b"h"[..], &b"x"[..]), (&b"i"[..], &b"y"[..])]);
        assert_eq!(c.key.map(|k| batch.bytes(k)), Some(&b""[..]), "an empty key is not a missing key");

        batch.clear();
        assert!(batch.is_empty() && batch.as_wit().meta.is_empty() && batch.as_wit().header_ends.is_empty());
    }

    #[test]
    fn retain_keeps_the_chosen_records_with_their_keys_and_headers() {
        let mut batch = RecordBatch::default();
        batch.push(NewRecord { offset: 1, ..record(Some(b"a"), b"1", &[("h", b"x")]) });
        batch.push(NewRecord { offset: 2, ..record(None, b"2", &[]) });
        batch.push(NewRecord { offset: 3, event_time: Some(9), ..record(Some(b"c"), b"3", &[("i", b"y")]) });
        batch.retain(&[false, true]);
        let [b, c] = batch.records() else { panic!("two records kept") };
        assert_eq!((b.offset, b.key, batch.bytes(b.value)), (2, None, &b"2"[..]));
        assert_eq!((c.offset, c.event_time, c.key.map(|k| batch.bytes(k))), (3, Some(9), Some(&b"c"[..])));
        assert_eq!(batch.headers(c).collect::<Vec<_>>(), [(&b"i"[..], &b"y"[..])]);
        assert_eq!(batch.as_wit().header_ends, [0, 1], "the columns are rebuilt too");
    }

    #[test]
    fn a_batch_without_headers_sends_no_header_columns() {
        let mut batch = RecordBatch::default();
        batch.push(record(None, b"a", &[]));
        batch.push(record(None, b"b", &[]));
        assert!(batch.as_wit().headers.is_empty() && batch.as_wit().header_ends.is_empty());
    }
}
