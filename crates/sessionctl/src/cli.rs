//! The command line, as clap types. Every command has `--help`.

use clap::{ArgGroup, Args, Parser, Subcommand};

/// Manage the users and login sessions of every app.
///
/// The store comes from the environment (and a `.env` file): DATABASE_URL, SESSION_ENV,
/// SESSION_MAX_LIFETIME, SESSION_DATA_DIR. With nothing set, an embedded SQLite file is used.
#[derive(Debug, Parser)]
#[command(name = "sessionctl", version, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON on stdout (and errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// More logging on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log lines as human text or as JSON objects (one per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API server (with /docs, /healthz, /readyz, /metrics and the studio at /studio).
    ///
    /// Clients authenticate with `Authorization: Bearer <SESSION_API_KEY>`. Without SESSION_API_KEY the
    /// API is open, so the server only listens on a loopback address.
    Serve(ServeArgs),
    /// Run the server and print the studio's address: browse and act on apps, users and sessions.
    Studio(ServeArgs),
    /// Schema and data management.
    #[command(subcommand)]
    Db(DbCommand),
    /// Users of an app.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Login sessions of an app.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

/// Arguments of `serve` and `studio`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
}

/// `sessionctl db …`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply every pending migration (they are embedded in the binary).
    Migrate,
    /// Show the store, its migrations and the row counts per app.
    Status,
    /// Delete every user and session of one app, or of all apps.
    Reset(ResetArgs),
    /// Delete every expired session now (the server also does this in the background).
    PurgeExpired,
}

/// Arguments of `db reset`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["app", "all"])))]
pub struct ResetArgs {
    /// The app to reset; other apps are untouched.
    #[arg(long)]
    pub app: Option<String>,
    /// Reset every app.
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow a reset when SESSION_ENV=production.
    #[arg(long)]
    pub force: bool,
}

/// `sessionctl users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        /// The app the user belongs to.
        #[arg(long)]
        app: String,
        /// The user's email, unique within the app.
        #[arg(long)]
        email: String,
        /// The user's display name.
        #[arg(long)]
        name: String,
    },
    /// Show one user, by id or by email.
    #[command(group(ArgGroup::new("key").required(true).args(["id", "email"])))]
    Get {
        /// The app.
        #[arg(long)]
        app: String,
        /// The user's id.
        #[arg(long)]
        id: Option<String>,
        /// The user's email.
        #[arg(long)]
        email: Option<String>,
    },
    /// List an app's users, oldest first, one page at a time.
    List {
        /// The app.
        #[arg(long)]
        app: String,
        /// Page size (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The `next_cursor` printed by the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Change a user's email and/or name.
    Update {
        /// The app.
        #[arg(long)]
        app: String,
        /// The user's id.
        #[arg(long)]
        id: String,
        /// A new email.
        #[arg(long)]
        email: Option<String>,
        /// A new display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a user and revoke all their sessions.
    Delete {
        /// The app.
        #[arg(long)]
        app: String,
        /// The user's id.
        #[arg(long)]
        id: String,
    },
}

/// Where a command gets a session token from.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The app.
    #[arg(long)]
    pub app: String,
    /// The session token. Without it the token is read from stdin, which keeps it out of the
    /// shell history and the process list. A token may start with '-'.
    #[arg(long, allow_hyphen_values = true)]
    pub token: Option<String>,
}

/// `sessionctl sessions …`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Open a session for a user; prints the token once.
    Create {
        /// The app.
        #[arg(long)]
        app: String,
        /// The user's id.
        #[arg(long)]
        user: String,
        /// The client's IP address.
        #[arg(long)]
        ip: String,
        /// The client's user agent (at most 512 bytes).
        #[arg(long)]
        user_agent: String,
        /// Time to live in seconds (1 to 34560000, i.e. 400 days).
        #[arg(long)]
        ttl: u64,
        /// Initial session data, a JSON object of at most 8 KiB.
        #[arg(long)]
        data: Option<String>,
    },
    /// Check a token; exits 0 and prints the session if it is valid, exits 3 otherwise.
    Validate(TokenArgs),
    /// Sliding expiry: extend the session when less than half of its TTL is left.
    Touch(TokenArgs),
    /// Replace the session's token; prints the new token once. The old one stops working.
    Rotate(TokenArgs),
    /// List a user's live sessions.
    List {
        /// The app.
        #[arg(long)]
        app: String,
        /// The user's id.
        #[arg(long)]
        user: String,
    },
    /// Revoke one session by its id (as shown by `sessions list`).
    Revoke {
        /// The app.
        #[arg(long)]
        app: String,
        /// The session id (64 hex characters).
        #[arg(long)]
        id: String,
    },
    /// Revoke every session of a user.
    RevokeAll {
        /// The app.
        #[arg(long)]
        app: String,
        /// The user's id.
        #[arg(long)]
        user: String,
    },
}
