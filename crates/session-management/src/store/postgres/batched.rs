//! The hot paths, batched: concurrent session inserts become one multi-row `INSERT` (one commit, so
//! one WAL flush, for the whole group), and concurrent lookups one `SELECT … WHERE id = ANY($1)`.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{SessionRow, insert_session_row, is_foreign_key_violation};
use super::{STORE, db_err};
use crate::error::{Error, Result};
use crate::model::{App, Session};
use crate::store::batch::{Batcher, fail_all};
use crate::token::SessionId;

/// Most rows in one `INSERT`, or ids in one lookup.
const MAX_BATCH: usize = 64;
/// Batches in flight at once (each holds one pooled connection).
const WORKERS: usize = 4;

/// A lookup: the app, the session and the caller's "now".
pub(super) type Lookup = (App, SessionId, OffsetDateTime);

/// Starts the insert batcher on `pool`.
pub(super) fn inserts(pool: PgPool) -> Batcher<Session, ()> {
    let kept = Arc::new(Kept {
        pool,
        idle: std::sync::Mutex::new(Vec::new()),
    });
    Batcher::spawn("postgres_insert", MAX_BATCH, WORKERS, move |sessions| {
        insert_all(kept.clone(), sessions)
    })
}

/// Connections kept between insert batches, at most one per worker (so up to 4 of the pool's 16
/// are the inserts'). Each is taken from the pool once, with the pool's liveness check, and then
/// reused while it works: a batch skips that check and the pool's bookkeeping, a round trip of its
/// own before every statement (about a quarter more creates per second on the bench machine). After
/// a failed statement the connection goes back to the pool, whose check discards it if it is broken
/// (after a PostgreSQL restart, say), and the rows are retried one by one.
struct Kept {
    pool: PgPool,
    idle: std::sync::Mutex<Vec<PoolConnection<Postgres>>>,
}

impl Kept {
    async fn take(&self) -> sqlx::Result<PoolConnection<Postgres>> {
        let kept = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match kept {
            Some(conn) => Ok(conn),
            None => self.pool.acquire().await,
        }
    }

    fn keep(&self, conn: PoolConnection<Postgres>) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }
}

/// Starts the lookup batcher on `pool`.
pub(super) fn lookups(pool: PgPool) -> Batcher<Lookup, Option<Session>> {
    Batcher::spawn("postgres_get", MAX_BATCH, WORKERS, move |lookups| {
        get_all(pool.clone(), lookups)
    })
}

async fn insert_one(pool: &PgPool, session: &Session) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    match insert_session_row(&mut conn, session).await {
        Ok(()) => Ok(()),
        Err(err) if is_foreign_key_violation(&err) => Err(Error::NotFound { what: "user" }),
        Err(err) => Err(db_err(err)),
    }
}

async fn insert_all(kept: Arc<Kept>, sessions: Vec<Session>) -> Vec<Result<()>> {
    let mut conn = match kept.take().await {
        Ok(conn) => conn,
        Err(err) => return fail_all(sessions.len(), err, |e| Error::from_shared_sqlx(STORE, e)),
    };
    let inserted = match sessions.as_slice() {
        [session] => insert_session_row(&mut conn, session).await,
        _ => insert_many(&mut conn, &sessions).await,
    };
    match inserted {
        Ok(()) => {
            kept.keep(conn);
            sessions.iter().map(|_| Ok(())).collect()
        }
        // One bad row (a user deleted meanwhile) fails the statement, and so does a broken
        // connection: each row alone, on pool connections, so each caller gets its own answer.
        Err(_) => {
            drop(conn);
            let mut results = Vec::with_capacity(sessions.len());
            for session in &sessions {
                results.push(insert_one(&kept.pool, session).await);
            }
            results
        }
    }
}

/// One multi-row `INSERT` of every session, in one statement (one commit).
async fn insert_many(conn: &mut PgConnection, sessions: &[Session]) -> sqlx::Result<()> {
    let mut columns = Columns::with_capacity(sessions.len());
    for session in sessions {
        columns.push(session);
    }
    sqlx::query(
        "INSERT INTO sessions (id, app, user_id, ip, user_agent, data, created_at, expires_at, \
         last_seen_at, ttl_secs, version) \
         SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::uuid[], $4::text[], $5::text[], \
         $6::jsonb[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::int4[], $11::int8[])",
    )
    .bind(columns.ids)
    .bind(columns.apps)
    .bind(columns.user_ids)
    .bind(columns.ips)
    .bind(columns.user_agents)
    .bind(columns.data)
    .bind(columns.created_at)
    .bind(columns.expires_at)
    .bind(columns.last_seen_at)
    .bind(columns.ttl_secs)
    .bind(columns.versions)
    .execute(conn)
    .await
    .map(drop)
}

/// The batch as one array per column.
struct Columns {
    ids: Vec<Vec<u8>>,
    apps: Vec<String>,
    user_ids: Vec<Uuid>,
    ips: Vec<String>,
    user_agents: Vec<String>,
    data: Vec<serde_json::Value>,
    created_at: Vec<OffsetDateTime>,
    expires_at: Vec<OffsetDateTime>,
    last_seen_at: Vec<OffsetDateTime>,
    ttl_secs: Vec<i32>,
    versions: Vec<i64>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            ids: Vec::with_capacity(n),
            apps: Vec::with_capacity(n),
            user_ids: Vec::with_capacity(n),
            ips: Vec::with_capacity(n),
            user_agents: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            expires_at: Vec::with_capacity(n),
            last_seen_at: Vec::with_capacity(n),
            ttl_secs: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, s: &Session) {
        self.ids.push(s.id.as_bytes().to_vec());
        self.apps.push(s.app.as_str().to_owned());
        self.user_ids.push(s.user_id.as_uuid());
        self.ips.push(s.metadata.ip().to_string());
        self.user_agents.push(s.metadata.user_agent().to_owned());
        self.data
            .push(serde_json::Value::Object(s.data.as_map().clone()));
        self.created_at.push(s.created_at);
        self.expires_at.push(s.expires_at);
        self.last_seen_at.push(s.last_seen_at);
        self.ttl_secs
            .push(i32::try_from(s.ttl.as_secs()).unwrap_or(i32::MAX));
        self.versions
            .push(i64::try_from(s.version).unwrap_or(i64::MAX));
    }
}

async fn get_all(pool: PgPool, lookups: Vec<Lookup>) -> Vec<Result<Option<Session>>> {
    let ids: Vec<Vec<u8>> = lookups
        .iter()
        .map(|(_, id, _)| id.as_bytes().to_vec())
        .collect();
    let rows = sqlx::query_as::<_, SessionRow>(select_sessions!("WHERE id = ANY($1)"))
        .bind(ids)
        .fetch_all(&pool)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(err) => {
            return fail_all(lookups.len(), err, |e| Error::from_shared_sqlx(STORE, e));
        }
    };
    let mut found: HashMap<[u8; 32], Arc<Result<Session>>> = HashMap::with_capacity(rows.len());
    for row in rows {
        let key: Option<[u8; 32]> = row.id.as_slice().try_into().ok();
        if let Some(key) = key {
            found.insert(key, Arc::new(Session::try_from(row)));
        }
    }
    lookups
        .into_iter()
        .map(
            |(app, id, now)| match found.get(id.as_bytes()).map(|r| r.as_ref()) {
                None => Ok(None),
                Some(Ok(session)) => {
                    Ok(Some(session.clone()).filter(|s| s.app == app && s.is_live_at(now)))
                }
                Some(Err(_)) => Err(Error::Internal {
                    context: "postgres row decoding",
                    source: "a stored session does not decode".into(),
                }),
            },
        )
        .collect()
}
