//! The CLI against a real console: `sluice serve` in a temporary data
//! directory, then `sluice login`, `sluice job …` and `sluice snapshot …`
//! as a user types them, with a Kafka-sourced job (Tansu) so that it keeps
//! running until it is stopped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_tests::kafka::{create_topic, produce_unbatched, unique_topic};
use sluice_tests::services::kafka_brokers;

const PASSWORD: &str = "cli-test-password";

/// The console process; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sluice serve` on a free port and waits for its "listening on" line.
fn serve(data_dir: &Path) -> Server {
    // Compiled components are shared with the fixture suites.
    let shared = sluice_tests::wasm("hourly_premium").parent().unwrap().join("compiled");
    std::fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, data_dir.join("cache")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--no-demo", "--no-broker"])
        // The test broker runs on this machine, which the default refuses.
        .args(["--allow-hosts", "127.0.0.0/8,::1"])
        .env("SLUICE_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sluice serve starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("sluice console listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("sluice serve did not print its address within 120 s")
    });
    Server { child, url }
}

/// Runs `sluice ARGS` with the credentials file in `home`.
fn sluice(home: &Path, args: &[&str]) -> Output {
    sluice_with(home, args, &[], None)
}

/// Runs `sluice ARGS` with the credentials file in `home`, the variables
/// `env` and `stdin` on its standard input (none when `None`).
fn sluice_with(home: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(args)
        .env("SLUICE_CREDENTIALS", home.join("credentials.json"))
        .env_remove("SLUICE_URL")
        .env_remove("SLUICE_TOKEN")
        .env_remove("SLUICE_PASSWORD")
        .env_remove("SLUICE_NEW_PASSWORD")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("sluice runs");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("sluice runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a verb that must succeed; returns its stdout.
#[track_caller]
fn ok(home: &Path, args: &[&str]) -> String {
    let out = sluice(home, args);
    assert!(out.status.success(), "sluice {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Polls `sluice job status` until its output satisfies `done`.
fn wait_for_status(home: &Path, job: &str, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let status = ok(home, &["job", "status", job, "-p", "cli"]);
        if done(&status) {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "job status never got there: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spec(topic: &str) -> String {
    format!(
        r#"
[parameters]
utc_offset_minutes = "480"
since_ms = "0"

[sources.user_order]
kind = "kafka"
connection = "events"
topic = "{topic}"
start = "earliest"
event_time_field = "gmt_modified"

[sinks.hs_order]
kind = "sql"
connection = "warehouse"
table = "hs_order"
primary_key = ["biz_date"]
create_table = true
columns = {{ biz_date = "varchar(10)", total_premium = "decimal(18,2)", policy_cnt = "bigint", policy_holder_cnt = "bigint" }}
"#
    )
}

/// Project `cli` with its connections, made over the REST API (the CLI has
/// no verbs for them).
async fn prepare_project(url: &str, token: &str, brokers: &str, warehouse: &str) {
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        http.request(method, format!("{url}/api/v1{path}")).bearer_auth(token).json(&body).send()
    };
    let answer = call(reqwest::Method::POST, "/projects", json!({ "name": "cli" })).await.unwrap();
    assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
    for (name, kind, address) in [("events", "kafka", brokers), ("warehouse", "database", warehouse)] {
        let answer = call(
            reqwest::Method::PUT,
            &format!("/projects/cli/connections/{name}"),
            json!({ "kind": kind, "url": address }),
        )
        .await
        .unwrap();
        assert_eq!(answer.status(), 204, "{}", answer.text().await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_job_on_a_console() {
    let brokers = kafka_brokers();
    let topic = unique_topic("cli-client");
    create_topic(&brokers, &topic, 1).await;
    let orders: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"id":{},"order_no":"PO{i:05}","customer_tel":"138{:08}","gmt_modified":{},"account_payble":{}.50}}"#,
                1 + i % 7,
                1 + i % 7,
                1_710_432_000_000i64 + i * 60_000,
                100 + i
            )
        })
        .collect();
    produce_unbatched(&brokers, &topic, orders.iter().map(|o| (0, "order", o.clone()))).await;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let home = tmp.path();
    let server = serve(&data);

    // Not signed in yet.
    let out = sluice(home, &["job", "list", "-p", "cli"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("sluice login"), "{}", text(&out.stderr));
    let out =
        sluice_with(home, &["login", "--url", &server.url, "--user", "admin"], &[("SLUICE_PASSWORD", "wrong")], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("wrong user name or password"), "{}", text(&out.stderr));

    let login =
        sluice_with(home, &["login", "--url", &server.url, "--password-stdin"], &[], Some(&format!("{PASSWORD}\n")));
    assert!(login.status.success(), "{}", text(&login.stderr));
    let login = text(&login.stdout);
    assert!(login.contains("signed in") && login.contains("admin"), "{login}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("credentials.json")).unwrap()).unwrap();
    assert_eq!(saved["url"], server.url.as_str());
    let token = saved["token"].as_str().expect("the token is saved").to_owned();
    // Named in the project's file area (DATA/files/cli), where its SQLite
    // connections must be.
    prepare_project(&server.url, &token, &brokers, "sqlite:warehouse.db?mode=rwc").await;

    let created = ok(home, &["job", "create", "hourly", "-p", "cli", "--description", "hourly premium"]);
    assert!(created.contains("\"name\": \"hourly\""), "{created}");
    let component = sluice_tests::wasm("hourly_premium");
    let uploaded =
        ok(home, &["job", "upload", "hourly", component.to_str().unwrap(), "-p", "cli", "--note", "first version"]);
    assert!(uploaded.contains("uploaded hourly v1 (sha256 "), "{uploaded}");
    let spec_path: PathBuf = tmp.path().join("job.toml");
    std::fs::write(&spec_path, spec(&topic)).unwrap();
    let deployed = ok(home, &["job", "deploy", "hourly", "--spec", spec_path.to_str().unwrap(), "-p", "cli"]);
    assert!(deployed.contains("deployment of hourly saved"), "{deployed}");
    let listed = ok(home, &["job", "list", "-p", "cli"]);
    assert!(listed.contains("hourly") && listed.contains("new") && listed.contains("v1"), "{listed}");

    let started = ok(home, &["job", "start", "hourly", "-p", "cli", "--restore", "none"]);
    assert!(started.contains("hourly: run ") && started.contains("running"), "{started}");
    let status = wait_for_status(home, "hourly", |s| s.contains("in 50,"));
    assert!(status.starts_with("hourly: running"), "{status}");
    assert!(status.contains("task 0 shard 0 on"), "{status}");
    let again = sluice(home, &["job", "start", "hourly", "-p", "cli"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("stop it first"), "{}", text(&again.stderr));

    let taken = ok(home, &["snapshot", "take", "hourly", "-p", "cli"]);
    let snapshot_id = taken.trim().to_owned();
    assert!(!snapshot_id.is_empty(), "snapshot take prints the id");
    let snapshots = ok(home, &["snapshot", "list", "hourly", "-p", "cli"]);
    assert!(snapshots.contains(&snapshot_id) && snapshots.contains("manual"), "{snapshots}");

    let stopped = ok(home, &["job", "stop", "hourly", "-p", "cli"]);
    assert!(stopped.contains("stopped"), "{stopped}");
    let snapshots = ok(home, &["snapshot", "list", "hourly", "-p", "cli"]);
    assert!(snapshots.lines().count() >= 2 && snapshots.contains("stop"), "the stop took a snapshot: {snapshots}");
    let status = ok(home, &["job", "status", "hourly", "-p", "cli"]);
    assert!(status.starts_with("hourly: stopped"), "{status}");
    let runs = ok(home, &["job", "runs", "hourly", "-p", "cli"]);
    assert!(runs.contains("\"state\": \"stopped\""), "{runs}");

    // Back to the manual snapshot, then stopped again.
    let restored = ok(home, &["snapshot", "restore", "hourly", &snapshot_id, "-p", "cli"]);
    assert!(
        restored.starts_with("hourly: run ") && restored.contains(&format!("from snapshot {snapshot_id}")),
        "{restored}"
    );
    wait_for_status(home, "hourly", |s| s.starts_with("hourly: running"));
    let stopped = ok(home, &["job", "stop", "hourly", "-p", "cli", "--no-snapshot"]);
    assert!(stopped.contains("stopped"), "{stopped}");

    // A debug run over JSON lines prints what the job made of them.
    let records = tmp.path().join("orders.jsonl");
    std::fs::write(&records, format!("{}\n{}\n", orders[0], orders[1])).unwrap();
    let debugged = ok(home, &["job", "debug", "hourly", "--records", records.to_str().unwrap(), "-p", "cli"]);
    assert!(debugged.contains("\"records_in\": 2"), "{debugged}");

    // The operator's settings given once stay as deployed when a later
    // deploy does not give them; `none` removes the schedule.
    let spec_arg = spec_path.to_str().unwrap();
    let deploy = ["job", "deploy", "hourly", "--spec", spec_arg, "-p", "cli"];
    // Hourly premium's state is global (totals per hour over all users):
    // parallelism 2 is refused, saying why and what to declare instead.
    let parallel = sluice(home, &[&deploy[..], &["--parallelism", "2"]].concat());
    assert!(!parallel.status.success());
    let refusal = text(&parallel.stderr);
    assert!(
        refusal.contains("cannot run at parallelism 2") && refusal.contains("StateKeying::ByRecordKey"),
        "{refusal}"
    );
    // So is a rescale to 2; a rescale to 1 is saved (the job is stopped).
    let rescaled = sluice(home, &["job", "rescale", "hourly", "--parallelism", "2", "-p", "cli"]);
    assert!(!rescaled.status.success());
    assert!(text(&rescaled.stderr).contains("cannot run at parallelism 2"), "{}", text(&rescaled.stderr));
    let rescaled = ok(home, &["job", "rescale", "hourly", "--parallelism", "1", "-p", "cli"]);
    assert!(rescaled.contains("\"parallelism\": 1") && rescaled.contains("\"run\": null"), "{rescaled}");
    ok(home, &[&deploy[..], &["--memory-mb", "256", "--schedule", "0 0 2 * * *"]].concat());
    ok(home, &[&deploy[..], &["--param", "since_ms=1"]].concat());
    let upgraded = ok(home, &["job", "upgrade", "hourly", "1", "-p", "cli"]);
    for kept in ["\"memory_mb\": 256", "\"schedule\": \"0 0 2 * * *\"", "\"since_ms\": \"1\""] {
        assert!(upgraded.contains(kept), "{kept} in {upgraded}");
    }
    ok(home, &[&deploy[..], &["--schedule", "none"]].concat());
    let upgraded = ok(home, &["job", "upgrade", "hourly", "1", "-p", "cli"]);
    assert!(upgraded.contains("\"schedule\": null") && upgraded.contains("\"memory_mb\": 256"), "{upgraded}");

    // The server's message, and a failing exit.
    let not_wasm = tmp.path().join("notes.txt");
    std::fs::write(&not_wasm, "not a component").unwrap();
    let out = sluice(home, &["job", "upload", "hourly", not_wasm.to_str().unwrap(), "-p", "cli"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("not a valid job component") && err.contains("magic bytes"), "{err}");
    let out = sluice(home, &["job", "stop", "hourly", "-p", "cli"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not running"), "{}", text(&out.stderr));
    let out = sluice(home, &["job", "status", "nope", "-p", "cli"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no job named `nope`"), "{}", text(&out.stderr));

    drop(server);
}

/// Signing in without the password on the command line, a credentials file
/// only its owner reads, and the account verbs: `sluice password` and
/// `sluice user`.
#[test]
fn accounts_from_the_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = serve(&data);
    // A credentials file in a directory the CLI makes.
    let home = tmp.path().join("home/sluice");
    let login = ["login", "--url", &server.url, "--user", "admin"];

    let refused = sluice_with(&home, &[&login[..], &["--password", PASSWORD]].concat(), &[], None);
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(said.contains("`--password` is not accepted") && said.contains("--password-stdin"), "{said}");
    let no_password = sluice_with(&home, &login, &[], None);
    assert!(!no_password.status.success());
    assert!(
        text(&no_password.stderr).contains("pipe it in with --password-stdin, set SLUICE_PASSWORD"),
        "{}",
        text(&no_password.stderr)
    );

    let signed_in = sluice_with(&home, &login, &[("SLUICE_PASSWORD", PASSWORD)], None);
    assert!(signed_in.status.success(), "{}", text(&signed_in.stderr));
    let file = std::fs::metadata(home.join("credentials.json")).unwrap();
    assert_eq!(file.permissions().mode() & 0o777, 0o600, "the token file is its owner's only");
    assert_eq!(std::fs::metadata(&home).unwrap().permissions().mode() & 0o777, 0o700);

    // The first admin changes the password it was given.
    let changed =
        sluice_with(&home, &["password", "--password-stdin"], &[], Some(&format!("{PASSWORD}\nnew-admin-password\n")));
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    assert!(text(&changed.stdout).contains("password changed"));
    let old = sluice_with(&home, &login, &[("SLUICE_PASSWORD", PASSWORD)], None);
    assert!(text(&old.stderr).contains("wrong user name or password"), "{}", text(&old.stderr));
    let again = sluice_with(&home, &login, &[("SLUICE_PASSWORD", "new-admin-password")], None);
    assert!(again.status.success(), "{}", text(&again.stderr));

    // A global admin's verbs.
    let created = sluice_with(&home, &["user", "create", "uma", "--password-stdin"], &[], Some("uma-password\n"));
    assert!(created.status.success(), "{}", text(&created.stderr));
    let set = sluice_with(&home, &["user", "set-password", "uma"], &[("SLUICE_NEW_PASSWORD", "uma-password-2")], None);
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert!(ok(&home, &["user", "disable", "uma"]).contains("uma disabled"));
    let listed = ok(&home, &["user", "list"]);
    assert!(listed.lines().any(|l| l.starts_with("uma") && l.contains("disabled")), "{listed}");
    let uma_home = tmp.path().join("uma");
    let uma = ["login", "--url", &server.url, "--user", "uma"];
    let refused = sluice_with(&uma_home, &uma, &[("SLUICE_PASSWORD", "uma-password-2")], None);
    assert!(text(&refused.stderr).contains("the account `uma` is disabled"), "{}", text(&refused.stderr));
    assert!(ok(&home, &["user", "enable", "uma"]).contains("uma enabled"));
    let uma_in = sluice_with(&uma_home, &uma, &[("SLUICE_PASSWORD", "uma-password-2")], None);
    assert!(uma_in.status.success(), "{}", text(&uma_in.stderr));
    assert!(ok(&home, &["user", "revoke", "uma"]).contains("2 session(s) and token(s) of uma ended"));
    let out = sluice(&uma_home, &["job", "list"]);
    assert!(text(&out.stderr).contains("sluice login"), "the revoked token is refused: {}", text(&out.stderr));
}
