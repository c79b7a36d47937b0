//! The CLI verbs.

mod build;
mod new;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "Sluice: stream jobs in Rust, run as sandboxed WASM components")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a job crate from the template.
    New(new::NewArgs),
    /// Compile a job crate to a WASM component and validate it.
    Build(build::BuildArgs),
    /// Check that a component is a valid Sluice job.
    Validate {
        /// The component (.wasm).
        component: PathBuf,
    },
    /// Run a job locally from its spec (files, datagen, memory connectors).
    Run(run::RunArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::New(args) => new::new_job(&args).map(|()| ExitCode::SUCCESS),
        Command::Build(args) => build::build(&args).map(|path| {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }),
        Command::Validate { component } => runtime()?.block_on(validate(&component)).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

async fn validate(component: &std::path::Path) -> anyhow::Result<()> {
    let engine = sluice_runtime::wasm::JobEngine::new(None)?;
    let loaded = engine.load_file(component).await?;
    println!("{}: valid Sluice job component (sha256 {})", component.display(), loaded.hash);
    Ok(())
}
