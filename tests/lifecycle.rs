//! Start-up, configuration errors, restarts and signals.

mod common;

use std::process::Command;

use common::{env_refs, eventually, open_db, Daemon};

const BIN: &str = env!("CARGO_BIN_EXE_openclaw-trace");

#[test]
fn data_survives_a_restart_and_ids_continue() {
    let d = Daemon::start(&[]);
    let first = d.post_json(
        "/v1/traces",
        r#"[{"provider":"a","model":"m"},{"provider":"b","model":"n"}]"#,
    );
    assert_eq!(first.status, 202, "{}", first.body);
    let d = d.restart();
    let status = d.status();
    assert_eq!(status["tables"]["llm_calls"]["rows"], 2);
    assert_eq!(status["tables"]["llm_calls"]["unpushed"], 2);
    let next = d.post_json("/v1/traces", r#"{"provider":"c","model":"o"}"#);
    assert_eq!(next.status, 202, "{}", next.body);
    assert_eq!(next.json()["ids"][0], 3);
    assert_eq!(d.count("llm_calls"), 3);
}

fn exits_cleanly_on(signal: i32) {
    let d = Daemon::start(&[]);
    for i in 0..20 {
        let r = d.post_json("/v1/events", &format!(r#"{{"name":"e{i}"}}"#));
        assert_eq!(r.status, 202);
    }
    let logs = std::sync::Arc::clone(&d.logs);
    let (status, _dir, db_path, _) = d.stop_with(signal);
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let logs = logs.lock().expect("logs");
    assert!(
        logs.iter()
            .any(|l| l.contains(r#""msg":"shutdown complete""#)),
        "{logs:?}"
    );
    // The WAL was checkpointed into the main file and truncated.
    let wal = std::fs::metadata(format!("{}-wal", db_path.display()))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "WAL checkpointed at shutdown");
    let rows: i64 = open_db(&db_path)
        .query_row(
            "SELECT count(*) FROM events WHERE source = 'native'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(rows, 20);
}

#[test]
fn sigterm_exits_zero_with_data_intact() {
    exits_cleanly_on(libc::SIGTERM);
}

#[test]
fn sigint_exits_zero_with_data_intact() {
    exits_cleanly_on(libc::SIGINT);
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_it() {
    let out = Command::new(BIN)
        .env("TRACE_MAX_BODY_BYTES", "lots")
        .env("TRACE_DB_PATH", "/nonexistent/never-created.db")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TRACE_MAX_BODY_BYTES=\"lots\""), "{stderr}");
    assert!(stderr.contains("8MiB"), "says what is accepted: {stderr}");
}

#[test]
fn a_bad_prices_file_stops_start_up_naming_the_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prices = dir.path().join("prices.txt");
    std::fs::write(
        &prices,
        "# my prices\nanthropic claude-sonnet-4-5 3 15 0.3 3.75\nopenai gpt-4o 2.5 ten\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .env("TRACE_PRICES_FILE", &prices)
        .env("TRACE_DB_PATH", "/nonexistent/never-created.db")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&prices.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("line 3, field output"), "{stderr}");
}

#[test]
fn an_unopenable_database_fails_start_up() {
    let out = Command::new(BIN)
        .env("TRACE_LISTEN_ADDR", "127.0.0.1:0")
        .env("TRACE_DB_PATH", "/nonexistent-dir/trace.db")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("/nonexistent-dir/trace.db"),
        "names the file: {stdout}"
    );
}

#[test]
fn help_lists_every_variable_and_version_prints_it() {
    let help = Command::new(BIN).arg("--help").output().expect("run");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for var in [
        "TRACE_LISTEN_ADDR",
        "TRACE_DB_PATH",
        "TRACE_AGENT_ID",
        "TRACE_LOG_LEVEL",
        "TRACE_MAX_TEXT_BYTES",
        "TRACE_MAX_BODY_BYTES",
        "TRACE_MAX_PENDING_RECORDS",
        "TRACE_INGEST_TOKEN",
        "TRACE_PRICES_FILE",
    ] {
        assert!(text.contains(var), "--help mentions {var}");
    }
    let version = Command::new(BIN).arg("--version").output().expect("run");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("openclaw-trace {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn logs_are_json_lines() {
    let d = Daemon::start(&[]);
    assert_eq!(d.get("/health").status, 200);
    let logs = d.logs.lock().expect("logs").clone();
    assert!(!logs.is_empty());
    for line in &logs {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["msg"].is_string() && v["level"].is_string() && v["ts"].is_string(),
            "{line}"
        );
    }
    // actix's own records come through the bridge as JSON too.
    assert!(
        logs.iter().any(|l| l.contains("starting service")),
        "{logs:?}"
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut d = Daemon::start(&[]);
    // Hold a request in flight so the graceful shutdown has something to
    // wait for (the store is never released: the process dies holding it).
    d.hold("store");
    let url = format!("{}/v1/events", d.base);
    // Its answer does not matter: the process is killed under it.
    std::thread::spawn(move || {
        ureq::post(&url)
            .header("Content-Type", "application/json")
            .send(r#"{"name":"held"}"#)
    });
    d.wait_pending(1);
    d.signal(libc::SIGTERM);
    d.wait_logged("shutting down");
    d.signal(libc::SIGINT);
    let status = d.wait_exit();
    assert_eq!(
        status.code(),
        Some(130),
        "the second signal's exit code: {status:?}"
    );
}

#[test]
fn a_request_in_flight_at_sigterm_is_answered_202_and_stored() {
    use std::io::{Read, Write};
    let mut d = Daemon::start(&[]);
    // A request whose body is half sent: in flight, being read, at SIGTERM.
    let body = br#"{"name":"in-flight","attributes":{"pad":"0123456789"}}"#;
    let (first, rest) = body.split_at(body.len() / 2);
    let mut conn =
        std::net::TcpStream::connect(d.base.trim_start_matches("http://")).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        conn,
        "POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("send the head");
    conn.write_all(first).expect("send half the body");
    d.wait_status("the body being read", |s| {
        s["http"]["inflight_body_bytes"].as_u64() > Some(0)
    });
    d.signal(libc::SIGTERM);
    d.wait_logged("shutting down");
    // The server no longer accepts connections, but finishes this request.
    conn.write_all(rest).expect("send the rest of the body");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(answer.contains(r#""accepted":1"#), "{answer}");
    // The one SIGTERM ends the process (a second would exit at once).
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
    d.wait_logged("shutdown complete");
    let names: Vec<String> = open_db(&d.db_path)
        .prepare("SELECT name FROM events WHERE source = 'native'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        names,
        vec!["in-flight".to_string()],
        "committed before exit"
    );
}

#[test]
fn a_client_that_stalls_mid_body_at_sigterm_does_not_hold_shutdown_past_its_deadline() {
    use std::io::Write;
    let mut d = Daemon::start(&[]);
    // Half a body, and then nothing: only the drain's deadline ends it, and
    // the whole shutdown must still end inside its own deadline (or the
    // watchdog exits 1).
    let mut conn =
        std::net::TcpStream::connect(d.base.trim_start_matches("http://")).expect("connect");
    write!(
        conn,
        "POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"name\":"
    )
    .expect("send the head and part of the body");
    d.wait_status("the body being read", |s| {
        s["http"]["inflight_body_bytes"].as_u64() > Some(0)
    });
    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    d.wait_logged("shutdown complete");
    assert_eq!(d.log_count("overran"), 0, "the shutdown watchdog fired");
    assert_eq!(status.code(), Some(0), "{status:?}");
    drop(conn);
}

/// Each thread's timer slack, in nanoseconds.
fn timer_slacks(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's threads")
        .filter_map(|t| {
            let tid = t.ok()?.file_name();
            let slack = std::fs::read_to_string(format!("/proc/{}/timerslack_ns", tid.to_str()?));
            slack.ok()?.trim().parse().ok()
        })
        .collect()
}

#[test]
fn the_http_worker_relaxes_its_timers_only_while_no_connection_is_open() {
    const IDLE_SLACK_NS: u64 = 1_000_000_000;
    let d = Daemon::start(&[]);
    // Reading another process's timer slack takes CAP_SYS_NICE.
    if let Err(e) = std::fs::read_to_string(format!("/proc/{}/timerslack_ns", d.pid())) {
        eprintln!("skipped: this test cannot read the daemon's timer slack ({e})");
        return;
    }
    let relaxed = || timer_slacks(d.pid()).contains(&IDLE_SLACK_NS);
    eventually("the worker's idle timer slack", relaxed);
    // A connection open, even silent: actix-http's timeouts and the drain
    // run on the worker's timers, which must fire on time.
    let conn = std::net::TcpStream::connect(d.base.trim_start_matches("http://")).expect("connect");
    eventually("every timer precise while a connection is open", || {
        !relaxed()
    });
    assert_eq!(d.get("/health").status, 200);
    assert!(!relaxed(), "{:?}", timer_slacks(d.pid()));
    drop(conn);
    eventually("the idle slack once the last connection is gone", relaxed);
}

#[test]
fn a_bad_value_of_every_checked_variable_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("never-created.db");
    for (name, bad) in [
        ("TRACE_LISTEN_ADDR", "localhost"),
        ("TRACE_OTLP_LISTEN_ADDR", "4318"),
        ("TRACE_HEALTH_LISTEN_ADDR", "localhost:9091"),
        ("TRACE_OPENCLAW_METRIC_PREFIX", "1acme."),
        ("TRACE_DB_PATH", ""),
        ("TRACE_LOG_LEVEL", "loud"),
        ("TRACE_MAX_TEXT_BYTES", "-1"),
        ("TRACE_MAX_BODY_BYTES", "lots"),
        ("TRACE_MAX_RECORDS_PER_REQUEST", "0"),
        ("TRACE_MAX_PENDING_RECORDS", "many"),
        ("TRACE_MAX_INFLIGHT_BODY_BYTES", "12 parsecs"),
        ("TRACE_REQUEST_TIMEOUT", "soon"),
        ("TRACE_INGEST_TOKEN", "sec ret"),
        ("TRACE_METRICS_INTERVAL", "0s"),
        ("TRACE_PUSH_ENDPOINT", "not a url"),
        ("TRACE_PUSH_INTERVAL", "never"),
        ("TRACE_PUSH_FORMAT", "xml"),
        ("TRACE_PUSH_MAX_BATCH_BYTES", "huge"),
        ("TRACE_PUSH_TIMEOUT", "-3s"),
        ("TRACE_ROTATE_INTERVAL", "ten minutes"),
        ("TRACE_DB_ROTATE_DAYS", "a week"),
        ("TRACE_DB_MAX_BYTES", "1 bucket"),
        ("TRACE_DISK_MAX_PERCENT", "150"),
        ("TRACE_PRICES_FILE", "/nonexistent/prices.txt"),
        ("TRACE_OPENCLAW_POLL", "often"),
        ("TRACE_OPENCLAW_POLL", "10ms"),
        ("TRACE_OPENCLAW_LOG", "/var/log/openclaw-[unclosed.log"),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("TRACE_LISTEN_ADDR", "127.0.0.1:0")
            .env("TRACE_DB_PATH", &db)
            .env(name, bad);
        if name.starts_with("TRACE_PUSH_") && name != "TRACE_PUSH_ENDPOINT" {
            cmd.env("TRACE_PUSH_ENDPOINT", "http://127.0.0.1:1/ingest");
        }
        let out = cmd.output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={bad:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name}: nothing logged before the check"
        );
        if name == "TRACE_INGEST_TOKEN" {
            assert!(
                !stderr.contains(bad),
                "the token is never printed: {stderr}"
            );
        } else {
            assert!(
                stderr.contains(&format!("{bad:?}")),
                "{name}: names the value: {stderr}"
            );
        }
        assert!(!db.exists(), "{name}: no database was created");
    }
}

/// Makes `path` a database of schema version 1, as the first release wrote
/// it: a file of the current schema with what versions 2 to 4 added taken
/// out (version 1 stored no cost it had not been sent, and indexed each
/// span's trace id).
fn downgrade_to_version_1(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(
        "UPDATE llm_calls SET cost_usd = NULL WHERE cost_source != 'reported';
         DROP TABLE llm_rollup; DROP TABLE llm_rollup_sessions; DROP TABLE meta;
         DROP INDEX errors_trace; DROP INDEX events_name;
         ALTER TABLE llm_calls DROP COLUMN cost_source;
         DROP TABLE follow_positions;
         DROP TABLE span_traces; CREATE INDEX spans_trace ON spans (trace_id);
         PRAGMA user_version = 1;",
    )
    .expect("downgrade to version 1");
}

#[test]
fn an_older_database_file_is_migrated_on_start() {
    let d = Daemon::start(&[]);
    let current = d.status()["database"]["schema_version"]
        .as_i64()
        .expect("schema_version");
    assert!(current >= 2, "{current}");
    assert_eq!(
        d.post_json(
            "/v1/traces",
            r#"[{"provider":"anthropic","model":"claude-sonnet-4-5","prompt_tokens":1000,"cost_usd":0.25},
                {"provider":"openai","model":"gpt-4o","prompt_tokens":1000}]"#
        )
        .status,
        202
    );
    assert_eq!(
        d.post_json("/v1/errors", r#"{"error_type":"E","message":"kept"}"#)
            .status,
        202
    );
    let span = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId":"00f067aa0ba902b7","name":"kept","startTimeUnixNano":"1764324000000000000",
        "endTimeUnixNano":"1764324001000000000"}]}]}]}"#;
    let r = d.post_json("/v1/traces", span);
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, _dir, db_path, env) = d.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    downgrade_to_version_1(&db_path);
    let version: i64 = open_db(&db_path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 1);

    // The same file, started again: migrated, and every row kept.
    let d = Daemon::start_at(&db_path, &env_refs(&env));
    let version: i64 = d
        .db()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, current, "migrated to the current schema");
    // The owner is told, since a large file takes seconds.
    assert_eq!(
        d.log_count(r#""from_version":1"#),
        1,
        "one line names the version migrated from"
    );
    assert!(d.logged("database migrated"));
    let status = d.status();
    assert_eq!(status["database"]["schema_version"], current);
    assert_eq!(status["tables"]["llm_calls"]["rows"], 2, "{status}");
    assert_eq!(status["tables"]["errors"]["rows"], 1, "{status}");
    assert_eq!(d.count("llm_calls"), 2);
    assert_eq!(d.count("errors"), 1);
    // What version 2 added is filled from the rows the file held.
    let sources = d.strings("SELECT cost_source FROM llm_calls ORDER BY id");
    assert_eq!(sources[0], "reported", "a cost the agent sent");
    assert_ne!(sources[1], "reported", "no cost was sent: {sources:?}");
    let rollup_rows: i64 = d
        .db()
        .query_row("SELECT coalesce(sum(rows), 0) FROM llm_rollup", [], |r| {
            r.get(0)
        })
        .expect("rollup");
    assert_eq!(rollup_rows, 2, "the rollup holds the calls already stored");
    // What version 4 added: the span stored before is found by its trace.
    let r = d.get("/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["span_count"], 1, "{}", r.body);
    assert_eq!(r.json()["spans"][0]["name"], "kept", "{}", r.body);
    // And the daemon goes on writing it.
    let next = d.post_json("/v1/traces", r#"{"provider":"a","model":"m"}"#);
    assert_eq!(next.status, 202, "{}", next.body);
    assert_eq!(next.json()["ids"][0], 3, "ids continue");
}

/// The page size in the header of the file at `path`.
fn page_size(path: &std::path::Path) -> i64 {
    open_db(path)
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .expect("page_size")
}

/// The `page_size` the start's "WAL bounds" log line gives.
fn logged_page_size(d: &Daemon) -> i64 {
    d.wait_logged("WAL bounds");
    let lines = d.log_lines(r#""WAL bounds""#);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    line["page_size"].as_i64().expect("page_size")
}

#[test]
fn a_new_file_has_2_kib_pages_and_an_older_file_keeps_its_own() {
    let record = r#"{"provider":"anthropic","model":"claude-sonnet-4-5","prompt_tokens":10}"#;
    let d = Daemon::start(&[]);
    assert_eq!(d.post_json("/v1/traces", record).status, 202);
    assert_eq!(logged_page_size(&d), 2048);
    let (status, _dir, db_path, _env) = d.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert_eq!(page_size(&db_path), 2048);

    // A file of SQLite's default 4 KiB pages in WAL mode, as an earlier
    // build made: kept as it is, and written to as before.
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("old.db");
    let create = rusqlite::Connection::open(&old).expect("create");
    create
        .pragma_update(None, "page_size", 4096)
        .expect("page_size");
    create
        .pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    drop(create);
    let d = Daemon::start_at(&old, &[]);
    assert_eq!(d.post_json("/v1/traces", record).status, 202);
    assert_eq!(logged_page_size(&d), 4096);
    assert_eq!(d.count("llm_calls"), 1);
    let (status, ..) = d.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert_eq!(page_size(&old), 4096);
}
