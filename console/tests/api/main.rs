//! The console's REST API (docs/API.md) against a real server: each test
//! spawns its own console (`helpers::spawn_app`: fresh SQLite metadata,
//! snapshots and worker in a temporary directory, the router on a free
//! port) and talks to it over HTTP as the users of a project.
//!
//! Services: the Kafka tests use the shared Tansu broker
//! (`sluice_tests::services::kafka_brokers`, started when down), the
//! PostgreSQL test the local server; a missing service fails the test.

mod fixtures;
#[path = "../support/fresh_database.rs"]
mod fresh_database;
mod helpers;
#[path = "../support/wait.rs"]
mod wait;

mod account_admin;
mod accounts;
mod dead_letters;
mod debug;
mod jobs;
mod large_tx;
mod leaks;
mod leases;
mod lending_staged;
mod lifecycle;
mod limits;
mod one_active_run;
mod operations;
mod permissions;
mod policy;
mod postgres;
mod projects;
mod quotas;
mod roles;
mod schedule;
mod sign_in;
mod stages;
mod state_keying;
mod validation;
