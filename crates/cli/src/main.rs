//! `licctl`: parses the command line and runs it; see the library crate for the commands and
//! [`licstore_cli::exit`] for the exit codes.

use std::process::ExitCode;

use clap::Parser;
use licstore_cli::args::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match licstore_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => licstore_cli::exit::report(&err),
    }
}
