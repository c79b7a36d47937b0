//! `sluice:job/output`: emitted rows and rejected records, collected for the
//! task to route after the call.
//!
//! Rows arrive column by column (WIT `rows`) and are kept that way: the
//! host checks them once when they arrive and hands the task borrowed
//! [`RowRef`]s. A forwarded row's bytes are the input record's, in the
//! batch the task still holds, so they never cross the boundary twice.
//!
//! The imports are defined by hand rather than by `bindgen!` so that `emit`
//! reads the guest's lists where they are, in its memory, and appends them
//! to column buffers the host keeps from call to call. Lifting each list
//! into a fresh `Vec` allocated a few KiB per call, and every allocation
//! that size makes glibc's malloc consolidate its free lists, which slowed
//! the task's own per-row copies afterwards (docs/BENCHMARKS.md).

use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Lift, Linker, WasmList};

use super::HostState;
use crate::wasm::bindings::{NO_KEY, NO_ORIGIN, ROW_DELETE, ROW_FORWARDED, ROW_OF_BATCH, Rejected, RowOp};
use crate::wasm::limits::{LimitHit, MAX_REASON};

/// Bytes a row costs the task besides its key and value (its id, columns).
const ROW_OVERHEAD: usize = 64;

/// One emitted row, its bytes borrowed from the output or the input batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef<'a> {
    /// Index of the sink in the job's sinks.
    pub sink: u32,
    pub op: RowOp,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    /// The input record (in `process`) or timer (in `on-timer`) that
    /// produced the row; `None` while opening.
    pub origin: Option<u32>,
    /// The row is of the batch as a whole (`finish_batch`), its origin the
    /// batch's last record.
    pub of_batch: bool,
}

/// What the job emitted and rejected since the task last cleared it: the
/// rows of all `emit` calls in one set of columns, as WIT `rows` lays them
/// out, with the spans of the rows' own bytes moved to their place in
/// `data`.
#[derive(Debug, Default)]
pub struct Output {
    data: Vec<u8>,
    sinks: Vec<u32>,
    flags: Vec<u8>,
    spans: Vec<u32>,
    origins: Vec<u32>,
    /// Bytes of the input batch that forwarded rows refer to.
    input_len: usize,
    /// Bytes of all rows' keys and values (forwarded ones included: the
    /// task copies them), for the output limit.
    row_bytes: usize,
    pub rejected: Vec<Rejected>,
}

/// A WIT `rows`, as slices of the lists it is made of.
#[derive(Debug, Clone, Copy)]
struct Columns<'a> {
    data: &'a [u8],
    sinks: &'a [u32],
    flags: &'a [u8],
    spans: &'a [u32],
    origins: &'a [u32],
}

/// A WIT `rows` as the guest passed it: its lists, still in guest memory.
#[derive(ComponentType, Lift)]
#[component(record)]
struct GuestRows {
    data: WasmList<u8>,
    sinks: WasmList<u32>,
    flags: WasmList<u8>,
    spans: WasmList<u32>,
    origins: WasmList<u32>,
}

impl Output {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// The rows in emit order. `input` is the data of the batch of the
    /// `process` call that emitted them (empty after `open` or `on-timer`):
    /// forwarded rows borrow their bytes from it.
    ///
    /// # Panics
    ///
    /// When `input` is shorter than the batch the rows were checked
    /// against: a host bug, not something a guest can cause.
    pub fn rows<'a>(&'a self, input: &'a [u8]) -> impl Iterator<Item = RowRef<'a>> + 'a {
        assert!(input.len() >= self.input_len, "output routed against another batch than the one processed");
        (0..self.sinks.len()).map(move |i| {
            let flags = self.flags[i];
            let bytes = if flags & ROW_FORWARDED != 0 { input } else { self.data.as_slice() };
            let s = &self.spans[i * 4..i * 4 + 4];
            RowRef {
                sink: self.sinks[i],
                op: if flags & ROW_DELETE != 0 { RowOp::Delete } else { RowOp::Upsert },
                key: (s[1] != NO_KEY).then(|| &bytes[s[0] as usize..][..s[1] as usize]),
                value: &bytes[s[2] as usize..][..s[3] as usize],
                origin: (self.origins[i] != NO_ORIGIN).then_some(self.origins[i]),
                of_batch: flags & ROW_OF_BATCH != 0,
            }
        })
    }

    /// Empties the output, keeping its buffers for the next call.
    pub fn clear(&mut self) {
        self.data.clear();
        self.sinks.clear();
        self.flags.clear();
        self.spans.clear();
        self.origins.clear();
        self.input_len = 0;
        self.row_bytes = 0;
        self.rejected.clear();
    }

    /// Checks the rows of one `emit` (`sinks`: how many the job has;
    /// `input_len`: bytes of the current batch) and appends them.
    fn append(&mut self, rows: Columns, sinks: usize, input_len: usize) -> Result<(), String> {
        check(&rows, sinks, input_len)?;
        // Spans are u32s: the rows of one call stay within 4 GiB.
        if u32::try_from(self.data.len() + rows.data.len()).is_err() {
            return Err("the job emitted more than 4 GiB of row data in one call".into());
        }
        let base = self.data.len() as u32;
        self.data.extend_from_slice(rows.data);
        self.sinks.extend_from_slice(rows.sinks);
        self.flags.extend_from_slice(rows.flags);
        self.origins.extend_from_slice(rows.origins);
        for (&flags, s) in rows.flags.iter().zip(rows.spans.chunks_exact(4)) {
            let key_len = if s[1] == NO_KEY { 0 } else { s[1] as usize };
            self.row_bytes += key_len + s[3] as usize + ROW_OVERHEAD;
            if flags & ROW_FORWARDED != 0 {
                self.spans.extend_from_slice(s);
            } else {
                let key_start = if s[1] == NO_KEY { s[0] } else { s[0] + base };
                self.spans.extend_from_slice(&[key_start, s[1], s[2] + base, s[3]]);
            }
        }
        if !rows.sinks.is_empty() {
            self.input_len = self.input_len.max(input_len);
        }
        Ok(())
    }
}

/// Checks a `rows` from the guest: column lengths, flags, sink handles and
/// that every span is inside its bytes. A guest that fails this is broken
/// (the SDK never sends such rows), so the error traps it.
fn check(rows: &Columns, sinks: usize, input_len: usize) -> Result<(), String> {
    let n = rows.sinks.len();
    if rows.flags.len() != n || rows.origins.len() != n || rows.spans.len() != n * 4 {
        return Err(format!(
            "rows with inconsistent columns: {n} sinks, {} flags, {} origins, {} spans (want 4 per row)",
            rows.flags.len(),
            rows.origins.len(),
            rows.spans.len()
        ));
    }
    for i in 0..n {
        let flags = rows.flags[i];
        if flags & !(ROW_DELETE | ROW_FORWARDED | ROW_OF_BATCH) != 0 {
            return Err(format!("row {i} has unknown flags {flags:#x}"));
        }
        let (len, what) =
            if flags & ROW_FORWARDED != 0 { (input_len, "the input batch") } else { (rows.data.len(), "the row data") };
        let s = &rows.spans[i * 4..i * 4 + 4];
        let inside =
            |start: u32, span_len: u32| (start as usize).checked_add(span_len as usize).is_some_and(|end| end <= len);
        if (s[1] != NO_KEY && !inside(s[0], s[1])) || !inside(s[2], s[3]) {
            return Err(format!("row {i} has bytes outside {what}"));
        }
        if rows.sinks[i] as usize >= sinks {
            return Err(format!("the job used unknown sink handle {}", rows.sinks[i]));
        }
    }
    Ok(())
}

impl HostState {
    /// Sets the data length of the batch being processed (0 outside
    /// `process`): forwarded rows must point inside it.
    pub(crate) fn begin_call(&mut self, input_len: usize, records: usize) {
        self.input_len = input_len;
        self.input_records = records;
        self.limit_hit = None;
        self.logs_in_call = 0;
    }

    /// What was emitted and rejected since the output was last cleared.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Empties the output once the task has routed it.
    pub fn clear_output(&mut self) {
        self.output.clear();
    }

    fn sink_id(&self, name: &str) -> Result<u32, String> {
        match self.job.sinks.iter().position(|s| s == name) {
            Some(i) => Ok(i as u32),
            None if self.job.sinks.iter().any(|s| s == crate::job::stages::NEXT_STAGE_SINK) => Err(format!(
                "`{name}` is not a sink of stage {} of job `{}`: a stage before the last sends its rows on \
                 (`ctx.to_next_stage`), and the job's sinks are its last stage's",
                self.job.stage, self.job.name
            )),
            None => {
                Err(format!("`{name}` is not a sink of job `{}`; its sinks are {:?}", self.job.name, self.job.sinks))
            }
        }
    }
}

/// Defines the `sluice:job/output` imports, `instance` being the
/// interface's versioned name.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>, instance: &str) -> wasmtime::Result<()> {
    let mut output = linker.instance(instance)?;
    output.func_wrap("sink-id", |store: StoreContextMut<HostState>, (name,): (String,)| {
        Ok((store.data().sink_id(&name),))
    })?;
    output.func_wrap("emit", |mut store: StoreContextMut<HostState>, (rows,): (GuestRows,)| {
        // Out of the store for the moment, so the guest's memory can be read
        // while the output grows.
        let mut output = std::mem::take(&mut store.data_mut().output);
        let (sinks, input_len) = (store.data().job.sinks.len(), store.data().input_len);
        let columns = Columns {
            data: rows.data.as_le_slice(&store),
            sinks: rows.sinks.as_le_slice(&store),
            flags: rows.flags.as_le_slice(&store),
            spans: rows.spans.as_le_slice(&store),
            origins: rows.origins.as_le_slice(&store),
        };
        let appended = output.append(columns, sinks, input_len);
        let row_bytes = output.row_bytes;
        let host = store.data_mut();
        host.output = output;
        appended.map_err(wasmtime::Error::msg)?;
        if row_bytes > host.limits.output_bytes {
            return Err(host.hit(LimitHit::Output { mb: host.limits.output_bytes >> 20 }));
        }
        Ok(())
    })?;
    output.func_wrap("reject", |mut store: StoreContextMut<HostState>, (records,): (WasmList<Rejected>,)| {
        let host = store.data();
        let (rejected, records_in_call) = (host.output.rejected.len() + records.len(), host.input_records);
        if rejected > records_in_call {
            return Err(store.data_mut().hit(LimitHit::Rejections { rejected, records: records_in_call }));
        }
        let mut kept = Vec::with_capacity(records.len());
        for record in records.iter(&mut store)? {
            let mut record = record?;
            truncate(&mut record.reason, MAX_REASON);
            kept.push(record);
        }
        store.data_mut().output.rejected.extend(kept);
        Ok(())
    })?;
    Ok(())
}

/// Cuts `text` to at most `max` bytes, on a character boundary, marking the cut.
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns of `rows` (sink, flags, spans, origin) over `data`.
    struct Built {
        data: Vec<u8>,
        sinks: Vec<u32>,
        flags: Vec<u8>,
        spans: Vec<u32>,
        origins: Vec<u32>,
    }

    impl Built {
        fn new(data: &[u8], rows: &[(u32, u8, [u32; 4], u32)]) -> Self {
            Built {
                data: data.to_vec(),
                sinks: rows.iter().map(|r| r.0).collect(),
                flags: rows.iter().map(|r| r.1).collect(),
                spans: rows.iter().flat_map(|r| r.2).collect(),
                origins: rows.iter().map(|r| r.3).collect(),
            }
        }

        fn columns(&self) -> Columns<'_> {
            Columns {
                data: &self.data,
                sinks: &self.sinks,
                flags: &self.flags,
                spans: &self.spans,
                origins: &self.origins,
            }
        }
    }

    #[test]
    fn rows_of_several_emits_resolve_own_and_forwarded_bytes() {
        let first = Built::new(b"k{}", &[(0, 0, [0, 1, 1, 2], 0), (1, ROW_DELETE, [0, NO_KEY, 1, 2], NO_ORIGIN)]);
        let forwarded = Built::new(b"", &[(0, ROW_FORWARDED, [0, 2, 2, 5], 3)]);
        let second = Built::new(b"j[1]", &[(1, 0, [0, 1, 1, 3], 4)]);
        let mut output = Output::default();
        for rows in [&first, &forwarded, &second] {
            output.append(rows.columns(), 2, 7).unwrap();
        }
        let got: Vec<_> = output.rows(b"ab{\"x\"}").collect();
        assert_eq!(
            got,
            [
                RowRef { sink: 0, op: RowOp::Upsert, key: Some(b"k"), value: b"{}", origin: Some(0), of_batch: false },
                RowRef { sink: 1, op: RowOp::Delete, key: None, value: b"{}", origin: None, of_batch: false },
                RowRef {
                    sink: 0,
                    op: RowOp::Upsert,
                    key: Some(b"ab"),
                    value: b"{\"x\"}",
                    origin: Some(3),
                    of_batch: false
                },
                RowRef { sink: 1, op: RowOp::Upsert, key: Some(b"j"), value: b"[1]", origin: Some(4), of_batch: false },
            ]
        );
        assert_eq!(output.len(), 4);

        output.clear();
        assert!(output.is_empty() && output.rows(b"").next().is_none());
    }

    #[test]
    fn broken_rows_are_refused() {
        let refused = |rows: Built, input_len| check(&rows.columns(), 1, input_len).unwrap_err();
        assert!(refused(Built::new(b"{}", &[(0, 0, [0, NO_KEY, 1, 2], 0)]), 100).contains("outside the row data"));
        let forwarded_outside = Built::new(b"", &[(0, ROW_FORWARDED, [0, NO_KEY, 0, 8], 0)]);
        assert!(refused(forwarded_outside, 7).contains("outside the input batch"));
        assert!(refused(Built::new(b"{}", &[(0, 0, [0, NO_KEY, u32::MAX, 2], 0)]), 0).contains("outside"));
        assert!(refused(Built::new(b"{}", &[(3, 0, [0, NO_KEY, 0, 2], 0)]), 0).contains("unknown sink handle 3"));
        assert!(refused(Built::new(b"{}", &[(0, 8, [0, NO_KEY, 0, 2], 0)]), 0).contains("unknown flags"));
        let of_batch = Built::new(b"{}", &[(0, ROW_OF_BATCH, [0, NO_KEY, 0, 2], 0)]);
        assert!(check(&of_batch.columns(), 1, 0).is_ok(), "a batch's row is known");
        let mut ragged = Built::new(b"{}", &[(0, 0, [0, NO_KEY, 0, 2], 0)]);
        ragged.origins.clear();
        assert!(refused(ragged, 0).contains("inconsistent columns"));
    }
}
