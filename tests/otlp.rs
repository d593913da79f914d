//! OTLP/HTTP edge cases against the real daemon, with requests built from
//! `opentelemetry-proto`'s types: bad input, partial success, gzip bombs,
//! chunked bodies, backpressure, and cumulative usage across a restart.

mod common;

use std::io::Write;

use common::Daemon;
use common::RpcStatus;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");

fn span(trace_id: Vec<u8>, span_id: Vec<u8>, name: &str) -> Span {
    Span {
        trace_id,
        span_id,
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_764_324_000_000_000_000,
        end_time_unix_nano: 1_764_324_001_000_000_000,
        ..Span::default()
    }
}

fn traces(spans: Vec<Span>) -> Vec<u8> {
    common::traces_request(spans)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn status_of(reply: &common::Reply) -> RpcStatus {
    assert_eq!(
        reply.headers.get("content-type").map(String::as_str),
        Some("application/x-protobuf")
    );
    RpcStatus::decode(reply.body_bytes().as_slice()).expect("a google.rpc.Status body")
}

#[test]
fn protobuf_chunked_and_gzip_bodies_are_stored() {
    let d = Daemon::start(&[]);
    let body = traces(vec![span(vec![1; 16], vec![2; 8], "chunked")]);
    let reply = d.post_chunked("/v1/traces", &body, &[PROTOBUF]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let response =
        ExportTraceServiceResponse::decode(reply.body_bytes().as_slice()).expect("response");
    assert_eq!(response.partial_success, None, "nothing rejected");

    let body = traces(vec![span(vec![3; 16], vec![4; 8], "gzipped")]);
    let reply = d.post(
        "/v1/traces",
        &gzip(&body),
        &[PROTOBUF, ("Content-Encoding", "gzip")],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let names: Vec<String> =
        d.strings("SELECT name || ':' || trace_id || ':' || span_id FROM spans ORDER BY id");
    assert_eq!(
        names,
        vec![
            format!("chunked:{}:{}", "01".repeat(16), "02".repeat(8)),
            format!("gzipped:{}:{}", "03".repeat(16), "04".repeat(8)),
        ]
    );
}

#[test]
fn bad_ids_are_a_partial_success_and_the_rest_is_stored() {
    let d = Daemon::start(&[]);
    let body = traces(vec![
        span(vec![1; 8], vec![2; 8], "short trace id"),
        span(vec![1; 16], vec![0; 8], "zero span id"),
        span(vec![1; 16], vec![2; 8], "good"),
    ]);
    let reply = d.post("/v1/traces", &body, &[PROTOBUF]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let partial = ExportTraceServiceResponse::decode(reply.body_bytes().as_slice())
        .expect("response")
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("short trace id"),
        "{}",
        partial.error_message
    );
    assert_eq!(d.count("spans"), 1);
    let otlp = &d.status()["otlp"]["spans"];
    assert_eq!(
        (otlp["received"].as_u64(), otlp["stored"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(otlp["rejected"]["invalid_trace_id"], 1);
    assert_eq!(otlp["rejected"]["invalid_span_id"], 1);

    // The same in JSON: the response is JSON too.
    let reply = d.post_json(
        "/v1/traces",
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"0202020202020202","name":"x"}]}]}]}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["partialSuccess"]["rejectedSpans"], 1);
}

#[test]
fn undecodable_requests_get_400_with_a_status_body() {
    let d = Daemon::start(&[]);
    let body = traces(vec![span(vec![1; 16], vec![2; 8], "cut short")]);
    let reply = d.post("/v1/traces", &body[..body.len() - 5], &[PROTOBUF]);
    assert_eq!(reply.status, 400);
    let status = status_of(&reply);
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("protobuf"), "{}", status.message);

    // Wrong JSON types: resourceSpans must be a list.
    let reply = d.post_json("/v1/traces", r#"{"resourceSpans": "all of them"}"#);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["code"], 3);
    let reply = d.post(
        "/v1/logs",
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":true}]}]}]}"#,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(reply.status, 400, "{}", reply.body);

    let reply = d.post(
        "/v1/logs",
        b"<xml/>",
        &[("Content-Type", "application/xml")],
    );
    assert_eq!(reply.status, 415);
    let reply = d.post("/v1/metrics", b"x", &[PROTOBUF, ("Content-Encoding", "br")]);
    assert_eq!(reply.status, 415);
    assert_eq!(status_of(&reply).code, 3);
    let reply = d.post(
        "/v1/traces",
        b"not gzip",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
    );
    assert_eq!(reply.status, 400);
    assert_eq!(d.count("spans"), 0);
    assert_eq!(d.get("/health").status, 200, "still serving");
}

#[test]
fn a_gzip_bomb_is_refused_at_the_limit() {
    let d = Daemon::start(&[("TRACE_MAX_BODY_BYTES", "1MiB")]);
    // 64 MiB of zeros inflate from about 64 KiB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(
        bomb.len() < 1 << 20,
        "the compressed body itself is under the limit"
    );
    let reply = d.post(
        "/v1/traces",
        &bomb,
        &[PROTOBUF, ("Content-Encoding", "gzip")],
    );
    assert_eq!(reply.status, 413);
    assert!(status_of(&reply).message.contains("decompressed"));
    assert_eq!(d.status()["ingest"]["rejected"]["payload_too_large"], 1);
}

#[test]
fn empty_requests_succeed() {
    let d = Daemon::start(&[]);
    let reply = d.post("/v1/traces", &[], &[PROTOBUF]);
    assert_eq!(
        reply.status, 200,
        "an empty protobuf body is an empty request"
    );
    assert!(reply.body_bytes().is_empty(), "an empty response message");
    let reply = d.post_json("/v1/metrics", "{}");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "{}", "an empty response message, in JSON");
    let reply = d.post(
        "/v1/logs",
        br#"{"resourceLogs":[]}"#,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "{}", "an empty response message, in JSON");
    // Every signal, empty in both of the ways JSON allows.
    for (path, body) in [
        ("/v1/traces", "{}"),
        ("/v1/traces", r#"{"resourceSpans":[]}"#),
        ("/v1/metrics", r#"{"resourceMetrics":[]}"#),
        ("/v1/logs", "{}"),
        (
            "/v1/traces",
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[]}]}]}"#,
        ),
    ] {
        let reply = d.post_json(path, body);
        assert_eq!(reply.status, 200, "{path} {body}: {}", reply.body);
        assert_eq!(
            reply.headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{path} {body}"
        );
        assert_eq!(reply.body, "{}", "{path} {body}");
    }
    // Nothing was stored, and nothing counted as received or rejected.
    for table in ["spans", "metric_points", "events", "llm_calls", "errors"] {
        assert_eq!(d.count(table), 0, "{table}");
    }
    let status = d.status();
    for signal in ["spans", "data_points", "log_records"] {
        for counter in ["received", "stored"] {
            assert_eq!(
                status["otlp"][signal][counter], 0,
                "otlp.{signal}.{counter}: {status}"
            );
        }
    }
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn backpressure_answers_503_with_retry_after() {
    let d = std::sync::Arc::new(Daemon::start(&[("TRACE_MAX_PENDING_RECORDS", "1")]));
    d.hold("store");
    let held = {
        let d = std::sync::Arc::clone(&d);
        std::thread::spawn(move || {
            d.post(
                "/v1/traces",
                &traces(vec![span(vec![1; 16], vec![1; 8], "held")]),
                &[PROTOBUF],
            )
        })
    };
    d.wait_pending(1);
    let reply = d.post(
        "/v1/traces",
        &traces(vec![span(vec![1; 16], vec![2; 8], "refused")]),
        &[PROTOBUF],
    );
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.headers.get("retry-after").map(String::as_str),
        Some("1")
    );
    assert_eq!(status_of(&reply).code, 14, "UNAVAILABLE");
    d.release();
    assert_eq!(held.join().expect("thread").status, 200);
}

fn usage_point(value: f64, time: u64) -> Vec<u8> {
    let attr = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "openclaw.cost.usd".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![
                                attr("openclaw.provider", "anthropic"),
                                attr("openclaw.model", "claude-opus-4"),
                            ],
                            start_time_unix_nano: 1_764_324_000_000_000_000,
                            time_unix_nano: time,
                            value: Some(number_data_point::Value::AsDouble(value)),
                            ..NumberDataPoint::default()
                        }],
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn a_cumulative_point_posted_again_after_a_restart_counts_once() {
    let d = Daemon::start(&[]);
    let cost = |d: &Daemon| -> f64 {
        d.db()
            .query_row(
                "SELECT coalesce(sum(cost_usd), 0) FROM llm_calls",
                [],
                |r| r.get(0),
            )
            .expect("sum")
    };
    assert_eq!(
        d.post(
            "/v1/metrics",
            &usage_point(0.5, 1_764_324_060_000_000_000),
            &[PROTOBUF]
        )
        .status,
        200
    );
    assert_eq!(
        d.post(
            "/v1/metrics",
            &usage_point(0.5, 1_764_324_120_000_000_000),
            &[PROTOBUF]
        )
        .status,
        200
    );
    assert_eq!(cost(&d), 0.5);
    let d = d.restart();
    assert_eq!(
        d.post(
            "/v1/metrics",
            &usage_point(0.5, 1_764_324_180_000_000_000),
            &[PROTOBUF]
        )
        .status,
        200
    );
    assert_eq!(cost(&d), 0.5, "the series' last value survived the restart");
    assert_eq!(
        d.post(
            "/v1/metrics",
            &usage_point(0.75, 1_764_324_240_000_000_000),
            &[PROTOBUF]
        )
        .status,
        200
    );
    assert_eq!(cost(&d), 0.75);
    assert_eq!(
        d.count("metric_points"),
        4,
        "every export is kept as an observation"
    );
}

#[test]
fn native_records_still_post_to_the_shared_paths() {
    let d = Daemon::start(&[]);
    let reply = d.post_json("/v1/traces", r#"{"provider":"anthropic","model":"claude"}"#);
    assert_eq!(reply.status, 202, "{}", reply.body);
    let reply = d.post_json("/v1/metrics", r#"[{"name":"queue.depth","value":3}]"#);
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        (
            d.count("llm_calls"),
            d.count("metric_points"),
            d.count("spans")
        ),
        (1, 1, 0)
    );
}

#[test]
fn exponential_histograms_and_summaries_are_stored_with_their_buckets_and_quantiles() {
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, summary_data_point::ValueAtQuantile,
        ExponentialHistogram, ExponentialHistogramDataPoint, Summary, SummaryDataPoint,
    };
    let d = Daemon::start(&[]);
    let attr = KeyValue {
        key: "route".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("/chat".into())),
        }),
        ..KeyValue::default()
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "latency.exp".into(),
                        unit: "ms".into(),
                        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                attributes: vec![attr.clone()],
                                start_time_unix_nano: 1_764_324_000_000_000_000,
                                time_unix_nano: 1_764_324_060_000_000_000,
                                count: 7,
                                sum: Some(42.5),
                                scale: 3,
                                zero_count: 1,
                                zero_threshold: 0.001,
                                positive: Some(Buckets {
                                    offset: -2,
                                    bucket_counts: vec![1, 2, 3],
                                }),
                                negative: None,
                                min: Some(0.0),
                                max: Some(20.0),
                                ..ExponentialHistogramDataPoint::default()
                            }],
                            aggregation_temporality: 1,
                        })),
                        ..Metric::default()
                    },
                    Metric {
                        name: "latency.summary".into(),
                        data: Some(metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                attributes: vec![attr],
                                start_time_unix_nano: 1_764_324_000_000_000_000,
                                time_unix_nano: 1_764_324_060_000_000_000,
                                count: 10,
                                sum: 55.0,
                                quantile_values: vec![
                                    ValueAtQuantile {
                                        quantile: 0.5,
                                        value: 5.0,
                                    },
                                    ValueAtQuantile {
                                        quantile: 0.99,
                                        value: 9.5,
                                    },
                                ],
                                ..SummaryDataPoint::default()
                            }],
                        })),
                        ..Metric::default()
                    },
                ],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
    .encode_to_vec();
    let reply = d.post("/v1/metrics", &request, &[PROTOBUF]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body_bytes().is_empty(), "nothing rejected");
    type Row = (
        String,
        Option<f64>,
        Option<i64>,
        String,
        String,
        Option<String>,
        i64,
        i64,
    );
    let rows: Vec<Row> = d
        .db()
        .prepare(
            "SELECT kind, value, temporality, data, attributes, unit, time_ns, start_time_ns
             FROM metric_points WHERE source != 'host' ORDER BY id",
        )
        .expect("prepare")
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let json = |s: &str| -> serde_json::Value { serde_json::from_str(s).expect("JSON") };

    let (kind, value, temporality, data, attrs, unit, time, start) = &rows[0];
    assert_eq!(kind, "exponential_histogram");
    assert_eq!(*value, Some(42.5), "the sum is the point's value");
    assert_eq!(*temporality, Some(1), "delta");
    assert_eq!(unit.as_deref(), Some("ms"));
    assert_eq!(
        (*time, *start),
        (1_764_324_060_000_000_000, 1_764_324_000_000_000_000)
    );
    assert_eq!(json(attrs), serde_json::json!({"route": "/chat"}));
    assert_eq!(
        json(data),
        serde_json::json!({
            "count": 7, "sum": 42.5, "min": 0.0, "max": 20.0, "scale": 3,
            "zero_count": 1, "zero_threshold": 0.001,
            "positive": {"offset": -2, "bucket_counts": [1, 2, 3]},
            "negative": null
        })
    );

    let (kind, value, temporality, data, attrs, _, _, _) = &rows[1];
    assert_eq!(kind, "summary");
    assert_eq!(*value, Some(55.0));
    assert_eq!(*temporality, None, "a summary has no temporality");
    assert_eq!(json(attrs), serde_json::json!({"route": "/chat"}));
    assert_eq!(
        json(data),
        serde_json::json!({
            "count": 10, "sum": 55.0,
            "quantile_values": [{"quantile": 0.5, "value": 5.0}, {"quantile": 0.99, "value": 9.5}]
        })
    );
    let status = d.status();
    assert_eq!(status["otlp"]["data_points"]["received"], 2, "{status}");
    assert_eq!(status["otlp"]["data_points"]["stored"], 2, "{status}");
}

#[test]
fn the_ingest_token_guards_the_otlp_endpoints() {
    let d = Daemon::start(&[("TRACE_INGEST_TOKEN", "otlp-s3cret")]);
    let spans = traces(vec![span(vec![1; 16], vec![2; 8], "guarded")]);
    let metrics = usage_point(0.5, 1_764_324_060_000_000_000);
    let logs =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}}]}]}]}"#;
    let cases: [(&str, &[u8], (&str, &str)); 3] = [
        ("/v1/traces", &spans, PROTOBUF),
        ("/v1/metrics", &metrics, PROTOBUF),
        ("/v1/logs", logs, ("Content-Type", "application/json")),
    ];
    for (path, body, content_type) in cases {
        for auth in [None, Some("Bearer nope"), Some("Basic otlp-s3cret")] {
            let mut headers = vec![content_type];
            headers.extend(auth.map(|a| ("Authorization", a)));
            let reply = d.post(path, body, &headers);
            assert_eq!(reply.status, 401, "{path} {auth:?}: {}", reply.body);
            if content_type == PROTOBUF {
                let status = status_of(&reply);
                assert!(
                    status.message.starts_with("unauthorized"),
                    "{path}: {status:?}"
                );
            }
        }
    }
    for table in ["spans", "metric_points", "events", "llm_calls"] {
        assert_eq!(
            d.count(table),
            0,
            "{table}: nothing stored without the token"
        );
    }
    assert_eq!(d.status()["ingest"]["rejected"]["unauthorized"], 9);
    for (path, body, content_type) in cases {
        let reply = d.post(
            path,
            body,
            &[content_type, ("Authorization", "Bearer otlp-s3cret")],
        );
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    assert_eq!(d.count("spans"), 1);
    assert_eq!(d.count("metric_points"), 1);
    assert_eq!(d.count("events"), 1);
}
