use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode_into};
use crate::{Context, Key, Result};

/// Options of a state declaration.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateOptions {
    /// Entries not written for this long are invisible and dropped.
    pub ttl: Option<Duration>,
}

impl StateOptions {
    pub fn ttl(ttl: Duration) -> Self {
        StateOptions { ttl: Some(ttl) }
    }
}

/// What a [`ValueState`] can hold: any type serde can store that can be
/// cloned (values read or written in a call are kept decoded in the job,
/// and a read hands out a clone).
pub trait StateValue: Serialize + DeserializeOwned + Clone + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + 'static> StateValue for T {}

/// One value of type `T` per key, held by the host. Values are stored as
/// MessagePack with field names (`codec.rs`), so adding an `Option` or
/// `#[serde(default)]` field to `T` keeps old snapshots readable.
///
/// Within a call (a batch, or a round of timers), a key once read is kept
/// decoded in the job: later reads are clones, writes replace the kept
/// value, and the writes reach the host at the end of the call, encoded
/// once per key. A key touched by every record of a batch costs one host
/// call, one decode and one encode per batch (hence `T: Clone`). A write
/// of a key the call has not read is encoded at once. Exceptions: a state
/// with a zero TTL reads the host every time, and a call touching more
/// than 16 Ki keys, or 1 MiB of stored values, starts its cache again.
#[derive(Debug)]
pub struct ValueState<T> {
    id: u32,
    /// Whether reads see this call's own writes (not with a zero TTL, which
    /// makes every write invisible at once).
    own_writes: bool,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for ValueState<T> {
    fn clone(&self) -> Self {
        ValueState { id: self.id, own_writes: self.own_writes, _value: PhantomData }
    }
}

impl<T> ValueState<T> {
    pub(crate) fn new(id: u32, own_writes: bool) -> Self {
        ValueState { id, own_writes, _value: PhantomData }
    }
}

impl<T: StateValue> ValueState<T> {
    pub fn get(&self, ctx: &mut Context, key: &(impl Key + ?Sized)) -> Result<Option<T>> {
        ctx.read_value(self.id, &key.key_bytes(), self.own_writes, decode)
    }

    /// Sets the value of `key`. A value that does not serialize is an
    /// error here for a key the call has not read, and fails the call when
    /// it ends for one it has (naming the state and key; the call's other
    /// writes are kept).
    pub fn set(&self, ctx: &mut Context, key: &(impl Key + ?Sized), value: &T) -> Result<()> {
        ctx.write_value(self.id, &key.key_bytes(), self.own_writes, value)
    }

    pub fn remove(&self, ctx: &mut Context, key: &(impl Key + ?Sized)) {
        ctx.remove_value::<T>(self.id, &key.key_bytes(), self.own_writes);
    }
}

/// Marks the field and value types of a map state without owning either.
type FieldAndValue<F, V> = PhantomData<(fn(&F), fn() -> V)>;

/// A map of fields (keyed by `F`) to values `V` per key, held by the host.
#[derive(Debug)]
pub struct MapState<F: ?Sized, V> {
    id: u32,
    _types: FieldAndValue<F, V>,
}

impl<F: ?Sized, V> Clone for MapState<F, V> {
    fn clone(&self) -> Self {
        MapState { id: self.id, _types: PhantomData }
    }
}

impl<F: ?Sized, V> MapState<F, V> {
    pub(crate) fn new(id: u32) -> Self {
        MapState { id, _types: PhantomData }
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }
}

impl<F: Key + ?Sized, V: Serialize + DeserializeOwned> MapState<F, V> {
    pub fn get(&self, ctx: &mut Context, key: &(impl Key + ?Sized), field: &F) -> Result<Option<V>> {
        let stored = ctx.host.map_get(self.id, &key.key_bytes(), &field.key_bytes());
        stored.map(|stored| decode(stored.bytes(&mut [0; 24]))).transpose()
    }

    pub fn set(&self, ctx: &mut Context, key: &(impl Key + ?Sized), field: &F, value: &V) -> Result<()> {
        let mut bytes = Vec::new();
        encode_into(&mut bytes, value)?;
        ctx.host.map_set(self.id, &key.key_bytes(), &field.key_bytes(), &bytes);
        Ok(())
    }

    pub fn remove(&self, ctx: &mut Context, key: &(impl Key + ?Sized), field: &F) {
        ctx.host.map_remove(self.id, &key.key_bytes(), &field.key_bytes());
    }

    /// Removes the whole map of `key`.
    pub fn clear(&self, ctx: &mut Context, key: &(impl Key + ?Sized)) {
        ctx.host.remove(self.id, &key.key_bytes());
    }

    /// All fields of `key` (as their key bytes) with their values.
    pub fn entries(&self, ctx: &mut Context, key: &(impl Key + ?Sized)) -> Result<Vec<(Vec<u8>, V)>> {
        ctx.host
            .map_entries(self.id, &key.key_bytes())
            .into_iter()
            .map(|(field, bytes)| Ok((field, decode(&bytes)?)))
            .collect()
    }

    /// Number of fields of `key`.
    pub fn len(&self, ctx: &mut Context, key: &(impl Key + ?Sized)) -> u32 {
        ctx.host.map_len(self.id, &key.key_bytes())
    }
}
