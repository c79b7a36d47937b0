//! `sluice:job/output`: emitted rows and rejected records, collected for the
//! task to route after the call.
//!
//! Rows arrive column by column (WIT `rows`) and are kept that way: the
//! host checks them once when they arrive and hands the task borrowed
//! [`RowRef`]s. A forwarded row's bytes are the input record's, in the
//! batch the task still holds, so they never cross the boundary twice.

use super::HostState;
use crate::wasm::bindings::sluice::job::output::Host;
use crate::wasm::bindings::{NO_KEY, NO_ORIGIN, ROW_DELETE, ROW_FORWARDED, Rejected, RowOp, Rows};

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
}

/// What the job emitted and rejected since the task last took it.
#[derive(Debug, Default)]
pub struct Output {
    /// One entry per `emit` call, each checked on arrival.
    chunks: Vec<Rows>,
    /// Bytes of the input batch that forwarded rows refer to.
    input_len: usize,
    pub rejected: Vec<Rejected>,
}

impl Output {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.sinks.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        self.chunks.iter().flat_map(move |rows| {
            (0..rows.sinks.len()).map(move |i| {
                let flags = rows.flags[i];
                let bytes = if flags & ROW_FORWARDED != 0 { input } else { rows.data.as_slice() };
                let s = &rows.spans[i * 4..i * 4 + 4];
                RowRef {
                    sink: rows.sinks[i],
                    op: if flags & ROW_DELETE != 0 { RowOp::Delete } else { RowOp::Upsert },
                    key: (s[1] != NO_KEY).then(|| &bytes[s[0] as usize..][..s[1] as usize]),
                    value: &bytes[s[2] as usize..][..s[3] as usize],
                    origin: (rows.origins[i] != NO_ORIGIN).then_some(rows.origins[i]),
                }
            })
        })
    }
}

/// Checks a `rows` from the guest: column lengths, flags, sink handles and
/// that every span is inside its bytes. A guest that fails this is broken
/// (the SDK never sends such rows), so the error traps it.
fn check(rows: &Rows, sinks: usize, input_len: usize) -> Result<(), String> {
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
        if flags & !(ROW_DELETE | ROW_FORWARDED) != 0 {
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
    pub(crate) fn begin_call(&mut self, input_len: usize) {
        self.input_len = input_len;
    }

    /// Takes what was emitted and rejected so far.
    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.output)
    }
}

impl Host for HostState {
    fn sink_id(&mut self, name: String) -> wasmtime::Result<Result<u32, String>> {
        Ok(match self.job.sinks.iter().position(|s| *s == name) {
            Some(i) => Ok(i as u32),
            None => {
                Err(format!("`{name}` is not a sink of job `{}`; its sinks are {:?}", self.job.name, self.job.sinks))
            }
        })
    }

    fn emit(&mut self, rows: Rows) -> wasmtime::Result<()> {
        check(&rows, self.job.sinks.len(), self.input_len).map_err(wasmtime::Error::msg)?;
        if !rows.sinks.is_empty() {
            self.output.input_len = self.output.input_len.max(self.input_len);
            self.output.chunks.push(rows);
        }
        Ok(())
    }

    fn reject(&mut self, records: Vec<Rejected>) -> wasmtime::Result<()> {
        self.output.rejected.extend(records);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(data: &[u8], rows: &[(u32, u8, [u32; 4], u32)]) -> Rows {
        Rows {
            data: data.to_vec(),
            sinks: rows.iter().map(|r| r.0).collect(),
            flags: rows.iter().map(|r| r.1).collect(),
            spans: rows.iter().flat_map(|r| r.2).collect(),
            origins: rows.iter().map(|r| r.3).collect(),
        }
    }

    #[test]
    fn rows_resolve_own_and_forwarded_bytes() {
        let own = rows(b"k{}", &[(0, 0, [0, 1, 1, 2], 0), (1, ROW_DELETE, [0, NO_KEY, 1, 2], NO_ORIGIN)]);
        let forwarded = rows(b"", &[(0, ROW_FORWARDED, [0, 2, 2, 5], 3)]);
        assert_eq!(check(&own, 2, 0), Ok(()));
        assert_eq!(check(&forwarded, 2, 7), Ok(()));
        let output = Output { chunks: vec![own, forwarded], input_len: 7, rejected: Vec::new() };
        let got: Vec<_> = output.rows(b"ab{\"x\"}").collect();
        assert_eq!(
            got,
            [
                RowRef { sink: 0, op: RowOp::Upsert, key: Some(b"k"), value: b"{}", origin: Some(0) },
                RowRef { sink: 1, op: RowOp::Delete, key: None, value: b"{}", origin: None },
                RowRef { sink: 0, op: RowOp::Upsert, key: Some(b"ab"), value: b"{\"x\"}", origin: Some(3) },
            ]
        );
        assert_eq!(output.len(), 3);
    }

    #[test]
    fn broken_rows_are_refused() {
        let outside = rows(b"{}", &[(0, 0, [0, NO_KEY, 1, 2], 0)]);
        assert!(check(&outside, 1, 100).unwrap_err().contains("outside the row data"));
        let forwarded_outside = rows(b"", &[(0, ROW_FORWARDED, [0, NO_KEY, 0, 8], 0)]);
        assert!(check(&forwarded_outside, 1, 7).unwrap_err().contains("outside the input batch"));
        let overflow = rows(b"{}", &[(0, 0, [0, NO_KEY, u32::MAX, 2], 0)]);
        assert!(check(&overflow, 1, 0).is_err());
        let bad_sink = rows(b"{}", &[(3, 0, [0, NO_KEY, 0, 2], 0)]);
        assert!(check(&bad_sink, 1, 0).unwrap_err().contains("unknown sink handle 3"));
        let bad_flags = rows(b"{}", &[(0, 4, [0, NO_KEY, 0, 2], 0)]);
        assert!(check(&bad_flags, 1, 0).unwrap_err().contains("unknown flags"));
        let mut ragged = rows(b"{}", &[(0, 0, [0, NO_KEY, 0, 2], 0)]);
        ragged.origins.clear();
        assert!(check(&ragged, 1, 0).unwrap_err().contains("inconsistent columns"));
    }
}
