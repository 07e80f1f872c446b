//! `sessionctl`: manage the users and sessions of every app from the shell.
//!
//! This file only parses arguments and reports the outcome; the commands live in `commands/`.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let json = cli.json;
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => output::report_error(&err, json),
    }
}

/// Logs go to stderr, quiet unless `-v` or `RUST_LOG` asks for more.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
