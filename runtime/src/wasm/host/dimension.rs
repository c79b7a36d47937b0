//! `sluice:job/dimension`: lookups and upserts through the dimension stores
//! (async: SQL and Redis stores do I/O).

use super::{HostState, bad_handle};
use crate::wasm::bindings::sluice::job::dimension::Host;
use crate::wasm::limits::LimitHit;

impl Host for HostState {
    fn dimension_id(&mut self, name: String) -> wasmtime::Result<Result<u32, String>> {
        Ok(match self.job.dimensions.iter().position(|d| *d == name) {
            Some(i) => Ok(i as u32),
            None => Err(format!(
                "`{name}` is not a dimension of job `{}`; its dimensions are {:?}",
                self.job.name, self.job.dimensions
            )),
        })
    }

    async fn lookup(&mut self, dimension: u32, key: Vec<u8>) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        let store = self.dimensions.get(dimension as usize).ok_or_else(|| bad_handle("dimension", dimension))?.clone();
        Ok(store.lookup(&key).await.map_err(|e| e.to_string()))
    }

    async fn upsert(&mut self, dimension: u32, key: Vec<u8>, row: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let store = self.dimensions.get(dimension as usize).ok_or_else(|| bad_handle("dimension", dimension))?.clone();
        let written = store.upsert(&key, &row).await.map_err(|e| e.to_string());
        // Rows kept in the process (staged writes, an in-memory table) are
        // bounded like state.
        if store.held_bytes() > self.limits.state_bytes {
            let name = self.job.dimensions.get(dimension as usize).cloned().unwrap_or_default();
            return Err(self.hit(LimitHit::DimensionRows { name, mb: self.limits.state_bytes >> 20 }));
        }
        Ok(written)
    }
}
