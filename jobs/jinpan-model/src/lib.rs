//! 金盘 (seed 000): what the three jinpan jobs share.
//!
//! 盘宝 pushes every order with the borrower's credit report to a message
//! queue; 金盘 splits each into normalised tables keyed by `user_id` and
//! `order_id` ([`tables`]). Three jobs write them:
//!
//! - `jinpan-sync` (streaming): order messages from Kafka into the tables;
//! - `jinpan-compensate` (bounded, daily): 盘宝's order table (the source of
//!   record) against the synced `jp_order`, back-filling what messages lost;
//! - `jinpan-postloan` (bounded, daily): 盘宝's repayment status into
//!   `jp_repayment`.
//!
//! Sync and compensation write the same rows through [`split::emit_order`].
//! Every row carries the version of the order it came from
//! (`gmt_modified`, then `order_id`), and [`versions::Versions`] lets a row
//! replace only an older one. The tables therefore end up the same whatever
//! the order messages arrive in, however often they are replayed or
//! duplicated, and whichever job writes a row first: for each key, the row
//! of the newest order version that has it.

pub mod order;
pub mod samples;
pub mod split;
pub mod tables;
pub mod versions;

pub use order::{Decimal, OrderEvent};
pub use split::{Split, emit_order};
pub use versions::{Version, Versions};
