//! Connectors against real services: Kafka (Tansu), PostgreSQL, MariaDB,
//! SQLite and Redis. See `sluice_tests::services` for addresses.

mod dimension_fences;
mod kafka;
mod kafka_hop;
mod redis;
mod sql;
mod sql_hardening;
mod sql_source;
