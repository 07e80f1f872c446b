//! The crate's one error type, and how store failures map onto it.

use std::fmt;

/// A boxed error kept as the `source` of an [`Error`], so the chain is never flattened to a string.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
///
/// Messages never contain a session token or a password: an invalid value is named by its field, not echoed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given by the caller was rejected before it reached any store.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field that was rejected (`email`, `ttl`, `token`, …).
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The user or session does not exist in this app (or has expired or been revoked).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for: `user` or `session`.
        what: &'static str,
    },
    /// The change conflicts with stored data: a duplicate email, or a stale `version`.
    #[error("conflict: {0}")]
    Conflict(ConflictKind),
    /// A store could not be reached or answered with a transient failure.
    #[error("{store} is unavailable")]
    Unavailable {
        /// The store that failed: `sqlite`, `postgres`, `redis`.
        store: &'static str,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
    /// The configuration is missing, malformed or names an unsupported backend.
    #[error("configuration error in {variable}: {reason}")]
    Config {
        /// The environment variable (or key) at fault.
        variable: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A failure that is a bug or a broken invariant, not the caller's fault.
    #[error("internal error in {context}")]
    Internal {
        /// Where it happened.
        context: &'static str,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
}

/// The kind of [`Error::Conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictKind {
    /// Another user of the same app already has this email.
    DuplicateEmail,
    /// The session changed since the caller read it (`version` is stale).
    StaleVersion,
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DuplicateEmail => "a user with this email already exists in this app",
            Self::StaleVersion => "the session was changed by someone else (stale version)",
        })
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// A stable, machine-readable code for this error (used by the CLI and the HTTP API).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::NotFound { .. } => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Unavailable { .. } => "unavailable",
            Self::Config { .. } => "config",
            Self::Internal { .. } => "internal",
        }
    }

    /// The field at fault, for [`Error::InvalidInput`].
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Maps an sqlx error from `store` onto the crate's error: connection trouble is
    /// [`Error::Unavailable`], a unique violation is a duplicate email, the rest is internal.
    pub(crate) fn from_sqlx(store: &'static str, err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(ConflictKind::DuplicateEmail)
            }
            _ if is_transient(&err) => Self::Unavailable {
                store,
                source: Box::new(err),
            },
            _ => Self::Internal {
                context: store,
                source: Box::new(err),
            },
        }
    }

    /// Like [`from_sqlx`](Self::from_sqlx), for one failure shared by every request of a batch.
    pub(crate) fn from_shared_sqlx(store: &'static str, err: std::sync::Arc<sqlx::Error>) -> Self {
        if is_transient(&err) {
            Self::Unavailable {
                store,
                source: Box::new(err),
            }
        } else {
            Self::Internal {
                context: store,
                source: Box::new(err),
            }
        }
    }
}

/// Connection trouble, and SQLite's "database is locked/busy" codes: transient, not bugs.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("5" | "6" | "261" | "517"))
        }
        _ => false,
    }
}
