//! Logging that survives its stdout: a full volume (then freed), a closed
//! pipe, a pipe nobody reads; and malformed HTTP, which anyone can send, kept
//! out of the error log.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tmpfs::Tmpfs;
use common::{Daemon, StdoutTo};
use serde_json::Value;

/// Hang guard for reads from the daemon (not a performance bound).
const PATIENCE: Duration = Duration::from_secs(30);

/// A request the daemon refuses (400) and logs at debug as `ingest refused`:
/// one log line each, since the harness logs at debug.
const REFUSED: &[u8] = b"POST /v1/events HTTP/1.1\r\nHost: t\r\n\
    Content-Type: application/json\r\nContent-Length: 1\r\n\r\n{";

/// `openclaw_trace_log_lines_dropped_total` for `reason`, from `/metrics`.
fn dropped(d: &Daemon, reason: &str) -> u64 {
    let reply = d.get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let series = format!("openclaw_trace_log_lines_dropped_total{{reason=\"{reason}\"}} ");
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series}in /metrics:\n{}", reply.body))
}

/// Polls `dropped(reason)` until it reaches `at_least` (a hang guard).
fn dropped_reaches(d: &Daemon, reason: &str, at_least: u64) -> u64 {
    for _ in 0..600 {
        let n = dropped(d, reason);
        if n >= at_least {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{reason} drops stayed at {} below {at_least}",
        dropped(d, reason)
    );
}

/// Sends `n` refused requests pipelined on one connection and reads the `n`
/// answers: `n` log lines, quickly.
fn refused_requests(d: &Daemon, n: usize) {
    let mut conn = TcpStream::connect(d.base.trim_start_matches("http://")).expect("connect");
    conn.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    let mut writer = conn.try_clone().expect("clone the connection");
    let requests = REFUSED.repeat(n);
    // Written on a thread of its own: the answers must be read meanwhile, or
    // both sides would wait on full socket buffers.
    let sending = std::thread::spawn(move || writer.write_all(&requests));
    let status_line = b"HTTP/1.1 400 ";
    let (mut answers, mut unread, mut buf) = (0, Vec::new(), vec![0; 64 * 1024]);
    while answers < n {
        let got = conn.read(&mut buf).expect("read the answers");
        assert!(got > 0, "connection closed after {answers} of {n} answers");
        unread.extend_from_slice(&buf[..got]);
        let mut consumed = 0;
        while let Some(at) = unread[consumed..]
            .windows(status_line.len())
            .position(|w| w == status_line)
        {
            answers += 1;
            consumed += at + status_line.len();
        }
        unread.drain(..consumed);
    }
    sending
        .join()
        .expect("sender thread")
        .expect("send the requests");
}

/// `/health` answers 200 and an ingest request is stored.
fn assert_serving(d: &Daemon) {
    let health = d.get("/health");
    assert_eq!(health.status, 200, "{}", health.body);
    let before = d.count("events");
    let reply = d.post_json("/v1/events", r#"{"name":"still-serving"}"#);
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(d.count("events"), before + 1);
}

/// The lines of `path` once `done` holds for them (a hang guard).
fn lines_when(path: &Path, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    for _ in 0..600 {
        let text = std::fs::read_to_string(path).expect("read the log file");
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if done(&lines) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "gave up waiting for {what}; the log file:\n{}",
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

fn msg(line: &str) -> Option<Value> {
    serde_json::from_str(line).ok()
}

#[test]
fn logging_survives_a_full_volume_and_resumes_when_space_returns() {
    let Some(volume) = Tmpfs::mount("64k") else {
        return;
    };
    let log_path = volume.path().join("stdout.log");
    let (d, _) = Daemon::start_with_stdout(&[], StdoutTo::File(log_path.clone()));

    let filler = volume.fill();
    // The log file's last page still takes a few lines; log until writes fail.
    let mut sent = 0;
    while dropped(&d, "write_failed") == 0 {
        assert!(sent < 2000, "{sent} log lines and no write failed");
        refused_requests(&d, 10);
        sent += 10;
    }
    // Nothing blocked, nothing died: the daemon serves, and lines are still
    // taken (and lost) one by one.
    assert_serving(&d);
    let lost = dropped(&d, "write_failed");
    refused_requests(&d, 20);
    let lost = dropped_reaches(&d, "write_failed", lost + 20);
    let status = d.status();
    assert!(
        status["logging"]["dropped_lines"].as_u64() >= Some(lost),
        "{}",
        status["logging"]
    );
    assert_eq!(dropped(&d, "queue_full"), 0);

    std::fs::remove_file(filler).expect("free the space");
    refused_requests(&d, 1);
    // The next line is written, after one that says what was lost.
    let is = |line: &str, m: &str| msg(line).is_some_and(|v| v["msg"] == m);
    let lines = lines_when(&log_path, "logging to resume", |lines| {
        lines
            .iter()
            .position(|l| is(l, "log lines dropped"))
            .is_some_and(|at| lines[at..].iter().any(|l| is(l, "ingest refused")))
    });
    let report = lines
        .iter()
        .find_map(|l| msg(l).filter(|v| v["msg"] == "log lines dropped"))
        .expect("report");
    assert_eq!(report["level"], "WARN", "{report}");
    assert!(report["write_failed"].as_u64() >= Some(lost), "{report}");
    // Every line is JSON but at most one, cut short when the volume filled
    // and ended there, so that the next line starts clean.
    let fragments: Vec<_> = lines.iter().filter(|l| msg(l).is_none()).collect();
    assert!(fragments.len() <= 1, "{fragments:?}");
}

#[test]
fn a_closed_stdout_drops_lines_and_the_daemon_serves_on() {
    let (d, pipe) = Daemon::start_with_stdout(&[], StdoutTo::Pipe);
    drop(pipe);

    refused_requests(&d, 200);
    // Each of the 200 lines was tried and lost, not just the first.
    let lost = dropped_reaches(&d, "write_failed", 200);
    assert_serving(&d);
    let status = d.status();
    assert!(
        status["logging"]["dropped_lines_by_reason"]["write_failed"].as_u64() >= Some(lost),
        "{}",
        status["logging"]
    );

    let (exit, ..) = d.stop_with(libc::SIGTERM);
    assert!(exit.success(), "exit with stdout closed: {exit:?}");
}

#[test]
fn a_stuck_stdout_drops_lines_without_holding_requests_or_shutdown() {
    let (d, pipe) = Daemon::start_with_stdout(&[], StdoutTo::Pipe);
    // Held open and never read: the pipe fills, then the queue to it.
    let _unread = pipe;

    let mut batches = 0;
    while dropped(&d, "queue_full") == 0 {
        assert!(batches < 40, "{batches} batches and the queue never filled");
        refused_requests(&d, 500);
        batches += 1;
    }
    assert_serving(&d);
    assert!(d.status()["logging"]["dropped_lines_by_reason"]["queue_full"].as_u64() > Some(0));

    // The exit does not wait for a stdout that takes nothing.
    let (exit, ..) = d.stop_with(libc::SIGTERM);
    assert!(exit.success(), "exit with stdout stuck: {exit:?}");
}

/// Requests actix-http cannot parse, each answered 400 (431 for the head
/// with too many headers) and reported by actix as a `stream error`.
fn malformed_requests() -> Vec<Vec<u8>> {
    let mut too_many_headers = b"GET /health HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..100 {
        too_many_headers.extend_from_slice(format!("X-{i}: a\r\n").as_bytes());
    }
    too_many_headers.extend_from_slice(b"\r\n");
    vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET /health HTTP/1.1\r\nHost: t\r\nContent-Length: zz\r\n\r\n".to_vec(),
        b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            .to_vec(),
        // A TLS ClientHello sent to the plain-HTTP port.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\0\0\0\0\0\0\0\0\r\n\r\n".to_vec(),
        too_many_headers,
    ]
}

/// Sends each malformed request on its own connection and checks the answer;
/// how many were sent.
fn send_malformed(d: &Daemon) -> usize {
    let requests = malformed_requests();
    for request in &requests {
        let mut conn = TcpStream::connect(d.base.trim_start_matches("http://")).expect("connect");
        conn.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        conn.write_all(request).expect("send");
        let mut answer = [0u8; 12];
        conn.read_exact(&mut answer).expect("an answer");
        assert!(
            answer == *b"HTTP/1.1 400" || answer == *b"HTTP/1.1 431",
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    requests.len()
}

fn level_of(line: &str) -> String {
    msg(line).map_or_else(String::new, |v| {
        v["level"].as_str().unwrap_or("").to_string()
    })
}

/// The log lines once `done` holds (a hang guard).
fn logs_when(
    logs: &Arc<Mutex<Vec<String>>>,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    for _ in 0..600 {
        let lines = logs.lock().expect("log lock").clone();
        if done(&lines) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "gave up waiting for {what}: {:?}",
        logs.lock().expect("log lock")
    );
}

#[test]
fn malformed_http_is_not_logged_as_an_error() {
    // At info, nothing about it at all.
    let d = Daemon::start(&[("TRACE_LOG_LEVEL", "info")]);
    let logs = Arc::clone(&d.logs);
    send_malformed(&d);
    assert_serving(&d);
    let (exit, ..) = d.stop_with(libc::SIGTERM);
    assert!(exit.success(), "{exit:?}");
    // The last line: everything logged before it has been written.
    let lines = logs_when(&logs, "the shutdown", |lines| {
        lines
            .iter()
            .any(|l| msg(l).is_some_and(|v| v["msg"] == "shutdown complete"))
    });
    let about_it: Vec<_> = lines
        .iter()
        .filter(|l| {
            ["ERRO", "CRIT"].contains(&level_of(l).as_str())
                || ["stream error", "parse error", "Content-Length", "head"]
                    .iter()
                    .any(|s| l.contains(s))
        })
        .collect();
    assert!(about_it.is_empty(), "{about_it:#?}");

    // At debug, each one is there, at debug.
    let d = Daemon::start(&[("TRACE_LOG_LEVEL", "debug")]);
    let sent = send_malformed(&d);
    let lines = logs_when(&d.logs, "a debug line per malformed request", |lines| {
        lines
            .iter()
            .filter(|l| l.contains("stream error: request parse error"))
            .count()
            >= sent
    });
    let reported: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("stream error"))
        .collect();
    assert_eq!(reported.len(), sent, "{reported:#?}");
    assert!(
        reported.iter().all(|l| level_of(l) == "DEBG"),
        "{reported:#?}"
    );
    let errors: Vec<_> = lines
        .iter()
        .filter(|l| ["ERRO", "CRIT"].contains(&level_of(l).as_str()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// Runs the daemon at `TRACE_LOG_LEVEL=level` on a port of its own (the
/// `listening` line is not printed at every level), makes it log at every
/// level it can (a refused request at debug, an ingest panic at warning and
/// error, start and shutdown at info), stops it, and returns the levels of
/// the lines it printed, with those lines.
fn levels_logged_at(level: &str) -> (std::collections::BTreeSet<String>, Vec<String>) {
    /// The daemon, killed if the test fails while it runs.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("stdout.log");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    // A port that was free a moment ago; should another process take it
    // first, the daemon exits (it cannot listen) and another is tried.
    let (mut child, base) = (0..5)
        .find_map(|_| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut child = Child(
                std::process::Command::new(env!("CARGO_BIN_EXE_openclaw-trace"))
                    .env_clear()
                    .env("TRACE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
                    .env("TRACE_DB_PATH", dir.path().join("trace.db"))
                    .env("TRACE_AGENT_ID", "test-agent")
                    .env("TRACE_DB_ROTATE_DAYS", "0")
                    .env("TRACE_LOG_LEVEL", level)
                    .stdout(std::fs::File::create(&out).expect("stdout file"))
                    .spawn()
                    .expect("spawn"),
            );
            let base = format!("http://127.0.0.1:{port}");
            let mut exited = false;
            common::eventually(&format!("the daemon at {level} answering /health"), || {
                exited = child.0.try_wait().expect("try_wait").is_some();
                exited
                    || agent
                        .get(format!("{base}/health"))
                        .call()
                        .is_ok_and(|r| r.status() == 200)
            });
            (!exited).then_some((child, base))
        })
        .expect("the daemon started on one of five free ports");
    let post = |path: &str, body: &str| -> u16 {
        agent
            .post(format!("{base}{path}"))
            .header("Content-Type", "application/json")
            .send(body)
            .map(|r| r.status().as_u16())
            .expect("request")
    };
    assert_eq!(post("/v1/events", "{"), 400, "refused: logged at debug");
    assert_eq!(post("/_test/fault/ingest/panic", ""), 200);
    assert_eq!(
        post("/v1/events", r#"{"name":"struck"}"#),
        500,
        "the panic: logged at error, the restart at warning"
    );
    assert_eq!(post("/v1/events", r#"{"name":"after"}"#), 202);
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGTERM);
    }
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the daemon at {level} did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{level}: {status:?}");
    let text = std::fs::read_to_string(&out).expect("read stdout");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let levels = lines.iter().map(|l| level_of(l)).collect();
    (levels, lines)
}

#[test]
fn trace_log_level_sets_the_least_severe_level_printed() {
    let set = |levels: &[&str]| -> std::collections::BTreeSet<String> {
        levels.iter().map(|l| l.to_string()).collect()
    };
    // Every line is JSON with a level, whatever the level asked for.
    for (level, allowed, must) in [
        (
            "trace",
            set(&["TRCE", "DEBG", "INFO", "WARN", "ERRO", "CRIT"]),
            set(&["DEBG", "INFO", "WARN", "ERRO"]),
        ),
        (
            "debug",
            set(&["DEBG", "INFO", "WARN", "ERRO", "CRIT"]),
            set(&["DEBG", "INFO", "WARN", "ERRO"]),
        ),
        (
            "info",
            set(&["INFO", "WARN", "ERRO", "CRIT"]),
            set(&["INFO", "WARN", "ERRO"]),
        ),
        (
            "warning",
            set(&["WARN", "ERRO", "CRIT"]),
            set(&["WARN", "ERRO"]),
        ),
        ("error", set(&["ERRO", "CRIT"]), set(&["ERRO"])),
        ("critical", set(&["CRIT"]), set(&[])),
    ] {
        let (levels, lines) = levels_logged_at(level);
        assert!(
            levels.is_subset(&allowed),
            "{level}: printed {levels:?}, allowed {allowed:?}: {lines:#?}"
        );
        assert!(
            must.is_subset(&levels),
            "{level}: printed {levels:?}, expected at least {must:?}: {lines:#?}"
        );
    }
}
