//! Value-state entries the current call has read or written, kept decoded.
//!
//! A job that reads and writes the same key many times in a batch (a report
//! cell, an hour's totals, a clock) then decodes it once and encodes it once
//! per call instead of once per record: a read is a clone of the cached
//! value, a write replaces it. Written entries are encoded when the call
//! ends (or the cache is full) and go to the host with the call's other
//! writes, so the host sees the same state as without the cache.

use std::any::Any;
use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use serde::Serialize;

use crate::codec::encode_into;
use crate::{Error, Result};

/// Encodes a cached value in its stored form; the type is the one it was
/// cached as.
type Encode = fn(&dyn Any, &mut Vec<u8>) -> Result<()>;

struct Cached {
    state: u32,
    /// Where the key is in `ValueCache::keys`.
    key_start: u32,
    key_len: u32,
    /// `None`: the key holds nothing (never set, or removed).
    value: Option<Box<dyn Any>>,
    encode: Encode,
    /// Written in this call and not yet handed to the write buffer.
    written: bool,
}

/// What the cache holds for a key.
pub(crate) enum Lookup<T> {
    /// Not read or written in this call: ask the write buffer or the host.
    Unknown,
    Found(Option<T>),
}

/// The entries in the order they were first cached, their keys back to
/// back in one buffer (no allocation per key), indexed by hash of (state,
/// key).
#[derive(Default)]
pub(crate) struct ValueCache {
    keys: Vec<u8>,
    entries: Vec<Cached>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

fn encode_as<T: Serialize + 'static>(value: &dyn Any, out: &mut Vec<u8>) -> Result<()> {
    let value = value.downcast_ref::<T>().ok_or_else(|| Error::fatal("a cached state value changed its type"))?;
    encode_into(out, value)
}

impl ValueCache {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn key(&self, entry: &Cached) -> &[u8] {
        &self.keys[entry.key_start as usize..][..entry.key_len as usize]
    }

    fn find(&self, hash: u64, state: u32, key: &[u8]) -> Option<usize> {
        let found = self.index.find(hash, |&i| {
            let entry = &self.entries[i as usize];
            entry.state == state && self.key(entry) == key
        });
        found.map(|&i| i as usize)
    }

    /// The cached value of `key` as a `T`. A value another handle of the
    /// state wrote as another type is decoded from its stored form, as the
    /// host will hold it; one it only read is asked for again (`Unknown`),
    /// since its decoding may have dropped what this type reads.
    pub(crate) fn get<T: Clone + 'static>(
        &self,
        state: u32,
        key: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Lookup<T>> {
        if self.entries.is_empty() {
            return Ok(Lookup::Unknown);
        }
        let Some(i) = self.find(self.hasher.hash_one((state, key)), state, key) else { return Ok(Lookup::Unknown) };
        let cached = &self.entries[i];
        let Some(value) = &cached.value else { return Ok(Lookup::Found(None)) };
        if let Some(typed) = value.downcast_ref::<T>() {
            return Ok(Lookup::Found(Some(typed.clone())));
        }
        if !cached.written {
            return Ok(Lookup::Unknown);
        }
        let mut bytes = Vec::new();
        (cached.encode)(value.as_ref(), &mut bytes)?;
        decode(&bytes).map(|v| Lookup::Found(Some(v)))
    }

    /// Caches what a read of `key` found (not a write).
    pub(crate) fn cache_read<T: Serialize + 'static>(&mut self, state: u32, key: &[u8], value: Option<T>) {
        let value = value.map(|v| Box::new(v) as Box<dyn Any>);
        let hash = self.hasher.hash_one((state, key));
        match self.find(hash, state, key) {
            Some(i) => {
                let cached = &mut self.entries[i];
                cached.value = value;
                cached.encode = encode_as::<T>;
            }
            None => {
                let entry = Cached::new(state, key, &mut self.keys, value, encode_as::<T>, false);
                self.insert(hash, entry);
            }
        }
    }

    /// Writes `value` (`None`: removes) to a key this call has cached, and
    /// returns true; false, writing nothing, when the key is not cached (a
    /// write without a read before it, which the caller encodes at once).
    /// A value of the cached type is cloned into the cached one, reusing
    /// its allocations.
    pub(crate) fn write<T: Serialize + Clone + 'static>(&mut self, state: u32, key: &[u8], value: Option<&T>) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let Some(i) = self.find(self.hasher.hash_one((state, key)), state, key) else { return false };
        let cached = &mut self.entries[i];
        cached.written = true;
        match (cached.value.as_mut().and_then(|v| v.downcast_mut::<T>()), value) {
            (Some(held), Some(value)) => held.clone_from(value),
            (_, value) => {
                cached.value = value.map(|v| Box::new(v.clone()) as Box<dyn Any>);
                cached.encode = encode_as::<T>;
            }
        }
        true
    }

    fn insert(&mut self, hash: u64, entry: Cached) {
        let i = self.entries.len() as u32;
        self.entries.push(entry);
        let (entries, keys, hasher) = (&self.entries, &self.keys, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            let e = &entries[j as usize];
            hasher.hash_one((e.state, &keys[e.key_start as usize..][..e.key_len as usize]))
        });
    }

    /// Empties the cache, handing its writes, in the order they were first
    /// cached, to `write(state, key, value bytes or None for a removal)`.
    /// Every write is handed over even when one fails to encode; the first
    /// failure is returned with its state and key.
    pub(crate) fn drain_writes(
        &mut self,
        mut write: impl FnMut(u32, &[u8], Option<&[u8]>),
    ) -> std::result::Result<(), Unwritten> {
        let mut bytes = Vec::new();
        let mut failed = None;
        for cached in self.entries.drain(..) {
            if !cached.written {
                continue;
            }
            let key = &self.keys[cached.key_start as usize..][..cached.key_len as usize];
            match &cached.value {
                None => write(cached.state, key, None),
                Some(value) => {
                    bytes.clear();
                    match (cached.encode)(value.as_ref(), &mut bytes) {
                        Ok(()) => write(cached.state, key, Some(&bytes)),
                        Err(error) => {
                            failed = failed.or(Some(Unwritten { state: cached.state, key: key.to_vec(), error }))
                        }
                    }
                }
            }
        }
        self.keys.clear();
        self.index.clear();
        failed.map_or(Ok(()), Err)
    }
}

/// A written value that did not encode.
pub(crate) struct Unwritten {
    pub(crate) state: u32,
    pub(crate) key: Vec<u8>,
    pub(crate) error: Error,
}

impl Cached {
    fn new(
        state: u32,
        key: &[u8],
        keys: &mut Vec<u8>,
        value: Option<Box<dyn Any>>,
        encode: Encode,
        written: bool,
    ) -> Self {
        let key_start = keys.len() as u32;
        keys.extend_from_slice(key);
        Cached { state, key_start, key_len: key.len() as u32, value, encode, written }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode;

    fn drained(cache: &mut ValueCache) -> Vec<(u32, Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        assert!(cache.drain_writes(|s, k, v| out.push((s, k.to_vec(), v.map(<[u8]>::to_vec)))).is_ok());
        out
    }

    fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_into(&mut bytes, value).unwrap();
        bytes
    }

    #[test]
    fn reads_see_writes_and_only_writes_reach_the_host() {
        let mut cache = ValueCache::default();
        assert!(matches!(cache.get::<u64>(0, b"a", decode).unwrap(), Lookup::Unknown));
        assert!(!cache.write(0, b"a", Some(&1u64)), "a key not read first is not cached");
        cache.cache_read(0, b"a", Some(1u64));
        cache.cache_read(0, b"b", Some(2u64));
        cache.cache_read(1, b"a", Some(9u64));
        assert!(cache.write(0, b"b", Some(&3u64)));
        assert!(cache.write(1, b"a", None::<&u64>));
        assert!(matches!(cache.get::<u64>(0, b"a", decode).unwrap(), Lookup::Found(Some(1))));
        assert!(matches!(cache.get::<u64>(0, b"b", decode).unwrap(), Lookup::Found(Some(3))));
        assert!(matches!(cache.get::<u64>(1, b"a", decode).unwrap(), Lookup::Found(None)), "removed");
        assert_eq!(
            drained(&mut cache),
            [(0, b"b".to_vec(), Some(encoded(&3u64))), (1, b"a".to_vec(), None)],
            "in order"
        );
        assert_eq!(cache.len(), 0);
        assert!(matches!(cache.get::<u64>(0, b"b", decode).unwrap(), Lookup::Unknown), "emptied");

        for i in 0..1000u32 {
            cache.cache_read(2, i.to_string().as_bytes(), Some(i));
            if i % 2 == 0 {
                assert!(cache.write(2, i.to_string().as_bytes(), Some(&(i + 1))));
            }
        }
        for i in 0..1000u32 {
            let want = if i % 2 == 0 { i + 1 } else { i };
            assert!(
                matches!(cache.get::<u32>(2, i.to_string().as_bytes(), decode).unwrap(), Lookup::Found(Some(v)) if v == want)
            );
        }
        assert_eq!(drained(&mut cache).len(), 500, "only the writes");
    }

    #[test]
    fn another_type_reads_a_written_value_as_stored_and_asks_again_for_a_read_one() {
        let mut cache = ValueCache::default();
        cache.cache_read(0, b"w", Some(1u64));
        assert!(cache.write(0, b"w", Some(&7u64)));
        assert!(matches!(cache.get::<i32>(0, b"w", decode).unwrap(), Lookup::Found(Some(7))));
        assert!(cache.get::<String>(0, b"w", decode).is_err(), "what does not decode fails, as from the host");
        cache.cache_read(0, b"r", Some(3.5f64));
        assert!(matches!(cache.get::<u64>(0, b"r", decode).unwrap(), Lookup::Unknown));
    }

    #[test]
    fn a_value_that_does_not_encode_is_reported_with_its_key_and_the_rest_are_written() {
        struct Unserializable;
        impl Serialize for Unserializable {
            fn serialize<S: serde::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        impl Clone for Unserializable {
            fn clone(&self) -> Self {
                Unserializable
            }
        }
        let mut cache = ValueCache::default();
        cache.cache_read(0, b"bad", None::<Unserializable>);
        assert!(cache.write(0, b"bad", Some(&Unserializable)));
        cache.cache_read(0, b"good", None::<u8>);
        assert!(cache.write(0, b"good", Some(&1u8)));
        let mut written = Vec::new();
        let failed = cache.drain_writes(|_, k, _| written.push(k.to_vec())).expect_err("fails");
        assert_eq!((failed.state, failed.key.as_slice()), (0, &b"bad"[..]));
        assert_eq!(written, [b"good".to_vec()]);
    }
}
