//! What the commands print: human text by default, JSON with `--json`; errors and exit codes.

use std::process::ExitCode;

use serde::Serialize;
use session_management::{Error, Page, Session, User};

/// Failures that belong to the command line rather than the library.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The operator did not confirm a destructive command.
    #[error("aborted: nothing was changed")]
    Aborted,
    /// A destructive command was refused by policy.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// `sessions validate` was given a token that opens no live session.
    #[error("the token does not open a live session in this app")]
    InvalidSession,
}

/// Exit codes, documented in the README.
pub mod exit {
    /// An internal error.
    pub const INTERNAL: u8 = 1;
    /// Bad arguments or invalid input.
    pub const INVALID_INPUT: u8 = 2;
    /// The user or session does not exist (or the token is not valid).
    pub const NOT_FOUND: u8 = 3;
    /// A duplicate email or a stale version.
    pub const CONFLICT: u8 = 4;
    /// A store is unreachable.
    pub const UNAVAILABLE: u8 = 5;
    /// The configuration is wrong.
    pub const CONFIG: u8 = 6;
    /// Refused or not confirmed.
    pub const REFUSED: u8 = 7;
}

fn classify(err: &anyhow::Error) -> (u8, &'static str, Option<&'static str>) {
    if let Some(err) = err.downcast_ref::<Error>() {
        let code = match err {
            Error::InvalidInput { .. } => exit::INVALID_INPUT,
            Error::NotFound { .. } => exit::NOT_FOUND,
            Error::Conflict(_) => exit::CONFLICT,
            Error::Unavailable { .. } => exit::UNAVAILABLE,
            Error::Config { .. } => exit::CONFIG,
            _ => exit::INTERNAL,
        };
        return (code, err.code(), err.field());
    }
    match err.downcast_ref::<CliError>() {
        Some(CliError::Aborted) => (exit::REFUSED, "aborted", None),
        Some(CliError::Refused(_)) => (exit::REFUSED, "refused", None),
        Some(CliError::InvalidSession) => (exit::NOT_FOUND, "invalid_session", None),
        None => (exit::INTERNAL, "internal", None),
    }
}

/// Prints the error on stderr (with its causes) and returns the exit code for it.
pub fn report_error(err: &anyhow::Error, json: bool) -> ExitCode {
    let (status, code, field) = classify(err);
    let message = format!("{err:#}");
    if json {
        let body =
            serde_json::json!({ "error": { "code": code, "message": message, "field": field } });
        eprintln!("{body}");
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(status)
}

/// Prints a value as pretty JSON.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `value` as JSON with `--json`, else in its human form.
pub fn either<T: Serialize + ?Sized>(
    json_mode: bool,
    value: &T,
    human: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json_mode {
        json(value)
    } else {
        human(value);
        Ok(())
    }
}

fn time(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// A user, as `key: value` lines.
pub fn user(user: &User) {
    println!("id:          {}", user.id);
    println!("app:         {}", user.app);
    println!("email:       {}", user.email);
    println!("name:        {}", user.name);
    println!("created_at:  {}", time(user.created_at));
    println!("updated_at:  {}", time(user.updated_at));
}

/// A page of users as a table, then the cursor of the next page.
pub fn users(page: &Page<User>) {
    println!("{:<36}  {:<32}  NAME", "ID", "EMAIL");
    for u in &page.items {
        println!("{:<36}  {:<32}  {}", u.id, u.email, u.name);
    }
    match &page.next_cursor {
        Some(cursor) => println!("next page: --cursor {cursor}"),
        None => println!("({} on this page, the last one)", page.items.len()),
    }
}

/// A session, as `key: value` lines.
pub fn session(session: &Session) {
    println!("id:            {}", session.id);
    println!("app:           {}", session.app);
    println!("user_id:       {}", session.user_id);
    println!("ip:            {}", session.metadata.ip());
    println!("user_agent:    {}", session.metadata.user_agent());
    println!("created_at:    {}", time(session.created_at));
    println!("expires_at:    {}", time(session.expires_at));
    println!("last_seen_at:  {}", time(session.last_seen_at));
    println!("version:       {}", session.version);
    if !session.data.is_empty() {
        println!("data:          {}", session.data.to_json());
    }
}

/// Sessions as a table.
pub fn sessions(sessions: &[Session]) {
    println!(
        "{:<64}  {:<20}  {:<20}  {:<15}  USER AGENT",
        "ID", "CREATED", "EXPIRES", "IP"
    );
    for s in sessions {
        println!(
            "{:<64}  {:<24}  {:<24}  {:<15}  {}",
            s.id,
            time(s.created_at),
            time(s.expires_at),
            s.metadata.ip().to_string(),
            s.metadata.user_agent()
        );
    }
    println!("({} live sessions)", sessions.len());
}
