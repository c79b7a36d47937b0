use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `kind = "memory"` dimension store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryDimensionConfig {
    /// JSON-lines file of initial rows, relative to the spec.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Field of each row that is its key (required with `path`).
    #[serde(default)]
    pub key_field: Option<String>,
}

/// `kind = "memory"` sink: keeps rows in memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySinkConfig {}
