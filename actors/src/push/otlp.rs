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

use crate::records::Table;

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

fn attributes(row: &Map<String, Value>, key: &str) -> Vec<KeyValue> {
    row.get(key)
        .and_then(Value::as_object)
        .map(key_values)
        .unwrap_or_default()
}

fn int(row: &Map<String, Value>, key: &str) -> i64 {
    row.get(key).and_then(Value::as_i64).unwrap_or_default()
}

fn text<'a>(row: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}

fn hex_id(row: &Map<String, Value>, key: &str, len: usize) -> Vec<u8> {
    text(row, key)
        .and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() == len)
        .unwrap_or_default()
}

/// The resource and scope a row was exported under, or the daemon's own.
fn origin(row: &Map<String, Value>, agent_id: &str) -> (Resource, InstrumentationScope) {
    let mut resource = attributes(row, "resource");
    if resource.is_empty() {
        resource.extend(kv("service.name", &Value::from("openclaw-trace")));
        resource.extend(kv("agent.id", &Value::from(agent_id)));
    }
    let scope = InstrumentationScope {
        name: text(row, "scope_name")
            .unwrap_or("openclaw-trace")
            .to_string(),
        version: text(row, "scope_version").unwrap_or_default().to_string(),
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
pub fn encode(table: Table, rows: &[Map<String, Value>], agent_id: &str) -> Vec<u8> {
    match table {
        Table::Spans => {
            let mut groups = Groups(Vec::new());
            for row in rows {
                groups.add(origin(row, agent_id), span_of(row));
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
                groups.add(origin(row, agent_id), metric_of(row));
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
                groups.add(origin(row, agent_id), log_of(table, row));
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

fn span_of(row: &Map<String, Value>) -> Span {
    let list = |key: &str| {
        row.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Span {
        trace_id: hex_id(row, "trace_id", 16),
        span_id: hex_id(row, "span_id", 8),
        parent_span_id: hex_id(row, "parent_span_id", 8),
        name: text(row, "name").unwrap_or_default().to_string(),
        kind: int(row, "kind") as i32,
        start_time_unix_nano: int(row, "start_ns").max(0) as u64,
        end_time_unix_nano: int(row, "end_ns").max(0) as u64,
        attributes: attributes(row, "attributes"),
        events: list("events")
            .iter()
            .filter_map(Value::as_object)
            .map(|e| span::Event {
                time_unix_nano: int(e, "time_ns").max(0) as u64,
                name: text(e, "name").unwrap_or_default().to_string(),
                attributes: attributes(e, "attributes"),
                ..span::Event::default()
            })
            .collect(),
        links: list("links")
            .iter()
            .filter_map(Value::as_object)
            .map(|l| span::Link {
                trace_id: hex_id(l, "trace_id", 16),
                span_id: hex_id(l, "span_id", 8),
                attributes: attributes(l, "attributes"),
                ..span::Link::default()
            })
            .collect(),
        status: Some(Status {
            code: int(row, "status_code") as i32,
            message: text(row, "status_message").unwrap_or_default().to_string(),
        }),
        ..Span::default()
    }
}

fn metric_of(row: &Map<String, Value>) -> Metric {
    let attributes = attributes(row, "attributes");
    let time = int(row, "time_ns").max(0) as u64;
    let start = int(row, "start_time_ns").max(0) as u64;
    let value = row.get("value").and_then(Value::as_f64);
    let data = row.get("data").cloned().unwrap_or(Value::Null);
    let f = |key: &str| data.get(key).and_then(Value::as_f64);
    let u = |key: &str| data.get(key).and_then(Value::as_u64).unwrap_or_default();
    let counts = |v: &Value| -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    let temporality = int(row, "temporality") as i32;
    let number = || NumberDataPoint {
        attributes: attributes.clone(),
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: value.map(number_data_point::Value::AsDouble),
        ..NumberDataPoint::default()
    };
    let data = match text(row, "kind").unwrap_or("gauge") {
        "sum" => metric::Data::Sum(Sum {
            data_points: vec![number()],
            aggregation_temporality: temporality,
            is_monotonic: row.get("is_monotonic").and_then(Value::as_i64) == Some(1),
        }),
        // A native counter is an increase since the previous point.
        "counter" => metric::Data::Sum(Sum {
            data_points: vec![number()],
            aggregation_temporality: 1,
            is_monotonic: true,
        }),
        "histogram" => metric::Data::Histogram(Histogram {
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
        "exponential_histogram" => {
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
        "summary" => metric::Data::Summary(Summary {
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
        _ => metric::Data::Gauge(Gauge {
            data_points: vec![number()],
        }),
    };
    Metric {
        name: text(row, "name").unwrap_or_default().to_string(),
        unit: text(row, "unit").unwrap_or_default().to_string(),
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

/// A whole-number column, when set.
fn int_of(row: &Map<String, Value>, key: &str) -> Option<i64> {
    row.get(key).and_then(Value::as_i64)
}

fn log_of(table: Table, row: &Map<String, Value>) -> LogRecord {
    let mut attrs = Vec::new();
    let mut put = |key: &str, value: Option<&Value>| {
        if let Some(v) = value {
            attrs.extend(kv(key, v));
        }
    };
    let (event_name, severity, body) = match table {
        Table::LlmCalls => {
            put("gen_ai.provider.name", row.get("provider"));
            put("gen_ai.request.model", row.get("model"));
            // `prompt_tokens` is uncached input (see `llm_view`), OpenClaw's
            // `openclaw.tokens.input`; `gen_ai.usage.input_tokens` counts the
            // cache too.
            put("openclaw.tokens.input", row.get("prompt_tokens"));
            let all_input = int_of(row, "prompt_tokens").map(|uncached| {
                let cached = ["cache_read_tokens", "cache_write_tokens"]
                    .iter()
                    .filter_map(|k| int_of(row, k))
                    .sum::<i64>();
                Value::from(uncached.saturating_add(cached))
            });
            put("gen_ai.usage.input_tokens", all_input.as_ref());
            put("gen_ai.usage.output_tokens", row.get("completion_tokens"));
            put(
                "gen_ai.usage.cache_read.input_tokens",
                row.get("cache_read_tokens"),
            );
            put(
                "gen_ai.usage.cache_creation.input_tokens",
                row.get("cache_write_tokens"),
            );
            put("openclaw.tokens.total", row.get("total_tokens"));
            put("openclaw.cost.usd", row.get("cost_usd"));
            put("openclaw.latency_ms", row.get("latency_ms"));
            put("openclaw.outcome", row.get("status"));
            put("error.type", row.get("error_type"));
            put("openclaw.channel", row.get("channel"));
            put("openclaw.session_id", row.get("session_id"));
            put("openclaw.trace_id", row.get("trace_id"));
            put("openclaw.source", row.get("source"));
            put("gen_ai.input.text", row.get("input_text"));
            put("gen_ai.output.text", row.get("output_text"));
            put("openclaw.metadata", row.get("metadata"));
            ("openclaw.llm_call".to_string(), "info".to_string(), None)
        }
        Table::Errors => {
            put("error.type", row.get("error_type"));
            put("exception.stacktrace", row.get("stack_trace"));
            put("openclaw.session_id", row.get("session_id"));
            put("openclaw.metadata", row.get("metadata"));
            (
                "openclaw.error".to_string(),
                text(row, "severity").unwrap_or("error").to_string(),
                row.get("message"),
            )
        }
        _ => {
            attrs = attributes(row, "attributes");
            let name = text(row, "name").unwrap_or("log");
            (
                if name == "log" {
                    String::new()
                } else {
                    name.to_string()
                },
                text(row, "severity").unwrap_or("info").to_string(),
                row.get("body"),
            )
        }
    };
    let number = row
        .get("severity_number")
        .and_then(Value::as_i64)
        .map(|n| n as i32)
        .unwrap_or_else(|| severity_number(&severity));
    LogRecord {
        time_unix_nano: int(row, "time_ns").max(0) as u64,
        observed_time_unix_nano: int(row, "received_ns").max(0) as u64,
        severity_number: number,
        severity_text: severity,
        body: body.and_then(any),
        attributes: attrs,
        trace_id: hex_id(row, "trace_id", 16),
        span_id: hex_id(row, "span_id", 8),
        event_name,
        ..LogRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let row = json!({
            "provider": "anthropic", "model": "claude-sonnet-4-5",
            "prompt_tokens": 750, "completion_tokens": 45,
            "cache_read_tokens": 100, "cache_write_tokens": 50, "total_tokens": 945,
        });
        let row = row.as_object().expect("an object");
        let record = log_of(Table::LlmCalls, row);
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

        let bare = json!({"provider": "a", "model": "m", "completion_tokens": 3});
        let record = log_of(Table::LlmCalls, bare.as_object().expect("an object"));
        assert_eq!(int_attribute(&record, "gen_ai.usage.input_tokens"), None);
        assert_eq!(int_attribute(&record, "openclaw.tokens.input"), None);
    }
}
