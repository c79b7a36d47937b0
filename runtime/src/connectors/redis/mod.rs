//! Redis as a dimension store (OTS/HBase-style lookups in the seeds).

mod config;
mod dimension;

pub use config::{RedisDimensionConfig, RedisLayout};
pub use dimension::RedisDimension;
