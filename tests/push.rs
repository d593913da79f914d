//! The PushActor against a real HTTP receiver with faults: every row arrives,
//! none is lost, a row arrives twice only within a retried batch (same
//! idempotency key), and rows are marked pushed only after a 2xx.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::receiver::{ok, Answer, Received, Receiver};
use common::Daemon;
use serde_json::Value;

/// The field names of a pushed record's data, sorted.
fn field_names(event: &Value) -> Vec<&str> {
    let mut fields: Vec<&str> = event["data"]
        .as_object()
        .expect("data")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    fields
}

/// Polls until `ready` holds (a hang guard, not a time bound).
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("gave up waiting for {what}");
}

fn start(receiver_url: &str, extra: &[(&str, &str)]) -> Daemon {
    let mut env = vec![
        ("TRACE_PUSH_ENDPOINT", receiver_url),
        ("TRACE_PUSH_INTERVAL", "200ms"),
        ("TRACE_METRICS_INTERVAL", "1h"),
    ];
    env.extend_from_slice(extra);
    Daemon::start(&env)
}

/// Posts `n` LLM calls and `n` errors with recognisable ids.
fn post_rows(d: &Daemon, tag: &str, n: usize) {
    let calls: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"provider":"p","model":"m","trace_id":"{tag}-call-{i}","prompt_tokens":{i}}}"#
            )
        })
        .collect();
    assert_eq!(
        d.post_json("/v1/traces", &format!("[{}]", calls.join(",")))
            .status,
        202
    );
    let errors: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"error_type":"E","message":"m{i}","trace_id":"{tag}-err-{i}"}}"#))
        .collect();
    assert_eq!(
        d.post_json("/v1/errors", &format!("[{}]", errors.join(",")))
            .status,
        202
    );
}

/// Rows the test posted (LLM calls and errors) not yet pushed; the daemon's
/// own host samples are left out.
fn unsynced(d: &Daemon) -> u64 {
    let tables = &d.status()["tables"];
    ["llm_calls", "errors"]
        .iter()
        .map(|t| tables[t]["unpushed"].as_u64().expect("unpushed"))
        .sum()
}

/// The key a row is known by on the receiving side.
fn row_key(event: &Value) -> String {
    let t = event["type"].as_str().unwrap_or_default();
    match t {
        "event" | "metric_point" | "span" => format!("{t}:{}", event["data"]["id"]),
        _ => format!(
            "{t}:{}",
            event["data"]["trace_id"].as_str().unwrap_or_default()
        ),
    }
}

/// Checks the delivery invariants over what the receiver accepted (2xx) and
/// returns the keys of the rows delivered.
fn delivered(received: &[Received]) -> HashSet<String> {
    let mut keys_of_row: HashMap<String, HashSet<String>> = HashMap::new();
    for r in received.iter().filter(|r| (200..300).contains(&r.status)) {
        let key = r
            .headers
            .get("idempotency-key")
            .cloned()
            .expect("an idempotency key");
        assert_eq!(
            r.body["batch_id"].as_str(),
            Some(key.as_str()),
            "the envelope names its batch"
        );
        for e in r.events() {
            keys_of_row
                .entry(row_key(&e))
                .or_default()
                .insert(key.clone());
        }
    }
    for (row, keys) in &keys_of_row {
        assert_eq!(
            keys.len(),
            1,
            "{row} was delivered in different batches: {keys:?}"
        );
    }
    keys_of_row.into_keys().collect()
}

fn expect_rows(keys: &HashSet<String>, tag: &str, n: usize) {
    for i in 0..n {
        assert!(
            keys.contains(&format!("llm_trace:{tag}-call-{i}")),
            "{tag}-call-{i} arrived"
        );
        assert!(
            keys.contains(&format!("error_event:{tag}-err-{i}")),
            "{tag}-err-{i} arrived"
        );
    }
}

#[test]
fn batches_carry_the_go_sidecar_envelope_and_headers() {
    let receiver = Receiver::start(Box::new(|_, _| ok()));
    let d = start(&receiver.url, &[("TRACE_PUSH_API_KEY", "k3y")]);
    assert_eq!(
        d.post_json(
            "/v1/traces",
            r#"{"provider":"anthropic","model":"claude","input_text":"hi","output_text":"yo","prompt_tokens":3,
                "completion_tokens":1,"total_tokens":4,"cost_usd":0.5,"latency_ms":20,"metadata":{"k":"v"},
                "session_id":"s1","timestamp":1764324000000}"#
        )
        .status,
        202
    );
    assert_eq!(
        d.post_json(
            "/v1/errors",
            r#"{"error_type":"E","message":"boom","stack_trace":"at x"}"#
        )
        .status,
        202
    );
    wait_until("everything pushed", || unsynced(&d) == 0);
    let received = receiver.received();
    let first = &received[0];
    assert_eq!(
        first.headers.get("user-agent").map(String::as_str),
        Some(concat!("openclaw-trace/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        first.headers.get("content-encoding").map(String::as_str),
        Some("gzip")
    );
    assert_eq!(
        first.headers.get("authorization").map(String::as_str),
        Some("Bearer k3y")
    );
    assert_eq!(first.body["agent_id"], "test-agent");
    let events: Vec<Value> = received.iter().flat_map(Received::events).collect();
    let llm = events
        .iter()
        .find(|e| e["type"] == "llm_trace")
        .expect("an llm_trace");
    assert_eq!(
        field_names(llm),
        vec![
            "completion_tokens",
            "cost_usd",
            "created_at",
            "error_type",
            "input_text",
            "latency_ms",
            "metadata",
            "model",
            "output_text",
            "prompt_tokens",
            "provider",
            "status",
            "total_tokens",
            "trace_id"
        ],
        "exactly the Go sidecar's fields"
    );
    assert_eq!(llm["data"]["created_at"], 1_764_324_000_000i64);
    assert_eq!(llm["data"]["metadata"]["k"], "v");
    assert_eq!(
        llm["data"]["metadata"]["openclaw_trace"]["session_id"],
        "s1"
    );
    let err = events
        .iter()
        .find(|e| e["type"] == "error_event")
        .expect("an error_event");
    assert_eq!(
        field_names(err),
        vec![
            "created_at",
            "error_type",
            "message",
            "metadata",
            "severity",
            "stack_trace",
            "trace_id"
        ]
    );
    assert_eq!(
        err["data"]["trace_id"].as_str().map(str::len),
        Some(36),
        "errors get a UUID too"
    );
    let push = &d.status()["push"];
    assert!(push["rows_pushed"].as_u64() >= Some(2), "{push}");
    assert_eq!(push["consecutive_failures"], 0);
    assert_eq!(d.status()["last_push_status"], "ok");
}

#[test]
fn host_samples_go_as_system_metrics() {
    let receiver = Receiver::start(Box::new(|_, _| ok()));
    let d = Daemon::start(&[
        ("TRACE_PUSH_ENDPOINT", &receiver.url),
        ("TRACE_PUSH_INTERVAL", "200ms"),
    ]);
    wait_until("a host sample pushed", || {
        receiver
            .received()
            .iter()
            .flat_map(Received::events)
            .any(|e| e["type"] == "system_metric")
    });
    let events: Vec<Value> = receiver
        .received()
        .iter()
        .flat_map(Received::events)
        .collect();
    let m = events
        .iter()
        .find(|e| e["type"] == "system_metric")
        .expect("system_metric");
    let data = &m["data"];
    for field in [
        "trace_id",
        "cpu_pct",
        "mem_rss_bytes",
        "mem_available",
        "mem_total",
        "disk_used_bytes",
        "disk_total_bytes",
        "disk_free_bytes",
        "metadata",
        "created_at",
    ] {
        assert!(
            data.get(field).is_some(),
            "system_metric has {field}: {data}"
        );
    }
    assert!(data["mem_total"].as_u64().expect("mem_total") > 0);
    assert!(data["disk_total_bytes"].as_u64().expect("disk") > 0);
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "metric_point" && e["data"]["source"] == "host"),
        "host points travel inside system_metric"
    );
    drop(d);
}

#[test]
fn down_then_up_delivers_everything() {
    // A port nobody listens on, then a receiver on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = format!("http://{addr}/ingest");
    let d = start(&url, &[]);
    post_rows(&d, "down", 30);
    wait_until("a failed attempt", || {
        d.status()["push"]["consecutive_failures"].as_u64() > Some(0)
    });
    assert_eq!(unsynced(&d), 60, "nothing marked without a 2xx");
    assert!(
        d.status()["push"]["last_error"]["status"].is_null(),
        "a network error has no status"
    );
    let receiver = Receiver::start_on(
        std::net::TcpListener::bind(addr).expect("rebind"),
        Box::new(|_, _| ok()),
    );
    wait_until("the backlog pushed", || unsynced(&d) == 0);
    expect_rows(&delivered(&receiver.received()), "down", 30);
}

#[test]
fn half_of_the_answers_503_and_everything_arrives_once_per_batch() {
    let receiver = Receiver::start(Box::new(|n, _| {
        if n % 2 == 0 {
            (503, vec![], Duration::ZERO)
        } else {
            ok()
        }
    }));
    let d = start(&receiver.url, &[("TRACE_PUSH_MAX_BATCH_BYTES", "2KiB")]);
    post_rows(&d, "flaky", 40);
    // Everything, the host sample included, so every 503'd batch had its retry.
    wait_until("the backlog pushed", || d.status()["unsynced_count"] == 0);
    let received = receiver.received();
    assert!(received.iter().any(|r| r.status == 503));
    // Each 503'd batch was sent again with the same key.
    for failed in received.iter().filter(|r| r.status == 503) {
        let key = &failed.headers["idempotency-key"];
        assert!(
            received
                .iter()
                .any(|r| r.status == 200 && &r.headers["idempotency-key"] == key),
            "batch {key} was retried under its key"
        );
    }
    expect_rows(&delivered(&received), "flaky", 40);
    assert!(d.status()["push"]["retries"].as_u64() > Some(0));
}

#[test]
fn retry_after_is_honoured() {
    let receiver = Receiver::start(Box::new(|n, _| {
        if n == 0 {
            (
                429,
                vec![("Retry-After".into(), "1".into())],
                Duration::ZERO,
            )
        } else {
            ok()
        }
    }));
    let d = start(&receiver.url, &[]);
    post_rows(&d, "throttled", 5);
    wait_until("the backlog pushed", || unsynced(&d) == 0);
    let received = receiver.received();
    assert_eq!((received[0].status, received[1].status), (429, 200));
    assert_eq!(
        received[0].headers["idempotency-key"],
        received[1].headers["idempotency-key"]
    );
    let gap = received[1].at.duration_since(received[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "waited {gap:?} of the 1 s asked for"
    );
    expect_rows(&delivered(&received), "throttled", 5);
}

#[test]
fn answers_slower_than_the_timeout_are_retried_under_the_same_key() {
    let receiver = Receiver::start(Box::new(|n, _| {
        if n < 2 {
            (200, vec![], Duration::from_millis(1500))
        } else {
            ok()
        }
    }));
    let d = start(&receiver.url, &[("TRACE_PUSH_TIMEOUT", "300ms")]);
    post_rows(&d, "slow", 5);
    wait_until("the backlog pushed", || unsynced(&d) == 0);
    let received = receiver.received();
    assert!(received.len() >= 3);
    assert_eq!(
        received[0].headers["idempotency-key"],
        received[1].headers["idempotency-key"]
    );
    assert_eq!(
        d.status()["push"]["last_error"]["message"]
            .as_str()
            .map(|m| m.contains("no answer")),
        Some(true)
    );
    // The slow 200s reached the receiver too: duplicates, but only under one key.
    expect_rows(&delivered(&received), "slow", 5);
}

#[test]
fn a_413_splits_the_batch() {
    let receiver = Receiver::start(Box::new(|_, body| {
        if body["events"].as_array().map_or(0, Vec::len) > 8 {
            (413, vec![], Duration::ZERO)
        } else {
            ok()
        }
    }));
    let d = start(&receiver.url, &[]);
    post_rows(&d, "big", 30);
    wait_until("the backlog pushed", || unsynced(&d) == 0);
    let received = receiver.received();
    assert!(received.iter().any(|r| r.status == 413));
    assert!(received
        .iter()
        .filter(|r| r.status == 200)
        .all(|r| r.events().len() <= 8));
    expect_rows(&delivered(&received), "big", 30);
}

#[test]
fn a_poison_row_is_dead_lettered_and_does_not_block_the_rest() {
    let receiver = Receiver::start(Box::new(|_, body| {
        let poisoned = body["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["data"]["model"] == "poison"));
        if poisoned {
            (400, vec![], Duration::ZERO)
        } else {
            ok()
        }
    }));
    let d = start(&receiver.url, &[]);
    assert_eq!(
        d.post_json(
            "/v1/traces",
            r#"[{"provider":"p","model":"m","trace_id":"a"},{"provider":"p","model":"poison","trace_id":"bad"},{"provider":"p","model":"m","trace_id":"c"}]"#
        )
        .status,
        202
    );
    wait_until("the backlog pushed", || unsynced(&d) == 0);
    let keys = delivered(&receiver.received());
    assert!(keys.contains("llm_trace:a") && keys.contains("llm_trace:c"));
    assert!(!keys.contains("llm_trace:bad"));
    let (row_id, status): (i64, i64) = d
        .db()
        .query_row("SELECT row_id, status FROM dead_letters", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("one dead letter");
    assert_eq!((row_id, status), (2, 400));
    assert_eq!(d.status()["push"]["dead_lettered_rows"], 1);
}

#[test]
fn a_401_keeps_every_row_and_says_why() {
    let receiver = Receiver::start(Box::new(|_, _| (401, vec![], Duration::ZERO)));
    let d = start(&receiver.url, &[("TRACE_PUSH_API_KEY", "wrong")]);
    post_rows(&d, "denied", 3);
    wait_until("a few ticks", || receiver.received().len() >= 3);
    assert_eq!(unsynced(&d), 6, "nothing marked pushed");
    let push = d.status()["push"].clone();
    assert_eq!(push["last_error"]["status"], 401);
    assert_eq!(push["rows_pushed"], 0);
    assert!(d
        .logs
        .lock()
        .expect("logs")
        .iter()
        .any(|l| l.contains("TRACE_PUSH_API_KEY")));
    assert!(
        !d.logs
            .lock()
            .expect("logs")
            .iter()
            .any(|l| l.contains("wrong")),
        "the key is never logged"
    );
    assert!(!d.get("/v1/status").body.contains("wrong"), "nor shown");
}

#[test]
fn a_restart_in_the_middle_of_a_backlog_resumes_from_the_cursor() {
    let receiver = Receiver::start(Box::new(|n, _| {
        if n < 2 {
            ok()
        } else {
            (503, vec![], Duration::ZERO)
        }
    }));
    let d = start(&receiver.url, &[("TRACE_PUSH_MAX_BATCH_BYTES", "2KiB")]);
    post_rows(&d, "resume", 40);
    wait_until("two batches accepted", || receiver.received().len() >= 3);
    let left = unsynced(&d);
    assert!(
        left > 0 && left < 80,
        "part of the backlog was pushed: {left} of 80 left"
    );
    let d = d.restart();
    receiver.script(Box::new(|_, _| ok()));
    wait_until("the rest pushed", || unsynced(&d) == 0);
    // No row went out in two different batches: the restart resumed at the cursor.
    expect_rows(&delivered(&receiver.received()), "resume", 40);
}

#[test]
fn the_shutdown_push_delivers_what_is_left() {
    let receiver = Receiver::start(Box::new(|_, _| ok()));
    let d = start(&receiver.url, &[("TRACE_PUSH_INTERVAL", "1h")]);
    post_rows(&d, "last", 10);
    let (status, _dir, db_path, _) = d.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0));
    expect_rows(&delivered(&receiver.received()), "last", 10);
    let cursor: i64 = common::open_db(&db_path)
        .query_row(
            "SELECT last_pushed_id FROM push_cursors WHERE table_name = 'llm_calls'",
            [],
            |r| r.get(0),
        )
        .expect("cursor");
    assert_eq!(
        cursor, 10,
        "the cursor was saved before the database closed"
    );
}

#[test]
fn the_shutdown_push_respects_its_deadline() {
    let receiver = Receiver::start(Box::new(|_, _| -> Answer {
        (200, vec![], Duration::from_secs(20))
    }));
    let d = start(&receiver.url, &[("TRACE_PUSH_INTERVAL", "1h")]);
    post_rows(&d, "stuck", 3);
    let (status, ..) = d.stop_with(libc::SIGTERM);
    // The watchdog would have exited 1 had the push overrun its deadline.
    assert_eq!(status.code(), Some(0));
    assert!(!receiver.received().is_empty(), "the final push was tried");
}

#[test]
fn otlp_format_rebuilds_requests_for_an_otlp_backend() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    // 500 is not retryable under OTLP's rules; 502 is.
    let receiver = Receiver::start(Box::new(|n, _| match n {
        0 => (500, vec![], Duration::ZERO),
        1 => (502, vec![], Duration::ZERO),
        _ => ok(),
    }));
    let base = receiver.url.trim_end_matches("/ingest").to_string();
    let d = start(&base, &[("TRACE_PUSH_FORMAT", "otlp")]);
    let spans = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"openclaw"}}]},
        "scopeSpans":[{"scope":{"name":"openclaw","version":"1.0"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c",
        "spanId":"b7ad6b7169203331","name":"openclaw.model.usage","kind":3,"startTimeUnixNano":"1764324000000000000",
        "endTimeUnixNano":"1764324001000000000","attributes":[{"key":"openclaw.tokens.input","value":{"intValue":"12"}}],
        "status":{"code":1}}]}]}]}"#;
    assert_eq!(d.post_json("/v1/traces", spans).status, 200);
    assert_eq!(
        d.post_json("/v1/events", r#"{"name":"deploy","severity":"warning"}"#)
            .status,
        202
    );
    assert_eq!(
        d.post_json(
            "/v1/metrics",
            r#"{"name":"queue.depth","value":4,"attributes":{"queue":"inbox"}}"#
        )
        .status,
        202
    );
    wait_until("everything pushed", || d.status()["unsynced_count"] == 0);
    let received = receiver.received();
    assert_eq!((received[0].status, received[1].status), (500, 502));
    assert_eq!(
        d.status()["push"]["retries"],
        1,
        "under OTLP's rules the 502 was retried within its tick; the 500 was final and waited for the next tick"
    );
    let accepted: Vec<&Received> = received.iter().filter(|r| r.status == 200).collect();
    assert!(accepted
        .iter()
        .all(|r| r.headers["content-type"] == "application/x-protobuf"));

    let traces = accepted
        .iter()
        .find(|r| r.path == "/v1/traces")
        .expect("spans pushed");
    let request =
        ExportTraceServiceRequest::decode(traces.raw.as_slice()).expect("a trace request");
    let rs = &request.resource_spans[0];
    assert_eq!(
        rs.resource.as_ref().expect("resource").attributes[0].key,
        "service.name"
    );
    let scope = &rs.scope_spans[0];
    assert_eq!(
        scope
            .scope
            .as_ref()
            .map(|s| (s.name.as_str(), s.version.as_str())),
        Some(("openclaw", "1.0"))
    );
    let span = &scope.spans[0];
    assert_eq!(
        hex::encode(&span.trace_id),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(
        (span.name.as_str(), span.kind, span.start_time_unix_nano),
        ("openclaw.model.usage", 3, 1_764_324_000_000_000_000)
    );

    // The LLM call read from the span and the event both went out as logs.
    let mut log_names = Vec::new();
    for r in accepted.iter().filter(|r| r.path == "/v1/logs") {
        let request = ExportLogsServiceRequest::decode(r.raw.as_slice()).expect("a logs request");
        for rl in &request.resource_logs {
            for sl in &rl.scope_logs {
                log_names.extend(sl.log_records.iter().map(|l| l.event_name.clone()));
            }
        }
    }
    log_names.sort();
    assert_eq!(
        log_names,
        vec!["deploy".to_string(), "openclaw.llm_call".to_string()]
    );

    let mut metric_names = Vec::new();
    for r in accepted.iter().filter(|r| r.path == "/v1/metrics") {
        let request =
            ExportMetricsServiceRequest::decode(r.raw.as_slice()).expect("a metrics request");
        for rm in &request.resource_metrics {
            for sm in &rm.scope_metrics {
                metric_names.extend(sm.metrics.iter().map(|m| m.name.clone()));
            }
        }
    }
    assert!(
        metric_names.iter().any(|n| n == "queue.depth"),
        "{metric_names:?}"
    );
    assert!(
        metric_names.iter().any(|n| n == "system.memory.usage"),
        "host samples too"
    );
}
