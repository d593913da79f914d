//! The PushActor against a real HTTP receiver with faults: every row arrives,
//! none is lost, a row arrives twice only within a retried batch (same
//! idempotency key), and rows are marked pushed only after a 2xx.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::receiver::{ok, Answer, Received, Receiver};
use common::{env_refs, Daemon};
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
    let started_ns = openclaw_trace_actors::time::now_ns();
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
    let status = d.status();
    assert_eq!(status["last_push_status"], "ok");
    // The Go sidecar's `last_push_time`: the last success, as an RFC 3339
    // time within this test.
    assert_eq!(
        status["last_push_time"], status["push"]["last_success"],
        "{status}"
    );
    let pushed_at = status["last_push_time"]
        .as_str()
        .and_then(openclaw_trace_actors::time::rfc3339_ns)
        .unwrap_or_else(|| panic!("last_push_time is an RFC 3339 time: {status}"));
    assert!(
        (started_ns..=openclaw_trace_actors::time::now_ns()).contains(&pushed_at),
        "last_push_time within the test: {status}"
    );
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
    assert_system_metric_is_its_sample(&d, data);
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "metric_point" && e["data"]["source"] == "host"),
        "host points travel inside system_metric"
    );
    drop(d);
}

/// Checks a pushed `system_metric`'s data field by field against the host
/// sample stored in the database: exactly the Go sidecar's fields, each the
/// value of its metric point, and every point of the sample in `metadata`.
fn assert_system_metric_is_its_sample(d: &Daemon, data: &Value) {
    let mut fields: Vec<&str> = data
        .as_object()
        .expect("data")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "cpu_pct",
            "created_at",
            "disk_free_bytes",
            "disk_total_bytes",
            "disk_used_bytes",
            "mem_available",
            "mem_rss_bytes",
            "mem_total",
            "metadata",
            "trace_id"
        ],
        "exactly the Go sidecar's fields"
    );
    let trace_id = data["trace_id"].as_str().expect("trace_id");
    let time_ns: i64 = trace_id
        .strip_prefix("test-agent-host-")
        .unwrap_or_else(|| panic!("trace id names the agent and the sample: {trace_id}"))
        .parse()
        .expect("the sample's time in the trace id");
    assert_eq!(data["created_at"], time_ns / 1_000_000, "unix ms");
    // The sample's points as stored: (name, attributes, value).
    let points: Vec<(String, Value, Option<f64>)> = d
        .db()
        .prepare(
            "SELECT name, attributes, value FROM metric_points WHERE source = 'host' AND time_ns = ?1",
        )
        .expect("prepare")
        .query_map([time_ns], |r| {
            let attrs: Option<String> = r.get(1)?;
            Ok((
                r.get(0)?,
                attrs.map_or(Value::Null, |a| {
                    serde_json::from_str(&a).expect("attributes are JSON")
                }),
                r.get(2)?,
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(!points.is_empty(), "the sample {time_ns} is stored");
    let value = |name: &str, attrs: &[(&str, &str)]| -> Option<f64> {
        points.iter().find_map(|(n, a, v)| {
            let matches = n == name
                && attrs.iter().all(|(k, want)| a[*k] == *want)
                && (!attrs.is_empty() || a.as_object().is_none_or(|o| o.is_empty()));
            if matches {
                *v
            } else {
                None
            }
        })
    };
    let as_u64 = |v: Option<f64>| v.map_or(Value::Null, |v| serde_json::json!(v as u64));
    let mountpoint = data["metadata"]["mountpoint"]
        .as_str()
        .expect("metadata.mountpoint");
    assert_eq!(data["mem_total"], as_u64(value("system.memory.limit", &[])));
    assert_eq!(
        data["mem_rss_bytes"],
        as_u64(value("system.memory.usage", &[("state", "used")])),
        "memory in use"
    );
    assert_eq!(
        data["mem_available"],
        as_u64(value("system.memory.usage", &[("state", "available")]))
    );
    let used = value(
        "system.filesystem.usage",
        &[("mountpoint", mountpoint), ("state", "used")],
    );
    let free = value(
        "system.filesystem.usage",
        &[("mountpoint", mountpoint), ("state", "free")],
    );
    assert!(used.is_some() && free.is_some(), "{mountpoint} is sampled");
    assert_eq!(data["disk_used_bytes"], as_u64(used));
    assert_eq!(data["disk_free_bytes"], as_u64(free));
    assert_eq!(
        data["disk_total_bytes"],
        as_u64(used.zip(free).map(|(u, f)| u + f))
    );
    match value("system.cpu.utilization", &[]) {
        Some(ratio) => assert_eq!(
            data["cpu_pct"].as_f64(),
            Some(ratio * 100.0),
            "a percentage"
        ),
        None => assert_eq!(data["cpu_pct"], Value::Null, "no baseline yet"),
    }
    let metrics = data["metadata"]["metrics"]
        .as_object()
        .expect("metadata.metrics");
    assert_eq!(
        metrics.len(),
        points.len(),
        "every point of the sample, once: {metrics:?}"
    );
    assert_eq!(
        metrics.get("system.memory.limit").and_then(Value::as_f64),
        value("system.memory.limit", &[])
    );
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
fn the_shutdown_push_is_cut_at_its_own_bound_and_leaves_the_cursor_where_it_was() {
    // The remote would accept, but only 4 s after the request arrived: past
    // the 1.5 s the shutdown push has, well inside the 4.5 s watchdog. With
    // an hour allowed per send, only the shutdown's own bound cuts it.
    let receiver = Receiver::start(Box::new(|_, _| -> Answer {
        (200, vec![], Duration::from_secs(4))
    }));
    let d = start_on_demand(&receiver.url, &[("TRACE_PUSH_TIMEOUT", "1h")]);
    post_rows(&d, "cut", 3);
    let logs = std::sync::Arc::clone(&d.logs);
    let (status, dir, db_path, env) = d.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "no watchdog exit: {status:?}");
    assert!(
        logs.lock()
            .expect("logs")
            .iter()
            .any(|l| l.contains(r#""msg":"shutdown complete""#)),
        "a graceful shutdown"
    );
    let received = receiver.received();
    assert_eq!(
        received.len(),
        1,
        "one attempt, not retried past the bound: {received:?}"
    );
    let key = received[0].headers["idempotency-key"].clone();
    assert_eq!(key, "test-agent:llm_calls:1-3");
    // The answer came too late: no row was marked pushed.
    let db = common::open_db(&db_path);
    let cursors: Vec<(String, i64)> = db
        .prepare("SELECT table_name, last_pushed_id FROM push_cursors ORDER BY table_name")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("cursors");
    assert!(
        cursors.iter().all(|(_, id)| *id == 0),
        "every cursor where it was: {cursors:?}"
    );
    drop(db);
    // Started again, the pusher sends the same batch under the same key.
    receiver.script(Box::new(|_, _| ok()));
    let d = Daemon::start_at(&db_path, &env_refs(&env));
    push_once(&d);
    wait_until("the rows pushed", || unsynced(&d) == 0);
    let received = receiver.received();
    assert!(
        received[1..]
            .iter()
            .any(|r| r.status == 200 && r.headers["idempotency-key"] == key),
        "{received:?}"
    );
    expect_rows(&delivered(&received[1..]), "cut", 3);
    drop(d);
    drop(dir);
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

/// Runs one push now (the daemons below push every hour) and waits until it
/// has ended: arming a 1 ms stall in the pusher starts a push at once.
fn push_once(d: &Daemon) -> Value {
    let r = d.post("/_test/fault/push/stall?ms=1", b"", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let status = d.wait_status("the push to end", |s| s["push"]["in_progress"] == false);
    status["push"].clone()
}

/// A daemon that pushes only when [`push_once`] says so.
fn start_on_demand(receiver_url: &str, extra: &[(&str, &str)]) -> Daemon {
    let mut env = vec![("TRACE_PUSH_INTERVAL", "1h")];
    env.extend_from_slice(extra);
    start(receiver_url, &env)
}

#[test]
fn the_query_string_token_of_the_endpoint_is_masked_in_logs_and_status() {
    let receiver = Receiver::start(Box::new(|_, _| ok()));
    let endpoint = format!("{}?token=pUsh-t0ken-42", receiver.url);
    let d = start(&endpoint, &[]);
    post_rows(&d, "masked", 2);
    wait_until("everything pushed", || unsynced(&d) == 0);
    // The remote gets the URL as configured...
    let received = receiver.received();
    assert!(!received.is_empty());
    assert!(
        received
            .iter()
            .all(|r| r.path == "/ingest" && r.query == "token=pUsh-t0ken-42"),
        "{received:?}"
    );
    let status = d.get("/v1/status");
    assert!(
        !status.body.contains("pUsh-t0ken-42"),
        "status never shows the token: {}",
        status.body
    );
    let status = status.json();
    let masked = format!("{}?***", receiver.url);
    assert_eq!(status["push"]["endpoint"], masked.as_str());
    assert_eq!(status["config"]["push_endpoint"], masked.as_str());
    // ...and the logs name the masked endpoint, never the token.
    assert!(d.logged("pushing"));
    let logs = d.logs.lock().expect("logs").clone();
    assert!(
        logs.iter()
            .any(|l| l.contains(r#""msg":"pushing""#) && l.contains(&masked)),
        "{logs:#?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("pUsh-t0ken-42")),
        "the token is never logged"
    );
}

#[test]
fn a_retry_after_over_a_minute_ends_the_tick_and_the_next_tick_delivers() {
    let receiver = Receiver::start(Box::new(|n, _| {
        if n == 0 {
            (
                429,
                vec![("Retry-After".into(), "120".into())],
                Duration::ZERO,
            )
        } else {
            ok()
        }
    }));
    let d = start_on_demand(&receiver.url, &[]);
    post_rows(&d, "later", 3);
    let push = push_once(&d);
    let received = receiver.received();
    assert_eq!(received.len(), 1, "no retry within the tick: {push}");
    assert_eq!(received[0].status, 429);
    assert_eq!(push["retries"], 0, "{push}");
    assert_eq!(push["consecutive_failures"], 1, "{push}");
    assert_eq!(push["last_error"]["status"], 429, "{push}");
    assert_eq!(unsynced(&d), 6, "nothing marked pushed");
    assert!(d.logged("remote asked to wait longer than a tick allows; resuming next tick"));
    // The next tick sends the same batch again.
    let push = push_once(&d);
    wait_until("the backlog pushed", || unsynced(&d) == 0);
    let received = receiver.received();
    assert_eq!(
        received[0].headers["idempotency-key"],
        received[1].headers["idempotency-key"]
    );
    assert_eq!(received[1].status, 200, "{push}");
    expect_rows(&delivered(&received), "later", 3);
}

/// `t` as an HTTP date (RFC 9110 IMF-fixdate), such as
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[test]
fn http_dates_are_written_as_http_says() {
    let at = |secs: u64| http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(at(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
}

#[test]
fn a_retry_after_http_date_is_waited_for() {
    use std::time::SystemTime;
    let receiver = Receiver::start(Box::new(|n, _| {
        if n == 0 {
            // An HTTP date has whole seconds: three from now is at least two.
            let when = http_date(SystemTime::now() + Duration::from_secs(3));
            (503, vec![("Retry-After".into(), when)], Duration::ZERO)
        } else {
            ok()
        }
    }));
    let d = start_on_demand(&receiver.url, &[]);
    post_rows(&d, "dated", 2);
    let push = push_once(&d);
    let received = receiver.received();
    assert_eq!(
        received.iter().map(|r| r.status).collect::<Vec<_>>()[..2],
        [503, 200],
        "retried within the tick: {push}"
    );
    assert_eq!(
        received[0].headers["idempotency-key"],
        received[1].headers["idempotency-key"]
    );
    let gap = received[1].at.duration_since(received[0].at);
    // At least two seconds to the date; the first backoff would be 0.5 s at
    // most. (The margin is for the time between the script and the record.)
    assert!(
        gap >= Duration::from_millis(1500),
        "waited {gap:?}, not until the date"
    );
    assert_eq!(push["retries"], 1, "{push}");
}

#[test]
fn a_408_is_retried_within_the_tick_and_a_501_is_not() {
    let receiver = Receiver::start(Box::new(|n, _| match n {
        0 => (408, vec![], Duration::ZERO),
        _ => ok(),
    }));
    let d = start_on_demand(&receiver.url, &[]);
    post_rows(&d, "timeout", 1);
    let push = push_once(&d);
    let received = receiver.received();
    assert!(received.len() >= 2, "{push}");
    assert_eq!((received[0].status, received[1].status), (408, 200));
    assert_eq!(
        received[0].headers["idempotency-key"],
        received[1].headers["idempotency-key"]
    );
    assert_eq!(push["retries"], 1, "{push}");
    assert_eq!(unsynced(&d), 0);

    let receiver = Receiver::start(Box::new(|_, _| (501, vec![], Duration::ZERO)));
    let d = start_on_demand(&receiver.url, &[]);
    post_rows(&d, "unsupported", 1);
    let push = push_once(&d);
    assert_eq!(receiver.received().len(), 1, "a 501 is final: {push}");
    assert_eq!(push["retries"], 0, "{push}");
    assert_eq!(push["last_error"]["status"], 501, "{push}");
    assert_eq!(unsynced(&d), 2, "the rows wait for the next tick");
    assert_eq!(push["dead_lettered_rows"], 0, "and are not dead-lettered");
    assert!(d.logged("the push endpoint refused a batch"));
}

#[test]
fn a_batch_is_tried_five_times_per_tick() {
    let receiver = Receiver::start(Box::new(|_, _| (500, vec![], Duration::ZERO)));
    let d = start_on_demand(&receiver.url, &[]);
    post_rows(&d, "failing", 2);
    let push = push_once(&d);
    let received = receiver.received();
    assert_eq!(
        received.len(),
        5,
        "five attempts, then the tick ends: {push}"
    );
    let key = &received[0].headers["idempotency-key"];
    assert!(received
        .iter()
        .all(|r| &r.headers["idempotency-key"] == key));
    assert_eq!(push["retries"], 4, "{push}");
    assert_eq!(push["consecutive_failures"], 5, "{push}");
    assert_eq!(unsynced(&d), 4);
    assert!(d.logged("push gave up for this tick"));
    // The next tick starts over with five more.
    let push = push_once(&d);
    assert_eq!(receiver.received().len(), 10, "{push}");
    assert_eq!(push["consecutive_failures"], 10, "{push}");
}

#[test]
fn a_batch_holds_at_most_10000_rows_and_its_byte_budget() {
    let receiver = Receiver::start(Box::new(|_, _| ok()));
    let d = start_on_demand(&receiver.url, &[("TRACE_PUSH_MAX_BATCH_BYTES", "64MiB")]);
    let events = |n: usize| format!("[{}]", vec![r#"{"name":"e"}"#; n].join(","));
    assert_eq!(d.post_json("/v1/events", &events(10_000)).status, 202);
    assert_eq!(d.post_json("/v1/events", &events(1)).status, 202);
    push_once(&d);
    wait_until("the events pushed", || {
        d.status()["tables"]["events"]["unpushed"] == 0
    });
    let batches: Vec<(String, usize)> = receiver
        .received()
        .iter()
        .filter(|r| r.headers["idempotency-key"].contains(":events:"))
        .map(|r| (r.headers["idempotency-key"].clone(), r.events().len()))
        .collect();
    assert_eq!(
        batches,
        vec![
            ("test-agent:events:1-10000".to_string(), 10_000),
            ("test-agent:events:10001-10001".to_string(), 1)
        ]
    );

    // With a small byte budget, no batch of many events passes it.
    let receiver = Receiver::start(Box::new(|_, _| ok()));
    let d = start(&receiver.url, &[("TRACE_PUSH_MAX_BATCH_BYTES", "2KiB")]);
    post_rows(&d, "small", 30);
    wait_until("the backlog pushed", || unsynced(&d) == 0);
    let received = receiver.received();
    let mut batches = 0;
    for r in received.iter().filter(|r| r.status == 200) {
        let events = r.events();
        let envelope = format!(
            r#"{{"agent_id":"test-agent","batch_id":"{}","events":["#,
            r.headers["idempotency-key"]
        );
        let event_bytes = r.raw.len() - envelope.len() - 2;
        assert!(r.raw.starts_with(envelope.as_bytes()));
        if events.len() > 1 {
            assert!(
                event_bytes <= 2048,
                "{} events in {event_bytes} bytes",
                events.len()
            );
        }
        batches += 1;
    }
    assert!(
        batches >= 3,
        "60 rows do not fit in 2 KiB: {batches} batches"
    );
    expect_rows(&delivered(&received), "small", 30);
}

#[test]
fn the_otlp_format_sends_calls_and_errors_as_log_records_counters_as_delta_sums_under_a_default_resource(
) {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    fn value(attrs: &[KeyValue], key: &str) -> Option<any_value::Value> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    }
    fn string(s: &str) -> Option<any_value::Value> {
        Some(any_value::Value::StringValue(s.into()))
    }
    fn int(i: i64) -> Option<any_value::Value> {
        Some(any_value::Value::IntValue(i))
    }
    let default_resource = |r: &Option<Resource>| {
        let attrs = &r.as_ref().expect("a resource").attributes;
        assert_eq!(attrs.len(), 2, "{attrs:?}");
        assert_eq!(value(attrs, "service.name"), string("openclaw-trace"));
        assert_eq!(value(attrs, "agent.id"), string("test-agent"));
    };

    let receiver = Receiver::start(Box::new(|_, _| ok()));
    let base = receiver.url.trim_end_matches("/ingest").to_string();
    let d = start(&base, &[("TRACE_PUSH_FORMAT", "otlp")]);
    let posted = [
        (
            "/v1/traces",
            r#"{"provider":"anthropic","model":"claude-sonnet-4-5","prompt_tokens":100,"completion_tokens":20,
                "cache_read_tokens":30,"cost_usd":0.5,"session_id":"s1","latency_ms":900}"#,
        ),
        (
            "/v1/errors",
            r#"{"error_type":"ToolError","message":"boom","severity":"warning","stack_trace":"at x"}"#,
        ),
        (
            "/v1/metrics",
            r#"{"name":"messages","value":3,"kind":"counter","attributes":{"channel":"slack"}}"#,
        ),
    ];
    for (path, body) in posted {
        let r = d.post_json(path, body);
        assert_eq!(r.status, 202, "{path}: {}", r.body);
    }
    wait_until("everything pushed", || d.status()["unsynced_count"] == 0);
    let received: Vec<Received> = receiver
        .received()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();

    let mut records = Vec::new();
    for r in received.iter().filter(|r| r.path == "/v1/logs") {
        let request = ExportLogsServiceRequest::decode(r.raw.as_slice()).expect("a logs request");
        for rl in request.resource_logs {
            default_resource(&rl.resource);
            for sl in rl.scope_logs {
                assert_eq!(
                    sl.scope.as_ref().map(|s| s.name.as_str()),
                    Some("openclaw-trace")
                );
                records.extend(sl.log_records);
            }
        }
    }
    for name in ["openclaw.llm_call", "openclaw.error"] {
        assert_eq!(
            records.iter().filter(|l| l.event_name == name).count(),
            1,
            "{name}: {records:?}"
        );
    }
    let call = records
        .iter()
        .find(|l| l.event_name == "openclaw.llm_call")
        .expect("the call as a log record");
    assert_eq!(
        (call.severity_text.as_str(), call.severity_number),
        ("info", 9)
    );
    let a = &call.attributes;
    assert_eq!(value(a, "gen_ai.provider.name"), string("anthropic"));
    assert_eq!(
        value(a, "gen_ai.request.model"),
        string("claude-sonnet-4-5")
    );
    assert_eq!(
        value(a, "openclaw.tokens.input"),
        int(100),
        "uncached input"
    );
    assert_eq!(
        value(a, "gen_ai.usage.input_tokens"),
        int(130),
        "input with the cache, as the conventions count it"
    );
    assert_eq!(value(a, "gen_ai.usage.output_tokens"), int(20));
    assert_eq!(value(a, "gen_ai.usage.cache_read.input_tokens"), int(30));
    assert_eq!(
        value(a, "openclaw.cost.usd"),
        Some(any_value::Value::DoubleValue(0.5))
    );
    assert_eq!(value(a, "openclaw.session_id"), string("s1"));
    assert_eq!(value(a, "openclaw.source"), string("native"));
    assert!(call.time_unix_nano > 0 && call.observed_time_unix_nano > 0);

    let error = records
        .iter()
        .find(|l| l.event_name == "openclaw.error")
        .expect("the error as a log record");
    assert_eq!(
        (error.severity_text.as_str(), error.severity_number),
        ("warning", 13)
    );
    assert_eq!(
        error.body,
        Some(AnyValue {
            value: string("boom")
        })
    );
    assert_eq!(value(&error.attributes, "error.type"), string("ToolError"));
    assert_eq!(
        value(&error.attributes, "exception.stacktrace"),
        string("at x")
    );

    let mut counter = None;
    for r in received.iter().filter(|r| r.path == "/v1/metrics") {
        let request =
            ExportMetricsServiceRequest::decode(r.raw.as_slice()).expect("a metrics request");
        for rm in request.resource_metrics {
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    if m.name == "messages" {
                        default_resource(&rm.resource);
                        counter = Some(m);
                    }
                }
            }
        }
    }
    let counter = counter.expect("the counter pushed");
    let Some(metric::Data::Sum(sum)) = counter.data else {
        panic!("a native counter is a sum: {counter:?}");
    };
    assert_eq!(sum.aggregation_temporality, 1, "delta");
    assert!(sum.is_monotonic);
    assert_eq!(sum.data_points.len(), 1);
    let point = &sum.data_points[0];
    assert_eq!(point.value, Some(number_data_point::Value::AsDouble(3.0)));
    assert_eq!(value(&point.attributes, "channel"), string("slack"));
}
