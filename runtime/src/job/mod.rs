//! Jobs: the spec, batches, timers and the task loop that drives an instance.

pub mod batch;
pub mod ceilings;
#[cfg(test)]
mod fuzz_spec;
pub mod lease;
pub mod origin_dedup;
mod overrides;
pub mod run;
pub mod spec;
pub mod stages;
pub mod task;
pub mod timers;

pub use ceilings::{Ceilings, OverCeiling};
pub use lease::{LeaseGate, LeaseLost};
pub use overrides::SpecOverrides;
pub use run::{BuildError, TaskBuilder, check_state_keying, state_keying_name};
pub use spec::JobSpec;
pub use task::{Task, TaskCommand, TaskEnd, TaskError};
