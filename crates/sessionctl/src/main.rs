//! `sessionctl`: parses the command line, runs the command, reports the outcome.

use std::process::ExitCode;

use clap::Parser;
use sessionctl::cli::{Cli, Command};
use sessionctl::{commands, init_tracing, output};

/// mimalloc: the request path allocates small objects on one thread and frees them on another, where
/// it is markedly faster than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_) | Command::Studio(_));
    let level = match (cli.verbose, serving) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    init_tracing(level, cli.log_format);
    let json = cli.json;
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => output::report_error(&err, json),
    }
}
