//! `sluice:job/state`: keyed state on the host.

use super::{HostState, bad_handle};
use crate::wasm::bindings::sluice::job::state::{Host, SmallValue, StateKind, Stored};
use crate::wasm::bindings::{REMOVED, Writes};

type Bytes = Vec<u8>;

impl Host for HostState {
    fn declare(&mut self, name: String, kind: StateKind, ttl_ms: Option<u64>) -> wasmtime::Result<Result<u32, String>> {
        Ok(self.state.declare(&name, kind, ttl_ms).map_err(|e| e.to_string()))
    }

    fn get(&mut self, state: u32, key: Bytes) -> wasmtime::Result<Option<Stored>> {
        let value = self.state.get(state, &key, self.now_ms).ok_or_else(|| bad_handle("state", state))?;
        Ok(value.map(stored))
    }

    fn write(&mut self, writes: Writes) -> wasmtime::Result<()> {
        let Writes { data, states, spans } = &writes;
        if spans.len() != states.len() * 4 {
            return Err(wasmtime::Error::msg(format!(
                "writes with inconsistent columns: {} states, {} spans (want 4 per write)",
                states.len(),
                spans.len()
            )));
        }
        let bytes = |i: usize, start: u32, len: u32| {
            (start as usize)
                .checked_add(len as usize)
                .and_then(|end| data.get(start as usize..end))
                .ok_or_else(|| wasmtime::Error::msg(format!("write {i} has bytes outside its data")))
        };
        for (i, (&state, s)) in states.iter().zip(spans.chunks_exact(4)).enumerate() {
            let key = bytes(i, s[0], s[1])?;
            let done = if s[3] == REMOVED {
                self.state.remove(state, key)
            } else {
                self.state.set_from(state, key, bytes(i, s[2], s[3])?, self.now_ms)
            };
            done.ok_or_else(|| bad_handle("state", state))?;
        }
        Ok(())
    }

    fn remove(&mut self, state: u32, key: Bytes) -> wasmtime::Result<()> {
        self.state.remove(state, &key).ok_or_else(|| bad_handle("state", state))
    }

    fn map_get(&mut self, state: u32, key: Bytes, field: Bytes) -> wasmtime::Result<Option<Stored>> {
        let value = self.state.map_get(state, &key, &field, self.now_ms).ok_or_else(|| bad_handle("state", state))?;
        Ok(value.map(stored))
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

/// Longest value returned inline (`stored.small`).
const SMALL_VALUE: usize = 24;

/// A value as the guest receives it: inline when it is small, which spares
/// the guest an allocation (and the host a call into it to make one).
fn stored(value: &[u8]) -> Stored {
    if value.len() > SMALL_VALUE {
        return Stored::Large(value.to_vec());
    }
    let mut b = [0u8; SMALL_VALUE];
    b[..value.len()].copy_from_slice(value);
    let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    Stored::Small(SmallValue { len: value.len() as u8, bytes: (word(0), word(1), word(2)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_inline_and_little_endian() {
        let Stored::Small(small) = stored(b"123") else { panic!("3 bytes are small") };
        assert_eq!((small.len, small.bytes), (3, (u64::from_le_bytes(*b"123\0\0\0\0\0"), 0, 0)));
        let exactly = [7u8; SMALL_VALUE];
        assert!(
            matches!(stored(&exactly), Stored::Small(SmallValue { len: 24, bytes: (_, _, c) }) if c == u64::from_le_bytes([7; 8]))
        );
        assert_eq!(stored(&[1; SMALL_VALUE + 1]), Stored::Large(vec![1; SMALL_VALUE + 1]));
        assert!(matches!(stored(b""), Stored::Small(SmallValue { len: 0, .. })), "empty is not missing");
    }
}
