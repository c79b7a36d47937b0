//! Generated records: seeded, reproducible, at a chosen rate. For demos,
//! tests and benchmarks.

mod config;
mod source;

pub use config::{DatagenConfig, FieldGen};
pub use source::DatagenSource;
