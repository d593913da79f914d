//! The extra listeners: the OTLP endpoints on `TRACE_OTLP_LISTEN_ADDR` (the
//! standard port 4318 OpenClaw's docs point its exporter at; port 0 here,
//! found through `/v1/status`), `/health` alone on
//! `TRACE_HEALTH_LISTEN_ADDR`, a port already taken, and OpenClaw's
//! `metricNamePrefix` (`TRACE_OPENCLAW_METRIC_PREFIX`), driven by the real
//! OpenTelemetry exporters configured as OpenClaw configures its own.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::fixtures::{exporters, FIXTURES};
use common::{get_url, post_url, Daemon};
use serde_json::Value;

/// Runs an emitter script configured through the OTel environment only:
/// `OTEL_EXPORTER_OTLP_ENDPOINT` as a base the exporter appends the
/// signal's path to, protobuf, and the bearer token as a header, as
/// OpenClaw's `diagnostics.otel` (`endpoint`, `protocol: "http/protobuf"`,
/// `headers`) sets them. Returns what it printed (JSON).
fn emit_to_endpoint(
    interpreter: &Path,
    script: &str,
    endpoint: &str,
    signal: &str,
    variant: &str,
    extra_env: &[(&str, &str)],
) -> Value {
    let out = Command::new(interpreter)
        .arg(Path::new(FIXTURES).join(script))
        .args(["env", signal, variant])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Bearer%20s3cret",
        )
        .envs(extra_env.iter().copied())
        .output()
        .expect("run emitter");
    common::fixtures::emitted(out, &format!("{script} {signal} {variant}"))
}

#[test]
fn an_exporter_configured_as_openclaws_docs_say_stores_spans_through_the_otlp_port() {
    let d = Daemon::start(&[("TRACE_INGEST_TOKEN", "s3cret")]);
    let otlp = d.extra_base("otlp");
    assert_ne!(otlp, d.base, "a port of its own");

    let ex = exporters();
    let sent = emit_to_endpoint(&ex.node, "emit.mjs", &otlp, "traces", "proto", &[]);
    let span_id = sent["span_id"].as_str().expect("span id");
    let (trace_id, name): (String, String) = d
        .db()
        .query_row(
            "SELECT trace_id, name FROM spans WHERE span_id = ?1",
            [span_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the span is stored");
    assert_eq!(trace_id, sent["trace_id"].as_str().expect("trace id"));
    assert_eq!(name, "openclaw.model.usage");
    assert_eq!(
        d.strings("SELECT source || '/' || model FROM llm_calls"),
        vec!["otlp_span/gpt-5".to_string()],
        "the usage span is an LLM call, as on the API's port"
    );
    emit_to_endpoint(&ex.node, "emit.mjs", &otlp, "logs", "proto", &[]);
    assert_eq!(d.count("events"), 1, "the log record, through /v1/logs");
    let status = d.status();
    assert_eq!(status["otlp"]["spans"]["stored"], 1);
    assert_eq!(status["otlp"]["log_records"]["stored"], 1);

    // Same auth: without the token the port refuses, with an OTLP Status.
    let refused = post_url(
        &format!("{otlp}/v1/traces"),
        &common::traces_request(Vec::new()),
        &[("Content-Type", "application/x-protobuf")],
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(
        refused.headers.get("content-type").map(String::as_str),
        Some("application/x-protobuf")
    );
}

#[test]
fn each_extra_port_serves_its_own_routes_and_nothing_else() {
    let d = Daemon::start(&[("TRACE_HEALTH_LISTEN_ADDR", "127.0.0.1:0")]);
    let otlp = d.extra_base("otlp");
    let health = d.extra_base("health");

    let stored = post_url(
        &format!("{otlp}/v1/metrics"),
        br#"{"resourceMetrics":[]}"#,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(stored.status, 200, "{}", stored.body);
    for (method, path) in [
        ("GET", "/v1/status"),
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/v1/llm/summary"),
        ("POST", "/v1/errors"),
        ("GET", "/health"),
    ] {
        let reply = if method == "GET" {
            get_url(&format!("{otlp}{path}"))
        } else {
            post_url(
                &format!("{otlp}{path}"),
                br#"{"error_type":"x","message":"y"}"#,
                &[("Content-Type", "application/json")],
            )
        };
        assert_eq!(reply.status, 404, "{method} {path} on the OTLP port");
        assert!(
            reply.body.contains("TRACE_OTLP_LISTEN_ADDR"),
            "{}",
            reply.body
        );
    }
    assert_eq!(d.count("errors"), 0, "nothing reached a handler");

    let ok = get_url(&format!("{health}/health"));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["status"], "ok");
    for path in ["/v1/status", "/", "/metrics"] {
        assert_eq!(get_url(&format!("{health}{path}")).status, 404, "{path}");
    }
    let refused = post_url(
        &format!("{health}/v1/traces"),
        &common::traces_request(Vec::new()),
        &[("Content-Type", "application/x-protobuf")],
    );
    assert_eq!(refused.status, 404, "no ingest on the health port");
    // The API's port still serves everything.
    assert_eq!(d.get("/").status, 200);
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn a_taken_otlp_port_is_a_warning_in_the_log_and_status_not_a_crash() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let d = Daemon::start(&[("TRACE_OTLP_LISTEN_ADDR", addr.as_str())]);

    let status = d.status();
    let otlp = &status["listeners"]["otlp"];
    assert_eq!(otlp["state"], "failed", "{otlp}");
    assert_eq!(otlp["addr"], addr.as_str());
    let warned = status["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .any(|w| w.starts_with(&format!("TRACE_OTLP_LISTEN_ADDR={addr} could not be bound")));
    assert!(warned, "{}", status["warnings"]);
    let line = d
        .logs
        .lock()
        .expect("log lock")
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["variable"] == "TRACE_OTLP_LISTEN_ADDR")
        .expect("a log line names the variable");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["addr"], addr.as_str(), "{line}");

    // OTLP still lands on the API's port, and the daemon is healthy.
    let stored = d.post(
        "/v1/traces",
        &common::traces_request(Vec::new()),
        &[("Content-Type", "application/x-protobuf")],
    );
    assert_eq!(stored.status, 200, "{}", stored.body);
    assert_eq!(d.get("/health").status, 200);
    drop(taken);

    let off = Daemon::start(&[("TRACE_OTLP_LISTEN_ADDR", "off")]);
    let status = off.status();
    assert_eq!(status["listeners"]["otlp"]["state"], "off");
    assert_eq!(status["listeners"]["health"]["state"], "off");
    assert_eq!(
        status["listeners"]["api"].as_str(),
        off.base.strip_prefix("http://")
    );
}

/// Sums of the metric-derived LLM rows: (input, output).
fn metric_tokens(d: &Daemon) -> (Option<i64>, Option<i64>) {
    d.db()
        .query_row(
            "SELECT sum(prompt_tokens), sum(completion_tokens) FROM llm_calls WHERE source = 'otlp_metric'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("sums")
}

#[test]
fn usage_metrics_renamed_by_openclaws_metric_name_prefix_are_read_under_it() {
    let py = &exporters().python;
    let renamed = [("METRIC_PREFIX", "acme.")];
    let emit = |d: &Daemon| {
        emit_to_endpoint(
            py,
            "emit.py",
            &d.extra_base("otlp"),
            "metrics",
            "none",
            &renamed,
        )
    };
    let d = Daemon::start(&[
        ("TRACE_INGEST_TOKEN", "s3cret"),
        ("TRACE_OPENCLAW_METRIC_PREFIX", "acme."),
    ]);
    let sent = emit(&d);
    assert_eq!(
        d.strings("SELECT DISTINCT name FROM metric_points WHERE name LIKE 'acme.tokens'"),
        vec!["acme.tokens".to_string()],
        "stored under the name it came with"
    );
    assert_eq!(
        metric_tokens(&d),
        (sent["input"].as_i64(), Some(80)),
        "acme.tokens counted as OpenClaw's tokens"
    );
    assert_eq!(d.status()["config"]["openclaw_metric_prefix"], "acme.");

    // Without the setting, the renamed metrics are stored but are not usage.
    let d = Daemon::start(&[("TRACE_INGEST_TOKEN", "s3cret")]);
    emit(&d);
    assert!(d.count("metric_points") > 0);
    assert_eq!(metric_tokens(&d), (None, None));
}
