//! The API's JSON shapes. They mirror the library types but are the contract: a session carries no
//! token except in the create and rotate responses.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use session_management::{Page, Session, User};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A user of one app.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    /// UUIDv7.
    pub id: Uuid,
    /// The app slug.
    pub app: String,
    /// Normalised (trimmed, lowercased), unique within the app.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<User> for UserDto {
    fn from(user: User) -> Self {
        Self {
            id: user.id.as_uuid(),
            app: user.app.as_str().to_owned(),
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// A login session. `id` is the SHA-256 of the token, safe to show and to revoke with.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    /// 64 lowercase hex characters.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: String,
    /// The user the session belongs to.
    pub user_id: Uuid,
    /// The app slug.
    pub app: String,
    /// The client's IP address.
    pub ip: String,
    /// The client's user agent.
    pub user_agent: String,
    /// Application data (a JSON object).
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Expiry (RFC 3339): the session is dead from then on.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Last creation, touch or rotation (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// Incremented by each data change; pass it back to update data.
    #[schema(minimum = 1)]
    pub version: u64,
}

impl From<Session> for SessionDto {
    fn from(session: Session) -> Self {
        Self {
            id: session.id.to_string(),
            user_id: session.user_id.as_uuid(),
            app: session.app.as_str().to_owned(),
            ip: session.metadata.ip().to_string(),
            user_agent: session.metadata.user_agent().to_owned(),
            data: session.data.as_map().clone(),
            created_at: session.created_at,
            expires_at: session.expires_at,
            last_seen_at: session.last_seen_at,
            version: session.version,
        }
    }
}

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// The users of this page, oldest first.
    pub items: Vec<UserDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<Page<User>> for UserPage {
    fn from(page: Page<User>) -> Self {
        Self {
            items: page.items.into_iter().map(UserDto::from).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// A user's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Oldest first.
    pub items: Vec<SessionDto>,
}

/// How many sessions were revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// The count.
    pub revoked: u64,
}

/// A newly issued token and its session. The token is shown here only: store it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedSession {
    /// The secret the client presents (43 base64url characters).
    pub token: String,
    /// The session.
    pub session: SessionDto,
}

/// Body of `POST /v1/apps/{app}/users`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserBody {
    /// The user's email, unique within the app.
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// Display name, 1 to 200 characters.
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 200)]
    pub name: String,
}

/// Body of `PATCH /v1/apps/{app}/users/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateUserBody {
    /// A new email.
    pub email: Option<String>,
    /// A new display name.
    pub name: Option<String>,
}

/// Body of `POST /v1/apps/{app}/users/{user_id}/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSessionBody {
    /// The client's IP address (v4 or v6).
    #[schema(example = "203.0.113.7")]
    pub ip: String,
    /// The client's user agent, at most 512 bytes.
    #[schema(example = "Mozilla/5.0", max_length = 512)]
    pub user_agent: String,
    /// Time to live in seconds, 1 to 34560000 (400 days).
    #[schema(minimum = 1, maximum = 34560000, example = 3600)]
    pub ttl_seconds: u64,
    /// Initial application data, a JSON object of at most 8 KiB.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// A session token in a body (never in a URL).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenBody {
    /// The token the session was issued with.
    #[schema(pattern = "^[A-Za-z0-9_-]{43}$")]
    pub token: String,
}

/// Body of `PATCH /v1/apps/{app}/sessions/{session_id}/data`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateDataBody {
    /// The new data, a JSON object of at most 8 KiB.
    #[schema(value_type = Object)]
    pub data: Value,
    /// The version the caller read; a stale one is a 409.
    #[schema(minimum = 1)]
    pub version: u64,
}

/// Query of `GET /v1/apps/{app}/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Find the one user with this email instead of listing.
    pub email: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}
