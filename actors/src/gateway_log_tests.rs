use std::io::Write;
use std::os::unix::fs::MetadataExt;

use super::*;

/// Lines of COMPAT.md 3b, as OpenClaw's logger writes them.
const INFO: &str = r#"{"0":"gateway listening on ws://127.0.0.1:18789","_meta":{"runtime":"node","runtimeVersion":"24.16.0","hostname":"vm","date":"2026-11-29T11:18:15.963Z","logLevelId":3,"logLevelName":"INFO","name":"openclaw"},"time":"2026-11-29T12:18:15.964+01:00","hostname":"vm","message":"gateway listening on ws://127.0.0.1:18789"}"#;
const WARN: &str = r#"{"0":"{\"subsystem\":\"gateway/channels/telegram\"}","1":{"provider":"openai","model":"gpt-5.4","durationMs":8123},"2":"model call slow","_meta":{"runtime":"node","logLevelId":4,"logLevelName":"WARN","name":"{\"subsystem\":\"gateway/channels/telegram\"}","parentNames":["openclaw"]},"time":"2026-11-29T12:18:16.000+01:00","hostname":"vm","message":"model call slow","agent_id":"main","session_id":"sess-9","channel":"telegram","traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","traceFlags":"01"}"#;
const ERROR: &str = r#"{"0":"otel export failed","1":{"nativeError":{"code":"***"},"name":"Error","message":"connect ECONNREFUSED 127.0.0.1:4318","stack":[{"fileName":"/app/dist/otel.js","fileLine":"12","fileColumn":"7","functionName":"exportSpans"},{"fileName":"node:net","fileLine":"1","fileColumn":"2"}]},"_meta":{"logLevelName":"ERROR","name":"{\"subsystem\":\"diagnostics/otel\"}","path":{"fullFilePath":"/app/dist/otel.js:12:7"}},"time":"2026-11-29T12:18:17.000+01:00","hostname":"vm","message":"otel export failed connect ECONNREFUSED 127.0.0.1:4318"}"#;

/// 2026-11-29T11:18:15.964Z in unix ns.
const INFO_NS: i64 = 1_795_951_095_964_000_000;

#[test]
fn an_info_line_is_an_event_with_its_own_time() {
    let line = parse_line(INFO);
    assert!(!line.unparsed);
    assert_eq!(line.error, None);
    let e = line.event;
    assert_eq!(e.name, "openclaw.log");
    assert_eq!(e.severity, "info");
    assert_eq!(e.severity_number, Some(9));
    assert_eq!(e.time_ns, Some(INFO_NS));
    assert_eq!(
        e.body.as_deref(),
        Some("gateway listening on ws://127.0.0.1:18789")
    );
    let a = e.attributes.expect("attributes");
    assert_eq!(a["logger"], "openclaw");
    assert_eq!(a["hostname"], "vm");
    assert_eq!(a["level"], "INFO");
    // The argument repeating the message is not kept twice.
    assert!(a.get("0").is_none(), "{a:?}");
}

#[test]
fn a_subsystem_line_keeps_its_context() {
    let e = parse_line(WARN).event;
    assert_eq!(e.severity, "warn");
    assert_eq!(e.severity_number, Some(13));
    assert_eq!(e.body.as_deref(), Some("model call slow"));
    assert_eq!(
        e.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(e.span_id.as_deref(), Some("00f067aa0ba902b7"));
    let a = e.attributes.expect("attributes");
    assert_eq!(a["subsystem"], "gateway/channels/telegram");
    assert_eq!(a["agent_id"], "main");
    assert_eq!(a["session_id"], "sess-9");
    assert_eq!(a["channel"], "telegram");
    assert_eq!(a["traceFlags"], "01");
    assert_eq!(a["1"]["durationMs"], 8123);
    assert_eq!(a["parent_names"], serde_json::json!(["openclaw"]));
    // Neither the logger's name nor the message string is kept twice.
    assert!(a.get("0").is_none() && a.get("2").is_none(), "{a:?}");
}

#[test]
fn an_error_line_is_also_an_error_row() {
    let line = parse_line(ERROR);
    assert_eq!(line.event.severity, "error");
    assert_eq!(line.event.severity_number, Some(17));
    let err = line.error.expect("an error row");
    assert_eq!(err.error_type, "Error");
    assert_eq!(
        err.message,
        "otel export failed connect ECONNREFUSED 127.0.0.1:4318"
    );
    assert_eq!(err.severity, "error");
    assert_eq!(err.time_ns, line.event.time_ns);
    assert_eq!(
        err.stack_trace.as_deref(),
        Some("    at exportSpans (/app/dist/otel.js:12:7)\n    at node:net:1:2")
    );
    let meta = err.metadata.expect("metadata");
    assert_eq!(meta["subsystem"], "diagnostics/otel");
    // The error's trace id is its own (the remote dedupes on it).
    assert_eq!(err.trace_id, None);
}

#[test]
fn a_bare_error_and_a_fatal_line() {
    // `logger.error(err)`: the error object at the top level.
    let bare = r#"{"nativeError":{},"name":"TypeError","message":"x is undefined","stack":[],"_meta":{"logLevelName":"FATAL","name":"{\"subsystem\":\"agent\"}"},"time":"2026-11-29T12:00:00.000+00:00","hostname":"vm"}"#;
    let line = parse_line(bare);
    assert_eq!(line.event.severity, "fatal");
    assert_eq!(line.event.severity_number, Some(21));
    assert_eq!(line.event.body.as_deref(), Some("x is undefined"));
    let err = line.error.expect("an error row");
    assert_eq!(err.error_type, "TypeError");
    assert_eq!(err.severity, "fatal");
    assert_eq!(err.stack_trace, None);
    // An error line without an error object is typed by its subsystem.
    let plain = r#"{"0":"{\"subsystem\":\"gateway/ws\"}","1":"socket closed","_meta":{"logLevelName":"ERROR","name":"{\"subsystem\":\"gateway/ws\"}"},"time":"2026-11-29T12:00:00.000+00:00","message":"socket closed"}"#;
    let err = parse_line(plain).error.expect("an error row");
    assert_eq!(err.error_type, "gateway/ws");
    assert_eq!(err.message, "socket closed");
}

#[test]
fn a_line_that_is_not_json_is_kept_as_text() {
    for text in ["plain text from a crash", "[1,2,3]", "{\"unterminated\":"] {
        let line = parse_line(text);
        assert!(line.unparsed, "{text}");
        assert_eq!(line.event.body.as_deref(), Some(text));
        assert_eq!(line.event.severity, "info");
        assert_eq!(line.event.attributes.expect("attributes")["format"], "text");
        assert_eq!(line.event.time_ns, None);
    }
    // A carriage return before the newline is not part of the line.
    assert_eq!(parse_line("text\r").event.body.as_deref(), Some("text"));
}

fn followed(path: &Path) -> Followed {
    let meta = std::fs::metadata(path).expect("the file exists");
    Followed {
        key: format!("{}:{}", meta.dev(), meta.ino()),
        skipping: false,
        path: path.to_path_buf(),
        offset: 0,
        fingerprint: None,
        size: 0,
        mtime: 0,
    }
}

/// Reads chunks like the actor does, taking each as committed; returns the
/// bodies read.
fn read_all(f: &mut Followed) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(LogChunk {
        chunk, skipping, ..
    }) = read_chunk(f).expect("read")
    {
        f.offset = chunk.position.offset as u64;
        f.fingerprint = chunk.position.fingerprint.clone();
        f.skipping = skipping;
        for batch in chunk.batches {
            if let Batch::Events(events) = batch {
                bodies.extend(events.into_iter().filter_map(|e| e.body));
            }
        }
    }
    bodies
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("write");
}

#[test]
fn a_partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("openclaw-2026-11-29.log");
    append(&path, "one\ntw");
    let mut f = followed(&path);
    assert_eq!(read_all(&mut f), ["one"]);
    assert_eq!(f.offset, 4);
    append(&path, "o\nthree");
    assert_eq!(read_all(&mut f), ["two"]);
    append(&path, "\n");
    assert_eq!(read_all(&mut f), ["three"]);
    assert!(read_all(&mut f).is_empty());
}

#[test]
fn a_truncated_or_replaced_file_is_read_from_its_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.log");
    append(&path, "first\nsecond\n");
    let mut f = followed(&path);
    assert_eq!(read_all(&mut f), ["first", "second"]);
    // Truncated to nothing, then written again.
    std::fs::write(&path, "").expect("truncate");
    append(&path, "again\n");
    assert_eq!(read_all(&mut f), ["again"]);
    // Rewritten past the old offset with other content: the start differs.
    std::fs::write(&path, "other start, longer than before\nmore\n").expect("rewrite");
    assert_eq!(
        read_all(&mut f),
        ["other start, longer than before", "more"]
    );
}

#[test]
fn a_large_file_is_read_in_bounded_chunks_each_line_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.log");
    let line = format!("{}\n", "x".repeat(999));
    let lines = 3 * CHUNK_BYTES / line.len() + 7;
    append(&path, &line.repeat(lines));
    let mut f = followed(&path);
    let mut chunks = 0;
    let mut read = 0;
    while let Some(LogChunk { chunk, full, .. }) = read_chunk(&mut f).expect("read") {
        chunks += 1;
        // Every chunk but the last stopped at the bound.
        assert_eq!(full, chunks < 4, "chunk {chunks}");
        assert!(chunk.position.offset as u64 - f.offset <= CHUNK_BYTES as u64);
        read += chunk.position.read;
        f.offset = chunk.position.offset as u64;
        f.fingerprint = chunk.position.fingerprint.clone();
    }
    assert_eq!(read as usize, lines);
    assert_eq!(chunks, 4);
    assert_eq!(f.offset, (lines * line.len()) as u64);
}

#[test]
fn a_saved_fingerprint_tells_the_same_file_from_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.log");
    append(&path, "hello\n");
    let mut file = File::open(&path).expect("open");
    let fp = fingerprint(&mut file, 6).expect("fp").expect("some");
    assert!(fp.starts_with("6:"), "{fp}");
    append(&path, "more\n");
    let mut file = File::open(&path).expect("open");
    assert!(same_start(&mut file, 11, &fp).expect("read"));
    std::fs::write(&path, "jello\nmore\n").expect("rewrite");
    let mut file = File::open(&path).expect("open");
    assert!(!same_start(&mut file, 11, &fp).expect("read"));
    assert!(!same_start(&mut file, 3, &fp).expect("shorter"));
}

#[test]
fn patterns_for_a_file_a_directory_and_the_defaults() {
    assert_eq!(
        file_patterns(Path::new("/var/log/gw.log")),
        ["/var/log/gw.log", "/var/log/gw.[1-5].log"]
    );
    assert_eq!(
        dir_pattern(Path::new("/tmp/openclaw")),
        "/tmp/openclaw/openclaw-*.log"
    );
    assert_eq!(
        default_patterns(None, 1000),
        [
            "/tmp/openclaw/openclaw-*.log",
            "/tmp/openclaw-1000/openclaw-*.log"
        ]
    );
    // Glob characters in a path are taken literally.
    assert_eq!(
        dir_pattern(Path::new("/data/logs[1]")),
        "/data/logs[[]1[]]/openclaw-*.log"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "openclaw-2026-11-28.log",
        "openclaw-2026-11-29.log",
        "openclaw-2026-11-29.1.log",
        "other.log",
    ] {
        append(&dir.path().join(name), "x\n");
    }
    let (found, problems) = list_files(&[dir_pattern(dir.path())]);
    assert!(problems.is_empty(), "{problems:?}");
    let mut names: Vec<String> = found
        .iter()
        .map(|(_, p, _)| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "openclaw-2026-11-28.log",
            "openclaw-2026-11-29.1.log",
            "openclaw-2026-11-29.log"
        ]
    );
}

#[test]
fn a_line_longer_than_a_chunk_is_kept_once_cut_and_the_next_lines_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("long.log");
    let long = "y".repeat(CHUNK_BYTES + CHUNK_BYTES / 2);
    append(&path, &format!("before\n{long}\nafter\n"));
    let mut f = followed(&path);
    let bodies = read_all(&mut f);
    assert_eq!(bodies.len(), 3, "one event for the long line");
    assert_eq!(bodies[0], "before");
    assert!(bodies[1].len() < long.len() && bodies[1].bytes().all(|b| b == b'y'));
    assert_eq!(bodies[2], "after");
    assert!(!f.skipping);
}

#[test]
fn a_path_that_now_leads_to_another_file_is_not_read_under_the_old_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("openclaw-2026-11-29.log");
    append(&path, "a1\n");
    let mut f = followed(&path);
    // Rotated away after the look, and a new file made at the path.
    std::fs::rename(&path, dir.path().join("openclaw-2026-11-29.1.log")).expect("rename");
    append(&path, "b1\n");
    assert!(read_chunk(&mut f).expect("read").is_none());
    assert_eq!(f.offset, 0);
}
