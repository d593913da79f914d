//! OTLP/HTTP bodies (protobuf or JSON) into records.
//!
//! Message types come from `opentelemetry-proto` (prost for protobuf, its
//! serde mapping for JSON: hex ids, integer enums, 64-bit integers as strings
//! or numbers, unknown fields ignored). What is ours is the mapping onto the
//! tables and the per-item checks: an item that fails one (a trace id that is
//! not 16 bytes, say) is left out and counted, the rest of the request is
//! stored, and the client hears of it as an OTLP partial success.
//!
//! The decoded request is consumed as its records are built: strings move
//! into the records and each item is freed once converted, so the request
//! and its records are not both held in full.

use std::sync::Arc;

use base64::Engine as _;
use openclaw_trace_actors::records::{
    Batch, EventRecord, JsonObject, MetricKind, MetricPoint, OtlpOrigin, SpanRecord, Temporality,
};
use openclaw_trace_actors::stats::{ItemReject, Signal};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::limits::{self, Limits};
use super::DecodeError;

/// How an OTLP body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

/// A decoded OTLP request: what to store and what was left out.
#[derive(Debug)]
pub struct Decoded {
    /// Items that passed their checks.
    pub batch: Batch,
    /// Items in the request.
    pub received: usize,
    /// Items left out, with why.
    pub rejected: Vec<ItemReject>,
    /// The first reason an item was left out, for the partial-success message.
    pub first_error: Option<String>,
}

impl Decoded {
    fn new(batch: Batch) -> Self {
        Decoded {
            batch,
            received: 0,
            rejected: Vec::new(),
            first_error: None,
        }
    }

    fn reject(&mut self, reason: ItemReject, message: String) {
        self.rejected.push(reason);
        self.first_error.get_or_insert(message);
    }
}

fn decode<T: Message + Default + DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, DecodeError> {
    match encoding {
        Encoding::Protobuf => T::decode(body).map_err(|e| {
            DecodeError::MalformedProtobuf(format!("body is not a valid protobuf message: {e}"))
        }),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                DecodeError::InvalidField(format!("OTLP JSON: {e}"))
            }
            _ => DecodeError::Malformed(format!("body is not valid JSON: {e}")),
        }),
    }
}

/// The signal an OTLP path carries.
pub fn signal_of_path(path: &str) -> Signal {
    match path {
        "/v1/traces" => Signal::Spans,
        "/v1/metrics" => Signal::DataPoints,
        _ => Signal::LogRecords,
    }
}

/// Decodes a body for `signal` into records, once its items are counted
/// within `limits`.
pub fn decode_signal(
    signal: Signal,
    encoding: Encoding,
    body: &[u8],
    limits: &Limits,
) -> Result<Decoded, DecodeError> {
    match encoding {
        Encoding::Protobuf => limits::count_protobuf(signal, body, limits)?,
        Encoding::Json => limits::count_otlp_json(signal, body, limits)?,
    };
    match signal {
        Signal::Spans => Ok(spans(decode(encoding, body)?)),
        Signal::DataPoints => Ok(points(decode(encoding, body)?)),
        Signal::LogRecords => Ok(logs(decode(encoding, body)?)),
    }
}

/// An OTLP attribute value as JSON. Bytes become base64 text (as in OTLP
/// JSON); a double that JSON cannot hold (NaN, infinities) becomes its text.
fn any_to_json(value: AnyValue) -> Value {
    match value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.into_iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attributes(kv.values)),
        Some(any_value::Value::BytesValue(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // An index into a profiles string table; meaningless outside profiles.
        Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
    }
}

/// Key-value pairs as a JSON object (a repeated key keeps its last value).
fn attributes(kvs: Vec<KeyValue>) -> JsonObject {
    kvs.into_iter()
        .map(|kv| (kv.key, kv.value.map_or(Value::Null, any_to_json)))
        .collect()
}

fn non_empty(kvs: Vec<KeyValue>) -> Option<JsonObject> {
    (!kvs.is_empty()).then(|| attributes(kvs))
}

/// A resource's attributes, once for all its scopes.
fn resource_attributes(resource: Option<Resource>) -> Option<JsonObject> {
    resource.and_then(|r| non_empty(r.attributes))
}

/// What every record of a scope carries, shared by them all.
fn origin(resource: &Option<JsonObject>, scope: Option<InstrumentationScope>) -> Arc<OtlpOrigin> {
    let service_name = resource
        .as_ref()
        .and_then(|r| r.get("service.name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let (scope_name, scope_version) = scope.map_or((None, None), |s| {
        (
            Some(s.name).filter(|n| !n.is_empty()),
            Some(s.version).filter(|v| !v.is_empty()),
        )
    });
    Arc::new(OtlpOrigin {
        service_name,
        resource: resource.clone(),
        scope_name,
        scope_version,
    })
}

/// Lower-case hex of an id of exactly `len` bytes that is not all zero.
fn id(bytes: &[u8], len: usize) -> Option<String> {
    (bytes.len() == len && bytes.iter().any(|b| *b != 0)).then(|| hex::encode(bytes))
}

/// A link's id as lower-case hex; empty unless it is `len` bytes (an id
/// of any other length means nothing, and hex would double its size).
fn link_id(bytes: &[u8], len: usize) -> String {
    if bytes.len() == len {
        hex::encode(bytes)
    } else {
        String::new()
    }
}

/// An optional id: empty is `Ok(None)`, a valid one `Ok(Some)`, else `Err`.
fn optional_id(bytes: &[u8], len: usize) -> Result<Option<String>, ()> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        id(bytes, len).map(Some).ok_or(())
    }
}

/// Unix ns as an i64; `None` past the year 2262.
fn time(ns: u64) -> Option<i64> {
    i64::try_from(ns).ok()
}

/// A timestamp where 0 means "not set".
fn optional_time(ns: u64) -> Result<Option<i64>, ()> {
    match ns {
        0 => Ok(None),
        ns => time(ns).map(Some).ok_or(()),
    }
}

fn spans(request: ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::new(Batch::Spans(Vec::new()));
    let mut rows = Vec::new();
    for rs in request.resource_spans {
        let resource = resource_attributes(rs.resource);
        for ss in rs.scope_spans {
            let origin = origin(&resource, ss.scope);
            for span in ss.spans {
                out.received += 1;
                let Some(trace_id) = id(&span.trace_id, 16) else {
                    out.reject(
                        ItemReject::InvalidTraceId,
                        format!(
                            "span {:?}: traceId must be 16 bytes and not all zero, got {} bytes",
                            span.name,
                            span.trace_id.len()
                        ),
                    );
                    continue;
                };
                let (Some(span_id), Ok(parent_span_id)) =
                    (id(&span.span_id, 8), optional_id(&span.parent_span_id, 8))
                else {
                    out.reject(
                        ItemReject::InvalidSpanId,
                        format!(
                            "span {:?}: spanId and parentSpanId must be 8 bytes and not all zero",
                            span.name
                        ),
                    );
                    continue;
                };
                let (Some(start_ns), Some(end_ns)) = (
                    time(span.start_time_unix_nano),
                    time(span.end_time_unix_nano),
                ) else {
                    out.reject(
                        ItemReject::InvalidTimestamp,
                        format!(
                            "span {:?}: start or end time is past the year 2262",
                            span.name
                        ),
                    );
                    continue;
                };
                let (status_code, status_message) =
                    span.status.map_or((0, None), |s| (s.code, Some(s.message)));
                rows.push(SpanRecord {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name: span.name,
                    kind: span.kind,
                    start_ns,
                    end_ns,
                    status_code,
                    status_message: status_message.filter(|m| !m.is_empty()),
                    attributes: non_empty(span.attributes),
                    events: (!span.events.is_empty()).then(|| {
                        span.events
                            .into_iter()
                            .map(|e| json!({"time_ns": time(e.time_unix_nano), "name": e.name, "attributes": attributes(e.attributes)}))
                            .collect()
                    }),
                    links: (!span.links.is_empty()).then(|| {
                        span.links
                            .into_iter()
                            .map(|l| json!({"trace_id": link_id(&l.trace_id, 16), "span_id": link_id(&l.span_id, 8), "attributes": attributes(l.attributes)}))
                            .collect()
                    }),
                    origin: Arc::clone(&origin),
                });
            }
        }
    }
    out.batch = Batch::Spans(rows);
    out
}

/// One data point of any kind, before its checks.
struct RawPoint {
    attributes: Vec<KeyValue>,
    start_time_unix_nano: u64,
    time_unix_nano: u64,
    kind: MetricKind,
    value: Option<f64>,
    temporality: Option<Temporality>,
    monotonic: Option<bool>,
    data: Option<Value>,
}

fn number(v: &Option<number_data_point::Value>) -> Option<f64> {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => Some(*d).filter(|d| d.is_finite()),
        Some(number_data_point::Value::AsInt(i)) => Some(*i as f64),
        None => None,
    }
}

fn buckets(b: &Option<exponential_histogram_data_point::Buckets>) -> Value {
    b.as_ref().map_or(
        Value::Null,
        |b| json!({"offset": b.offset, "bucket_counts": b.bucket_counts}),
    )
}

/// Every data point of a metric, whatever its kind.
fn raw_points(data: Option<metric::Data>) -> Vec<RawPoint> {
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    match data {
        None => Vec::new(),
        Some(metric::Data::Gauge(g)) => g
            .data_points
            .into_iter()
            .map(|p| RawPoint {
                attributes: p.attributes,
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                kind: MetricKind::Gauge,
                value: number(&p.value),
                temporality: None,
                monotonic: None,
                data: None,
            })
            .collect(),
        Some(metric::Data::Sum(s)) => s
            .data_points
            .into_iter()
            .map(|p| RawPoint {
                attributes: p.attributes,
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                kind: MetricKind::Sum,
                value: number(&p.value),
                temporality: Temporality::from_i32(s.aggregation_temporality),
                monotonic: Some(s.is_monotonic),
                data: None,
            })
            .collect(),
        Some(metric::Data::Histogram(h)) => h
            .data_points
            .into_iter()
            .map(|p| RawPoint {
                attributes: p.attributes,
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                kind: MetricKind::Histogram,
                value: finite(p.sum),
                temporality: Temporality::from_i32(h.aggregation_temporality),
                monotonic: None,
                data: Some(json!({"count": p.count, "sum": p.sum, "min": p.min, "max": p.max,
                    "bucket_counts": p.bucket_counts, "explicit_bounds": p.explicit_bounds})),
            })
            .collect(),
        Some(metric::Data::ExponentialHistogram(h)) => h
            .data_points
            .into_iter()
            .map(|p| RawPoint {
                attributes: p.attributes,
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                kind: MetricKind::ExponentialHistogram,
                value: finite(p.sum),
                temporality: Temporality::from_i32(h.aggregation_temporality),
                monotonic: None,
                data: Some(json!({"count": p.count, "sum": p.sum, "min": p.min, "max": p.max,
                    "scale": p.scale, "zero_count": p.zero_count, "zero_threshold": p.zero_threshold,
                    "positive": buckets(&p.positive), "negative": buckets(&p.negative)})),
            })
            .collect(),
        Some(metric::Data::Summary(s)) => s
            .data_points
            .into_iter()
            .map(|p| RawPoint {
                attributes: p.attributes,
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                kind: MetricKind::Summary,
                value: finite(Some(p.sum)),
                temporality: None,
                monotonic: None,
                data: Some(json!({"count": p.count, "sum": p.sum, "quantile_values": p
                    .quantile_values
                    .iter()
                    .map(|q| json!({"quantile": q.quantile, "value": q.value}))
                    .collect::<Vec<_>>()})),
            })
            .collect(),
    }
}

fn points(request: ExportMetricsServiceRequest) -> Decoded {
    let mut out = Decoded::new(Batch::MetricPoints(Vec::new()));
    let mut rows = Vec::new();
    for rm in request.resource_metrics {
        let resource = resource_attributes(rm.resource);
        for sm in rm.scope_metrics {
            let origin = origin(&resource, sm.scope);
            for m in sm.metrics {
                let unit = Some(m.unit).filter(|u| !u.is_empty());
                for p in raw_points(m.data) {
                    out.received += 1;
                    if m.name.is_empty() {
                        out.reject(ItemReject::InvalidMetric, "a metric has no name".into());
                        continue;
                    }
                    let (Ok(time_ns), Ok(start_time_ns)) = (
                        optional_time(p.time_unix_nano),
                        optional_time(p.start_time_unix_nano),
                    ) else {
                        out.reject(
                            ItemReject::InvalidTimestamp,
                            format!("metric {:?}: a time is past the year 2262", m.name),
                        );
                        continue;
                    };
                    rows.push(MetricPoint {
                        time_ns,
                        start_time_ns,
                        name: m.name.clone(),
                        value: p.value,
                        unit: unit.clone(),
                        kind: p.kind,
                        temporality: p.temporality,
                        monotonic: p.monotonic,
                        data: p.data,
                        attributes: non_empty(p.attributes),
                        origin: Some(Arc::clone(&origin)),
                    });
                }
            }
        }
    }
    out.batch = Batch::MetricPoints(rows);
    out
}

/// OTLP severity numbers to names (1-4 trace ... 21-24 fatal).
fn severity_name(number: i32) -> &'static str {
    match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "info",
    }
}

fn logs(request: ExportLogsServiceRequest) -> Decoded {
    let mut out = Decoded::new(Batch::Events(Vec::new()));
    let mut rows = Vec::new();
    for rl in request.resource_logs {
        let resource = resource_attributes(rl.resource);
        for sl in rl.scope_logs {
            let origin = origin(&resource, sl.scope);
            for log in sl.log_records {
                out.received += 1;
                let Ok(trace_id) = optional_id(&log.trace_id, 16) else {
                    out.reject(
                        ItemReject::InvalidTraceId,
                        format!(
                            "log record: traceId must be empty or 16 bytes, got {} bytes",
                            log.trace_id.len()
                        ),
                    );
                    continue;
                };
                let Ok(span_id) = optional_id(&log.span_id, 8) else {
                    out.reject(
                        ItemReject::InvalidSpanId,
                        format!(
                            "log record: spanId must be empty or 8 bytes, got {} bytes",
                            log.span_id.len()
                        ),
                    );
                    continue;
                };
                let (Ok(time_ns), Ok(observed_ns)) = (
                    optional_time(log.time_unix_nano),
                    optional_time(log.observed_time_unix_nano),
                ) else {
                    out.reject(
                        ItemReject::InvalidTimestamp,
                        "log record: a time is past the year 2262".into(),
                    );
                    continue;
                };
                let body = log.body.map(|b| match any_to_json(b) {
                    Value::String(s) => s,
                    other => other.to_string(),
                });
                let severity = if log.severity_text.is_empty() {
                    severity_name(log.severity_number).to_string()
                } else {
                    log.severity_text.to_ascii_lowercase()
                };
                rows.push(EventRecord {
                    time_ns: time_ns.or(observed_ns),
                    name: if log.event_name.is_empty() {
                        "log".into()
                    } else {
                        log.event_name
                    },
                    severity,
                    body,
                    trace_id,
                    span_id,
                    attributes: non_empty(log.attributes),
                    severity_number: (log.severity_number != 0).then_some(log.severity_number),
                    origin: Some(Arc::clone(&origin)),
                });
            }
        }
    }
    out.batch = Batch::Events(rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_the_exporter_quirks_decodes() {
        // Upper-case hex ids, intValue as a number and as a string, kind as an
        // integer, timestamps as strings, an unknown field.
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"openclaw"}}]},
            "scopeSpans":[{"scope":{"name":"openclaw","version":"1.2"},"spans":[
              {"traceId":"0AF7651916CD43DD8448EB211C80319C","spanId":"B7AD6B7169203331","name":"openclaw.model.usage",
               "kind":3,"startTimeUnixNano":"1764324000000000000","endTimeUnixNano":1764324002000000000,
               "attributes":[{"key":"openclaw.tokens.input","value":{"intValue":1200}},
                             {"key":"openclaw.tokens.output","value":{"intValue":"80"}}],
               "status":{"code":1},"somethingNew":true}]}]}]}"#;
        let d = decode_signal(Signal::Spans, Encoding::Json, body, &Limits::default())
            .expect("decodes");
        let Batch::Spans(spans) = d.batch else {
            panic!("spans")
        };
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.span_id, "b7ad6b7169203331");
        assert_eq!((s.kind, s.status_code), (3, 1));
        assert_eq!(
            (s.start_ns, s.end_ns),
            (1_764_324_000_000_000_000, 1_764_324_002_000_000_000)
        );
        let attrs = s.attributes.as_ref().expect("attributes");
        assert_eq!(attrs["openclaw.tokens.input"], 1200);
        assert_eq!(attrs["openclaw.tokens.output"], 80);
        assert_eq!(s.origin.service_name.as_deref(), Some("openclaw"));
        assert_eq!(s.origin.scope_version.as_deref(), Some("1.2"));
    }

    #[test]
    fn bad_ids_are_left_out_and_the_rest_kept() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
              {"traceId":"0af7651916cd43dd","spanId":"b7ad6b7169203331","name":"short trace id"},
              {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00000000000000000","name":"bad"},
              {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"good"}]}]}]}"#;
        // The odd-length hex span id makes the whole JSON body undecodable.
        assert!(decode_signal(Signal::Spans, Encoding::Json, body, &Limits::default()).is_err());
        let body = String::from_utf8_lossy(body).replace("00000000000000000", "0000000000000000");
        let d = decode_signal(
            Signal::Spans,
            Encoding::Json,
            body.as_bytes(),
            &Limits::default(),
        )
        .expect("decodes");
        assert_eq!(d.received, 3);
        assert_eq!(
            d.rejected,
            vec![ItemReject::InvalidTraceId, ItemReject::InvalidSpanId]
        );
        assert!(d.first_error.expect("message").contains("short trace id"));
        assert_eq!(d.batch.len(), 1);
    }

    #[test]
    fn truncated_protobuf_is_malformed() {
        let request = ExportTraceServiceRequest::default();
        assert!(decode_signal(
            Signal::Spans,
            Encoding::Protobuf,
            &request.encode_to_vec(),
            &Limits::default()
        )
        .is_ok());
        assert!(matches!(
            decode_signal(
                Signal::Spans,
                Encoding::Protobuf,
                &[0x0a, 0x05, 0x01],
                &Limits::default()
            ),
            Err(DecodeError::MalformedProtobuf(_))
        ));
    }

    #[test]
    fn json_with_trailing_bytes_is_malformed() {
        for (signal, body) in [
            (Signal::Spans, &br#"{"resourceSpans":[]} junk"#[..]),
            (Signal::DataPoints, br#"{"resourceMetrics":[]}{}"#),
            (Signal::LogRecords, br#"{} ]"#),
        ] {
            assert!(
                matches!(
                    decode_signal(signal, Encoding::Json, body, &Limits::default()),
                    Err(DecodeError::Malformed(_))
                ),
                "{signal:?}"
            );
        }
    }

    #[test]
    fn too_many_records_are_refused_in_both_encodings() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
                scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                    spans: vec![Default::default(); 3],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let records = |max_records| Limits {
            max_records,
            max_values: 1000,
        };
        let proto = request.encode_to_vec();
        let json = serde_json::to_vec(&request).expect("serializes");
        for (encoding, body) in [(Encoding::Protobuf, &proto), (Encoding::Json, &json)] {
            assert!(matches!(
                decode_signal(Signal::Spans, encoding, body, &records(2)),
                Err(DecodeError::TooLarge(_))
            ));
            let d = decode_signal(Signal::Spans, encoding, body, &records(3)).expect("fits");
            assert_eq!(d.received, 3);
        }
    }

    #[test]
    fn link_ids_of_the_wrong_length_are_stored_empty() {
        use opentelemetry_proto::tonic::trace::v1::{span::Link, ResourceSpans, ScopeSpans, Span};
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            links: vec![
                Link {
                    trace_id: vec![3; 16],
                    span_id: vec![4; 8],
                    ..Link::default()
                },
                Link {
                    trace_id: vec![5; 1000],
                    span_id: vec![6; 3],
                    ..Link::default()
                },
            ],
            ..Span::default()
        };
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
        .encode_to_vec();
        let d = decode_signal(Signal::Spans, Encoding::Protobuf, &body, &Limits::default())
            .expect("decodes");
        let Batch::Spans(spans) = d.batch else {
            panic!("spans")
        };
        let links = spans[0].links.as_ref().expect("links");
        assert_eq!(links[0]["trace_id"], "03".repeat(16));
        assert_eq!(links[0]["span_id"], "04".repeat(8));
        assert_eq!(
            (&links[1]["trace_id"], &links[1]["span_id"]),
            (&json!(""), &json!(""))
        );
    }
}
