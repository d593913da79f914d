//! The dashboard at `/` in a real browser (Debian's headless Chromium over
//! WebDriver), against the real daemon filled through its ingest endpoints:
//! the page loads with no failed request and no console error, shows the
//! totals the query API answers for the same window, draws every chart,
//! opens a trace from its error, and asks for the token when one is set.
//!
//! Chromium and ChromeDriver are not installed by the test: `.ci/run`
//! installs them (`apt-get install chromium chromium-driver`); without them
//! the test fails saying so. Set `UPDATE_DASHBOARD_PNG=1` to refresh
//! `docs/dashboard.png` (the README's screenshot) from the run; every run
//! leaves its screenshots under the target directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::webdriver::Browser;
use common::Daemon;
use serde_json::{json, Value};

/// The trace whose error the test follows from the overview.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// A second trace, with a failed call only.
const OTHER_TRACE: &str = "00f067aa0ba902b700f067aa0ba902b7";
/// The token of the protected daemon.
const TOKEN: &str = "dashboard-test-token";

const HOUR_MS: i64 = 3_600_000;

#[test]
fn the_page_shows_what_the_api_answers() {
    let agent = FakeAgent::start();
    let d = Daemon::start(&[
        ("TRACE_METRICS_INTERVAL", "1s"),
        ("TRACE_AGENT_PROCESS", &agent.name),
    ]);
    let calls = fill(&d, None);
    wait_for_host_samples(&d);

    let b = Browser::start(1280, 900);
    // The page and its assets come without a token, with their headers.
    let page = d.get("/");
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    assert_eq!(page.headers["cache-control"], "no-cache");
    assert!(page.headers["content-security-policy"].contains("default-src 'self'"));

    b.goto(&format!("{}/", d.base));
    wait_loaded(&b, "24h", 1);
    assert_shows_api_totals(&b, &d, None, "24h");
    save_full_page(&b, "dashboard-24h.png");

    // A click on "7 d" reloads the page's data for seven days.
    b.click(&b.find("a[data-range='7d']"));
    let loads = wait_loaded(&b, "7d", 2);
    let totals = assert_shows_api_totals(&b, &d, None, "7d");
    assert_eq!(
        totals["calls"].as_u64(),
        Some(calls.within_7d),
        "every call of the last 7 days is counted"
    );
    assert_every_chart_drawn(&b);
    save_screenshot(&b, "dashboard.png", true);
    save_full_page(&b, "dashboard-full.png");

    // A refresh (what the page's timer runs every 30 s) shows a new call
    // in place: the same elements, updated, the overview never hidden.
    b.exec(
        "window.__kept = document.getElementById('kpi-calls');
         window.__hidden = false;
         new MutationObserver(() => { if (document.getElementById('overview').hidden) window.__hidden = true; })
             .observe(document.getElementById('overview'), {attributes: true});",
        json!([]),
    );
    post(
        &d,
        None,
        "/v1/traces",
        &json!({"provider": "openai", "model": "gpt-5", "prompt_tokens": 1_000,
                "completion_tokens": 100, "total_tokens": 1_100, "cost_usd": 0.002,
                "latency_ms": 900}),
    );
    b.exec("window.__dashboard.refresh()", json!([]));
    let loads = wait_loaded(&b, "7d", loads + 1);
    let totals = assert_shows_api_totals(&b, &d, None, "7d");
    assert_eq!(totals["calls"].as_u64(), Some(calls.within_7d + 1));
    assert_eq!(
        b.exec(
            "return window.__kept === document.getElementById('kpi-calls') && !window.__hidden",
            json!([])
        ),
        true,
        "refreshed in place"
    );

    // The errors list links to the trace; the trace view shows its spans
    // as a tree, with its LLM calls and errors.
    b.click(&b.find(&format!("#errors a.trace-link[href*='trace={TRACE}']")));
    let shown = b.wait_for(
        "the trace view",
        &format!("const t = window.__dashboard.trace; return t && t.id === '{TRACE}' && t"),
    );
    let api = api_get(&d, &format!("/v1/traces/{TRACE}"), None);
    assert_eq!(shown["spans"], 3, "{shown}");
    assert_eq!(
        shown["llm_calls"].as_u64(),
        api["llm_calls"].as_array().map(|a| a.len() as u64)
    );
    assert_eq!(
        shown["errors"].as_u64(),
        api["errors"].as_array().map(|a| a.len() as u64)
    );
    let tree = b.exec(
        "return [...document.querySelectorAll('#trace-tree li')].map(li => li.querySelector('.name').textContent)",
        json!([]),
    );
    assert_eq!(tree, json!(["agent.turn", "llm.chat", "tool.web_search"]));
    let nested = b.exec(
        "return document.querySelectorAll('#trace-tree > li > ol > li').length",
        json!([]),
    );
    assert_eq!(nested, 2, "the two children sit under the root");
    assert!(
        b.exec(
            "return document.getElementById('overview').hidden",
            json!([])
        ) == true
    );
    save_screenshot(&b, "dashboard-trace.png", false);

    // Back to the overview, then thirty days: the older call is counted too.
    b.click(&b.find("#trace-back"));
    b.wait_for(
        "the overview",
        "return !document.getElementById('overview').hidden",
    );
    b.click(&b.find("a[data-range='30d']"));
    wait_loaded(&b, "30d", loads + 1);
    let totals = assert_shows_api_totals(&b, &d, None, "30d");
    assert_eq!(totals["calls"].as_u64(), Some(calls.within_30d + 1));

    assert_no_failed_request(&b, &d.base);
    assert_no_console_error(&b);

    // A phone's width: the charts are redrawn to fit.
    b.viewport(390, 844, true);
    b.wait_for(
        "charts redrawn for a narrow window",
        "const s = document.querySelector('#chart-cost svg'); return s && s.getBoundingClientRect().right <= document.documentElement.clientWidth",
    );
    save_full_page(&b, "dashboard-phone.png");
}

#[test]
fn with_a_token_set_the_page_asks_for_it_once() {
    let d = Daemon::start(&[("TRACE_INGEST_TOKEN", TOKEN)]);
    fill(&d, Some(TOKEN));
    // The page holds no data and is served without the token; the API is not.
    assert_eq!(d.get("/").status, 200);
    assert_eq!(d.get("/assets/app.js").status, 200);
    assert_eq!(d.get("/v1/llm/summary").status, 401);

    let b = Browser::start(1280, 900);
    b.goto(&format!("{}/#range=7d", d.base));
    b.wait_for(
        "the token form",
        "return !document.getElementById('auth').hidden",
    );
    assert!(
        b.exec(
            "return document.getElementById('overview').hidden",
            json!([])
        ) == true
    );
    save_screenshot(&b, "dashboard-token.png", false);

    b.type_into(&b.find("#token"), TOKEN);
    b.click(&b.find("#auth-form button[type=submit]"));
    wait_loaded(&b, "7d", 1);
    assert_shows_api_totals(&b, &d, Some(TOKEN), "7d");
    assert_every_chart_drawn_but_host(&b);
    assert_eq!(
        b.exec(
            "return sessionStorage.getItem('openclaw-trace.token')",
            json!([])
        ),
        TOKEN,
        "kept for the tab"
    );

    // A reload does not ask again.
    b.goto(&format!("{}/#range=7d", d.base));
    wait_loaded(&b, "7d", 1);
    assert!(b.exec("return document.getElementById('auth').hidden", json!([])) == true);

    assert_no_failed_request(&b, &d.base);
    assert_no_console_error(&b);
}

/// What [`fill`] posted, to check the page's totals against.
struct Posted {
    /// LLM calls (native and from spans) in the last 7 days.
    within_7d: u64,
    /// ... and in the last 30 days.
    within_30d: u64,
}

/// Posts LLM calls over the last 12 days (four priced models and one the
/// price table does not know; some with a reported cost, some without; some
/// failed, two of those in traces), errors and the spans of [`TRACE`].
fn fill(d: &Daemon, token: Option<&str>) -> Posted {
    let now = now_ms();
    let models = [
        ("anthropic", "claude-sonnet-4-5", 3.0, 15.0),
        ("openai", "gpt-5", 1.25, 10.0),
        ("google", "gemini-2.5-pro", 1.25, 10.0),
        ("anthropic", "claude-haiku-4-5", 1.0, 5.0),
        ("local", "llama-3-8b-local", 0.0, 0.0),
    ];
    let sessions = ["telegram:42", "slack:dev", "cron:daily", "whatsapp:7"];
    let mut calls = Vec::new();
    let mut n = 0u64;
    for day in 0..7i64 {
        for (m, (provider, model, input_price, output_price)) in models.iter().enumerate() {
            for k in 0..(1 + (day as usize + m) % 3) {
                n += 1;
                let input = 2_000 + (n * 1_337) % 18_000;
                let output = 150 + (n * 211) % 1_800;
                // Spread over the day, all inside the window.
                let at = now - day * 24 * HOUR_MS - (1 + (m * 4 + k * 2) as i64) * HOUR_MS;
                let mut call = json!({
                    "provider": provider, "model": model,
                    "prompt_tokens": input, "completion_tokens": output,
                    "total_tokens": input + output,
                    "latency_ms": 400 + (n * 389) % 4_600,
                    "session_id": sessions[(n as usize) % sessions.len()],
                    "timestamp": at,
                });
                // Most calls report their cost; every fifth leaves it to
                // the price table.
                if n % 5 != 0 && *input_price > 0.0 {
                    call["cost_usd"] =
                        json!((input as f64 * input_price + output as f64 * output_price) / 1e6);
                }
                // Anthropic calls read most of their prompt from the cache.
                if *provider == "anthropic" {
                    call["cache_read_tokens"] = json!(input * 3);
                    call["cache_write_tokens"] = json!(if k == 0 { input / 2 } else { 0 });
                }
                if n % 9 == 0 {
                    call["status"] = json!("error");
                    call["error_type"] = json!("rate_limit");
                }
                calls.push(call);
            }
        }
    }
    // Two failed calls in traces, and one call twelve days ago.
    calls.push(json!({"provider": "anthropic", "model": "claude-sonnet-4-5", "status": "error",
        "error_type": "overloaded", "prompt_tokens": 900, "completion_tokens": 0, "total_tokens": 900,
        "latency_ms": 30_000, "session_id": "telegram:42", "trace_id": TRACE, "timestamp": now - 2 * HOUR_MS}));
    calls.push(json!({"provider": "openai", "model": "gpt-5", "status": "error",
        "error_type": "timeout", "prompt_tokens": 4_000, "completion_tokens": 0, "total_tokens": 4_000,
        "cost_usd": 0.005, "trace_id": OTHER_TRACE, "timestamp": now - 50 * HOUR_MS}));
    calls.push(
        json!({"provider": "openai", "model": "gpt-5", "prompt_tokens": 10_000,
        "completion_tokens": 1_000, "total_tokens": 11_000, "cost_usd": 0.0225,
        "session_id": "cron:daily", "timestamp": now - 12 * 24 * HOUR_MS}),
    );
    let within_7d = calls.len() as u64 - 1;
    post(d, token, "/v1/traces", &Value::Array(calls));

    post(
        d,
        token,
        "/v1/errors",
        &json!([
            {"error_type": "ToolError", "message": "web_search timed out after 30 s",
             "stack_trace": "at webSearch (tools/search.js:41)\nat runTool (agent.js:212)",
             "trace_id": TRACE, "session_id": "telegram:42", "timestamp": now - 2 * HOUR_MS + 1_500},
            {"error_type": "ChannelError", "message": "telegram: 429 Too Many Requests",
             "severity": "warning", "timestamp": now - 26 * HOUR_MS},
            {"error_type": "ConfigError", "message": "plugin diagnostics-otel: endpoint unreachable",
             "timestamp": now - 4 * 24 * HOUR_MS},
        ]),
    );

    // The trace's spans: a turn, the LLM call it made (with its usage, so
    // it is an LLM call too) and the tool that failed.
    let ns = |ms: i64| (ms * 1_000_000).to_string();
    let t0 = now - 2 * HOUR_MS;
    let string = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let int = |k: &str, v: i64| json!({"key": k, "value": {"intValue": v.to_string()}});
    let spans = json!({"resourceSpans": [{
        "resource": {"attributes": [string("service.name", "openclaw")]},
        "scopeSpans": [{"scope": {"name": "openclaw"}, "spans": [
            {"traceId": TRACE, "spanId": "a1a1a1a1a1a1a1a1", "name": "agent.turn", "kind": 1,
             "startTimeUnixNano": ns(t0), "endTimeUnixNano": ns(t0 + 4_200)},
            {"traceId": TRACE, "spanId": "b2b2b2b2b2b2b2b2", "parentSpanId": "a1a1a1a1a1a1a1a1",
             "name": "llm.chat", "kind": 3,
             "startTimeUnixNano": ns(t0 + 100), "endTimeUnixNano": ns(t0 + 1_400),
             "attributes": [string("gen_ai.system", "anthropic"),
                            string("gen_ai.request.model", "claude-sonnet-4-5"),
                            int("openclaw.tokens.input", 1_800), int("openclaw.tokens.output", 240),
                            int("openclaw.tokens.cache_read", 12_000), int("openclaw.tokens.cache_write", 2_000),
                            int("openclaw.tokens.total", 16_040)]},
            {"traceId": TRACE, "spanId": "c3c3c3c3c3c3c3c3", "parentSpanId": "a1a1a1a1a1a1a1a1",
             "name": "tool.web_search", "kind": 1,
             "startTimeUnixNano": ns(t0 + 1_500), "endTimeUnixNano": ns(t0 + 4_100),
             "status": {"code": 2, "message": "timed out after 30 s"}},
        ]}],
    }]});
    post(d, token, "/v1/traces", &spans);
    Posted {
        within_7d: within_7d + 1,
        within_30d: within_7d + 2,
    }
}

/// POSTs `body` as JSON, with the bearer `token` when given; expects 2xx.
fn post(d: &Daemon, token: Option<&str>, path: &str, body: &Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let reply = d.post(path, body.to_string().as_bytes(), &headers);
    assert!(
        (200..300).contains(&reply.status),
        "{path}: {} {}",
        reply.status,
        reply.body
    );
}

/// GETs a query API path as JSON, with the bearer `token` when given.
fn api_get(d: &Daemon, path: &str, token: Option<&str>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(format!("{}{path}", d.base));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut r = req.call().expect("request");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().expect("body");
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("json")
}

/// Waits until the host sampler has stored what the host charts draw:
/// CPU needs two samples, the agent's RSS needs the agent seen.
fn wait_for_host_samples(d: &Daemon) {
    d.wait_status("two host samples with the agent", |s| {
        s["host"]["cpu_utilization"].is_number() && s["host"]["agent"]["rss_bytes"].is_number()
    });
    let start = std::time::Instant::now();
    loop {
        let host = api_get(d, "/v1/host?since=24h", None);
        let filled = ["cpu_utilization", "memory_utilization", "agent_rss_bytes"]
            .iter()
            .all(|k| host["series"][k].as_array().is_some_and(|a| !a.is_empty()));
        if filled {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no host series: {host}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the page has loaded `range` at least `loads` times, with no
/// error; returns its load count.
fn wait_loaded(b: &Browser, range: &str, loads: u64) -> u64 {
    let v = b.wait_for(
        &format!("the page to load {range}"),
        &format!(
            "const d = window.__dashboard;
             if (d.errors.length) return {{errors: d.errors}};
             return d.ready && d.window && d.window.range === '{range}' && d.loads >= {loads} && d.loads"
        ),
    );
    assert!(v.is_u64(), "the page failed to load: {v}");
    v.as_u64().expect("a count")
}

/// The page's totals and its KPI cards equal `/v1/llm/summary` for the
/// window the page read; returns the API's totals.
fn assert_shows_api_totals(b: &Browser, d: &Daemon, token: Option<&str>, range: &str) -> Value {
    let window = b.exec("return window.__dashboard.window", json!([]));
    assert_eq!(window["range"], range);
    let (since, until) = (
        window["since"].as_str().expect("since"),
        window["until"].as_str().expect("until"),
    );
    let api = api_get(
        d,
        &format!("/v1/llm/summary?since={since}&until={until}"),
        token,
    );
    let t = &api["totals"];
    assert!(t["calls"].as_u64() > Some(0), "data in the window: {api}");
    let shown = b.exec("return window.__dashboard.totals", json!([]));
    // Numbers compared as f64: JavaScript writes 2.0 as 2.
    assert_eq!(
        shown["cost_usd"].as_f64(),
        t["cost_usd"]["total"].as_f64(),
        "cost ({range})"
    );
    assert_eq!(shown["calls"], t["calls"], "calls ({range})");
    assert_eq!(shown["errors"], t["errors"], "errors ({range})");
    assert_eq!(shown["tokens"], t["tokens"]["total"], "tokens ({range})");

    // What a person reads: the cards' text, and the number each stands for.
    let cards = b.exec(
        "return Object.fromEntries(['kpi-cost', 'kpi-calls', 'kpi-tokens', 'kpi-error-rate'].map(id =>
             [id, [document.getElementById(id).textContent, Number(document.getElementById(id).dataset.value)]]))",
        json!([]),
    );
    let cost = t["cost_usd"]["total"].as_f64().expect("cost");
    let calls = t["calls"].as_u64().expect("calls");
    let tokens = t["tokens"]["total"].as_u64().expect("tokens");
    assert_eq!(cards["kpi-cost"][0], usd(cost), "{range}");
    assert_eq!(cards["kpi-cost"][1].as_f64(), Some(cost), "{range}");
    assert_eq!(
        cards["kpi-calls"],
        json!([thousands(calls), calls]),
        "{range}"
    );
    assert_eq!(
        cards["kpi-tokens"],
        json!([short(tokens), tokens]),
        "{range}"
    );
    assert_eq!(
        cards["kpi-error-rate"][1].as_f64(),
        t["error_rate"].as_f64(),
        "{range}"
    );
    t.clone()
}

/// The charts the overview draws, by the id of their container.
const CHARTS: [(&str, &str); 6] = [
    ("cost", "chart-cost"),
    ("tokens", "chart-tokens"),
    ("calls", "chart-calls"),
    ("latency", "chart-latency"),
    ("host", "chart-host"),
    ("rss", "chart-rss"),
];

fn assert_every_chart_drawn(b: &Browser) {
    assert_charts_drawn(b, &CHARTS);
}

/// A daemon whose agent is absent has no RSS series; the rest is drawn.
fn assert_every_chart_drawn_but_host(b: &Browser) {
    assert_charts_drawn(b, &CHARTS[..4]);
}

/// Each chart drew points (as the page counts them) and has that many
/// marks in its SVG; the token chart shows cache reads (from the span).
fn assert_charts_drawn(b: &Browser, charts: &[(&str, &str)]) {
    let drawn = b.exec("return window.__dashboard.charts", json!([]));
    for (name, id) in charts {
        let points = drawn[name].as_u64().unwrap_or(0);
        assert!(points > 0, "chart {name} drew nothing: {drawn}");
        let marks = b.exec(
            &format!("return document.querySelectorAll('#{id} svg rect.mark, #{id} svg path.line').length"),
            json!([]),
        );
        assert!(marks.as_u64() > Some(0), "chart {name} has no SVG marks");
    }
}

/// Every request the page made was answered 2xx (or 304) by the sidecar
/// itself: nothing failed, nothing left the machine.
fn assert_no_failed_request(b: &Browser, base: &str) {
    let requests = b.requests();
    let urls: Vec<&str> = requests.iter().filter_map(|r| r["url"].as_str()).collect();
    for needed in [
        "/assets/app.js",
        "/assets/app.css",
        "/v1/llm/summary",
        "/v1/host",
    ] {
        assert!(
            urls.iter().any(|u| u.contains(needed)),
            "{needed} requested: {urls:?}"
        );
    }
    for r in &requests {
        let url = r["url"].as_str().unwrap_or_default();
        assert!(
            url.starts_with(base),
            "a request outside the sidecar: {url}"
        );
        let status = r["status"].as_u64().unwrap_or(0);
        assert!(
            (200..300).contains(&status) || status == 304,
            "{url} answered {status}"
        );
    }
    let nav = b.exec(
        "return performance.getEntriesByType('navigation').map(e => e.responseStatus)",
        json!([]),
    );
    assert!(
        nav.as_array().is_some_and(|n| n.iter().all(|s| s == 200)),
        "{nav}"
    );
}

/// The browser logged no error: no script error, no failed load, no
/// Content-Security-Policy violation.
fn assert_no_console_error(b: &Browser) {
    let logs = b.logs();
    let severe: Vec<&Value> = logs.iter().filter(|l| l["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "console errors: {severe:#?}");
    let csp: Vec<&Value> = logs
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("Content Security Policy"))
        })
        .collect();
    assert!(csp.is_empty(), "CSP reports: {csp:#?}");
    let errors = b.exec("return window.__dashboard.errors", json!([]));
    assert_eq!(errors, json!([]));
}

/// Saves a screenshot under the target directory, and as the README's
/// `docs/dashboard.png` when `readme` and `UPDATE_DASHBOARD_PNG` is set.
fn save_screenshot(b: &Browser, name: &str, readme: bool) {
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&out, &png).expect("write the screenshot");
    if readme && std::env::var_os("UPDATE_DASHBOARD_PNG").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name);
        std::fs::write(docs, &png).expect("write docs/dashboard.png");
    }
}

/// Saves the whole page under the target directory, to look at.
fn save_full_page(b: &Browser, name: &str) {
    let png = b.full_page_screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join(name), png)
        .expect("write the screenshot");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

// The page's number formats, as a person reads them (app.js: usd, count,
// short).

fn usd(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "$0.00".into()
    } else if a < 0.01 {
        format!("${}", significant(v, 2))
    } else if a < 1000.0 {
        format!("${v:.2}")
    } else {
        format!("${}", thousands(v.round() as u64))
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn short(n: u64) -> String {
    for (unit, suffix) in [(1e9, "B"), (1e6, "M"), (1e3, "k")] {
        let v = n as f64;
        if v >= unit {
            let x = v / unit;
            let digits = if x < 10.0 {
                2
            } else if x < 100.0 {
                1
            } else {
                0
            };
            return format!("{}{suffix}", trim(&format!("{x:.digits$}")));
        }
    }
    n.to_string()
}

/// `v` to `digits` significant digits, as JavaScript's `toPrecision` for
/// small numbers.
fn significant(v: f64, digits: i32) -> String {
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    format!("{v:.decimals$}")
}

/// `1.50` -> `1.5`, `2.00` -> `2` (JavaScript's `String(+x.toFixed(n))`).
fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// A process the sampler takes for the agent: `sleep` under a unique name.
struct FakeAgent {
    child: Child,
    /// The text `TRACE_AGENT_PROCESS` matches.
    name: String,
    _dir: tempfile::TempDir,
}

impl FakeAgent {
    fn start() -> FakeAgent {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("dash-agent-{}", std::process::id());
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sleep");
        let binary = dir.path().join(&name);
        std::os::unix::fs::symlink(sleep, &binary).expect("symlink");
        let child = Command::new(&binary)
            .arg("600")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the fake agent");
        FakeAgent {
            child,
            name,
            _dir: dir,
        }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
