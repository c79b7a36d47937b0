//! `sluice:job/state`: keyed state on the host.
//!
//! The imports are defined by hand rather than by `bindgen!` so that the
//! two a job calls per record or per batch, `get` and `write`, read their
//! keys and values where they are, in the guest's memory, instead of
//! lifting each into a fresh `Vec` (an allocation per `get`, a few KiB per
//! `write`).

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList};

use super::{HostState, bad_handle};
use crate::state::StateBackend;
use crate::wasm::bindings::REMOVED;
use crate::wasm::bindings::sluice::job::state::{SmallValue, StateKind, Stored};

type Bytes = Vec<u8>;
type Store<'a> = StoreContextMut<'a, HostState>;

/// Defines the `sluice:job/state` imports, `instance` being the interface's
/// versioned name.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>, instance: &str) -> wasmtime::Result<()> {
    let mut i = linker.instance(instance)?;
    i.func_wrap("declare", |mut store: Store, (name, kind, ttl_ms): (String, StateKind, Option<u64>)| {
        Ok((store.data_mut().state.declare(&name, kind, ttl_ms).map_err(|e| e.to_string()),))
    })?;
    i.func_wrap("get", |store: Store, (state, key): (u32, WasmList<u8>)| {
        let host = store.data();
        let value =
            host.state.get(state, key.as_le_slice(&store), host.now_ms).ok_or_else(|| bad_handle("state", state))?;
        Ok((value.map(stored),))
    })?;
    i.func_wrap("write", |mut store: Store, (writes,): (GuestWrites,)| {
        // Out of the store for the moment, so the guest's memory can be read
        // while the state changes.
        let mut state = std::mem::take(&mut store.data_mut().state);
        let now_ms = store.data().now_ms;
        let written = apply(
            &mut state,
            writes.data.as_le_slice(&store),
            writes.states.as_le_slice(&store),
            writes.spans.as_le_slice(&store),
            now_ms,
        );
        store.data_mut().state = state;
        written
    })?;
    i.func_wrap("remove", |mut store: Store, (state, key): (u32, Bytes)| {
        store.data_mut().state.remove(state, &key).ok_or_else(|| bad_handle("state", state))
    })?;
    i.func_wrap("map-get", |store: Store, (state, key, field): (u32, Bytes, Bytes)| {
        let host = store.data();
        let value = host.state.map_get(state, &key, &field, host.now_ms).ok_or_else(|| bad_handle("state", state))?;
        Ok((value.map(stored),))
    })?;
    i.func_wrap("map-set", |mut store: Store, (state, key, field, value): (u32, Bytes, Bytes, Bytes)| {
        let host = store.data_mut();
        host.state.map_set(state, key, field, value, host.now_ms).ok_or_else(|| bad_handle("state", state))
    })?;
    i.func_wrap("map-remove", |mut store: Store, (state, key, field): (u32, Bytes, Bytes)| {
        store.data_mut().state.map_remove(state, &key, &field).ok_or_else(|| bad_handle("state", state))
    })?;
    i.func_wrap("map-entries", |store: Store, (state, key): (u32, Bytes)| {
        let host = store.data();
        Ok((host.state.map_entries(state, &key, host.now_ms).ok_or_else(|| bad_handle("state", state))?,))
    })?;
    i.func_wrap("map-len", |store: Store, (state, key): (u32, Bytes)| {
        let host = store.data();
        Ok((host.state.map_len(state, &key, host.now_ms).ok_or_else(|| bad_handle("state", state))?,))
    })?;
    i.func_wrap("sample", |store: Store, (state, max): (u32, u32)| {
        let host = store.data();
        Ok((host.state.sample(state, max as usize, host.now_ms).ok_or_else(|| bad_handle("state", state))?,))
    })?;
    Ok(())
}

/// A WIT `writes` as the guest passed it: its lists, still in guest memory.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift)]
#[component(record)]
struct GuestWrites {
    data: WasmList<u8>,
    states: WasmList<u32>,
    spans: WasmList<u32>,
}

/// Applies a `writes` (its columns), in order.
fn apply(state: &mut StateBackend, data: &[u8], states: &[u32], spans: &[u32], now_ms: i64) -> wasmtime::Result<()> {
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
    for (i, (&handle, s)) in states.iter().zip(spans.chunks_exact(4)).enumerate() {
        let key = bytes(i, s[0], s[1])?;
        let done = if s[3] == REMOVED {
            state.remove(handle, key)
        } else {
            state.set_from(handle, key, bytes(i, s[2], s[3])?, now_ms)
        };
        done.ok_or_else(|| bad_handle("state", handle))?;
    }
    Ok(())
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
