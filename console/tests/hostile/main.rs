//! The hostile-tenant suite of issue 16: the real `sluice serve` (SQLite
//! metadata, local snapshots, no broker, the default `--allow-hosts`
//! policy) with two projects. Project `b` runs a job that keeps writing
//! generated rows into a SQLite table in its own folder; a developer of
//! project `a` (and, where the operator's policy is what must refuse, a's
//! project admin) tries each attack of the issue. Every attack must be
//! refused with a message that says why, leave the platform as it was, and
//! leave project `b` producing the same rows.
//!
//! Each test starts its own console (`platform::Platform::start`), so one
//! attack's outcome never hides another's. Nothing external is needed.

#[path = "../support/client.rs"]
mod client;
mod platform;
#[path = "../support/wait.rs"]
mod wait;

mod bombs;
mod connections;
mod isolation;
mod kafka_properties;
mod roles;
mod spec_sql;
mod unauthenticated;
