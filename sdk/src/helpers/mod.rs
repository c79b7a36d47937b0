//! The usual streaming shapes, built on host state and timers.

mod count_distinct;
mod last_value;
mod window;

pub use count_distinct::CountDistinct;
pub use last_value::LastValue;
pub use window::{TumblingWindow, WindowResult};
