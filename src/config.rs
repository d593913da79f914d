//! Configuration from `TRACE_*` environment variables.
//!
//! `envconfig` reads the raw strings; [`Config::from_raw`] validates each one
//! and turns it into a typed value, so a bad value fails start-up with one
//! line naming the variable, the value and what is accepted.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use envconfig::Envconfig;
use openclaw_trace_actors::prices::{PriceError, PriceTable};
use openclaw_trace_actors::push::policy::PushFormat;

/// Every variable: name, default (as shown to people) and meaning. Drives
/// `--help`; the README's table says the same.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "TRACE_LISTEN_ADDR",
        "127.0.0.1:9090",
        "address and port the HTTP API listens on",
    ),
    (
        "TRACE_OTLP_LISTEN_ADDR",
        "127.0.0.1:4318",
        "a second address serving only the OTLP endpoints (POST /v1/traces, /v1/metrics, /v1/logs; \
         same rules and token), at the standard OTLP/HTTP port OpenClaw's docs point its exporter at; \
         off disables it; a port already taken is a warning in the log and /v1/status, not a failure",
    ),
    (
        "TRACE_HEALTH_LISTEN_ADDR",
        "off",
        "an address serving only GET /health, for a platform's health check that cannot reach \
         the loopback (on Fly: [::]:9091); a port already taken is a warning, not a failure",
    ),
    (
        "TRACE_DB_PATH",
        "/data/openclaw-trace.db if /data is a directory, else ./openclaw-trace.db",
        "the SQLite file",
    ),
    (
        "TRACE_AGENT_ID",
        "$FLY_MACHINE_ID, else the hostname",
        "agent id stamped on every record",
    ),
    (
        "TRACE_LOG_LEVEL",
        "info",
        "trace, debug, info, warning, error or critical",
    ),
    (
        "TRACE_MAX_TEXT_BYTES",
        "16384",
        "text fields (input_text, output_text, message, stack_trace) are cut to this many bytes",
    ),
    (
        "TRACE_MAX_BODY_BYTES",
        "8MiB",
        "largest request body accepted (bytes, or a size like 8MiB)",
    ),
    (
        "TRACE_MAX_PENDING_RECORDS",
        "20000",
        "records allowed to wait for the database before ingest answers 503",
    ),
    (
        "TRACE_MAX_RECORDS_PER_REQUEST",
        "10000",
        "records (native records; OTLP spans, data points, log records) one request may hold, \
         counted before it is decoded; more get 413",
    ),
    (
        "TRACE_MAX_INFLIGHT_BODY_BYTES",
        "16MiB",
        "request bytes (as read, and again once decompressed) held at once across all requests; past this, ingest answers 503",
    ),
    (
        "TRACE_REQUEST_TIMEOUT",
        "10s",
        "time a request's head, and then its body, may take to arrive before it is answered 408",
    ),
    (
        "TRACE_INGEST_TOKEN",
        "(unset)",
        "when set, ingest and the query API require Authorization: Bearer <token>",
    ),
    (
        "TRACE_ROTATE_INTERVAL",
        "10m",
        "time between rotations (age, size and volume bounds), like 10m",
    ),
    (
        "TRACE_DB_ROTATE_DAYS",
        "7",
        "rows older than this many days are deleted; 0 keeps rows of any age",
    ),
    (
        "TRACE_DB_MAX_BYTES",
        "512MiB",
        "bound of the database file plus its WAL; oldest rows go first, pushed before unpushed",
    ),
    (
        "TRACE_DISK_MAX_PERCENT",
        "90",
        "while the database's volume is fuller than this, the sidecar gives back space from its own rows",
    ),
    (
        "TRACE_METRICS_INTERVAL",
        "30s",
        "time between host samples, like 30s or 5m (at least 1s)",
    ),
    (
        "TRACE_AGENT_PROCESS",
        "openclaw, else node",
        "text the agent process's command line (or name) contains; the oldest match is the agent",
    ),
    (
        "TRACE_OPENCLAW_METRIC_PREFIX",
        "openclaw.",
        "OpenClaw's diagnostics.otel.metricNamePrefix when you set one (acme. exports acme.tokens): \
         the LLM view reads <prefix>tokens and <prefix>cost.usd; empty for no prefix",
    ),
    (
        "TRACE_PUSH_ENDPOINT",
        "(unset: no pushing)",
        "URL batches are POSTed to (its query string is masked in logs and status)",
    ),
    (
        "TRACE_PUSH_INTERVAL",
        "5m",
        "time between pushes",
    ),
    (
        "TRACE_PUSH_API_KEY",
        "(unset)",
        "sent as Authorization: Bearer <key>; never logged, masked in status",
    ),
    (
        "TRACE_PUSH_FORMAT",
        "native",
        "native (the Go sidecar's envelope) or otlp (OTLP/HTTP protobuf to <endpoint>/v1/traces, /v1/metrics, /v1/logs)",
    ),
    (
        "TRACE_PUSH_MAX_BATCH_BYTES",
        "5MiB",
        "largest batch before compression",
    ),
    (
        "TRACE_PUSH_TIMEOUT",
        "30s",
        "time allowed for one send",
    ),
    (
        "TRACE_PRICES_FILE",
        "(unset: the built-in prices only)",
        "model prices (USD per 1M tokens) that replace or add to the built-in ones, \
         one a line: provider model input output [cache_read [cache_write]]",
    ),
    (
        "TRACE_OPENCLAW_STATE_DIR",
        "$OPENCLAW_STATE_DIR, else ~/.openclaw",
        "OpenClaw's state directory, whose agents' transcript databases \
         (agents/*/agent/openclaw-agent.sqlite) are read for every model call's \
         usage and cost; off: not read",
    ),
    (
        "TRACE_OPENCLAW_LOG",
        "/tmp/openclaw and $TMPDIR/openclaw-<uid> (OpenClaw's defaults)",
        "OpenClaw's gateway log to follow: a file (with its .1 to .5 archives), a \
         directory (its openclaw-*.log files) or a glob; off: not read",
    ),
    (
        "TRACE_OPENCLAW_POLL",
        "5s",
        "time between looks at OpenClaw's transcripts and log",
    ),
];

/// The raw environment, as strings; `None` when a variable is unset.
#[derive(Debug, Envconfig)]
pub struct RawEnv {
    #[envconfig(from = "TRACE_LISTEN_ADDR")]
    listen_addr: Option<String>,
    #[envconfig(from = "TRACE_OTLP_LISTEN_ADDR")]
    otlp_listen_addr: Option<String>,
    #[envconfig(from = "TRACE_HEALTH_LISTEN_ADDR")]
    health_listen_addr: Option<String>,
    #[envconfig(from = "TRACE_DB_PATH")]
    db_path: Option<String>,
    #[envconfig(from = "TRACE_AGENT_ID")]
    agent_id: Option<String>,
    #[envconfig(from = "FLY_MACHINE_ID")]
    fly_machine_id: Option<String>,
    #[envconfig(from = "TRACE_LOG_LEVEL")]
    log_level: Option<String>,
    #[envconfig(from = "TRACE_MAX_TEXT_BYTES")]
    max_text_bytes: Option<String>,
    #[envconfig(from = "TRACE_MAX_BODY_BYTES")]
    max_body_bytes: Option<String>,
    #[envconfig(from = "TRACE_MAX_PENDING_RECORDS")]
    max_pending_records: Option<String>,
    #[envconfig(from = "TRACE_MAX_RECORDS_PER_REQUEST")]
    max_records_per_request: Option<String>,
    #[envconfig(from = "TRACE_MAX_INFLIGHT_BODY_BYTES")]
    max_inflight_body_bytes: Option<String>,
    #[envconfig(from = "TRACE_REQUEST_TIMEOUT")]
    request_timeout: Option<String>,
    #[envconfig(from = "TRACE_INGEST_TOKEN")]
    ingest_token: Option<String>,
    #[envconfig(from = "TRACE_METRICS_INTERVAL")]
    metrics_interval: Option<String>,
    #[envconfig(from = "TRACE_AGENT_PROCESS")]
    agent_process: Option<String>,
    #[envconfig(from = "TRACE_OPENCLAW_METRIC_PREFIX")]
    openclaw_metric_prefix: Option<String>,
    #[envconfig(from = "TRACE_PUSH_ENDPOINT")]
    push_endpoint: Option<String>,
    #[envconfig(from = "TRACE_PUSH_INTERVAL")]
    push_interval: Option<String>,
    #[envconfig(from = "TRACE_PUSH_API_KEY")]
    push_api_key: Option<String>,
    #[envconfig(from = "TRACE_PUSH_FORMAT")]
    push_format: Option<String>,
    #[envconfig(from = "TRACE_PUSH_MAX_BATCH_BYTES")]
    push_max_batch_bytes: Option<String>,
    #[envconfig(from = "TRACE_PUSH_TIMEOUT")]
    push_timeout: Option<String>,
    #[envconfig(from = "TRACE_ROTATE_INTERVAL")]
    rotate_interval: Option<String>,
    #[envconfig(from = "TRACE_DB_ROTATE_DAYS")]
    rotate_days: Option<String>,
    #[envconfig(from = "TRACE_DB_MAX_BYTES")]
    db_max_bytes: Option<String>,
    #[envconfig(from = "TRACE_DISK_MAX_PERCENT")]
    disk_max_percent: Option<String>,
    #[envconfig(from = "TRACE_PRICES_FILE")]
    prices_file: Option<String>,
    #[envconfig(from = "TRACE_OPENCLAW_STATE_DIR")]
    openclaw_state_dir: Option<String>,
    #[envconfig(from = "TRACE_OPENCLAW_LOG")]
    openclaw_log: Option<String>,
    #[envconfig(from = "TRACE_OPENCLAW_POLL")]
    openclaw_poll: Option<String>,
    #[envconfig(from = "OPENCLAW_STATE_DIR")]
    openclaw_state_dir_env: Option<String>,
    #[envconfig(from = "HOME")]
    home: Option<String>,
    #[envconfig(from = "TMPDIR")]
    tmpdir: Option<String>,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Where the HTTP API listens.
    pub listen_addr: SocketAddr,
    /// Where the OTLP endpoints are served as well (OpenClaw's docs use the
    /// standard port 4318); `None`: off.
    pub otlp_listen_addr: Option<SocketAddr>,
    /// Where `/health` alone is served, for a platform's health check;
    /// `None`: off.
    pub health_listen_addr: Option<SocketAddr>,
    /// The SQLite file.
    pub db_path: PathBuf,
    /// Stamped on every record.
    pub agent_id: String,
    /// Least severe log level written.
    pub log_level: slog::Level,
    /// Text fields are cut to this many bytes.
    pub max_text_bytes: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Records allowed to wait for a commit before ingest answers 503.
    pub max_pending_records: u64,
    /// Records one request may hold, counted on the wire before decoding.
    pub max_records_per_request: usize,
    /// Request bytes all requests may hold at once (read, then decompressed)
    /// before ingest answers 503.
    pub max_inflight_body_bytes: usize,
    /// Time a request's head, and then its body, may take to arrive.
    pub request_timeout: Duration,
    /// Bearer token ingest requires, when set.
    pub ingest_token: Option<String>,
    /// Time between host samples.
    pub metrics_interval: std::time::Duration,
    /// Text the agent's command line contains; `None`: `openclaw`, else `node`.
    pub agent_process: Option<String>,
    /// What OpenClaw's metric names start with (`metricNamePrefix`), so the
    /// LLM view finds its usage metrics under their new names.
    pub openclaw_metric_prefix: String,
    /// Pushing to a remote API; `None` when no endpoint is set.
    pub push: Option<PushConfig>,
    /// The disk bound.
    pub rotation: RotationConfig,
    /// The price overrides file, when set.
    pub prices_file: Option<PathBuf>,
    /// Model prices to estimate costs with: the built-in table and the
    /// overrides, read and checked at start-up.
    pub prices: Arc<PriceTable>,
    /// What of OpenClaw's own files to follow.
    pub openclaw: OpenClawConfig,
}

/// OpenClaw's own files the daemon follows.
#[derive(Debug, Clone)]
pub struct OpenClawConfig {
    /// The state directory whose transcripts are read; `None`: off.
    pub state_dir: Option<PathBuf>,
    /// Glob patterns of the gateway log files; empty: off.
    pub log_patterns: Vec<String>,
    /// Time between looks.
    pub poll: Duration,
}

/// The disk bound's settings.
#[derive(Debug, Clone, Copy)]
pub struct RotationConfig {
    /// Time between rotations.
    pub interval: Duration,
    /// Rows older than this go; `None`: no age limit.
    pub max_age: Option<Duration>,
    /// Bound of the database file plus its WAL, in bytes.
    pub max_db_bytes: u64,
    /// Bound of the volume's use, in percent.
    pub disk_max_percent: f64,
}

/// Where and how to push.
#[derive(Clone)]
pub struct PushConfig {
    /// The URL batches are POSTed to (for OTLP, the base the signal paths
    /// are appended to).
    pub endpoint: String,
    /// The batch encoding.
    pub format: PushFormat,
    /// Time between pushes.
    pub interval: Duration,
    /// Bearer token for the endpoint.
    pub api_key: Option<String>,
    /// Largest batch before compression, in bytes.
    pub max_batch_bytes: usize,
    /// Time allowed for one send.
    pub timeout: Duration,
}

impl fmt::Debug for Config {
    /// Like a derived `Debug`, with the token masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("otlp_listen_addr", &self.otlp_listen_addr)
            .field("health_listen_addr", &self.health_listen_addr)
            .field("db_path", &self.db_path)
            .field("agent_id", &self.agent_id)
            .field("log_level", &self.log_level)
            .field("max_text_bytes", &self.max_text_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_pending_records", &self.max_pending_records)
            .field("max_records_per_request", &self.max_records_per_request)
            .field("max_inflight_body_bytes", &self.max_inflight_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("ingest_token", &self.ingest_token.as_ref().map(|_| "***"))
            .field("metrics_interval", &self.metrics_interval)
            .field("agent_process", &self.agent_process)
            .field("openclaw_metric_prefix", &self.openclaw_metric_prefix)
            .field("rotation", &self.rotation)
            .field("prices_file", &self.prices_file)
            .field("prices", &(self.prices.len(), self.prices.fingerprint()))
            .field("openclaw", &self.openclaw)
            .field(
                "push_endpoint",
                &self
                    .push
                    .as_ref()
                    .map(|p| openclaw_trace_actors::push::mask_endpoint(&p.endpoint)),
            )
            .field(
                "push_api_key",
                &self
                    .push
                    .as_ref()
                    .and_then(|p| p.api_key.as_ref())
                    .map(|_| "***"),
            )
            .finish()
    }
}

/// A variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is invalid: {expected}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The value found (masked for secrets).
    pub value: String,
    /// What is accepted.
    pub expected: String,
}

fn invalid(var: &'static str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// `TRACE_DB_MAX_BYTES` when unset: 512 MiB.
pub const DEFAULT_MAX_DB_BYTES: u64 = 512 << 20;

impl Config {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        let raw =
            RawEnv::init_from_env().expect("every variable is optional, so reading cannot fail");
        Config::from_raw(raw, Path::new("/data"))
    }

    /// Reads and validates variables from a map (tests).
    pub fn from_map(
        vars: &HashMap<String, String>,
        data_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let raw = RawEnv::init_from_hashmap(vars)
            .expect("every variable is optional, so reading cannot fail");
        Config::from_raw(raw, data_dir)
    }

    /// Validates raw values; `data_dir` is the Fly volume's mount point.
    /// Each variable is checked in turn, so the first bad one is the one
    /// named.
    fn from_raw(raw: RawEnv, data_dir: &Path) -> Result<Config, ConfigError> {
        let raw_openclaw = OpenClawVars {
            state_dir: raw.openclaw_state_dir.clone(),
            log: raw.openclaw_log.clone(),
            poll: raw.openclaw_poll.clone(),
            state_dir_env: raw.openclaw_state_dir_env.clone(),
            home: raw.home.clone(),
            tmpdir: raw.tmpdir.clone(),
        };
        let listen_addr = listen_addr(raw.listen_addr.as_deref())?;
        let otlp_listen_addr = optional_listen_addr(
            "TRACE_OTLP_LISTEN_ADDR",
            raw.otlp_listen_addr.as_deref(),
            Some(SocketAddr::from(([127, 0, 0, 1], 4318))),
        )?;
        let health_listen_addr = optional_listen_addr(
            "TRACE_HEALTH_LISTEN_ADDR",
            raw.health_listen_addr.as_deref(),
            None,
        )?;
        let db_path = db_path(raw.db_path.as_deref(), data_dir)?;
        let agent_id = raw
            .agent_id
            .or(raw.fly_machine_id)
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
        let log_level = log_level(raw.log_level.as_deref())?;
        let max_text_bytes = max_text_bytes(raw.max_text_bytes.as_deref())?;
        let max_body_bytes = max_body_bytes(raw.max_body_bytes.as_deref())?;
        let max_pending_records = max_pending_records(raw.max_pending_records.as_deref())?;
        let max_records_per_request =
            max_records_per_request(raw.max_records_per_request.as_deref())?;
        let max_inflight_body_bytes =
            max_inflight_body_bytes(raw.max_inflight_body_bytes.as_deref())?;
        let ingest_token = ingest_token(raw.ingest_token)?;
        let metrics_interval = duration_at_least(
            "TRACE_METRICS_INTERVAL",
            raw.metrics_interval.as_deref(),
            Duration::from_secs(30),
            Duration::from_secs(1),
        )?;
        let request_timeout = request_timeout(raw.request_timeout.as_deref())?;
        let agent_process = raw.agent_process.filter(|p| !p.trim().is_empty());
        let openclaw_metric_prefix = metric_prefix(raw.openclaw_metric_prefix.as_deref())?;
        let push = push_config(PushVars {
            endpoint: raw.push_endpoint.as_deref(),
            format: raw.push_format.as_deref(),
            interval: raw.push_interval.as_deref(),
            api_key: raw.push_api_key,
            max_batch_bytes: raw.push_max_batch_bytes.as_deref(),
            timeout: raw.push_timeout.as_deref(),
        })?;
        let rotation = rotation_config(
            raw.rotate_interval.as_deref(),
            raw.rotate_days.as_deref(),
            raw.db_max_bytes.as_deref(),
            raw.disk_max_percent.as_deref(),
        )?;
        let prices_file = raw
            .prices_file
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let prices = load_prices(prices_file.as_deref())?;
        let openclaw = openclaw_config(&raw_openclaw)?;
        Ok(Config {
            openclaw,
            rotation,
            prices_file,
            prices: Arc::new(prices),
            listen_addr,
            otlp_listen_addr,
            health_listen_addr,
            db_path,
            agent_id,
            log_level,
            max_text_bytes,
            max_body_bytes,
            max_pending_records,
            max_records_per_request,
            max_inflight_body_bytes,
            request_timeout,
            ingest_token,
            metrics_interval,
            agent_process,
            openclaw_metric_prefix,
            push,
        })
    }

    /// Whether the database sits on the Fly volume mounted at `/data`.
    pub fn db_on_data_volume(&self) -> bool {
        let path = std::fs::canonicalize(&self.db_path).unwrap_or_else(|_| self.db_path.clone());
        path.starts_with("/data")
    }
}

/// The raw values behind [`OpenClawConfig`].
struct OpenClawVars {
    state_dir: Option<String>,
    log: Option<String>,
    poll: Option<String>,
    state_dir_env: Option<String>,
    home: Option<String>,
    tmpdir: Option<String>,
}

/// Whether a value turns a source off.
fn is_off(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "off" | "false" | "no" | "none" | "0"
    )
}

/// `TRACE_OPENCLAW_STATE_DIR`, `TRACE_OPENCLAW_LOG`, `TRACE_OPENCLAW_POLL`.
fn openclaw_config(vars: &OpenClawVars) -> Result<OpenClawConfig, ConfigError> {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let state_dir = match nonempty(&vars.state_dir) {
        Some(v) if is_off(&v) => None,
        Some(v) => Some(PathBuf::from(v)),
        None => nonempty(&vars.state_dir_env)
            .map(PathBuf::from)
            .or_else(|| nonempty(&vars.home).map(|h| Path::new(&h).join(".openclaw"))),
    };
    let log_patterns = match nonempty(&vars.log) {
        Some(v) if is_off(&v) => Vec::new(),
        Some(v) => log_patterns(&v)?,
        None => openclaw_trace_actors::gateway_log::default_patterns(
            nonempty(&vars.tmpdir).as_deref().map(Path::new),
            rustix::process::getuid().as_raw(),
        ),
    };
    let poll = duration_at_least(
        "TRACE_OPENCLAW_POLL",
        vars.poll.as_deref(),
        Duration::from_secs(5),
        Duration::from_millis(100),
    )?;
    Ok(OpenClawConfig {
        state_dir,
        log_patterns,
        poll,
    })
}

/// The glob patterns `TRACE_OPENCLAW_LOG` stands for: a glob as it is, a
/// directory's `openclaw-*.log` files, a file and its size archives.
fn log_patterns(value: &str) -> Result<Vec<String>, ConfigError> {
    use openclaw_trace_actors::gateway_log::{dir_pattern, file_patterns};
    if value.contains(['*', '?', '[']) {
        return glob::Pattern::new(value)
            .map(|_| vec![value.to_string()])
            .map_err(|e| {
                invalid(
                    "TRACE_OPENCLAW_LOG",
                    value,
                    format!("expected a file, a directory, a glob or off: {e}"),
                )
            });
    }
    let path = Path::new(value);
    // A file that exists is a file; else a name without an extension is
    // taken for a directory that is still to appear.
    let is_dir =
        !path.is_file() && (path.is_dir() || value.ends_with('/') || path.extension().is_none());
    Ok(if is_dir {
        vec![dir_pattern(path)]
    } else {
        file_patterns(path)
    })
}

/// A variable's value: `default` when it is unset, else what `parse` makes
/// of it, or an error naming the variable, the value and `expected`.
fn setting<T>(
    var: &'static str,
    value: Option<&str>,
    default: T,
    expected: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => parse(v).ok_or_else(|| invalid(var, v, expected)),
    }
}

/// A duration of at least `min`, like `30s` or `5m`.
fn duration_at_least(
    var: &'static str,
    value: Option<&str>,
    default: Duration,
    min: Duration,
) -> Result<Duration, ConfigError> {
    let expected = format!(
        "expected a duration of at least {}, like 30s or 5m",
        humantime::format_duration(min)
    );
    setting(var, value, default, &expected, |v| {
        humantime::parse_duration(v.trim())
            .ok()
            .filter(|d| *d >= min)
    })
}

/// `TRACE_LISTEN_ADDR`: where the HTTP API listens.
fn listen_addr(value: Option<&str>) -> Result<SocketAddr, ConfigError> {
    setting(
        "TRACE_LISTEN_ADDR",
        value,
        SocketAddr::from(([127, 0, 0, 1], 9090)),
        "expected IP:PORT such as 127.0.0.1:9090 or [::1]:9090",
        |v| v.parse().ok(),
    )
}

/// A second listener's address (`TRACE_OTLP_LISTEN_ADDR`,
/// `TRACE_HEALTH_LISTEN_ADDR`): `default` when unset, `None` for `off`.
fn optional_listen_addr(
    var: &'static str,
    value: Option<&str>,
    default: Option<SocketAddr>,
) -> Result<Option<SocketAddr>, ConfigError> {
    setting(
        var,
        value,
        default,
        "expected IP:PORT such as 127.0.0.1:4318 or [::]:9091, or off",
        |v| match v.trim() {
            off if off.eq_ignore_ascii_case("off") => Some(None),
            addr => addr.parse().ok().map(Some),
        },
    )
}

/// `TRACE_OPENCLAW_METRIC_PREFIX`: OpenClaw's `metricNamePrefix`, checked by
/// its own rules (empty, or a letter then letters, digits, `_ . - /`, at
/// most 128 characters), so a typo is caught at start rather than matching
/// nothing.
fn metric_prefix(value: Option<&str>) -> Result<String, ConfigError> {
    setting(
        "TRACE_OPENCLAW_METRIC_PREFIX",
        value,
        "openclaw.".to_string(),
        "expected OpenClaw's metricNamePrefix as set in its config, separator included, \
         like acme. (a letter, then letters, digits, _ . - /; at most 128), or empty for none",
        |v| {
            let ok = v.is_empty()
                || (v.len() <= 128
                    && v.starts_with(|c: char| c.is_ascii_alphabetic())
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)));
            ok.then(|| v.to_string())
        },
    )
}

/// `TRACE_LOG_LEVEL`: the least severe level written.
fn log_level(value: Option<&str>) -> Result<slog::Level, ConfigError> {
    setting(
        "TRACE_LOG_LEVEL",
        value,
        slog::Level::Info,
        "expected one of trace, debug, info, warning, error, critical",
        parse_level,
    )
}

/// `TRACE_MAX_TEXT_BYTES`: where text fields are cut.
fn max_text_bytes(value: Option<&str>) -> Result<usize, ConfigError> {
    setting(
        "TRACE_MAX_TEXT_BYTES",
        value,
        16_384,
        "expected a size of at least 1 byte, like 16384 or 16KiB",
        |v| parse_size(v).filter(|n| *n >= 1),
    )
}

/// `TRACE_MAX_BODY_BYTES`: the largest request body.
fn max_body_bytes(value: Option<&str>) -> Result<usize, ConfigError> {
    setting(
        "TRACE_MAX_BODY_BYTES",
        value,
        8 * 1024 * 1024,
        "expected a size from 1KiB to 1GiB, like 8388608 or 8MiB",
        |v| parse_size(v).filter(|n| (1024..=1 << 30).contains(n)),
    )
}

/// `TRACE_MAX_PENDING_RECORDS`: records that may wait for a commit.
fn max_pending_records(value: Option<&str>) -> Result<u64, ConfigError> {
    setting(
        "TRACE_MAX_PENDING_RECORDS",
        value,
        20_000,
        "expected a whole number of at least 1",
        |v| v.trim().parse::<u64>().ok().filter(|n| *n >= 1),
    )
}

/// `TRACE_MAX_RECORDS_PER_REQUEST`: records one request may hold.
fn max_records_per_request(value: Option<&str>) -> Result<usize, ConfigError> {
    setting(
        "TRACE_MAX_RECORDS_PER_REQUEST",
        value,
        crate::wire::limits::Limits::DEFAULT_MAX_RECORDS,
        "expected a whole number from 1 to 1000000, like 10000",
        |v| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
        },
    )
}

/// `TRACE_MAX_INFLIGHT_BODY_BYTES`: request bytes all requests may hold.
fn max_inflight_body_bytes(value: Option<&str>) -> Result<usize, ConfigError> {
    setting(
        "TRACE_MAX_INFLIGHT_BODY_BYTES",
        value,
        // Two requests at the default 8 MiB body limit, far more than
        // exporters send at once (their batches are KiBs to a few MiB).
        // A request's decoded records weigh one to three times its body
        // and are not counted, so the memory a flood can pin is a few
        // times this: 50 hostile clients peaked near 100 MB VmHWM.
        16 * 1024 * 1024,
        "expected a size from 1KiB to 4GiB, like 16777216 or 16MiB",
        |v| parse_size(v).filter(|n| (1024..=1 << 32).contains(n)),
    )
}

/// `TRACE_REQUEST_TIMEOUT`: time a request's head, then its body, may take.
fn request_timeout(value: Option<&str>) -> Result<Duration, ConfigError> {
    setting(
        "TRACE_REQUEST_TIMEOUT",
        value,
        Duration::from_secs(10),
        "expected a duration from 1s to 1h, like 10s or 30s",
        // The upper bound keeps the deadlines actix computes from it far
        // from overflowing, and a stalled socket from being kept for days.
        |v| {
            humantime::parse_duration(v.trim())
                .ok()
                .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(d))
        },
    )
}

/// `TRACE_DB_PATH`: on the Fly volume when it is mounted, else here.
fn db_path(value: Option<&str>, data_dir: &Path) -> Result<PathBuf, ConfigError> {
    Ok(match value {
        Some("") => return Err(invalid("TRACE_DB_PATH", "", "expected a file path")),
        Some(v) => PathBuf::from(v),
        None if data_dir.is_dir() => data_dir.join("openclaw-trace.db"),
        None => PathBuf::from("openclaw-trace.db"),
    })
}

/// `TRACE_INGEST_TOKEN`: a token without spaces, never shown back.
fn ingest_token(value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(t) if t.trim().is_empty() || t.chars().any(char::is_whitespace) => Err(invalid(
            "TRACE_INGEST_TOKEN",
            "***",
            "expected a token without spaces, or leave it unset",
        )),
        token => Ok(token),
    }
}

/// The raw `TRACE_PUSH_*` variables.
struct PushVars<'a> {
    endpoint: Option<&'a str>,
    format: Option<&'a str>,
    interval: Option<&'a str>,
    api_key: Option<String>,
    max_batch_bytes: Option<&'a str>,
    timeout: Option<&'a str>,
}

/// Pushing: `None` without an endpoint, and the other `TRACE_PUSH_*`
/// variables are then not read.
fn push_config(vars: PushVars<'_>) -> Result<Option<PushConfig>, ConfigError> {
    let Some(endpoint) = vars.endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let shown = openclaw_trace_actors::push::mask_endpoint(endpoint);
    let uri: Result<actix_web::http::Uri, _> = endpoint.parse();
    if !uri.is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()) {
        return Err(invalid(
            "TRACE_PUSH_ENDPOINT",
            &shown,
            "expected an http:// or https:// URL",
        ));
    }
    let format = match vars.format.map(str::trim) {
        None | Some("native") => PushFormat::Native,
        Some("otlp") => PushFormat::Otlp,
        Some(other) => {
            return Err(invalid(
                "TRACE_PUSH_FORMAT",
                other,
                "expected native or otlp",
            ))
        }
    };
    Ok(Some(PushConfig {
        endpoint: endpoint.to_string(),
        format,
        interval: duration_at_least(
            "TRACE_PUSH_INTERVAL",
            vars.interval,
            Duration::from_secs(300),
            Duration::from_millis(100),
        )?,
        api_key: vars.api_key.filter(|k| !k.trim().is_empty()),
        max_batch_bytes: setting(
            "TRACE_PUSH_MAX_BATCH_BYTES",
            vars.max_batch_bytes,
            5 * 1024 * 1024,
            "expected a size of at least 1KiB, like 5MiB",
            |v| parse_size(v).filter(|n| *n >= 1024),
        )?,
        timeout: duration_at_least(
            "TRACE_PUSH_TIMEOUT",
            vars.timeout,
            Duration::from_secs(30),
            Duration::from_millis(100),
        )?,
    }))
}

/// The disk bound, from `TRACE_ROTATE_INTERVAL`, `TRACE_DB_ROTATE_DAYS`,
/// `TRACE_DB_MAX_BYTES` and `TRACE_DISK_MAX_PERCENT`.
fn rotation_config(
    interval: Option<&str>,
    days: Option<&str>,
    max_bytes: Option<&str>,
    disk_percent: Option<&str>,
) -> Result<RotationConfig, ConfigError> {
    Ok(RotationConfig {
        interval: duration_at_least(
            "TRACE_ROTATE_INTERVAL",
            interval,
            Duration::from_secs(600),
            Duration::from_secs(1),
        )?,
        max_age: setting(
            "TRACE_DB_ROTATE_DAYS",
            days,
            Some(Duration::from_secs(7 * 86_400)),
            "expected a number of days from 0 to 36500, like 7 or 0.5 (0 turns age rotation off)",
            |v| {
                let days = v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && (0.0..=36_500.0).contains(d))?;
                Some((days > 0.0).then(|| Duration::from_secs_f64(days * 86_400.0)))
            },
        )?,
        max_db_bytes: setting(
            "TRACE_DB_MAX_BYTES",
            max_bytes,
            DEFAULT_MAX_DB_BYTES,
            "expected a size of at least 1MiB, like 512MiB or 2GiB",
            |v| {
                parse_size(v)
                    .filter(|n| *n >= 1024 * 1024)
                    .map(|n| n as u64)
            },
        )?,
        disk_max_percent: setting(
            "TRACE_DISK_MAX_PERCENT",
            disk_percent,
            90.0,
            "expected a percentage from 10 to 100, like 90",
            |v| {
                v.trim()
                    .trim_end_matches('%')
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (10.0..=100.0).contains(p))
            },
        )?,
    })
}

/// The built-in prices and `TRACE_PRICES_FILE`'s, checked line by line.
fn load_prices(file: Option<&Path>) -> Result<PriceTable, ConfigError> {
    PriceTable::load(file).map_err(|e| {
        let shown = file.map(|p| p.display().to_string()).unwrap_or_default();
        let expected = match e {
            PriceError::Line {
                line,
                field,
                problem,
                ..
            } => format!("line {line}, field {field}: {problem}"),
            PriceError::Read { source, .. } => format!("cannot read the file: {source}"),
        };
        invalid("TRACE_PRICES_FILE", &shown, expected)
    })
}

fn parse_level(v: &str) -> Option<slog::Level> {
    match v.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(slog::Level::Trace),
        "debug" => Some(slog::Level::Debug),
        "info" => Some(slog::Level::Info),
        "warn" | "warning" => Some(slog::Level::Warning),
        "error" => Some(slog::Level::Error),
        "critical" | "crit" => Some(slog::Level::Critical),
        _ => None,
    }
}

/// A byte size: a plain number of bytes, or a size with a unit (`16KiB`, `8MB`).
fn parse_size(v: &str) -> Option<usize> {
    let bytes = v.trim().parse::<bytesize::ByteSize>().ok()?.as_u64();
    usize::try_from(bytes).ok()
}

/// The text `--help` prints.
pub fn help_text() -> String {
    let mut out = format!(
        "openclaw-trace {}\nObservability sidecar for an OpenClaw AI agent: stores traces, LLM calls, errors,\n\
         events and metrics it receives over HTTP in a local SQLite file.\n\n\
         Usage: openclaw-trace                  run the daemon\n\
         \x20      openclaw-trace status [...]     the daemon's health (status --help)\n\
         \x20      openclaw-trace report [...]     LLM calls, tokens and cost (report --help)\n\
         \x20      openclaw-trace --help | --version\n\n\
         Configuration (environment variables; status and report read\n\
         TRACE_LISTEN_ADDR, TRACE_INGEST_TOKEN and TRACE_DB_MAX_BYTES too):\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, meaning) in VARIABLES {
        out.push_str(&format!(
            "  {name}\n      {meaning}\n      default: {default}\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `text` that look like `pattern` followed by a variable.
    fn names(text: &str, before: &str, after: char) -> std::collections::BTreeSet<String> {
        text.split(before)
            .skip(1)
            .filter_map(|rest| rest.split(after).next())
            .filter(|n| {
                n.starts_with("TRACE_") && n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn help_and_readme_list_every_variable_the_configuration_reads() {
        let read = names(include_str!("config.rs"), "envconfig(from = \"", '"');
        let help: std::collections::BTreeSet<String> =
            VARIABLES.iter().map(|(n, _, _)| n.to_string()).collect();
        let readme = names(include_str!("../README.md"), "\n| `", '`');
        assert!(read.len() >= 24, "{read:?}");
        assert_eq!(help, read, "--help (VARIABLES) and the variables read");
        assert_eq!(readme, read, "the README's table and the variables read");
        let text = help_text();
        for name in &read {
            assert!(text.contains(name.as_str()), "--help lacks {name}");
        }
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&vars, Path::new("/nonexistent-data-dir"))
    }

    #[test]
    fn a_bad_value_of_each_checked_variable_is_refused_by_name() {
        for (name, bad) in [
            ("TRACE_LISTEN_ADDR", "localhost"),
            ("TRACE_OTLP_LISTEN_ADDR", "4318"),
            ("TRACE_HEALTH_LISTEN_ADDR", "localhost:9091"),
            ("TRACE_OPENCLAW_METRIC_PREFIX", "1acme."),
            ("TRACE_LOG_LEVEL", "loud"),
            ("TRACE_MAX_TEXT_BYTES", "-1"),
            ("TRACE_MAX_BODY_BYTES", "lots"),
            ("TRACE_MAX_RECORDS_PER_REQUEST", "0"),
            ("TRACE_MAX_PENDING_RECORDS", "many"),
            ("TRACE_MAX_INFLIGHT_BODY_BYTES", "12 parsecs"),
            ("TRACE_REQUEST_TIMEOUT", "soon"),
            ("TRACE_METRICS_INTERVAL", "0s"),
            ("TRACE_PUSH_ENDPOINT", "not a url"),
            ("TRACE_PUSH_INTERVAL", "never"),
            ("TRACE_PUSH_FORMAT", "xml"),
            ("TRACE_PUSH_MAX_BATCH_BYTES", "huge"),
            ("TRACE_PUSH_TIMEOUT", "-3s"),
            ("TRACE_ROTATE_INTERVAL", "ten minutes"),
            ("TRACE_DB_ROTATE_DAYS", "a week"),
            ("TRACE_DB_MAX_BYTES", "1 bucket"),
            ("TRACE_DISK_MAX_PERCENT", "150"),
            ("TRACE_PRICES_FILE", "/nonexistent/prices.txt"),
            ("TRACE_OPENCLAW_POLL", "often"),
            ("TRACE_OPENCLAW_POLL", "10ms"),
            ("TRACE_OPENCLAW_LOG", "/var/log/openclaw-[unclosed.log"),
        ] {
            let mut pairs = vec![(name, bad)];
            if name.starts_with("TRACE_PUSH_") && name != "TRACE_PUSH_ENDPOINT" {
                pairs.push(("TRACE_PUSH_ENDPOINT", "http://127.0.0.1:1/ingest"));
            }
            match config(&pairs) {
                Ok(_) => panic!("{name}={bad:?} was accepted"),
                Err(e) => assert!(e.to_string().contains(name), "{name}: {e}"),
            }
        }
    }

    #[test]
    fn openclaw_sources_default_to_openclaws_own_places() {
        let c = config(&[("HOME", "/home/agent")]).expect("valid");
        assert_eq!(
            c.openclaw.state_dir,
            Some(PathBuf::from("/home/agent/.openclaw"))
        );
        assert_eq!(c.openclaw.log_patterns[0], "/tmp/openclaw/openclaw-*.log");
        assert_eq!(c.openclaw.poll, Duration::from_secs(5));
        let c = config(&[("OPENCLAW_STATE_DIR", "/data"), ("HOME", "/home/agent")]).expect("valid");
        assert_eq!(c.openclaw.state_dir, Some(PathBuf::from("/data")));
        let c = config(&[
            ("OPENCLAW_STATE_DIR", "/data"),
            ("TRACE_OPENCLAW_STATE_DIR", "off"),
            ("TRACE_OPENCLAW_LOG", "off"),
            ("TRACE_OPENCLAW_POLL", "250ms"),
        ])
        .expect("valid");
        assert_eq!(c.openclaw.state_dir, None);
        assert!(c.openclaw.log_patterns.is_empty());
        assert_eq!(c.openclaw.poll, Duration::from_millis(250));
        // A file, a directory, a glob.
        let logs = |v: &str| {
            config(&[("TRACE_OPENCLAW_LOG", v)])
                .expect("valid")
                .openclaw
                .log_patterns
        };
        assert_eq!(
            logs("/data/logs/gateway.log"),
            ["/data/logs/gateway.log", "/data/logs/gateway.[1-5].log"]
        );
        assert_eq!(logs("/data/logs"), ["/data/logs/openclaw-*.log"]);
        assert_eq!(logs("/data/logs/*.log"), ["/data/logs/*.log"]);
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:9090");
        assert_eq!(c.db_path, PathBuf::from("openclaw-trace.db"));
        assert_eq!(c.max_text_bytes, 16_384);
        assert_eq!(c.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(c.max_records_per_request, 10_000);
        assert!(c.ingest_token.is_none());
        assert!(!c.agent_id.is_empty(), "falls back to the hostname");
    }

    #[test]
    fn second_listeners_default_to_the_otlp_port_and_turn_off() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(
            c.otlp_listen_addr.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:4318")
        );
        assert_eq!(c.health_listen_addr, None);
        let c = config(&[
            ("TRACE_OTLP_LISTEN_ADDR", " Off "),
            ("TRACE_HEALTH_LISTEN_ADDR", "[::]:9091"),
        ])
        .expect("valid");
        assert_eq!(c.otlp_listen_addr, None);
        assert_eq!(
            c.health_listen_addr.map(|a| a.to_string()).as_deref(),
            Some("[::]:9091")
        );
        let e = config(&[("TRACE_OTLP_LISTEN_ADDR", "")]).unwrap_err();
        assert!(e.to_string().contains("or off"), "{e}");
    }

    #[test]
    fn the_metric_prefix_follows_openclaws_rules() {
        assert_eq!(
            config(&[]).expect("valid").openclaw_metric_prefix,
            "openclaw."
        );
        for good in ["acme.", "", "acme.openclaw.", "a/b-c_d.9"] {
            let c = config(&[("TRACE_OPENCLAW_METRIC_PREFIX", good)]).expect(good);
            assert_eq!(c.openclaw_metric_prefix, good);
        }
        let long = format!("a{}", ".".repeat(128));
        for bad in [" acme.", "acme prefix.", ".acme", long.as_str()] {
            let e = config(&[("TRACE_OPENCLAW_METRIC_PREFIX", bad)]).unwrap_err();
            assert_eq!(e.var, "TRACE_OPENCLAW_METRIC_PREFIX", "{bad:?}");
        }
    }

    #[test]
    fn data_dir_is_preferred_when_it_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Config::from_map(&HashMap::new(), dir.path()).expect("valid");
        assert_eq!(c.db_path, dir.path().join("openclaw-trace.db"));
    }

    #[test]
    fn agent_id_falls_back_to_fly_machine_id() {
        let c = config(&[("FLY_MACHINE_ID", "e784079b449483")]).expect("valid");
        assert_eq!(c.agent_id, "e784079b449483");
        let c = config(&[("FLY_MACHINE_ID", "m1"), ("TRACE_AGENT_ID", "agent-7")]).expect("valid");
        assert_eq!(c.agent_id, "agent-7");
    }

    #[test]
    fn sizes_take_units() {
        let c = config(&[
            ("TRACE_MAX_BODY_BYTES", "2MiB"),
            ("TRACE_MAX_TEXT_BYTES", "100"),
        ])
        .expect("valid");
        assert_eq!(c.max_body_bytes, 2 * 1024 * 1024);
        assert_eq!(c.max_text_bytes, 100);
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_what_is_accepted() {
        let e = config(&[("TRACE_LISTEN_ADDR", "localhost")]).unwrap_err();
        assert_eq!(e.var, "TRACE_LISTEN_ADDR");
        let line = e.to_string();
        assert!(line.contains("TRACE_LISTEN_ADDR=\"localhost\""), "{line}");
        assert!(line.contains("127.0.0.1:9090"), "{line}");

        assert_eq!(
            config(&[("TRACE_LOG_LEVEL", "loud")]).unwrap_err().var,
            "TRACE_LOG_LEVEL"
        );
        assert_eq!(
            config(&[("TRACE_MAX_BODY_BYTES", "huge")]).unwrap_err().var,
            "TRACE_MAX_BODY_BYTES"
        );
        assert_eq!(
            config(&[("TRACE_MAX_TEXT_BYTES", "0")]).unwrap_err().var,
            "TRACE_MAX_TEXT_BYTES"
        );
        assert_eq!(
            config(&[("TRACE_MAX_PENDING_RECORDS", "-1")])
                .unwrap_err()
                .var,
            "TRACE_MAX_PENDING_RECORDS"
        );
        for (var, bad) in [
            ("TRACE_ROTATE_INTERVAL", "ten minutes"),
            ("TRACE_DB_ROTATE_DAYS", "-1"),
            ("TRACE_DB_MAX_BYTES", "100KiB"),
            ("TRACE_DISK_MAX_PERCENT", "101"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
        for bad in ["0", "many", "2000000"] {
            assert_eq!(
                config(&[("TRACE_MAX_RECORDS_PER_REQUEST", bad)])
                    .unwrap_err()
                    .var,
                "TRACE_MAX_RECORDS_PER_REQUEST"
            );
        }
        let c = config(&[("TRACE_MAX_RECORDS_PER_REQUEST", "512")]).expect("valid");
        assert_eq!(c.max_records_per_request, 512);
    }

    #[test]
    fn rotation_defaults_and_zero_days() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.rotation.interval, Duration::from_secs(600));
        assert_eq!(c.rotation.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.rotation.max_db_bytes, 512 << 20);
        assert_eq!(c.rotation.disk_max_percent, 90.0);
        let c = config(&[
            ("TRACE_DB_ROTATE_DAYS", "0"),
            ("TRACE_DB_MAX_BYTES", "2GiB"),
        ])
        .expect("valid");
        assert_eq!(c.rotation.max_age, None, "0 turns age rotation off");
        assert_eq!(c.rotation.max_db_bytes, 2 << 30);
    }

    #[test]
    fn request_timeout_and_inflight_budget_have_defaults_and_bounds() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.max_inflight_body_bytes, 16 * 1024 * 1024);
        let c = config(&[
            ("TRACE_REQUEST_TIMEOUT", "1s"),
            ("TRACE_MAX_INFLIGHT_BODY_BYTES", "64MiB"),
        ])
        .expect("valid");
        assert_eq!(c.request_timeout, Duration::from_secs(1));
        assert_eq!(c.max_inflight_body_bytes, 64 * 1024 * 1024);
        for bad in ["0s", "500ms", "2h", "soon"] {
            let e = config(&[("TRACE_REQUEST_TIMEOUT", bad)]).unwrap_err();
            assert_eq!(e.var, "TRACE_REQUEST_TIMEOUT", "{bad}");
            assert!(e.to_string().contains("like 10s"), "{e}");
        }
        for bad in ["100", "lots", "8GiB"] {
            let e = config(&[("TRACE_MAX_INFLIGHT_BODY_BYTES", bad)]).unwrap_err();
            assert_eq!(e.var, "TRACE_MAX_INFLIGHT_BODY_BYTES", "{bad}");
        }
    }

    #[test]
    fn a_prices_file_is_read_at_start_up_and_a_bad_one_named() {
        let c = config(&[]).expect("defaults are valid");
        assert!(c.prices_file.is_none());
        assert_eq!(c.prices.len(), PriceTable::builtin().len());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("prices.txt");
        std::fs::write(&path, "# mine\nmyproxy my-model 1 2\n").expect("write");
        let shown = path.display().to_string();
        let c = config(&[("TRACE_PRICES_FILE", &shown)]).expect("valid");
        assert_eq!(c.prices_file.as_deref(), Some(path.as_path()));
        assert_eq!(c.prices.len(), PriceTable::builtin().len() + 1);
        assert_eq!(
            c.prices.lookup("myproxy", "my-model").map(|r| r.output),
            Some(2.0)
        );

        std::fs::write(&path, "# mine\n\nmyproxy my-model 1 two\n").expect("write");
        let e = config(&[("TRACE_PRICES_FILE", &shown)]).unwrap_err();
        assert_eq!(e.var, "TRACE_PRICES_FILE");
        let line = e.to_string();
        assert!(
            line.contains(&format!("TRACE_PRICES_FILE={shown:?}")),
            "{line}"
        );
        assert!(line.contains("line 3, field output"), "{line}");

        let missing = dir.path().join("absent.txt").display().to_string();
        let e = config(&[("TRACE_PRICES_FILE", &missing)]).unwrap_err();
        assert!(e.to_string().contains("cannot read the file"), "{e}");

        let c = config(&[("TRACE_PRICES_FILE", " ")]).expect("blank is unset");
        assert!(c.prices_file.is_none());
    }

    #[test]
    fn the_token_never_appears_in_errors_or_debug_output() {
        let e = config(&[("TRACE_INGEST_TOKEN", "sec ret")]).unwrap_err();
        assert!(!e.to_string().contains("sec ret"));
        let c = config(&[("TRACE_INGEST_TOKEN", "s3cret")]).expect("valid");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
