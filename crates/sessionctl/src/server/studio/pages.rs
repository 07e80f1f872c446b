//! The studio's pages (GET): login, apps, an app's users, one user with their sessions.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use serde::Deserialize;
use session_management::{App, UserId};

use super::auth::StudioSession;
use super::error::StudioError;
use super::templates::{
    AppRow, AppsPage, LoginPage, SessionRow, UserPage, UserRow, UsersPage, notice_text, render,
};
use crate::server::state::AppState;

/// Users per page of the users list.
const PAGE_SIZE: u32 = 100;

type PageResult = Result<Response, StudioError>;

/// `?app=` of `/studio/open`.
#[derive(Debug, Deserialize)]
pub struct OpenQuery {
    app: Option<String>,
}

/// `?email=`, `?cursor=` and `?notice=` of an app's page.
#[derive(Debug, Deserialize)]
pub struct UsersQuery {
    email: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

/// `?notice=` of a user's page.
#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// `GET /studio/login`: the login form.
pub async fn login(State(state): State<AppState>) -> Response {
    let page = LoginPage {
        error: None,
        dev_mode: state.api_key().is_none(),
    };
    render(StatusCode::OK, &page)
}

/// `GET /studio`: every app with its user and session counts.
pub async fn apps(session: StudioSession, State(state): State<AppState>) -> PageResult {
    let apps = state
        .manager()
        .app_stats()
        .await?
        .into_iter()
        .map(|stats| AppRow {
            app: stats.app.to_string(),
            users: stats.users,
            sessions: stats.sessions,
        })
        .collect();
    let page = AppsPage {
        csrf: session.csrf_token(state.studio_secret()),
        apps,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /studio/open?app=…`: to that app's page, once the name is a valid slug.
pub async fn open(
    _session: StudioSession,
    query: Result<Query<OpenQuery>, QueryRejection>,
) -> Result<Redirect, StudioError> {
    let Query(query) = query?;
    let app = App::parse(query.app.as_deref().unwrap_or_default())?;
    Ok(Redirect::to(&format!("/studio/apps/{app}")))
}

/// `GET /studio/apps/{app}`: the first (or `?cursor=`) page of users, or the user with `?email=`.
pub async fn users(
    session: StudioSession,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> PageResult {
    let Path(app) = path?;
    let Query(query) = query?;
    let app = App::parse(&app)?;
    let email = query.email.unwrap_or_default().trim().to_owned();
    let cursor = query.cursor.filter(|cursor| !cursor.is_empty());
    let (users, next_cursor) = if email.is_empty() {
        let page = state
            .manager()
            .list(&app, cursor.as_deref(), PAGE_SIZE)
            .await?;
        (page.items, page.next_cursor)
    } else {
        let found = state.manager().find_by_email(&app, &email).await?;
        (found.into_iter().collect(), None)
    };
    let page = UsersPage {
        csrf: session.csrf_token(state.studio_secret()),
        app: app.to_string(),
        email,
        users: users.into_iter().map(UserRow::from).collect(),
        next_cursor,
        first_page: cursor.is_none(),
        notice: notice_text(query.notice.as_deref()),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /studio/apps/{app}/users/{user_id}`: the user and their live sessions, with the forms to
/// revoke them and to delete the user.
pub async fn user(
    session: StudioSession,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<NoticeQuery>, QueryRejection>,
) -> PageResult {
    let Path((app, user_id)) = path?;
    let Query(query) = query?;
    let app = App::parse(&app)?;
    let user_id = UserId::parse(&user_id)?;
    let user = state.manager().get(&app, user_id).await?;
    let sessions = state.manager().list_sessions(&app, user_id).await?;
    let page = UserPage {
        csrf: session.csrf_token(state.studio_secret()),
        app: app.to_string(),
        user: user.into(),
        sessions: sessions.into_iter().map(SessionRow::from).collect(),
        notice: notice_text(query.notice.as_deref()),
    };
    Ok(render(StatusCode::OK, &page))
}
