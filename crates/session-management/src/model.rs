//! Domain types: each has a `parse` constructor, so an invalid value cannot exist past the edge.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::token::SessionId;

/// An application slug: `[a-z][a-z0-9-]{0,31}`. Every user and session belongs to exactly one app.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct App(String);

impl App {
    /// Parses an app slug; anything else is [`Error::InvalidInput`] on `app`.
    pub fn parse(raw: &str) -> Result<Self> {
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !first_ok || !rest_ok || raw.len() > 32 {
            return Err(Error::invalid(
                "app",
                "must match [a-z][a-z0-9-]{0,31} (a lowercase slug of at most 32 characters)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's email: trimmed, lowercased, at most 254 bytes, `local@domain` with a dotted domain.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses and normalises an email; anything malformed is [`Error::InvalidInput`] on `email`.
    pub fn parse(raw: &str) -> Result<Self> {
        let email = raw.trim().to_lowercase();
        let bad = |reason: &str| Err(Error::invalid("email", reason));
        if email.is_empty() || email.len() > 254 {
            return bad("must be between 1 and 254 bytes");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return bad("must look like name@example.com");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return bad("must look like name@example.com");
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's display name: trimmed, 1..=200 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    /// Parses a name; anything else is [`Error::InvalidInput`] on `name`.
    pub fn parse(raw: &str) -> Result<Self> {
        let name = raw.trim();
        let count = name.chars().count();
        if count == 0 || count > 200 {
            return Err(Error::invalid("name", "must be 1 to 200 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! debug_as_display_str {
    ($($ty:ty),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    )*};
}
debug_as_display_str!(App, Email, UserName);

/// A user's id: a UUIDv7, so ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// A new, time-ordered id.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the hyphenated UUID form; anything else is [`Error::InvalidInput`] on `user_id`.
    pub fn parse(raw: &str) -> Result<Self> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| Error::invalid("user_id", "must be a UUID"))
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Wraps a UUID read back from a store.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

impl FromStr for UserId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// A user of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The app the user belongs to.
    pub app: App,
    /// Unique within the app.
    pub email: Email,
    /// Display name.
    pub name: UserName,
    /// When the user was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the user was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What a caller gives to create a user (the seed's `CreateUserData`); parsed by the manager.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateUserData {
    /// The email, normalised and checked on creation.
    pub email: String,
    /// The display name.
    pub name: String,
}

/// A partial update of a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpdateUserData {
    /// A new email, unique within the app.
    pub email: Option<String>,
    /// A new display name.
    pub name: Option<String>,
}

/// Where a session was opened from: the client's IP address and user agent (at most 512 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionMetadata {
    ip: IpAddr,
    user_agent: String,
}

impl SessionMetadata {
    /// Longest user agent accepted, in bytes.
    pub const MAX_USER_AGENT_BYTES: usize = 512;

    /// Builds metadata from a parsed IP; an oversized or control-character user agent is
    /// [`Error::InvalidInput`] on `user_agent`.
    pub fn new(ip: IpAddr, user_agent: impl Into<String>) -> Result<Self> {
        let user_agent = user_agent.into();
        if user_agent.len() > Self::MAX_USER_AGENT_BYTES {
            return Err(Error::invalid("user_agent", "must be at most 512 bytes"));
        }
        // The common all-ASCII case byte by byte; C1 controls (U+0080..=U+009F) are not ASCII.
        let bytes = user_agent.as_bytes();
        if bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
            || (!user_agent.is_ascii() && user_agent.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "user_agent",
                "must not contain control characters",
            ));
        }
        Ok(Self { ip, user_agent })
    }

    /// Parses metadata from text, as it arrives from a request: `ip` must parse as IPv4 or IPv6.
    pub fn parse(ip: &str, user_agent: &str) -> Result<Self> {
        let ip = ip
            .trim()
            .parse()
            .map_err(|_| Error::invalid("ip", "must be an IPv4 or IPv6 address"))?;
        Self::new(ip, user_agent)
    }

    /// The client's IP address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The client's user agent.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }
}

/// Application data attached to a session: a JSON object of at most 8 KiB once serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SessionData(serde_json::Map<String, serde_json::Value>);

impl SessionData {
    /// Largest serialized size accepted, in bytes.
    pub const MAX_BYTES: usize = 8 * 1024;

    /// Checks a JSON value: it must be an object of at most 8 KiB serialized, else
    /// [`Error::InvalidInput`] on `data`.
    pub fn parse(value: serde_json::Value) -> Result<Self> {
        let serde_json::Value::Object(map) = value else {
            return Err(Error::invalid("data", "must be a JSON object"));
        };
        let data = Self(map);
        if data.to_json().len() > Self::MAX_BYTES {
            return Err(Error::invalid(
                "data",
                "must be at most 8192 bytes serialized",
            ));
        }
        Ok(data)
    }

    /// Parses serialized JSON (as kept by the stores or typed in a shell).
    pub fn from_json(raw: &str) -> Result<Self> {
        if raw.len() > Self::MAX_BYTES {
            return Err(Error::invalid(
                "data",
                "must be at most 8192 bytes serialized",
            ));
        }
        let value =
            serde_json::from_str(raw).map_err(|_| Error::invalid("data", "must be valid JSON"))?;
        Self::parse(value)
    }

    /// The compact serialized form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The object's entries.
    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A session's time to live: 1 second to 400 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Ttl(u32);

impl Ttl {
    /// The longest TTL accepted: 400 days, in seconds.
    pub const MAX_SECONDS: u64 = 400 * 24 * 3600;

    /// Checks a TTL in seconds; 0 or more than 400 days is [`Error::InvalidInput`] on `ttl`.
    pub fn from_secs(seconds: u64) -> Result<Self> {
        if seconds == 0 || seconds > Self::MAX_SECONDS {
            return Err(Error::invalid(
                "ttl",
                "must be between 1 second and 400 days",
            ));
        }
        Ok(Self(u32::try_from(seconds).expect("400 days fits in u32")))
    }

    /// The TTL in seconds.
    pub fn as_secs(&self) -> u64 {
        u64::from(self.0)
    }

    /// The TTL as a duration.
    pub fn as_duration(&self) -> Duration {
        Duration::from_secs(self.as_secs())
    }
}

/// A login session. Its token is never part of it: only the [`SessionId`] derived from the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// SHA-256 of the token.
    pub id: SessionId,
    /// The user the session belongs to.
    pub user_id: UserId,
    /// The app the session belongs to.
    pub app: App,
    /// Where the session was opened from.
    #[serde(flatten)]
    pub metadata: SessionMetadata,
    /// Application data.
    pub data: SessionData,
    /// When the session was created (kept across rotation).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// After this instant the session is dead.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The last time the session was touched, rotated or created.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// The TTL given at creation, used by sliding extension.
    #[serde(rename = "ttl_seconds")]
    pub ttl: Ttl,
    /// Incremented by every change of `data`, for optimistic concurrency.
    pub version: u64,
}

impl Session {
    /// Whether the session is still alive at `now`.
    pub fn is_live_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at > now
    }
}

/// One page of a cursor-paged listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Counts of one app's stored rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppStats {
    /// The app.
    pub app: App,
    /// Number of users.
    pub users: u64,
    /// Number of stored sessions (live or not yet swept).
    pub sessions: u64,
}

/// Truncates an instant to whole milliseconds, the precision every store keeps.
pub(crate) fn truncate_to_millis(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000_000)
        .expect("a smaller nanosecond is in range")
}

/// Milliseconds since the Unix epoch, the form SQL stores keep.
pub(crate) fn to_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("timestamp fits in i64 millis")
}

/// The inverse of [`to_millis`].
pub(crate) fn from_millis(millis: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).map_err(|err| {
        Error::Internal {
            context: "stored timestamp",
            source: Box::new(err),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_slugs() {
        for ok in ["web", "admin", "a", "a-1", &"a".repeat(32)] {
            assert!(App::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Web", "1web", "-web", "we b", "wéb", &"a".repeat(33)] {
            assert_eq!(App::parse(bad).unwrap_err().field(), Some("app"), "{bad}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@-example.com",
            "ada@exa_mple.com",
            ".ada@example.com",
            &long,
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().field(),
                Some("email"),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(UserName::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(UserName::parse(&"é".repeat(200)).is_ok());
        for bad in ["", "   ", &"x".repeat(201), "a\u{0}b"] {
            assert_eq!(UserName::parse(bad).unwrap_err().field(), Some("name"));
        }
    }

    #[test]
    fn metadata_checks_ip_and_user_agent() {
        assert!(SessionMetadata::parse("::1", "curl").is_ok());
        assert!(SessionMetadata::parse("203.0.113.9", &"u".repeat(512)).is_ok());
        assert_eq!(
            SessionMetadata::parse("300.1.1.1", "x")
                .unwrap_err()
                .field(),
            Some("ip")
        );
        assert_eq!(
            SessionMetadata::parse("1.2.3.4", &"u".repeat(513))
                .unwrap_err()
                .field(),
            Some("user_agent")
        );
        // Control characters, ASCII (C0, DEL) or not (C1), are refused; other non-ASCII is fine.
        for agent in ["a\tb", "a\nb", "a\u{7f}", "caf\u{e9}\u{85}", "\u{9f}"] {
            assert_eq!(
                SessionMetadata::parse("1.2.3.4", agent)
                    .unwrap_err()
                    .field(),
                Some("user_agent"),
                "{agent:?}"
            );
        }
        assert!(SessionMetadata::parse("1.2.3.4", "Caf\u{e9}/1.0 (\u{65e5}\u{672c})").is_ok());
    }

    #[test]
    fn data_must_be_a_small_object() {
        assert!(SessionData::parse(serde_json::json!({"cart": [1, 2]})).is_ok());
        assert_eq!(
            SessionData::parse(serde_json::json!([1]))
                .unwrap_err()
                .field(),
            Some("data")
        );
        let big = serde_json::json!({ "k": "x".repeat(8200) });
        assert_eq!(SessionData::parse(big).unwrap_err().field(), Some("data"));
        assert_eq!(
            SessionData::from_json("{").unwrap_err().field(),
            Some("data")
        );
    }

    #[test]
    fn ttl_bounds() {
        assert!(Ttl::from_secs(1).is_ok());
        assert!(Ttl::from_secs(Ttl::MAX_SECONDS).is_ok());
        assert_eq!(Ttl::from_secs(0).unwrap_err().field(), Some("ttl"));
        assert_eq!(
            Ttl::from_secs(Ttl::MAX_SECONDS + 1).unwrap_err().field(),
            Some("ttl")
        );
    }

    #[test]
    fn millis_round_trip() {
        let now = truncate_to_millis(OffsetDateTime::now_utc());
        assert_eq!(from_millis(to_millis(now)).unwrap(), now);
    }
}
