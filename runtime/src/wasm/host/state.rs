//! `sluice:job/state`: keyed state on the host.

use super::{HostState, bad_handle};
use crate::wasm::bindings::sluice::job::state::{Host, StateKind};

type Bytes = Vec<u8>;

impl Host for HostState {
    fn declare(&mut self, name: String, kind: StateKind, ttl_ms: Option<u64>) -> wasmtime::Result<Result<u32, String>> {
        Ok(self.state.declare(&name, kind, ttl_ms).map_err(|e| e.to_string()))
    }

    fn get(&mut self, state: u32, key: Bytes) -> wasmtime::Result<Option<Bytes>> {
        let value = self.state.get(state, &key, self.now_ms).ok_or_else(|| bad_handle("state", state))?;
        Ok(value.map(<[u8]>::to_vec))
    }

    fn set(&mut self, state: u32, key: Bytes, value: Bytes) -> wasmtime::Result<()> {
        self.state.set(state, key, value, self.now_ms).ok_or_else(|| bad_handle("state", state))
    }

    fn remove(&mut self, state: u32, key: Bytes) -> wasmtime::Result<()> {
        self.state.remove(state, &key).ok_or_else(|| bad_handle("state", state))
    }

    fn map_get(&mut self, state: u32, key: Bytes, field: Bytes) -> wasmtime::Result<Option<Bytes>> {
        let value = self.state.map_get(state, &key, &field, self.now_ms).ok_or_else(|| bad_handle("state", state))?;
        Ok(value.map(<[u8]>::to_vec))
    }

    fn map_set(&mut self, state: u32, key: Bytes, field: Bytes, value: Bytes) -> wasmtime::Result<()> {
        self.state.map_set(state, key, field, value, self.now_ms).ok_or_else(|| bad_handle("state", state))
    }

    fn map_remove(&mut self, state: u32, key: Bytes, field: Bytes) -> wasmtime::Result<()> {
        self.state.map_remove(state, &key, &field).ok_or_else(|| bad_handle("state", state))
    }

    fn map_entries(&mut self, state: u32, key: Bytes) -> wasmtime::Result<Vec<(Bytes, Bytes)>> {
        self.state.map_entries(state, &key, self.now_ms).ok_or_else(|| bad_handle("state", state))
    }

    fn map_len(&mut self, state: u32, key: Bytes) -> wasmtime::Result<u32> {
        self.state.map_len(state, &key, self.now_ms).ok_or_else(|| bad_handle("state", state))
    }

    fn sample(&mut self, state: u32, max: u32) -> wasmtime::Result<Vec<Bytes>> {
        self.state.sample(state, max as usize, self.now_ms).ok_or_else(|| bad_handle("state", state))
    }
}
