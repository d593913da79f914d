//! OTLP ingest fed by the real OpenTelemetry exporters: the Python SDK with
//! its protobuf exporter (plain and gzip) and the Node SDK with its JSON and
//! protobuf exporters (which send chunked bodies). The first test to run
//! installs them (a venv under target/, `npm ci` in tests/fixtures); what they
//! sent is compared with the database field by field.

mod common;

use std::path::Path;
use std::process::Command;

use common::fixtures::{exporters, FIXTURES};
use common::Daemon;
use serde_json::Value;

/// Runs an emitter script against `d`; returns what it printed (JSON).
fn emit(d: &Daemon, interpreter: &Path, script: &str, signal: &str, variant: &str) -> Value {
    let out = Command::new(interpreter)
        .arg(Path::new(FIXTURES).join(script))
        .args([&d.base, signal, variant])
        .output()
        .expect("run emitter");
    common::fixtures::emitted(out, &format!("{script} {signal} {variant}"))
}

fn json_column(d: &Daemon, sql: &str, id: &str) -> Value {
    let text: String = d.db().query_row(sql, [id], |r| r.get(0)).expect(sql);
    serde_json::from_str(&text).expect("JSON column")
}

#[test]
fn python_protobuf_spans_land_field_by_field_plain_and_gzip() {
    let py = &exporters().python;
    for compression in ["none", "gzip"] {
        let d = Daemon::start(&[]);
        let sent = emit(&d, py, "emit.py", "traces", compression);
        let trace_id = sent["trace_id"].as_str().expect("trace id");
        let usage_id = sent["usage_span_id"].as_str().expect("span id");
        assert_eq!(d.count("spans"), 3, "{compression}");

        let db = d.db();
        let (t, parent, name, kind, status, service, scope, version): (String, String, String, i64, i64, String, String, String) = db
            .query_row(
                "SELECT trace_id, parent_span_id, name, kind, status_code, service_name, scope_name, scope_version
                 FROM spans WHERE span_id = ?1",
                [usage_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
            )
            .expect("the usage span is stored");
        assert_eq!(t, trace_id);
        assert_eq!(parent, sent["run_span_id"].as_str().expect("run span"));
        assert_eq!(
            (name.as_str(), kind, status),
            ("openclaw.model.usage", 3, 1)
        );
        assert_eq!(
            (service.as_str(), scope.as_str(), version.as_str()),
            ("openclaw", "openclaw", "2026.11.1")
        );
        let attrs = json_column(
            &d,
            "SELECT attributes FROM spans WHERE span_id = ?1",
            usage_id,
        );
        assert_eq!(attrs["openclaw.tokens.input"], 1200);
        assert_eq!(attrs["gen_ai.request.model"], "claude-sonnet-4");
        let resource = json_column(
            &d,
            "SELECT resource FROM spans WHERE span_id = ?1",
            usage_id,
        );
        assert_eq!(resource["host.name"], "fly-machine-1");

        let tool_id = sent["tool_span_id"].as_str().expect("tool span");
        let (status, message): (i64, String) = db
            .query_row(
                "SELECT status_code, status_message FROM spans WHERE span_id = ?1",
                [tool_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("tool span");
        assert_eq!((status, message.as_str()), (2, "web_search timed out"));
        let events = json_column(&d, "SELECT events FROM spans WHERE span_id = ?1", tool_id);
        assert_eq!(events[0]["name"], "retry");
        assert_eq!(events[0]["attributes"]["attempt"], 2);

        // The usage span is one LLM call.
        let call: (String, String, String, i64, i64, i64, i64, String, String) = db
            .query_row(
                "SELECT source, provider, model, prompt_tokens, completion_tokens, cache_read_tokens,
                        total_tokens, channel, trace_id FROM llm_calls",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)),
            )
            .expect("exactly one LLM row");
        assert_eq!(
            call,
            (
                "otlp_span".into(),
                "anthropic".into(),
                "claude-sonnet-4".into(),
                1200,
                80,
                300,
                1580,
                "telegram".into(),
                trace_id.into()
            )
        );
        let status = d.status();
        assert_eq!(status["otlp"]["spans"]["received"], 3);
        assert_eq!(status["otlp"]["spans"]["stored"], 3);
    }
}

/// Sums of the metric-derived LLM rows: (input, output, cost).
fn metric_usage(d: &Daemon) -> (i64, i64, f64) {
    d.db()
        .query_row(
            "SELECT sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) FROM llm_calls WHERE source = 'otlp_metric'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("sums")
}

#[test]
fn python_metrics_of_every_kind_and_cumulative_usage_counted_once() {
    let d = Daemon::start(&[]);
    let sent = emit(&d, &exporters().python, "emit.py", "metrics", "gzip");
    let exports = sent["exports"].as_i64().expect("exports");
    let kinds: Vec<(String, String, i64)> = d
        .db()
        .prepare("SELECT name, kind, count(*) FROM metric_points GROUP BY name, kind ORDER BY name")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let kind_of = |name: &str| kinds.iter().find(|k| k.0 == name).map(|k| k.1.clone());
    assert_eq!(kind_of("openclaw.tokens").as_deref(), Some("sum"));
    assert_eq!(
        kind_of("openclaw.run.duration_ms").as_deref(),
        Some("histogram")
    );
    assert_eq!(kind_of("openclaw.memory.rss").as_deref(), Some("gauge"));
    // Every export's points are kept as observations...
    let rss_points = kinds
        .iter()
        .find(|k| k.0 == "openclaw.memory.rss")
        .expect("gauge")
        .2;
    assert_eq!(rss_points, exports);
    let histogram = json_column(
        &d,
        "SELECT data FROM metric_points WHERE name = ?1 ORDER BY id LIMIT 1",
        "openclaw.run.duration_ms",
    );
    assert_eq!(
        (histogram["count"].as_i64(), histogram["sum"].as_f64()),
        (Some(1), Some(2140.0))
    );
    assert!(histogram["bucket_counts"]
        .as_array()
        .is_some_and(|b| !b.is_empty()));
    let (temporality, monotonic): (i64, bool) = d
        .db()
        .query_row(
            "SELECT temporality, is_monotonic FROM metric_points WHERE name = 'openclaw.tokens' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("sum point");
    assert_eq!((temporality, monotonic), (2, true), "cumulative, monotonic");

    // ...but the usage they carry is counted once, though the same cumulative
    // points were exported again unchanged and at shutdown.
    let (input, output, cost) = metric_usage(&d);
    assert_eq!(
        (input, output),
        (sent["input"].as_i64().expect("input"), 80)
    );
    assert!(
        (cost - sent["cost_usd"].as_f64().expect("cost")).abs() < 1e-9,
        "cost {cost}"
    );
    let models =
        d.strings("SELECT DISTINCT provider || '/' || model || '/' || channel FROM llm_calls");
    assert_eq!(
        models,
        vec!["anthropic/claude-sonnet-4/telegram".to_string()]
    );
}

#[test]
fn python_logs_become_events_with_their_trace_context() {
    let d = Daemon::start(&[]);
    let sent = emit(&d, &exporters().python, "emit.py", "logs", "none");
    assert_eq!(d.count("events"), 2);
    let (severity, number, body, trace_id, span_id, service): (String, i64, String, String, String, String) = d
        .db()
        .query_row(
            "SELECT severity, severity_number, body, trace_id, span_id, service_name FROM events WHERE body = 'webhook retry scheduled'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .expect("the warning");
    assert_eq!((severity.as_str(), number), ("warn", 13));
    assert_eq!(body, "webhook retry scheduled");
    assert_eq!(trace_id, sent["trace_id"].as_str().expect("trace"));
    assert_eq!(span_id, sent["span_id"].as_str().expect("span"));
    assert_eq!(service, "openclaw");
    let attrs = json_column(
        &d,
        "SELECT attributes FROM events WHERE body = ?1",
        "webhook retry scheduled",
    );
    assert_eq!(attrs["attempt"], 2);
    assert_eq!(attrs["openclaw.channel"], "slack");
    assert_eq!(d.status()["otlp"]["log_records"]["stored"], 2);
}

#[test]
fn node_json_and_protobuf_spans_carry_gen_ai_usage() {
    let node = &exporters().node;
    for protocol in ["json", "proto"] {
        let d = Daemon::start(&[]);
        let sent = emit(&d, node, "emit.mjs", "traces", protocol);
        let span_id = sent["span_id"].as_str().expect("span id");
        let (trace_id, kind, service): (String, i64, String) = d
            .db()
            .query_row(
                "SELECT trace_id, kind, service_name FROM spans WHERE span_id = ?1",
                [span_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap_or_else(|e| panic!("{protocol}: span stored: {e}"));
        assert_eq!(trace_id, sent["trace_id"].as_str().expect("trace id"));
        assert_eq!((kind, service.as_str()), (3, "openclaw-node"));
        let events = json_column(&d, "SELECT events FROM spans WHERE span_id = ?1", span_id);
        assert_eq!(events[0]["name"], "first_token");
        assert_eq!(events[0]["attributes"]["ttfb_ms"], 312.5);
        let call: (String, String, i64, i64, i64, i64, String) = d
            .db()
            .query_row(
                "SELECT provider, model, prompt_tokens, completion_tokens, cache_read_tokens, total_tokens, span_id FROM llm_calls",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .expect("one LLM row");
        // gen_ai.usage.input_tokens (900) includes the 100 read from the
        // cache: stored as 800 uncached input plus 100 cache read, so the
        // total is the 900 input and 45 output the span reported.
        assert_eq!(
            call,
            (
                "openai".into(),
                "gpt-5".into(),
                800,
                45,
                100,
                945,
                span_id.into()
            ),
            "{protocol}"
        );
    }
}

#[test]
fn node_json_metrics_exported_twice_count_once() {
    let d = Daemon::start(&[]);
    let sent = emit(&d, &exporters().node, "emit.mjs", "metrics", "json");
    let token_points: i64 = d
        .db()
        .query_row(
            "SELECT count(*) FROM metric_points WHERE name = 'openclaw.tokens'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        token_points,
        2 * sent["exports"].as_i64().expect("exports"),
        "input and output, each export"
    );
    let (input, output, cost) = metric_usage(&d);
    assert_eq!((input, output), (900, 45));
    assert!((cost - 0.0025).abs() < 1e-9, "cost {cost}");
}

#[test]
fn node_logs_json_and_protobuf() {
    let node = &exporters().node;
    for protocol in ["json", "proto"] {
        let d = Daemon::start(&[]);
        emit(&d, node, "emit.mjs", "logs", protocol);
        let (severity, number, body, service): (String, i64, String, String) = d
            .db()
            .query_row(
                "SELECT severity, severity_number, body, service_name FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap_or_else(|e| panic!("{protocol}: one event: {e}"));
        assert_eq!(
            (severity.as_str(), number, body.as_str(), service.as_str()),
            ("error", 17, "delivery failed", "openclaw-node"),
            "{protocol}"
        );
    }
}
