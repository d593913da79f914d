//! openclaw-trace: an observability sidecar for an OpenClaw AI agent.
//!
//! The agent (or any HTTP client) posts LLM calls, errors, events and metric
//! points to `127.0.0.1:9090`; the daemon stores them in a local SQLite file
//! and reports its own state on `/health` and `/v1/status`. This crate is the
//! daemon's edges; the engine (actors, schema) is `openclaw-trace-actors`.
//!
//! # Layout
//!
//! - `main.rs`: thin: arguments, config, logging, signals, then [`run`]
//!   (or a command of [`cli`]).
//! - [`cli`]: the `status` and `report` commands, for the person on the
//!   machine: they ask the daemon's API, or read its file read-only.
//! - [`config`]: `TRACE_*` environment variables, validated at start-up.
//! - [`listeners`]: the API's port and the extra ones (the OTLP endpoints at
//!   the standard port 4318, `/health` for a platform's check), each kept to
//!   its routes; an extra port that cannot be bound is a warning.
//! - [`logging`]: JSON lines on stdout through slog; `log` bridged in; a
//!   failed write drops and counts the line, and logging resumes.
//! - [`http`]: the routes: ingest, `/health`, `/v1/status`, `/metrics`, the
//!   query API, and the dashboard page at `/` (`http/dashboard/`, embedded);
//!   the body budget, request timeouts and the connection watchdog.
//! - [`wire`]: request bodies into records (native JSON, OTLP), counted on
//!   the wire before they are decoded; gzip.
//!
//! [`run`] takes its listeners and its shutdown future, so tests can bind
//! port 0 and run the real server.

pub mod cli;
pub mod config;
pub mod http;
pub mod listeners;
pub mod logging;
pub mod wire;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::KeepAlive;
use actix_web::{middleware, web, App, HttpServer};
use openclaw_trace_actors::follow::FollowSettings;
use openclaw_trace_actors::ingest::IngestSettings;
use openclaw_trace_actors::metrics::MetricsSettings;
use openclaw_trace_actors::push::PushSettings;
use openclaw_trace_actors::rotate::RotationSettings;
use openclaw_trace_actors::schema::SchemaError;
use openclaw_trace_actors::store::StoreError;
use openclaw_trace_actors::{Engine, EngineConfig};
use slog::{info, warn, Logger};

pub use config::Config;
pub use listeners::Listeners;

/// Seconds in-flight requests get to finish once shutdown starts. Fly's
/// default `kill_timeout` is 5 s; this leaves room to commit and checkpoint.
const DRAIN_SECONDS: u64 = 2;

/// Time the final push at shutdown may take, after the drain: with the
/// checkpoint it stays inside the 4.5 s watchdog in `main.rs`.
const FINAL_PUSH: Duration = Duration::from_millis(1500);

/// The first rotation runs this long after start: soon, but after the
/// start-up work (first host sample, first requests).
const FIRST_ROTATION: Duration = Duration::from_secs(5);

/// Rows one rotation step deletes: small enough that an append waiting
/// behind it is held for a few milliseconds at most.
const ROTATION_CHUNK_ROWS: usize = 2000;

/// Open connections the HTTP workers together keep at most, whatever the file
/// descriptor limit. A sidecar has a handful of clients; the cap is there for
/// floods: near it the oldest idle connection is shut down to make room
/// (`http::conn_watch`), so new clients are still accepted. Measured on the
/// debug build,
/// an idle or stalled-head connection costs about 12 KiB and one stalled in
/// its body about 22 KiB, so a flood at the cap holds at most about 45 MiB.
/// Each connection takes two descriptors: the cap needs a soft limit of 8192
/// (a quarter is used).
const MAX_CONNECTIONS: u64 = 2048;

/// Connections the kernel queues for `accept` (actix's own default).
const MAX_BACKLOG: usize = 1024;

/// How long an idle keep-alive connection is kept: longer than the 5 s
/// between an OTLP exporter's batches, so it reuses its connection, and
/// short, so idle sockets give their slots back soon under a flood.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a connection being closed (after a refusal whose body was not
/// read, or a timeout) keeps reading and discarding, so that the client reads
/// the answer instead of a reset; bounded, so a stalled peer cannot hold it.
const LINGER: Duration = Duration::from_secs(1);

/// Why the daemon could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be opened or migrated.
    #[error("database {path}: {source}")]
    Database {
        /// The file.
        path: String,
        /// What SQLite said.
        source: SchemaError,
    },
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Server(#[from] std::io::Error),
    /// The final commit or checkpoint failed.
    #[error("closing the database: {0}")]
    Close(#[from] StoreError),
}

/// Runs the daemon on `listeners` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish, commits, checkpoints the WAL and
/// closes the database. Must run inside an actix system.
pub async fn run(
    config: Config,
    listeners: Listeners,
    log: Logger,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    keep_large_buffers_off_the_heap(&log);
    let db_dir = db_dir(&config.db_path);
    let engine = Engine::start(engine_config(&config, db_dir), &log).map_err(|source| {
        RunError::Database {
            path: config.db_path.display().to_string(),
            source,
        }
    })?;
    let engine = Arc::new(engine);
    let report = listeners.report()?;
    let extra_addr = |state: &listeners::ExtraState| match state {
        listeners::ExtraState::Listening { addr } => addr.to_string(),
        listeners::ExtraState::Off => "off".to_string(),
        listeners::ExtraState::SameAsApi { addr } => addr.to_string(),
        listeners::ExtraState::Failed { .. } => "failed".to_string(),
    };
    info!(log, "listening"; "addr" => report.api.to_string(),
        "otlp_addr" => extra_addr(&report.otlp), "health_addr" => extra_addr(&report.health),
        "db_path" => config.db_path.display().to_string(), "agent_id" => &config.agent_id,
        "on_data_volume" => config.db_on_data_volume());

    let request_timeout = config.request_timeout;
    let workers = HTTP_WORKERS;
    let cap = connection_cap(&log);
    let per_worker = cap / workers;
    // Room kept under each worker's cap: a new connection past this makes
    // the worker shut its oldest idle one, so it never stops accepting.
    let evict_at = per_worker - (per_worker / 16).max(2).min(per_worker - 1);
    let watch = http::conn_watch::WatchLimits {
        idle: KEEP_ALIVE + request_timeout,
        closing: LINGER + Duration::from_secs(1),
        evict_at,
        idle_timer_slack: HTTP_TIMER_SLACK,
    };
    // std listens with a backlog of 128: a burst of connections past it has
    // its SYNs dropped and retried after 1 s, then 3 s. Listening again on a
    // listening socket (Linux) only resizes the queue; kept within the cap,
    // so one round of timeouts at the cap empties it.
    let backlog = i32::try_from(cap.min(MAX_BACKLOG)).expect("at most MAX_BACKLOG");
    let Listeners { api, otlp, health } = listeners;
    let extras: Vec<TcpListener> = [otlp, health]
        .into_iter()
        .filter_map(listeners::Extra::into_listener)
        .collect();
    for listener in std::iter::once(&api).chain(&extras) {
        if let Err(e) = rustix::net::listen(listener, backlog) {
            warn!(log, "could not resize the listen backlog"; "backlog" => backlog, "error" => e.to_string());
        }
    }
    let state = web::Data::new(http::AppState {
        engine: Arc::clone(&engine),
        body_budget: Arc::new(http::BodyBudget::new(config.max_inflight_body_bytes)),
        config: Arc::new(config),
        log: log.clone(),
        listeners: Arc::new(report),
    });
    let mut server = HttpServer::new(move || {
        // Built on each worker's thread (once per listener): its
        // IngestActor runs there too.
        http::conn_watch::relax_if_idle(HTTP_TIMER_SLACK);
        let ingest = web::Data::new(state.engine.ingest.start_here());
        App::new()
            .wrap(middleware::from_fn(http::conn_watch::mark_busy))
            .wrap(middleware::from_fn(listeners::keep_to_role))
            .app_data(state.clone())
            .app_data(ingest)
            .configure(http::routes)
    })
    .on_connect(http::conn_watch::on_connect(watch))
    .workers(workers)
    // Signals are ours (main.rs): actix's own handling, like its
    // `shutdown_signal`, stops the whole actix system, which would take
    // the store down before it has committed and checkpointed.
    .disable_signals()
    .shutdown_timeout(DRAIN_SECONDS)
    // A head that has not arrived in time is answered 408 and closed
    // by actix itself; the body has its own timer in `http`.
    .client_request_timeout(request_timeout)
    .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
    .client_disconnect_timeout(LINGER)
    // At the cap a worker stops accepting; new connections wait in the
    // listen backlog until a timeout frees a slot.
    .max_connections(per_worker)
    .listen(api)?;
    for listener in extras {
        server = server.listen(listener)?;
    }
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown.await;
        http::conn_watch::stopping();
        handle.stop(true).await;
    });
    server.await?;
    info!(
        log,
        "http server stopped; final push, then closing the database"
    );
    engine.shutdown(Instant::now() + FINAL_PUSH).await?;
    info!(log, "shutdown complete");
    Ok(())
}

/// The actors' settings from the daemon's configuration.
fn engine_config(config: &Config, db_dir: std::path::PathBuf) -> EngineConfig {
    EngineConfig {
        db_path: config.db_path.clone(),
        ingest: IngestSettings {
            agent_id: config.agent_id.clone(),
            max_text_bytes: config.max_text_bytes,
            max_pending_records: config.max_pending_records,
            openclaw_metric_prefix: config.openclaw_metric_prefix.as_str().into(),
        },
        metrics: MetricsSettings {
            interval: config.metrics_interval,
            db_dir: db_dir.clone(),
            agent_process: config.agent_process.clone(),
            agent_id: config.agent_id.clone(),
        },
        push: config.push.as_ref().map(|p| PushSettings {
            endpoint: p.endpoint.clone(),
            interval: p.interval,
            api_key: p.api_key.clone(),
            format: p.format,
            max_batch_bytes: p.max_batch_bytes,
            max_batch_rows: 10_000,
            timeout: p.timeout,
            max_retry_wait: Duration::from_secs(60),
            backoff: (Duration::from_millis(500), Duration::from_secs(30)),
            agent_id: config.agent_id.clone(),
        }),
        rotation: RotationSettings {
            interval: config.rotation.interval,
            first_delay: FIRST_ROTATION.min(config.rotation.interval),
            max_age: config.rotation.max_age,
            max_db_bytes: config.rotation.max_db_bytes,
            disk_max_percent: config.rotation.disk_max_percent,
            db_path: config.db_path.clone(),
            db_dir,
            chunk_rows: ROTATION_CHUNK_ROWS,
        },
        pricing: Arc::clone(&config.prices).into(),
        follow: FollowSettings {
            state_dir: config.openclaw.state_dir.clone(),
            log_patterns: config.openclaw.log_patterns.clone(),
            poll: config.openclaw.poll,
            agent_id: config.agent_id.clone(),
            max_text_bytes: config.max_text_bytes,
            max_pending_records: config.max_pending_records,
        },
    }
}

/// The directory holding the database (its filesystem is the one to watch).
fn db_dir(db_path: &std::path::Path) -> std::path::PathBuf {
    let dir = db_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Raises the soft file descriptor limit to the hard one and returns the
/// connection cap: a quarter of the soft limit, as each connection takes two
/// descriptors (its socket and the watchdog's duplicate, see
/// [`http::conn_watch`]); the other half is left to SQLite, the log, the push
/// client and `/proc` reads, so that a flood meets the cap and waits, instead
/// of `accept` and the database failing with `EMFILE`.
fn connection_cap(log: &Logger) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    // An unlimited hard limit still cannot pass the kernel's `nr_open`, whose
    // default is 2^20.
    let wanted = before.maximum.unwrap_or(1 << 20);
    let soft = match before.current {
        None => u64::MAX,
        Some(soft) if soft >= wanted => soft,
        Some(soft) => {
            let raised = Rlimit {
                current: Some(wanted),
                maximum: before.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => wanted,
                Err(e) => {
                    warn!(log, "could not raise the file descriptor limit";
                        "soft" => soft, "hard" => before.maximum, "error" => e.to_string());
                    soft
                }
            }
        }
    };
    let cap = (soft / 4).clamp(HTTP_WORKERS as u64, MAX_CONNECTIONS);
    info!(log, "connection limits"; "nofile_soft_before" => before.current,
        "nofile_soft" => soft, "nofile_hard" => before.maximum, "max_connections" => cap);
    usize::try_from(cap).expect("at most MAX_CONNECTIONS")
}

/// Request bodies, inflated gzip and decoded batches are large buffers that
/// come and go with each request. glibc raises its mmap threshold each time
/// such a buffer is freed (up to 32 MiB), after which they are carved from the
/// heap, which fragments and keeps its high-water mark: 50 hostile clients
/// took the daemon (debug build) to 242 MB VmHWM, against 70 to 104 MB with
/// the threshold held at its 128 KiB default, as setting it does.
fn keep_large_buffers_off_the_heap(log: &Logger) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters, under glibc's
        // own locks; any value is valid for M_MMAP_THRESHOLD up to 32 MiB.
        if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) } != 1 {
            warn!(log, "could not fix the allocator's mmap threshold");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = log;
}

/// The HTTP worker's timer slack ([`openclaw_trace_actors::slack`]) while
/// it has no connection open. Idle, it wakes only for actix-http's `Date`
/// refresh, every 500 ms per listener (tokio's timer wheel adds a second
/// wake-up for most of them), which made it the daemon's dearest idle
/// thread. With no connection, nothing else on it is timed. The first
/// connection puts the default slack back until the last one is gone
/// ([`http::conn_watch`]), so request, keep-alive and linger timeouts, the
/// `Date` header and the drain at shutdown keep their precision.
///
/// Idle for 120 s with two listeners (`sched.sh`, four builds started
/// together, the slack then held for the worker's whole life), the worker
/// took 24.10 ms of CPU and 349 time slices with a 50 ms slack, 18.93 ms
/// with 250 ms, 16.12 ms with 500 ms, and **8.37 ms and 123 slices with
/// 1 s**; the whole daemon 44.6 ms against 30.2 ms.
const HTTP_TIMER_SLACK: Duration = Duration::from_secs(1);

/// HTTP worker threads: one. The store is the bottleneck, not HTTP: with one
/// worker instead of two, 1-record ingest ran as fast (`wrk -t1 -c16`,
/// medians of three alternated runs: one worker 19.3k req/s, two 18.6k), and
/// OTLP did not slow down (100-span requests, `-c16`, two alternated 15 s
/// runs each: one worker, with the IngestActor on its thread, 65.7k and 64.8k
/// spans/s; the build before, with two, 61.9k and 64.1k). Each worker
/// costs a thread, and actix-http wakes it every 500 ms per listener to
/// refresh its `Date` header: idle for 120 s, two workers took 35.2 ms of
/// the daemon's 58.5 ms of CPU, one took 18.4 ms of 42.4 ms (same run).
const HTTP_WORKERS: usize = 1;
