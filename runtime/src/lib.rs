//! # sluice-runtime
//!
//! The engine of Sluice: runs job components (wasmtime, component model) on
//! batches from sources, keeps their keyed state on the host, and routes
//! their output to sinks. See `docs/ARCHITECTURE.md`.

pub mod clock;
pub mod connections;
pub mod connectors;
pub mod fault;
#[cfg(test)]
mod fuzz_inputs;
pub mod job;
pub mod metrics;
pub mod snapshot;
pub mod state;
pub mod wasm;
