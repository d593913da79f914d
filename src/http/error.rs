//! The one error type at the HTTP boundary. Every refusal is a JSON body
//! `{"error": code, "message": text}` with a stable code (the reject reasons
//! counted in `/v1/status`) and a message that names the field at fault.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use openclaw_trace_actors::ingest::IngestError;
use openclaw_trace_actors::stats::RejectReason;
use openclaw_trace_actors::store::StoreError;
use prost::Message as _;
use serde_json::json;

use crate::wire::otlp::Encoding;
use crate::wire::DecodeError;

/// Seconds a client is asked to wait while the disk is full: about what an
/// emergency rotation takes to free space.
const DISK_FULL_RETRY_SECONDS: u64 = 2;

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
    /// Set for OTLP requests: the body is a `google.rpc.Status` in this
    /// encoding instead of `{"error", "message"}`.
    pub otlp: Option<Encoding>,
}

impl ApiError {
    /// A refusal with `reason`, `status` and `message`.
    pub fn new(reason: RejectReason, status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            status,
            message: message.into(),
            retry_after: None,
            otlp: None,
        }
    }

    /// The same refusal, answered the OTLP way when `encoding` is set. OTLP
    /// exporters retry only 429, 502, 503 and 504, so a full disk (507 on
    /// the native API) becomes 503 for them.
    pub fn otlp(mut self, encoding: Option<Encoding>) -> Self {
        self.otlp = encoding;
        if encoding.is_some() && self.status == StatusCode::INSUFFICIENT_STORAGE {
            self.status = StatusCode::SERVICE_UNAVAILABLE;
        }
        self
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
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a late body may still come; the connection cannot
            // carry another request, so it says so and closes.
            response.force_close();
        }
        match self.otlp {
            None => response.json(json!({ "error": self.reason.code(), "message": self.message })),
            Some(encoding) => {
                let status = RpcStatus {
                    code: grpc_code(self.status),
                    message: format!("{}: {}", self.reason.code(), self.message),
                };
                match encoding {
                    Encoding::Protobuf => response
                        .content_type("application/x-protobuf")
                        .body(status.encode_to_vec()),
                    Encoding::Json => {
                        response.json(json!({ "code": status.code, "message": status.message }))
                    }
                }
            }
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP failure. Only its first two
/// fields are sent; `details` (3) stays empty.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    /// A gRPC status code.
    #[prost(int32, tag = "1")]
    code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    message: String,
}

/// The gRPC code that goes with an HTTP status.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        408 => 4,             // DEADLINE_EXCEEDED
        429 | 503 => 14,      // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::MalformedProtobuf(m) => {
                ApiError::new(RejectReason::MalformedBody, StatusCode::BAD_REQUEST, m)
            }
            DecodeError::Malformed(m) => {
                ApiError::new(RejectReason::MalformedJson, StatusCode::BAD_REQUEST, m)
            }
            DecodeError::InvalidField(m) => {
                ApiError::new(RejectReason::InvalidField, StatusCode::BAD_REQUEST, m)
            }
            DecodeError::TooLarge(m) => ApiError::new(
                RejectReason::PayloadTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                m,
            ),
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
            IngestError::Store(StoreError::DiskFull(_)) => ApiError::new(
                RejectReason::DiskFull,
                StatusCode::INSUFFICIENT_STORAGE,
                message,
            )
            .retry_after(DISK_FULL_RETRY_SECONDS),
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
