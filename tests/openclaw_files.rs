//! Following OpenClaw's own files with fixtures: the gateway log (JSON
//! lines, rotation, a late directory, a 100 MB file) and transcript
//! databases shaped like OpenClaw's agent schema 23 (compressed rows, an
//! unknown schema version, agents that appear later), exactly once across
//! `kill -9` and restarts. The real gateway is in `tests/openclaw.rs`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{env_refs, eventually, Daemon};
use rusqlite::{params, Connection};
use serde_json::Value;

/// A gateway log line as OpenClaw's logger writes it, numbered `i`.
fn log_line(i: usize, level: &str) -> String {
    serde_json::json!({
        "0": "{\"subsystem\":\"gateway/ws\"}",
        "1": format!("line {i}"),
        "_meta": {"runtime": "node", "hostname": "vm", "date": "2026-11-29T11:18:15.963Z",
                  "logLevelName": level, "name": "{\"subsystem\":\"gateway/ws\"}",
                  "parentNames": ["openclaw"]},
        "time": "2026-11-29T12:18:15.964+01:00",
        "hostname": "vm",
        "message": format!("line {i}"),
    })
    .to_string()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(text.as_bytes()).expect("write log");
}

/// `(rows, distinct bodies)` of the log's events.
fn log_events(d: &Daemon) -> (i64, i64) {
    d.db()
        .query_row(
            "SELECT count(*), count(DISTINCT body) FROM events WHERE source = 'openclaw_log'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count events")
}

#[test]
fn log_lines_are_stored_once_across_kill_and_restart() {
    let logs = tempfile::tempdir().expect("tempdir");
    let file = logs.path().join("openclaw-2026-11-29.log");
    let dir = logs.path().display().to_string();
    let env = [
        ("TRACE_OPENCLAW_LOG", dir.as_str()),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ];
    let d = Daemon::start(&env);
    // A writer appends steadily, sometimes half a line at a time; every
    // tenth line is an error, every 25th is not JSON.
    const LINES: usize = 3000;
    let writer = {
        let file = file.clone();
        std::thread::spawn(move || {
            for i in 0..LINES {
                let line = match i {
                    i if i % 25 == 0 => format!("line {i}"),
                    i if i % 10 == 0 => log_line(i, "ERROR"),
                    i => log_line(i, "INFO"),
                };
                let (a, b) = line.split_at(line.len() / 2);
                append(&file, a);
                if i % 7 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                append(&file, &format!("{b}\n"));
            }
        })
    };
    eventually("some lines stored", || log_events(&d).0 > 300);
    let (status, _dir, db_path, saved_env) = d.stop_with(libc::SIGKILL);
    assert!(!status.success());
    let d = Daemon::start_at(&db_path, &env_refs(&saved_env));
    eventually("a few more lines", || log_events(&d).0 > 900);
    let d = d.restart();
    writer.join().expect("writer");
    eventually("every line stored", || log_events(&d).0 >= LINES as i64);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(log_events(&d), (LINES as i64, LINES as i64));
    let errors: i64 = d
        .db()
        .query_row(
            "SELECT count(*) FROM errors WHERE source = 'openclaw_log' AND error_type = 'gateway/ws'",
            [],
            |r| r.get(0),
        )
        .expect("errors");
    // Every tenth line but those that are every 25th (kept as text).
    let expected = (0..LINES).filter(|i| i % 10 == 0 && i % 25 != 0).count();
    assert_eq!(errors, expected as i64);
    let s = d.status();
    let sources = s["openclaw"]["gateway_log"]["sources"]
        .as_object()
        .expect("sources");
    assert_eq!(sources.len(), 1, "{sources:?}");
    let source = sources.values().next().expect("one");
    assert_eq!(source["rows_read"], LINES as u64);
    assert_eq!(source["rows_failed"], (LINES / 25) as u64);
    assert_eq!(source["behind"], 0);
    assert_eq!(
        source["position"].as_u64(),
        std::fs::metadata(&file).ok().map(|m| m.len())
    );
    // `openclaw-trace status` shows the file followed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openclaw-trace"))
        .env_clear()
        .env("TRACE_LISTEN_ADDR", d.base.trim_start_matches("http://"))
        .arg("status")
        .output()
        .expect("run the CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("gateway_log"))
        .unwrap_or_else(|| panic!("no gateway_log row in:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], file.display().to_string(), "{row}");
    assert_eq!(cells[2], "3,000", "{row}");
    assert_eq!(cells[3], "120", "{row}");
    assert!(
        text.contains("openclaw: not following transcript"),
        "{text}"
    );
}

#[test]
fn rotation_the_daily_switch_and_a_late_directory_are_followed() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("openclaw");
    let env = [
        ("TRACE_OPENCLAW_LOG", dir.to_str().expect("utf-8")),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ];
    let d = Daemon::start(&env);
    d.wait_status("the follower waits for the directory", |s| {
        s["openclaw"]["gateway_log"]["enabled"] == true
    });
    std::fs::create_dir(&dir).expect("mkdir");
    let day = dir.join("openclaw-2026-11-29.log");
    let mut n = 0;
    let mut write = |path: &Path, count: usize| {
        for _ in 0..count {
            append(path, &format!("{}\n", log_line(n, "INFO")));
            n += 1;
        }
    };
    write(&day, 10);
    eventually("the first file", || log_events(&d).0 == 10);
    // Lines written just before a size rotation renames the file to .1 are
    // read from the archive; the fresh file is read from its start.
    write(&day, 5);
    std::fs::rename(&day, dir.join("openclaw-2026-11-29.1.log")).expect("rotate");
    write(&day, 3);
    // The next day's file.
    write(&dir.join("openclaw-2026-11-30.log"), 2);
    eventually("every file", || log_events(&d).0 >= 20);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(log_events(&d), (20, 20));
    let s = d.status();
    assert_eq!(
        s["openclaw"]["gateway_log"]["sources"]
            .as_object()
            .expect("sources")
            .len(),
        3
    );
}

#[test]
fn a_100_mb_log_is_read_in_bounded_memory() {
    let logs = tempfile::tempdir().expect("tempdir");
    let file = logs.path().join("openclaw-2026-11-29.log");
    let mut lines = 0usize;
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
        let mut written = 0;
        while written < 100 << 20 {
            let line = log_line(lines, if lines % 50 == 0 { "WARN" } else { "INFO" });
            writeln!(out, "{line}").expect("write");
            written += line.len() + 1;
            lines += 1;
        }
        out.flush().expect("flush");
    }
    let dir = logs.path().display().to_string();
    let d = Daemon::start(&[
        ("TRACE_OPENCLAW_LOG", dir.as_str()),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ]);
    let s = d.wait_status("the whole file read", |s| {
        s["openclaw"]["gateway_log"]["sources"]
            .as_object()
            .and_then(|m| m.values().next())
            .is_some_and(|v| v["rows_read"] == lines as u64)
    });
    let source = s["openclaw"]["gateway_log"]["sources"]
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .expect("source");
    assert_eq!(source["behind"], 0);
    assert_eq!(
        log_events(&d),
        (lines as i64, lines as i64),
        "rows stored; rotation's log: {:?}",
        d.log_lines("rotation")
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).expect("status");
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    println!("100 MB log: {lines} lines, VmHWM {hwm_kib} KiB");
    // The file is read a megabyte at a time: its size never shows in the
    // peak. 64 MiB is far above the daemon's own (the debug build's)
    // footprint and far below the file.
    assert!(
        hwm_kib < 64 * 1024,
        "VmHWM {hwm_kib} KiB reading a 100 MB log"
    );
}

/// The columns of OpenClaw's `transcript_events` (agent schema 23) and the
/// `session_windows` columns the follower reads.
fn agent_db(state: &Path, agent: &str, version: i64) -> (PathBuf, Connection) {
    let dir = state.join("agents").join(agent).join("agent");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("openclaw-agent.sqlite");
    let conn = Connection::open(&path).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE session_windows (session_id TEXT NOT NULL PRIMARY KEY, channel TEXT) STRICT;
         CREATE TABLE transcript_events (
           session_id TEXT NOT NULL, seq INTEGER NOT NULL, event_json TEXT,
           created_at INTEGER NOT NULL, event_zstd BLOB,
           event_utf8_bytes INTEGER CHECK (event_utf8_bytes IS NULL OR event_utf8_bytes >= 0),
           navigation_json TEXT, PRIMARY KEY (session_id, seq)) STRICT;
         PRAGMA user_version = {version};"
    ))
    .expect("schema");
    (path, conn)
}

/// Appends an event to a session's transcript, as OpenClaw does.
fn append_event(conn: &Connection, session: &str, seq: i64, event_json: &str) {
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at)
         VALUES (?1, ?2, ?3, 0)",
        params![session, seq, event_json],
    )
    .expect("insert a transcript event");
}

/// An assistant message with usage, as OpenClaw writes it.
fn assistant(input: i64, output: i64, cost: f64) -> String {
    serde_json::json!({
        "type": "message", "id": format!("ev-{input}"),
        "timestamp": "2026-11-29T11:42:47.668Z",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}],
            "api": "openai-completions", "provider": "mock", "model": "mock-model",
            "usage": {"input": input, "output": output, "cacheRead": 0, "cacheWrite": 0,
                      "totalTokens": input + output,
                      "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0,
                               "total": cost}},
            "stopReason": "stop", "timestamp": 1_795_952_567_546i64,
            "responseId": format!("chatcmpl-{input}"), "__openclaw": {"runId": "run-1"}}
    })
    .to_string()
}

fn transcript_calls(d: &Daemon) -> (i64, i64, i64) {
    d.db()
        .query_row(
            "SELECT count(*), count(DISTINCT prompt_tokens), coalesce(sum(prompt_tokens), 0)
             FROM llm_calls WHERE source = 'openclaw_transcript'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("count calls")
}

#[test]
fn transcript_calls_are_stored_once_across_kill_and_restart() {
    let state = tempfile::tempdir().expect("tempdir");
    let (_, conn) = agent_db(state.path(), "main", 23);
    let state_dir = state.path().display().to_string();
    let env = [
        ("TRACE_OPENCLAW_STATE_DIR", state_dir.as_str()),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ];
    let d = Daemon::start(&env);
    // OpenClaw writes turns steadily: a user message, then the assistant's.
    const CALLS: i64 = 1500;
    let writer = std::thread::spawn(move || {
        for i in 0..CALLS {
            let session = format!("s{}", i % 7);
            let seq = 2 * (i / 7);
            append_event(
                &conn,
                &session,
                seq,
                r#"{"type":"message","message":{"role":"user"}}"#,
            );
            append_event(&conn, &session, seq + 1, &assistant(i + 1, 2, 0.5));
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    eventually("some calls", || transcript_calls(&d).0 > 100);
    let (status, _dir, db_path, saved_env) = d.stop_with(libc::SIGKILL);
    assert!(!status.success());
    let d = Daemon::start_at(&db_path, &env_refs(&saved_env));
    eventually("more calls", || transcript_calls(&d).0 > 500);
    let d = d.restart();
    writer.join().expect("writer");
    // An agent created after the sidecar started.
    let (_, late) = agent_db(state.path(), "late", 23);
    append_event(&late, "x", 0, &assistant(1_000_000, 1, 0.25));
    eventually("every call", || transcript_calls(&d).0 > CALLS);
    std::thread::sleep(Duration::from_millis(500));
    let sum: i64 = (1..=CALLS).sum::<i64>() + 1_000_000;
    assert_eq!(transcript_calls(&d), (CALLS + 1, CALLS + 1, sum));
    let cost: f64 = d
        .db()
        .query_row(
            "SELECT sum(cost_usd) FROM llm_calls WHERE source = 'openclaw_transcript'
               AND cost_source = 'reported'",
            [],
            |r| r.get(0),
        )
        .expect("cost");
    assert_eq!(cost, CALLS as f64 * 0.5 + 0.25);
    let s = d.status();
    let sources = s["openclaw"]["transcript"]["sources"]
        .as_object()
        .expect("sources");
    assert_eq!(sources.len(), 2, "{sources:?}");
    let main = sources
        .iter()
        .find(|(k, _)| k.contains("/main/"))
        .map(|(_, v)| v)
        .expect("main");
    assert_eq!(main["rows_read"], (2 * CALLS) as u64);
    assert_eq!(main["rows_failed"], 0);
    assert_eq!(main["behind"], 0);
    assert_eq!(main["position"], 2 * CALLS);
    // The owner's summary counts them.
    let summary = d
        .get("/v1/llm/summary?since=2026-11-28T00:00:00Z&until=2026-11-30T00:00:00Z")
        .json();
    assert_eq!(summary["totals"]["calls"], CALLS + 1, "{summary}");
}

#[test]
fn an_unknown_schema_version_is_reported_and_skipped() {
    let state = tempfile::tempdir().expect("tempdir");
    let (_, conn) = agent_db(state.path(), "main", 99);
    append_event(&conn, "a", 0, &assistant(5, 5, 1.0));
    let state_dir = state.path().display().to_string();
    let d = Daemon::start(&[
        ("TRACE_OPENCLAW_STATE_DIR", state_dir.as_str()),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ]);
    let s = d.wait_status("the schema problem reported", |s| {
        s["warnings"].as_array().is_some_and(|w| {
            w.iter()
                .any(|w| w.as_str().is_some_and(|w| w.contains("schema version 99")))
        })
    });
    let problem = s["openclaw"]["transcript"]["sources"]
        .as_object()
        .and_then(|m| m.values().next())
        .map(|v| v["problem"].clone())
        .unwrap_or(Value::Null);
    assert!(
        problem
            .as_str()
            .is_some_and(|p| p.contains("agent schema version 99")),
        "{problem}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(transcript_calls(&d).0, 0);
    // Reported in the log once, not at every look.
    assert_eq!(d.log_count("schema version 99"), 1);
}

#[test]
fn sources_that_cannot_be_read_are_reported_at_start() {
    // OpenClaw creates its files 0600: a sidecar of another user reads none.
    let state = tempfile::tempdir().expect("tempdir");
    let (db, _conn) = agent_db(state.path(), "main", 23);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("openclaw-2026-11-29.log");
    append(&log, &format!("{}\n", log_line(1, "INFO")));
    use std::os::unix::fs::PermissionsExt;
    for f in [&db, &log] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    for d in [state.path(), logs.path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let (state_dir, log_dir) = (
        state.path().display().to_string(),
        logs.path().display().to_string(),
    );
    let env = [
        ("TRACE_OPENCLAW_STATE_DIR", state_dir.as_str()),
        ("TRACE_OPENCLAW_LOG", log_dir.as_str()),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ];
    // The sidecar runs as `nobody`; the files are root's. As another user
    // than root the test cannot make files it cannot read itself.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to run the sidecar as another user");
        return;
    }
    let db_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(db_dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let nobody = 65534;
    let d = Daemon::start_configured(Some(&db_dir.path().join("trace.db")), &env, |cmd| {
        use std::os::unix::process::CommandExt;
        cmd.uid(nobody).gid(nobody);
    });
    let s = d.wait_status("both sources reported unreadable", |s| {
        let w = s["warnings"].to_string();
        w.contains("openclaw transcript") && w.contains("openclaw gateway_log")
    });
    let w = s["warnings"].to_string();
    assert!(
        w.contains("Permission denied")
            || w.contains("permission denied")
            || w.contains("unable to open"),
        "{w}"
    );
    assert!(d.logged("cannot read an OpenClaw transcript"));
    assert!(d.logged("cannot read an OpenClaw gateway log file"));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An `openclaw.model.usage` span as OTLP/JSON.
fn usage_span_body(at_ms: i64, span: &str, provider: &str, model: &str, input: i64) -> String {
    let attr = |k: &str, v: Value| {
        serde_json::json!({"key": k, "value": match v {
            Value::String(s) => serde_json::json!({"stringValue": s}),
            other => serde_json::json!({"intValue": other.to_string()}),
        }})
    };
    let start = at_ms * 1_000_000;
    serde_json::json!({"resourceSpans": [{"resource": {"attributes": []},
    "scopeSpans": [{"scope": {"name": "openclaw"}, "spans": [{
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": span,
        "name": "openclaw.model.usage", "kind": 1,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + 1_000_000_000).to_string(),
        "attributes": [
            attr("gen_ai.system", Value::from(provider)),
            attr("gen_ai.request.model", Value::from(model)),
            attr("openclaw.tokens.input", Value::from(input)),
            attr("openclaw.tokens.output", Value::from(1)),
        ]}]}]}]})
    .to_string()
}

#[test]
fn the_summary_counts_a_call_once_across_transcript_otlp_and_native() {
    let now = now_ms();
    let hour_ms = 3_600_000;
    // Three calls in the transcript, in the current hour.
    let state = tempfile::tempdir().expect("tempdir");
    let (_, conn) = agent_db(state.path(), "main", 23);
    for i in 0..3i64 {
        let mut event: Value = serde_json::from_str(&assistant(10 + i, 2, 0.01)).expect("json");
        event["message"]["timestamp"] = Value::from(now - 1000 * (i + 1));
        append_event(&conn, "s", i, &event.to_string());
    }
    let state_dir = state.path().display().to_string();
    let d = Daemon::start(&[
        ("TRACE_OPENCLAW_STATE_DIR", state_dir.as_str()),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ]);
    eventually("the transcript read", || transcript_calls(&d).0 == 3);
    // The same calls again, as OpenClaw's usage spans and as native records
    // of the same provider and model; a native call of another model; and
    // a usage span two hours back, when the transcript holds nothing.
    for (i, span) in ["00f067aa0ba902b1", "00f067aa0ba902b2", "00f067aa0ba902b3"]
        .iter()
        .enumerate()
    {
        let r = d.post_json(
            "/v1/traces",
            &usage_span_body(
                now - 1000 * (i as i64 + 1),
                span,
                "mock",
                "mock-model",
                10 + i as i64,
            ),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let native = serde_json::json!([
        {"provider": "mock", "model": "mock-model", "prompt_tokens": 10, "completion_tokens": 2,
         "cost_usd": 0.01, "timestamp": now - 1000},
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "prompt_tokens": 100,
         "completion_tokens": 20, "cost_usd": 0.5, "timestamp": now - 2000},
    ]);
    let r = d.post_json("/v1/traces", &native.to_string());
    assert_eq!(r.status, 202, "{}", r.body);
    let r = d.post_json(
        "/v1/traces",
        &usage_span_body(
            now - 2 * hour_ms,
            "00f067aa0ba902b9",
            "mock",
            "mock-model",
            1000,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A span of another model in the transcript's hour (another app's
    // exporter): not a repeat, counted.
    let r = d.post_json(
        "/v1/traces",
        &usage_span_body(now - 3000, "00f067aa0ba902ba", "openai", "gpt-5.4", 500),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the span rows", || {
        d.db()
            .query_row(
                "SELECT count(*) FROM llm_calls WHERE source = 'otlp_span'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
            == 5
    });

    let s = d.get("/v1/llm/summary?since=24h&group_by=model").json();
    // 3 transcript calls, the other model's native call, the older span,
    // the other model's span.
    assert_eq!(s["totals"]["calls"], 6, "{s}");
    assert_eq!(
        s["sources"]["used"],
        serde_json::json!(["openclaw_transcript", "native", "otlp_span"]),
        "{s}"
    );
    let skipped: Vec<(String, i64)> = s["sources"]["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|x| {
            (
                x["source"].as_str().unwrap_or("").to_string(),
                x["rows"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [("native".to_string(), 1), ("otlp_span".to_string(), 3)],
        "{s}"
    );
    let mock = s["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"]["model"] == "mock-model"))
        .cloned()
        .expect("mock-model group");
    assert_eq!(mock["calls"], 4, "{mock}");
    assert_eq!(mock["tokens"]["input"], 10 + 11 + 12 + 1000, "{mock}");
    // Each source alone, when asked for, holds its own rows.
    let spans = d.get("/v1/llm/summary?since=24h&source=otlp_span").json();
    assert_eq!(spans["totals"]["calls"], 5, "{spans}");
    // Grouped by session (days with no provider or model): the spans of
    // the transcript's day are left out, native records counted.
    let by_session = d.get("/v1/llm/summary?since=24h&group_by=session").json();
    let skipped: Vec<&str> = by_session["sources"]["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|x| x["source"].as_str())
        .collect();
    assert!(!skipped.contains(&"native"), "{by_session}");
    assert!(skipped.contains(&"otlp_span"), "{by_session}");
    // 3 transcript calls and both native calls; the spans of the day left
    // out (the older span too, when it falls on the same UTC day).
    let calls = by_session["totals"]["calls"].as_i64().unwrap_or(0);
    assert!(calls == 5 || calls == 6, "{by_session}");
}

#[test]
fn a_log_that_cannot_be_opened_after_a_restart_keeps_its_position() {
    // The sidecar runs as `nobody`, so that taking the file's permissions
    // away makes it unreadable (root reads anything).
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to run the sidecar as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let logs = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(logs.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = logs.path().join("openclaw-2026-11-29.log");
    for i in 0..10 {
        append(&file, &format!("{}\n", log_line(i, "INFO")));
    }
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let db_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(db_dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let db = db_dir.path().join("trace.db");
    let dir = logs.path().display().to_string();
    let env = [
        ("TRACE_OPENCLAW_LOG", dir.as_str()),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ];
    let as_nobody = |cmd: &mut std::process::Command| {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    };
    let d = Daemon::start_configured(Some(&db), &env, as_nobody);
    eventually("ten lines", || log_events(&d).0 == 10);
    let (status, _dir, _, _) = d.stop_with(libc::SIGTERM);
    assert!(status.success());
    // Unreadable when the sidecar starts again, readable a moment later.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let d = Daemon::start_configured(Some(&db), &env, as_nobody);
    d.wait_status("the file reported unreadable", |s| {
        s["warnings"].to_string().contains("Permission denied")
    });
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for i in 10..15 {
        append(&file, &format!("{}\n", log_line(i, "INFO")));
    }
    eventually("the five new lines", || log_events(&d).0 >= 15);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(log_events(&d), (15, 15), "nothing read twice");
}

/// With nothing of OpenClaw's to follow, the followers look less and less
/// often (up to 12 polls apart); a transcript and a log that appear later
/// are still found, and read from their start.
#[test]
fn an_openclaw_that_appears_late_is_still_followed() {
    let state = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let (state_dir, log_dir) = (
        state.path().display().to_string(),
        logs.path().display().to_string(),
    );
    let d = Daemon::start(&[
        ("TRACE_OPENCLAW_STATE_DIR", state_dir.as_str()),
        ("TRACE_OPENCLAW_LOG", log_dir.as_str()),
        ("TRACE_OPENCLAW_POLL", "100ms"),
    ]);
    let s = d.wait_status("both followers looking", |s| {
        s["openclaw"]["transcript"]["enabled"] == true
            && s["openclaw"]["gateway_log"]["enabled"] == true
    });
    assert_eq!(
        s["openclaw"]["transcript"]["sources"],
        serde_json::json!({})
    );
    // Long enough for the looks to be 12 polls apart.
    std::thread::sleep(Duration::from_secs(3));
    let (_, conn) = agent_db(state.path(), "main", 23);
    append_event(&conn, "s", 0, &assistant(4242, 7, 0.125));
    append(
        &logs.path().join("openclaw-2026-11-30.log"),
        &format!("{}\n", log_line(1, "ERROR")),
    );
    eventually("the late transcript's call", || {
        transcript_calls(&d) == (1, 1, 4242)
    });
    eventually("the late log's line", || log_events(&d) == (1, 1));
}
