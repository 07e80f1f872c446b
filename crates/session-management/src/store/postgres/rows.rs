//! Row shapes of the `users`, `sessions` and `invalidation_outbox` tables, and the statements
//! shared by several operations.

use sqlx::FromRow;
use sqlx::postgres::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::db_err;
use crate::error::{Error, Result};
use crate::model::{
    App, Email, Session, SessionData, SessionMetadata, Ttl, User, UserId, UserName,
};
use crate::store::Invalidation;
use crate::token::SessionId;

/// The `sessions` columns in [`SessionRow`] order, as a literal so queries stay `&'static str`.
macro_rules! session_columns {
    () => {
        "id, app, user_id, ip, user_agent, data, created_at, expires_at, last_seen_at, ttl_secs, version"
    };
}

/// `SELECT` of a [`UserRow`], then `$rest`, as one literal.
macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT id, app, email, name, created_at, updated_at FROM users ",
            $rest
        )
    };
}

/// `SELECT` of a [`SessionRow`], then `$rest`, as one literal.
macro_rules! select_sessions {
    ($rest:literal) => {
        concat!("SELECT ", session_columns!(), " FROM sessions ", $rest)
    };
}

/// A `users` row as stored.
#[derive(FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    app: String,
    email: String,
    name: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = Error;
    fn try_from(row: UserRow) -> Result<Self> {
        Ok(Self {
            id: UserId::from_uuid(row.id),
            app: App::parse(&row.app).map_err(corrupt)?,
            email: Email::parse(&row.email).map_err(corrupt)?,
            name: UserName::parse(&row.name).map_err(corrupt)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A `sessions` row as stored.
#[derive(FromRow)]
pub(super) struct SessionRow {
    pub(super) id: Vec<u8>,
    app: String,
    user_id: Uuid,
    ip: String,
    user_agent: String,
    data: Json<serde_json::Value>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
    ttl_secs: i32,
    version: i64,
}

impl TryFrom<SessionRow> for Session {
    type Error = Error;
    fn try_from(row: SessionRow) -> Result<Self> {
        let ttl_secs = u64::try_from(row.ttl_secs)
            .map_err(|_| corrupt(Error::invalid("ttl", "stored ttl is negative")))?;
        let version = u64::try_from(row.version)
            .map_err(|_| corrupt(Error::invalid("version", "stored version is negative")))?;
        Ok(Self {
            id: session_id(&row.id)?,
            user_id: UserId::from_uuid(row.user_id),
            app: App::parse(&row.app).map_err(corrupt)?,
            metadata: SessionMetadata::parse(&row.ip, &row.user_agent).map_err(corrupt)?,
            data: SessionData::parse(row.data.0).map_err(corrupt)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_seen_at: row.last_seen_at,
            ttl: Ttl::from_secs(ttl_secs).map_err(corrupt)?,
            version,
        })
    }
}

/// A stored value that no longer parses is a broken invariant, not bad input.
pub(super) fn corrupt(err: Error) -> Error {
    Error::Internal {
        context: "postgres row decoding",
        source: Box::new(err),
    }
}

pub(super) fn session_id(bytes: &[u8]) -> Result<SessionId> {
    let id: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt(Error::invalid("session_id", "stored id is not 32 bytes")))?;
    Ok(SessionId::from_bytes(id))
}

/// A version to match in a `WHERE`: one past `i64::MAX` cannot be stored, so it becomes -1, which
/// matches nothing either (stored versions start at 1).
pub(super) fn expected_version_param(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(-1)
}

/// `Revoke` invalidations for rows returned as `(id, expires_at)` by a `DELETE … RETURNING`.
pub(super) fn revocations(
    app: &App,
    rows: &[(Vec<u8>, OffsetDateTime)],
) -> Result<Vec<Invalidation>> {
    rows.iter()
        .map(|(id, expires_at)| {
            Ok(Invalidation::Revoke {
                app: app.clone(),
                id: session_id(id)?,
                until: *expires_at,
            })
        })
        .collect()
}

/// Appends invalidations to the outbox inside the caller's transaction, in one statement, in order.
pub(super) async fn insert_invalidations(
    conn: &mut PgConnection,
    invalidations: &[Invalidation],
) -> Result<()> {
    if invalidations.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = invalidations.iter().map(Invalidation::kind).collect();
    let apps: Vec<&str> = invalidations.iter().map(|i| i.app().as_str()).collect();
    let ids: Vec<Option<Vec<u8>>> = invalidations
        .iter()
        .map(|i| i.session_id().map(|id| id.as_bytes().to_vec()))
        .collect();
    let untils: Vec<Option<OffsetDateTime>> =
        invalidations.iter().map(Invalidation::until).collect();
    sqlx::query(
        "INSERT INTO invalidation_outbox (kind, app, session_id, until) \
         SELECT kind, app, session_id, until \
         FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::timestamptz[]) \
           WITH ORDINALITY AS entries (kind, app, session_id, until, position) \
         ORDER BY position",
    )
    .bind(kinds)
    .bind(apps)
    .bind(ids)
    .bind(untils)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Inserts a session, shared by creation and rotation.
pub(super) async fn insert_session_row(
    conn: &mut PgConnection,
    session: &Session,
) -> sqlx::Result<()> {
    // Ttl is at most 400 days and versions grow by one per write: both fit their columns.
    let ttl_secs = i32::try_from(session.ttl.as_secs()).unwrap_or(i32::MAX);
    let version = i64::try_from(session.version).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO sessions (id, app, user_id, ip, user_agent, data, created_at, expires_at, \
         last_seen_at, ttl_secs, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(session.id.as_bytes().as_slice())
    .bind(session.app.as_str())
    .bind(session.user_id.as_uuid())
    .bind(session.metadata.ip().to_string())
    .bind(session.metadata.user_agent())
    .bind(Json(session.data.as_map()))
    .bind(session.created_at)
    .bind(session.expires_at)
    .bind(session.last_seen_at)
    .bind(ttl_secs)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks a user's row for the rest of `tx`; `false` when there is no such user.
///
/// A session insert (creation, rotation) key-share-locks its user's row through the foreign key, so
/// it either commits first, and the caller's next statement sees (and records) its session, or waits
/// for the caller to commit (and fails if the user is then gone). Without this, a rotated session
/// could survive `revoke_all`, or ON DELETE CASCADE remove one the outbox never hears of.
pub(super) async fn lock_user(tx: &mut PgConnection, app: &App, id: UserId) -> Result<bool> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM users WHERE app = $1 AND id = $2 FOR UPDATE")
            .bind(app.as_str())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
    Ok(found.is_some())
}

pub(super) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
