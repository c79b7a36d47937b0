//! End to end: the seed-001 jobs (compiled to WASM) read generated events
//! from Tansu topics and write to PostgreSQL and MariaDB sink tables; the
//! rows are compared with the expected result computed independently by a
//! SQL query over the same events loaded into PostgreSQL.

mod harness;
mod hourly_premium;
mod last_page;
mod premium_drop;
