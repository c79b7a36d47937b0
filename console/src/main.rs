//! `sluice`: the command line of Sluice. `new`, `build`, `validate`, `run`
//! and `gen` work locally; `serve` runs the console; `job`, `snapshot` and
//! `login` talk to a console's REST API.

use clap::Parser;
use sluice_console::cli;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| "warn,sluice=info,sluice_console=info,sluice_runtime=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
