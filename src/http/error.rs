//! The one error type at the HTTP boundary. Every refusal is a JSON body
//! `{"error": code, "message": text}` with a stable code (the reject reasons
//! counted in `/v1/status`) and a message that names the field at fault.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use openclaw_trace_actors::ingest::IngestError;
use openclaw_trace_actors::stats::RejectReason;
use openclaw_trace_actors::store::StoreError;
use serde_json::json;

use crate::wire::DecodeError;

/// A refused request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Why, as counted and as sent in `error`.
    pub reason: RejectReason,
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds the client should wait before retrying, when retrying helps.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A refusal with `reason`, `status` and `message`.
    pub fn new(reason: RejectReason, status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same refusal, asking the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({ "error": self.reason.code(), "message": self.message }))
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Malformed(m) => {
                ApiError::new(RejectReason::MalformedJson, StatusCode::BAD_REQUEST, m)
            }
            DecodeError::InvalidField(m) => {
                ApiError::new(RejectReason::InvalidField, StatusCode::BAD_REQUEST, m)
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let message = e.to_string();
        match e {
            IngestError::Backpressure { .. } => ApiError::new(
                RejectReason::Backpressure,
                StatusCode::SERVICE_UNAVAILABLE,
                message,
            )
            .retry_after(1),
            IngestError::Store(StoreError::Closed)
            | IngestError::Store(StoreError::Unavailable(_)) => ApiError::new(
                RejectReason::Internal,
                StatusCode::SERVICE_UNAVAILABLE,
                message,
            )
            .retry_after(1),
            IngestError::Store(_) | IngestError::Panicked(_) | IngestError::StoreGone => {
                ApiError::new(
                    RejectReason::Internal,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    message,
                )
            }
        }
    }
}
