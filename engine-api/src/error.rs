//! The HTTP face of `errdefs::Error`: `{"message": ...}` with dockerd's status codes.
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
pub use errdefs::{Error, Kind};

/// Result of a daemon operation.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        ApiError(Error::from(s))
    }
}

impl ApiError {
    pub fn kind(&self) -> Kind {
        self.0.kind
    }
    pub fn message(&self) -> &str {
        &self.0.message
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        ApiError(Error::not_found(m))
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        ApiError(Error::invalid(m))
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        ApiError(Error::conflict(m))
    }
    pub fn internal(m: impl Into<String>) -> Self {
        ApiError(Error::internal(m))
    }
    pub fn unimplemented(m: impl Into<String>) -> Self {
        ApiError(Error::unimplemented(m))
    }
    pub fn no_such_container(name: &str) -> Self {
        Self::not_found(format!("No such container: {name}"))
    }
    pub fn no_such_image(name: &str) -> Self {
        Self::not_found(format!("No such image: {name}"))
    }
    /// Wraps an internal failure, logging the whole chain and answering a short message.
    pub fn io(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, what, "internal error");
        Self::internal(format!("{what}: {e}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), message = %self.0.message, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), message = %self.0.message, "request failed");
        }
        let body = serde_json::json!({ "message": self.0.message }).to_string();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
