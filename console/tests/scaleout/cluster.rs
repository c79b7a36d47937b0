//! A cluster of real processes on one PostgreSQL store: `sluice serve
//! --workers 0` consoles and `sluice worker` processes, each a child
//! process the test can SIGKILL, SIGSTOP and SIGCONT.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "scaleout-admin-password";
/// The lease of every process: short, so takeovers are quick to test.
pub const LEASE: &str = "2s";
/// Generous: the machine is shared, and a first start compiles components.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A child process; killed when dropped.
pub struct Process {
    child: Child,
    pub name: String,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no drain, no snapshot, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP or SIGCONT (a paused process: a zombie once its lease expires).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// SIGTERM, then waits for the process to exit (a worker drains).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < PATIENCE, "{} did not exit after SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A stopped process cannot die of SIGKILL until it is continued.
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal("CONT");
        }
        self.kill();
    }
}

/// The shared parts: a metadata database of its own (also holding the
/// snapshots), the secret key file, and a directory per process.
pub struct Shared {
    pub database: String,
    pub key_file: PathBuf,
    pub dir: tempfile::TempDir,
    admin_url: String,
    database_name: String,
    /// `--lease` of every process.
    pub lease: &'static str,
    /// `--allow-hosts` of every process: the test's services are local.
    pub allow_hosts: String,
}

impl Shared {
    pub async fn new() -> Shared {
        Shared::with_lease(LEASE).await
    }

    pub async fn with_lease(lease: &'static str) -> Shared {
        let test_url = sluice_tests::services::postgres_url();
        let (base, _) = test_url.rsplit_once('/').expect("a database URL");
        let admin_url = format!("{base}/postgres");
        let database_name = format!("sluice_scaleout_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("PostgreSQL");
        sqlx::query(&format!("drop database if exists {database_name}")).execute(&admin).await.unwrap();
        sqlx::query(&format!("create database {database_name}")).execute(&admin).await.unwrap();
        admin.close().await;
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("secret.key");
        std::fs::write(&key_file, hex::encode(rand::random::<[u8; 32]>())).unwrap();
        Shared {
            database: format!("{base}/{database_name}"),
            key_file,
            dir,
            admin_url,
            database_name,
            lease,
            allow_hosts: "127.0.0.1".into(),
        }
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // The fixture suites' compiled components, so no process compiles again.
        let shared = sluice_tests::wasm("forward").parent().expect("fixture dir").join("compiled");
        std::fs::create_dir_all(&shared).unwrap();
        let cache = dir.join("cache");
        if !cache.exists() {
            std::os::unix::fs::symlink(&shared, cache).unwrap();
        }
        dir
    }

    /// `sluice serve --workers 0` on the shared store; returns it and its address.
    pub fn console(&self, name: &str) -> (Process, String) {
        let mut command = sluice(&self.data_dir(name));
        command
            .arg("serve")
            .args(["--workers", "0", "--listen", "127.0.0.1:0", "--no-broker", "--no-demo"])
            .args(self.common())
            .env("SLUICE_ADMIN_PASSWORD", ADMIN_PASSWORD);
        let (process, line) = spawn(name, command, "sluice console listening on ");
        (process, line.trim().to_owned())
    }

    /// `sluice worker --name NAME --slots 2` on the shared store.
    pub fn worker(&self, name: &str) -> Process {
        self.worker_with_slots(name, 2)
    }

    pub fn worker_with_slots(&self, name: &str, slots: u32) -> Process {
        let mut command = sluice(&self.data_dir(name));
        command.arg("worker").args(["--name", name, "--slots", &slots.to_string()]).args(self.common());
        spawn(name, command, "sluice worker ").0
    }

    /// A worker in network namespace `namespace`, reaching the metadata
    /// store at `database` and the snapshots at `snapshots`.
    pub fn worker_in(&self, name: &str, namespace: &str, database: &str, snapshots: &str) -> Process {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace]).arg(env!("CARGO_BIN_EXE_sluice"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")) {
            command.env_remove(key);
        }
        command.env("SLUICE_DATA_DIR", self.data_dir(name)).env("SLUICE_LOG", "warn,sluice_console=info");
        let mut args = self.common();
        for (flag, value) in [("--database", database), ("--snapshots", snapshots)] {
            let at = args.iter().position(|a| a == flag).expect("a common flag");
            args[at + 1] = value.to_owned();
        }
        command.arg("worker").args(["--name", name, "--slots", "2"]).args(args);
        spawn(name, command, "sluice worker ").0
    }

    fn common(&self) -> Vec<String> {
        vec![
            "--database".into(),
            self.database.clone(),
            "--snapshots".into(),
            self.database.clone(),
            "--secret-key-file".into(),
            self.key_file.display().to_string(),
            "--lease".into(),
            self.lease.into(),
            "--allow-hosts".into(),
            self.allow_hosts.clone(),
        ]
    }

    pub async fn drop_database(&self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
        let _ =
            sqlx::query(&format!("drop database if exists {} with (force)", self.database_name)).execute(&admin).await;
    }
}

fn sluice(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")) {
        command.env_remove(key);
    }
    command.env("SLUICE_DATA_DIR", data_dir).env("SLUICE_LOG", "warn,sluice_console=info");
    command
}

/// Spawns `command`, echoes its output with `name` in front, and waits for
/// the stdout line starting with `ready`; returns the rest of that line.
fn spawn(name: &str, mut command: Command, ready: &'static str) -> (Process, String) {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("sluice starts");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let process = Process { child, name: name.to_owned() };
    let tag = name.to_owned();
    std::thread::spawn(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).for_each(|l| eprintln!("{tag}: {l}"))
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let tag = name.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("{tag}: {line}");
            if let Some(rest) = line.strip_prefix(ready) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    let line = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| panic!("{name} did not start"));
    (process, line)
}
