//! The owner's query API (docs/API.md) against the real daemon, filled
//! through the real ingest endpoints with known records.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Daemon;
use serde_json::{json, Value};

const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// An OTLP/JSON attribute.
fn attr(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({"stringValue": s}),
        Value::Number(n) if n.is_i64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n}),
        other => panic!("attribute {other}"),
    };
    json!({"key": key, "value": v})
}

/// An OpenClaw `openclaw.model.usage` span, as OTLP/JSON.
#[allow(clippy::too_many_arguments)]
fn usage_span(
    trace: &str,
    span: &str,
    parent: Option<&str>,
    at_ms: i64,
    provider: &str,
    model: &str,
    tokens: [i64; 4],
    failed: bool,
) -> Value {
    let start = at_ms * 1_000_000;
    let mut s = json!({
        "traceId": trace, "spanId": span, "name": "openclaw.model.usage", "kind": 1,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + 1_500_000_000).to_string(),
        "attributes": [
            attr("gen_ai.system", json!(provider)),
            attr("gen_ai.request.model", json!(model)),
            attr("openclaw.tokens.input", json!(tokens[0])),
            attr("openclaw.tokens.output", json!(tokens[1])),
            attr("openclaw.tokens.cache_read", json!(tokens[2])),
            attr("openclaw.tokens.cache_write", json!(tokens[3])),
            attr("openclaw.channel", json!("telegram")),
        ],
        "status": {"code": if failed { 2 } else { 0 }},
    });
    if let Some(p) = parent {
        s["parentSpanId"] = json!(p);
    }
    s
}

fn spans_body(spans: Vec<Value>) -> String {
    json!({"resourceSpans": [{"resource": {"attributes": [attr("service.name", json!("openclaw"))]},
        "scopeSpans": [{"scope": {"name": "openclaw"}, "spans": spans}]}]})
    .to_string()
}

/// OpenClaw's cumulative usage metrics for one provider and model: the
/// running totals of tokens by kind and of cost, as one export.
fn usage_metrics(at_ms: i64, provider: &str, model: &str, tokens: [i64; 4], cost: f64) -> String {
    let start = (at_ms - HOUR_MS) * 1_000_000;
    let time = at_ms * 1_000_000;
    let point = |kind: Option<&str>, value: Value| {
        let mut attrs = vec![
            attr("openclaw.provider", json!(provider)),
            attr("openclaw.model", json!(model)),
            attr("openclaw.channel", json!("telegram")),
        ];
        if let Some(k) = kind {
            attrs.push(attr("openclaw.token", json!(k)));
        }
        json!({"attributes": attrs, "startTimeUnixNano": start.to_string(),
               "timeUnixNano": time.to_string(), "asDouble": value})
    };
    let token_points: Vec<Value> = ["input", "output", "cache_read", "cache_write"]
        .iter()
        .zip(tokens)
        .map(|(k, n)| point(Some(k), json!(n)))
        .collect();
    json!({"resourceMetrics": [{"resource": {"attributes": [attr("service.name", json!("openclaw"))]},
        "scopeMetrics": [{"scope": {"name": "openclaw"}, "metrics": [
            {"name": "openclaw.tokens", "unit": "1",
             "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": token_points}},
            {"name": "openclaw.cost.usd", "unit": "1",
             "sum": {"aggregationTemporality": 2, "isMonotonic": true,
                     "dataPoints": [point(None, json!(cost))]}}
        ]}]}]})
    .to_string()
}

/// USD per 1M tokens of `provider`'s `model` in the built-in table: input,
/// output, cache read, cache write ("-" falls back to the input rate).
fn rates(provider: &str, model: &str) -> [f64; 4] {
    let table = include_str!("../actors/data/prices.txt");
    let line = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() == 6 && f[0] == provider && f[1] == model)
        .unwrap_or_else(|| panic!("{provider} {model} is not in the built-in table"));
    let input: f64 = line[2].parse().expect("input");
    let rate = |v: &str| v.parse().unwrap_or(input);
    [input, rate(line[3]), rate(line[4]), rate(line[5])]
}

/// What `tokens` (input, output, cache read, cache write) cost at `rates`.
fn cost(rates: [f64; 4], tokens: [i64; 4]) -> f64 {
    rates
        .iter()
        .zip(tokens)
        .map(|(r, n)| r * n as f64 / 1e6)
        .sum()
}

fn get_ok(d: &Daemon, path: &str) -> Value {
    let r = d.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

fn group<'a>(summary: &'a Value, key: &str, value: &str) -> &'a Value {
    summary["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["key"][key] == value)
        .unwrap_or_else(|| panic!("no group {key}={value} in {summary}"))
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap_or(f64::NAN) - b).abs() < 1e-9
}

/// Known records over the last day: native calls with and without cost, two
/// OpenClaw calls exported as usage spans, and the same two calls again in
/// OpenClaw's usage metrics.
fn fill(d: &Daemon, now: i64) {
    let calls = json!([
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "prompt_tokens": 1000,
         "completion_tokens": 200, "cache_read_tokens": 5000, "cost_usd": 0.5,
         "latency_ms": 1000.0, "session_id": "s1", "timestamp": now - 5 * HOUR_MS},
        {"provider": "openai", "model": "gpt-4o", "prompt_tokens": 300, "completion_tokens": 30,
         "latency_ms": 400.0, "status": "error", "session_id": "s2",
         "timestamp": now - 3 * HOUR_MS},
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "prompt_tokens": 10,
         "completion_tokens": 20, "cost_usd": 0.25, "latency_ms": 2000.0, "session_id": "s1",
         "timestamp": now - 10 * 60_000},
    ]);
    let r = d.post_json("/v1/traces", &calls.to_string());
    assert_eq!(r.status, 202, "{}", r.body);

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = d.post_json(
        "/v1/traces",
        &spans_body(vec![
            usage_span(
                trace,
                "00f067aa0ba902b7",
                None,
                now - 2 * HOUR_MS,
                "google",
                "gemini-2.5-pro",
                [100, 10, 1000, 0],
                false,
            ),
            usage_span(
                trace,
                "00f067aa0ba902b8",
                Some("00f067aa0ba902b7"),
                now - 20 * 60_000,
                "google",
                "gemini-2.5-pro",
                [50, 5, 0, 500],
                true,
            ),
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The same two calls in the usage metrics: the running totals.
    let r = d.post_json(
        "/v1/metrics",
        // At the second span's start: in an hour that holds usage spans.
        &usage_metrics(
            now - 20 * 60_000,
            "google",
            "gemini-2.5-pro",
            [150, 15, 1000, 500],
            0.01,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn summary_totals_each_group_once_whatever_the_sources() {
    let d = Daemon::start(&[]);
    let now = now_ms();
    fill(&d, now);

    let s = get_ok(&d, "/v1/llm/summary?since=24h&group_by=model");
    assert_eq!(s["sources"]["used"], json!(["native", "otlp_span"]), "{s}");
    let skipped = &s["sources"]["skipped"][0];
    assert_eq!(skipped["source"], "otlp_metric", "{s}");
    assert!(skipped["rows"].as_i64().unwrap_or(0) >= 1, "{s}");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap_or("")
            .contains("otlp_span"),
        "{s}"
    );

    let claude = group(&s, "model", "claude-sonnet-4-5");
    assert_eq!(claude["calls"], 2);
    assert_eq!(claude["errors"], 0);
    assert_eq!(
        claude["tokens"],
        json!({"input": 1010, "output": 220, "cache_read": 5000, "cache_write": 0, "total": 6230})
    );
    assert!(close(&claude["cost_usd"]["reported"], 0.75), "{claude}");
    assert!(close(&claude["cost_usd"]["total"], 0.75), "{claude}");
    assert_eq!(claude["cost_usd"]["unpriced_calls"], 0);
    let p50 = claude["latency_ms"]["p50"].as_f64().expect("p50");
    assert!((p50 - 1000.0).abs() / 1000.0 <= 0.026, "{claude}");
    let p99 = claude["latency_ms"]["p99"].as_f64().expect("p99");
    assert!((p99 - 2000.0).abs() / 2000.0 <= 0.026, "{claude}");

    assert!(
        close(&claude["cost_usd"]["estimated"], 0.0),
        "reported costs stand: {claude}"
    );

    // No cost sent: estimated from the built-in table.
    let gpt = group(&s, "model", "gpt-4o");
    assert_eq!(gpt["calls"], 1);
    assert_eq!(gpt["errors"], 1);
    assert_eq!(gpt["error_rate"], 1.0);
    assert!(close(&gpt["cost_usd"]["reported"], 0.0), "{gpt}");
    let gpt_cost = cost(rates("openai", "gpt-4o"), [300, 30, 0, 0]);
    assert!(
        close(&gpt["cost_usd"]["estimated"], gpt_cost),
        "{gpt} vs {gpt_cost}"
    );
    assert_eq!(gpt["cost_usd"]["unpriced_calls"], 0);

    // The OpenClaw calls, counted from their spans only.
    let gemini = group(&s, "model", "gemini-2.5-pro");
    assert_eq!(gemini["calls"], 2);
    assert_eq!(gemini["errors"], 1);
    assert_eq!(
        gemini["tokens"],
        json!({"input": 150, "output": 15, "cache_read": 1000, "cache_write": 500, "total": 1665})
    );
    assert!(close(&gemini["cost_usd"]["reported"], 0.0), "{gemini}");
    let g = rates("google", "gemini-2.5-pro");
    let gemini_cost = cost(g, [100, 10, 1000, 0]) + cost(g, [50, 5, 0, 500]);
    assert!(
        close(&gemini["cost_usd"]["estimated"], gemini_cost),
        "{gemini} vs {gemini_cost}"
    );

    assert_eq!(s["totals"]["calls"], 5);
    assert_eq!(s["totals"]["errors"], 2);
    assert_eq!(s["totals"]["tokens"]["total"], 6230 + 330 + 1665);
    assert!(close(&s["totals"]["cost_usd"]["reported"], 0.75), "{s}");
    assert!(
        close(
            &s["totals"]["cost_usd"]["total"],
            0.75 + gpt_cost + gemini_cost
        ),
        "{s}"
    );
    assert_eq!(s["groups_total"], 3);
    assert_eq!(s["truncated"], false);

    // Usage metrics in an hour with no usage spans are counted: an agent
    // that exported only metrics then loses nothing.
    let r = d.post_json(
        "/v1/metrics",
        &usage_metrics(
            now - 6 * HOUR_MS,
            "google",
            "gemini-2.5-flash",
            [7, 3, 0, 0],
            0.002,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let both = get_ok(&d, "/v1/llm/summary?since=24h&group_by=model");
    assert_eq!(
        both["sources"]["used"],
        json!(["native", "otlp_span", "otlp_metric"]),
        "{both}"
    );
    assert_eq!(
        both["sources"]["skipped"][0]["source"], "otlp_metric",
        "{both}"
    );
    let flash = group(&both, "model", "gemini-2.5-flash");
    assert_eq!(flash["calls"], 0, "{flash}");
    assert_eq!(flash["tokens"]["total"], 10, "{flash}");
    assert!(close(&flash["cost_usd"]["reported"], 0.002), "{flash}");
    assert_eq!(
        group(&both, "model", "gemini-2.5-pro")["tokens"],
        gemini["tokens"]
    );
    assert_eq!(both["totals"]["tokens"]["total"], 6230 + 330 + 1665 + 10);

    // The metrics alone, when asked for, hold the same usage, and their
    // reported cost; their rows are intervals, not calls.
    let m = get_ok(
        &d,
        "/v1/llm/summary?since=24h&source=otlp_metric&group_by=model",
    );
    assert_eq!(m["sources"]["used"], json!(["otlp_metric"]), "{m}");
    let pro = group(&m, "model", "gemini-2.5-pro");
    assert_eq!(pro["tokens"], gemini["tokens"], "{m}");
    assert_eq!(m["totals"]["calls"], 0, "{m}");
    assert!(close(&pro["cost_usd"]["reported"], 0.01), "{m}");
    assert!(close(&m["totals"]["cost_usd"]["reported"], 0.012), "{m}");
    assert!(m["sources"]["skipped"]
        .as_array()
        .is_some_and(|s| s.iter().all(|x| x["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not asked")))));

    // By session and by day and model.
    let by_session = get_ok(&d, "/v1/llm/summary?since=24h&group_by=session");
    assert_eq!(group(&by_session, "session", "s1")["calls"], 2);
    assert_eq!(group(&by_session, "session", "s2")["calls"], 1);
    let by_day = get_ok(&d, "/v1/llm/summary?since=24h&group_by=day,model");
    let calls: i64 = by_day["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["calls"].as_i64().expect("calls"))
        .sum();
    assert_eq!(calls, 5);
    assert!(by_day["groups"][0]["key"]["day"]
        .as_str()
        .is_some_and(|day| day.len() == 10));

    // A window of the last hour only: the partial hour read from the calls.
    let last = get_ok(&d, "/v1/llm/summary?since=1h");
    assert_eq!(last["totals"]["calls"], 2, "{last}");
    assert_eq!(last["totals"]["tokens"]["input"], 10 + 50, "{last}");
}

#[test]
fn the_rollup_follows_rotation_and_status_counts_stay_exact() {
    let d = Daemon::start(&[
        ("TRACE_ROTATE_INTERVAL", "1s"),
        ("TRACE_DB_ROTATE_DAYS", "2"),
    ]);
    let now = now_ms();
    let old = now - 3 * 24 * HOUR_MS;
    let calls: Vec<Value> = (0..40)
        .map(|i| {
            json!({"provider": "p", "model": if i % 2 == 0 { "old" } else { "new" },
                   "prompt_tokens": 10, "cost_usd": 0.001,
                   "latency_ms": if i % 2 == 0 { 5000.0 } else { 50.0 },
                   "session_id": "s", "channel": "c",
                   "timestamp": if i % 2 == 0 { old - i } else { now - HOUR_MS - i }})
        })
        .collect();
    let r = d.post_json("/v1/traces", &Value::Array(calls).to_string());
    assert_eq!(r.status, 202, "{}", r.body);
    let before = get_ok(&d, "/v1/llm/summary?since=7d");
    assert_eq!(before["totals"]["calls"], 40, "{before}");

    d.wait_status("a rotation that deleted the old calls", |s| {
        s["rotation"]["deleted"]["age"]["llm_calls"] == 20
    });
    let after = get_ok(&d, "/v1/llm/summary?since=7d&group_by=model");
    assert_eq!(after["totals"]["calls"], 20, "{after}");
    // The deleted calls' latencies left the histograms of both rollups too.
    for path in [
        "/v1/llm/summary?since=7d&group_by=model",
        "/v1/llm/summary?since=7d&group_by=session",
        "/v1/llm/summary?since=7d&group_by=day,session",
    ] {
        let s = get_ok(&d, path);
        let p99 = s["totals"]["latency_ms"]["p99"].as_f64().expect("p99");
        assert!((p99 - 50.0).abs() / 50.0 <= 0.026, "{path}: {s}");
    }
    assert_eq!(after["groups"][0]["key"]["model"], "new", "{after}");
    assert!(
        close(&after["totals"]["cost_usd"]["reported"], 0.02),
        "{after}"
    );

    // The rollup sums exactly what the table holds.
    let db = d.db();
    let (rows, tokens): (i64, i64) = db
        .query_row(
            "SELECT sum(rows), sum(input_tokens) FROM llm_rollup",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("rollup");
    let (count, input): (i64, i64) = db
        .query_row(
            "SELECT count(*), sum(prompt_tokens) FROM llm_calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("calls");
    assert_eq!((rows, tokens), (count, input));

    // Status counts, kept incrementally, equal a count of the file.
    let status = d.status();
    for table in ["llm_calls", "errors", "events", "metric_points", "spans"] {
        let n: i64 = db
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count");
        assert_eq!(status["tables"][table]["rows"], n, "{table}: {status}");
        assert_eq!(status["tables"][table]["unpushed"], n, "{table}: {status}");
    }
}

#[test]
fn pages_neither_skip_nor_repeat_while_calls_arrive() {
    let d = Daemon::start(&[]);
    let now = now_ms();
    let batch = |n: i64, at: i64| -> String {
        let calls: Vec<Value> = (0..n)
            .map(|i| json!({"provider": "p", "model": "m", "timestamp": at - i % 7}))
            .collect();
        Value::Array(calls).to_string()
    };
    for _ in 0..5 {
        assert_eq!(
            d.post_json("/v1/traces", &batch(40, now - 60_000)).status,
            202
        );
    }
    let held = d.count("llm_calls");
    assert_eq!(held, 200);

    let base = d.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Calls start arriving once the first page has been read.
    let first_read = std::sync::Arc::new(std::sync::Barrier::new(2));
    let writer = {
        let first_read = first_read.clone();
        let stop = stop.clone();
        let body = batch(10, now - 30_000);
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut posted = 0;
            first_read.wait();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = agent
                    .post(format!("{base}/v1/traces"))
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes())
                    .expect("post");
                assert_eq!(r.status(), 202);
                posted += 10;
            }
            posted
        })
    };
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/llm/calls?since=1h&limit=7&cursor={c}"),
            None => "/v1/llm/calls?since=1h&limit=7".to_string(),
        };
        let page = get_ok(&d, &path);
        let calls = page["calls"].as_array().expect("calls");
        assert!(calls.len() <= 7);
        let mut last: Option<(String, i64)> = None;
        for c in calls {
            let id = c["id"].as_i64().expect("id");
            assert!(seen.insert(id), "row {id} answered twice");
            let key = (c["time"].as_str().expect("time").to_string(), id);
            if let Some(prev) = &last {
                assert!(key < *prev, "not newest first: {key:?} after {prev:?}");
            }
            last = Some(key);
        }
        pages += 1;
        if pages == 1 {
            first_read.wait();
        }
        std::thread::sleep(Duration::from_millis(5));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let posted = writer.join().expect("writer");
    assert!(posted > 0, "calls arrived while paging");
    // Exactly the rows held when the first page was read.
    assert_eq!(seen.len() as i64, held, "over {pages} pages");
    assert!(seen.iter().all(|id| *id <= held));
}

#[test]
fn bad_parameters_are_named() {
    let d = Daemon::start(&[]);
    for (path, parameter) in [
        ("/v1/llm/summary?group_by=model,planet", "group_by"),
        ("/v1/llm/summary?group_by=model,model", "group_by"),
        ("/v1/llm/summary?since=yesterday", "since"),
        ("/v1/llm/summary?until=2026-13-01T00:00:00Z", "until"),
        ("/v1/llm/summary?since=1h&until=2h", "since"),
        ("/v1/llm/summary?source=carrier-pigeon", "source"),
        ("/v1/llm/summary?limit=0", "limit"),
        ("/v1/llm/summary?limit=1001", "limit"),
        ("/v1/llm/summary?colour=blue", "colour"),
        ("/v1/llm/summary?since=1h&since=2h", "since"),
        ("/v1/llm/calls?limit=501", "limit"),
        ("/v1/llm/calls?cursor=12", "cursor"),
        ("/v1/llm/calls?include_text=maybe", "include_text"),
        ("/v1/errors?limit=-1", "limit"),
        ("/v1/events?since=7x", "since"),
        ("/v1/host?step=0s", "step"),
        ("/v1/host?since=30d&step=1s", "step"),
        (&format!("/v1/traces/{}", "x".repeat(129)), "trace_id"),
        ("/v1/llm/summary?since=%ZZ", "since"),
    ] {
        let r = d.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let body = r.json();
        assert_eq!(body["error"], "bad_parameter", "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
    }
    let r = d.get("/v1/traces/0123456789abcdef0123456789abcdef");
    assert_eq!(r.status, 404, "{}", r.body);
    // The daemon still serves.
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn read_endpoints_need_the_token_and_health_does_not() {
    let d = Daemon::start(&[("TRACE_INGEST_TOKEN", "s3cret")]);
    let bearer = [("Authorization", "Bearer s3cret")];
    for path in [
        "/v1/llm/summary",
        "/v1/llm/calls?include_text=true",
        "/v1/errors",
        "/v1/events",
        "/v1/host",
        "/v1/traces/0123456789abcdef0123456789abcdef",
    ] {
        let r = d.get(path);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], "unauthorized", "{path}");
        let r = d.get_with(path, &[("Authorization", "Bearer wrong")]);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        let r = d.get_with(path, &bearer);
        assert!(r.status == 200 || r.status == 404, "{path}: {}", r.body);
    }
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn a_trace_is_a_tree_with_its_calls_and_errors() {
    let d = Daemon::start(&[]);
    let now = now_ms();
    fill(&d, now);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = d.post_json(
        "/v1/errors",
        &json!([{"error_type": "Timeout", "message": "model call slow", "trace_id": trace}])
            .to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let t = get_ok(&d, &format!("/v1/traces/{}", trace.to_uppercase()));
    assert_eq!(t["trace_id"], trace);
    let roots = t["spans"].as_array().expect("spans");
    assert_eq!(roots.len(), 1, "{t}");
    assert_eq!(roots[0]["span_id"], "00f067aa0ba902b7");
    assert_eq!(roots[0]["children"][0]["span_id"], "00f067aa0ba902b8");
    assert_eq!(roots[0]["children"][0]["status_code"], 2);
    assert_eq!(t["span_count"], 2);
    assert_eq!(t["llm_calls"].as_array().map(Vec::len), Some(2), "{t}");
    assert_eq!(t["errors"][0]["message"], "model call slow", "{t}");

    // A native trace id is found as the agent sent it, whatever its case.
    let native = "Order-42:ABC";
    let r = d.post_json(
        "/v1/errors",
        &json!([{"error_type": "Refused", "message": "card declined", "trace_id": native}])
            .to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let r = d.post_json(
        "/v1/traces",
        &json!([{"provider": "p", "model": "m", "trace_id": native}]).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let t = get_ok(&d, &format!("/v1/traces/{native}"));
    assert_eq!(t["errors"][0]["message"], "card declined", "{t}");
    assert_eq!(t["llm_calls"].as_array().map(Vec::len), Some(1), "{t}");

    // Errors and events list newest first with the same conventions.
    let errors = get_ok(&d, "/v1/errors?since=1h&limit=1");
    assert_eq!(errors["errors"][0]["trace_id"], native);
    assert!(errors["next_cursor"].is_string());
    let older = get_ok(
        &d,
        &format!(
            "/v1/errors?since=1h&limit=1&cursor={}",
            errors["next_cursor"].as_str().unwrap_or_default()
        ),
    );
    assert_eq!(older["errors"][0]["trace_id"], trace);
    assert!(older["next_cursor"].is_null());
}

#[test]
fn call_text_only_when_asked_and_filters_apply() {
    let d = Daemon::start(&[]);
    let r = d.post_json(
        "/v1/traces",
        &json!([
            {"provider": "p", "model": "a", "input_text": "secret prompt", "output_text": "out"},
            {"provider": "p", "model": "b", "status": "error"}
        ])
        .to_string(),
    );
    assert_eq!(r.status, 202);
    let plain = get_ok(&d, "/v1/llm/calls");
    assert_eq!(plain["calls"].as_array().map(Vec::len), Some(2));
    assert!(!plain.to_string().contains("secret prompt"));
    let text = get_ok(&d, "/v1/llm/calls?include_text=true&model=a");
    assert_eq!(text["calls"].as_array().map(Vec::len), Some(1));
    assert_eq!(text["calls"][0]["input_text"], "secret prompt");
    let failed = get_ok(&d, "/v1/llm/calls?status=error");
    assert_eq!(failed["calls"][0]["model"], "b");
    assert_eq!(failed["calls"][0]["cost_source"], "unknown");
}

#[test]
fn host_series_are_downsampled_means() {
    let d = Daemon::start(&[("TRACE_METRICS_INTERVAL", "1s")]);
    let start = Instant::now();
    let h = loop {
        let h = get_ok(&d, "/v1/host?since=10m");
        let filled = ["cpu_utilization", "memory_utilization", "disk_utilization"]
            .iter()
            .all(|k| h["series"][k].as_array().is_some_and(|s| !s.is_empty()));
        if filled {
            break h;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no host samples: {h}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(h["step_seconds"].as_f64().expect("step") >= 1.0, "{h}");
    assert_eq!(
        h["mountpoint"].as_str(),
        d.db_path.parent().and_then(|p| p.to_str()),
        "{h}"
    );
    for (_, points) in h["series"].as_object().expect("series") {
        for p in points.as_array().expect("points") {
            let v = p[1].as_f64().expect("value");
            assert!(v.is_finite() && v >= 0.0, "{h}");
        }
    }
    let cpu = h["series"]["cpu_utilization"][0][1].as_f64().expect("cpu");
    assert!((0.0..=1.0).contains(&cpu), "{h}");
    let coarse = get_ok(&d, "/v1/host?since=10m&step=10m");
    assert!(
        coarse["series"]["memory_utilization"]
            .as_array()
            .is_some_and(|s| s.len() <= 2),
        "{coarse}"
    );
}

#[test]
fn estimated_costs_follow_a_new_prices_file_and_reported_ones_stand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prices = dir.path().join("prices.txt");
    std::fs::write(&prices, "acme  acme-1  1  2  0.5  -\n").expect("write");
    let prices_env = prices.to_str().expect("path").to_string();
    let d = Daemon::start(&[("TRACE_PRICES_FILE", &prices_env)]);
    let r = d.post_json(
        "/v1/traces",
        &json!([
            {"provider": "acme", "model": "acme-1", "prompt_tokens": 1_000_000,
             "completion_tokens": 1_000_000, "cache_read_tokens": 1_000_000, "latency_ms": 100.0},
            {"provider": "acme", "model": "acme-1", "prompt_tokens": 5, "cost_usd": 0.125,
             "latency_ms": 100.0},
            {"provider": "acme", "model": "unheard-of", "prompt_tokens": 5, "latency_ms": 100.0}
        ])
        .to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let costs = |d: &Daemon| -> Vec<(String, Option<f64>)> {
        let page = get_ok(d, "/v1/llm/calls");
        let mut v: Vec<(String, Option<f64>)> = page["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .map(|c| {
                (
                    c["cost_source"].as_str().expect("source").to_string(),
                    c["cost_usd"].as_f64(),
                )
            })
            .collect();
        v.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.unwrap_or(-1.0).total_cmp(&b.1.unwrap_or(-1.0)))
        });
        v
    };
    assert_eq!(
        costs(&d),
        [
            ("estimated".to_string(), Some(3.5)),
            ("reported".to_string(), Some(0.125)),
            ("unknown".to_string(), None)
        ]
    );

    // New prices, and a price for the unknown model: re-priced at start.
    std::fs::write(
        &prices,
        "acme  acme-1  10  20  5  -\nacme  unheard-of  2  2  -  -\n",
    )
    .expect("write");
    let d = d.restart();
    let start = Instant::now();
    while !costs(&d).contains(&("estimated".to_string(), Some(35.0))) {
        assert!(start.elapsed() < Duration::from_secs(30), "{:?}", costs(&d));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        costs(&d),
        [
            ("estimated".to_string(), Some(0.00001)),
            ("estimated".to_string(), Some(35.0)),
            ("reported".to_string(), Some(0.125))
        ]
    );
    d.wait_status("re-pricing done", |_| {
        d.logged("stored LLM calls priced with the current price table")
    });
    let s = get_ok(&d, "/v1/llm/summary");
    assert!(
        close(&s["totals"]["cost_usd"]["estimated"], 35.00001),
        "{s}"
    );
    assert!(close(&s["totals"]["cost_usd"]["reported"], 0.125), "{s}");
    assert_eq!(s["totals"]["cost_usd"]["unpriced_calls"], 0, "{s}");
    // Re-pricing moved costs, not latencies: still three calls of 100 ms.
    for table in ["llm_rollup", "llm_rollup_sessions"] {
        let blobs: Vec<Vec<u8>> = d
            .db()
            .prepare(&format!("SELECT latency FROM {table}"))
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        // (bucket u16, count u32) pairs, little-endian.
        let latencies: u32 = blobs
            .iter()
            .flat_map(|b| b.chunks_exact(6))
            .map(|p| u32::from_le_bytes([p[2], p[3], p[4], p[5]]))
            .sum();
        assert_eq!(latencies, 3, "{table}: {s}");
    }
    let p99 = s["totals"]["latency_ms"]["p99"].as_f64().expect("p99");
    assert!((p99 - 100.0).abs() / 100.0 <= 0.026, "{s}");
    let by_session = get_ok(&d, "/v1/llm/summary?group_by=session");
    assert_eq!(by_session["totals"]["calls"], 3, "{by_session}");
}
