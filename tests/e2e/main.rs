//! End to end: the seed-001 jobs (compiled to WASM) read generated events
//! from Tansu topics and write to PostgreSQL and MariaDB sink tables; the
//! rows are compared with the expected result computed independently by a
//! SQL query over the same events loaded into PostgreSQL.

mod feeds;
mod harness;
mod hourly_premium;
mod jinpan;
mod large_tx;
mod last_page;
mod lending;
mod premium_drop;
