//! The studio's actions (POST): log in and out, revoke sessions, delete a user. Every one checks
//! the origin; every one but login needs the login's CSRF token; each answers with a 303.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use session_management::{App, SessionId, UserId};

use super::auth::{self, SameOrigin, StudioSession};
use super::error::StudioError;
use super::templates::{LoginPage, render};
use crate::server::state::AppState;

type ActionResult = Result<Redirect, StudioError>;

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    api_key: Option<String>,
}

/// The hidden fields of every other form.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    /// On a session's revoke form: the user page to come back to.
    user_id: Option<String>,
}

/// `POST /studio/login`: the right API key (any value when none is configured) sets the signed
/// login cookie and goes to `/studio`; a wrong one is 401 and the form again.
pub async fn login(
    _origin: SameOrigin,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let presented = form.ok().and_then(|Form(form)| form.api_key);
    let accepted = match state.api_key() {
        Some(key) => key.matches(presented.as_deref().unwrap_or_default()),
        None => true,
    };
    if !accepted {
        tracing::warn!("studio: login refused, wrong API key");
        let page = LoginPage {
            error: Some("Wrong API key."),
            dev_mode: false,
        };
        return render(StatusCode::UNAUTHORIZED, &page);
    }
    let value = StudioSession::issue(state.studio_secret(), auth::now_secs());
    let mut response = Redirect::to("/studio").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, auth::session_cookie(&value, &headers));
    response
}

/// `POST /studio/logout`: ends the login and clears the cookie.
pub async fn logout(
    session: StudioSession,
    _origin: SameOrigin,
    State(state): State<AppState>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, StudioError> {
    checked(&session, &state, form)?;
    session.end();
    let mut response = Redirect::to("/studio/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, auth::cleared_cookie());
    Ok(response)
}

/// `POST /studio/apps/{app}/sessions/{session_id}/revoke`: revokes one session, back to the user's
/// page (`user_id` in the form) or else the app's.
pub async fn revoke(
    session: StudioSession,
    _origin: SameOrigin,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> ActionResult {
    let form = checked(&session, &state, form)?;
    let Path((app, session_id)) = path?;
    let app = App::parse(&app)?;
    let session_id = SessionId::parse(&session_id)?;
    let back_to = form.user_id.as_deref().map(UserId::parse).transpose()?;
    state.manager().revoke(&app, &session_id).await?;
    Ok(Redirect::to(&match back_to {
        Some(user_id) => format!("/studio/apps/{app}/users/{user_id}?notice=revoked"),
        None => format!("/studio/apps/{app}?notice=revoked"),
    }))
}

/// `POST /studio/apps/{app}/users/{user_id}/revoke-all`: revokes every session of the user.
pub async fn revoke_all(
    session: StudioSession,
    _origin: SameOrigin,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> ActionResult {
    checked(&session, &state, form)?;
    let (app, user_id) = user_path(path)?;
    state.manager().revoke_all(&app, user_id).await?;
    Ok(Redirect::to(&format!(
        "/studio/apps/{app}/users/{user_id}?notice=revoked-all"
    )))
}

/// `POST /studio/apps/{app}/users/{user_id}/delete`: deletes the user (which revokes their
/// sessions), back to the app's page.
pub async fn delete_user(
    session: StudioSession,
    _origin: SameOrigin,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> ActionResult {
    checked(&session, &state, form)?;
    let (app, user_id) = user_path(path)?;
    state.manager().delete(&app, user_id).await?;
    Ok(Redirect::to(&format!("/studio/apps/{app}?notice=deleted")))
}

/// The form, once its CSRF token is this login's; 403 otherwise (a form that does not parse has
/// no token either).
fn checked(
    session: &StudioSession,
    state: &AppState,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<ActionForm, StudioError> {
    let secret = state.studio_secret();
    form.ok()
        .map(|Form(form)| form)
        .filter(|form| {
            form.csrf
                .as_deref()
                .is_some_and(|token| session.csrf_matches(secret, token))
        })
        .ok_or_else(|| {
            tracing::warn!("studio: action refused, missing or wrong CSRF token");
            StudioError::forbidden(
                "this form has expired or did not come from the studio; reload the page and try again",
            )
        })
}

fn user_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(App, UserId), StudioError> {
    let Path((app, user_id)) = path?;
    Ok((App::parse(&app)?, UserId::parse(&user_id)?))
}
