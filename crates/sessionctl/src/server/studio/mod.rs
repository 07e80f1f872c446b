//! The studio: a server-rendered browser UI over the same manager (placeholder until it lands).

use axum::Router;

use super::state::AppState;

/// The studio's routes, under `/studio`.
pub fn router() -> Router<AppState> {
    Router::new()
}
