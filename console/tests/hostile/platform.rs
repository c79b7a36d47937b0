//! The platform under attack: the real `sluice serve` on a fresh data
//! directory with two projects. Project `b` runs `ledger`, generated rows
//! into a SQLite table of its own folder; project `a` has a developer (the
//! attacker), a project admin, a warehouse of its own and a job to deploy.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;

use crate::client::Client;
pub use crate::wait::wait_for;

const ADMIN_PASSWORD: &str = "hostile-admin-password";
/// Password of the users the suite creates.
const PASSWORD: &str = "hostile-user-password";
/// Generous: the machine is shared, and a first start compiles components.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Project b's job: generated rows (deterministic: a seed and a fixed
/// start time) forwarded into `ledger`. Every fourth value or so is text,
/// which the `bigint` column refuses: those rows are b's dead letters,
/// holding a memo only b may read.
const LEDGER_SPEC: &str = r#"
[sources.ticks]
kind = "datagen"
rate = 20
seed = 16
start_time = 1710432000000

[sources.ticks.fields]
seq = { gen = "sequence" }
amount = { gen = "choice", values = [10, 20, 30, "b-private-memo"] }

[sinks.out]
kind = "sql"
connection = "warehouse"
table = "ledger"
primary_key = ["seq"]
create_table = true
columns = { seq = "bigint", amount = "bigint" }
flush_interval = "200ms"
"#;

/// What only project b's members may see: in its dead letters.
pub const B_SECRET: &str = "b-private-memo";

/// `ledger` as project b's warehouse holds it: amount by sequence number.
pub type Ledger = BTreeMap<i64, i64>;

/// The `sluice serve` process; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Platform {
    _server: Server,
    pub data: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// The first (global) admin.
    pub admin: Client,
    /// `mallory`: a developer of project a, nothing else.
    pub dev: Client,
    /// `padma`: the admin of project a.
    pub a_admin: Client,
}

impl Platform {
    /// Starts `sluice serve` on the embedded defaults without a broker or
    /// the demo, with the default `--allow-hosts` policy, and sets up both
    /// projects; returns once project b's job has written rows.
    pub async fn start() -> Platform {
        let data = tempfile::tempdir().expect("a data directory");
        share_compiled_components(data.path());
        let (server, address) = serve(data.path());
        let admin = Client::anonymous(&address).login("admin", ADMIN_PASSWORD).await;
        admin.post("/projects", json!({ "name": "a", "description": "the attacker's" })).await.expect(201);
        let dev = sign_up(&admin, "mallory", "a", "developer").await;
        let a_admin = sign_up(&admin, "padma", "a", "admin").await;
        let platform = Platform { _server: server, data, address, admin, dev, a_admin };
        platform.run_project_b().await;
        platform.prepare_project_a().await;
        platform
    }

    pub fn anonymous(&self) -> Client {
        Client::anonymous(&self.address)
    }

    /// Project b: a SQLite warehouse in its folder and `ledger` running.
    async fn run_project_b(&self) {
        let a = &self.admin;
        a.post("/projects", json!({ "name": "b", "description": "the victim" })).await.expect(201);
        let warehouse = json!({ "kind": "database", "url": "sqlite:b-warehouse.db?mode=rwc" });
        a.put("/projects/b/connections/warehouse", warehouse).await.expect(204);
        a.post("/projects/b/jobs", json!({ "name": "ledger" })).await.expect(201);
        a.post_bytes("/projects/b/jobs/ledger/versions", component("forward")).await.expect(201);
        a.put("/projects/b/jobs/ledger/deployment", json!({ "spec": LEDGER_SPEC })).await.expect(200);
        a.post("/projects/b/jobs/ledger/start", json!({ "restore": "none" })).await.expect(201);
        wait_for("project b's ledger to have rows", PATIENCE, || async {
            let rows = self.b_ledger().await;
            if rows.len() >= 5 { Ok(()) } else { Err(format!("{} rows", rows.len())) }
        })
        .await;
    }

    /// Project a: a warehouse of its own and job `j` (the forward
    /// component, created and uploaded by its developer).
    async fn prepare_project_a(&self) {
        let warehouse = json!({ "kind": "database", "url": "sqlite:a-warehouse.db?mode=rwc" });
        self.a_admin.put("/projects/a/connections/warehouse", warehouse).await.expect(204);
        self.dev.post("/projects/a/jobs", json!({ "name": "j" })).await.expect(201);
        self.dev.post_bytes("/projects/a/jobs/j/versions", component("forward")).await.expect(201);
    }

    /// A path in the data directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.data.path().join(name)
    }

    /// `ledger` as project b's warehouse holds it now.
    pub async fn b_ledger(&self) -> Ledger {
        read_ledger(&self.b_warehouse()).await
    }

    /// Project b's SQLite warehouse, in its folder.
    pub fn b_warehouse(&self) -> PathBuf {
        self.path("files/b/b-warehouse.db")
    }

    /// Project b went on as if nothing happened: its one run still runs,
    /// the rows it had are unchanged, and new rows keep coming.
    pub async fn assert_b_kept_producing(&self, before: &Ledger) {
        let now = wait_for("project b's ledger to grow", PATIENCE, || async {
            let now = self.b_ledger().await;
            if now.len() >= before.len() + 10 {
                Ok(now)
            } else {
                Err(format!("{} rows, {} before", now.len(), before.len()))
            }
        })
        .await;
        for (seq, amount) in before {
            assert_eq!(now.get(seq), Some(amount), "row {seq} of project b's ledger changed");
        }
        let runs = self.admin.get("/projects/b/jobs/ledger/runs").await.expect(200);
        let runs = runs.as_array().expect("a list");
        assert_eq!(runs.len(), 1, "project b's job was never restarted: {runs:?}");
        assert_eq!(runs[0]["state"], "running", "project b's job still runs: {runs:?}");
        let failures = self.admin.get("/projects/b/events?job=ledger&kind=error").await.expect(200);
        assert_eq!(failures, json!([]), "no task of project b's job failed");
    }

    /// Every user as the global admin sees them: (name, is_admin, disabled).
    pub async fn users(&self) -> Vec<(String, bool, bool)> {
        let users = self.admin.get("/users").await.expect(200);
        let mut users: Vec<_> = users
            .as_array()
            .expect("a list")
            .iter()
            .map(|u| {
                let flag = |f: &str| u[f].as_bool().unwrap_or(false);
                (u["name"].as_str().unwrap_or_default().to_owned(), flag("is_admin"), flag("disabled"))
            })
            .collect();
        users.sort();
        users
    }

    /// The attacker is still a developer of project a and nothing more.
    pub async fn assert_dev_has_no_more_power(&self) {
        let me = self.dev.get("/me").await.expect(200);
        assert_eq!(me["user"]["is_admin"], false, "the developer is not a global admin: {me}");
        assert_eq!(me["projects"], json!([{ "name": "a", "role": "developer" }]), "{me}");
    }
}

/// `ledger` as the SQLite file `warehouse` holds it now (empty before the
/// job created it). The job writes while this reads: a read that fails
/// (the database busy) is tried again for up to 2 s.
pub async fn read_ledger(warehouse: &Path) -> Ledger {
    for _ in 0..20 {
        match try_read_ledger(warehouse).await {
            Ok(ledger) => return ledger,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ledger::new()
}

async fn try_read_ledger(warehouse: &Path) -> Result<Ledger, sqlx::Error> {
    let url = format!("sqlite://{}?mode=ro", warehouse.display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&url).await?;
    let rows = sqlx::query("select seq, amount from ledger").fetch_all(&pool).await;
    pool.close().await;
    Ok(rows?.iter().map(|r| (r.get::<i64, _>("seq"), r.get::<i64, _>("amount"))).collect())
}

/// Creates user `name` with `role` in `project` (as the global `admin`);
/// returns the user signed in.
async fn sign_up(admin: &Client, name: &str, project: &str, role: &str) -> Client {
    admin.post("/users", json!({ "name": name, "password": PASSWORD, "is_admin": false })).await.expect(201);
    admin.put(&format!("/projects/{project}/members/{name}"), json!({ "role": role })).await.expect(204);
    Client::anonymous(&admin.address).login(name, PASSWORD).await
}

/// Points the console's compiled-component cache at the one the fixture
/// suites share, so each test does not compile the same components again.
fn share_compiled_components(data: &Path) {
    let shared = sluice_tests::wasm("forward").parent().expect("fixture dir").join("compiled");
    std::fs::create_dir_all(&shared).expect("shared compile cache");
    std::os::unix::fs::symlink(&shared, data.join("cache")).expect("cache link");
}

/// Starts `sluice serve` on `data` and waits for its address. Settings
/// from this process's environment (`SLUICE_*`) are not passed on: the
/// suite tests the defaults.
fn serve(data: &Path) -> (Server, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")) {
        command.env_remove(key);
    }
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--no-broker", "--no-demo"])
        .env("SLUICE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("sluice serve starts");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
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
    let address = rx.recv_timeout(PATIENCE).expect("sluice serve printed its address");
    (server, address)
}

/// A fixture component's bytes, e.g. `component("forward")`.
pub fn component(name: &str) -> Vec<u8> {
    let path = sluice_tests::wasm(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A spec of project a's job `j` (the forward component) reading a JSON
/// lines file of a's folder into `sink`, a sink section's body.
pub fn spec_with_sink(sink: &str) -> String {
    format!("[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n\n[sinks.out]\n{sink}\n")
}

/// The body of a deployment of `spec` for project a's job.
pub fn deployment(spec: &str) -> Value {
    json!({ "spec": spec })
}
