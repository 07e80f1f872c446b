//! `PostgresStore`: the durable backend, PostgreSQL through sqlx, migrations from `migrations/postgres`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;
use time::OffsetDateTime;

use super::batch::Batcher;
use super::{DataUpdate, Invalidation, MigrationState, OutboxEntry, Store};
use crate::error::{Error, Result};
use crate::model::{App, AppStats, Email, Session, SessionData, User, UserId};
use crate::token::SessionId;

/// The embedded migrations. sqlx's Postgres migrator holds a `pg_advisory_lock` for the whole run,
/// so several instances migrating at once is safe: one applies each migration, the others wait for
/// the lock and then find nothing left to do.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const STORE: &str = "postgres";

/// Users and sessions in PostgreSQL, the durable store; safe to share between many instances.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    records_invalidations: bool,
    inserts: Arc<Batcher<Session, ()>>,
    lookups: Arc<Batcher<batched::Lookup, Option<Session>>>,
}

fn db_err(err: sqlx::Error) -> Error {
    Error::from_sqlx(STORE, err)
}

impl PostgresStore {
    /// The advisory-lock key the expiry sweep holds for its transaction, so that only one instance
    /// sweeps at a time (ASCII `sm:purge`).
    pub const PURGE_LOCK_KEY: i64 = 0x736d_3a70_7572_6765;

    /// Connects a pool to a `postgres://` URL. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| Error::Config {
                variable: "DATABASE_URL",
                reason: format!("not a valid postgres URL: {err}"),
            })?
            .application_name("session-management");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        Ok(Self {
            inserts: Arc::new(batched::inserts(pool.clone())),
            lookups: Arc::new(batched::lookups(pool.clone())),
            pool,
            records_invalidations: false,
        })
    }

    /// Records every session deletion in the invalidation outbox, in the same transaction, as the
    /// durable store under a [`TieredStore`](crate::store::TieredStore) must.
    pub fn with_invalidation_outbox(mut self) -> Self {
        self.records_invalidations = true;
        self
    }

    /// The underlying pool, for tools that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Deletes a user's sessions inside `tx`, recording their revocation when the outbox is on.
    async fn delete_sessions_where_user(
        &self,
        tx: &mut PgConnection,
        app: &App,
        user_id: UserId,
    ) -> Result<u64> {
        let deleted: Vec<(Vec<u8>, OffsetDateTime)> = sqlx::query_as(
            "DELETE FROM sessions WHERE app = $1 AND user_id = $2 RETURNING id, expires_at",
        )
        .bind(app.as_str())
        .bind(user_id.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if self.records_invalidations {
            insert_invalidations(tx, &revocations(app, &deleted)?).await?;
        }
        Ok(deleted.len() as u64)
    }

    /// Whether a live session with this id exists in this app.
    async fn session_is_live(
        &self,
        app: &App,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM sessions WHERE id = $1 AND app = $2 AND expires_at > $3",
        )
        .bind(id.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(found.is_some())
    }
}

#[macro_use]
mod rows;
mod batched;

use rows::*;

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        STORE
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(err) => db_err(err),
            err => Error::Internal {
                context: "postgres migration",
                source: Box::new(err),
            },
        })
    }

    async fn migration_status(&self) -> Result<Vec<MigrationState>> {
        let has_table: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        let applied: Vec<i64> = if has_table {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?
        } else {
            Vec::new()
        };
        Ok(MIGRATOR
            .iter()
            .map(|m| MigrationState {
                version: m.version,
                description: m.description.to_string(),
                applied: applied.contains(&m.version),
            })
            .collect())
    }

    async fn insert_user(&self, user: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, app, email, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.as_uuid())
        .bind(user.app.as_str())
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn get_user(&self, app: &App, id: UserId) -> Result<Option<User>> {
        sqlx::query_as::<_, UserRow>(select_users!("WHERE app = $1 AND id = $2"))
            .bind(app.as_str())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(User::try_from)
            .transpose()
    }

    async fn find_user_by_email(&self, app: &App, email: &Email) -> Result<Option<User>> {
        sqlx::query_as::<_, UserRow>(select_users!("WHERE app = $1 AND email = $2"))
            .bind(app.as_str())
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(User::try_from)
            .transpose()
    }

    async fn list_users(&self, app: &App, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        // `uuid` compares bytewise, like `Uuid`, so UUIDv7 ids come out in creation order.
        sqlx::query_as::<_, UserRow>(select_users!(
            "WHERE app = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(app.as_str())
        .bind(after.map(|id| id.as_uuid()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(User::try_from)
        .collect()
    }

    async fn update_user(&self, user: &User) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET email = $1, name = $2, updated_at = $3 WHERE app = $4 AND id = $5",
        )
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(user.updated_at)
        .bind(user.app.as_str())
        .bind(user.id.as_uuid())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, app: &App, id: UserId) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if !lock_user(&mut tx, app, id).await? {
            return Ok(false);
        }
        self.delete_sessions_where_user(&mut tx, app, id).await?;
        sqlx::query("DELETE FROM users WHERE app = $1 AND id = $2")
            .bind(app.as_str())
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        // Grouped with concurrent inserts into one multi-row INSERT: one commit for the group.
        self.inserts.call(session.clone()).await
    }

    async fn get_session(
        &self,
        app: &App,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Session>> {
        // Grouped with concurrent lookups into one `WHERE id = ANY($1)`.
        self.lookups.call((app.clone(), *id, now)).await
    }

    async fn list_sessions(
        &self,
        app: &App,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>> {
        sqlx::query_as::<_, SessionRow>(select_sessions!(
            "WHERE app = $1 AND user_id = $2 AND expires_at > $3 ORDER BY created_at, id"
        ))
        .bind(app.as_str())
        .bind(user_id.as_uuid())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(Session::try_from)
        .collect()
    }

    async fn extend_session(
        &self,
        app: &App,
        id: &SessionId,
        expires_at: OffsetDateTime,
        last_seen_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>> {
        sqlx::query_as::<_, SessionRow>(concat!(
            "UPDATE sessions SET expires_at = $1, last_seen_at = $2 \
             WHERE id = $3 AND app = $4 AND expires_at > $5 RETURNING ",
            session_columns!()
        ))
        .bind(expires_at)
        .bind(last_seen_at)
        .bind(id.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(Session::try_from)
        .transpose()
    }

    async fn update_session_data(
        &self,
        app: &App,
        id: &SessionId,
        expected_version: u64,
        data: &SessionData,
        now: OffsetDateTime,
    ) -> Result<DataUpdate> {
        let updated = sqlx::query_as::<_, SessionRow>(concat!(
            "UPDATE sessions SET data = $1, version = version + 1 \
             WHERE id = $2 AND app = $3 AND version = $4 AND expires_at > $5 RETURNING ",
            session_columns!()
        ))
        .bind(Json(data.as_map()))
        .bind(id.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(expected_version_param(expected_version))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        if let Some(row) = updated {
            return Ok(DataUpdate::Updated(Box::new(row.try_into()?)));
        }
        Ok(if self.session_is_live(app, id, now).await? {
            DataUpdate::StaleVersion
        } else {
            DataUpdate::Missing
        })
    }

    async fn replace_session(
        &self,
        app: &App,
        old: &SessionId,
        expected_version: u64,
        new: &Session,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The insert comes first so this takes the user row's key-share lock before any session
        // row's lock, in the same order as `lock_user` callers: they queue instead of deadlocking.
        match insert_session_row(&mut tx, new).await {
            Ok(()) => {}
            // The user (and so `old`) was deleted meanwhile.
            Err(err) if is_foreign_key_violation(&err) => return Ok(false),
            Err(err) => return Err(db_err(err)),
        }
        let deleted = sqlx::query(
            "DELETE FROM sessions WHERE id = $1 AND app = $2 AND version = $3 AND expires_at > $4",
        )
        .bind(old.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(expected_version_param(expected_version))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if deleted.rows_affected() != 1 {
            return Ok(false);
        }
        if self.records_invalidations {
            // Rotation keeps the expiry, so the old id is blocked until the same instant.
            let revoked = Invalidation::Revoke {
                app: app.clone(),
                id: *old,
                until: new.expires_at,
            };
            insert_invalidations(&mut tx, &[revoked]).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn delete_session(&self, app: &App, id: &SessionId) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let deleted: Vec<(Vec<u8>, OffsetDateTime)> = sqlx::query_as(
            "DELETE FROM sessions WHERE id = $1 AND app = $2 RETURNING id, expires_at",
        )
        .bind(id.as_bytes().as_slice())
        .bind(app.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if self.records_invalidations {
            insert_invalidations(&mut tx, &revocations(app, &deleted)?).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(deleted.len() == 1)
    }

    async fn delete_user_sessions(&self, app: &App, user_id: UserId) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        lock_user(&mut tx, app, user_id).await?;
        let deleted = self
            .delete_sessions_where_user(&mut tx, app, user_id)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }

    async fn purge_expired(&self, now: OffsetDateTime, limit: u32) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // One sweeper at a time across instances; the lock goes with the transaction.
        let sweeping: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(Self::PURGE_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !sweeping {
            tx.rollback().await.map_err(db_err)?;
            return Ok(0);
        }
        // Expired sessions need no outbox entry: a cached copy expires with them.
        let done = sqlx::query(
            "DELETE FROM sessions WHERE id IN \
             (SELECT id FROM sessions WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(now)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn app_stats(&self) -> Result<Vec<AppStats>> {
        // COLLATE "C" sorts apps bytewise, like `App`'s `Ord`, whatever the database's locale.
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT app, SUM(users)::bigint AS users, SUM(sessions)::bigint AS sessions FROM ( \
               SELECT app, COUNT(*) AS users, 0::bigint AS sessions FROM users GROUP BY app \
               UNION ALL \
               SELECT app, 0::bigint AS users, COUNT(*) AS sessions FROM sessions GROUP BY app \
             ) AS counts GROUP BY app ORDER BY app COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(app, users, sessions)| {
                Ok(AppStats {
                    app: App::parse(&app).map_err(corrupt)?,
                    users: users as u64,
                    sessions: sessions as u64,
                })
            })
            .collect()
    }

    async fn delete_app_batch(&self, app: &App, limit: u32) -> Result<u64> {
        // Sessions first, then users; each batch is covered by one `ResetApp` entry, so the app's
        // Redis keys (sessions, tombstones, indexes) go even when only users were left.
        for statement in [
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE app = $1 LIMIT $2)",
            "DELETE FROM users WHERE id IN (SELECT id FROM users WHERE app = $1 LIMIT $2)",
        ] {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let done = sqlx::query(statement)
                .bind(app.as_str())
                .bind(i64::from(limit))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() > 0 {
                if self.records_invalidations {
                    let reset = Invalidation::ResetApp { app: app.clone() };
                    insert_invalidations(&mut tx, &[reset]).await?;
                }
                tx.commit().await.map_err(db_err)?;
                return Ok(done.rows_affected());
            }
        }
        Ok(0)
    }

    async fn health(&self) -> Vec<super::ComponentHealth> {
        let probe = sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(db_err);
        vec![super::ComponentHealth::from_probe(STORE, false, probe)]
    }

    fn records_invalidations(&self) -> bool {
        self.records_invalidations
    }

    async fn enqueue_invalidation(&self, invalidation: &Invalidation) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        insert_invalidations(&mut conn, std::slice::from_ref(invalidation)).await
    }

    async fn pending_invalidations(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        let rows: Vec<(i64, String, String, Option<Vec<u8>>, Option<OffsetDateTime>)> =
            sqlx::query_as(
                "SELECT seq, kind, app, session_id, until FROM invalidation_outbox \
                 ORDER BY seq LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|(seq, kind, app, id, until)| {
                Ok(OutboxEntry {
                    seq,
                    invalidation: Invalidation::from_row(&kind, &app, id.as_deref(), until)?,
                })
            })
            .collect()
    }

    async fn ack_invalidations(&self, seqs: &[i64]) -> Result<()> {
        sqlx::query("DELETE FROM invalidation_outbox WHERE seq = ANY($1)")
            .bind(seqs)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
