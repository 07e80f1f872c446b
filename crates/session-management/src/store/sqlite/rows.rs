//! Row shapes of the `users` and `sessions` tables, and the statements shared by several operations.

use sqlx::FromRow;
use sqlx::sqlite::SqliteRow;

use super::db_err;
use crate::error::{Error, Result};
use crate::model::{
    App, Email, Session, SessionData, SessionMetadata, Ttl, User, UserId, UserName, from_millis,
    to_millis,
};
use crate::store::Invalidation;
use crate::token::SessionId;

/// A `users` row as stored.
#[derive(FromRow)]
pub(super) struct UserRow {
    id: String,
    app: String,
    email: String,
    name: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = Error;
    fn try_from(row: UserRow) -> Result<Self> {
        Ok(Self {
            id: UserId::parse(&row.id).map_err(corrupt)?,
            app: App::parse(&row.app).map_err(corrupt)?,
            email: Email::parse(&row.email).map_err(corrupt)?,
            name: UserName::parse(&row.name).map_err(corrupt)?,
            created_at: from_millis(row.created_at)?,
            updated_at: from_millis(row.updated_at)?,
        })
    }
}

/// A `sessions` row as stored.
#[derive(FromRow)]
pub(super) struct SessionRow {
    id: Vec<u8>,
    app: String,
    user_id: String,
    ip: String,
    user_agent: String,
    data: String,
    created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
    ttl_secs: i64,
    version: i64,
}

impl TryFrom<SessionRow> for Session {
    type Error = Error;
    fn try_from(row: SessionRow) -> Result<Self> {
        let id: [u8; 32] = row
            .id
            .try_into()
            .map_err(|_| corrupt(Error::invalid("session_id", "stored id is not 32 bytes")))?;
        Ok(Self {
            id: SessionId::from_bytes(id),
            user_id: UserId::parse(&row.user_id).map_err(corrupt)?,
            app: App::parse(&row.app).map_err(corrupt)?,
            metadata: SessionMetadata::parse(&row.ip, &row.user_agent).map_err(corrupt)?,
            data: SessionData::from_json(&row.data).map_err(corrupt)?,
            created_at: from_millis(row.created_at)?,
            expires_at: from_millis(row.expires_at)?,
            last_seen_at: from_millis(row.last_seen_at)?,
            ttl: Ttl::from_secs(row.ttl_secs as u64).map_err(corrupt)?,
            version: row.version as u64,
        })
    }
}

/// A stored value that no longer parses is a broken invariant, not bad input.
pub(super) fn corrupt(err: Error) -> Error {
    Error::Internal {
        context: "sqlite row decoding",
        source: Box::new(err),
    }
}

pub(super) fn session_from_row(row: SqliteRow) -> Result<Session> {
    SessionRow::from_row(&row).map_err(db_err)?.try_into()
}

pub(super) fn user_from_row(row: SqliteRow) -> Result<User> {
    UserRow::from_row(&row).map_err(db_err)?.try_into()
}

/// The `sessions` columns in [`SessionRow`] order, as a literal so queries stay `&'static str`.
macro_rules! session_columns {
    () => {
        "id, app, user_id, ip, user_agent, data, created_at, expires_at, last_seen_at, ttl_secs, version"
    };
}

/// Appends invalidations to the outbox inside the caller's transaction.
pub(super) async fn insert_invalidations(
    conn: &mut sqlx::SqliteConnection,
    invalidations: &[Invalidation],
) -> Result<()> {
    for invalidation in invalidations {
        sqlx::query(
            "INSERT INTO invalidation_outbox (kind, app, session_id, until_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(invalidation.kind())
        .bind(invalidation.app().as_str())
        .bind(invalidation.session_id().map(|id| id.as_bytes().to_vec()))
        .bind(invalidation.until().map(to_millis))
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// `Revoke` invalidations for rows returned as `(id, expires_at)` by a `DELETE … RETURNING`.
pub(super) fn revocations(app: &App, rows: &[(Vec<u8>, i64)]) -> Result<Vec<Invalidation>> {
    rows.iter()
        .map(|(id, expires_at)| {
            let id: [u8; 32] = id
                .as_slice()
                .try_into()
                .map_err(|_| corrupt(Error::invalid("session_id", "stored id is not 32 bytes")))?;
            Ok(Invalidation::Revoke {
                app: app.clone(),
                id: SessionId::from_bytes(id),
                until: from_millis(*expires_at)?,
            })
        })
        .collect()
}

/// The one `INSERT` of a session, shared by creation and rotation.
pub(super) fn insert_session_query(
    session: &Session,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(
        "INSERT INTO sessions (id, app, user_id, ip, user_agent, data, created_at, expires_at, \
         last_seen_at, ttl_secs, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(session.id.as_bytes().as_slice())
    .bind(session.app.as_str())
    .bind(session.user_id.to_string())
    .bind(session.metadata.ip().to_string())
    .bind(session.metadata.user_agent())
    .bind(session.data.to_json())
    .bind(to_millis(session.created_at))
    .bind(to_millis(session.expires_at))
    .bind(to_millis(session.last_seen_at))
    .bind(session.ttl.as_secs() as i64)
    .bind(session.version as i64)
}
