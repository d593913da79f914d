//! The records the daemon stores, as they travel from the wire decoders
//! through the [`IngestActor`](crate::ingest::IngestActor) to the
//! [`StoreActor`](crate::store::StoreActor).
//!
//! Timestamps are unix nanoseconds in an `i64` everywhere (the OTLP unit; good
//! until the year 2262). A record's optional `time_ns` is when the thing
//! happened; when the sender leaves it out the receive time is used.

use std::sync::Arc;

use serde_json::{Map, Value};
use strum::EnumCount;

/// A JSON object kept as-is (metadata, attributes).
pub type JsonObject = Map<String, Value>;

/// The largest token count one field of one LLM row may hold: a billion, far
/// beyond any real call, and small enough that `sum()` over a table of up to
/// nine billion rows cannot overflow SQLite's 64-bit integers. Native records
/// beyond it are refused; OTLP-derived counts beyond it are left out of the
/// row.
pub const MAX_TOKENS: i64 = 1_000_000_000;

/// One LLM call, with the field names of the earlier Go sidecar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmCall {
    /// When the call happened; `None` means "when it was received".
    pub time_ns: Option<i64>,
    /// Correlates the call with a trace; a UUID is assigned at ingest if absent.
    pub trace_id: Option<String>,
    /// The agent's conversation or session, when the sender knows it.
    pub session_id: Option<String>,
    /// The LLM provider (`anthropic`, `openai`, ...). Required.
    pub provider: String,
    /// The model name. Required.
    pub model: String,
    /// The prompt text, cut at `TRACE_MAX_TEXT_BYTES`.
    pub input_text: Option<String>,
    /// The completion text, cut at `TRACE_MAX_TEXT_BYTES`.
    pub output_text: Option<String>,
    /// Input tokens billed at the input rate: **uncached** input only, the
    /// cache's tokens being `cache_read_tokens` and `cache_write_tokens`
    /// (see `llm_view`).
    pub prompt_tokens: Option<i64>,
    /// Output tokens billed.
    pub completion_tokens: Option<i64>,
    /// All tokens billed: uncached input, cache read, cache write and output.
    pub total_tokens: Option<i64>,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: Option<i64>,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: Option<i64>,
    /// Cost of the call in US dollars.
    pub cost_usd: Option<f64>,
    /// Wall time of the call in milliseconds.
    pub latency_ms: Option<f64>,
    /// `ok` unless the sender says otherwise.
    pub status: String,
    /// The kind of failure, for failed calls.
    pub error_type: Option<String>,
    /// The agent's channel (telegram, slack, ...), from OpenClaw telemetry.
    pub channel: Option<String>,
    /// The span the call was read from, for OTLP-derived rows.
    pub span_id: Option<String>,
    /// Free-form sender data.
    pub metadata: Option<JsonObject>,
    /// Names of the text fields cut at `TRACE_MAX_TEXT_BYTES` (set at ingest).
    pub truncated: Vec<&'static str>,
    /// What the row was made from.
    pub origin: LlmOrigin,
}

/// What an LLM-call row was made from; stored in `llm_calls.source`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LlmOrigin {
    /// A record posted to the native API: one call.
    #[default]
    Native,
    /// An OTLP span carrying token usage: one call.
    Span,
    /// The increase of OpenClaw's usage metrics (`openclaw.tokens`,
    /// `openclaw.cost.usd`) since their previous export: usage over an
    /// interval, not one call.
    Metric,
    /// An assistant message in OpenClaw's own transcript database: one call.
    Transcript,
}

impl LlmOrigin {
    /// The name stored in the `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            LlmOrigin::Native => "native",
            LlmOrigin::Span => "otlp_span",
            LlmOrigin::Metric => "otlp_metric",
            LlmOrigin::Transcript => "openclaw_transcript",
        }
    }
}

/// One error the agent reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorRecord {
    /// When the error happened; `None` means "when it was received".
    pub time_ns: Option<i64>,
    /// The trace the error belongs to, when known.
    pub trace_id: Option<String>,
    /// The session the error belongs to, when known.
    pub session_id: Option<String>,
    /// A short class of error (`TimeoutError`). Required.
    pub error_type: String,
    /// The human message. Required; cut at `TRACE_MAX_TEXT_BYTES`.
    pub message: String,
    /// The stack, cut at `TRACE_MAX_TEXT_BYTES`.
    pub stack_trace: Option<String>,
    /// `error` unless the sender says otherwise.
    pub severity: String,
    /// Free-form sender data.
    pub metadata: Option<JsonObject>,
    /// Names of the text fields cut at `TRACE_MAX_TEXT_BYTES` (set at ingest).
    pub truncated: Vec<&'static str>,
}

/// A named custom event (and, from OTLP, a log record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRecord {
    /// When the event happened; `None` means "when it was received".
    pub time_ns: Option<i64>,
    /// The event's name. Required.
    pub name: String,
    /// `info` unless the sender says otherwise.
    pub severity: String,
    /// Free text that goes with the event (an OTLP log body).
    pub body: Option<String>,
    /// The trace the event belongs to, when known.
    pub trace_id: Option<String>,
    /// The span the event belongs to, when known.
    pub span_id: Option<String>,
    /// Free-form sender data.
    pub attributes: Option<JsonObject>,
    /// OTLP severity number (1-24), for log records.
    pub severity_number: Option<i32>,
    /// Where an OTLP record came from (shared by the records of one scope).
    pub origin: Option<Arc<OtlpOrigin>>,
}

/// The resource and instrumentation scope an OTLP item was exported under.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtlpOrigin {
    /// The resource's `service.name`.
    pub service_name: Option<String>,
    /// All resource attributes.
    pub resource: Option<JsonObject>,
    /// The instrumentation scope's name.
    pub scope_name: Option<String>,
    /// The instrumentation scope's version.
    pub scope_version: Option<String>,
}

/// How a metric point's value is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum MetricKind {
    /// The value at a moment (may go down, may be negative).
    Gauge,
    /// Native: a non-negative increase since the previous point of the series.
    Counter,
    /// OTLP sum (see `temporality` and `monotonic`).
    Sum,
    /// OTLP histogram; `value` is its sum, the buckets are in `data`.
    Histogram,
    /// OTLP exponential histogram; `value` is its sum, the buckets in `data`.
    ExponentialHistogram,
    /// OTLP summary; `value` is its sum, the quantiles in `data`.
    Summary,
}

impl MetricKind {
    /// The name stored in the `kind` column and used on the wire.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The kind a stored name stands for (the inverse of [`MetricKind::as_str`]).
    pub fn from_name(name: &str) -> Option<MetricKind> {
        name.parse().ok()
    }
}

/// OTLP aggregation temporality of a sum or histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Each point covers the time since the previous point.
    Delta,
    /// Each point covers the time since the series' start time.
    Cumulative,
}

impl Temporality {
    /// The OTLP enum value, stored in `metric_points.temporality`.
    pub fn as_i32(self) -> i32 {
        match self {
            Temporality::Delta => 1,
            Temporality::Cumulative => 2,
        }
    }

    /// The temporality an OTLP enum value stands for; `None` for
    /// "unspecified" and unknown values.
    pub fn from_i32(n: i32) -> Option<Temporality> {
        match n {
            1 => Some(Temporality::Delta),
            2 => Some(Temporality::Cumulative),
            _ => None,
        }
    }
}

/// One metric data point.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// When the value was observed; `None` means "when it was received".
    pub time_ns: Option<i64>,
    /// Start of the interval a sum or histogram covers (OTLP).
    pub start_time_ns: Option<i64>,
    /// Metric name (`queue.depth`). Required.
    pub name: String,
    /// The value (a histogram's or summary's sum); `None` when there is none
    /// or it is not a finite number.
    pub value: Option<f64>,
    /// Unit, UCUM style (`ms`, `By`, `1`), when given.
    pub unit: Option<String>,
    /// What kind of point.
    pub kind: MetricKind,
    /// Delta or cumulative, for sums and histograms.
    pub temporality: Option<Temporality>,
    /// Whether a sum only goes up.
    pub monotonic: Option<bool>,
    /// Buckets, counts and quantiles of histograms and summaries.
    pub data: Option<serde_json::Value>,
    /// Dimensions of the series.
    pub attributes: Option<JsonObject>,
    /// Resource and scope, for OTLP points (shared by the points of one
    /// scope).
    pub origin: Option<Arc<OtlpOrigin>>,
}

/// One OTLP span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanRecord {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits.
    pub span_id: String,
    /// The parent's span id, absent for a root span.
    pub parent_span_id: Option<String>,
    /// The operation's name (`openclaw.model.usage`).
    pub name: String,
    /// OTLP span kind (0 unspecified, 1 internal, 2 server, 3 client, ...).
    pub kind: i32,
    /// Start, unix ns.
    pub start_ns: i64,
    /// End, unix ns.
    pub end_ns: i64,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// The status message, when there is one.
    pub status_message: Option<String>,
    /// The span's attributes.
    pub attributes: Option<JsonObject>,
    /// Span events, as `[{"time_ns", "name", "attributes"}]`.
    pub events: Option<Vec<serde_json::Value>>,
    /// Links, as `[{"trace_id", "span_id", "attributes"}]`.
    pub links: Option<Vec<serde_json::Value>>,
    /// Resource and scope, shared by the spans of one scope: an export
    /// repeats them over all its spans, so they are neither copied per span
    /// nor, in the store, serialized again.
    pub origin: Arc<OtlpOrigin>,
}

/// Where a record came from, stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The daemon's own JSON API (`/v1/traces` and friends with native records).
    Native,
    /// OTLP/HTTP, protobuf or JSON.
    Otlp,
    /// The daemon's own host sampler.
    Host,
    /// OpenClaw's transcript database, followed by the daemon.
    OpenClawTranscript,
    /// OpenClaw's gateway log file, followed by the daemon.
    OpenClawLog,
}

impl Source {
    /// The name stored in the `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Native => "native",
            Source::Otlp => "otlp",
            Source::Host => "host",
            Source::OpenClawTranscript => "openclaw_transcript",
            Source::OpenClawLog => "openclaw_log",
        }
    }
}

/// Records of one kind from one request: stored all together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    /// Rows for `llm_calls`.
    LlmCalls(Vec<LlmCall>),
    /// Rows for `errors`.
    Errors(Vec<ErrorRecord>),
    /// Rows for `events`.
    Events(Vec<EventRecord>),
    /// Rows for `metric_points`.
    MetricPoints(Vec<MetricPoint>),
    /// Rows for `spans`.
    Spans(Vec<SpanRecord>),
}

impl Batch {
    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        match self {
            Batch::LlmCalls(v) => v.len(),
            Batch::Errors(v) => v.len(),
            Batch::Events(v) => v.len(),
            Batch::MetricPoints(v) => v.len(),
            Batch::Spans(v) => v.len(),
        }
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table the batch goes to.
    pub fn table(&self) -> Table {
        match self {
            Batch::LlmCalls(_) => Table::LlmCalls,
            Batch::Errors(_) => Table::Errors,
            Batch::Events(_) => Table::Events,
            Batch::MetricPoints(_) => Table::MetricPoints,
            Batch::Spans(_) => Table::Spans,
        }
    }
}

/// The tables that hold records (and so have a push cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumCount, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Table {
    /// LLM calls, native or derived from OTLP.
    LlmCalls,
    /// Errors reported by the agent.
    Errors,
    /// Custom events and OTLP log records.
    Events,
    /// Custom, OTLP and host metric points.
    MetricPoints,
    /// OTLP spans.
    Spans,
}

impl Table {
    /// Every record table, in declaration order (that of [`Table::index`]).
    /// Its length is [`Table::COUNT`], so a new table that is not added here
    /// does not compile.
    pub const ALL: [Table; Table::COUNT] = [
        Table::LlmCalls,
        Table::Errors,
        Table::Events,
        Table::MetricPoints,
        Table::Spans,
    ];

    /// The SQL name of the table.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Position in [`Table::ALL`], for per-table counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the ingest stage adds to every record of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    /// The agent this daemon watches (`TRACE_AGENT_ID`).
    pub agent_id: String,
    /// When the daemon received the request, unix ns.
    pub received_ns: i64,
    /// Where the records came from.
    pub source: Source,
    /// What OpenClaw's metric names start with (`TRACE_OPENCLAW_METRIC_PREFIX`,
    /// its `metricNamePrefix`): the LLM view reads the usage metrics of an
    /// OTLP batch under these names.
    pub openclaw_metric_prefix: std::sync::Arc<str>,
}

/// Cuts `text` to at most `max` bytes on a character boundary; says whether
/// anything was cut.
pub fn truncate_text(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut s = "héllo".to_string(); // 'é' is two bytes: h(0) é(1..3) l(3)
        assert!(truncate_text(&mut s, 2));
        assert_eq!(s, "h");
        let mut s = "abc".to_string();
        assert!(!truncate_text(&mut s, 3));
        assert_eq!(s, "abc");
    }
}
