//! The `sluice` binary's library: the CLI verbs, and `sluice serve` — the
//! console (web UI and REST API), the metadata store, access control and
//! the in-process worker that runs deployed jobs.

pub mod api;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod demo;
pub mod serve;
pub mod store;
pub mod topics;
pub mod worker;
