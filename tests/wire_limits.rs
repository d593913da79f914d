//! Hostile bodies at the wire layer, against the real daemon: requests that
//! would decode into far more memory than their size (a gzip of millions of
//! empty records, a huge native array) are refused with 413 before they are
//! decoded; the largest requests within the limits keep the daemon's peak
//! RSS (`VmHWM`) within 64 MiB; every gzip member is stored and junk after
//! the stream is refused.
//!
//! The memory bound is the point of these tests: it is checked, and printed
//! (`cargo test --test wire_limits -- --nocapture`).

mod common;

use std::io::Write;

use common::Daemon;
use openclaw_trace::wire::limits::{Limits, OBJECT_VALUES};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const GZIP: (&str, &str) = ("Content-Encoding", "gzip");

/// The bound on the daemon's peak RSS for any one request within the limits.
const MAX_PEAK_RSS_KIB: u64 = 64 * 1024;

/// The largest body the daemon takes by default (`TRACE_MAX_BODY_BYTES`).
const MAX_BODY: usize = 8 * 1024 * 1024;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// The daemon's peak resident set size so far, in KiB.
fn peak_rss_kib(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// A length-delimited protobuf field.
fn field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `ExportLogsServiceRequest { resource_logs: [{ scope_logs: [{ log_records:
/// [n empty records] }] }] }`, built on the wire (2 bytes a record), since
/// building it as structs would take the test gigabytes.
fn empty_log_records(n: usize) -> Vec<u8> {
    let mut scope_logs = Vec::with_capacity(2 * n);
    for _ in 0..n {
        field(2, &[], &mut scope_logs);
    }
    let mut resource_logs = Vec::new();
    field(2, &scope_logs, &mut resource_logs);
    let mut request = Vec::new();
    field(1, &resource_logs, &mut request);
    request
}

fn string_attribute(key: String, value: String) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn spans_request(spans: Vec<Span>) -> Vec<u8> {
    common::traces_request(spans)
}

fn span(i: usize, attributes: Vec<KeyValue>) -> Span {
    let mut trace_id = [7u8; 16];
    trace_id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
        name: format!("span {i}"),
        kind: 2,
        start_time_unix_nano: 1_764_324_000_000_000_000,
        end_time_unix_nano: 1_764_324_001_000_000_000,
        attributes,
        ..Span::default()
    }
}

/// The largest request of ordinary spans: 10,000 spans (the record limit)
/// of 7 string attributes each (15 values a span, within 16), filling the
/// 8 MiB body.
fn maximal_spans() -> Vec<u8> {
    let limits = Limits::default();
    let spans = (0..limits.max_records)
        .map(|i| {
            let attributes = (0..7)
                .map(|a| {
                    string_attribute(
                        format!("app.attribute.{a:02}"),
                        format!("value {i:06} of attribute {a:02} {}", "v".repeat(56)),
                    )
                })
                .collect();
            span(i, attributes)
        })
        .collect();
    spans_request(spans)
}

/// As many spans as the value limit allows with a dozen attributes each:
/// the costliest stored span per value (its map needs three B-tree nodes).
fn spans_of_twelve_attributes() -> Vec<u8> {
    let limits = Limits::default();
    // A span and its status are 2 values, each attribute 2.
    let spans = (0..limits.max_values / 26)
        .map(|i| {
            let attributes = (0..12)
                .map(|a| string_attribute(format!("k{a}"), format!("v{i}")))
                .collect();
            Span {
                status: Some(Status::default()),
                ..span(i, attributes)
            }
        })
        .collect();
    spans_request(spans)
}

/// One span with as many (empty) events as the value limit allows: each
/// becomes a JSON object of its own.
fn many_events() -> Vec<u8> {
    let limits = Limits::default();
    let events = (0..(limits.max_values - 3) / OBJECT_VALUES)
        .map(|_| Event::default())
        .collect();
    spans_request(vec![Span {
        events,
        ..span(0, Vec::new())
    }])
}

/// A resource with a hundred attributes over as many spans as the value
/// limit allows: every span keeps its own copy of the resource.
fn resource_copied_into_every_span() -> Vec<u8> {
    let limits = Limits::default();
    let resource = Resource {
        attributes: (0..100)
            .map(|a| string_attribute(format!("resource.{a}"), "r".repeat(40)))
            .collect(),
        ..Resource::default()
    };
    // Each span: itself, and the resource again (8 for its map, 200 for
    // its attributes, a value per 64 bytes of it).
    let per_span = 1 + 8 + 200 + resource.encoded_len().div_ceil(64);
    let spans = (0..limits.max_values / per_span - 1)
        .map(|i| span(i, Vec::new()))
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

/// One span holding as many small attributes as the value limit allows.
fn many_tiny_attributes() -> Vec<u8> {
    let limits = Limits::default();
    // The resource, the scope and the span are 3 values; each attribute 2.
    let n = (limits.max_values - 3) / 2;
    let attributes = (0..n)
        .map(|i| KeyValue {
            key: format!("k{i}"),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(i as i64)),
            }),
            ..KeyValue::default()
        })
        .collect();
    spans_request(vec![span(0, attributes)])
}

/// A span whose attributes are a few strings filling the body.
fn huge_strings() -> Vec<u8> {
    let attributes = (0..8)
        .map(|a| string_attribute(format!("big.{a}"), "x".repeat(MAX_BODY / 8 - 64)))
        .collect();
    spans_request(vec![span(0, attributes)])
}

/// A span with a bytes attribute (stored as base64, a third larger) and a
/// link whose trace id is most of the body.
fn huge_bytes_and_link_id() -> Vec<u8> {
    let attribute = KeyValue {
        key: "blob".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BytesValue(vec![0xa5; MAX_BODY / 2])),
        }),
        ..KeyValue::default()
    };
    let link = Link {
        trace_id: vec![0x5a; MAX_BODY / 2 - 1024],
        span_id: vec![1; 8],
        ..Link::default()
    };
    spans_request(vec![Span {
        links: vec![link],
        ..span(0, vec![attribute])
    }])
}

/// One native event with a metadata string filling the body.
fn native_huge_string() -> Vec<u8> {
    format!(
        r#"{{"name":"big","attributes":{{"text":"{}"}}}}"#,
        "t".repeat(MAX_BODY - 64)
    )
    .into_bytes()
}

/// One native event whose attributes object holds as many members as the
/// value limit allows (a member is 2 values, its key and its value).
fn native_many_members() -> Vec<u8> {
    let limits = Limits::default();
    let mut body = String::from(r#"{"name":"wide","attributes":{"#);
    // The event and its name are 2 values, the attributes object 8.
    for i in 0..(limits.max_values - 10) / 2 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(r#""k{i}":{i}"#));
    }
    body.push_str("}}");
    body.into_bytes()
}

/// One OTLP/JSON span with as many attributes as the value limit allows
/// (an attribute is 4 JSON values: the pair, its key, the value object and
/// the value).
fn otlp_json_many_attributes() -> Vec<u8> {
    let limits = Limits::default();
    let n = (limits.max_values - 20) / 4;
    let attributes: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"key":"k{i}","value":{{"intValue":{i}}}}}"#))
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c",
        "spanId":"b7ad6b7169203331","name":"wide","startTimeUnixNano":"1764324000000000000",
        "endTimeUnixNano":"1764324001000000000","attributes":[{}]}}]}}]}}]}}"#,
        attributes.join(",")
    )
    .into_bytes()
}

#[test]
fn millions_of_empty_log_records_in_a_small_gzip_get_413_and_nothing_is_stored() {
    let d = Daemon::start(&[]);
    let body = empty_log_records(4_000_000);
    let compressed = gzip(&body);
    assert!(body.len() <= MAX_BODY, "within the body limit");
    assert!(compressed.len() < 16 * 1024, "{} bytes", compressed.len());

    let reply = d.post("/v1/logs", &compressed, &[PROTOBUF, GZIP]);
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body.contains("TRACE_MAX_RECORDS_PER_REQUEST (10000)"),
        "names the limit: {}",
        reply.body
    );
    assert_eq!(d.count("events"), 0, "nothing stored");
    assert_eq!(d.status()["ingest"]["rejected"]["payload_too_large"], 1);

    let peak = peak_rss_kib(&d);
    println!(
        "4,000,000 empty log records ({} bytes gzip, {} bytes decompressed): VmHWM {peak} KiB",
        compressed.len(),
        body.len()
    );
    assert!(peak <= MAX_PEAK_RSS_KIB, "VmHWM {peak} KiB");
}

#[test]
fn an_8_mib_native_array_of_tiny_events_gets_413() {
    let d = Daemon::start(&[]);
    let mut body = String::from("[");
    while body.len() < MAX_BODY - 20 {
        body.push_str(r#"{"name":"a"},"#);
    }
    body.pop();
    body.push(']');
    let events = body.matches("name").count();
    assert!(events > 640_000, "{events} events");

    let reply = d.post("/v1/events", body.as_bytes(), &[JSON]);
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.json()["error"], "payload_too_large");
    assert!(
        reply.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("TRACE_MAX_RECORDS_PER_REQUEST (10000)")),
        "{}",
        reply.body
    );
    assert_eq!(d.count("events"), 0, "nothing stored");
    let peak = peak_rss_kib(&d);
    println!(
        "{events} native events in {} bytes: VmHWM {peak} KiB",
        body.len()
    );
    assert!(peak <= MAX_PEAK_RSS_KIB, "VmHWM {peak} KiB");
}

#[test]
fn the_record_limit_follows_its_variable() {
    let d = Daemon::start(&[("TRACE_MAX_RECORDS_PER_REQUEST", "3")]);
    let three = r#"[{"name":"a"},{"name":"b"},{"name":"c"}]"#;
    assert_eq!(d.post_json("/v1/events", three).status, 202);
    let four = r#"[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"}]"#;
    let reply = d.post_json("/v1/events", four);
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body.contains("TRACE_MAX_RECORDS_PER_REQUEST (3)"),
        "{}",
        reply.body
    );

    let spans = spans_request((0..4).map(|i| span(i, Vec::new())).collect());
    let reply = d.post("/v1/traces", &spans, &[PROTOBUF]);
    assert_eq!(reply.status, 413, "OTLP too: {}", reply.body);
    assert_eq!(d.count("events"), 3);
    assert_eq!(d.count("spans"), 0);
}

#[test]
fn every_gzip_member_is_stored() {
    let d = Daemon::start(&[]);
    // One JSON document split across two members: only both make it whole.
    let mut body = gzip(br#"[{"name":"from the first member"},"#);
    body.extend(gzip(br#"{"name":"from the second member"}]"#));
    let reply = d.post("/v1/events", &body, &[JSON, GZIP]);
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.json()["accepted"], 2);
    assert_eq!(
        d.strings("SELECT name FROM events WHERE source != 'host' ORDER BY id"),
        ["from the first member", "from the second member"]
    );

    // Two protobuf messages concatenated are one message with both spans.
    let mut body = gzip(&spans_request(vec![span(1, Vec::new())]));
    body.extend(gzip(&spans_request(vec![span(2, Vec::new())])));
    let reply = d.post("/v1/traces", &body, &[PROTOBUF, GZIP]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(d.count("spans"), 2);
}

#[test]
fn gzip_followed_by_junk_gets_400() {
    let d = Daemon::start(&[]);
    let mut body = gzip(br#"{"name":"a"}"#);
    body.extend_from_slice(b"junk");
    let reply = d.post("/v1/events", &body, &[JSON, GZIP]);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "malformed_body");
    assert!(
        reply.body.contains("after the end of the gzip stream"),
        "{}",
        reply.body
    );

    let mut body = gzip(&spans_request(vec![span(1, Vec::new())]));
    body.extend_from_slice(&[0; 8]);
    let reply = d.post("/v1/traces", &body, &[PROTOBUF, GZIP]);
    assert_eq!(reply.status, 400, "OTLP too: {}", reply.body);
    assert_eq!(d.count("events"), 0);
    assert_eq!(d.count("spans"), 0);
}

#[test]
fn trailing_bytes_after_a_json_document_get_400() {
    let d = Daemon::start(&[]);
    for (path, body) in [
        ("/v1/events", r#"{"name":"a"} {"name":"b"}"#),
        ("/v1/events", r#"[{"name":"a"}]x"#),
        ("/v1/traces", r#"{"resourceSpans":[]} junk"#),
        ("/v1/logs", r#"{"resourceLogs":[]}]"#),
    ] {
        let reply = d.post_json(path, body);
        assert_eq!(reply.status, 400, "{path} {body}: {}", reply.body);
    }
    assert_eq!(d.count("events"), 0);
}

#[test]
fn an_otlp_json_success_without_rejections_is_an_empty_object() {
    let d = Daemon::start(&[]);
    let reply = d.post_json(
        "/v1/traces",
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c",
            "spanId":"b7ad6b7169203331","name":"s"}]}]}]}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "{}");
}

#[test]
fn native_token_counts_and_timestamps_out_of_range_get_400() {
    let d = Daemon::start(&[]);
    let cases = [
        (
            r#"{"provider":"a","model":"m","total_tokens":1000000001}"#,
            "total_tokens",
        ),
        (
            r#"{"provider":"a","model":"m","prompt_tokens":9223372036854775807}"#,
            "prompt_tokens",
        ),
        (
            r#"[{"provider":"a","model":"m"},{"provider":"a","model":"m","completion_tokens":1e12}]"#,
            "[1].completion_tokens",
        ),
        (
            r#"{"provider":"a","model":"m","timestamp":9300000000000}"#,
            "timestamp",
        ),
        (
            r#"{"provider":"a","model":"m","timestamp":-1}"#,
            "timestamp",
        ),
    ];
    for (body, field) in cases {
        let reply = d.post_json("/v1/traces", body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        let message = reply.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let at_the_cap =
        r#"{"provider":"a","model":"m","total_tokens":1000000000,"timestamp":9223372036854}"#;
    assert_eq!(d.post_json("/v1/traces", at_the_cap).status, 202);
    assert_eq!(d.count("llm_calls"), 1);
}

/// A request to measure: what it is, where it goes, its content type and
/// how to build its body.
type Case = (
    &'static str,
    &'static str,
    (&'static str, &'static str),
    fn() -> Vec<u8>,
);

#[test]
fn the_largest_requests_within_the_limits_stay_under_64_mib() {
    let cases: [Case; 10] = [
        (
            "10,000 spans of 7 attributes",
            "/v1/traces",
            PROTOBUF,
            maximal_spans,
        ),
        (
            "spans of 12 attributes up to the value limit",
            "/v1/traces",
            PROTOBUF,
            spans_of_twelve_attributes,
        ),
        (
            "one span, events up to the value limit",
            "/v1/traces",
            PROTOBUF,
            many_events,
        ),
        (
            "a large resource copied into every span",
            "/v1/traces",
            PROTOBUF,
            resource_copied_into_every_span,
        ),
        (
            "one span, tiny attributes up to the value limit",
            "/v1/traces",
            PROTOBUF,
            many_tiny_attributes,
        ),
        (
            "one span, 8 MiB of string attributes",
            "/v1/traces",
            PROTOBUF,
            huge_strings,
        ),
        (
            "one span, 4 MiB of bytes and a 4 MiB link id",
            "/v1/traces",
            PROTOBUF,
            huge_bytes_and_link_id,
        ),
        (
            "one native event, members up to the value limit",
            "/v1/events",
            JSON,
            native_many_members,
        ),
        (
            "one native event, an 8 MiB string",
            "/v1/events",
            JSON,
            native_huge_string,
        ),
        (
            "one OTLP/JSON span, attributes up to the value limit",
            "/v1/traces",
            JSON,
            otlp_json_many_attributes,
        ),
    ];
    let mut peaks = Vec::new();
    for (name, path, content_type, make) in cases {
        let body = make();
        assert!(body.len() <= MAX_BODY, "{name}: {} bytes", body.len());
        let d = Daemon::start(&[]);
        let before = peak_rss_kib(&d);
        let reply = d.post(path, &body, &[content_type]);
        assert!(
            reply.status == 200 || reply.status == 202,
            "{name}: {} {}",
            reply.status,
            reply.body
        );
        let peak = peak_rss_kib(&d);
        println!(
            "{name}: {} bytes, VmHWM {before} KiB at start, {peak} KiB after",
            body.len()
        );
        peaks.push((name, peak));
    }
    for (name, peak) in peaks {
        assert!(peak <= MAX_PEAK_RSS_KIB, "{name}: VmHWM {peak} KiB");
    }
}
