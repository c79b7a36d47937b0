//! Builds the WASM fixtures the suites run: every example job in `jobs/` and
//! the purpose-built guests in `tests/guests/`, for wasm32-wasip2, into a
//! target directory of their own (a nested cargo cannot share ours while the
//! outer build holds its lock). Their paths reach the tests through
//! `SLUICE_WASM_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("tests/ is inside the workspace").to_path_buf();
    for dir in ["jobs", "sdk/src", "sdk/wit", "sdk/macros/src", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = root.join("target").join("wasm-fixtures");
    let packages = packages(&root.join("jobs")).into_iter().chain(packages(&root.join("tests/guests")));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    // The outer build's settings (profile, target, flags, jobserver) must not
    // leak into the nested one.
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || [
                "RUSTFLAGS",
                "TARGET",
                "HOST",
                "OUT_DIR",
                "OPT_LEVEL",
                "PROFILE",
                "DEBUG",
                "NUM_JOBS",
                "RUSTC",
                "RUSTDOC",
                "RUSTC_WRAPPER",
                "MAKEFLAGS",
                "MFLAGS",
            ]
            .contains(&key.as_str())
        {
            build.env_remove(key);
        }
    }
    build
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    for package in packages {
        build.args(["-p", &package]);
    }
    let status = build.status().expect("cannot run cargo for the WASM fixtures");
    assert!(
        status.success(),
        "building the WASM fixtures failed: is the target installed? `rustup target add wasm32-wasip2`"
    );
    println!("cargo:rustc-env=SLUICE_WASM_DIR={}", target_dir.join("wasm32-wasip2").join("release").display());
}

/// Package names of the crates directly under `dir`.
fn packages(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("Cargo.toml")).ok())
        .filter_map(|manifest| {
            let line = manifest.lines().find(|l| l.trim_start().starts_with("name"))?;
            Some(line.split('"').nth(1)?.to_owned())
        })
        .collect();
    names.sort();
    names
}
