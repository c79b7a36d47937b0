//! `sluice:job/output`: emitted rows and rejected records, collected for the
//! task to route after the call.

use super::{HostState, bad_handle};
use crate::wasm::bindings::Rejected;
use crate::wasm::bindings::sluice::job::output::{Emitted, Host};

impl Host for HostState {
    fn sink_id(&mut self, name: String) -> wasmtime::Result<Result<u32, String>> {
        Ok(match self.job.sinks.iter().position(|s| *s == name) {
            Some(i) => Ok(i as u32),
            None => {
                Err(format!("`{name}` is not a sink of job `{}`; its sinks are {:?}", self.job.name, self.job.sinks))
            }
        })
    }

    fn emit(&mut self, rows: Vec<Emitted>) -> wasmtime::Result<()> {
        if let Some(row) = rows.iter().find(|r| r.sink as usize >= self.job.sinks.len()) {
            return Err(bad_handle("sink", row.sink));
        }
        if self.emitted.is_empty() {
            self.emitted = rows;
        } else {
            self.emitted.extend(rows);
        }
        Ok(())
    }

    fn reject(&mut self, records: Vec<Rejected>) -> wasmtime::Result<()> {
        self.rejected.extend(records);
        Ok(())
    }
}
