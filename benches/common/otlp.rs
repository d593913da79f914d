//! The OTLP span requests the benchmarks send: the same bodies for the
//! daemon (`cargo bench --bench otlp`, and `wrk` through the body file that
//! `benches/baseline.rs` writes) and for the raw SQLite baselines.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

/// Spans in each request.
pub const SPANS_PER_REQUEST: usize = 100;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn int(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// Nanoseconds between the starts of consecutive spans.
pub const SPAN_STEP_NS: u64 = 1_000;

/// An hour ago, in unix nanoseconds: the first span's start in the
/// benchmarks' requests. Recent, so the daemon's age rotation (7 days by
/// default) deletes nothing while it is measured, and rising from request
/// to request as real spans do, so each index grows at its end (the same
/// times sent again and again would scatter every insert over the index).
pub fn base_ns() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now - 3_600_000_000_000
}

/// Request `n` of OpenClaw-like spans (a run, model calls with usage,
/// tools), all in the trace `trace_id`: [`SPANS_PER_REQUEST`] spans in one
/// protobuf `ExportTraceServiceRequest` of about 20 KB. Span `id` (counted
/// from 1 over all requests) starts at `base_ns + id * SPAN_STEP_NS` and
/// lasts half a second.
pub fn request(n: usize, trace_id: [u8; 16], base_ns: u64) -> Vec<u8> {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let id = (n * SPANS_PER_REQUEST + i) as u64 + 1;
            let (name, attributes) = match i % 3 {
                0 => (
                    "openclaw.model.usage",
                    vec![
                        text("gen_ai.system", "anthropic"),
                        text("gen_ai.request.model", "claude-sonnet-4"),
                        int("openclaw.tokens.input", 1200),
                        int("openclaw.tokens.output", 80),
                        int("openclaw.tokens.cache_read", 300),
                        text("openclaw.channel", "telegram"),
                    ],
                ),
                1 => (
                    "openclaw.tool.execution",
                    vec![
                        text("gen_ai.tool.name", "web_search"),
                        text("openclaw.toolName", "web_search"),
                    ],
                ),
                _ => (
                    "openclaw.message.processed",
                    vec![
                        text("openclaw.channel", "telegram"),
                        int("openclaw.bytes", 2048),
                    ],
                ),
            };
            Span {
                trace_id: trace_id.to_vec(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: if i == 0 {
                    vec![]
                } else {
                    (n as u64 * 1000 + 1).to_be_bytes().to_vec()
                },
                name: name.into(),
                kind: 1,
                start_time_unix_nano: base_ns + id * SPAN_STEP_NS,
                end_time_unix_nano: base_ns + id * SPAN_STEP_NS + 500_000_000,
                attributes,
                status: Some(Status {
                    code: status::StatusCode::Ok as i32,
                    message: String::new(),
                }),
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "openclaw"),
                    text("host.name", "fly-machine-1"),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "openclaw".into(),
                    version: "2026.11.1".into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}
