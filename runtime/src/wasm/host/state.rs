//! `sluice:job/state`: keyed state on the host.
//!
//! The imports are defined by hand rather than by `bindgen!` so that the
//! two a job calls per record or per batch, `get` and `write`, read their
//! keys and values where they are, in the guest's memory, instead of
//! lifting each into a fresh `Vec` (an allocation per `get`, a few KiB per
//! `write`).

use wasmtime::component::{Linker, WasmList};
use wasmtime::{AsContext, StoreContext, StoreContextMut};

use super::{HostState, bad_handle};
use crate::state::StateBackend;
use crate::wasm::bindings::REMOVED;
use crate::wasm::bindings::sluice::job::state::{SmallValue, StateKind, Stored};

type Store<'a> = StoreContextMut<'a, HostState>;

/// Defines the `sluice:job/state` imports, `instance` being the interface's
/// versioned name.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>, instance: &str) -> wasmtime::Result<()> {
    let mut i = linker.instance(instance)?;
    i.func_wrap("declare", |mut store: Store, (name, kind, ttl_ms): (String, StateKind, Option<u64>)| {
        if store.data().opened {
            return Ok((Err(format!(
                "state `{name}` is declared after `open`: declare every state in `Job::open` (a function job keeps none)"
            )),));
        }
        if crate::job::origin_dedup::is_reserved(&name) {
            return Ok((Err(format!("state `{name}`: names starting with `sluice.` are the platform's; rename it")),));
        }
        Ok((store.data_mut().state.declare(&name, kind, ttl_ms).map_err(|e| e.to_string()),))
    })?;
    i.func_wrap("get", |store: Store, (state, key): (u32, WasmList<u8>)| {
        let state = guest_handle(&store.data().state, state)?;
        let value = store.data().state.get(state, key.as_le_slice(&store)).ok_or_else(|| bad_handle("state", state))?;
        Ok((value.map(stored),))
    })?;
    // Every import that adds to the state checks its size after: value
    // writes (`write`, where the SDK's `ValueState::set` lands), map fields
    // (`map-set`) and counters (`map-add`).
    i.func_wrap("write", |mut store: Store, (writes,): (GuestWrites,)| {
        with_state(&mut store, |state, memory| {
            apply(
                state,
                writes.data.as_le_slice(&memory),
                writes.states.as_le_slice(&memory),
                writes.spans.as_le_slice(&memory),
            )
        })?;
        store.data_mut().check_state_size()
    })?;
    i.func_wrap("remove", |mut store: Store, (state, key): (u32, WasmList<u8>)| {
        let state = guest_handle(&store.data().state, state)?;
        with_state(&mut store, |s, memory| s.remove(state, key.as_le_slice(&memory)))
            .ok_or_else(|| bad_handle("state", state))
    })?;
    i.func_wrap("map-get", |store: Store, (state, key, field): (u32, WasmList<u8>, WasmList<u8>)| {
        let state = guest_handle(&store.data().state, state)?;
        let value = store
            .data()
            .state
            .map_get(state, key.as_le_slice(&store), field.as_le_slice(&store))
            .ok_or_else(|| bad_handle("state", state))?;
        Ok((value.map(stored),))
    })?;
    i.func_wrap(
        "map-set",
        |mut store: Store, (state, key, field, value): (u32, WasmList<u8>, WasmList<u8>, WasmList<u8>)| {
            let state = guest_handle(&store.data().state, state)?;
            with_state(&mut store, |s, memory| {
                s.map_set(state, key.as_le_slice(&memory), field.as_le_slice(&memory), value.as_le_slice(&memory))
            })
            .ok_or_else(|| bad_handle("state", state))?;
            store.data_mut().check_state_size()
        },
    )?;
    i.func_wrap("map-remove", |mut store: Store, (state, key, field): (u32, WasmList<u8>, WasmList<u8>)| {
        let state = guest_handle(&store.data().state, state)?;
        with_state(&mut store, |s, memory| s.map_remove(state, key.as_le_slice(&memory), field.as_le_slice(&memory)))
            .ok_or_else(|| bad_handle("state", state))
    })?;
    i.func_wrap("map-add", |mut store: Store, (state, key, field, delta): (u32, WasmList<u8>, WasmList<u8>, i64)| {
        let state = guest_handle(&store.data().state, state)?;
        let total = with_state(&mut store, |s, memory| {
            s.map_add(state, key.as_le_slice(&memory), field.as_le_slice(&memory), delta)
        })
        .ok_or_else(|| bad_handle("state", state))?
        .map_err(wasmtime::Error::msg)?;
        store.data_mut().check_state_size()?;
        Ok((total,))
    })?;
    i.func_wrap("map-entries", |store: Store, (state, key): (u32, WasmList<u8>)| {
        let state = guest_handle(&store.data().state, state)?;
        Ok((store
            .data()
            .state
            .map_entries(state, key.as_le_slice(&store))
            .ok_or_else(|| bad_handle("state", state))?,))
    })?;
    i.func_wrap("map-len", |store: Store, (state, key): (u32, WasmList<u8>)| {
        let state = guest_handle(&store.data().state, state)?;
        Ok((store.data().state.map_len(state, key.as_le_slice(&store)).ok_or_else(|| bad_handle("state", state))?,))
    })?;
    i.func_wrap("sample", |store: Store, (state, max): (u32, u32)| {
        let state = guest_handle(&store.data().state, state)?;
        Ok((store.data().state.sample(state, max as usize).ok_or_else(|| bad_handle("state", state))?,))
    })?;
    Ok(())
}

/// `handle` when the job may use it; a platform table's handle (which the
/// job was never given) is refused as unknown.
fn guest_handle(state: &StateBackend, handle: u32) -> wasmtime::Result<u32> {
    if state.is_guest_handle(handle) { Ok(handle) } else { Err(bad_handle("state", handle)) }
}

/// A WIT `writes` as the guest passed it: its lists, still in guest memory.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift)]
#[component(record)]
struct GuestWrites {
    data: WasmList<u8>,
    states: WasmList<u32>,
    spans: WasmList<u32>,
}

/// Runs `f` on the task's state and the store (for reading the guest's
/// memory): the state is taken out of the store for the moment, so the
/// guest's lists can be read where they are while the state changes.
fn with_state<R>(store: &mut Store, f: impl FnOnce(&mut StateBackend, StoreContext<'_, HostState>) -> R) -> R {
    let mut state = std::mem::take(&mut store.data_mut().state);
    let result = f(&mut state, store.as_context());
    store.data_mut().state = state;
    result
}

/// Applies a `writes` (its columns), in order.
fn apply(state: &mut StateBackend, data: &[u8], states: &[u32], spans: &[u32]) -> wasmtime::Result<()> {
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
        let handle = guest_handle(state, handle)?;
        let key = bytes(i, s[0], s[1])?;
        let done =
            if s[3] == REMOVED { state.remove(handle, key) } else { state.set(handle, key, bytes(i, s[2], s[3])?) };
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
    fn the_job_cannot_use_a_platform_tables_handle() {
        let mut state = StateBackend::default();
        let platform = state.declare_platform("sluice.applied_origins", StateKind::Value).unwrap();
        let own = state.declare("totals", StateKind::Value, None).unwrap();
        assert_eq!(guest_handle(&state, own).unwrap(), own);
        let refused = guest_handle(&state, platform).unwrap_err().to_string();
        assert_eq!(refused, format!("the job used unknown state handle {platform}"));
        assert!(guest_handle(&state, 9).is_err(), "nor one never given out");

        // A write through it is refused, and the writes before it stand.
        let data = b"kvkv";
        let err = apply(&mut state, data, &[own, platform], &[0, 1, 1, 1, 2, 1, 3, 1]).unwrap_err();
        assert!(err.to_string().contains("unknown state handle"), "{err}");
        assert_eq!(state.get(own, b"k"), Some(Some(&b"v"[..])));
        assert_eq!(state.get(platform, b"k"), Some(None));
    }

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
