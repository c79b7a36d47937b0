//! The host side of a batch: records laid out the way the WIT `batch` type
//! wants them (one byte buffer plus fixed-size metadata), so handing a batch
//! to the guest copies a few buffers instead of several per record.

use crate::wasm::bindings::{Batch, HeaderMeta, RecordMeta, Span};

/// A batch being filled by sources and then handed to the job.
#[derive(Debug)]
pub struct RecordBatch {
    pub(crate) inner: Batch,
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
            inner: Batch { data: Vec::with_capacity(bytes), records: Vec::with_capacity(records), headers: Vec::new() },
        }
    }

    pub fn push(&mut self, r: NewRecord<'_>) {
        let b = &mut self.inner;
        let key = r.key.map(|k| push_bytes(&mut b.data, k));
        let value = push_bytes(&mut b.data, r.value);
        let first_header = b.headers.len() as u32;
        for (name, value) in r.headers {
            let name = push_bytes(&mut b.data, name.as_bytes());
            let value = push_bytes(&mut b.data, value);
            b.headers.push(HeaderMeta { name, value });
        }
        let headers = Span { start: first_header, len: b.headers.len() as u32 - first_header };
        b.records.push(RecordMeta {
            key,
            value,
            event_time: r.event_time,
            headers,
            source: r.source,
            partition: r.partition,
            offset: r.offset,
        });
    }

    pub fn len(&self) -> usize {
        self.inner.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.records.is_empty()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.inner.data.clear();
        self.inner.records.clear();
        self.inner.headers.clear();
    }

    pub fn records(&self) -> &[RecordMeta] {
        &self.inner.records
    }

    pub fn bytes(&self, span: Span) -> &[u8] {
        &self.inner.data[span.start as usize..(span.start + span.len) as usize]
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
