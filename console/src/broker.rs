//! The embedded development broker: a Tansu (Kafka-protocol) broker run as
//! a child process of `sluice serve`, on a free loopback port, keeping its
//! topics in memory. It is for a laptop and the demo, not for production:
//! production points `--kafka` at a real cluster.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct EmbeddedBroker {
    pub brokers: String,
    child: tokio::process::Child,
}

impl EmbeddedBroker {
    /// Starts the broker; its log goes to `DATA/broker.log`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<EmbeddedBroker> {
        let binary = find_tansu().context(
            "the embedded development broker needs Tansu: install it with `scripts/tansu.sh install` \
             (or `cargo install tansu --locked`), set SLUICE_TANSU to its path, or pass --kafka BROKERS",
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let address = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(data_dir.join("broker.log"))?;
        let child = tokio::process::Command::new(&binary)
            .args(["broker", "--listener-url", &format!("tcp://{address}")])
            .args(["--advertised-listener-url", &format!("tcp://{address}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let started = Instant::now();
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            anyhow::ensure!(
                started.elapsed() < START_TIMEOUT,
                "the embedded broker did not listen on {address} within {START_TIMEOUT:?}; see {}",
                data_dir.join("broker.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(brokers = %address, "embedded development broker (Tansu, in-memory topics) started");
        Ok(EmbeddedBroker { brokers: address, child })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn find_tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let cargo_bin = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/tansu");
        cargo_bin.is_file().then_some(cargo_bin)
    })
}
