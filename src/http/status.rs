//! `GET /health` (is the store answering?) and `GET /v1/status` (what the
//! daemon holds and has done).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use openclaw_trace_actors::follow::{FollowKind, FollowerView};
use openclaw_trace_actors::metrics::{HostSample, ProcessBrief};
use openclaw_trace_actors::push::policy::PushFormat;
use openclaw_trace_actors::push::{mask_endpoint, PushFailure};
use openclaw_trace_actors::query::{self, FileSizes, TableCounts};
use openclaw_trace_actors::rotate::RotationSettings;
use openclaw_trace_actors::schema::SCHEMA_VERSION;
use openclaw_trace_actors::stats::{RotationSnapshot, StatsSnapshot};
use openclaw_trace_actors::store::Ping;
use serde::Serialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::config::Config;
use crate::listeners::ListenerReport;

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

/// Counts by name (table, reason, actor), in name order.
type Counts = BTreeMap<&'static str, u64>;

fn counts(pairs: &[(&'static str, u64)]) -> Counts {
    pairs.iter().copied().collect()
}

/// Unix ns as RFC 3339 with milliseconds.
fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The answer of `GET /v1/status`.
#[derive(Serialize)]
struct StatusAnswer<'a> {
    /// `ok`, or `degraded` when the store is not answering as it should.
    status: &'static str,
    /// What the operator should look at, in words.
    warnings: Vec<String>,
    /// The latest host sample, in brief; `null` before the first.
    host: Option<HostSummary<'a>>,
    /// The daemon's version.
    version: &'static str,
    /// `TRACE_AGENT_ID`.
    agent_id: &'a str,
    /// Seconds since start.
    uptime_seconds: u64,
    /// The SQLite file.
    database: DatabaseStatus,
    /// The disk bound.
    rotation: RotationStatus,
    /// Rows held and not yet pushed, per table.
    tables: BTreeMap<&'static str, TableStatus>,
    /// Requests and records taken and refused.
    ingest: IngestStatus,
    /// OTLP items per signal.
    otlp: BTreeMap<&'static str, OtlpStatus>,
    /// The writer.
    store: StoreStatus,
    /// Restarts and panics per actor.
    actors: BTreeMap<&'static str, ActorStatus>,
    /// Request bytes held, against their bound.
    http: HttpStatus,
    /// Log lines lost.
    logging: LoggingStatus,
    /// The pusher.
    push: PushStatus,
    /// OpenClaw's own files followed (`transcript`, `gateway_log`): each
    /// source, its position, rows read and failed, and its lag.
    openclaw: BTreeMap<&'static str, FollowerView>,
    /// The ports served: the API's, the OTLP port, the health port.
    listeners: &'a ListenerReport,
    /// The configuration in force, secrets masked.
    config: ConfigEcho<'a>,
    // The earlier Go sidecar's health fields, for scripts written for it.
    /// `ok`, `disk_full`, or why the store did not answer.
    db_status: String,
    /// The database file's size.
    db_size_bytes: u64,
    /// The WAL's size.
    wal_size_bytes: u64,
    /// Records waiting for their commit.
    queue_depth: u64,
    /// Records accepted over all tables.
    events_received: u64,
    /// Requests refused over all reasons.
    events_dropped: u64,
    /// When a batch was last delivered.
    last_push_time: Option<String>,
    /// `ok`, `error`, `pending` or `disabled`.
    last_push_status: &'static str,
    /// Rows not yet pushed.
    unsynced_count: u64,
}

/// The `host` section: the latest sample, in brief.
#[derive(Serialize)]
struct HostSummary<'a> {
    time_ns: i64,
    cpu_utilization: Option<f64>,
    load_average: Option<[f64; 3]>,
    memory: &'a openclaw_trace_actors::metrics::MemorySample,
    cgroup: &'a Option<openclaw_trace_actors::metrics::CgroupSample>,
    filesystems: &'a [openclaw_trace_actors::metrics::FilesystemSample],
    processes: ProcessesSummary<'a>,
    tcp_connections: &'a BTreeMap<&'static str, u64>,
    agent: &'a Option<openclaw_trace_actors::metrics::AgentSample>,
    agent_restarts: u64,
    sidecar: &'a Option<ProcessBrief>,
}

/// Processes on the host: how many, the zombies and the top five.
#[derive(Serialize)]
struct ProcessesSummary<'a> {
    count: u64,
    zombies: &'a [ProcessBrief],
    top_cpu: &'a [ProcessBrief],
    top_rss: &'a [ProcessBrief],
}

impl<'a> HostSummary<'a> {
    fn of(h: &'a HostSample) -> Self {
        HostSummary {
            time_ns: h.time_ns,
            cpu_utilization: h.cpu.as_ref().map(|c| c.utilization),
            load_average: h.load_average,
            memory: &h.memory,
            cgroup: &h.cgroup,
            filesystems: &h.filesystems,
            processes: ProcessesSummary {
                count: h.processes.count,
                zombies: &h.processes.zombies,
                top_cpu: &h.processes.top_cpu,
                top_rss: &h.processes.top_rss,
            },
            tcp_connections: &h.tcp_connections,
            agent: &h.agent,
            agent_restarts: h.agent_restarts,
            sidecar: &h.sidecar,
        }
    }
}

/// The `database` section.
#[derive(Serialize)]
struct DatabaseStatus {
    path: String,
    /// Whether the file sits on the Fly volume.
    on_data_volume: bool,
    schema_version: i64,
    size_bytes: u64,
    wal_size_bytes: u64,
    /// `TRACE_DB_MAX_BYTES`.
    max_bytes: u64,
    /// Writes fail for want of space right now.
    disk_full: bool,
    disk_full_episodes: u64,
}

/// The `rotation` section: when it last ran, what it deleted and dropped,
/// per reason and table, and the size against its bound.
#[derive(Serialize)]
struct RotationStatus {
    runs: u64,
    /// When the last rotation ended.
    last_run: Option<String>,
    last_duration_ms: f64,
    interval_seconds: f64,
    max_age_days: Option<f64>,
    /// The file plus its WAL.
    db_bytes: u64,
    max_db_bytes: u64,
    disk_max_percent: f64,
    /// Rows deleted, per reason, per table.
    deleted: BTreeMap<&'static str, Counts>,
    /// Of those, rows never pushed.
    dropped: BTreeMap<&'static str, Counts>,
    dropped_total: u64,
}

impl RotationStatus {
    fn of(r: &RotationSnapshot, bounds: &RotationSettings, db_bytes: u64) -> Self {
        let nested = |list: &[(&'static str, &'static str, u64)]| {
            let mut out: BTreeMap<&'static str, Counts> = BTreeMap::new();
            for (reason, table, n) in list {
                out.entry(reason).or_default().insert(table, *n);
            }
            out
        };
        RotationStatus {
            runs: r.runs,
            last_run: r.last_end_ns.map(rfc3339),
            last_duration_ms: r.last_duration_ms,
            interval_seconds: bounds.interval.as_secs_f64(),
            max_age_days: bounds.max_age.map(|d| d.as_secs_f64() / 86_400.0),
            db_bytes,
            max_db_bytes: bounds.max_db_bytes,
            disk_max_percent: bounds.disk_max_percent,
            deleted: nested(&r.deleted),
            dropped: nested(&r.dropped),
            dropped_total: r.dropped_total(),
        }
    }
}

/// One table's rows.
#[derive(Serialize)]
struct TableStatus {
    rows: u64,
    unpushed: u64,
}

/// The `ingest` section.
#[derive(Serialize)]
struct IngestStatus {
    accepted_requests: u64,
    /// Per table.
    accepted_records: Counts,
    /// Per reason code.
    rejected: Counts,
}

/// One OTLP signal's items.
#[derive(Serialize)]
struct OtlpStatus {
    received: u64,
    stored: u64,
    /// Per reason code.
    rejected: Counts,
}

/// The `store` section.
#[derive(Serialize)]
struct StoreStatus {
    commits: u64,
    pending_records: u64,
    host_samples_dropped: u64,
}

/// One actor's supervision counts.
#[derive(Serialize)]
struct ActorStatus {
    restarts: u64,
    panics: u64,
}

/// The `http` section.
#[derive(Serialize)]
struct HttpStatus {
    inflight_body_bytes: usize,
    /// `TRACE_MAX_INFLIGHT_BODY_BYTES`.
    max_inflight_body_bytes: usize,
    connections_evicted: u64,
}

/// The `logging` section.
#[derive(Serialize)]
struct LoggingStatus {
    dropped_lines: u64,
    dropped_lines_by_reason: Counts,
}

/// The `push` section: what the pusher has done, or why it is off.
#[derive(Serialize)]
#[serde(untagged)]
enum PushStatus {
    Enabled(Box<PushEnabled>),
    Disabled {
        /// Always false.
        enabled: bool,
        reason: &'static str,
        dead_lettered_rows: u64,
    },
}

/// The `push` section of a daemon that pushes.
#[derive(Serialize)]
struct PushEnabled {
    /// Always true.
    enabled: bool,
    /// Without its query string.
    endpoint: String,
    format: &'static str,
    interval_seconds: f64,
    in_progress: bool,
    last_attempt: Option<String>,
    last_success: Option<String>,
    last_error: Option<PushFailure>,
    consecutive_failures: u64,
    pending_rows: u64,
    /// The database's bytes per row times the rows not yet pushed.
    pending_bytes_estimate: u64,
    batches_pushed: u64,
    rows_pushed: u64,
    bytes_pushed: u64,
    retries: u64,
    dead_lettered_rows: u64,
}

/// The configuration in force, secrets masked.
#[derive(Serialize)]
struct ConfigEcho<'a> {
    listen_addr: String,
    db_path: String,
    agent_id: &'a str,
    log_level: &'static str,
    max_text_bytes: usize,
    max_body_bytes: usize,
    max_pending_records: u64,
    ingest_token: Option<&'static str>,
    metrics_interval_seconds: f64,
    agent_process: Option<&'a str>,
    openclaw_metric_prefix: &'a str,
    rotate_interval_seconds: f64,
    db_rotate_days: Option<f64>,
    db_max_bytes: u64,
    disk_max_percent: f64,
    push_endpoint: Option<String>,
    push_api_key: Option<&'static str>,
}

impl<'a> ConfigEcho<'a> {
    fn of(config: &'a Config) -> Self {
        let masked = |secret: Option<&String>| secret.map(|_| "***");
        ConfigEcho {
            listen_addr: config.listen_addr.to_string(),
            db_path: config.db_path.display().to_string(),
            agent_id: &config.agent_id,
            log_level: config.log_level.as_str(),
            max_text_bytes: config.max_text_bytes,
            max_body_bytes: config.max_body_bytes,
            max_pending_records: config.max_pending_records,
            ingest_token: masked(config.ingest_token.as_ref()),
            metrics_interval_seconds: config.metrics_interval.as_secs_f64(),
            agent_process: config.agent_process.as_deref(),
            openclaw_metric_prefix: &config.openclaw_metric_prefix,
            rotate_interval_seconds: config.rotation.interval.as_secs_f64(),
            db_rotate_days: config.rotation.max_age.map(|d| d.as_secs_f64() / 86_400.0),
            db_max_bytes: config.rotation.max_db_bytes,
            disk_max_percent: config.rotation.disk_max_percent,
            push_endpoint: config.push.as_ref().map(|p| mask_endpoint(&p.endpoint)),
            push_api_key: masked(config.push.as_ref().and_then(|p| p.api_key.as_ref())),
        }
    }
}

/// The `push` section, with the Go sidecar's `last_push_time` and
/// `last_push_status`.
fn push_status(
    state: &AppState,
    unsynced: u64,
    pending_bytes: u64,
) -> (PushStatus, Option<String>, &'static str) {
    let dead_lettered_rows = state.engine.stats.rows.dead_letters();
    let (Some((_, view)), Some(settings)) = (&state.engine.push, &state.config.push) else {
        let off = PushStatus::Disabled {
            enabled: false,
            reason: "TRACE_PUSH_ENDPOINT is not set",
            dead_lettered_rows,
        };
        return (off, None, "disabled");
    };
    let p = view.get();
    let last_status = match (&p.last_error, p.consecutive_failures) {
        (_, 0) if p.last_success_ns.is_some() => "ok",
        (Some(_), _) => "error",
        _ => "pending",
    };
    let last_success = p.last_success_ns.map(rfc3339);
    let push = PushEnabled {
        enabled: true,
        endpoint: mask_endpoint(&settings.endpoint),
        format: match settings.format {
            PushFormat::Native => "native",
            PushFormat::Otlp => "otlp",
        },
        interval_seconds: settings.interval.as_secs_f64(),
        in_progress: p.in_progress,
        last_attempt: p.last_attempt_ns.map(rfc3339),
        last_success: last_success.clone(),
        last_error: p.last_error,
        consecutive_failures: p.consecutive_failures,
        pending_rows: unsynced,
        pending_bytes_estimate: pending_bytes,
        batches_pushed: p.batches_pushed,
        rows_pushed: p.rows_pushed,
        bytes_pushed: p.bytes_pushed,
        retries: p.retries,
        dead_lettered_rows,
    };
    (
        PushStatus::Enabled(Box::new(push)),
        last_success,
        last_status,
    )
}

/// What the operator should look at: the host's warnings, then the
/// database's.
fn warnings(
    host: Option<&HostSample>,
    stats: &StatsSnapshot,
    config: &Config,
    bounds: &RotationSettings,
    db_total: u64,
) -> Vec<String> {
    let mut warnings = host.map(HostSample::warnings).unwrap_or_default();
    if !config.listen_addr.ip().is_loopback() && config.ingest_token.is_none() {
        warnings.push(format!(
            "TRACE_LISTEN_ADDR={} is reachable from other machines and TRACE_INGEST_TOKEN is not set: \
             anyone who reaches it can post records and read the query API",
            config.listen_addr
        ));
    }
    if stats.disk_full {
        warnings.push(format!(
            "database writes fail for want of space on {}: ingest answers 507 (OTLP 503) until rotation or the operator frees space",
            config.db_path.display()
        ));
    }
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
    warnings
}

/// A source of OpenClaw's that cannot be read, in words.
fn follow_warnings(followers: &BTreeMap<&'static str, FollowerView>) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, follower) in followers {
        if let Some(problem) = &follower.problem {
            if !follower.sources.is_empty() || !problem.contains("No such file") {
                out.push(format!("openclaw {kind}: {problem}"));
            }
        }
        for source in follower.sources.values() {
            if let Some(problem) = &source.problem {
                out.push(format!("openclaw {kind}: {problem}"));
            }
        }
    }
    out
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
    let files: FileSizes = web::block(move || query::file_sizes(&path))
        .await
        .unwrap_or_default();
    let stats = state.engine.stats.snapshot();
    let host = state.engine.host.get();
    let config = &state.config;
    let bounds = &state.engine.rotation_settings;

    let unsynced: u64 = tables.iter().map(|t| t.unpushed).sum();
    let total_rows: u64 = tables.iter().map(|t| t.rows).sum();
    let db_total = files.db_bytes + files.wal_bytes;
    let pending_bytes = db_total * unsynced / total_rows.max(1);
    let (push, last_push_time, last_push_status) = push_status(&state, unsynced, pending_bytes);

    let mut openclaw = state.engine.follow.snapshot();
    for kind in [FollowKind::Transcript, FollowKind::GatewayLog] {
        openclaw.entry(kind.as_str()).or_default();
    }
    let mut warnings = warnings(host.as_deref(), &stats, config, bounds, db_total);
    warnings.extend(state.listeners.warnings());
    warnings.extend(follow_warnings(&openclaw));
    let answer = StatusAnswer {
        openclaw,
        status: if db_status == "ok" { "ok" } else { "degraded" },
        warnings,
        host: host.as_deref().map(HostSummary::of),
        version: env!("CARGO_PKG_VERSION"),
        agent_id: &config.agent_id,
        uptime_seconds: stats.uptime_seconds,
        database: DatabaseStatus {
            path: config.db_path.display().to_string(),
            on_data_volume: config.db_on_data_volume(),
            schema_version: SCHEMA_VERSION,
            size_bytes: files.db_bytes,
            wal_size_bytes: files.wal_bytes,
            max_bytes: bounds.max_db_bytes,
            disk_full: stats.disk_full,
            disk_full_episodes: stats.disk_full_episodes,
        },
        rotation: RotationStatus::of(&stats.rotation, bounds, db_total),
        tables: tables
            .iter()
            .map(|t| {
                let counts = TableStatus {
                    rows: t.rows,
                    unpushed: t.unpushed,
                };
                (t.table, counts)
            })
            .collect(),
        ingest: IngestStatus {
            accepted_requests: stats.accepted_requests,
            accepted_records: counts(&stats.accepted_records),
            rejected: counts(&stats.rejected),
        },
        otlp: stats
            .otlp
            .iter()
            .map(|o| {
                let counts = OtlpStatus {
                    received: o.received,
                    stored: o.stored,
                    rejected: counts(&o.rejected),
                };
                (o.signal, counts)
            })
            .collect(),
        store: StoreStatus {
            commits: stats.store_commits,
            pending_records: stats.store_pending,
            host_samples_dropped: stats.host_samples_dropped,
        },
        actors: stats
            .restarts
            .iter()
            .zip(&stats.panics)
            .map(|(&(name, restarts), &(_, panics))| (name, ActorStatus { restarts, panics }))
            .collect(),
        http: HttpStatus {
            inflight_body_bytes: state.body_budget.in_flight(),
            max_inflight_body_bytes: state.body_budget.limit(),
            connections_evicted: super::conn_watch::evicted_connections(),
        },
        logging: LoggingStatus {
            dropped_lines: crate::logging::dropped_log_lines(),
            dropped_lines_by_reason: counts(&crate::logging::dropped_log_lines_by_reason()),
        },
        push,
        listeners: &state.listeners,
        config: ConfigEcho::of(config),
        db_status,
        db_size_bytes: files.db_bytes,
        wal_size_bytes: files.wal_bytes,
        queue_depth: stats.store_pending,
        events_received: stats.accepted_records_total(),
        events_dropped: stats.rejected_total(),
        last_push_time,
        last_push_status,
        unsynced_count: unsynced,
    };
    Ok(HttpResponse::Ok().json(answer))
}
