//! The `Store` trait every backend implements, and the backends themselves.
//!
//! Stores only store: validation, tokens and TTL rules live in the [`UserManager`](crate::UserManager).
//! Every write that changes an existing session is conditional on that session still being there (and
//! alive, and at the expected version), never an upsert, so no write path can bring back a revoked,
//! deleted or expired session.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::Result;
use crate::model::{App, AppStats, Email, Session, SessionData, User, UserId};
use crate::token::SessionId;

pub mod batch;
pub mod breaker;
pub mod memory;
pub mod postgres;
pub mod redis;
pub mod sqlite;
pub mod tiered;

pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use redis::RedisSessionCache;
pub use sqlite::SqliteStore;
pub use tiered::{TieredOptions, TieredStore};

/// The outcome of a conditional update of a session's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataUpdate {
    /// The data was written; here is the session as stored now.
    Updated(Box<Session>),
    /// The session exists but its version is not the expected one.
    StaleVersion,
    /// No live session has this id in this app.
    Missing,
}

/// A change the Redis hot tier must hear about, kept in the durable store's invalidation outbox until
/// it has been applied to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// The session is gone (revoked, rotated away, its user deleted): drop any cached copy and refuse
    /// to cache it again until `until` (its former expiry).
    Revoke {
        /// The session's app.
        app: App,
        /// The session.
        id: SessionId,
        /// When the session would have expired anyway.
        until: OffsetDateTime,
    },
    /// The session changed: drop the cached copy; the next read caches the new one.
    Evict {
        /// The session's app.
        app: App,
        /// The session.
        id: SessionId,
    },
    /// Every session of the app is gone (reset).
    ResetApp {
        /// The app.
        app: App,
    },
}

impl Invalidation {
    /// The outbox row's `kind` column.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Revoke { .. } => "revoke",
            Self::Evict { .. } => "evict",
            Self::ResetApp { .. } => "reset_app",
        }
    }

    /// The app it concerns.
    pub fn app(&self) -> &App {
        match self {
            Self::Revoke { app, .. } | Self::Evict { app, .. } | Self::ResetApp { app } => app,
        }
    }

    /// The session it concerns, if one.
    pub(crate) fn session_id(&self) -> Option<&SessionId> {
        match self {
            Self::Revoke { id, .. } | Self::Evict { id, .. } => Some(id),
            Self::ResetApp { .. } => None,
        }
    }

    /// Until when a revoked session may not be cached again.
    pub(crate) fn until(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Revoke { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// Rebuilds an invalidation from an outbox row's columns.
    pub(crate) fn from_row(
        kind: &str,
        app: &str,
        session_id: Option<&[u8]>,
        until: Option<OffsetDateTime>,
    ) -> Result<Self> {
        let corrupt = |what: &str| crate::Error::Internal {
            context: "invalidation outbox row",
            source: what.to_owned().into(),
        };
        let app = App::parse(app).map_err(|_| corrupt("bad app"))?;
        let id = || -> Result<SessionId> {
            let bytes: [u8; 32] = session_id
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("bad session id"))?;
            Ok(SessionId::from_bytes(bytes))
        };
        match kind {
            "revoke" => Ok(Self::Revoke {
                app,
                id: id()?,
                until: until.ok_or_else(|| corrupt("revoke without until"))?,
            }),
            "evict" => Ok(Self::Evict { app, id: id()? }),
            "reset_app" => Ok(Self::ResetApp { app }),
            _ => Err(corrupt("unknown kind")),
        }
    }
}

/// An [`Invalidation`] waiting in the outbox, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Increasing position in the outbox.
    pub seq: i64,
    /// What Redis must apply.
    pub invalidation: Invalidation,
}

/// One component's health, for readiness checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentHealth {
    /// `memory`, `sqlite`, `postgres` or `redis`.
    pub name: &'static str,
    /// Whether it answered.
    pub ok: bool,
    /// Whether the service can work without it (Redis: the durable store serves instead).
    pub optional: bool,
    /// A short human-readable state (never a secret).
    pub detail: String,
}

impl ComponentHealth {
    /// The health of a store from the outcome of a trivial query.
    pub(crate) fn from_probe(name: &'static str, optional: bool, probe: Result<()>) -> Self {
        let (ok, detail) = match probe {
            Ok(()) => (true, "reachable".to_owned()),
            Err(err) => (false, err.to_string()),
        };
        Self {
            name,
            ok,
            optional,
            detail,
        }
    }
}

/// One schema migration and whether it has been applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationState {
    /// The migration's version (its timestamp).
    pub version: i64,
    /// What it does.
    pub description: String,
    /// Whether the store has it.
    pub applied: bool,
}

/// Storage for users and sessions. Object-safe: the factory hands out `Arc<dyn Store>`.
///
/// All reads of sessions take `now` and never return a session whose `expires_at` is not after it.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// A short name for the backend (`memory`, `sqlite`, …).
    fn backend(&self) -> &'static str;

    /// Brings the schema up to date (a no-op where there is no schema).
    async fn migrate(&self) -> Result<()>;

    /// Every known migration and whether it is applied.
    async fn migration_status(&self) -> Result<Vec<MigrationState>>;

    /// Inserts a new user; a taken `(app, email)` is a duplicate-email conflict.
    async fn insert_user(&self, user: &User) -> Result<()>;

    /// The user with this id in this app.
    async fn get_user(&self, app: &App, id: UserId) -> Result<Option<User>>;

    /// The user with this (normalised) email in this app.
    async fn find_user_by_email(&self, app: &App, email: &Email) -> Result<Option<User>>;

    /// Up to `limit` users of the app, in id order, starting after `after`.
    async fn list_users(&self, app: &App, after: Option<UserId>, limit: u32) -> Result<Vec<User>>;

    /// Replaces an existing user's email, name and `updated_at`; `false` when there is no such user.
    async fn update_user(&self, user: &User) -> Result<bool>;

    /// Deletes a user and every session of theirs, atomically; `false` when there is no such user.
    async fn delete_user(&self, app: &App, id: UserId) -> Result<bool>;

    /// Inserts a new session; a user missing from the session's app is `NotFound { what: "user" }`.
    async fn insert_session(&self, session: &Session) -> Result<()>;

    /// The live session with this id in this app.
    async fn get_session(
        &self,
        app: &App,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Session>>;

    /// The user's live sessions, oldest first.
    async fn list_sessions(
        &self,
        app: &App,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>>;

    /// Sets `expires_at` and `last_seen_at` of a session that is still live at `now`.
    async fn extend_session(
        &self,
        app: &App,
        id: &SessionId,
        expires_at: OffsetDateTime,
        last_seen_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>>;

    /// Replaces the data of a live session at `expected_version`, incrementing its version.
    async fn update_session_data(
        &self,
        app: &App,
        id: &SessionId,
        expected_version: u64,
        data: &SessionData,
        now: OffsetDateTime,
    ) -> Result<DataUpdate>;

    /// Atomically removes the live session `old` at `expected_version` and inserts `new` in its place
    /// (rotation). `false` when `old` is gone, expired or at another version.
    async fn replace_session(
        &self,
        app: &App,
        old: &SessionId,
        expected_version: u64,
        new: &Session,
        now: OffsetDateTime,
    ) -> Result<bool>;

    /// Deletes one session; `false` when it was not there.
    async fn delete_session(&self, app: &App, id: &SessionId) -> Result<bool>;

    /// Deletes every session of a user; returns how many were deleted.
    async fn delete_user_sessions(&self, app: &App, user_id: UserId) -> Result<u64>;

    /// Deletes up to `limit` sessions that expired at or before `now`; returns how many.
    async fn purge_expired(&self, now: OffsetDateTime, limit: u32) -> Result<u64>;

    /// Row counts for every app that has users or sessions.
    async fn app_stats(&self) -> Result<Vec<AppStats>>;

    /// Deletes up to `limit` of the app's rows, sessions before users; returns how many. Called until
    /// it returns 0 to reset an app in bounded steps.
    async fn delete_app_batch(&self, app: &App, limit: u32) -> Result<u64>;

    /// Whether this store records an [`Invalidation`] in its outbox, in the same transaction, for every
    /// session it deletes (as a durable store under a [`TieredStore`](crate::store::TieredStore) must).
    fn records_invalidations(&self) -> bool;

    /// Appends an invalidation to the outbox on its own (for changes whose cache update failed).
    async fn enqueue_invalidation(&self, invalidation: &Invalidation) -> Result<()>;

    /// The oldest `limit` outbox entries, in order.
    async fn pending_invalidations(&self, limit: u32) -> Result<Vec<OutboxEntry>>;

    /// Removes applied entries from the outbox.
    async fn ack_invalidations(&self, seqs: &[i64]) -> Result<()>;

    /// Whether each component of the store answers (a trivial query each).
    async fn health(&self) -> Vec<ComponentHealth>;

    /// Periodic upkeep, called by the manager's background task a few times a second: for the tiered
    /// store, probing Redis and replaying the invalidation outbox. Nothing to do for the others.
    async fn maintain(&self) -> Result<()> {
        Ok(())
    }
}
