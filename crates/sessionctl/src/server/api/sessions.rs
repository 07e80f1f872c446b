//! `/v1/apps/{app}/sessions…`: everything done with a token (in the body, never the URL) or a session id.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use session_management::{App, SessionData, SessionId, SessionToken};

use super::dto::{IssuedSession, SessionDto, TokenBody, UpdateDataBody};
use crate::server::error::{ApiError, ErrorBody};
use crate::server::extract::{ApiJson, ApiPath};
use crate::server::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn token(app: &str, body: &TokenBody) -> ApiResult<(App, SessionToken)> {
    Ok((App::parse(app)?, SessionToken::parse(&body.token)?))
}

/// Check a token: the session if it is live in this app, else 401.
#[utoipa::path(
    post, path = "/apps/{app}/sessions/validate", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$")),
    request_body = TokenBody,
    responses(
        (status = 200, description = "The live session", body = SessionDto),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key, or the token opens no live session", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn validate(
    State(state): State<AppState>,
    ApiPath(app): ApiPath<String>,
    ApiJson(body): ApiJson<TokenBody>,
) -> ApiResult<Json<SessionDto>> {
    let (app, token) = token(&app, &body)?;
    let session = state.manager().validate(&app, &token).await?;
    session
        .map(|s| Json(s.into()))
        .ok_or_else(ApiError::invalid_session)
}

/// Sliding expiry: extend the session when less than half of its TTL is left.
#[utoipa::path(
    post, path = "/apps/{app}/sessions/touch", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$")),
    request_body = TokenBody,
    responses(
        (status = 200, description = "The session, extended or not", body = SessionDto),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key, or the token opens no live session", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn touch(
    State(state): State<AppState>,
    ApiPath(app): ApiPath<String>,
    ApiJson(body): ApiJson<TokenBody>,
) -> ApiResult<Json<SessionDto>> {
    let (app, token) = token(&app, &body)?;
    let session = state
        .manager()
        .touch(&app, &token)
        .await
        .map_err(ApiError::session_by_token)?;
    Ok(Json(session.into()))
}

/// Replace the session's token; the old one stops working at once.
#[utoipa::path(
    post, path = "/apps/{app}/sessions/rotate", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$")),
    request_body = TokenBody,
    responses(
        (status = 200, description = "The new token (shown only here) and the session", body = IssuedSession),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key, or the token opens no live session", body = ErrorBody),
        (status = 409, description = "The session changed concurrently; retry", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn rotate(
    State(state): State<AppState>,
    ApiPath(app): ApiPath<String>,
    ApiJson(body): ApiJson<TokenBody>,
) -> ApiResult<Json<IssuedSession>> {
    let (app, token) = token(&app, &body)?;
    let (token, session) = state
        .manager()
        .rotate(&app, &token)
        .await
        .map_err(ApiError::session_by_token)?;
    Ok(Json(IssuedSession {
        token: token.expose_secret().to_owned(),
        session: session.into(),
    }))
}

/// Revoke the session this token opens (logout).
#[utoipa::path(
    post, path = "/apps/{app}/sessions/revoke", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$")),
    request_body = TokenBody,
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key, or the token opens no live session", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    ApiPath(app): ApiPath<String>,
    ApiJson(body): ApiJson<TokenBody>,
) -> ApiResult<StatusCode> {
    let (app, token) = token(&app, &body)?;
    state
        .manager()
        .revoke_by_token(&app, &token)
        .await
        .map_err(ApiError::session_by_token)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a session's data if `version` is still current (optimistic concurrency).
#[utoipa::path(
    patch, path = "/apps/{app}/sessions/{session_id}/data", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ("session_id" = String, Path, description = "Session id (64 hex characters)", pattern = "^[0-9a-f]{64}$")),
    request_body = UpdateDataBody,
    responses(
        (status = 200, description = "The session with its new version", body = SessionDto),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No live session with this id in this app", body = ErrorBody),
        (status = 409, description = "Stale version", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn update_data(
    State(state): State<AppState>,
    ApiPath((app, session_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateDataBody>,
) -> ApiResult<Json<SessionDto>> {
    let app = App::parse(&app)?;
    let id = SessionId::parse(&session_id)?;
    let data = SessionData::parse(body.data)?;
    let session = state
        .manager()
        .update_data(&app, &id, data, body.version)
        .await?;
    Ok(Json(session.into()))
}

/// Revoke one session by its id.
#[utoipa::path(
    delete, path = "/apps/{app}/sessions/{session_id}", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ("session_id" = String, Path, description = "Session id (64 hex characters)", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No session with this id in this app", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn revoke_by_id(
    State(state): State<AppState>,
    ApiPath((app, session_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = App::parse(&app)?;
    let id = SessionId::parse(&session_id)?;
    state.manager().revoke(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
