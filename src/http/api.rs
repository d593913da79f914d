//! The owner's query API (docs/API.md): `/v1/llm/summary`, `/v1/llm/calls`,
//! `GET /v1/errors`, `GET /v1/events`, `/v1/traces/{id}`, `/v1/host`.
//!
//! Each handler checks the token, reads the query string into pairs, and
//! runs the query from `openclaw_trace_actors::report` on a read connection
//! in a blocking thread, so a slow query never holds an HTTP worker. Refusals
//! here are not ingest refusals and are not counted as such.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use openclaw_trace_actors::report::{lists, summary, ReportError};
use openclaw_trace_actors::time::now_ns;
use serde::Serialize;
use serde_json::json;

use super::AppState;

/// Answers a refusal as `{"error", "message"[, "parameter"]}`.
fn refuse(status: StatusCode, error: &str, message: &str, parameter: Option<&str>) -> HttpResponse {
    let mut body = json!({"error": error, "message": message});
    if let Some(p) = parameter {
        body["parameter"] = json!(p);
    }
    let mut response = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
    }
    response.json(body)
}

/// The query string as name, value pairs.
// The error is the refusal itself, answered at once: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, HttpResponse> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                &format!("the query string cannot be read: {e}"),
                Some("query"),
            )
        })
}

/// Checks the token, then runs `query` on a read connection off the
/// HTTP workers and answers its result as JSON.
async fn answer<T, F>(req: &HttpRequest, state: &AppState, query: F) -> HttpResponse
where
    T: Serialize + Send + 'static,
    F: FnOnce(&openclaw_trace_actors::rusqlite::Connection) -> Result<T, ReportError>
        + Send
        + 'static,
{
    if let Err(e) = super::authorize(req, state.config.ingest_token.as_deref()) {
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized", &e.message, None);
    }
    let pool = state.engine.pool.clone();
    let ran = web::block(move || -> Result<T, ReportError> {
        let conn = pool
            .get()
            .map_err(openclaw_trace_actors::query::QueryError::from)?;
        query(&conn)
    })
    .await;
    match ran {
        Ok(Ok(body)) => HttpResponse::Ok()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(body),
        Ok(Err(ReportError::Bad(b))) => refuse(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            &b.to_string(),
            Some(&b.parameter),
        ),
        Ok(Err(ReportError::NotFound(m))) => refuse(StatusCode::NOT_FOUND, "not_found", &m, None),
        Ok(Err(ReportError::Query(e))) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &format!("the database could not be read: {e}"),
            None,
        ),
        Err(e) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &format!("the query could not run: {e}"),
            None,
        ),
    }
}

/// `GET /v1/llm/summary`.
pub async fn llm_summary(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let pairs = match pairs(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    answer(&req, &state, move |conn| {
        let q = summary::SummaryQuery::parse(&pairs, now_ns())?;
        summary::summary(conn, &q)
    })
    .await
}

/// `GET /v1/llm/calls`.
pub async fn llm_calls(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let pairs = match pairs(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    answer(&req, &state, move |conn| {
        lists::calls(conn, &pairs, now_ns())
    })
    .await
}

/// `GET /v1/errors`.
pub async fn errors(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let pairs = match pairs(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    answer(&req, &state, move |conn| {
        lists::errors(conn, &pairs, now_ns())
    })
    .await
}

/// `GET /v1/events`.
pub async fn events(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let pairs = match pairs(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    answer(&req, &state, move |conn| {
        lists::events(conn, &pairs, now_ns())
    })
    .await
}

/// `GET /v1/traces/{trace_id}`.
pub async fn trace(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let id = path.into_inner();
    answer(&req, &state, move |conn| lists::trace(conn, &id)).await
}

/// `GET /v1/host`.
pub async fn host(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let pairs = match pairs(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mountpoint = state.engine.rotation_settings.db_dir.display().to_string();
    let min_step = i64::try_from(state.config.metrics_interval.as_nanos()).unwrap_or(i64::MAX);
    answer(&req, &state, move |conn| {
        lists::host(conn, &pairs, now_ns(), &mountpoint, min_step)
    })
    .await
}
