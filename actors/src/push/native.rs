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
use crate::records::Table;

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
    points: Vec<Map<String, Value>>,
}

fn created_at(row: &Map<String, Value>, key: &str) -> Value {
    row.get(key)
        .and_then(Value::as_i64)
        .map_or(Value::Null, |ns| json!(ns / 1_000_000))
}

fn take(row: &mut Map<String, Value>, key: &str) -> Value {
    row.remove(key).unwrap_or(Value::Null)
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
    pub fn offer(&mut self, id: i64, mut row: Map<String, Value>, more_allowed: bool) -> bool {
        if self.full {
            return false;
        }
        let is_host = self.table == Table::MetricPoints
            && row.get("source").and_then(Value::as_str) == Some("host");
        let time_ns = row.get("time_ns").and_then(Value::as_i64).unwrap_or(0);
        if is_host {
            if let Some(group) = self.host.as_mut().filter(|g| g.time_ns == time_ns) {
                group.last_id = id;
                group.rows += 1;
                group.points.push(row);
                return true;
            }
        }
        // Anything else ends the host sample being gathered.
        if !self.flush_host() || !more_allowed {
            return false;
        }
        if is_host {
            self.host = Some(HostGroup {
                time_ns,
                first_id: id,
                last_id: id,
                rows: 1,
                points: vec![row],
            });
            return true;
        }
        let event = self.event_of(&mut row);
        self.add_event(&event, id, id, 1)
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

    fn event_of(&self, row: &mut Map<String, Value>) -> Value {
        match self.table {
            Table::LlmCalls => {
                let mut extras = Map::new();
                for key in [
                    "session_id",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "channel",
                    "span_id",
                    "source",
                    "truncated",
                ] {
                    if let Some(v) = row.get(key).filter(|v| !v.is_null()) {
                        extras.insert(key.to_string(), v.clone());
                    }
                }
                let mut metadata = match take(row, "metadata") {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                if !extras.is_empty() {
                    metadata.insert("openclaw_trace".into(), Value::Object(extras));
                }
                json!({"type": "llm_trace", "data": {
                    "trace_id": take(row, "trace_id"),
                    "provider": take(row, "provider"),
                    "model": take(row, "model"),
                    "input_text": take(row, "input_text"),
                    "output_text": take(row, "output_text"),
                    "prompt_tokens": take(row, "prompt_tokens"),
                    "completion_tokens": take(row, "completion_tokens"),
                    "total_tokens": take(row, "total_tokens"),
                    "cost_usd": take(row, "cost_usd"),
                    "latency_ms": take(row, "latency_ms"),
                    "status": take(row, "status"),
                    "error_type": take(row, "error_type"),
                    "metadata": if metadata.is_empty() { Value::Null } else { Value::Object(metadata) },
                    "created_at": created_at(row, "time_ns"),
                }})
            }
            Table::Errors => json!({"type": "error_event", "data": {
                "trace_id": take(row, "trace_id"),
                "error_type": take(row, "error_type"),
                "message": take(row, "message"),
                "stack_trace": take(row, "stack_trace"),
                "severity": take(row, "severity"),
                "metadata": take(row, "metadata"),
                "created_at": created_at(row, "time_ns"),
            }}),
            Table::Spans => {
                let mut data = std::mem::take(row);
                data.insert("created_at".into(), created_at(&data, "start_ns"));
                json!({"type": "span", "data": data})
            }
            Table::Events | Table::MetricPoints => {
                let mut data = std::mem::take(row);
                let id = data.get("id").cloned().unwrap_or(Value::Null);
                let kind = if self.table == Table::Events {
                    "event"
                } else {
                    "metric_point"
                };
                data.entry("trace_id").or_insert(Value::Null);
                if data["trace_id"].is_null() {
                    data["trace_id"] =
                        json!(format!("{}-{}-{}", self.agent_id, self.table.name(), id));
                }
                data.insert("created_at".into(), created_at(&data, "time_ns"));
                json!({"type": kind, "data": data})
            }
        }
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

/// One host sample (its metric points) as the Go sidecar's `system_metric`.
fn system_metric(agent_id: &str, time_ns: i64, points: &[Map<String, Value>]) -> Value {
    let value = |name: &str, attrs: &[(&str, &str)]| -> Option<f64> {
        points.iter().find_map(|p| {
            let matches = p.get("name").and_then(Value::as_str) == Some(name)
                && attrs
                    .iter()
                    .all(|(k, v)| p["attributes"].get(*k).and_then(Value::as_str) == Some(*v))
                && (!attrs.is_empty() || p["attributes"].is_null());
            if matches {
                p.get("value").and_then(Value::as_f64)
            } else {
                None
            }
        })
    };
    // The database's filesystem when it is watched apart from "/".
    let mountpoint = points
        .iter()
        .filter(|p| p.get("name").and_then(Value::as_str) == Some(names::SYSTEM_FILESYSTEM_USAGE))
        .filter_map(|p| p["attributes"].get("mountpoint").and_then(Value::as_str))
        .find(|m| *m != "/")
        .unwrap_or("/");
    let disk_used = value(
        names::SYSTEM_FILESYSTEM_USAGE,
        &[("mountpoint", mountpoint), ("state", "used")],
    );
    let disk_free = value(
        names::SYSTEM_FILESYSTEM_USAGE,
        &[("mountpoint", mountpoint), ("state", "free")],
    );
    let mut all = Map::new();
    for p in points {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let key = match p.get("attributes") {
            Some(Value::Object(a)) if !a.is_empty() => {
                let labels: Vec<String> = a
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                format!("{name}{{{}}}", labels.join(","))
            }
            _ => name.to_string(),
        };
        all.insert(key, p.get("value").cloned().unwrap_or(Value::Null));
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
