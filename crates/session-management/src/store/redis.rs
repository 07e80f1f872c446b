//! `RedisSessionCache`: the hot tier of the [`TieredStore`](super::TieredStore). Sessions only (users
//! stay in the durable store), in a compact binary encoding, under one configurable key prefix.
//!
//! Keys, for prefix `sm:` and app `web`:
//! - `sm:web:s:{<id>}` the session, with a Redis TTL equal to its remaining lifetime;
//! - `sm:web:r:{<id>}` a revocation tombstone, kept until the revoked session would have expired, so a
//!   late write (a read repair racing a revoke) can never cache it again;
//! - `sm:web:u:{<user_id>}` the set of a user's session ids, so listing needs no `SCAN`.
//!
//! `<id>` is the session id in base64url; the braces are Redis Cluster hash tags, so a session and its
//! tombstone share a slot (the write script touches both). Writes are conditional: a Lua script
//! refuses to store a session that has a tombstone or whose cached copy has a newer version.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Invalidation;
use crate::error::{Error, Result};
use crate::model::{
    App, Session, SessionData, SessionMetadata, Ttl, UserId, from_millis, to_millis,
};
use crate::token::SessionId;

const STORE: &str = "redis";
/// First byte of every encoded session; bump when the layout changes.
const FORMAT: u8 = 1;

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

/// Adds `ARGV[1]` to the user's index `KEYS[1]`, keeping the index alive at least `ARGV[2]` ms.
const INDEX_SCRIPT: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
";

/// Writes the tombstone `KEYS[2]` for `ARGV[1]` ms and drops the cached session `KEYS[1]`, atomically.
const REVOKE_SCRIPT: &str = r"
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('DEL', KEYS[1])
return 1
";

/// Sessions in Redis, behind one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct RedisSessionCache {
    conn: ConnectionManager,
    prefix: String,
    put: Script,
    index: Script,
    revoke: Script,
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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            put: Script::new(PUT_SCRIPT),
            index: Script::new(INDEX_SCRIPT),
            revoke: Script::new(REVOKE_SCRIPT),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn session_key(&self, app: &App, id: &SessionId) -> String {
        format!(
            "{}{app}:s:{{{}}}",
            self.prefix,
            URL_SAFE_NO_PAD.encode(id.as_bytes())
        )
    }

    fn tombstone_key(&self, app: &App, id: &SessionId) -> String {
        format!(
            "{}{app}:r:{{{}}}",
            self.prefix,
            URL_SAFE_NO_PAD.encode(id.as_bytes())
        )
    }

    fn index_key(&self, app: &App, user_id: UserId) -> String {
        format!("{}{app}:u:{{{user_id}}}", self.prefix)
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
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = conn
            .get(self.session_key(app, id))
            .await
            .map_err(unavailable)?;
        match raw {
            Some(raw) => Ok(Some(decode(app, *id, &raw)?).filter(|s| s.is_live_at(now))),
            None => Ok(None),
        }
    }

    /// Caches a session for its remaining lifetime and indexes it under its user. Returns `false` when
    /// the write was refused: the session is revoked (tombstone), a newer version is cached, or it has
    /// already expired.
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
        if stored == 1 {
            let _: i64 = self
                .index
                .key(self.index_key(&session.app, session.user_id))
                .arg(session.id.as_bytes().as_slice())
                .arg(remaining_ms as i64)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
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

    /// The user's cached live sessions (the fallback for listing when the durable store is down).
    /// Ids whose session is gone are dropped from the index on the way.
    pub async fn list_user(
        &self,
        app: &App,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>> {
        let mut conn = self.conn.clone();
        let index = self.index_key(app, user_id);
        let members: Vec<Vec<u8>> = conn.smembers(&index).await.map_err(unavailable)?;
        let ids: Vec<SessionId> = members
            .iter()
            .filter_map(|m| <[u8; 32]>::try_from(m.as_slice()).ok())
            .map(SessionId::from_bytes)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.session_key(app, id)).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut sessions = Vec::new();
        let mut gone = Vec::new();
        for (id, value) in ids.iter().zip(values) {
            match value.map(|raw| decode(app, *id, &raw)).transpose()? {
                Some(s) if s.is_live_at(now) => sessions.push(s),
                _ => gone.push(id.as_bytes().to_vec()),
            }
        }
        if !gone.is_empty() {
            let _: i64 = conn.srem(&index, gone).await.map_err(unavailable)?;
        }
        sessions.sort_by_key(|s| (s.created_at, s.id));
        Ok(sessions)
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

/// The binary encoding: format, version (u64 BE, first so scripts can compare it), user id, three
/// millisecond timestamps, TTL, IP, then length-prefixed user agent and data. App and id are in the key.
fn encode(session: &Session) -> Vec<u8> {
    let agent = session.metadata.user_agent().as_bytes();
    let data = if session.data.is_empty() {
        Vec::new()
    } else {
        session.data.to_json().into_bytes()
    };
    let mut out = Vec::with_capacity(64 + agent.len() + data.len());
    out.push(FORMAT);
    out.extend_from_slice(&session.version.to_be_bytes());
    out.extend_from_slice(session.user_id.as_uuid().as_bytes());
    for at in [session.created_at, session.expires_at, session.last_seen_at] {
        out.extend_from_slice(&to_millis(at).to_be_bytes());
    }
    out.extend_from_slice(&(session.ttl.as_secs() as u32).to_be_bytes());
    match session.metadata.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    for field in [agent, data.as_slice()] {
        out.extend_from_slice(&(field.len() as u16).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// Reads fixed-size pieces off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
}

fn corrupt(what: &'static str) -> Error {
    Error::Internal {
        context: "redis session decoding",
        source: what.into(),
    }
}

fn decode(app: &App, id: SessionId, raw: &[u8]) -> Result<Session> {
    let mut r = Reader(raw);
    if r.array::<1>()?[0] != FORMAT {
        return Err(corrupt("unknown format"));
    }
    let version = u64::from_be_bytes(r.array()?);
    let user_id = UserId::from_uuid(Uuid::from_bytes(r.array()?));
    let created_at = from_millis(i64::from_be_bytes(r.array()?))?;
    let expires_at = from_millis(i64::from_be_bytes(r.array()?))?;
    let last_seen_at = from_millis(i64::from_be_bytes(r.array()?))?;
    let ttl =
        Ttl::from_secs(u64::from(u32::from_be_bytes(r.array()?))).map_err(|_| corrupt("ttl"))?;
    let ip = match r.array::<1>()?[0] {
        4 => IpAddr::from(r.array::<4>()?),
        6 => IpAddr::from(r.array::<16>()?),
        _ => return Err(corrupt("ip")),
    };
    let mut field = || -> Result<&[u8]> {
        let len = u16::from_be_bytes(r.array()?) as usize;
        r.take(len)
    };
    let agent = std::str::from_utf8(field()?).map_err(|_| corrupt("user agent"))?;
    let metadata = SessionMetadata::new(ip, agent).map_err(|_| corrupt("user agent"))?;
    let data = match field()? {
        [] => SessionData::default(),
        json => SessionData::from_json(std::str::from_utf8(json).map_err(|_| corrupt("data"))?)
            .map_err(|_| corrupt("data"))?,
    };
    Ok(Session {
        id,
        user_id,
        app: app.clone(),
        metadata,
        data,
        created_at,
        expires_at,
        last_seen_at,
        ttl,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SessionToken;

    fn session(ip: &str, data: serde_json::Value) -> Session {
        let now = crate::model::truncate_to_millis(OffsetDateTime::now_utc());
        Session {
            id: SessionToken::generate().unwrap().id(),
            user_id: UserId::new_v7(),
            app: App::parse("web").unwrap(),
            metadata: SessionMetadata::parse(ip, &"Mozilla/5.0 ".repeat(8)).unwrap(),
            data: SessionData::parse(data).unwrap(),
            created_at: now,
            expires_at: now + Duration::from_secs(3600),
            last_seen_at: now,
            ttl: Ttl::from_secs(3600).unwrap(),
            version: 7,
        }
    }

    #[test]
    fn encoding_round_trips_v4_v6_and_data() {
        for s in [
            session("203.0.113.9", serde_json::json!({})),
            session("2001:db8::1", serde_json::json!({"cart": [1, 2], "é": "ü"})),
        ] {
            let raw = encode(&s);
            assert_eq!(decode(&s.app, s.id, &raw).unwrap(), s);
        }
    }

    #[test]
    fn encoding_is_compact_and_versions_compare_bytewise() {
        let mut s = session("203.0.113.9", serde_json::json!({}));
        let raw = encode(&s);
        assert!(
            raw.len() < 80 + s.metadata.user_agent().len(),
            "{} bytes",
            raw.len()
        );
        s.version = 8;
        assert!(encode(&s)[..9] > raw[..9]);
        s.version = 256;
        assert!(encode(&s)[..9] > raw[..9]);
    }

    #[test]
    fn truncated_or_foreign_bytes_are_an_internal_error_not_a_panic() {
        let s = session("203.0.113.9", serde_json::json!({"a": 1}));
        let raw = encode(&s);
        for cut in 0..raw.len() {
            assert!(decode(&s.app, s.id, &raw[..cut]).is_err());
        }
        assert!(decode(&s.app, s.id, b"{\"json\": true}").is_err());
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
