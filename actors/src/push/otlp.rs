//! The OTLP push format: stored rows rebuilt as OTLP/HTTP protobuf requests,
//! with their resources and scopes, for any OTLP backend (an OpenTelemetry
//! Collector, Grafana, Honeycomb, Langfuse).
//!
//! - `spans` → `ExportTraceServiceRequest` to `<endpoint>/v1/traces`;
//! - `metric_points` → `ExportMetricsServiceRequest` to `/v1/metrics`, each
//!   point in a metric of its kind (gauge, sum, histogram, exponential
//!   histogram, summary; a native counter is a delta sum);
//! - `events`, `llm_calls` and `errors` → `ExportLogsServiceRequest` to
//!   `/v1/logs`: events as they came, LLM calls as `openclaw.llm_call` records
//!   with `gen_ai.*` attributes (`gen_ai.usage.input_tokens` counting the
//!   cache, as the conventions do, and the uncached input as
//!   `openclaw.tokens.input`), errors as `openclaw.error` records.
//!
//! Rows without a resource of their own (native records, host samples) get
//! `service.name = openclaw-trace` and `agent.id`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, ExponentialHistogram, ExponentialHistogramDataPoint,
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Map, Value};

use crate::records::{
    EventRecord, JsonObject, MetricKind, MetricPoint, OtlpOrigin, SpanRecord, Table,
};
use crate::stored::{ErrorRow, LlmCallRow, StoredRow};

/// A JSON value as an OTLP attribute value.
fn any(value: &Value) -> Option<AnyValue> {
    let v = match value {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Array(a) => any_value::Value::ArrayValue(ArrayValue {
            values: a.iter().filter_map(any).collect(),
        }),
        Value::Object(o) => any_value::Value::KvlistValue(KeyValueList {
            values: key_values(o),
        }),
    };
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, value: &Value) -> Option<KeyValue> {
    any(value).map(|v| KeyValue {
        key: key.to_string(),
        value: Some(v),
        ..KeyValue::default()
    })
}

/// A JSON object as OTLP attributes (nulls left out).
fn key_values(object: &Map<String, Value>) -> Vec<KeyValue> {
    object.iter().filter_map(|(k, v)| kv(k, v)).collect()
}

/// Nested JSON (a span's events and links): an object member's attributes.
fn attributes(object: &Map<String, Value>, key: &str) -> Vec<KeyValue> {
    object
        .get(key)
        .and_then(Value::as_object)
        .map(key_values)
        .unwrap_or_default()
}

/// A stored JSON object column as OTLP attributes.
fn attributes_of(column: Option<&JsonObject>) -> Vec<KeyValue> {
    column.map(key_values).unwrap_or_default()
}

fn int(object: &Map<String, Value>, key: &str) -> i64 {
    object.get(key).and_then(Value::as_i64).unwrap_or_default()
}

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// Unix ns as OTLP's unsigned time (before 1970 is 0).
fn unix_nano(ns: i64) -> u64 {
    ns.max(0) as u64
}

/// A hex id of `len` bytes; empty when absent or not that.
fn hex_id(id: Option<&str>, len: usize) -> Vec<u8> {
    id.and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() == len)
        .unwrap_or_default()
}

/// The resource and scope a row was exported under, or the daemon's own.
fn origin(row: Option<&OtlpOrigin>, agent_id: &str) -> (Resource, InstrumentationScope) {
    let mut resource = attributes_of(row.and_then(|o| o.resource.as_ref()));
    if resource.is_empty() {
        resource.extend(kv("service.name", &Value::from("openclaw-trace")));
        resource.extend(kv("agent.id", &Value::from(agent_id)));
    }
    let scope = InstrumentationScope {
        name: row
            .and_then(|o| o.scope_name.as_deref())
            .unwrap_or("openclaw-trace")
            .to_string(),
        version: row
            .and_then(|o| o.scope_version.as_deref())
            .unwrap_or_default()
            .to_string(),
        ..InstrumentationScope::default()
    };
    (
        Resource {
            attributes: resource,
            ..Resource::default()
        },
        scope,
    )
}

/// Items grouped by resource and scope, in first-seen order.
struct Groups<T>(Vec<(Resource, InstrumentationScope, Vec<T>)>);

impl<T> Groups<T> {
    fn add(&mut self, (resource, scope): (Resource, InstrumentationScope), item: T) {
        match self
            .0
            .iter_mut()
            .find(|(r, s, _)| *r == resource && *s == scope)
        {
            Some((_, _, items)) => items.push(item),
            None => self.0.push((resource, scope, vec![item])),
        }
    }
}

/// The OTLP path a table's rows go to.
pub fn path_of(table: Table) -> &'static str {
    match table {
        Table::Spans => "/v1/traces",
        Table::MetricPoints => "/v1/metrics",
        Table::LlmCalls | Table::Errors | Table::Events => "/v1/logs",
    }
}

/// Encodes rows of `table` as the protobuf request of their signal.
pub fn encode(table: Table, rows: &[StoredRow], agent_id: &str) -> Vec<u8> {
    match table {
        Table::Spans => {
            let mut groups = Groups(Vec::new());
            for row in rows {
                if let StoredRow::Span(r) = row {
                    groups.add(origin(Some(&r.span.origin), agent_id), span_of(&r.span));
                }
            }
            ExportTraceServiceRequest {
                resource_spans: groups
                    .0
                    .into_iter()
                    .map(|(resource, scope, spans)| ResourceSpans {
                        resource: Some(resource),
                        scope_spans: vec![ScopeSpans {
                            scope: Some(scope),
                            spans,
                            ..ScopeSpans::default()
                        }],
                        ..ResourceSpans::default()
                    })
                    .collect(),
            }
            .encode_to_vec()
        }
        Table::MetricPoints => {
            let mut groups = Groups(Vec::new());
            for row in rows {
                if let StoredRow::MetricPoint(r) = row {
                    groups.add(
                        origin(r.point.origin.as_deref(), agent_id),
                        metric_of(&r.point),
                    );
                }
            }
            ExportMetricsServiceRequest {
                resource_metrics: groups
                    .0
                    .into_iter()
                    .map(|(resource, scope, metrics)| ResourceMetrics {
                        resource: Some(resource),
                        scope_metrics: vec![ScopeMetrics {
                            scope: Some(scope),
                            metrics,
                            ..ScopeMetrics::default()
                        }],
                        ..ResourceMetrics::default()
                    })
                    .collect(),
            }
            .encode_to_vec()
        }
        Table::Events | Table::LlmCalls | Table::Errors => {
            let mut groups = Groups(Vec::new());
            for row in rows {
                let (origin_of_row, record) = match row {
                    StoredRow::LlmCall(r) => (None, llm_call_log(r)),
                    StoredRow::Error(r) => (None, error_log(r)),
                    StoredRow::Event(r) => (
                        r.event.origin.as_deref(),
                        event_log(&r.event, r.meta.received_ns),
                    ),
                    StoredRow::MetricPoint(_) | StoredRow::Span(_) => continue,
                };
                groups.add(origin(origin_of_row, agent_id), record);
            }
            ExportLogsServiceRequest {
                resource_logs: groups
                    .0
                    .into_iter()
                    .map(|(resource, scope, log_records)| ResourceLogs {
                        resource: Some(resource),
                        scope_logs: vec![ScopeLogs {
                            scope: Some(scope),
                            log_records,
                            ..ScopeLogs::default()
                        }],
                        ..ResourceLogs::default()
                    })
                    .collect(),
            }
            .encode_to_vec()
        }
    }
}

fn span_of(span: &SpanRecord) -> Span {
    let list = |items: &Option<Vec<Value>>| -> Vec<Map<String, Value>> {
        items
            .iter()
            .flatten()
            .filter_map(Value::as_object)
            .cloned()
            .collect()
    };
    Span {
        trace_id: hex_id(Some(&span.trace_id), 16),
        span_id: hex_id(Some(&span.span_id), 8),
        parent_span_id: hex_id(span.parent_span_id.as_deref(), 8),
        name: span.name.clone(),
        kind: span.kind,
        start_time_unix_nano: unix_nano(span.start_ns),
        end_time_unix_nano: unix_nano(span.end_ns),
        attributes: attributes_of(span.attributes.as_ref()),
        events: list(&span.events)
            .iter()
            .map(|e| span::Event {
                time_unix_nano: unix_nano(int(e, "time_ns")),
                name: text(e, "name").unwrap_or_default().to_string(),
                attributes: attributes(e, "attributes"),
                ..span::Event::default()
            })
            .collect(),
        links: list(&span.links)
            .iter()
            .map(|l| span::Link {
                trace_id: hex_id(text(l, "trace_id"), 16),
                span_id: hex_id(text(l, "span_id"), 8),
                attributes: attributes(l, "attributes"),
                ..span::Link::default()
            })
            .collect(),
        status: Some(Status {
            code: span.status_code,
            message: span.status_message.clone().unwrap_or_default(),
        }),
        ..Span::default()
    }
}

fn metric_of(point: &MetricPoint) -> Metric {
    let attributes = attributes_of(point.attributes.as_ref());
    let time = unix_nano(point.time_ns.unwrap_or_default());
    let start = unix_nano(point.start_time_ns.unwrap_or_default());
    let value = point.value;
    let data = point.data.clone().unwrap_or(Value::Null);
    let f = |key: &str| data.get(key).and_then(Value::as_f64);
    let u = |key: &str| data.get(key).and_then(Value::as_u64).unwrap_or_default();
    let counts = |v: &Value| -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    let temporality = point.temporality.map_or(0, |t| t.as_i32());
    let number = || NumberDataPoint {
        attributes: attributes.clone(),
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: value.map(number_data_point::Value::AsDouble),
        ..NumberDataPoint::default()
    };
    let data = match point.kind {
        MetricKind::Sum => metric::Data::Sum(Sum {
            data_points: vec![number()],
            aggregation_temporality: temporality,
            is_monotonic: point.monotonic == Some(true),
        }),
        // A native counter is an increase since the previous point.
        MetricKind::Counter => metric::Data::Sum(Sum {
            data_points: vec![number()],
            aggregation_temporality: 1,
            is_monotonic: true,
        }),
        MetricKind::Histogram => metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: u("count"),
                sum: f("sum"),
                bucket_counts: counts(&data["bucket_counts"]),
                explicit_bounds: data["explicit_bounds"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default(),
                min: f("min"),
                max: f("max"),
                ..HistogramDataPoint::default()
            }],
            aggregation_temporality: temporality,
        }),
        MetricKind::ExponentialHistogram => {
            let buckets = |v: &Value| {
                v.as_object().map(|b| Buckets {
                    offset: b.get("offset").and_then(Value::as_i64).unwrap_or_default() as i32,
                    bucket_counts: counts(&v["bucket_counts"]),
                })
            };
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    attributes: attributes.clone(),
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count: u("count"),
                    sum: f("sum"),
                    scale: data["scale"].as_i64().unwrap_or_default() as i32,
                    zero_count: u("zero_count"),
                    positive: buckets(&data["positive"]),
                    negative: buckets(&data["negative"]),
                    min: f("min"),
                    max: f("max"),
                    zero_threshold: f("zero_threshold").unwrap_or_default(),
                    ..ExponentialHistogramDataPoint::default()
                }],
                aggregation_temporality: temporality,
            })
        }
        MetricKind::Summary => metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: u("count"),
                sum: f("sum").unwrap_or_default(),
                quantile_values: data["quantile_values"]
                    .as_array()
                    .map(|qs| {
                        qs.iter()
                            .map(|q| ValueAtQuantile {
                                quantile: q["quantile"].as_f64().unwrap_or_default(),
                                value: q["value"].as_f64().unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                ..SummaryDataPoint::default()
            }],
        }),
        MetricKind::Gauge => metric::Data::Gauge(Gauge {
            data_points: vec![number()],
        }),
    };
    Metric {
        name: point.name.clone(),
        unit: point.unit.clone().unwrap_or_default(),
        data: Some(data),
        ..Metric::default()
    }
}

/// OTLP severity numbers for the names the daemon stores.
fn severity_number(name: &str) -> i32 {
    match name.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" | "critical" => 21,
        _ => 0,
    }
}

/// Builds a log record's attributes, leaving out what is not set.
#[derive(Default)]
struct Attributes(Vec<KeyValue>);

impl Attributes {
    fn put(&mut self, key: &str, value: impl Into<Value>) {
        self.0.extend(kv(key, &value.into()));
    }
}

/// The fields every stored log record has.
struct LogParts {
    time_ns: i64,
    received_ns: i64,
    severity: String,
    severity_number: Option<i32>,
    event_name: String,
    body: Option<AnyValue>,
    attributes: Vec<KeyValue>,
    trace_id: Option<String>,
    span_id: Option<String>,
}

impl LogParts {
    fn record(self) -> LogRecord {
        LogRecord {
            time_unix_nano: unix_nano(self.time_ns),
            observed_time_unix_nano: unix_nano(self.received_ns),
            severity_number: self
                .severity_number
                .unwrap_or_else(|| severity_number(&self.severity)),
            severity_text: self.severity,
            body: self.body,
            attributes: self.attributes,
            trace_id: hex_id(self.trace_id.as_deref(), 16),
            span_id: hex_id(self.span_id.as_deref(), 8),
            event_name: self.event_name,
            ..LogRecord::default()
        }
    }
}

/// An LLM call as an `openclaw.llm_call` log record with `gen_ai.*`
/// attributes.
fn llm_call_log(call: &LlmCallRow) -> LogRecord {
    let mut attrs = Attributes::default();
    attrs.put("gen_ai.provider.name", call.provider.as_str());
    attrs.put("gen_ai.request.model", call.model.as_str());
    // `prompt_tokens` is uncached input (see `llm_view`), OpenClaw's
    // `openclaw.tokens.input`; `gen_ai.usage.input_tokens` counts the
    // cache too.
    attrs.put("openclaw.tokens.input", call.prompt_tokens);
    let all_input = call.prompt_tokens.map(|uncached| {
        let cached = [call.cache_read_tokens, call.cache_write_tokens]
            .into_iter()
            .flatten()
            .sum::<i64>();
        uncached.saturating_add(cached)
    });
    attrs.put("gen_ai.usage.input_tokens", all_input);
    attrs.put("gen_ai.usage.output_tokens", call.completion_tokens);
    attrs.put(
        "gen_ai.usage.cache_read.input_tokens",
        call.cache_read_tokens,
    );
    attrs.put(
        "gen_ai.usage.cache_creation.input_tokens",
        call.cache_write_tokens,
    );
    attrs.put("openclaw.tokens.total", call.total_tokens);
    attrs.put("openclaw.cost.usd", call.cost_usd);
    attrs.put("openclaw.latency_ms", call.latency_ms);
    attrs.put("openclaw.outcome", call.status.as_str());
    attrs.put("error.type", call.error_type.as_deref());
    attrs.put("openclaw.channel", call.channel.as_deref());
    attrs.put("openclaw.session_id", call.session_id.as_deref());
    attrs.put("openclaw.trace_id", call.trace_id.as_str());
    attrs.put("openclaw.source", call.source.as_str());
    attrs.put("gen_ai.input.text", call.input_text.as_deref());
    attrs.put("gen_ai.output.text", call.output_text.as_deref());
    attrs.put("openclaw.metadata", call.metadata.clone());
    LogParts {
        time_ns: call.time_ns,
        received_ns: call.meta.received_ns,
        severity: "info".to_string(),
        severity_number: None,
        event_name: "openclaw.llm_call".to_string(),
        body: None,
        attributes: attrs.0,
        trace_id: Some(call.trace_id.clone()),
        span_id: call.span_id.clone(),
    }
    .record()
}

/// An error as an `openclaw.error` log record, its message the body.
fn error_log(error: &ErrorRow) -> LogRecord {
    let mut attrs = Attributes::default();
    attrs.put("error.type", error.error_type.as_str());
    attrs.put("exception.stacktrace", error.stack_trace.as_deref());
    attrs.put("openclaw.session_id", error.session_id.as_deref());
    attrs.put("openclaw.metadata", error.metadata.clone());
    LogParts {
        time_ns: error.time_ns,
        received_ns: error.meta.received_ns,
        severity: error.severity.clone(),
        severity_number: None,
        event_name: "openclaw.error".to_string(),
        body: any(&Value::from(error.message.as_str())),
        attributes: attrs.0,
        trace_id: error.trace_id.clone(),
        span_id: None,
    }
    .record()
}

/// An event (or an OTLP log record) as it came.
fn event_log(event: &EventRecord, received_ns: i64) -> LogRecord {
    LogParts {
        time_ns: event.time_ns.unwrap_or_default(),
        received_ns,
        severity: event.severity.clone(),
        severity_number: event.severity_number,
        // A log record without an event name is stored as `log`.
        event_name: if event.name == "log" {
            String::new()
        } else {
            event.name.clone()
        },
        body: event
            .body
            .as_deref()
            .map(Value::from)
            .as_ref()
            .and_then(any),
        attributes: attributes_of(event.attributes.as_ref()),
        trace_id: event.trace_id.clone(),
        span_id: event.span_id.clone(),
    }
    .record()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::RowMeta;

    /// A stored LLM call with the given token counts, the rest unset.
    fn call(
        prompt: Option<i64>,
        completion: Option<i64>,
        cache: (Option<i64>, Option<i64>),
        total: Option<i64>,
    ) -> LlmCallRow {
        LlmCallRow {
            meta: RowMeta {
                id: 1,
                received_ns: 0,
                agent_id: "a".into(),
            },
            time_ns: 0,
            source: "native".into(),
            trace_id: "t".into(),
            span_id: None,
            session_id: None,
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            input_text: None,
            output_text: None,
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: total,
            cache_read_tokens: cache.0,
            cache_write_tokens: cache.1,
            cost_usd: None,
            latency_ms: None,
            status: "ok".into(),
            error_type: None,
            channel: None,
            metadata: None,
            truncated: None,
            cost_source: "unknown".into(),
        }
    }

    fn int_attribute(record: &LogRecord, key: &str) -> Option<i64> {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::IntValue(n) => Some(*n),
                _ => None,
            })
    }

    #[test]
    fn an_llm_call_s_input_goes_out_uncached_and_in_all() {
        let row = call(Some(750), Some(45), (Some(100), Some(50)), Some(945));
        let record = llm_call_log(&row);
        let tokens = |key| int_attribute(&record, key);
        assert_eq!(tokens("openclaw.tokens.input"), Some(750));
        assert_eq!(
            tokens("gen_ai.usage.input_tokens"),
            Some(900),
            "750 + 100 + 50"
        );
        assert_eq!(tokens("gen_ai.usage.cache_read.input_tokens"), Some(100));
        assert_eq!(tokens("gen_ai.usage.cache_creation.input_tokens"), Some(50));
        assert_eq!(tokens("openclaw.tokens.total"), Some(945));

        let bare = call(None, Some(3), (None, None), None);
        let record = llm_call_log(&bare);
        assert_eq!(int_attribute(&record, "gen_ai.usage.input_tokens"), None);
        assert_eq!(int_attribute(&record, "openclaw.tokens.input"), None);
    }
}
