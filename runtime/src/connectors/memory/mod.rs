//! In-memory connectors: dimension tables seeded from a file, sinks that keep
//! rows (debug runs, tests) and sources fed by the caller.

mod config;
mod dimension;
mod sink;
mod source;

pub use config::{MemoryDimensionConfig, MemorySinkConfig};
pub use dimension::MemoryDimension;
pub use sink::MemorySink;
pub use source::{MemoryRecord, MemorySource};
