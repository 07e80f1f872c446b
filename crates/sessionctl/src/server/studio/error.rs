//! Studio errors as HTML pages with the right status: 400 names the field, 403 for a failed
//! CSRF or origin check, 404 for an unknown user or session, 503 when a store is down. Server-side
//! detail goes to the logs, never to the page.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use session_management::Error;

use super::templates::{ErrorPage, render};

/// An error page.
#[derive(Debug)]
pub struct StudioError {
    status: StatusCode,
    message: String,
}

impl StudioError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: a value in the request is not valid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403: the request did not come from the studio's own forms.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

impl From<Error> for StudioError {
    fn from(err: Error) -> Self {
        match &err {
            Error::InvalidInput { field, reason } => {
                Self::bad_request(format!("invalid {field}: {reason}"))
            }
            Error::NotFound { what } => Self::new(
                StatusCode::NOT_FOUND,
                format!("{what} not found (it may have been deleted, revoked or expired)"),
            ),
            Error::Conflict(kind) => Self::new(StatusCode::CONFLICT, kind.to_string()),
            Error::Unavailable { store, .. } => {
                tracing::warn!(error = %chain(&err), "studio: store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{store} is unavailable, try again shortly"),
                )
            }
            _ => {
                tracing::error!(error = %chain(&err), "studio: internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<PathRejection> for StudioError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for StudioError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(format!("invalid query: {}", rejection.body_text()))
    }
}

impl From<FormRejection> for StudioError {
    fn from(rejection: FormRejection) -> Self {
        Self::bad_request(format!("invalid form: {}", rejection.body_text()))
    }
}

impl IntoResponse for StudioError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: self.message,
        };
        render(self.status, &page)
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        out.push_str(": ");
        out.push_str(&next.to_string());
        source = next.source();
    }
    out
}
