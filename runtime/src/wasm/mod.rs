//! The WASM side: the engine and compiled-component cache, the host half of
//! the WIT world (one module per interface), and job instances with limits.

pub mod bindings;
pub use bindings::StateKeying;
mod budget;
mod cache;
mod engine;
pub mod host;
mod instance;
mod limits;

pub use engine::{ABI_VERSION, JobEngine, LoadError, LoadedComponent};
pub use instance::{InstanceError, JobInstance};
pub use limits::{JobLimits, LimitHit};
