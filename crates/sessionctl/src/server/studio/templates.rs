//! The studio's pages as askama templates (`templates/studio/*.html`, HTML-escaped by default) and
//! the rows they show, already formatted for display.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use session_management::{Session, User};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// `GET /studio/login`.
#[derive(Template)]
#[template(path = "studio/login.html")]
pub struct LoginPage {
    /// Why the last attempt failed.
    pub error: Option<&'static str>,
    /// No API key is configured: any value logs in.
    pub dev_mode: bool,
}

/// `GET /studio`: every app with its counts.
#[derive(Template)]
#[template(path = "studio/apps.html")]
pub struct AppsPage {
    /// The CSRF token for the logout form.
    pub csrf: String,
    /// One row per app.
    pub apps: Vec<AppRow>,
}

/// One app on the apps page.
pub struct AppRow {
    /// The app's slug.
    pub app: String,
    /// Its users.
    pub users: u64,
    /// Its stored sessions.
    pub sessions: u64,
}

/// `GET /studio/apps/{app}`: a page of users, or the result of a search by email.
#[derive(Template)]
#[template(path = "studio/users.html")]
pub struct UsersPage {
    /// The CSRF token for the logout form.
    pub csrf: String,
    /// The app's slug.
    pub app: String,
    /// The email searched for; empty when listing.
    pub email: String,
    /// The users shown.
    pub users: Vec<UserRow>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
    /// Whether this is the first page of the list.
    pub first_page: bool,
    /// The outcome of the last action.
    pub notice: Option<&'static str>,
}

/// One user, formatted.
pub struct UserRow {
    /// UUID.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Last change, RFC 3339 UTC.
    pub updated: String,
}

impl From<User> for UserRow {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
            name: user.name.to_string(),
            created: rfc3339(user.created_at),
            updated: rfc3339(user.updated_at),
        }
    }
}

/// `GET /studio/apps/{app}/users/{user_id}`: one user and their live sessions.
#[derive(Template)]
#[template(path = "studio/user.html")]
pub struct UserPage {
    /// The CSRF token for every form on the page.
    pub csrf: String,
    /// The app's slug.
    pub app: String,
    /// The user.
    pub user: UserRow,
    /// Their live sessions.
    pub sessions: Vec<SessionRow>,
    /// The outcome of the last action.
    pub notice: Option<&'static str>,
}

/// One session, formatted. There is no token to show: only its hash, the id.
pub struct SessionRow {
    /// The id, 64 hex characters.
    pub id: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Expiry, RFC 3339 UTC.
    pub expires: String,
    /// Last activity, RFC 3339 UTC.
    pub last_seen: String,
    /// Client IP at creation.
    pub ip: String,
    /// Client user agent at creation.
    pub user_agent: String,
}

impl From<Session> for SessionRow {
    fn from(session: Session) -> Self {
        Self {
            id: session.id.to_string(),
            created: rfc3339(session.created_at),
            expires: rfc3339(session.expires_at),
            last_seen: rfc3339(session.last_seen_at),
            ip: session.metadata.ip().to_string(),
            user_agent: session.metadata.user_agent().to_owned(),
        }
    }
}

/// Any error.
#[derive(Template)]
#[template(path = "studio/error.html")]
pub struct ErrorPage {
    /// HTTP status code.
    pub status: u16,
    /// Its reason phrase.
    pub reason: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Renders `page` as an HTML response with `status`.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "studio: template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// The text shown for a `?notice=` code; unknown codes show nothing.
pub fn notice_text(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "revoked" => Some("Session revoked."),
        "revoked-all" => Some("All sessions of this user were revoked."),
        "deleted" => Some("User deleted, and all their sessions revoked."),
        _ => None,
    }
}

/// An instant as RFC 3339 in UTC, to the second.
fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}
