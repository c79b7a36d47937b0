//! Compiled components, keyed by the SHA-256 of their bytes: in memory, and
//! optionally on disk so a restart skips compilation. Both are bounded —
//! uploads come from tenants, and every distinct one compiles to a new
//! entry: memory by the size of the compiled code (least recently and
//! least often used first out, moka's policy), disk by the total size of
//! the files (least recently used first out).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled code kept in memory at most. Running jobs hold their own
/// reference, so evicting one only costs a reload (from disk) later.
pub(crate) const MEMORY_CACHE_BYTES: u64 = 512 * 1024 * 1024;
/// Compiled components kept on disk at most.
pub(crate) const DISK_CACHE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

pub(crate) struct ComponentCache {
    memory: moka::sync::Cache<String, Component>,
    dir: Option<PathBuf>,
    disk_bytes: u64,
}

pub(crate) fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The size of a component's compiled code (at least 1: nothing is free).
fn compiled_size(component: &Component) -> u32 {
    let range = component.image_range();
    u32::try_from((range.end as usize).saturating_sub(range.start as usize)).unwrap_or(u32::MAX).max(1)
}

impl ComponentCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Self::with_limits(dir, MEMORY_CACHE_BYTES, DISK_CACHE_BYTES)
    }

    pub(crate) fn with_limits(dir: Option<PathBuf>, memory_bytes: u64, disk_bytes: u64) -> Self {
        let memory = moka::sync::Cache::builder()
            .max_capacity(memory_bytes)
            .weigher(|_, component: &Component| compiled_size(component))
            .build();
        ComponentCache { memory, dir, disk_bytes }
    }

    /// The compiled component for `bytes`, compiling only on a miss.
    pub(crate) fn get_or_compile(&self, engine: &Engine, hash: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        if let Some(c) = self.memory.get(hash) {
            return Ok(c);
        }
        let component = match self.load_from_disk(engine, hash) {
            Some(c) => c,
            None => {
                let c = Component::new(engine, bytes)?;
                self.store_on_disk(hash, &c);
                c
            }
        };
        self.memory.insert(hash.to_owned(), component.clone());
        Ok(component)
    }

    fn path(&self, hash: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{hash}.cwasm")))
    }

    #[expect(unsafe_code, reason = "the file is one this cache serialized; wasmtime checks engine compatibility")]
    fn load_from_disk(&self, engine: &Engine, hash: &str) -> Option<Component> {
        let path = self.path(hash)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: only this cache writes `<hash>.cwasm` files (atomically, via
        // rename), and deserialization rejects artifacts of another engine.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => {
                // Used now: the last to go when the directory is trimmed.
                let _ =
                    std::fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(SystemTime::now()));
                Some(c)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring stale compiled component");
                None
            }
        }
    }

    fn store_on_disk(&self, hash: &str, component: &Component) {
        let Some(path) = self.path(hash) else { return };
        let result = component.serialize().map_err(std::io::Error::other).and_then(|bytes| {
            std::fs::create_dir_all(path.parent().expect("cache files have a directory"))?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)
        });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache compiled component");
        }
        if let Some(dir) = &self.dir
            && let Err(e) = trim(dir, self.disk_bytes)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot trim the compiled-component cache");
        }
    }
}

/// Removes the least recently used `.cwasm` files of `dir` until the rest
/// take at most `limit` bytes.
fn trim(dir: &Path, limit: u64) -> std::io::Result<()> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let meta = entry.metadata()?;
            files.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), path));
        }
    }
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= limit {
            break;
        }
        std::fs::remove_file(&path)?;
        total -= len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component there is: the preamble of the binary format.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).expect("engine")
    }

    #[test]
    fn memory_holds_no_more_compiled_code_than_its_limit() {
        let engine = engine();
        let one = compiled_size(&Component::new(&engine, EMPTY_COMPONENT).expect("compiles"));
        let cache = ComponentCache::with_limits(None, u64::from(one) * 2, 0);
        for n in 0..10 {
            cache.get_or_compile(&engine, &format!("hash-{n}"), EMPTY_COMPONENT).expect("compiles");
        }
        cache.memory.run_pending_tasks();
        assert!(cache.memory.entry_count() <= 2, "{} entries kept", cache.memory.entry_count());
        assert!(cache.memory.weighted_size() <= u64::from(one) * 2);
    }

    #[test]
    fn disk_keeps_the_most_recently_used_files_within_its_limit() {
        let engine = engine();
        let dir = tempfile::tempdir().expect("temp dir");
        let size = Component::new(&engine, EMPTY_COMPONENT).expect("compiles").serialize().expect("serializes").len();
        let cache = ComponentCache::with_limits(Some(dir.path().to_owned()), MEMORY_CACHE_BYTES, size as u64 * 2);
        for n in 0..5 {
            cache.get_or_compile(&engine, &format!("hash-{n}"), EMPTY_COMPONENT).expect("compiles");
            // Distinct modification times, whatever the file system's resolution.
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + n);
            let file = std::fs::File::options().write(true).open(dir.path().join(format!("hash-{n}.cwasm")));
            file.and_then(|f| f.set_modified(t)).expect("set the time");
        }
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["hash-3.cwasm", "hash-4.cwasm"], "the newest two remain");
    }
}
