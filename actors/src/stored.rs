//! Stored rows read back, typed per table, for the pusher's two encoders
//! (`push::native`, `push::otlp`).
//!
//! Each table's columns are named once here: in its `SELECT` list, read by
//! name into a typed struct, and (for the native format, which sends spans,
//! events and metric points as the row itself) written back out under the
//! same names. A column that is renamed or dropped is an error naming it,
//! never a silent null on the wire.
//!
//! Where a record type of [`crate::records`] holds exactly what a table
//! holds (spans, events, metric points), the row carries it; LLM calls and
//! errors have their own rows, since what the store adds to them (the cost's
//! source, the cut fields as text) is not part of the record.

use rusqlite::Row;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::query::QueryError;
use crate::records::{
    EventRecord, JsonObject, MetricKind, MetricPoint, OtlpOrigin, SpanRecord, Table, Temporality,
};

/// A row of any record table, as push reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredRow {
    /// A row of `llm_calls`.
    LlmCall(LlmCallRow),
    /// A row of `errors`.
    Error(ErrorRow),
    /// A row of `events`.
    Event(EventRow),
    /// A row of `metric_points`.
    MetricPoint(MetricRow),
    /// A row of `spans`.
    Span(SpanRow),
}

/// The columns every record table has besides the record itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RowMeta {
    /// The row id, which the push cursor follows.
    pub id: i64,
    /// When the daemon received the record, unix ns.
    pub received_ns: i64,
    /// The agent the record was stamped with.
    pub agent_id: String,
}

/// A row of `llm_calls`: the Go sidecar's fields plus what the store adds.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmCallRow {
    /// Id, receive time and agent.
    pub meta: RowMeta,
    /// When the call happened, unix ns.
    pub time_ns: i64,
    /// What the row was made from (`native`, `otlp_span`, `otlp_metric`).
    pub source: String,
    /// The call's trace.
    pub trace_id: String,
    /// The span it was read from, for OTLP-derived rows.
    pub span_id: Option<String>,
    /// The agent's session.
    pub session_id: Option<String>,
    /// The LLM provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The prompt text.
    pub input_text: Option<String>,
    /// The completion text.
    pub output_text: Option<String>,
    /// Uncached input tokens.
    pub prompt_tokens: Option<i64>,
    /// Output tokens.
    pub completion_tokens: Option<i64>,
    /// All tokens.
    pub total_tokens: Option<i64>,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: Option<i64>,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: Option<i64>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Wall time in milliseconds.
    pub latency_ms: Option<f64>,
    /// `ok` or what the sender said.
    pub status: String,
    /// The kind of failure.
    pub error_type: Option<String>,
    /// The agent's channel.
    pub channel: Option<String>,
    /// Free-form sender data.
    pub metadata: Option<JsonObject>,
    /// The names of the text fields that were cut, comma-separated.
    pub truncated: Option<String>,
    /// Where the cost came from (`reported`, `estimated`, `unknown`).
    pub cost_source: String,
}

/// A row of `errors`.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRow {
    /// Id, receive time and agent.
    pub meta: RowMeta,
    /// When the error happened, unix ns.
    pub time_ns: i64,
    /// Where it came from (`native`, `otlp`).
    pub source: String,
    /// Its trace, when known.
    pub trace_id: Option<String>,
    /// Its session, when known.
    pub session_id: Option<String>,
    /// A short class of error.
    pub error_type: String,
    /// The human message.
    pub message: String,
    /// The stack.
    pub stack_trace: Option<String>,
    /// `error` or what the sender said.
    pub severity: String,
    /// Free-form sender data.
    pub metadata: Option<JsonObject>,
    /// The names of the text fields that were cut, comma-separated.
    pub truncated: Option<String>,
}

/// A row of `events`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Id, receive time and agent.
    pub meta: RowMeta,
    /// Where it came from (`native`, `otlp`).
    pub source: String,
    /// The event; its `time_ns` is always set, and its `origin` always
    /// present (with whichever of its columns are set).
    pub event: EventRecord,
}

/// A row of `metric_points`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// Id, receive time and agent.
    pub meta: RowMeta,
    /// Where it came from (`native`, `otlp`, `host`).
    pub source: String,
    /// The point; its `time_ns` is always set, and its `origin` always
    /// present (with whichever of its columns are set).
    pub point: MetricPoint,
}

/// A row of `spans`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    /// Id, receive time and agent.
    pub meta: RowMeta,
    /// The span.
    pub span: SpanRecord,
}

impl StoredRow {
    /// The row id.
    pub fn id(&self) -> i64 {
        self.meta().id
    }

    fn meta(&self) -> &RowMeta {
        match self {
            StoredRow::LlmCall(r) => &r.meta,
            StoredRow::Error(r) => &r.meta,
            StoredRow::Event(r) => &r.meta,
            StoredRow::MetricPoint(r) => &r.meta,
            StoredRow::Span(r) => &r.meta,
        }
    }

    /// The columns `from_row` reads from `table`, for its `SELECT`.
    pub fn columns(table: Table) -> &'static str {
        match table {
            Table::LlmCalls => {
                "id, time_ns, received_ns, agent_id, source, trace_id, span_id, session_id, \
                 provider, model, input_text, output_text, prompt_tokens, completion_tokens, \
                 total_tokens, cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, \
                 status, error_type, channel, metadata, truncated, cost_source"
            }
            Table::Errors => {
                "id, time_ns, received_ns, agent_id, source, trace_id, session_id, error_type, \
                 message, stack_trace, severity, metadata, truncated"
            }
            Table::Events => {
                "id, time_ns, received_ns, agent_id, source, name, severity, body, trace_id, \
                 span_id, attributes, severity_number, service_name, resource, scope_name, \
                 scope_version"
            }
            Table::MetricPoints => {
                "id, time_ns, start_time_ns, received_ns, agent_id, source, name, kind, unit, \
                 value, temporality, is_monotonic, data, attributes, service_name, resource, \
                 scope_name, scope_version"
            }
            Table::Spans => {
                "id, received_ns, agent_id, trace_id, span_id, parent_span_id, name, kind, \
                 start_ns, end_ns, status_code, status_message, service_name, resource, \
                 scope_name, scope_version, attributes, events, links"
            }
        }
    }

    /// Reads a row of `table` selected with [`StoredRow::columns`].
    pub fn from_row(table: Table, row: &Row<'_>) -> Result<StoredRow, QueryError> {
        let meta = RowMeta {
            id: row.get("id")?,
            received_ns: row.get("received_ns")?,
            agent_id: row.get("agent_id")?,
        };
        let cell = Cell {
            table,
            id: meta.id,
            row,
        };
        Ok(match table {
            Table::LlmCalls => StoredRow::LlmCall(LlmCallRow {
                time_ns: row.get("time_ns")?,
                source: row.get("source")?,
                trace_id: row.get("trace_id")?,
                span_id: row.get("span_id")?,
                session_id: row.get("session_id")?,
                provider: row.get("provider")?,
                model: row.get("model")?,
                input_text: row.get("input_text")?,
                output_text: row.get("output_text")?,
                prompt_tokens: row.get("prompt_tokens")?,
                completion_tokens: row.get("completion_tokens")?,
                total_tokens: row.get("total_tokens")?,
                cache_read_tokens: row.get("cache_read_tokens")?,
                cache_write_tokens: row.get("cache_write_tokens")?,
                cost_usd: row.get("cost_usd")?,
                latency_ms: row.get("latency_ms")?,
                status: row.get("status")?,
                error_type: row.get("error_type")?,
                channel: row.get("channel")?,
                metadata: cell.json("metadata")?,
                truncated: row.get("truncated")?,
                cost_source: row.get("cost_source")?,
                meta,
            }),
            Table::Errors => StoredRow::Error(ErrorRow {
                time_ns: row.get("time_ns")?,
                source: row.get("source")?,
                trace_id: row.get("trace_id")?,
                session_id: row.get("session_id")?,
                error_type: row.get("error_type")?,
                message: row.get("message")?,
                stack_trace: row.get("stack_trace")?,
                severity: row.get("severity")?,
                metadata: cell.json("metadata")?,
                truncated: row.get("truncated")?,
                meta,
            }),
            Table::Events => StoredRow::Event(EventRow {
                source: row.get("source")?,
                event: EventRecord {
                    time_ns: Some(row.get("time_ns")?),
                    name: row.get("name")?,
                    severity: row.get("severity")?,
                    body: row.get("body")?,
                    trace_id: row.get("trace_id")?,
                    span_id: row.get("span_id")?,
                    attributes: cell.json("attributes")?,
                    severity_number: row.get("severity_number")?,
                    origin: Some(cell.origin()?),
                },
                meta,
            }),
            Table::MetricPoints => StoredRow::MetricPoint(MetricRow {
                source: row.get("source")?,
                point: MetricPoint {
                    time_ns: Some(row.get("time_ns")?),
                    start_time_ns: row.get("start_time_ns")?,
                    name: row.get("name")?,
                    value: row.get("value")?,
                    unit: row.get("unit")?,
                    kind: cell.parsed("kind", MetricKind::from_name)?,
                    temporality: cell.parsed_opt("temporality", Temporality::from_i32)?,
                    monotonic: row.get("is_monotonic")?,
                    data: cell.json("data")?,
                    attributes: cell.json("attributes")?,
                    origin: Some(cell.origin()?),
                },
                meta,
            }),
            Table::Spans => StoredRow::Span(SpanRow {
                span: SpanRecord {
                    trace_id: row.get("trace_id")?,
                    span_id: row.get("span_id")?,
                    parent_span_id: row.get("parent_span_id")?,
                    name: row.get("name")?,
                    kind: row.get("kind")?,
                    start_ns: row.get("start_ns")?,
                    end_ns: row.get("end_ns")?,
                    status_code: row.get("status_code")?,
                    status_message: row.get("status_message")?,
                    attributes: cell.json("attributes")?,
                    events: cell.json("events")?,
                    links: cell.json("links")?,
                    origin: cell.origin()?,
                },
                meta,
            }),
        })
    }
}

/// Reads the columns of one row that need more than `Row::get`, naming the
/// table, row and column in what goes wrong.
struct Cell<'a, 'r> {
    table: Table,
    id: i64,
    row: &'a Row<'r>,
}

impl Cell<'_, '_> {
    fn bad(&self, column: &'static str, problem: String) -> QueryError {
        QueryError::Column {
            table: self.table.name(),
            column,
            id: self.id,
            problem,
        }
    }

    /// A column of JSON text.
    fn json<T: DeserializeOwned>(&self, column: &'static str) -> Result<Option<T>, QueryError> {
        let text: Option<String> = self.row.get(column)?;
        text.map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| self.bad(column, format!("not the JSON expected: {e}")))
    }

    /// A NOT NULL column holding one of a fixed set of names.
    fn parsed<T>(
        &self,
        column: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, QueryError> {
        let text: String = self.row.get(column)?;
        parse(&text).ok_or_else(|| self.bad(column, format!("unknown value {text:?}")))
    }

    /// A column holding one of a fixed set of numbers, or NULL.
    fn parsed_opt<T>(
        &self,
        column: &'static str,
        parse: fn(i32) -> Option<T>,
    ) -> Result<Option<T>, QueryError> {
        let n: Option<i32> = self.row.get(column)?;
        n.map(|n| parse(n).ok_or_else(|| self.bad(column, format!("unknown value {n}"))))
            .transpose()
    }

    /// The resource and scope columns.
    fn origin(&self) -> Result<OtlpOrigin, QueryError> {
        Ok(OtlpOrigin {
            service_name: self.row.get("service_name")?,
            resource: self.json("resource")?,
            scope_name: self.row.get("scope_name")?,
            scope_version: self.row.get("scope_version")?,
        })
    }
}

/// Builds a row's JSON object, one column at a time.
#[derive(Default)]
struct Columns(Map<String, Value>);

impl Columns {
    fn put(mut self, column: &str, value: impl Into<Value>) -> Self {
        self.0.insert(column.to_string(), value.into());
        self
    }

    fn meta(self, meta: &RowMeta) -> Self {
        self.put("id", meta.id)
            .put("received_ns", meta.received_ns)
            .put("agent_id", meta.agent_id.as_str())
    }

    fn origin(self, origin: Option<&OtlpOrigin>) -> Self {
        self.put(
            "service_name",
            origin.and_then(|o| o.service_name.as_deref()),
        )
        .put("resource", origin.and_then(|o| o.resource.clone()))
        .put("scope_name", origin.and_then(|o| o.scope_name.as_deref()))
        .put(
            "scope_version",
            origin.and_then(|o| o.scope_version.as_deref()),
        )
    }
}

impl StoredRow {
    /// The row as a JSON object, one member per column under its name (JSON
    /// columns as JSON, NULL as null): what the native format sends as a
    /// span's, event's or metric point's data, and what the OTLP batch's
    /// byte budget is estimated from.
    pub fn to_json(&self) -> Map<String, Value> {
        let columns = Columns::default().meta(self.meta());
        match self {
            StoredRow::LlmCall(r) => columns
                .put("time_ns", r.time_ns)
                .put("source", r.source.as_str())
                .put("trace_id", r.trace_id.as_str())
                .put("span_id", r.span_id.as_deref())
                .put("session_id", r.session_id.as_deref())
                .put("provider", r.provider.as_str())
                .put("model", r.model.as_str())
                .put("input_text", r.input_text.as_deref())
                .put("output_text", r.output_text.as_deref())
                .put("prompt_tokens", r.prompt_tokens)
                .put("completion_tokens", r.completion_tokens)
                .put("total_tokens", r.total_tokens)
                .put("cache_read_tokens", r.cache_read_tokens)
                .put("cache_write_tokens", r.cache_write_tokens)
                .put("cost_usd", r.cost_usd)
                .put("latency_ms", r.latency_ms)
                .put("status", r.status.as_str())
                .put("error_type", r.error_type.as_deref())
                .put("channel", r.channel.as_deref())
                .put("metadata", r.metadata.clone())
                .put("truncated", r.truncated.as_deref())
                .put("cost_source", r.cost_source.as_str()),
            StoredRow::Error(r) => columns
                .put("time_ns", r.time_ns)
                .put("source", r.source.as_str())
                .put("trace_id", r.trace_id.as_deref())
                .put("session_id", r.session_id.as_deref())
                .put("error_type", r.error_type.as_str())
                .put("message", r.message.as_str())
                .put("stack_trace", r.stack_trace.as_deref())
                .put("severity", r.severity.as_str())
                .put("metadata", r.metadata.clone())
                .put("truncated", r.truncated.as_deref()),
            StoredRow::Event(r) => {
                let e = &r.event;
                columns
                    .put("time_ns", e.time_ns)
                    .put("source", r.source.as_str())
                    .put("name", e.name.as_str())
                    .put("severity", e.severity.as_str())
                    .put("body", e.body.as_deref())
                    .put("trace_id", e.trace_id.as_deref())
                    .put("span_id", e.span_id.as_deref())
                    .put("attributes", e.attributes.clone())
                    .put("severity_number", e.severity_number)
                    .origin(e.origin.as_ref())
            }
            StoredRow::MetricPoint(r) => {
                let p = &r.point;
                columns
                    .put("time_ns", p.time_ns)
                    .put("start_time_ns", p.start_time_ns)
                    .put("source", r.source.as_str())
                    .put("name", p.name.as_str())
                    .put("kind", p.kind.as_str())
                    .put("unit", p.unit.as_deref())
                    .put("value", p.value)
                    .put("temporality", p.temporality.map(Temporality::as_i32))
                    .put("is_monotonic", p.monotonic.map(i64::from))
                    .put("data", p.data.clone())
                    .put("attributes", p.attributes.clone())
                    .origin(p.origin.as_ref())
            }
            StoredRow::Span(r) => {
                let s = &r.span;
                columns
                    .put("trace_id", s.trace_id.as_str())
                    .put("span_id", s.span_id.as_str())
                    .put("parent_span_id", s.parent_span_id.as_deref())
                    .put("name", s.name.as_str())
                    .put("kind", s.kind)
                    .put("start_ns", s.start_ns)
                    .put("end_ns", s.end_ns)
                    .put("status_code", s.status_code)
                    .put("status_message", s.status_message.as_deref())
                    .origin(Some(&s.origin))
                    .put("attributes", s.attributes.clone())
                    .put("events", s.events.clone())
                    .put("links", s.links.clone())
            }
        }
        .0
    }
}
