//! One JSON error envelope for every failure: `{"error": {"code", "message", "details"}}`. Internal errors
//! are logged and answered with a generic message; store and validation errors map to their status here.

use crate::ingest::IngestError;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }
    /// A bad query parameter: 400 naming it.
    pub fn bad_param(name: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("parameter `{name}`: {message}"),
        )
        .with_details(json!({"parameter": name}))
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, context, "Request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed; see the server log"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "Store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; retry later",
                )
            }
            other => ApiError::internal("Reading the store", other),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        match e {
            IngestError::NotDurable(m) => {
                tracing::error!(error = %m, "Events neither stored nor spooled");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_durable",
                    "the events could not be stored or spooled; nothing was accepted, retry later",
                )
            }
            IngestError::Store(s) => ApiError::from(s),
        }
    }
}
