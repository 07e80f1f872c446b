//! The HTTP server: the `/v1` API, OpenAPI and Swagger UI, health, readiness and metrics, and the
//! studio. [`app`] builds the router (tested with `oneshot`, no socket); [`serve`] runs it until a
//! shutdown signal, finishing in-flight requests.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware;
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_swagger_ui::SwaggerUi;

pub mod api;
mod auth;
pub mod error;
mod extract;
pub mod ops;
mod state;
pub mod studio;

pub use state::{ApiKey, AppState};

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api::router();
    let api = api.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_api_key,
    ));
    Router::new()
        .merge(api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(studio::router())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { error::ApiError::no_route() })
        .layer(middleware::from_fn(ops::track))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The path only: tokens never travel in URLs, and queries are not logged.
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
            })
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called (not when the
/// future is first polled), so a signal arriving right after start-up is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).ok();
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(terminate.take()) => {},
                _ = wait(interrupt.take()) => {},
            }
            tracing::info!("shutdown signal received: finishing in-flight requests");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received: finishing in-flight requests");
    }
}
