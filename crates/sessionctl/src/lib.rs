//! `sessionctl`: the command line, HTTP API server and studio of
//! [`session-management`](session_management).
//!
//! # Layout
//!
//! - [`cli`]: the command line as clap types;
//! - [`commands`]: one module per command group, turning arguments into library calls;
//! - [`output`]: human and JSON output, error reports and exit codes;
//! - [`server`]: the HTTP server — [`server::app`] builds the router, [`server::serve`] runs it.

pub mod cli;
pub mod commands;
pub mod output;
pub mod server;

/// Logs go to stderr, as text or JSON lines; `RUST_LOG` overrides the level.
pub fn init_tracing(default_level: &str, format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.init(),
    }
}
