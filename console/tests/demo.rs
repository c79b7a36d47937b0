//! The README's first command in a test: `sluice serve` on its embedded
//! defaults (SQLite metadata, local snapshots, the embedded development
//! broker) creates the demo project, whose jobs run on generated data and
//! fill the SQLite warehouse.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "demo-test-password";
/// Generous: the first start compiles the demo components.
const PATIENCE: Duration = Duration::from_secs(180);

struct Server(Child);

impl Server {
    /// Ctrl-C, and waits for the process to end.
    fn interrupt(mut self) {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
        assert!(sent.success());
        let status = self.0.wait().expect("sluice serve ends");
        assert!(status.success(), "sluice serve stops cleanly on Ctrl-C: {status}");
    }
}

/// The demo jobs that run from the start.
const DEMO_RUNNING: [&str; 3] = ["order-feed", "hourly-premium", "lending-report"];

/// `sluice serve` with the demo, as `scripts/run.sh` runs it.
fn command_again(data: &Path, components: &Path) -> Command {
    let mut command = sluice_serve(data);
    command.arg("--demo-components").arg(components);
    command
}

/// The console's API, signed in as the first admin.
struct Console {
    http: reqwest::Client,
    url: String,
    cookie: String,
}

impl Console {
    async fn sign_in(url: &str) -> Console {
        let http = reqwest::Client::new();
        let login = http
            .post(format!("{url}/api/v1/login"))
            .json(&json!({ "name": "admin", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert!(login.status().is_success(), "the first admin signs in with SLUICE_ADMIN_PASSWORD");
        let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        Console { http, url: url.to_owned(), cookie }
    }

    async fn get(&self, path: &str) -> Value {
        let answer =
            self.http.get(format!("{}/api/v1{path}", self.url)).header("cookie", &self.cookie).send().await.unwrap();
        answer.json::<Value>().await.unwrap()
    }

    /// Waits until the hourly-premium run of this console has written rows,
    /// its chart has points and `filled` holds.
    async fn wait_for_hourly_output<F: std::future::Future<Output = bool>>(&self, filled: impl Fn() -> F) {
        let started = Instant::now();
        loop {
            let metrics = self.get("/projects/demo/jobs/hourly-premium/metrics?seconds=10").await;
            let out = metrics["totals"]["records_out"].as_u64().unwrap_or(0);
            let charted = !metrics["series"]["in_rate"].as_array().unwrap().is_empty();
            if out > 0 && charted && filled().await {
                return;
            }
            assert!(started.elapsed() < PATIENCE, "the demo jobs did not fill the warehouse: {metrics}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn rows(warehouse: &std::path::Path, table: &str) -> i64 {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", warehouse.display());
    let Ok(pool) = sqlx::AnyPool::connect(&url).await else { return 0 };
    let n = sqlx::query(&format!("select count(*) as n from {table}")).fetch_one(&pool).await;
    n.and_then(|r| r.try_get::<i64, _>("n")).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_embedded_defaults_runs_the_demo_project() {
    // Fails (never skips) without Tansu: the embedded broker needs it.
    sluice_tests::services::kafka_brokers();
    let data = tempfile::tempdir().unwrap();
    let components = sluice_tests::wasm("forward").parent().unwrap().to_path_buf();
    let (server, url) = start(command_again(data.path(), &components));

    let console = Console::sign_in(&url).await;
    let jobs = console.get("/projects/demo/jobs").await;
    let state =
        |name: &str| jobs.as_array().unwrap().iter().find(|j| j["job"]["name"] == name).map(|j| j["state"].clone());
    for running in DEMO_RUNNING {
        assert_eq!(state(running), Some(json!("running")), "{running} runs: {jobs}");
    }
    for deployed in ["large-tx-alert", "jinpan-sync"] {
        assert_eq!(state(deployed), Some(json!("new")), "{deployed} is deployed, not started: {jobs}");
    }

    // Generated orders flow through the embedded broker into the warehouse.
    let warehouse = data.path().join("files/demo/demo-warehouse.db");
    let filled = || async { rows(&warehouse, "hs_order").await > 0 && rows(&warehouse, "loan_funnel").await > 0 };
    console.wait_for_hourly_output(filled).await;

    // Ctrl-C stops the jobs with a snapshot; the next start (the README's
    // command run again) brings the demo back up on a new embedded broker.
    server.interrupt();
    let (server, url) = start(command_again(data.path(), &components));
    let console = Console::sign_in(&url).await;
    let jobs = console.get("/projects/demo/jobs").await;
    for running in DEMO_RUNNING {
        let job = jobs.as_array().unwrap().iter().find(|j| j["job"]["name"] == running);
        assert_eq!(job.map(|j| j["state"].clone()), Some(json!("running")), "{running} runs again: {jobs}");
    }
    console.wait_for_hourly_output(filled).await;
    drop(server);

    // The connections the demo made are sealed with the key file it created.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(data.path().join("secret.key")).expect("the secret key file");
        assert_eq!(key.permissions().mode() & 0o777, 0o600, "readable by its owner only");
    }
    for file in ["sluice.db", "sluice.db-wal"] {
        let metadata = std::fs::read(data.path().join(file)).unwrap_or_default();
        assert!(
            !metadata.windows(b"demo-warehouse".len()).any(|w| w == b"demo-warehouse"),
            "the warehouse connection's URL is not in the metadata database ({file}) as given"
        );
    }
}

/// `sluice serve` on `data`, without the broker and the demo (its caller adds those).
fn sluice_serve(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("SLUICE_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Starts `command` and waits for the console's address.
fn start(mut command: Command) -> (Server, String) {
    let mut child = command.spawn().expect("sluice serve starts");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    std::thread::spawn(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).for_each(|l| eprintln!("serve: {l}"))
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            if let Some(url) = line.strip_prefix("sluice console listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx.recv_timeout(PATIENCE).expect("sluice serve printed its address");
    (server, url)
}

#[test]
fn serve_refuses_a_secret_key_other_than_the_one_its_store_was_sealed_with() {
    let data = tempfile::tempdir().unwrap();
    let mut first = sluice_serve(data.path());
    first.args(["--no-broker", "--no-demo"]);
    drop(start(first));
    assert!(data.path().join("secret.key").exists(), "the first start creates the key file");

    let other = data.path().join("other.key");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
    let mut second = sluice_serve(data.path());
    second.args(["--no-broker", "--no-demo"]).arg("--secret-key-file").arg(&other);
    let refused = second.output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("other.key")
            && stderr.contains("not the one this metadata store's connections were sealed with"),
        "{stderr}"
    );

    // A missing key file is not replaced by a new, wrong one.
    let missing = data.path().join("missing.key");
    let mut third = sluice_serve(data.path());
    third.args(["--no-broker", "--no-demo"]).arg("--secret-key-file").arg(&missing);
    assert!(!third.output().unwrap().status.success());
    assert!(!missing.exists(), "the key made for this start is removed again");
}
