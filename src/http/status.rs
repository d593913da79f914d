//! `GET /health` (is the store answering?) and `GET /v1/status` (what the
//! daemon holds and has done).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use openclaw_trace_actors::query::{self, TableCounts};
use openclaw_trace_actors::schema::SCHEMA_VERSION;
use openclaw_trace_actors::store::Ping;
use serde_json::{json, Map, Value};

use super::{ApiError, AppState};

/// How long `/health` waits for the store.
const HEALTH_WAIT: Duration = Duration::from_secs(1);

/// Asks the store to answer within [`HEALTH_WAIT`]; `Ok` or why not.
async fn ping_store(state: &AppState) -> Result<(), String> {
    match state.engine.store.send(Ping).timeout(HEALTH_WAIT).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(actix::MailboxError::Timeout) => {
            Err(format!("the store did not answer within {HEALTH_WAIT:?}"))
        }
        Err(actix::MailboxError::Closed) => Err("the store is not running".into()),
    }
}

/// `GET /health`: 200 when the store answers within a second, else 503.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let body = |status: &str, db_status: &str| {
        json!({
            "status": status,
            "db_status": db_status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": state.engine.stats.uptime_seconds(),
        })
    };
    // A full disk answers pings but refuses every write: not healthy.
    if state.engine.stats.disk_full() {
        return HttpResponse::ServiceUnavailable().json(body("unavailable", "disk_full"));
    }
    match ping_store(&state).await {
        Ok(()) => HttpResponse::Ok().json(body("ok", "ok")),
        Err(why) => HttpResponse::ServiceUnavailable().json(body("unavailable", &why)),
    }
}

/// `GET /v1/status`: version, agent, database, tables, counters, config.
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let db_status = match ping_store(&state).await {
        Ok(()) if state.engine.stats.disk_full() => "disk_full".to_string(),
        Ok(()) => "ok".to_string(),
        Err(why) => why,
    };
    // Kept by the store as it writes: no scan, whatever the file's size.
    let tables: Vec<TableCounts> = state.engine.stats.rows.tables();
    // A stat can block (a slow or stuck volume): not on an HTTP worker.
    let path = state.engine.db_path.clone();
    let files = web::block(move || query::file_sizes(&path))
        .await
        .unwrap_or_default();
    let stats = state.engine.stats.snapshot();
    let config = &state.config;

    let unsynced: u64 = tables.iter().map(|t| t.unpushed).sum();
    let as_object = |pairs: &[(&str, u64)]| -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<Map<_, _>>(),
        )
    };
    let tables_json: Map<String, Value> = tables
        .iter()
        .map(|t| {
            (
                t.table.to_string(),
                json!({"rows": t.rows, "unpushed": t.unpushed}),
            )
        })
        .collect();
    let otlp: Map<String, Value> = stats
        .otlp
        .iter()
        .map(|o| {
            let counts = json!({"received": o.received, "stored": o.stored, "rejected": as_object(&o.rejected)});
            (o.signal.to_string(), counts)
        })
        .collect();
    let actors: Map<String, Value> = stats
        .restarts
        .iter()
        .zip(&stats.panics)
        .map(|((name, restarts), (_, panics))| {
            (
                name.to_string(),
                json!({"restarts": restarts, "panics": panics}),
            )
        })
        .collect();

    let total_rows: u64 = tables.iter().map(|t| t.rows).sum();
    let pending_bytes = (files.db_bytes + files.wal_bytes) * unsynced / total_rows.max(1);
    let dead_lettered = state.engine.stats.rows.dead_letters();
    let (push, last_push_time, last_push_status) = match (&state.engine.push, &config.push) {
        (Some((_, view)), Some(settings)) => {
            let p = view.get();
            let iso = |ns: Option<i64>| {
                ns.map(|ns| {
                    let t =
                        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
                    humantime::format_rfc3339_millis(t).to_string()
                })
            };
            let last_status = match (&p.last_error, p.consecutive_failures) {
                (_, 0) if p.last_success_ns.is_some() => "ok",
                (Some(_), _) => "error",
                _ => "pending",
            };
            let push = json!({
                "enabled": true,
                "endpoint": openclaw_trace_actors::push::mask_endpoint(&settings.endpoint),
                "format": match settings.format {
                    openclaw_trace_actors::push::policy::PushFormat::Native => "native",
                    openclaw_trace_actors::push::policy::PushFormat::Otlp => "otlp",
                },
                "interval_seconds": settings.interval.as_secs_f64(),
                "in_progress": p.in_progress,
                "last_attempt": iso(p.last_attempt_ns),
                "last_success": iso(p.last_success_ns),
                "last_error": p.last_error,
                "consecutive_failures": p.consecutive_failures,
                "pending_rows": unsynced,
                // The database's bytes per row times the rows not yet pushed.
                "pending_bytes_estimate": pending_bytes,
                "batches_pushed": p.batches_pushed,
                "rows_pushed": p.rows_pushed,
                "bytes_pushed": p.bytes_pushed,
                "retries": p.retries,
                "dead_lettered_rows": dead_lettered,
            });
            (push, json!(iso(p.last_success_ns)), last_status)
        }
        _ => (
            json!({"enabled": false, "reason": "TRACE_PUSH_ENDPOINT is not set", "dead_lettered_rows": dead_lettered}),
            Value::Null,
            "disabled",
        ),
    };
    let host = state.engine.host.get();
    let mut warnings = host.as_ref().map(|h| h.warnings()).unwrap_or_default();
    let bounds = &state.engine.rotation_settings;
    if stats.disk_full {
        warnings.push(format!(
            "database writes fail for want of space on {}: ingest answers 507 (OTLP 503) until rotation or the operator frees space",
            config.db_path.display()
        ));
    }
    let db_total = files.db_bytes + files.wal_bytes;
    if db_total > bounds.max_db_bytes {
        warnings.push(format!(
            "database is {db_total} bytes, over its bound of {} (TRACE_DB_MAX_BYTES); rotation is shrinking it",
            bounds.max_db_bytes
        ));
    }
    if stats.rotation.dropped_total() > 0 {
        warnings.push(format!(
            "rotation deleted {} rows that were never pushed (see rotation.dropped)",
            stats.rotation.dropped_total()
        ));
    }
    let rotation = rotation_json(&stats.rotation, bounds, db_total);
    let host_summary = host.as_ref().map(|h| {
        json!({
            "time_ns": h.time_ns,
            "cpu_utilization": h.cpu.as_ref().map(|c| c.utilization),
            "load_average": h.load_average,
            "memory": h.memory,
            "cgroup": h.cgroup,
            "filesystems": h.filesystems,
            "processes": {"count": h.processes.count, "zombies": h.processes.zombies,
                "top_cpu": h.processes.top_cpu, "top_rss": h.processes.top_rss},
            "tcp_connections": h.tcp_connections,
            "agent": h.agent,
            "agent_restarts": h.agent_restarts,
            "sidecar": h.sidecar,
        })
    });

    Ok(HttpResponse::Ok().json(json!({
        "status": if db_status == "ok" { "ok" } else { "degraded" },
        "warnings": warnings,
        "host": host_summary,
        "version": env!("CARGO_PKG_VERSION"),
        "agent_id": config.agent_id,
        "uptime_seconds": stats.uptime_seconds,
        "database": {
            "path": config.db_path.display().to_string(),
            "on_data_volume": config.db_on_data_volume(),
            "schema_version": SCHEMA_VERSION,
            "size_bytes": files.db_bytes,
            "wal_size_bytes": files.wal_bytes,
            "max_bytes": bounds.max_db_bytes,
            "disk_full": stats.disk_full,
            "disk_full_episodes": stats.disk_full_episodes,
        },
        "rotation": rotation,
        "tables": tables_json,
        "ingest": {
            "accepted_requests": stats.accepted_requests,
            "accepted_records": as_object(&stats.accepted_records),
            "rejected": as_object(&stats.rejected),
        },
        "otlp": otlp,
        "store": {
            "commits": stats.store_commits,
            "pending_records": stats.store_pending,
            "host_samples_dropped": stats.host_samples_dropped,
        },
        "actors": actors,
        "http": {
            "inflight_body_bytes": state.body_budget.in_flight(),
            "max_inflight_body_bytes": state.body_budget.limit(),
            "connections_evicted": super::conn_watch::evicted_connections(),
        },
        "logging": {
            "dropped_lines": crate::logging::dropped_log_lines(),
            "dropped_lines_by_reason": as_object(&crate::logging::dropped_log_lines_by_reason()),
        },
        "push": push,
        "config": {
            "listen_addr": config.listen_addr.to_string(),
            "db_path": config.db_path.display().to_string(),
            "agent_id": config.agent_id,
            "log_level": config.log_level.as_str(),
            "max_text_bytes": config.max_text_bytes,
            "max_body_bytes": config.max_body_bytes,
            "max_pending_records": config.max_pending_records,
            "ingest_token": config.ingest_token.as_ref().map(|_| "***"),
            "metrics_interval_seconds": config.metrics_interval.as_secs_f64(),
            "agent_process": config.agent_process,
            "rotate_interval_seconds": config.rotation.interval.as_secs_f64(),
            "db_rotate_days": config.rotation.max_age.map(|d| d.as_secs_f64() / 86_400.0),
            "db_max_bytes": config.rotation.max_db_bytes,
            "disk_max_percent": config.rotation.disk_max_percent,
            "push_endpoint": config.push.as_ref().map(|p| openclaw_trace_actors::push::mask_endpoint(&p.endpoint)),
            "push_api_key": config.push.as_ref().and_then(|p| p.api_key.as_ref()).map(|_| "***"),
        },
        // The earlier Go sidecar's health fields, for scripts written for it.
        "db_status": db_status,
        "db_size_bytes": files.db_bytes,
        "wal_size_bytes": files.wal_bytes,
        "queue_depth": stats.store_pending,
        "events_received": stats.accepted_records_total(),
        "events_dropped": stats.rejected_total(),
        "last_push_time": last_push_time,
        "last_push_status": last_push_status,
        "unsynced_count": unsynced,
    })))
}

/// The `rotation` section of `/v1/status`: when it last ran, what it
/// deleted and dropped, per reason and table, and the size against its bound.
fn rotation_json(
    r: &openclaw_trace_actors::stats::RotationSnapshot,
    bounds: &openclaw_trace_actors::rotate::RotationSettings,
    db_total: u64,
) -> Value {
    let nested = |list: &[(&'static str, &'static str, u64)]| -> Value {
        let mut out = Map::new();
        for (reason, table, n) in list {
            let entry = out
                .entry(reason.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(table.to_string(), json!(n));
            }
        }
        Value::Object(out)
    };
    let last_end = r.last_end_ns.map(|ns| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
        humantime::format_rfc3339_millis(t).to_string()
    });
    json!({
        "runs": r.runs,
        "last_run": last_end,
        "last_duration_ms": r.last_duration_ms,
        "interval_seconds": bounds.interval.as_secs_f64(),
        "max_age_days": bounds.max_age.map(|d| d.as_secs_f64() / 86_400.0),
        "db_bytes": db_total,
        "max_db_bytes": bounds.max_db_bytes,
        "disk_max_percent": bounds.disk_max_percent,
        "deleted": nested(&r.deleted),
        "dropped": nested(&r.dropped),
        "dropped_total": r.dropped_total(),
    })
}
