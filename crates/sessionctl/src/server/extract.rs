//! Extractors whose rejections are API errors (JSON, with the field named), not axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. Any content type is accepted; the body limit gives 413, a body that does not match
/// gives 400 naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::invalid(None, "the request body could not be read")
            }
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::invalid(None, format!("invalid JSON body: {err}")))?;
        // Serde would read an array as the fields in order: the contract is an object.
        if !value.is_object() {
            return Err(ApiError::invalid(
                None,
                "the request body must be a JSON object",
            ));
        }
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.inner().to_string();
                let field = if path != "." && path != "?" {
                    Some(path)
                } else {
                    // serde reports a missing field at the root; name it anyway.
                    message
                        .strip_prefix("missing field `")
                        .and_then(|rest| rest.split('`').next())
                        .map(str::to_owned)
                };
                ApiError::invalid(field, format!("invalid JSON body: {message}"))
            })
    }
}

/// Query parameters; a malformed one gives 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::invalid(None, rejection.body_text()))
    }
}

/// Path parameters; a malformed one gives 400.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::invalid(None, rejection.body_text()))
    }
}
