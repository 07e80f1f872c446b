//! `UserManager`: users and sessions of every app, with validation, tokens and TTL rules kept here once,
//! over any [`Store`].

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::background::{Background, BackgroundOptions};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConflictKind, Error, Result};
use crate::model::{
    App, AppStats, CreateUserData, Email, Page, Session, SessionData, SessionMetadata, Ttl,
    UpdateUserData, User, UserId, UserName,
};
use crate::store::{DataUpdate, Store};
use crate::token::{SessionId, SessionToken};

/// Largest page [`UserManager::list`] returns.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Rows deleted per step by [`UserManager::purge_expired`] and [`UserManager::reset_app`].
const BATCH: u32 = 1000;
/// How often [`UserManager::rotate`] retries when a concurrent data update moved the version.
const ROTATE_ATTEMPTS: usize = 3;

/// Users and their sessions, per app, over one [`Store`]. Cheap to clone; clones share the store.
///
/// This is the Rust equivalent of the seed's `UserManagerInterface`: one concrete type whose storage is
/// chosen by the [`UserManagerFactory`](crate::UserManagerFactory).
#[derive(Debug, Clone)]
pub struct UserManager {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    max_lifetime: Duration,
}

impl UserManager {
    /// A manager over `store`, with the system clock and a 400-day maximum session lifetime.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            max_lifetime: Duration::from_secs(Ttl::MAX_SECONDS),
        }
    }

    /// Uses `clock` for every "now" (tests pass a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Caps every session's life at `max_lifetime` after its creation, however often it is touched.
    pub fn with_max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.max_lifetime = max_lifetime;
        self
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The configured maximum session lifetime.
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    // ----- users -----

    /// Creates a user; the email is normalised and must be unique within the app.
    pub async fn create(&self, app: &App, data: CreateUserData) -> Result<User> {
        let email = Email::parse(&data.email)?;
        let name = UserName::parse(&data.name)?;
        let now = self.now();
        let user = User {
            id: UserId::new_v7(),
            app: app.clone(),
            email,
            name,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_user(&user).await?;
        tracing::debug!(app = %app, user_id = %user.id, "user created");
        Ok(user)
    }

    /// The user with this id, or `NotFound`.
    pub async fn get(&self, app: &App, id: UserId) -> Result<User> {
        self.store
            .get_user(app, id)
            .await?
            .ok_or(Error::NotFound { what: "user" })
    }

    /// The user with this email (normalised first), if any.
    pub async fn find_by_email(&self, app: &App, email: &str) -> Result<Option<User>> {
        let email = Email::parse(email)?;
        self.store.find_user_by_email(app, &email).await
    }

    /// One page of the app's users in creation order. `cursor` is the `next_cursor` of the previous
    /// page; `limit` is 1..=1000.
    pub async fn list(&self, app: &App, cursor: Option<&str>, limit: u32) -> Result<Page<User>> {
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(Error::invalid("limit", "must be between 1 and 1000"));
        }
        let after = cursor
            .map(|c| {
                UserId::parse(c)
                    .map_err(|_| Error::invalid("cursor", "is not a cursor from a previous page"))
            })
            .transpose()?;
        let mut items = self.store.list_users(app, after, limit + 1).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|u| u.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Changes a user's email and/or name.
    pub async fn update(&self, app: &App, id: UserId, data: UpdateUserData) -> Result<User> {
        let email = data.email.as_deref().map(Email::parse).transpose()?;
        let name = data.name.as_deref().map(UserName::parse).transpose()?;
        let mut user = self.get(app, id).await?;
        if let Some(email) = email {
            user.email = email;
        }
        if let Some(name) = name {
            user.name = name;
        }
        user.updated_at = self.now();
        if !self.store.update_user(&user).await? {
            return Err(Error::NotFound { what: "user" });
        }
        Ok(user)
    }

    /// Deletes a user and revokes every session of theirs.
    pub async fn delete(&self, app: &App, id: UserId) -> Result<()> {
        if !self.store.delete_user(app, id).await? {
            return Err(Error::NotFound { what: "user" });
        }
        tracing::debug!(app = %app, user_id = %id, "user deleted with their sessions");
        Ok(())
    }

    // ----- sessions -----

    /// Opens a session for a user of the app. Returns the token (shown to the client once) and the
    /// session. The TTL may not exceed the configured maximum lifetime.
    pub async fn create_session(
        &self,
        app: &App,
        user_id: UserId,
        metadata: SessionMetadata,
        ttl: Ttl,
    ) -> Result<(SessionToken, Session)> {
        self.create_session_with_data(app, user_id, metadata, ttl, SessionData::default())
            .await
    }

    /// [`create_session`](Self::create_session) with initial application data.
    pub async fn create_session_with_data(
        &self,
        app: &App,
        user_id: UserId,
        metadata: SessionMetadata,
        ttl: Ttl,
        data: SessionData,
    ) -> Result<(SessionToken, Session)> {
        if ttl.as_duration() > self.max_lifetime {
            return Err(Error::invalid(
                "ttl",
                format!(
                    "exceeds the configured maximum lifetime of {} seconds",
                    self.max_lifetime.as_secs()
                ),
            ));
        }
        let token = SessionToken::generate()?;
        let now = self.now();
        let session = Session {
            id: token.id(),
            user_id,
            app: app.clone(),
            metadata,
            data,
            created_at: now,
            expires_at: now + ttl.as_duration(),
            last_seen_at: now,
            ttl,
            version: 1,
        };
        self.store.insert_session(&session).await?;
        tracing::debug!(app = %app, session_id = %session.id, "session created");
        Ok((token, session))
    }

    /// The session this token opens, if it is alive in this app; `None` for an unknown, expired or
    /// revoked token. Does not extend the session (see [`touch`](Self::touch)).
    pub async fn validate(&self, app: &App, token: &SessionToken) -> Result<Option<Session>> {
        self.store.get_session(app, &token.id(), self.now()).await
    }

    /// Sliding expiry: when less than half of the session's TTL remains, extends it to a full TTL
    /// from now, never past `created_at + max_lifetime`. Otherwise writes nothing.
    pub async fn touch(&self, app: &App, token: &SessionToken) -> Result<Session> {
        let now = self.now();
        let session = self.live_session(app, &token.id(), now).await?;
        let remaining = session.expires_at - now;
        if remaining * 2 >= session.ttl.as_duration() {
            return Ok(session);
        }
        let cap = session.created_at + self.max_lifetime;
        let extended = (now + session.ttl.as_duration()).min(cap);
        if extended <= session.expires_at {
            return Ok(session);
        }
        self.store
            .extend_session(app, &session.id, extended, now, now)
            .await?
            .ok_or(Error::NotFound { what: "session" })
    }

    /// Replaces the session's token (anti-fixation): the session keeps its data and expiry, gets a new
    /// id, and the old token stops working at once.
    pub async fn rotate(&self, app: &App, token: &SessionToken) -> Result<(SessionToken, Session)> {
        let old_id = token.id();
        for _ in 0..ROTATE_ATTEMPTS {
            let now = self.now();
            let old = self.live_session(app, &old_id, now).await?;
            let new_token = SessionToken::generate()?;
            let new = Session {
                id: new_token.id(),
                last_seen_at: now,
                ..old.clone()
            };
            if self
                .store
                .replace_session(app, &old_id, old.version, &new, now)
                .await?
            {
                tracing::debug!(app = %app, old = %old_id, new = %new.id, "session rotated");
                return Ok((new_token, new));
            }
        }
        Err(Error::Conflict(ConflictKind::StaleVersion))
    }

    /// Replaces the session's data if its version is still `expected_version`; a stale version is a
    /// `Conflict`. Returns the session with its new version.
    pub async fn update_data(
        &self,
        app: &App,
        id: &SessionId,
        data: SessionData,
        expected_version: u64,
    ) -> Result<Session> {
        match self
            .store
            .update_session_data(app, id, expected_version, &data, self.now())
            .await?
        {
            DataUpdate::Updated(session) => Ok(*session),
            DataUpdate::StaleVersion => Err(Error::Conflict(ConflictKind::StaleVersion)),
            DataUpdate::Missing => Err(Error::NotFound { what: "session" }),
        }
    }

    /// Revokes one session by its public id.
    pub async fn revoke(&self, app: &App, id: &SessionId) -> Result<()> {
        if !self.store.delete_session(app, id).await? {
            return Err(Error::NotFound { what: "session" });
        }
        tracing::debug!(app = %app, session_id = %id, "session revoked");
        Ok(())
    }

    /// Revokes the session this token opens (logout).
    pub async fn revoke_by_token(&self, app: &App, token: &SessionToken) -> Result<()> {
        self.revoke(app, &token.id()).await
    }

    /// The user's live sessions, oldest first; `NotFound` when the app has no such user. Answered by
    /// the durable store (the only complete answer): `Unavailable` while it is down.
    pub async fn list_sessions(&self, app: &App, user_id: UserId) -> Result<Vec<Session>> {
        self.get(app, user_id).await?;
        self.store.list_sessions(app, user_id, self.now()).await
    }

    /// Revokes every session of the user; returns how many there were.
    pub async fn revoke_all(&self, app: &App, user_id: UserId) -> Result<u64> {
        self.get(app, user_id).await?;
        let revoked = self.store.delete_user_sessions(app, user_id).await?;
        tracing::debug!(app = %app, user_id = %user_id, revoked, "all sessions revoked");
        Ok(revoked)
    }

    /// Deletes every expired session, in bounded batches; returns how many.
    pub async fn purge_expired(&self) -> Result<u64> {
        let now = self.now();
        let mut total = 0;
        loop {
            let deleted = self.store.purge_expired(now, BATCH).await?;
            total += deleted;
            if deleted < u64::from(BATCH) {
                return Ok(total);
            }
        }
    }

    // ----- operations -----

    /// Starts the background work (store upkeep and expired-session sweeps) on the current Tokio
    /// runtime; keep the handle and call [`Background::shutdown`] to stop it.
    pub fn start_background(&self, options: BackgroundOptions) -> Background {
        Background::start(self.clone(), options)
    }

    /// Row counts per app.
    pub async fn app_stats(&self) -> Result<Vec<AppStats>> {
        self.store.app_stats().await
    }

    /// Deletes every user and session of one app, in bounded batches, calling `progress` with the
    /// running total after each batch. Other apps are untouched.
    pub async fn reset_app(&self, app: &App, mut progress: impl FnMut(u64) + Send) -> Result<u64> {
        let mut total = 0;
        loop {
            let deleted = self.store.delete_app_batch(app, BATCH).await?;
            if deleted == 0 {
                tracing::info!(app = %app, deleted = total, "app reset");
                return Ok(total);
            }
            total += deleted;
            progress(total);
        }
    }

    async fn live_session(
        &self,
        app: &App,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Session> {
        self.store
            .get_session(app, id, now)
            .await?
            .ok_or(Error::NotFound { what: "session" })
    }
}
