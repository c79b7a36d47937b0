//! Runtime suite: example jobs and purpose-built guests as real WASM
//! components in the real runtime.

mod failures;
mod guest_bounds;
mod hostile;
mod lease;
mod load;
mod parity;
mod row_ids;
mod s3_server;
mod snapshots;
mod stages;
mod state_cost;
