//! JSON lines in files (or stdin/stdout with `-`).

mod config;
mod sink;
mod source;

pub use config::{FileSinkConfig, FileSourceConfig};
pub use sink::FileSink;
pub use source::FileSource;
