//! The real services the integration suites use, and how to reach them.
//! Addresses can be overridden with environment variables; a service that is
//! not up fails the test with the command that starts it (never a skip).

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// PostgreSQL (`SLUICE_TEST_POSTGRES`), default the machine's local server.
pub fn postgres_url() -> String {
    let url = env_or("SLUICE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test");
    require("PostgreSQL", &url, "scripts/services.sh");
    url
}

/// MySQL/MariaDB (`SLUICE_TEST_MYSQL`).
pub fn mysql_url() -> String {
    let url = env_or("SLUICE_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test");
    require("MariaDB", &url, "scripts/services.sh");
    url
}

/// Redis (`SLUICE_TEST_REDIS`).
pub fn redis_url() -> String {
    let url = env_or("SLUICE_TEST_REDIS", "redis://127.0.0.1:6379");
    require("Redis", &url, "scripts/services.sh");
    url
}

/// The shared Tansu broker of the suites (`SLUICE_TEST_KAFKA`, default
/// 127.0.0.1:19092), started with `scripts/tansu.sh start` when it is not up.
pub fn kafka_brokers() -> String {
    static STARTED: OnceLock<()> = OnceLock::new();
    let brokers = env_or("SLUICE_TEST_KAFKA", "127.0.0.1:19092");
    if !reachable(&brokers) {
        STARTED.get_or_init(|| {
            let script = repo_root().join("scripts/tansu.sh");
            let status = Command::new("bash").arg(&script).arg("start").status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "the Kafka-protocol broker (Tansu) is not up at {brokers} and `bash scripts/tansu.sh start` failed; \
                 run `bash scripts/setup.sh` to install and start it"
            );
        });
    }
    require("Kafka (Tansu)", &brokers, "scripts/tansu.sh start");
    brokers
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository")
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// `host:port` of a URL or broker list.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', ',', '?']).next().unwrap_or(rest).to_owned()
}

fn reachable(url: &str) -> bool {
    let Ok(mut addrs) = host_port(url).to_socket_addrs() else { return false };
    addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

fn require(service: &str, url: &str, start: &str) {
    assert!(reachable(url), "{service} is not reachable at {url}; start it with `bash {start}`");
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_port_of_urls() {
        assert_eq!(super::host_port("postgres://u:p@h:5432/db"), "h:5432");
        assert_eq!(super::host_port("127.0.0.1:19092,other:1"), "127.0.0.1:19092");
        assert_eq!(super::host_port("redis://127.0.0.1:6379"), "127.0.0.1:6379");
    }
}
