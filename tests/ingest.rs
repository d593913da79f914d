//! The native ingest API against the real daemon: each endpoint stores what
//! it acknowledges, and every class of bad input is refused with a 4xx that
//! names the field, with nothing stored.

mod common;

use common::Daemon;
use serde_json::{json, Value};

#[test]
fn llm_calls_are_committed_before_the_202() {
    let d = Daemon::start(&[]);
    let reply = d.post_json(
        "/v1/traces",
        r#"{"provider":"anthropic","model":"claude-sonnet-4","input_text":"hi","output_text":"hello",
            "prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"cost_usd":0.0021,
            "latency_ms":812.5,"metadata":{"tool":"search"},"session_id":"s-1",
            "timestamp":"2026-11-28T10:00:00Z"}"#,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["accepted"], 1);
    let id = answer["ids"][0].as_i64().expect("an integer id");
    let trace_id = answer["trace_ids"][0]
        .as_str()
        .expect("a trace id")
        .to_string();
    assert_eq!(trace_id.len(), 36, "a UUID is assigned: {trace_id}");

    // A separate connection sees the row right after the 202.
    let row = d
        .db()
        .query_row(
            "SELECT provider, model, input_text, output_text, prompt_tokens, completion_tokens,
                    total_tokens, cost_usd, latency_ms, status, metadata, session_id, trace_id,
                    agent_id, source, time_ns, received_ns, truncated
             FROM llm_calls WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, f64>(7)?,
                    r.get::<_, f64>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, String>(12)?,
                    r.get::<_, String>(13)?,
                    r.get::<_, String>(14)?,
                    r.get::<_, i64>(15)?,
                    r.get::<_, i64>(16)?,
                    r.get::<_, Option<String>>(17)?,
                ))
            },
        )
        .expect("the acknowledged row is in the database");
    assert_eq!(
        (row.0.as_str(), row.1.as_str()),
        ("anthropic", "claude-sonnet-4")
    );
    assert_eq!((row.2.as_str(), row.3.as_str()), ("hi", "hello"));
    assert_eq!((row.4, row.5, row.6), (12, 3, 15));
    assert_eq!((row.7, row.8), (0.0021, 812.5));
    assert_eq!(row.9, "ok", "status defaults to ok");
    assert_eq!(
        serde_json::from_str::<Value>(&row.10).expect("json"),
        json!({"tool": "search"})
    );
    assert_eq!(row.11, "s-1");
    assert_eq!(row.12, trace_id);
    assert_eq!((row.13.as_str(), row.14.as_str()), ("test-agent", "native"));
    assert_eq!(row.15, 1_795_860_000_000_000_000, "timestamp as unix ns");
    assert!(row.16 > row.15, "received later than it happened");
    assert_eq!(row.17, None, "nothing truncated");
}

#[test]
fn an_array_is_stored_whole_and_given_trace_ids_are_kept() {
    let d = Daemon::start(&[]);
    let reply = d.post_json(
        "/v1/traces",
        r#"[{"provider":"openai","model":"gpt-5","trace_id":"t-given"},
            {"provider":"openai","model":"gpt-5","status":"error","error_type":"rate_limit"}]"#,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["trace_ids"][0], "t-given");
    assert_eq!(d.count("llm_calls"), 2);
    let (status, error_type): (String, String) = d
        .db()
        .query_row(
            "SELECT status, error_type FROM llm_calls WHERE id = ?1",
            [answer["ids"][1].as_i64().expect("id")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!(
        (status.as_str(), error_type.as_str()),
        ("error", "rate_limit")
    );
}

#[test]
fn errors_events_and_metrics_are_stored() {
    let d = Daemon::start(&[]);
    let e = d.post_json(
        "/v1/errors",
        r#"{"error_type":"ToolError","message":"search failed","stack_trace":"at x","metadata":{"tool":"search"}}"#,
    );
    assert_eq!(e.status, 202, "{}", e.body);
    let (severity, message): (String, String) = d
        .db()
        .query_row("SELECT severity, message FROM errors", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("error row");
    assert_eq!(
        (severity.as_str(), message.as_str()),
        ("error", "search failed")
    );

    let ev = d.post_json(
        "/v1/events",
        r#"[{"name":"session.started","attributes":{"channel":"telegram"}},{"name":"deploy","severity":"warning","timestamp":1764324000000}]"#,
    );
    assert_eq!(ev.status, 202, "{}", ev.body);
    let rows: Vec<(String, String, i64)> = d
        .db()
        .prepare("SELECT name, severity, time_ns FROM events WHERE source = 'native' ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows[0].0, "session.started");
    assert_eq!(rows[0].1, "info", "severity defaults to info");
    assert_eq!(rows[1].1, "warning");
    assert_eq!(
        rows[1].2, 1_764_324_000_000_000_000,
        "unix ms become unix ns"
    );

    let m = d.post_json(
        "/v1/metrics",
        r#"[{"name":"queue.depth","value":-2.5,"unit":"1"},{"name":"messages","value":3,"kind":"counter","attributes":{"channel":"slack"}}]"#,
    );
    assert_eq!(m.status, 202, "{}", m.body);
    let rows: Vec<(String, String, f64)> = d
        .db()
        .prepare("SELECT name, kind, value FROM metric_points WHERE source = 'native' ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows,
        vec![
            ("queue.depth".into(), "gauge".into(), -2.5),
            ("messages".into(), "counter".into(), 3.0)
        ]
    );

    let status = d.status();
    assert_eq!(status["tables"]["errors"]["rows"], 1);
    assert_eq!(status["tables"]["events"]["rows"], 2);
    assert_eq!(status["tables"]["errors"]["unpushed"], 1);
    assert_eq!(status["ingest"]["accepted_records"]["metric_points"], 2);
    assert_eq!(
        status["events_received"], 5,
        "Go sidecar field: records accepted"
    );
}

#[test]
fn long_text_is_cut_on_a_character_boundary_and_marked() {
    let d = Daemon::start(&[("TRACE_MAX_TEXT_BYTES", "10")]);
    // 'é' is two bytes: 9 ASCII bytes then 'é' would end at byte 11.
    let reply = d.post_json(
        "/v1/traces",
        r#"{"provider":"p","model":"m","input_text":"123456789é and more","output_text":"short"}"#,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let (input, output, truncated): (String, String, String) = d
        .db()
        .query_row(
            "SELECT input_text, output_text, truncated FROM llm_calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("row");
    assert_eq!(input, "123456789");
    assert_eq!(output, "short");
    assert_eq!(truncated, "input_text");
}

/// Sends a bad request and checks the refusal, the field named, and that
/// nothing was stored.
fn refused(d: &Daemon, reply: common::Reply, status: u16, code: &str, mentions: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().expect("a message");
    assert!(
        message.contains(mentions),
        "message {message:?} should mention {mentions:?}"
    );
    for table in ["llm_calls", "errors", "events", "metric_points"] {
        assert_eq!(
            d.count(table),
            0,
            "nothing stored in {table} after a refused request"
        );
    }
}

#[test]
fn bad_input_is_refused_with_the_field_named_and_nothing_stored() {
    let d = Daemon::start(&[("TRACE_MAX_BODY_BYTES", "2KiB")]);
    let json = [("Content-Type", "application/json")];

    refused(
        &d,
        d.post_json("/v1/traces", r#"{"provider": "a", "model": "#),
        400,
        "malformed_json",
        "JSON",
    );
    refused(
        &d,
        d.post_json("/v1/traces", r#"{"provider":"a","model":7}"#),
        400,
        "invalid_field",
        "model",
    );
    refused(
        &d,
        d.post_json("/v1/traces", r#"{"model":"m"}"#),
        400,
        "invalid_field",
        "provider",
    );
    refused(
        &d,
        d.post_json("/v1/traces", r#"{"provider":"","model":"m"}"#),
        400,
        "invalid_field",
        "provider",
    );
    refused(
        &d,
        d.post_json(
            "/v1/traces",
            r#"{"provider":"a","model":"m","completion_tokens":-1}"#,
        ),
        400,
        "invalid_field",
        "completion_tokens",
    );
    refused(
        &d,
        d.post_json(
            "/v1/traces",
            r#"{"provider":"a","model":"m","latency_ms":-3.5}"#,
        ),
        400,
        "invalid_field",
        "latency_ms",
    );
    // Not a finite number: JSON has no NaN and 1e999 overflows f64.
    refused(
        &d,
        d.post_json(
            "/v1/traces",
            r#"{"provider":"a","model":"m","cost_usd":1e999}"#,
        ),
        400,
        "malformed_json",
        "number",
    );
    refused(
        &d,
        d.post_json(
            "/v1/traces",
            r#"{"provider":"a","model":"m","cost_usd":NaN}"#,
        ),
        400,
        "malformed_json",
        "JSON",
    );
    refused(
        &d,
        d.post_json(
            "/v1/traces",
            r#"{"provider":"a","model":"m","metadata":"not an object"}"#,
        ),
        400,
        "invalid_field",
        "metadata",
    );
    refused(
        &d,
        d.post_json("/v1/errors", r#"{"error_type":"E"}"#),
        400,
        "invalid_field",
        "message",
    );
    refused(
        &d,
        d.post_json("/v1/events", r#"{"name":"x","timestamp":"soon"}"#),
        400,
        "invalid_field",
        "timestamp",
    );
    refused(
        &d,
        d.post_json("/v1/metrics", r#"{"name":"x"}"#),
        400,
        "invalid_field",
        "value",
    );
    refused(
        &d,
        d.post_json("/v1/metrics", r#"{"name":"x","value":"1"}"#),
        400,
        "invalid_field",
        "value",
    );
    refused(
        &d,
        d.post_json("/v1/metrics", r#""just a string""#),
        400,
        "invalid_field",
        "body",
    );

    // An array is all or nothing: the good first element is not stored.
    refused(
        &d,
        d.post_json(
            "/v1/traces",
            r#"[{"provider":"a","model":"m"},{"provider":"a","model":"m","prompt_tokens":1.5}]"#,
        ),
        400,
        "invalid_field",
        "[1].prompt_tokens",
    );

    refused(
        &d,
        d.post("/v1/traces", b"", &json),
        400,
        "empty_body",
        "body",
    );
    refused(
        &d,
        d.post(
            "/v1/traces",
            br#"{"provider":"a","model":"m"}"#,
            &[("Content-Type", "text/plain")],
        ),
        415,
        "unsupported_media_type",
        "Content-Type",
    );
    let big = format!(
        r#"{{"provider":"a","model":"m","input_text":"{}"}}"#,
        "x".repeat(4096)
    );
    refused(
        &d,
        d.post("/v1/traces", big.as_bytes(), &json),
        413,
        "payload_too_large",
        "TRACE_MAX_BODY_BYTES",
    );
    // Without Content-Length the limit still holds.
    refused(
        &d,
        d.post_chunked("/v1/traces", big.as_bytes(), &json),
        413,
        "payload_too_large",
        "TRACE_MAX_BODY_BYTES",
    );

    // Still serving, and every refusal was counted by reason.
    let ok = d.post_chunked("/v1/events", br#"{"name":"still.alive"}"#, &json);
    assert_eq!(ok.status, 202, "{}", ok.body);
    let rejected = &d.status()["ingest"]["rejected"];
    assert_eq!(rejected["malformed_json"], 3, "{rejected}");
    assert_eq!(rejected["invalid_field"], 12, "{rejected}");
    assert_eq!(rejected["empty_body"], 1, "{rejected}");
    assert_eq!(rejected["unsupported_media_type"], 1, "{rejected}");
    assert_eq!(rejected["payload_too_large"], 2, "{rejected}");
}

#[test]
fn an_empty_array_is_accepted_as_nothing() {
    let d = Daemon::start(&[]);
    let reply = d.post_json("/v1/events", "[]");
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.json()["accepted"], 0);
}

#[test]
fn a_configured_token_is_required_for_ingest_only() {
    let d = Daemon::start(&[("TRACE_INGEST_TOKEN", "s3cret-token")]);
    let body = br#"{"name":"e"}"#;
    let missing = d.post("/v1/events", body, &[("Content-Type", "application/json")]);
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(missing.json()["error"], "unauthorized");
    let wrong = d.post(
        "/v1/events",
        body,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer nope"),
        ],
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(d.count("events"), 0);
    let right = d.post(
        "/v1/events",
        body,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer s3cret-token"),
        ],
    );
    assert_eq!(right.status, 202, "{}", right.body);
    assert_eq!(d.count("events"), 1);
    // The scheme is case-insensitive; the token is not.
    for (value, expected) in [
        ("bearer s3cret-token", 202),
        ("BEARER  s3cret-token", 202),
        ("bearer S3CRET-TOKEN", 401),
        ("Basic s3cret-token", 401),
    ] {
        let r = d.post(
            "/v1/events",
            body,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", value),
            ],
        );
        assert_eq!(r.status, expected, "{value}: {}", r.body);
    }
    assert_eq!(d.count("events"), 3);

    // Health and status stay open, and status never shows the token.
    assert_eq!(d.get("/health").status, 200);
    let status = d.get("/v1/status");
    assert_eq!(status.status, 200);
    assert!(!status.body.contains("s3cret-token"));
    assert_eq!(status.json()["config"]["ingest_token"], "***");
    assert_eq!(status.json()["ingest"]["rejected"]["unauthorized"], 4);
}

#[test]
fn health_and_status_report_the_store() {
    let d = Daemon::start(&[]);
    let health = d.get("/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let status = d.status();
    assert_eq!(status["agent_id"], "test-agent");
    assert_eq!(status["database"]["path"], d.db_path.display().to_string());
    assert_eq!(status["database"]["on_data_volume"], false);
    assert!(status["database"]["size_bytes"].as_u64().expect("size") > 0);
    for field in [
        "status",
        "uptime_seconds",
        "version",
        "db_status",
        "db_size_bytes",
        "wal_size_bytes",
        "queue_depth",
        "events_received",
        "events_dropped",
        "last_push_time",
        "last_push_status",
        "unsynced_count",
    ] {
        assert!(
            status.get(field).is_some(),
            "Go sidecar health field {field} is present"
        );
    }
    assert_eq!(status["db_status"], "ok");
}

#[test]
fn the_go_sidecar_health_fields_carry_their_values() {
    let launched = std::time::Instant::now();
    let d = std::sync::Arc::new(Daemon::start(&[("TRACE_MAX_PENDING_RECORDS", "3")]));
    let at_rest = d.status();
    assert_eq!(at_rest["status"], "ok", "{at_rest}");
    assert_eq!(at_rest["db_status"], "ok");
    assert_eq!(at_rest["version"], env!("CARGO_PKG_VERSION"));
    // Whole seconds since the daemon started: never more than since its
    // launch, and counting.
    let uptime = |s: &Value| s["uptime_seconds"].as_u64().expect("uptime_seconds");
    assert!(
        uptime(&at_rest) <= launched.elapsed().as_secs(),
        "{at_rest}"
    );
    assert_eq!(at_rest["queue_depth"], 0);
    assert_eq!(
        at_rest["events_received"], 0,
        "host samples are not counted"
    );
    assert_eq!(at_rest["events_dropped"], 0);
    // No push endpoint: never pushed, and says why.
    assert_eq!(at_rest["last_push_time"], Value::Null);
    assert_eq!(at_rest["last_push_status"], "disabled");
    // The same figures as the daemon's own sections of the same answer.
    assert_eq!(at_rest["db_size_bytes"], at_rest["database"]["size_bytes"]);
    assert_eq!(
        at_rest["wal_size_bytes"],
        at_rest["database"]["wal_size_bytes"]
    );
    assert!(at_rest["db_size_bytes"].as_u64() > Some(0));
    let unpushed = |s: &Value| -> u64 {
        s["tables"]
            .as_object()
            .expect("tables")
            .values()
            .map(|t| t["unpushed"].as_u64().expect("unpushed"))
            .sum()
    };
    assert_eq!(at_rest["unsynced_count"], unpushed(&at_rest), "{at_rest}");

    // Two calls and three events accepted; two requests refused.
    assert_eq!(
        d.post_json(
            "/v1/traces",
            r#"[{"provider":"a","model":"m"},{"provider":"b","model":"n"}]"#
        )
        .status,
        202
    );
    assert_eq!(
        d.post_json("/v1/events", r#"[{"name":"a"},{"name":"b"},{"name":"c"}]"#)
            .status,
        202
    );
    assert_eq!(d.post_json("/v1/events", "not json").status, 400);
    assert_eq!(d.post_json("/v1/traces", r#"{"model":"m"}"#).status, 400);
    let after = d.status();
    assert_eq!(after["events_received"], 5, "{after}");
    assert_eq!(after["events_dropped"], 2, "{after}");
    assert_eq!(after["unsynced_count"], unpushed(&after), "{after}");
    assert!(
        after["unsynced_count"].as_u64() >= Some(5),
        "the five rows are not pushed: {after}"
    );

    // `queue_depth` is the records waiting for their commit.
    d.hold("store");
    let held = {
        let d = std::sync::Arc::clone(&d);
        std::thread::spawn(move || d.post_json("/v1/events", r#"[{"name":"x"},{"name":"y"}]"#))
    };
    d.wait_pending(2);
    let waiting = d.status();
    assert_eq!(waiting["queue_depth"], 2, "{waiting}");
    assert_ne!(waiting["db_status"], "ok", "the held store cannot answer");
    assert_eq!(waiting["status"], "degraded");
    d.release();
    assert_eq!(held.join().expect("thread").status, 202);
    let done = d.wait_status("the store answering again", |s| s["db_status"] == "ok");
    assert_eq!(done["queue_depth"], 0);
    assert_eq!(done["events_received"], 7);
    assert_eq!(done["status"], "ok");

    let counted = d.wait_status("a second of uptime", |s| uptime(s) >= 1);
    assert!(
        uptime(&counted) <= launched.elapsed().as_secs(),
        "{counted}"
    );
}
