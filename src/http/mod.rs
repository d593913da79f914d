//! The HTTP API: ingest endpoints, `/health`, `/v1/status`.
//!
//! Handlers only read, decode and answer; admission and storage are the
//! actors' work. [`routes`] is used by the daemon and by tests alike.

mod error;
mod status;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use openclaw_trace_actors::fault::FaultKind;
use openclaw_trace_actors::ingest::IngestBatch;
use openclaw_trace_actors::records::Source;
use openclaw_trace_actors::stats::{ActorName, RejectReason};
use openclaw_trace_actors::Engine;
use serde_json::json;
use slog::{debug, Logger};

pub use error::ApiError;

use crate::config::Config;
use crate::wire::native::{self, Kind};

/// How long an ingest request waits for its commit before it is answered 503.
/// The store answers far sooner unless the disk has stalled.
const COMMIT_WAIT: Duration = Duration::from_secs(30);

/// What every handler shares.
pub struct AppState {
    /// The running actors, pool and counters.
    pub engine: Arc<Engine>,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Where handlers log.
    pub log: Logger,
}

/// Registers every route on `cfg`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/traces", web::post().to(ingest_traces))
        .route("/v1/errors", web::post().to(ingest_errors))
        .route("/v1/events", web::post().to(ingest_events))
        .route("/v1/metrics", web::post().to(ingest_metrics))
        .route("/health", web::get().to(status::health))
        .route("/v1/status", web::get().to(status::status))
        .route("/_test/fault/{actor}/{kind}", web::post().to(inject_fault));
}

async fn ingest_traces(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    ingest(req, body, state, Kind::LlmCall).await
}

async fn ingest_errors(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    ingest(req, body, state, Kind::Error).await
}

async fn ingest_events(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    ingest(req, body, state, Kind::Event).await
}

async fn ingest_metrics(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    ingest(req, body, state, Kind::Metric).await
}

/// Runs one ingest request; every refusal is counted here, once.
async fn ingest(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    kind: Kind,
) -> HttpResponse {
    match try_ingest(&req, body, &state, kind).await {
        Ok(response) => response,
        Err(e) => {
            state.engine.stats.rejected(e.reason);
            debug!(state.log, "ingest refused"; "path" => req.path().to_string(),
                "status" => e.status.as_u16(), "error" => e.reason.code(), "message" => &e.message);
            actix_web::ResponseError::error_response(&e)
        }
    }
}

async fn try_ingest(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    kind: Kind,
) -> Result<HttpResponse, ApiError> {
    authorize(req, state.config.ingest_token.as_deref())?;
    require_json(req)?;
    let body = read_body(req, body, state.config.max_body_bytes).await?;
    let batch = native::decode(kind, &body)?;
    if batch.is_empty() {
        return Ok(HttpResponse::Accepted().json(json!({ "accepted": 0, "ids": [] })));
    }
    let accepted = state
        .engine
        .ingest
        .send(IngestBatch {
            batch,
            source: Source::Native,
        })
        .timeout(COMMIT_WAIT)
        .await
        .map_err(|e| {
            ApiError::new(
                RejectReason::Internal,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store did not answer: {e}"),
            )
            .retry_after(1)
        })?
        .map_err(ApiError::from)?;
    let mut answer = json!({ "accepted": accepted.ids.len(), "ids": accepted.ids });
    if kind == Kind::LlmCall {
        answer["trace_ids"] = json!(accepted.trace_ids);
    }
    Ok(HttpResponse::Accepted().json(answer))
}

/// Checks the bearer token when one is configured.
fn authorize(req: &HttpRequest, token: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = token else {
        return Ok(());
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            RejectReason::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "Authorization: the bearer token does not match TRACE_INGEST_TOKEN",
        )),
        None => Err(ApiError::new(
            RejectReason::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "Authorization: missing; send Authorization: Bearer <TRACE_INGEST_TOKEN>",
        )),
    }
}

/// Compares two secrets without an early exit that would leak their common prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Native endpoints read JSON; a missing Content-Type is taken as JSON, as
/// the Go sidecar's clients do not always send one.
fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req.content_type();
    if content_type.is_empty() || content_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            RejectReason::UnsupportedMediaType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type: expected application/json, got {content_type}"),
        ))
    }
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes
/// (with or without Content-Length: chunked bodies are counted as they come).
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || {
        ApiError::new(
            RejectReason::PayloadTooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: larger than TRACE_MAX_BODY_BYTES ({limit} bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                RejectReason::MalformedJson,
                StatusCode::BAD_REQUEST,
                format!("body: could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(ApiError::new(
            RejectReason::EmptyBody,
            StatusCode::BAD_REQUEST,
            "body: empty; send a JSON object or an array of objects",
        ));
    }
    Ok(body)
}

/// `POST /_test/fault/{actor}/{kind}[?ms=N]`: arms a fault in an actor. Only
/// test builds have fault injection; any other build answers 404.
async fn inject_fault(
    path: web::Path<(String, String)>,
    query: web::Query<std::collections::HashMap<String, String>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let not_found =
        || HttpResponse::NotFound().json(json!({"error": "not_found", "message": "no such route"}));
    if !openclaw_trace_actors::fault::ENABLED {
        return not_found();
    }
    let (actor, kind) = path.into_inner();
    let actor = match actor.as_str() {
        "ingest" => ActorName::Ingest,
        "store" => ActorName::Store,
        _ => return not_found(),
    };
    let kind = match kind.as_str() {
        "panic" => FaultKind::Panic,
        "stall" => {
            let ms = query.get("ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
            FaultKind::Stall(Duration::from_millis(ms))
        }
        _ => return not_found(),
    };
    match state.engine.inject_fault(actor, kind).await {
        Ok(()) => HttpResponse::Ok().json(json!({"armed": true})),
        Err(e) => {
            HttpResponse::NotFound().json(json!({"error": "not_found", "message": e.to_string()}))
        }
    }
}

/// Maps a store failure seen by a reader to a refusal.
pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        RejectReason::Internal,
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{what}: {e}"),
    )
}
