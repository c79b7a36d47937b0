//! The CLI verbs.

mod accounts;
mod build;
pub mod client;
mod generate;
mod new;
mod run;
mod secret_input;

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
    /// Generate a scenario's events into Kafka topics or files.
    Gen(generate::GenArgs),
    /// Run the console, REST API and a worker (embedded defaults without configuration).
    Serve(Box<crate::serve::ServeArgs>),
    /// Run jobs for the consoles sharing a PostgreSQL metadata store.
    Worker(Box<crate::serve::WorkerArgs>),
    /// Sign in to a console and keep an API token for the other verbs.
    Login(client::LoginArgs),
    /// Change your password on a console.
    Password(accounts::PasswordArgs),
    /// Users on a console (global admins): list, create, set-password, disable, enable, revoke.
    User(accounts::UserArgs),
    /// Jobs on a console: list, create, upload, deploy, start, stop, status...
    Job(client::JobArgs),
    /// Snapshots on a console: list, take, restore.
    Snapshot(client::SnapshotArgs),
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
        Command::Gen(args) => generate::generate(&args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => runtime()?.block_on(crate::serve::serve(*args)).map(|()| ExitCode::SUCCESS),
        Command::Worker(args) => runtime()?.block_on(crate::serve::run_worker(*args)).map(|()| ExitCode::SUCCESS),
        Command::Login(args) => runtime()?.block_on(client::login(args)),
        Command::Password(args) => runtime()?.block_on(accounts::password(args)),
        Command::User(args) => runtime()?.block_on(accounts::user(args)),
        Command::Job(args) => runtime()?.block_on(client::job(args)),
        Command::Snapshot(args) => runtime()?.block_on(client::snapshot(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

async fn validate(component: &std::path::Path) -> anyhow::Result<()> {
    let engine = sluice_runtime::wasm::JobEngine::new(None)?;
    let loaded = engine.load_file(component).await?;
    let keying = match loaded.state_keying {
        sluice_runtime::wasm::StateKeying::Global => "state global: runs at parallelism 1",
        sluice_runtime::wasm::StateKeying::ByRecordKey => "state keyed by the record key: may run in parallel",
    };
    let stages = match loaded.stages.as_slice() {
        [] => String::new(),
        names => format!("; {} repartition stages: {}", names.len(), names.join(" → ")),
    };
    println!("{}: valid Sluice job component (sha256 {}; {keying}{stages})", component.display(), loaded.hash);
    Ok(())
}
