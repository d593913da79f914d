//! The HTTP API: ingest endpoints (native JSON and OTLP/HTTP), `/health`,
//! `/v1/status`, `/metrics`, the owner's query API ([`api`]) and the
//! dashboard page.
//!
//! Handlers only read, decode and answer; admission and storage are the
//! actors' work. [`routes`] is used by the daemon and by tests alike.

mod api;
pub mod conn_watch;
mod dashboard;
mod error;
mod otlp_response;
mod prom;
mod status;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use openclaw_trace_actors::fault::FaultKind;
use openclaw_trace_actors::ingest::{Accepted, IngestBatch};
use openclaw_trace_actors::records::{Batch, Source};
use openclaw_trace_actors::stats::{ActorName, RejectReason, Signal};
use openclaw_trace_actors::Engine;
use serde_json::json;
use slog::{debug, Logger};
use strum::VariantArray;
use subtle::ConstantTimeEq;

pub use error::ApiError;

use crate::config::Config;
use crate::wire::gzip::{self, GzipError};
use crate::wire::limits::Limits;
use crate::wire::native::{self, Kind};
use crate::wire::{is_otlp_json, otlp};

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
    /// Request bytes held across all connections, against
    /// `TRACE_MAX_INFLIGHT_BODY_BYTES`.
    pub body_budget: Arc<BodyBudget>,
    /// The ports served and what each serves, for `/v1/status` and for
    /// keeping the extra ports to their routes.
    pub listeners: Arc<crate::listeners::ListenerReport>,
}

/// The request bytes every connection together may hold at once: bodies as
/// they are read, and again once decompressed. Without it, each connection is
/// bounded by `TRACE_MAX_BODY_BYTES` but their number is not, and a few
/// parallel large requests took hundreds of MB.
#[derive(Debug)]
pub struct BodyBudget {
    /// Bytes charged by requests not yet answered.
    in_flight: AtomicUsize,
    /// `TRACE_MAX_INFLIGHT_BODY_BYTES`.
    limit: usize,
}

impl BodyBudget {
    /// A budget of `limit` bytes, none charged.
    pub fn new(limit: usize) -> Self {
        BodyBudget {
            in_flight: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes charged now by requests not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// `TRACE_MAX_INFLIGHT_BODY_BYTES`.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// An empty charge for one request.
    fn share(self: &Arc<Self>) -> BodyShare {
        BodyShare {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }
}

/// One request's charge on the [`BodyBudget`], given back when dropped: when
/// the request has been answered, or its future dropped because the client
/// went away. Like `PendingShare` in the ingest actor, it cannot leak.
#[derive(Debug)]
struct BodyShare {
    /// The shared budget.
    budget: Arc<BodyBudget>,
    /// Bytes this request has charged.
    bytes: usize,
}

impl BodyShare {
    /// Charges `n` more bytes. Refuses (503, retry) when the budget is then
    /// over its limit and other requests hold part of it; a request alone is
    /// always admitted, so any body within `TRACE_MAX_BODY_BYTES` goes through
    /// once the others are done. A refused charge stays held until the drop,
    /// which comes with the answer.
    fn charge(&mut self, n: usize) -> Result<(), ApiError> {
        let total = self.budget.in_flight.fetch_add(n, Ordering::AcqRel) + n;
        self.bytes += n;
        let limit = self.budget.limit;
        if total > limit && total > self.bytes {
            return Err(ApiError::new(
                RejectReason::Backpressure,
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "body: requests being read hold TRACE_MAX_INFLIGHT_BODY_BYTES ({limit} bytes); retry"
                ),
            )
            .retry_after(1));
        }
        Ok(())
    }
}

impl Drop for BodyShare {
    fn drop(&mut self) {
        self.budget
            .in_flight
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Registers every route on `cfg`. The app must hold, as app data, the
/// [`AppState`] and this worker's IngestActor as a
/// `Recipient<IngestBatch>` (`IngestStarter::start_here`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let ingest_at = |path: &str, route: Route| {
        web::resource(path)
            .app_data(web::Data::new(route))
            .route(web::post().to(ingest))
    };
    cfg.service(ingest_at(
        "/v1/traces",
        Route::Both(Kind::LlmCall, Signal::Spans, "resourceSpans"),
    ))
    .service(ingest_at("/v1/errors", Route::Native(Kind::Error)).route(web::get().to(api::errors)))
    .service(ingest_at("/v1/events", Route::Native(Kind::Event)).route(web::get().to(api::events)))
    .service(ingest_at(
        "/v1/metrics",
        Route::Both(Kind::Metric, Signal::DataPoints, "resourceMetrics"),
    ))
    .service(ingest_at("/v1/logs", Route::Otlp(Signal::LogRecords)))
    .route("/health", web::get().to(status::health))
    .route("/v1/status", web::get().to(status::status))
    .route("/metrics", web::get().to(prom::metrics))
    .route("/v1/llm/summary", web::get().to(api::llm_summary))
    .route("/v1/llm/calls", web::get().to(api::llm_calls))
    .route("/v1/traces/{trace_id}", web::get().to(api::trace))
    .route("/v1/host", web::get().to(api::host))
    .route("/", web::get().to(dashboard::index))
    .route("/assets/{name}", web::get().to(dashboard::asset))
    .route("/_test/fault/{actor}/{kind}", web::post().to(inject_fault));
}

/// What an ingest path accepts.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// Native JSON records only.
    Native(Kind),
    /// OTLP only.
    Otlp(Signal),
    /// Both: protobuf is OTLP; JSON is OTLP when its top level has `key` (or
    /// is `{}`), else native records.
    Both(Kind, Signal, &'static str),
}

/// Runs one ingest request; every refusal is counted here, once.
async fn ingest(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    ingest: web::Data<Recipient<IngestBatch>>,
    route: web::Data<Route>,
) -> HttpResponse {
    let route = **route;
    match try_ingest(&req, body, &state, &ingest, route).await {
        Ok(response) => response,
        Err(e) => {
            state.engine.stats.rejected(e.reason);
            debug!(state.log, "ingest refused"; "path" => req.path().to_string(),
                "status" => e.status.as_u16(), "error" => e.reason.code(), "message" => &e.message);
            actix_web::ResponseError::error_response(&e)
        }
    }
}

/// The body formats a request can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyType {
    Json,
    Protobuf,
}

/// Reads `Content-Type`. A missing one is taken as JSON, as the Go sidecar's
/// clients do not always send one.
fn body_type(req: &HttpRequest) -> Result<BodyType, ApiError> {
    let content_type = req.content_type();
    if content_type.is_empty() || content_type.eq_ignore_ascii_case("application/json") {
        Ok(BodyType::Json)
    } else if content_type.eq_ignore_ascii_case("application/x-protobuf")
        || content_type.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(BodyType::Protobuf)
    } else {
        Err(unsupported(format!(
            "Content-Type: expected application/json or application/x-protobuf, got {content_type}"
        )))
    }
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(
        RejectReason::UnsupportedMediaType,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message,
    )
}

async fn try_ingest(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    ingest: &Recipient<IngestBatch>,
    route: Route,
) -> Result<HttpResponse, ApiError> {
    let declared = body_type(req);
    // Errors on OTLP-only paths, and on protobuf bodies, are OTLP Status bodies.
    let otlp_errors = match (route, &declared) {
        (Route::Otlp(_), Ok(BodyType::Json)) => Some(otlp::Encoding::Json),
        (Route::Otlp(_) | Route::Both(..), Ok(BodyType::Protobuf)) => {
            Some(otlp::Encoding::Protobuf)
        }
        _ => None,
    };
    let as_otlp = |e: ApiError| e.otlp(otlp_errors);
    authorize(req, state.config.ingest_token.as_deref()).map_err(as_otlp)?;
    let declared = declared.map_err(as_otlp)?;
    if matches!(route, Route::Native(_)) && declared == BodyType::Protobuf {
        return Err(unsupported(
            "Content-Type: this endpoint takes application/json".into(),
        ));
    }
    let limit = state.config.max_body_bytes;
    // Held until this function returns, that is until the request is
    // answered: the decoded records keep the body's weight until committed.
    let mut share = state.body_budget.share();
    let wait = state.config.request_timeout;
    let body = actix_rt::time::timeout(wait, read_body(req, payload, limit, &mut share))
        .await
        .unwrap_or_else(|_| Err(timed_out(wait)))
        .map_err(as_otlp)?;
    let inflates = content_encoding(req).is_some_and(|e| is_gzip(&e));
    let body = decompress(req, body, limit).map_err(as_otlp)?;
    if inflates {
        // Charged once inflated: decompressing runs without an await, so at
        // most one output per worker exists uncharged, and only until here.
        share.charge(body.len()).map_err(as_otlp)?;
    }
    let encoding = match declared {
        BodyType::Json => otlp::Encoding::Json,
        BodyType::Protobuf => otlp::Encoding::Protobuf,
    };
    match route {
        Route::Native(kind) => native_ingest(state, ingest, kind, body).await,
        Route::Otlp(signal) => otlp_ingest(state, ingest, signal, encoding, body).await,
        Route::Both(kind, signal, key) => {
            if declared == BodyType::Protobuf || is_otlp_json(&body, key) {
                otlp_ingest(state, ingest, signal, encoding, body).await
            } else {
                native_ingest(state, ingest, kind, body).await
            }
        }
    }
}

/// Native records: 202 with the new row ids once committed. The body is
/// freed once decoded, before the wait for the commit.
async fn native_ingest(
    state: &AppState,
    ingest: &Recipient<IngestBatch>,
    kind: Kind,
    body: Vec<u8>,
) -> Result<HttpResponse, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            RejectReason::EmptyBody,
            StatusCode::BAD_REQUEST,
            "body: empty; send a JSON object or an array of objects",
        ));
    }
    let limits = Limits::new(state.config.max_records_per_request);
    let batch = native::decode(kind, &body, &limits)?;
    drop(body);
    if batch.is_empty() {
        return Ok(HttpResponse::Accepted().json(NativeAnswer {
            accepted: 0,
            ids: &[],
            trace_ids: None,
        }));
    }
    let accepted = store(ingest, batch, Source::Native).await?;
    Ok(HttpResponse::Accepted().json(NativeAnswer {
        accepted: accepted.ids.len(),
        ids: &accepted.ids,
        trace_ids: (kind == Kind::LlmCall).then_some(&accepted.trace_ids[..]),
    }))
}

/// The 202 answer to native records: how many were stored, their row ids
/// and, for LLM calls, their trace ids (given or assigned).
#[derive(serde::Serialize)]
struct NativeAnswer<'a> {
    accepted: usize,
    ids: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_ids: Option<&'a [String]>,
}

/// OTLP: 200 with the Export*ServiceResponse once committed, carrying a
/// partial success when some items were left out. The body is freed once
/// decoded, before the wait for the commit.
async fn otlp_ingest(
    state: &AppState,
    ingest: &Recipient<IngestBatch>,
    signal: Signal,
    encoding: otlp::Encoding,
    body: Vec<u8>,
) -> Result<HttpResponse, ApiError> {
    let stats = &state.engine.stats;
    let limits = Limits::new(state.config.max_records_per_request);
    let decoded = otlp::decode_signal(signal, encoding, &body, &limits)
        .map_err(|e| ApiError::from(e).otlp(Some(encoding)))?;
    drop(body);
    stats.otlp_received(signal, decoded.received as u64);
    for reason in &decoded.rejected {
        stats.otlp_rejected(signal, *reason);
    }
    let stored = decoded.batch.len();
    if stored > 0 {
        store(ingest, decoded.batch, Source::Otlp)
            .await
            .map_err(|e| e.otlp(Some(encoding)))?;
        stats.otlp_stored(signal, stored as u64);
    }
    Ok(otlp_response::success(
        signal,
        encoding,
        decoded.rejected.len() as i64,
        decoded.first_error.unwrap_or_default(),
    ))
}

/// Hands a batch to this worker's IngestActor and waits for its commit.
async fn store(
    ingest: &Recipient<IngestBatch>,
    batch: Batch,
    source: Source,
) -> Result<Accepted, ApiError> {
    let committed = async {
        match ingest.send(IngestBatch { batch, source }).await {
            Ok(committing) => committing.await.map_err(ApiError::from),
            Err(e) => Err(not_answered(format!("the store did not answer: {e}"))),
        }
    };
    actix_web::rt::time::timeout(COMMIT_WAIT, committed)
        .await
        .unwrap_or_else(|_| {
            Err(not_answered(format!(
                "the store did not answer within {COMMIT_WAIT:?}"
            )))
        })
}

/// The store (or this worker's IngestActor) did not answer: try again soon.
fn not_answered(message: String) -> ApiError {
    ApiError::new(
        RejectReason::Internal,
        StatusCode::SERVICE_UNAVAILABLE,
        message,
    )
    .retry_after(1)
}

/// Undoes `Content-Encoding: gzip` (every member), refusing output past
/// `limit` bytes without allocating it (a gzip bomb stops at the limit) and
/// bytes after the gzip stream.
fn decompress(req: &HttpRequest, body: web::BytesMut, limit: usize) -> Result<Vec<u8>, ApiError> {
    match content_encoding(req).as_deref() {
        None | Some("") | Some("identity") => Ok(body.into()),
        Some(encoding) if is_gzip(encoding) => gzip::gunzip(&body, limit).map_err(|e| match e {
            GzipError::TooLarge { limit } => ApiError::new(
                RejectReason::PayloadTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body: larger than TRACE_MAX_BODY_BYTES ({limit} bytes) once decompressed"),
            ),
            e => ApiError::new(
                RejectReason::MalformedBody,
                StatusCode::BAD_REQUEST,
                e.to_string(),
            ),
        }),
        Some(other) => Err(unsupported(format!(
            "Content-Encoding: {other} is not supported; send gzip or no encoding"
        ))),
    }
}

/// `Content-Encoding`, trimmed and lower-cased.
fn content_encoding(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
}

/// Whether a `Content-Encoding` (as [`content_encoding`] gives it) is gzip.
fn is_gzip(encoding: &str) -> bool {
    matches!(encoding, "gzip" | "x-gzip")
}

/// The refusal of a body that did not arrive within `TRACE_REQUEST_TIMEOUT`;
/// its connection is closed (see [`ApiError`]'s response).
fn timed_out(wait: Duration) -> ApiError {
    ApiError::new(
        RejectReason::Timeout,
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "body: not received within TRACE_REQUEST_TIMEOUT ({})",
            humantime::format_duration(wait)
        ),
    )
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
        .and_then(bearer_token);
    match given {
        // Compared in constant time, so the answer's timing tells nothing of the
        // token (the length may show: tokens are not secret in length).
        Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
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

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive (RFC 9110, section 11.1), so `bearer` and `BEARER` work.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes
/// (with or without Content-Length: chunked bodies are counted as they come).
/// Each chunk is charged to `share` as it arrives, not the declared length up
/// front: a client cannot hold the budget by announcing bytes it never sends.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    share: &mut BodyShare,
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
        share.charge(chunk.len())?;
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `POST /_test/fault/{actor}/{kind}[?ms=N]`: arms a fault in an actor
/// (`panic`, `stall?ms=N`, `hold`), or ends every hold (`release`, any
/// actor). Only test builds have fault injection; any other build answers
/// 404.
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
    if kind == "release" {
        openclaw_trace_actors::fault::release();
        return HttpResponse::Ok().json(json!({"released": true}));
    }
    let Some(actor) = ActorName::VARIANTS
        .iter()
        .copied()
        .find(|a| a.as_str() == actor.as_str())
    else {
        return not_found();
    };
    let kind = match kind.as_str() {
        "panic" => FaultKind::Panic,
        "hold" => openclaw_trace_actors::fault::hold(),
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
