//! The native push format: the earlier Go sidecar's envelope
//! `{"events": [{"type": T, "data": {...}}]}`, plus `agent_id` and
//! `batch_id`.
//!
//! `llm_trace`, `error_event` and `system_metric` carry exactly the Go
//! sidecar's data fields, so an endpoint built for it takes them unchanged
//! (what the Go sidecar did not have, such as cache tokens or the channel,
//! rides in `metadata.openclaw_trace`). Spans, events and other metric points
//! go as `span`, `event` and `metric_point` with the stored row as data.
//! Every `data` has `trace_id` and `created_at` (unix ms) for deduplication.

use serde_json::{json, Map, Value};

use crate::metrics::names;
use crate::records::{MetricPoint, Table};
use crate::stored::{ErrorRow, LlmCallRow, StoredRow};

/// Builds the events of one batch, row by row, within a byte budget.
pub struct NativeBatch {
    table: Table,
    agent_id: String,
    /// Serialized events, comma-separated.
    body: Vec<u8>,
    /// Events in `body`.
    events: usize,
    /// Rows taken (a host sample is several rows, one event).
    rows: usize,
    /// Row ids covered.
    first_id: Option<i64>,
    last_id: i64,
    /// Uncompressed bytes allowed for the events.
    max_bytes: usize,
    /// A host sample being gathered.
    host: Option<HostGroup>,
    /// Set once a row did not fit; nothing more is taken.
    full: bool,
}

struct HostGroup {
    time_ns: i64,
    first_id: i64,
    last_id: i64,
    rows: usize,
    points: Vec<MetricPoint>,
}

/// Unix ns as the `created_at` of the Go sidecar (unix ms).
fn created_at(ns: i64) -> Value {
    json!(ns / 1_000_000)
}

impl NativeBatch {
    /// An empty batch of `table` rows.
    pub fn new(table: Table, agent_id: &str, max_bytes: usize) -> Self {
        NativeBatch {
            table,
            agent_id: agent_id.to_string(),
            body: Vec::new(),
            events: 0,
            rows: 0,
            first_id: None,
            last_id: 0,
            max_bytes,
            host: None,
            full: false,
        }
    }

    /// The ids the batch covers, once it has rows.
    pub fn id_range(&self) -> Option<(i64, i64)> {
        self.first_id.map(|f| (f, self.last_id))
    }

    /// Adds an event; false (and nothing added) when it would pass the byte
    /// budget and the batch already has something in it.
    fn add_event(&mut self, event: &Value, first_id: i64, last_id: i64, rows: usize) -> bool {
        let bytes = serde_json::to_vec(event).expect("a JSON value always serializes");
        if self.events > 0 && self.body.len() + 1 + bytes.len() > self.max_bytes {
            self.full = true;
            return false;
        }
        if self.events > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(&bytes);
        self.events += 1;
        self.rows += rows;
        self.first_id.get_or_insert(first_id);
        self.last_id = last_id;
        true
    }

    /// Offers a row; false when the batch is full (the row is not taken).
    /// `more_allowed` says whether the row limit still lets new events in;
    /// past it only the rows of a host sample already begun are taken.
    pub fn offer(&mut self, row: StoredRow, more_allowed: bool) -> bool {
        if self.full {
            return false;
        }
        let id = row.id();
        let row = match row {
            StoredRow::MetricPoint(m) if m.source == "host" => {
                return self.offer_host_point(id, m.point, more_allowed)
            }
            other => other,
        };
        // Anything else ends the host sample being gathered.
        if !self.flush_host() || !more_allowed {
            return false;
        }
        let event = self.event_of(row);
        self.add_event(&event, id, id, 1)
    }

    /// Adds a host point to the sample being gathered, or starts the next
    /// sample; false when the batch is full.
    fn offer_host_point(&mut self, id: i64, point: MetricPoint, more_allowed: bool) -> bool {
        let time_ns = point.time_ns.unwrap_or(0);
        if let Some(group) = self.host.as_mut().filter(|g| g.time_ns == time_ns) {
            group.last_id = id;
            group.rows += 1;
            group.points.push(point);
            return true;
        }
        if !self.flush_host() || !more_allowed {
            return false;
        }
        self.host = Some(HostGroup {
            time_ns,
            first_id: id,
            last_id: id,
            rows: 1,
            points: vec![point],
        });
        true
    }

    /// Turns the host sample being gathered into one `system_metric` event.
    fn flush_host(&mut self) -> bool {
        let Some(group) = self.host.take() else {
            return true;
        };
        let event = system_metric(&self.agent_id, group.time_ns, &group.points);
        // When it does not fit, its rows stay unpushed for the next batch.
        self.add_event(&event, group.first_id, group.last_id, group.rows)
    }

    fn event_of(&self, row: StoredRow) -> Value {
        match row {
            StoredRow::LlmCall(call) => llm_trace(*call),
            StoredRow::Error(error) => error_event(error),
            StoredRow::Span(r) => {
                let created = created_at(r.span.start_ns);
                let mut data = StoredRow::Span(r).to_json();
                data.insert("created_at".into(), created);
                json!({"type": "span", "data": data})
            }
            StoredRow::Event(r) => {
                let (time_ns, has_trace) = (r.event.time_ns, r.event.trace_id.is_some());
                self.row_event("event", StoredRow::Event(r), time_ns, has_trace)
            }
            StoredRow::MetricPoint(r) => {
                let time_ns = r.point.time_ns;
                self.row_event("metric_point", StoredRow::MetricPoint(r), time_ns, false)
            }
        }
    }

    /// An event or metric point: the stored row as data, with a trace id
    /// made up when it has none, so the receiver can deduplicate it like
    /// everything else.
    fn row_event(
        &self,
        kind: &str,
        row: StoredRow,
        time_ns: Option<i64>,
        has_trace: bool,
    ) -> Value {
        let id = row.id();
        let mut data = row.to_json();
        if !has_trace {
            let trace_id = format!("{}-{}-{id}", self.agent_id, self.table.name());
            data.insert("trace_id".into(), Value::String(trace_id));
        }
        data.insert("created_at".into(), time_ns.map_or(Value::Null, created_at));
        json!({"type": kind, "data": data})
    }

    /// Ends the batch: the envelope bytes, uncompressed, with its id.
    pub fn finish(mut self) -> Option<Finished> {
        // A trailing host sample joins if it fits (it always does alone).
        self.full = false;
        self.flush_host();
        let (first, last) = self.id_range()?;
        if self.events == 0 {
            return None;
        }
        let batch_id = format!("{}:{}:{}-{}", self.agent_id, self.table.name(), first, last);
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.extend_from_slice(
            format!(
                "{{\"agent_id\":{},\"batch_id\":{},\"events\":[",
                Value::from(self.agent_id.as_str()),
                Value::from(batch_id.as_str())
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.body);
        out.extend_from_slice(b"]}");
        Some(Finished {
            batch_id,
            body: out,
            first_id: first,
            last_id: last,
            rows: self.rows,
            events: self.events,
        })
    }
}

/// A finished batch (of either format).
pub struct Finished {
    /// Its idempotency key: agent, table and row range.
    pub batch_id: String,
    /// The request body, uncompressed: the native JSON envelope, or an
    /// OTLP protobuf message.
    pub body: Vec<u8>,
    /// First row covered.
    pub first_id: i64,
    /// Last row covered.
    pub last_id: i64,
    /// Rows covered.
    pub rows: usize,
    /// Records (events) in it.
    pub events: usize,
}

/// An LLM call as the Go sidecar's `llm_trace`; what it did not have rides
/// in `metadata.openclaw_trace`.
fn llm_trace(call: LlmCallRow) -> Value {
    let mut extras = Map::new();
    let mut extra = |key: &str, value: Value| {
        if !value.is_null() {
            extras.insert(key.to_string(), value);
        }
    };
    extra("session_id", call.session_id.into());
    extra("cache_read_tokens", call.cache_read_tokens.into());
    extra("cache_write_tokens", call.cache_write_tokens.into());
    extra("channel", call.channel.into());
    extra("span_id", call.span_id.into());
    extra("source", call.source.into());
    extra("truncated", call.truncated.into());
    let mut metadata = call.metadata.unwrap_or_default();
    if !extras.is_empty() {
        metadata.insert("openclaw_trace".into(), Value::Object(extras));
    }
    json!({"type": "llm_trace", "data": {
        "trace_id": call.trace_id,
        "provider": call.provider,
        "model": call.model,
        "input_text": call.input_text,
        "output_text": call.output_text,
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "total_tokens": call.total_tokens,
        "cost_usd": call.cost_usd,
        "latency_ms": call.latency_ms,
        "status": call.status,
        "error_type": call.error_type,
        "metadata": if metadata.is_empty() { Value::Null } else { Value::Object(metadata) },
        "created_at": created_at(call.time_ns),
    }})
}

/// An error as the Go sidecar's `error_event`.
fn error_event(error: ErrorRow) -> Value {
    json!({"type": "error_event", "data": {
        "trace_id": error.trace_id,
        "error_type": error.error_type,
        "message": error.message,
        "stack_trace": error.stack_trace,
        "severity": error.severity,
        "metadata": error.metadata,
        "created_at": created_at(error.time_ns),
    }})
}

/// One host sample (its metric points) as the Go sidecar's `system_metric`.
fn system_metric(agent_id: &str, time_ns: i64, points: &[MetricPoint]) -> Value {
    let attribute = |p: &MetricPoint, key: &str| -> Option<String> {
        p.attributes
            .as_ref()
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let value = |name: &str, attrs: &[(&str, &str)]| -> Option<f64> {
        points.iter().find_map(|p| {
            let matches = p.name == name
                && attrs
                    .iter()
                    .all(|(k, v)| attribute(p, k).as_deref() == Some(*v))
                && (!attrs.is_empty() || p.attributes.is_none());
            if matches {
                p.value
            } else {
                None
            }
        })
    };
    // The database's filesystem when it is watched apart from "/".
    let mountpoint = points
        .iter()
        .filter(|p| p.name == names::SYSTEM_FILESYSTEM_USAGE)
        .filter_map(|p| attribute(p, "mountpoint"))
        .find(|m| m != "/")
        .unwrap_or_else(|| "/".to_string());
    let disk_used = value(
        names::SYSTEM_FILESYSTEM_USAGE,
        &[("mountpoint", mountpoint.as_str()), ("state", "used")],
    );
    let disk_free = value(
        names::SYSTEM_FILESYSTEM_USAGE,
        &[("mountpoint", mountpoint.as_str()), ("state", "free")],
    );
    let mut all = Map::new();
    for p in points {
        let key = match &p.attributes {
            Some(a) if !a.is_empty() => {
                let labels: Vec<String> = a
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                format!("{}{{{}}}", p.name, labels.join(","))
            }
            _ => p.name.clone(),
        };
        all.insert(key, p.value.into());
    }
    let as_u64 = |v: Option<f64>| v.map(|v| v as u64);
    json!({"type": "system_metric", "data": {
        "trace_id": format!("{agent_id}-host-{time_ns}"),
        "cpu_pct": value(names::SYSTEM_CPU_UTILIZATION, &[]).map(|v| v * 100.0),
        "mem_rss_bytes": as_u64(value(names::SYSTEM_MEMORY_USAGE, &[("state", "used")])),
        "mem_available": as_u64(value(names::SYSTEM_MEMORY_USAGE, &[("state", "available")])),
        "mem_total": as_u64(value(names::SYSTEM_MEMORY_LIMIT, &[])),
        "disk_used_bytes": as_u64(disk_used),
        "disk_total_bytes": as_u64(disk_used.zip(disk_free).map(|(u, f)| u + f)),
        "disk_free_bytes": as_u64(disk_free),
        "metadata": {"mountpoint": mountpoint, "metrics": all},
        "created_at": time_ns / 1_000_000,
    }})
}
