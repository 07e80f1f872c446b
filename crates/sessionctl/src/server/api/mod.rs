//! The `/v1` JSON API. Routes and the OpenAPI document come from the same `routes!` lists, so the
//! spec at `/openapi.json` matches the routes exactly.

use axum::Router;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

pub mod dto;
mod sessions;
mod users;

/// The document's fixed parts; paths are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "session-management",
        description = "Users and login sessions per app. Every /v1 route takes `Authorization: Bearer <SESSION_API_KEY>`; session tokens travel in bodies only.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "users", description = "Users of an app"),
        (name = "sessions", description = "Login sessions"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The `/v1` routes and their OpenAPI document.
pub fn router() -> (Router<AppState>, OpenApiDoc) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(
            users::create_session,
            users::list_sessions,
            users::revoke_all
        ))
        .routes(routes!(sessions::validate))
        .routes(routes!(sessions::touch))
        .routes(routes!(sessions::rotate))
        .routes(routes!(sessions::revoke))
        .routes(routes!(sessions::update_data))
        .routes(routes!(sessions::revoke_by_id));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v1", v1)
        .split_for_parts()
}
