//! `RedisSessionCache`: the hot tier of the [`TieredStore`](super::TieredStore). Sessions only (users
//! stay in the durable store), in a compact binary encoding, under one configurable key prefix.
//!
//! Keys, for prefix `sm:` and app `web`:
//! - `sm:web:s:{<id>}` the session, with a Redis TTL equal to its remaining lifetime (`<id>` is the
//!   session id's 32 raw bytes: short keys save Redis memory);
//! - `sm:web:r:{<id>}` a revocation tombstone, kept until the revoked session would have expired, so a
//!   late write (a read repair racing a revoke) can never cache it again;
//!
//! The braces are Redis Cluster hash tags, so a session and its
//! tombstone share a slot (the write script touches both). Writes are conditional: a Lua script
//! refuses to store a session that has a tombstone or whose cached copy has a newer version.
//!
//! There is no per-user index in Redis: listing a user's sessions and revoking them all are answered
//! by the durable store (its `(app, user_id)` index, never a scan), which is the only complete
//! answer anyway, since Redis holds just the sessions it happens to cache. Every session's ids for
//! `revoke_all` come from the durable store's transaction.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};
use time::OffsetDateTime;

mod codec;
mod lookup;

use codec::{decode, encode};
use lookup::Lookups;

use super::Invalidation;
use super::batch::{Combiner, fail_all};
use crate::error::{Error, Result};
use crate::model::{App, Session};
use crate::token::SessionId;

const STORE: &str = "redis";

/// Stores `ARGV[1]` at `KEYS[1]` for `ARGV[2]` ms unless the session has a tombstone (`KEYS[2]`) or the
/// cached copy has a newer version (bytes 1..9 of the encoding: format, then big-endian version, so a
/// byte-wise comparison is a numeric one).
const PUT_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 9) > string.sub(ARGV[1], 1, 9) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Writes the tombstone `KEYS[2]` for `ARGV[1]` ms and drops the cached session `KEYS[1]`, atomically.
const REVOKE_SCRIPT: &str = r"
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('DEL', KEYS[1])
return 1
";

/// Sessions in Redis: lookups on connections of their own (see [`lookup`]), every other command on
/// one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct RedisSessionCache {
    conn: ConnectionManager,
    prefix: String,
    put: Script,
    revoke: Script,
    /// Concurrent lookups (session keys), grouped into one `MGET`; each caller decodes its own value.
    lookups: Arc<Combiner<Vec<u8>, Option<Vec<u8>>>>,
}

/// Most keys in one `MGET`.
const MAX_BATCH: usize = 128;
/// `MGET`s in flight at once, each on its own connection. Three kept the 2-core bench machine busiest
/// (ahead of two by about 6% in paired runs at concurrency 64; four or more no better).
const LEADERS: usize = 3;

/// `<prefix><app>:<kind>:{<the 32 raw id bytes>}`: raw bytes keep keys short (Redis memory).
fn id_key(prefix: &str, app: &App, kind: &str, id: &SessionId) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + app.as_str().len() + 38);
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(app.as_str().as_bytes());
    key.extend_from_slice(kind.as_bytes());
    key.push(b'{');
    key.extend_from_slice(id.as_bytes());
    key.push(b'}');
    key
}

impl std::fmt::Debug for RedisSessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(err: redis::RedisError) -> Error {
    Error::Unavailable {
        store: STORE,
        source: Box::new(err),
    }
}

impl RedisSessionCache {
    /// Connects to `url`. Every command and connection attempt is bounded by `timeout`.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|err| Error::Config {
            variable: "REDIS_URL",
            reason: format!("not a valid Redis URL: {err}"),
        })?;
        let lookups =
            Lookups::new(client.get_connection_info(), timeout).ok_or_else(|| Error::Config {
                variable: "REDIS_URL",
                reason: "only redis:// (plain TCP) addresses are supported".to_owned(),
            })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        let lookups = Arc::new(lookups);
        let lookups = Combiner::new("redis", MAX_BATCH, LEADERS, move |keys: Vec<Vec<u8>>| {
            let lookups = lookups.clone();
            async move {
                match lookups.mget(&keys).await {
                    Ok(values) => values.into_iter().map(Ok).collect(),
                    Err(err) => fail_all(keys.len(), err, |e| Error::Unavailable {
                        store: STORE,
                        source: Box::new(e),
                    }),
                }
            }
        });
        Ok(Self {
            conn,
            lookups: Arc::new(lookups),
            prefix: prefix.to_owned(),
            put: Script::new(PUT_SCRIPT),
            revoke: Script::new(REVOKE_SCRIPT),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn session_key(&self, app: &App, id: &SessionId) -> Vec<u8> {
        id_key(&self.prefix, app, ":s:", id)
    }

    fn tombstone_key(&self, app: &App, id: &SessionId) -> Vec<u8> {
        id_key(&self.prefix, app, ":r:", id)
    }

    /// Round trip to check the connection.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// The cached session, if any and still alive at `now`.
    pub async fn get(
        &self,
        app: &App,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Session>> {
        // Grouped with concurrent lookups into one `MGET`: still one round trip for this caller,
        // who decodes its own value (decoding is spread over the callers, not done by the leader).
        match self.lookups.call(self.session_key(app, id)).await? {
            Some(raw) => Ok(Some(decode(app, *id, &raw)?).filter(|s| s.is_live_at(now))),
            None => Ok(None),
        }
    }

    /// Caches a session for its remaining lifetime. Returns `false` when the write was refused: the
    /// session is revoked (tombstone), a newer version is cached, or it has already expired.
    pub async fn put(&self, session: &Session, now: OffsetDateTime) -> Result<bool> {
        let remaining_ms = (session.expires_at - now).whole_milliseconds();
        if remaining_ms <= 0 {
            return Ok(false);
        }
        let mut conn = self.conn.clone();
        let stored: i64 = self
            .put
            .key(self.session_key(&session.app, &session.id))
            .key(self.tombstone_key(&session.app, &session.id))
            .arg(encode(session))
            .arg(remaining_ms as i64)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(stored == 1)
    }

    /// Applies one outbox entry.
    pub async fn apply(&self, invalidation: &Invalidation, now: OffsetDateTime) -> Result<()> {
        let mut conn = self.conn.clone();
        match invalidation {
            Invalidation::Revoke { app, id, until } => {
                // A tombstone is only needed while the session could still have validated.
                let ms = (*until - now).whole_milliseconds();
                if ms <= 0 {
                    return conn
                        .del(self.session_key(app, id))
                        .await
                        .map_err(unavailable);
                }
                let _: i64 = self
                    .revoke
                    .key(self.session_key(app, id))
                    .key(self.tombstone_key(app, id))
                    .arg(ms as i64)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                Ok(())
            }
            Invalidation::Evict { app, id } => conn
                .del(self.session_key(app, id))
                .await
                .map_err(unavailable),
            Invalidation::ResetApp { app } => self.delete_app_keys(app).await.map(drop),
        }
    }

    /// Deletes every key of the app under this prefix with `SCAN` + `UNLINK`, in batches (never
    /// `FLUSHALL`/`FLUSHDB`: other apps and other prefixes are untouched). Returns how many.
    pub async fn delete_app_keys(&self, app: &App) -> Result<u64> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}{app}:*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// Escapes the glob characters `SCAN MATCH` interprets.
fn glob_escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
