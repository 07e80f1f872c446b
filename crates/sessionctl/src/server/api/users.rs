//! `/v1/apps/{app}/users…`: users, and the sessions of one user.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use session_management::{
    App, CreateUserData, SessionData, SessionMetadata, Ttl, UpdateUserData, UserId,
};

use super::dto::{
    CreateSessionBody, CreateUserBody, IssuedSession, ListUsersQuery, Revoked, SessionList,
    UpdateUserBody, UserDto, UserPage,
};
use crate::server::error::{ApiError, ErrorBody};
use crate::server::extract::{ApiJson, ApiPath, ApiQuery};
use crate::server::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn ids(app: &str, user_id: &str) -> ApiResult<(App, UserId)> {
    Ok((App::parse(app)?, UserId::parse(user_id)?))
}

/// Create a user.
#[utoipa::path(
    post, path = "/apps/{app}/users", tag = "users",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$")),
    request_body = CreateUserBody,
    responses(
        (status = 201, description = "Created", body = UserDto),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "Email already used in this app", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create_user(
    State(state): State<AppState>,
    ApiPath(app): ApiPath<String>,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> ApiResult<(StatusCode, Json<UserDto>)> {
    let app = App::parse(&app)?;
    let data = CreateUserData {
        email: body.email,
        name: body.name,
    };
    let user = state.manager().create(&app, data).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// List an app's users, oldest first, or find one by email.
#[utoipa::path(
    get, path = "/apps/{app}/users", tag = "users",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ListUsersQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    ApiPath(app): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListUsersQuery>,
) -> ApiResult<Json<UserPage>> {
    let app = App::parse(&app)?;
    if let Some(email) = query.email {
        let found = state.manager().find_by_email(&app, &email).await?;
        return Ok(Json(UserPage {
            items: found.into_iter().map(UserDto::from).collect(),
            next_cursor: None,
        }));
    }
    let page = state
        .manager()
        .list(&app, query.cursor.as_deref(), query.limit.unwrap_or(100))
        .await?;
    Ok(Json(page.into()))
}

/// Get one user.
#[utoipa::path(
    get, path = "/apps/{app}/users/{user_id}", tag = "users",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ("user_id" = String, Path, description = "User id (UUID)", format = Uuid)),
    responses(
        (status = 200, description = "The user", body = UserDto),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such user in this app", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get_user(
    State(state): State<AppState>,
    ApiPath((app, user_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<UserDto>> {
    let (app, user_id) = ids(&app, &user_id)?;
    Ok(Json(state.manager().get(&app, user_id).await?.into()))
}

/// Change a user's email and/or name.
#[utoipa::path(
    patch, path = "/apps/{app}/users/{user_id}", tag = "users",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ("user_id" = String, Path, description = "User id (UUID)", format = Uuid)),
    request_body = UpdateUserBody,
    responses(
        (status = 200, description = "The changed user", body = UserDto),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such user in this app", body = ErrorBody),
        (status = 409, description = "Email already used in this app", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn update_user(
    State(state): State<AppState>,
    ApiPath((app, user_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> ApiResult<Json<UserDto>> {
    let (app, user_id) = ids(&app, &user_id)?;
    let data = UpdateUserData {
        email: body.email,
        name: body.name,
    };
    Ok(Json(
        state.manager().update(&app, user_id, data).await?.into(),
    ))
}

/// Delete a user and revoke all their sessions.
#[utoipa::path(
    delete, path = "/apps/{app}/users/{user_id}", tag = "users",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ("user_id" = String, Path, description = "User id (UUID)", format = Uuid)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such user in this app", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn delete_user(
    State(state): State<AppState>,
    ApiPath((app, user_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (app, user_id) = ids(&app, &user_id)?;
    state.manager().delete(&app, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Open a session for a user; the response carries the token, once.
#[utoipa::path(
    post, path = "/apps/{app}/users/{user_id}/sessions", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ("user_id" = String, Path, description = "User id (UUID)", format = Uuid)),
    request_body = CreateSessionBody,
    responses(
        (status = 201, description = "Created; the token is shown only here", body = IssuedSession),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such user in this app", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create_session(
    State(state): State<AppState>,
    ApiPath((app, user_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<CreateSessionBody>,
) -> ApiResult<(StatusCode, Json<IssuedSession>)> {
    let (app, user_id) = ids(&app, &user_id)?;
    let metadata = SessionMetadata::parse(&body.ip, &body.user_agent)?;
    let ttl = Ttl::from_secs(body.ttl_seconds)?;
    let data = body
        .data
        .map(SessionData::parse)
        .transpose()?
        .unwrap_or_default();
    let (token, session) = state
        .manager()
        .create_session_with_data(&app, user_id, metadata, ttl, data)
        .await?;
    let issued = IssuedSession {
        token: token.expose_secret().to_owned(),
        session: session.into(),
    };
    Ok((StatusCode::CREATED, Json(issued)))
}

/// A user's live sessions.
#[utoipa::path(
    get, path = "/apps/{app}/users/{user_id}/sessions", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ("user_id" = String, Path, description = "User id (UUID)", format = Uuid)),
    responses(
        (status = 200, description = "Live sessions, oldest first", body = SessionList),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such user in this app", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    ApiPath((app, user_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<SessionList>> {
    let (app, user_id) = ids(&app, &user_id)?;
    let sessions = state.manager().list_sessions(&app, user_id).await?;
    Ok(Json(SessionList {
        items: sessions.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke every session of a user.
#[utoipa::path(
    delete, path = "/apps/{app}/users/{user_id}/sessions", tag = "sessions",
    params(("app" = String, Path, description = "App slug", pattern = "^[a-z][a-z0-9-]{0,31}$"), ("user_id" = String, Path, description = "User id (UUID)", format = Uuid)),
    responses(
        (status = 200, description = "How many were revoked", body = Revoked),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such user in this app", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn revoke_all(
    State(state): State<AppState>,
    ApiPath((app, user_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Revoked>> {
    let (app, user_id) = ids(&app, &user_id)?;
    let revoked = state.manager().revoke_all(&app, user_id).await?;
    Ok(Json(Revoked { revoked }))
}
