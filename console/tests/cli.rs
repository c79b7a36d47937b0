//! The `sluice` binary end to end: scaffold a job crate, build it to a
//! component, run it from its spec, and the errors a user meets on the way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sluice(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        // Share compiled dependencies with the test fixtures' WASM builds.
        .env("CARGO_TARGET_DIR", repo().join("target/wasm-fixtures"))
        .output()
        .expect("sluice runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("console/ is in the repo").to_path_buf()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn new_build_and_run_a_job() {
    let tmp = tempfile::tempdir().unwrap();
    let sdk = repo().join("sdk");
    let out = sluice(&["new", "click-count", "--dir", "click-count", "--sdk-path", sdk.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "new: {}", text(&out.stderr));
    let crate_dir = tmp.path().join("click-count");
    assert!(crate_dir.join("src/lib.rs").exists());

    let out = sluice(&["build", "."], &crate_dir);
    assert!(out.status.success(), "build: {}", text(&out.stderr));
    let component = text(&out.stdout).trim().to_owned();
    assert!(component.ends_with("click_count.wasm"), "{component}");

    let out = sluice(&["run", "--spec", "job.toml", "--component", &component, "--quiet"], &crate_dir);
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let counts = std::fs::read_to_string(crate_dir.join("counts.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = counts.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"user": "ann", "events": 1}),
            serde_json::json!({"user": "bob", "events": 1}),
            serde_json::json!({"user": "ann", "events": 2}),
            serde_json::json!({"user": "cid", "events": 1}),
        ]
    );
    let dead = std::fs::read_to_string(crate_dir.join("click_count.dead-letters.jsonl")).unwrap();
    let dead: serde_json::Value = serde_json::from_str(dead.trim()).unwrap();
    assert_eq!(
        (dead["source"].as_str(), dead["offset"].as_i64(), dead["value"].as_str()),
        (Some("events"), Some(3), Some("not json"))
    );
    assert!(dead["reason"].as_str().unwrap().contains("JSON"), "{dead}");
    assert!(text(&out.stderr).contains("in 5"), "summary line: {}", text(&out.stderr));
}

#[test]
fn a_spec_with_an_unknown_field_is_refused_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("job.toml"),
        "name = \"x\"\ncomponent = \"x.wasm\"\n[sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\nbatch_size = 3\n",
    )
    .unwrap();
    let out = sluice(&["run", "--spec", "job.toml"], tmp.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("batch_size"), "{}", text(&out.stderr));
}

#[test]
fn validate_explains_what_is_wrong_with_a_component() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let out = sluice(&["validate", "module.wasm"], tmp.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a component"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wasm32-wasip2"), "{}", text(&out.stderr));
}

#[test]
fn validate_says_whether_a_job_may_run_in_parallel() {
    let tmp = tempfile::tempdir().unwrap();
    for (job, says) in [
        ("hourly_premium", "state global: runs at parallelism 1"),
        ("last_page", "state keyed by the record key: may run in parallel"),
    ] {
        let component = sluice_tests::wasm(job);
        let out = sluice(&["validate", component.to_str().unwrap()], tmp.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        let printed = text(&out.stdout);
        assert!(printed.contains("valid Sluice job component") && printed.contains(says), "{job}: {printed}");
    }
}

#[test]
fn example_job_specs_run_on_their_sample_data() {
    for job in ["hourly-premium", "premium-drop", "last-page"] {
        let dir = repo().join("jobs").join(job);
        let out_dir = tempfile::tempdir().unwrap();
        // Build through `sluice build` so the component is the crate's own.
        let out = sluice(&["build", dir.to_str().unwrap()], &dir);
        assert!(out.status.success(), "{job} build: {}", text(&out.stderr));
        let component = text(&out.stdout).trim().to_owned();
        let spec = std::fs::read_to_string(dir.join("job.toml"))
            .unwrap()
            .replace("path = \"out/", &format!("path = \"{}/", out_dir.path().display()));
        let spec_path = dir.join(format!("job.test-{}.toml", std::process::id()));
        std::fs::write(&spec_path, spec).unwrap();
        let out = sluice(&["run", "--spec", spec_path.to_str().unwrap(), "--component", &component, "--quiet"], &dir);
        std::fs::remove_file(&spec_path).unwrap();
        assert!(out.status.success(), "{job} run: {}", text(&out.stderr));
        let written: usize = std::fs::read_dir(out_dir.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().lines().count())
            .sum();
        assert!(written > 0, "{job} wrote no rows");
    }
}

#[test]
fn a_job_reads_stdin_and_writes_stdout() {
    use std::io::Write;
    let dir = repo().join("jobs/last-page");
    let out = sluice(&["build", dir.to_str().unwrap()], &dir);
    assert!(out.status.success(), "build: {}", text(&out.stderr));
    let component = text(&out.stdout).trim().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("pipe.toml"),
        "name = \"pipe\"\ncomponent = \"x.wasm\"\n[sources.user_log]\nkind = \"file\"\npath = \"-\"\n\
         [sinks.user_last_log]\nkind = \"file\"\npath = \"-\"\n[dead_letter]\nkind = \"file\"\npath = \"dead.jsonl\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--spec", "pipe.toml", "--component", &component, "--quiet"])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"log_time\":1,\"device_id\":\"d1\",\"account_id\":\"a1\",\"bury_point_type\":\"page\",\"page_name\":\"home\"}\nnot json\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let row: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(row["page_name"], "home");
    assert_eq!(row["account_id"], "a1");
    let dead = std::fs::read_to_string(tmp.path().join("dead.jsonl")).unwrap();
    assert!(dead.contains("\"offset\":1"), "{dead}");
}

#[test]
fn gen_spaces_event_times_by_step_ms() {
    let tmp = tempfile::tempdir().unwrap();
    let span = |step: &str| -> i64 {
        let dir = tmp.path().join(format!("step-{step}"));
        let dir = dir.to_str().unwrap();
        let args = ["gen", "insurance-orders", "--out", dir, "--count", "200", "--late", "0", "--step-ms", step];
        let out = sluice(&args, tmp.path());
        assert!(out.status.success(), "gen: {}", text(&out.stderr));
        let lines = std::fs::read_to_string(tmp.path().join(format!("step-{step}/user_order.jsonl"))).unwrap();
        let times: Vec<i64> = lines
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["gmt_modified"].as_i64())
            .collect();
        times.iter().max().unwrap() - times.iter().min().unwrap()
    };
    // 200 events a minute apart span about 200 minutes; 10 ms apart, 2 seconds.
    assert!((198 * 60_000..=200 * 60_000).contains(&span("60000")), "{}", span("60000"));
    assert!(span("10") <= 2_000, "{}", span("10"));

    let out = sluice(&["gen", "insurance-orders", "--out", "x", "--step-ms", "0"], tmp.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--step-ms"), "{}", text(&out.stderr));
}
