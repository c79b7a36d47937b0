use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `kind = "file"` source: one record per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// File to read, relative to the spec; `-` reads stdin.
    pub path: PathBuf,
    /// JSON field (milliseconds since the Unix epoch) to use as event time.
    #[serde(default)]
    pub event_time_field: Option<String>,
    /// JSON field whose value becomes the record key.
    #[serde(default)]
    pub key_field: Option<String>,
}

/// `kind = "file"` sink: one JSON row per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// File to write, relative to the spec; `-` writes stdout.
    pub path: PathBuf,
    /// Append to an existing file instead of truncating it when the job
    /// starts fresh. Either way a restore never wipes the file: without
    /// `append` it is cut back to its length at the snapshot (the replay
    /// writes the rest again, once); with `append` (a file shared with
    /// other jobs) it is only appended to.
    #[serde(default)]
    pub append: bool,
}
