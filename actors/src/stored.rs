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

use std::cell::RefCell;
use std::sync::Arc;

use rusqlite::types::FromSql;
use rusqlite::Row;
use serde_json::{Map, Value};

use crate::query::QueryError;
use crate::records::{
    EventRecord, JsonObject, MetricKind, MetricPoint, OtlpOrigin, SpanRecord, Table, Temporality,
};

/// A row of any record table, as push reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredRow {
    /// A row of `llm_calls`: boxed, as it is twice the size of the others
    /// and a push batch holds one table's rows, so spans, events and
    /// metric points would each carry its size.
    LlmCall(Box<LlmCallRow>),
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
        let cells = Cells {
            table,
            id: 0,
            row,
            error: RefCell::new(None),
        };
        let meta = RowMeta {
            id: cells.get("id"),
            received_ns: cells.get("received_ns"),
            agent_id: cells.get("agent_id"),
        };
        let cells = Cells {
            id: meta.id,
            ..cells
        };
        let stored = match table {
            Table::LlmCalls => StoredRow::LlmCall(Box::new(LlmCallRow {
                time_ns: cells.get("time_ns"),
                source: cells.get("source"),
                trace_id: cells.get("trace_id"),
                span_id: cells.get("span_id"),
                session_id: cells.get("session_id"),
                provider: cells.get("provider"),
                model: cells.get("model"),
                input_text: cells.get("input_text"),
                output_text: cells.get("output_text"),
                prompt_tokens: cells.get("prompt_tokens"),
                completion_tokens: cells.get("completion_tokens"),
                total_tokens: cells.get("total_tokens"),
                cache_read_tokens: cells.get("cache_read_tokens"),
                cache_write_tokens: cells.get("cache_write_tokens"),
                cost_usd: cells.get("cost_usd"),
                latency_ms: cells.get("latency_ms"),
                status: cells.get("status"),
                error_type: cells.get("error_type"),
                channel: cells.get("channel"),
                metadata: cells.json("metadata"),
                truncated: cells.get("truncated"),
                cost_source: cells.get("cost_source"),
                meta,
            })),
            Table::Errors => StoredRow::Error(ErrorRow {
                time_ns: cells.get("time_ns"),
                source: cells.get("source"),
                trace_id: cells.get("trace_id"),
                session_id: cells.get("session_id"),
                error_type: cells.get("error_type"),
                message: cells.get("message"),
                stack_trace: cells.get("stack_trace"),
                severity: cells.get("severity"),
                metadata: cells.json("metadata"),
                truncated: cells.get("truncated"),
                meta,
            }),
            Table::Events => StoredRow::Event(EventRow {
                source: cells.get("source"),
                event: EventRecord {
                    time_ns: Some(cells.get("time_ns")),
                    name: cells.get("name"),
                    severity: cells.get("severity"),
                    body: cells.get("body"),
                    trace_id: cells.get("trace_id"),
                    span_id: cells.get("span_id"),
                    attributes: cells.json("attributes"),
                    severity_number: cells.get("severity_number"),
                    origin: Some(cells.origin()),
                },
                meta,
            }),
            Table::MetricPoints => StoredRow::MetricPoint(MetricRow {
                source: cells.get("source"),
                point: MetricPoint {
                    time_ns: Some(cells.get("time_ns")),
                    start_time_ns: cells.get("start_time_ns"),
                    name: cells.get("name"),
                    value: cells.get("value"),
                    unit: cells.get("unit"),
                    kind: cells.kind(),
                    temporality: cells.temporality(),
                    monotonic: cells.get("is_monotonic"),
                    data: cells.json("data"),
                    attributes: cells.json("attributes"),
                    origin: Some(cells.origin()),
                },
                meta,
            }),
            Table::Spans => StoredRow::Span(SpanRow {
                span: SpanRecord {
                    trace_id: cells.get("trace_id"),
                    span_id: cells.get("span_id"),
                    parent_span_id: cells.get("parent_span_id"),
                    name: cells.get("name"),
                    kind: cells.get("kind"),
                    start_ns: cells.get("start_ns"),
                    end_ns: cells.get("end_ns"),
                    status_code: cells.get("status_code"),
                    status_message: cells.get("status_message"),
                    attributes: cells.json("attributes"),
                    events: cells.json("events"),
                    links: cells.json("links"),
                    origin: cells.origin(),
                },
                meta,
            }),
        };
        cells.finish(stored)
    }
}

/// Reads the cells of one row by column name. The first failure is kept
/// (naming the table, row and column) and defaults stand in for what could
/// not be read, so a row is read without an early return per column;
/// [`Cells::finish`] then gives the row or that failure.
struct Cells<'a, 'r> {
    table: Table,
    /// The row's id, once read.
    id: i64,
    row: &'a Row<'r>,
    error: RefCell<Option<QueryError>>,
}

impl Cells<'_, '_> {
    fn fail(&self, error: QueryError) {
        self.error.borrow_mut().get_or_insert(error);
    }

    fn bad(&self, column: &'static str, problem: String) {
        self.fail(QueryError::Column {
            table: self.table.name(),
            column,
            id: self.id,
            problem,
        });
    }

    /// A column as SQLite hands it over.
    fn get<T: FromSql + Default>(&self, column: &str) -> T {
        self.row.get(column).unwrap_or_else(|e| {
            self.fail(QueryError::Sqlite(e));
            T::default()
        })
    }

    /// A column of JSON text.
    fn json<T: JsonColumn>(&self, column: &'static str) -> Option<T> {
        let text: Option<String> = self.get(column);
        // Parsed as a value, then taken apart: one JSON parser in the binary
        // for every column, rather than one per shape.
        let value: Value = match serde_json::from_str(&text?) {
            Ok(value) => value,
            Err(e) => {
                self.bad(column, format!("not JSON: {e}"));
                return None;
            }
        };
        let taken = T::from_value(value);
        if taken.is_none() {
            self.bad(column, format!("not {}", T::SHAPE));
        }
        taken
    }

    /// `metric_points.kind`.
    fn kind(&self) -> MetricKind {
        let name: String = self.get("kind");
        MetricKind::from_name(&name).unwrap_or_else(|| {
            self.bad("kind", format!("unknown value {name:?}"));
            MetricKind::Gauge
        })
    }

    /// `metric_points.temporality`.
    fn temporality(&self) -> Option<Temporality> {
        let n: Option<i32> = self.get("temporality");
        let temporality = n.and_then(Temporality::from_i32);
        if let (Some(n), None) = (n, temporality) {
            self.bad("temporality", format!("unknown value {n}"));
        }
        temporality
    }

    /// The resource and scope columns.
    fn origin(&self) -> Arc<OtlpOrigin> {
        Arc::new(OtlpOrigin {
            service_name: self.get("service_name"),
            resource: self.json("resource"),
            scope_name: self.get("scope_name"),
            scope_version: self.get("scope_version"),
        })
    }

    /// The row read, or the first thing that could not be.
    fn finish(self, row: StoredRow) -> Result<StoredRow, QueryError> {
        match self.error.into_inner() {
            Some(error) => Err(error),
            None => Ok(row),
        }
    }
}

/// What a JSON column holds.
trait JsonColumn: Sized {
    /// In words, for errors.
    const SHAPE: &'static str;
    /// Takes the value apart; `None` when it is not of this shape.
    fn from_value(value: Value) -> Option<Self>;
}

impl JsonColumn for Value {
    const SHAPE: &'static str = "JSON";
    fn from_value(value: Value) -> Option<Self> {
        Some(value)
    }
}

impl JsonColumn for JsonObject {
    const SHAPE: &'static str = "a JSON object";
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Object(object) => Some(object),
            _ => None,
        }
    }
}

impl JsonColumn for Vec<Value> {
    const SHAPE: &'static str = "a JSON array";
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Array(list) => Some(list),
            _ => None,
        }
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
                    .origin(e.origin.as_deref())
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
                    .origin(p.origin.as_deref())
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

#[cfg(test)]
mod tests {
    use crate::query::scan_unpushed;
    use crate::records::Table;
    use crate::schema::{open_writer, read_pool};

    /// What reading the first row of `table` says, after `sql` wrote it.
    fn read_error(sql: &str, table: Table) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = open_writer(&path).expect("open");
        conn.execute_batch(sql).expect("insert");
        let pool = read_pool(&path).expect("pool");
        match scan_unpushed(&pool, table, 0, 10, |_| true) {
            Ok(()) => "read".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_value_a_column_cannot_hold_is_an_error_naming_the_column() {
        let bad_json = read_error(
            "INSERT INTO llm_calls (time_ns, received_ns, agent_id, source, trace_id, provider,
                model, status, metadata) VALUES (1, 1, 'a', 'native', 't', 'p', 'm', 'ok', '{oops')",
            Table::LlmCalls,
        );
        assert!(
            bad_json.starts_with("llm_calls.metadata of row 1: not JSON"),
            "{bad_json}"
        );
        let not_an_object = read_error(
            "INSERT INTO errors (time_ns, received_ns, agent_id, source, error_type, message,
                severity, metadata) VALUES (1, 1, 'a', 'native', 'E', 'm', 'error', '[1]')",
            Table::Errors,
        );
        assert_eq!(not_an_object, "errors.metadata of row 1: not a JSON object");
        let unknown_kind = read_error(
            "INSERT INTO metric_points (time_ns, received_ns, agent_id, source, name, kind)
                VALUES (1, 1, 'a', 'native', 'n', 'bogus')",
            Table::MetricPoints,
        );
        assert_eq!(
            unknown_kind,
            "metric_points.kind of row 1: unknown value \"bogus\""
        );
        let wrong_type = read_error(
            "INSERT INTO spans (received_ns, agent_id, trace_id, span_id, name, kind, start_ns,
                end_ns, status_code) VALUES (1, 'a', 't', 's', 'n', 'not a number', 1, 2, 0)",
            Table::Spans,
        );
        assert!(wrong_type.contains("kind"), "{wrong_type}");
    }
}
