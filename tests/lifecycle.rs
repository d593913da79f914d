//! Start-up, configuration errors, restarts and signals.

mod common;

use std::process::Command;

use common::{open_db, Daemon};

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
    // Hold a request in flight so the graceful shutdown has something to wait for.
    assert_eq!(
        d.post("/_test/fault/store/stall?ms=3000", b"", &[]).status,
        200
    );
    let url = format!("{}/v1/events", d.base);
    // Its answer does not matter: the process is killed under it.
    std::thread::spawn(move || {
        ureq::post(&url)
            .header("Content-Type", "application/json")
            .send(r#"{"name":"held"}"#)
    });
    while d.status()["store"]["pending_records"] != 1 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    d.signal(libc::SIGTERM);
    while !d.logged("shutting down") {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    d.signal(libc::SIGINT);
    let status = d.wait_exit();
    assert_eq!(
        status.code(),
        Some(130),
        "the second signal's exit code: {status:?}"
    );
}
