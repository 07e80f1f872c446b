//! `Authorization: Bearer <SESSION_API_KEY>` on every `/v1` route, compared in constant time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::state::AppState;

/// Lets the request through when it carries the API key (or when none is configured: the server
/// then listens on loopback only).
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(key) = state.api_key() {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if !key.matches(presented.trim()) {
            return Err(ApiError::unauthorized());
        }
    }
    Ok(next.run(request).await)
}
