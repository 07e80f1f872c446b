//! `MemoryStore`: a complete in-process store (the seed's "mock"), for tests and single-process tools.
//!
//! It is not a stub: it passes the same conformance suite as every other backend. All state sits behind
//! one mutex that is never held across an `.await`, so every operation is atomic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{DataUpdate, Invalidation, MigrationState, OutboxEntry, Store};
use crate::error::{ConflictKind, Error, Result};
use crate::model::{App, AppStats, Email, Session, SessionData, User, UserId};
use crate::token::SessionId;

/// Users and sessions held in process memory; lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Users per app, in id (creation) order.
    users: BTreeMap<App, BTreeMap<UserId, User>>,
    /// `(app, email)` → user, for uniqueness and lookup.
    emails: HashMap<(App, Email), UserId>,
    sessions: HashMap<SessionId, Session>,
    /// Each user's session ids.
    by_user: HashMap<UserId, BTreeSet<SessionId>>,
    /// Whether deletions are recorded in `outbox`.
    records_invalidations: bool,
    outbox: BTreeMap<i64, Invalidation>,
    next_seq: i64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that records every session deletion in its invalidation outbox, as the durable
    /// store under a [`TieredStore`](crate::store::TieredStore) must.
    pub fn with_invalidation_outbox() -> Self {
        let store = Self::default();
        store.lock().records_invalidations = true;
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way later calls
        // could not handle, so a poisoned lock is taken over rather than propagated.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl State {
    fn live_session(&self, app: &App, id: &SessionId, now: OffsetDateTime) -> Option<&Session> {
        self.sessions
            .get(id)
            .filter(|s| &s.app == app && s.is_live_at(now))
    }

    fn push_invalidation(&mut self, invalidation: Invalidation) {
        self.next_seq += 1;
        self.outbox.insert(self.next_seq, invalidation);
    }

    /// Removes a session, recording its revocation when the outbox is on.
    fn remove_session(&mut self, id: &SessionId) -> Option<Session> {
        let session = self.sessions.remove(id)?;
        if self.records_invalidations {
            self.push_invalidation(Invalidation::Revoke {
                app: session.app.clone(),
                id: session.id,
                until: session.expires_at,
            });
        }
        if let Some(ids) = self.by_user.get_mut(&session.user_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&session.user_id);
            }
        }
        Some(session)
    }

    /// Removes a session without an outbox entry: it is expired, or a `ResetApp` entry covers it.
    fn remove_session_unrecorded(&mut self, id: &SessionId) {
        let record = std::mem::replace(&mut self.records_invalidations, false);
        self.remove_session(id);
        self.records_invalidations = record;
    }

    fn add_session(&mut self, session: Session) {
        self.by_user
            .entry(session.user_id)
            .or_default()
            .insert(session.id);
        self.sessions.insert(session.id, session);
    }

    fn remove_user_sessions(&mut self, app: &App, user_id: UserId) -> u64 {
        let ids: Vec<SessionId> = self
            .by_user
            .get(&user_id)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        let mut removed = 0;
        for id in ids {
            if self.sessions.get(&id).is_some_and(|s| &s.app == app) {
                self.remove_session(&id);
                removed += 1;
            }
        }
        removed
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn migrate(&self) -> Result<()> {
        Ok(())
    }

    async fn migration_status(&self) -> Result<Vec<MigrationState>> {
        Ok(Vec::new())
    }

    async fn insert_user(&self, user: &User) -> Result<()> {
        let mut state = self.lock();
        let key = (user.app.clone(), user.email.clone());
        if state.emails.contains_key(&key) {
            return Err(Error::Conflict(ConflictKind::DuplicateEmail));
        }
        state.emails.insert(key, user.id);
        state
            .users
            .entry(user.app.clone())
            .or_default()
            .insert(user.id, user.clone());
        Ok(())
    }

    async fn get_user(&self, app: &App, id: UserId) -> Result<Option<User>> {
        Ok(self.lock().users.get(app).and_then(|u| u.get(&id)).cloned())
    }

    async fn find_user_by_email(&self, app: &App, email: &Email) -> Result<Option<User>> {
        let state = self.lock();
        let Some(id) = state.emails.get(&(app.clone(), email.clone())) else {
            return Ok(None);
        };
        Ok(state.users.get(app).and_then(|u| u.get(id)).cloned())
    }

    async fn list_users(&self, app: &App, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        let state = self.lock();
        let Some(users) = state.users.get(app) else {
            return Ok(Vec::new());
        };
        let page = users
            .iter()
            .filter(|(id, _)| after.is_none_or(|after| **id > after))
            .take(limit as usize)
            .map(|(_, user)| user.clone())
            .collect();
        Ok(page)
    }

    async fn update_user(&self, user: &User) -> Result<bool> {
        let mut state = self.lock();
        let Some(old_email) = state
            .users
            .get(&user.app)
            .and_then(|u| u.get(&user.id))
            .map(|old| old.email.clone())
        else {
            return Ok(false);
        };
        if old_email != user.email {
            let new_key = (user.app.clone(), user.email.clone());
            if state.emails.contains_key(&new_key) {
                return Err(Error::Conflict(ConflictKind::DuplicateEmail));
            }
            state.emails.remove(&(user.app.clone(), old_email));
            state.emails.insert(new_key, user.id);
        }
        if let Some(stored) = state
            .users
            .get_mut(&user.app)
            .and_then(|u| u.get_mut(&user.id))
        {
            *stored = user.clone();
        }
        Ok(true)
    }

    async fn delete_user(&self, app: &App, id: UserId) -> Result<bool> {
        let mut state = self.lock();
        let Some(user) = state.users.get_mut(app).and_then(|u| u.remove(&id)) else {
            return Ok(false);
        };
        state.emails.remove(&(app.clone(), user.email));
        state.remove_user_sessions(app, id);
        if state.users.get(app).is_some_and(BTreeMap::is_empty) {
            state.users.remove(app);
        }
        Ok(true)
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        let mut state = self.lock();
        let user_exists = state
            .users
            .get(&session.app)
            .is_some_and(|u| u.contains_key(&session.user_id));
        if !user_exists {
            return Err(Error::NotFound { what: "user" });
        }
        state.add_session(session.clone());
        Ok(())
    }

    async fn get_session(
        &self,
        app: &App,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Session>> {
        Ok(self.lock().live_session(app, id, now).cloned())
    }

    async fn list_sessions(
        &self,
        app: &App,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>> {
        let state = self.lock();
        let mut sessions: Vec<Session> = state
            .by_user
            .get(&user_id)
            .into_iter()
            .flatten()
            .filter_map(|id| state.live_session(app, id, now).cloned())
            .collect();
        sessions.sort_by_key(|s| (s.created_at, s.id));
        Ok(sessions)
    }

    async fn extend_session(
        &self,
        app: &App,
        id: &SessionId,
        expires_at: OffsetDateTime,
        last_seen_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>> {
        let mut state = self.lock();
        if state.live_session(app, id, now).is_none() {
            return Ok(None);
        }
        let session = state.sessions.get_mut(id).expect("checked above");
        session.expires_at = expires_at;
        session.last_seen_at = last_seen_at;
        Ok(Some(session.clone()))
    }

    async fn update_session_data(
        &self,
        app: &App,
        id: &SessionId,
        expected_version: u64,
        data: &SessionData,
        now: OffsetDateTime,
    ) -> Result<DataUpdate> {
        let mut state = self.lock();
        let Some(current) = state.live_session(app, id, now) else {
            return Ok(DataUpdate::Missing);
        };
        if current.version != expected_version {
            return Ok(DataUpdate::StaleVersion);
        }
        let session = state.sessions.get_mut(id).expect("checked above");
        session.data = data.clone();
        session.version += 1;
        Ok(DataUpdate::Updated(Box::new(session.clone())))
    }

    async fn replace_session(
        &self,
        app: &App,
        old: &SessionId,
        expected_version: u64,
        new: &Session,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let mut state = self.lock();
        let matches = state
            .live_session(app, old, now)
            .is_some_and(|s| s.version == expected_version);
        if !matches {
            return Ok(false);
        }
        state.remove_session(old);
        state.add_session(new.clone());
        Ok(true)
    }

    async fn delete_session(&self, app: &App, id: &SessionId) -> Result<bool> {
        let mut state = self.lock();
        if state.sessions.get(id).is_none_or(|s| &s.app != app) {
            return Ok(false);
        }
        Ok(state.remove_session(id).is_some())
    }

    async fn delete_user_sessions(&self, app: &App, user_id: UserId) -> Result<u64> {
        Ok(self.lock().remove_user_sessions(app, user_id))
    }

    async fn purge_expired(&self, now: OffsetDateTime, limit: u32) -> Result<u64> {
        let mut state = self.lock();
        let expired: Vec<SessionId> = state
            .sessions
            .values()
            .filter(|s| !s.is_live_at(now))
            .take(limit as usize)
            .map(|s| s.id)
            .collect();
        for id in &expired {
            state.remove_session_unrecorded(id);
        }
        Ok(expired.len() as u64)
    }

    async fn app_stats(&self) -> Result<Vec<AppStats>> {
        let state = self.lock();
        let mut stats: BTreeMap<App, AppStats> = BTreeMap::new();
        let entry = |stats: &mut BTreeMap<App, AppStats>, app: &App| {
            stats.entry(app.clone()).or_insert_with(|| AppStats {
                app: app.clone(),
                users: 0,
                sessions: 0,
            });
        };
        for (app, users) in &state.users {
            entry(&mut stats, app);
            stats.get_mut(app).expect("inserted").users = users.len() as u64;
        }
        for session in state.sessions.values() {
            entry(&mut stats, &session.app);
            stats.get_mut(&session.app).expect("inserted").sessions += 1;
        }
        Ok(stats.into_values().collect())
    }

    async fn delete_app_batch(&self, app: &App, limit: u32) -> Result<u64> {
        let mut state = self.lock();
        let session_ids: Vec<SessionId> = state
            .sessions
            .values()
            .filter(|s| &s.app == app)
            .take(limit as usize)
            .map(|s| s.id)
            .collect();
        if !session_ids.is_empty() {
            for id in &session_ids {
                state.remove_session_unrecorded(id);
            }
            if state.records_invalidations {
                state.push_invalidation(Invalidation::ResetApp { app: app.clone() });
            }
            return Ok(session_ids.len() as u64);
        }
        let Some(users) = state.users.get_mut(app) else {
            return Ok(0);
        };
        let ids: Vec<UserId> = users.keys().take(limit as usize).copied().collect();
        let mut emails = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(user) = users.remove(id) {
                emails.push(user.email);
            }
        }
        if users.is_empty() {
            state.users.remove(app);
        }
        for email in emails {
            state.emails.remove(&(app.clone(), email));
        }
        if state.records_invalidations && !ids.is_empty() {
            state.push_invalidation(Invalidation::ResetApp { app: app.clone() });
        }
        Ok(ids.len() as u64)
    }

    async fn health(&self) -> Vec<super::ComponentHealth> {
        vec![super::ComponentHealth::from_probe("memory", false, Ok(()))]
    }

    fn records_invalidations(&self) -> bool {
        self.lock().records_invalidations
    }

    async fn enqueue_invalidation(&self, invalidation: &Invalidation) -> Result<()> {
        self.lock().push_invalidation(invalidation.clone());
        Ok(())
    }

    async fn pending_invalidations(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        Ok(self
            .lock()
            .outbox
            .iter()
            .take(limit as usize)
            .map(|(seq, invalidation)| OutboxEntry {
                seq: *seq,
                invalidation: invalidation.clone(),
            })
            .collect())
    }

    async fn ack_invalidations(&self, seqs: &[i64]) -> Result<()> {
        let mut state = self.lock();
        for seq in seqs {
            state.outbox.remove(seq);
        }
        Ok(())
    }
}
