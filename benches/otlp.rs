//! OTLP span ingest: spans/s stored through the real daemon with 100-span
//! protobuf requests over several connections, next to inserting the same
//! span rows straight into SQLite in one transaction, measured in the same
//! run; and the daemon's peak RSS during the load.
//!
//! `cargo bench --bench otlp` (add `-- quick` for a short run).

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{blast, median, Daemon};
use openclaw_trace::wire::limits::Limits;
use openclaw_trace::wire::otlp::{decode_signal, Encoding};
use openclaw_trace_actors::records::{Source, Stamp};
use openclaw_trace_actors::stats::Signal;
use openclaw_trace_actors::{schema, store};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

const SPANS_PER_REQUEST: usize = 100;
const CONNECTIONS: [usize; 2] = [4, 16];

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

/// One request of OpenClaw-like spans: a run, model calls with usage, tools.
fn request(n: usize) -> Vec<u8> {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let id = (n * SPANS_PER_REQUEST + i) as u64 + 1;
            let trace = (n as u128 + 1).to_be_bytes().to_vec();
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
                trace_id: trace,
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: if i == 0 {
                    vec![]
                } else {
                    (n as u64 * 1000 + 1).to_be_bytes().to_vec()
                },
                name: name.into(),
                kind: 1,
                start_time_unix_nano: 1_764_324_000_000_000_000 + id * 1_000_000,
                end_time_unix_nano: 1_764_324_000_500_000_000 + id * 1_000_000,
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

/// Inserts the spans of `bodies` with the store's statements in one
/// transaction (decoding done beforehand, not timed); returns spans/s.
fn baseline(bodies: &[Vec<u8>]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = schema::open_writer(&dir.path().join("b.db")).expect("open");
    let stamp = Stamp {
        agent_id: "bench".into(),
        received_ns: 1,
        source: Source::Otlp,
    };
    let batches: Vec<_> = bodies
        .iter()
        .map(|b| {
            decode_signal(Signal::Spans, Encoding::Protobuf, b, &Limits::default())
                .expect("decode")
                .batch
        })
        .collect();
    let spans: usize = batches.iter().map(|b| b.len()).sum();
    let start = Instant::now();
    let tx = conn.transaction().expect("tx");
    for batch in &batches {
        store::insert_batch(
            &tx,
            batch,
            &stamp,
            &openclaw_trace_actors::rollup::Pricing::none(),
        )
        .expect("insert");
    }
    tx.commit().expect("commit");
    spans as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let (runs, requests) = if quick { (3, 200) } else { (5, 1000) };
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..requests).map(request).collect());
    let spans = requests * SPANS_PER_REQUEST;
    println!("{spans} spans in {requests} protobuf requests of {SPANS_PER_REQUEST} (~{} bytes each); median of {runs} runs, interleaved", bodies[0].len());
    println!("| client connections | baseline: straight into SQLite, one transaction (spans/s) | through the daemon (spans/s) | daemon / baseline | daemon peak RSS (median) |");
    println!("| --- | --- | --- | --- | --- |");
    for connections in CONNECTIONS {
        let (mut base, mut daemon, mut rss) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            base.push(baseline(&bodies));
            let d = Daemon::start();
            let elapsed = blast(
                &format!("{}/v1/traces", d.base),
                "application/x-protobuf",
                Arc::clone(&bodies),
                connections,
                200,
            );
            daemon.push(spans as f64 / elapsed.as_secs_f64());
            rss.push(d.peak_rss_kib() as f64);
        }
        let (b, d) = (median(base), median(daemon));
        println!(
            "| {connections} | {b:.0} | {d:.0} | {:.3} | {:.1} MiB |",
            d / b,
            median(rss) / 1024.0
        );
    }
}
