//! `sluice new NAME`: a job crate that builds with
//! `cargo build --target wasm32-wasip2` and tests natively with `cargo test`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Crate name (letters, digits, `-`, `_`).
    pub name: String,
    /// Directory to create; defaults to ./NAME.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Path of the sluice-sdk crate the job depends on.
    #[arg(long, env = "SLUICE_SDK_PATH")]
    pub sdk_path: Option<PathBuf>,
}

const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../templates/new-job/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../../templates/new-job/src/lib.rs.tmpl")),
    ("job.toml", include_str!("../../templates/new-job/job.toml.tmpl")),
    ("sample/events.jsonl", include_str!("../../templates/new-job/sample/events.jsonl")),
    (".gitignore", include_str!("../../templates/new-job/gitignore")),
];

pub fn new_job(args: &NewArgs) -> anyhow::Result<()> {
    let name = &args.name;
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        bail!("`{name}` is not a valid crate name: use letters, digits, `-` and `_`, starting with a letter");
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!("{} already exists and is not empty", dir.display());
    }
    let sdk = sdk_path(args.sdk_path.as_deref())?;
    let lib = name.replace('-', "_");
    let type_name: String =
        lib.split('_').filter(|p| !p.is_empty()).map(|p| p[..1].to_ascii_uppercase() + &p[1..]).collect();
    for (path, template) in FILES {
        let text = template
            .replace("{{crate}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{type}}", &type_name)
            .replace("{{sdk}}", &sdk.display().to_string());
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().expect("template paths have a parent"))?;
        std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
    }
    println!("created job crate {}: `cargo test` runs its tests, `sluice build {0}` compiles it", dir.display());
    Ok(())
}

/// The SDK to depend on: given, or the one next to this binary's sources.
fn sdk_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidate = match given {
        Some(p) => p.to_path_buf(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"),
    };
    let sdk = candidate
        .canonicalize()
        .with_context(|| format!("sluice-sdk not found at {}: pass --sdk-path", candidate.display()))?;
    if !sdk.join("Cargo.toml").exists() {
        bail!("{} is not the sluice-sdk crate: pass --sdk-path", sdk.display());
    }
    Ok(sdk)
}
