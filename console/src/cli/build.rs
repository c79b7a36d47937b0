//! `sluice build`: `cargo build --target wasm32-wasip2 --release` on a job
//! crate, then the same validation an upload gets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The job crate's directory.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Build in debug mode instead of release.
    #[arg(long)]
    pub debug: bool,
}

/// Builds the crate at `dir`; returns the path of the component.
pub fn build(args: &BuildArgs) -> anyhow::Result<PathBuf> {
    let component = compile(&args.path, !args.debug)?;
    let engine = sluice_runtime::wasm::JobEngine::new(None)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(engine.load_file(&component))
        .with_context(|| format!("{} was built but is not a valid Sluice job", component.display()))?;
    Ok(component)
}

/// Runs cargo and finds the `.wasm` it produced from its JSON messages.
pub fn compile(dir: &Path, release: bool) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        bail!(
            "{} has no Cargo.toml: `sluice build` needs a job crate (create one with `sluice new NAME`)",
            dir.display()
        );
    }
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics", "--manifest-path"]);
    cargo.arg(&manifest);
    if release {
        cargo.arg("--release");
    }
    let output = cargo.stderr(Stdio::inherit()).output().context("cannot run cargo")?;
    if !output.status.success() {
        bail!("cargo build failed (is the target installed? `rustup target add wasm32-wasip2`)");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let wasm = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .filter(|m| is_local(m, dir))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"));
    wasm.with_context(|| {
        format!("cargo built no cdylib .wasm in {}: is `crate-type = [\"cdylib\"]` set in [lib]?", dir.display())
    })
}

/// Whether a cargo artifact message is for the crate in `dir` (not a dependency).
fn is_local(message: &serde_json::Value, dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else { return false };
    message["manifest_path"].as_str().is_some_and(|m| Path::new(m).parent().is_some_and(|p| p == dir))
}
