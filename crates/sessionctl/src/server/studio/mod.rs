//! The studio: a server-rendered browser UI over the same manager, to browse apps, users and
//! sessions and to revoke or delete them. No JavaScript and no external assets.
//!
//! - `auth`: the signed login cookie, CSRF tokens and the same-origin check;
//! - `pages`: the GET pages; `actions`: the POST forms;
//! - `templates`: the askama templates (`templates/studio/`); `error`: errors as HTML pages.
//!
//! Every page but the login needs the cookie set by `POST /studio/login` with the API key (any
//! value when none is configured, as the server then listens on loopback only).

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::{get, post};

use super::state::AppState;

mod actions;
mod auth;
mod error;
mod pages;
mod templates;

/// Inline styles only; no scripts, images, fonts or frames; forms post only to the studio itself.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The studio's routes, under `/studio`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/studio", get(pages::apps))
        .route("/studio/login", get(pages::login).post(actions::login))
        .route("/studio/logout", post(actions::logout))
        .route("/studio/open", get(pages::open))
        .route("/studio/apps/{app}", get(pages::users))
        .route("/studio/apps/{app}/users/{user_id}", get(pages::user))
        .route(
            "/studio/apps/{app}/sessions/{session_id}/revoke",
            post(actions::revoke),
        )
        .route(
            "/studio/apps/{app}/users/{user_id}/revoke-all",
            post(actions::revoke_all),
        )
        .route(
            "/studio/apps/{app}/users/{user_id}/delete",
            post(actions::delete_user),
        )
        .layer(map_response(security_headers))
}

/// Pages hold user data and forms: never cached, never framed, no scripts.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: with `no-referrer` browsers send `Origin: null` on the
    // studio's own form posts, which the cross-site check must refuse.
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}
