//! `SqliteStore`: the embedded default, one SQLite file through sqlx, migrations from `migrations/sqlite`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;

use super::{DataUpdate, Invalidation, MigrationState, OutboxEntry, Store};
use crate::error::{Error, Result};
use crate::model::{
    App, AppStats, Email, Session, SessionData, User, UserId, from_millis, to_millis,
};
use crate::token::SessionId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const STORE: &str = "sqlite";

/// Users and sessions in one SQLite file (WAL mode, full fsync on commit).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    records_invalidations: bool,
}

fn db_err(err: sqlx::Error) -> Error {
    Error::from_sqlx(STORE, err)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://` URL, creating its parent directory.
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| Error::Config {
                variable: "DATABASE_URL",
                reason: format!("not a valid sqlite URL: {err}"),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let path = options.get_filename();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        Ok(Self {
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
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Deletes a user's sessions inside `tx`, recording their revocation when the outbox is on.
    async fn delete_sessions_where_user(
        &self,
        tx: &mut sqlx::SqliteConnection,
        app: &App,
        user_id: UserId,
    ) -> Result<u64> {
        let deleted: Vec<(Vec<u8>, i64)> = sqlx::query_as(
            "DELETE FROM sessions WHERE app = ? AND user_id = ? RETURNING id, expires_at",
        )
        .bind(app.as_str())
        .bind(user_id.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if self.records_invalidations {
            insert_invalidations(tx, &revocations(app, &deleted)?).await?;
        }
        Ok(deleted.len() as u64)
    }

    async fn session_version(&self, app: &App, id: &SessionId, now: i64) -> Result<Option<u64>> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM sessions WHERE id = ? AND app = ? AND expires_at > ?",
        )
        .bind(id.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(version.map(|v| v as u64))
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|err| Error::Unavailable {
        store: STORE,
        source: Box::new(err),
    })
}

#[macro_use]
mod rows;

use rows::*;

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        STORE
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| Error::Internal {
                context: "sqlite migration",
                source: Box::new(err),
            })
    }

    async fn migration_status(&self) -> Result<Vec<MigrationState>> {
        let has_table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let applied: Vec<i64> = if has_table.is_some() {
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
            "INSERT INTO users (id, app, email, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(user.app.as_str())
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(to_millis(user.created_at))
        .bind(to_millis(user.updated_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn get_user(&self, app: &App, id: UserId) -> Result<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE app = ? AND id = ?")
            .bind(app.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(user_from_row)
            .transpose()
    }

    async fn find_user_by_email(&self, app: &App, email: &Email) -> Result<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE app = ? AND email = ?")
            .bind(app.as_str())
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(user_from_row)
            .transpose()
    }

    async fn list_users(&self, app: &App, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        // UUIDv7 in hyphenated lowercase text sorts like the UUID itself.
        sqlx::query("SELECT * FROM users WHERE app = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(app.as_str())
            .bind(after.map(|id| id.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(user_from_row)
            .collect()
    }

    async fn update_user(&self, user: &User) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET email = ?, name = ?, updated_at = ? WHERE app = ? AND id = ?",
        )
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(to_millis(user.updated_at))
        .bind(user.app.as_str())
        .bind(user.id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, app: &App, id: UserId) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Sessions first (ON DELETE CASCADE would take them too, but the outbox needs their ids).
        self.delete_sessions_where_user(&mut tx, app, id).await?;
        let done = sqlx::query("DELETE FROM users WHERE app = ? AND id = ?")
            .bind(app.as_str())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        let result = insert_session_query(session).execute(&self.pool).await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                Err(Error::NotFound { what: "user" })
            }
            Err(err) => Err(db_err(err)),
        }
    }

    async fn get_session(
        &self,
        app: &App,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = ? AND app = ? AND expires_at > ?"
        ))
        .bind(id.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(session_from_row)
        .transpose()
    }

    async fn list_sessions(
        &self,
        app: &App,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE app = ? AND user_id = ? AND expires_at > ? ORDER BY created_at, id"
        ))
        .bind(app.as_str())
        .bind(user_id.to_string())
        .bind(to_millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(session_from_row)
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
        sqlx::query(concat!(
            "UPDATE sessions SET expires_at = ?, last_seen_at = ? \
             WHERE id = ? AND app = ? AND expires_at > ? RETURNING ",
            session_columns!()
        ))
        .bind(to_millis(expires_at))
        .bind(to_millis(last_seen_at))
        .bind(id.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(session_from_row)
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
        let updated = sqlx::query(concat!(
            "UPDATE sessions SET data = ?, version = version + 1 \
             WHERE id = ? AND app = ? AND version = ? AND expires_at > ? RETURNING ",
            session_columns!()
        ))
        .bind(data.to_json())
        .bind(id.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(expected_version as i64)
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        if let Some(row) = updated {
            return Ok(DataUpdate::Updated(Box::new(session_from_row(row)?)));
        }
        Ok(match self.session_version(app, id, to_millis(now)).await? {
            Some(_) => DataUpdate::StaleVersion,
            None => DataUpdate::Missing,
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
        // The delete comes first so the transaction takes the write lock at once.
        let deleted = sqlx::query(
            "DELETE FROM sessions WHERE id = ? AND app = ? AND version = ? AND expires_at > ?",
        )
        .bind(old.as_bytes().as_slice())
        .bind(app.as_str())
        .bind(expected_version as i64)
        .bind(to_millis(now))
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
        insert_session_query(new)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn delete_session(&self, app: &App, id: &SessionId) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let deleted: Vec<(Vec<u8>, i64)> = sqlx::query_as(
            "DELETE FROM sessions WHERE id = ? AND app = ? RETURNING id, expires_at",
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
        let deleted = self
            .delete_sessions_where_user(&mut tx, app, user_id)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }

    async fn purge_expired(&self, now: OffsetDateTime, limit: u32) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE id IN \
             (SELECT id FROM sessions WHERE expires_at <= ? LIMIT ?)",
        )
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn app_stats(&self) -> Result<Vec<AppStats>> {
        let rows = sqlx::query(
            "SELECT app, SUM(users) AS users, SUM(sessions) AS sessions FROM ( \
               SELECT app, COUNT(*) AS users, 0 AS sessions FROM users GROUP BY app \
               UNION ALL \
               SELECT app, 0 AS users, COUNT(*) AS sessions FROM sessions GROUP BY app \
             ) GROUP BY app ORDER BY app",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|row| {
                let app: String = row.try_get("app").map_err(db_err)?;
                let users: i64 = row.try_get("users").map_err(db_err)?;
                let sessions: i64 = row.try_get("sessions").map_err(db_err)?;
                Ok(AppStats {
                    app: App::parse(&app).map_err(corrupt)?,
                    users: users as u64,
                    sessions: sessions as u64,
                })
            })
            .collect()
    }

    async fn delete_app_batch(&self, app: &App, limit: u32) -> Result<u64> {
        for statement in [
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE app = ? LIMIT ?)",
            "DELETE FROM users WHERE id IN (SELECT id FROM users WHERE app = ? LIMIT ?)",
        ] {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let done = sqlx::query(statement)
                .bind(app.as_str())
                .bind(i64::from(limit))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() > 0 {
                // Covers the app's Redis keys (sessions, tombstones, indexes), even when only
                // users were left.
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
        let rows: Vec<(i64, String, String, Option<Vec<u8>>, Option<i64>)> = sqlx::query_as(
            "SELECT seq, kind, app, session_id, until_ms FROM invalidation_outbox ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(seq, kind, app, id, until)| {
                let until = until.map(from_millis).transpose()?;
                Ok(OutboxEntry {
                    seq,
                    invalidation: Invalidation::from_row(&kind, &app, id.as_deref(), until)?,
                })
            })
            .collect()
    }

    async fn ack_invalidations(&self, seqs: &[i64]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for seq in seqs {
            sqlx::query("DELETE FROM invalidation_outbox WHERE seq = ?")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }
}
