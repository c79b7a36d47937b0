//! Compiled components, keyed by the SHA-256 of their bytes: in memory, and
//! optionally on disk so a restart skips compilation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Default)]
pub(crate) struct ComponentCache {
    memory: Mutex<HashMap<String, Component>>,
    dir: Option<PathBuf>,
}

pub(crate) fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { memory: Mutex::default(), dir }
    }

    /// The compiled component for `bytes`, compiling only on a miss.
    pub(crate) fn get_or_compile(&self, engine: &Engine, hash: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        if let Some(c) = self.memory.lock().expect("cache lock").get(hash) {
            return Ok(c.clone());
        }
        let component = match self.load_from_disk(engine, hash) {
            Some(c) => c,
            None => {
                let c = Component::new(engine, bytes)?;
                self.store_on_disk(hash, &c);
                c
            }
        };
        self.memory.lock().expect("cache lock").insert(hash.to_owned(), component.clone());
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
            Ok(c) => Some(c),
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
    }
}
