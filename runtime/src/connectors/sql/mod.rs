//! SQL sink tables, dimension tables and bounded query sources on
//! PostgreSQL, MySQL/MariaDB and SQLite (sqlx).
//!
//! Values travel as text and each database converts them to the column's
//! type, so one conversion ([`value`]) and one set of statements per
//! dialect ([`write`]) serve the sink and the dimension store alike.

mod config;
mod dialect;
mod dimension;
mod pool;
mod retry;
mod schema;
mod sink;
mod source;
mod target;
mod types;
mod value;
mod write;

pub use config::{SqlDimensionConfig, SqlSinkConfig, SqlSinkMode, SqlSourceConfig};
pub use dimension::SqlDimension;
pub use sink::SqlSink;
pub use source::SqlSource;

#[cfg(test)]
mod fuzz_rows;
