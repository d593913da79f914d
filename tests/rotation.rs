//! The disk bound against the real daemon: rows past their age go, the file
//! stays within `TRACE_DB_MAX_BYTES` during a long ingest with the newest rows
//! kept, pushed rows leave before unpushed ones, and what was never pushed is
//! counted as dropped.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::receiver::{ok, Receiver};
use common::Daemon;
use serde_json::Value;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Waits for two more rotations than `status` shows: one may have begun
/// before the rows the test just wrote.
fn wait_rotations(d: &Daemon) -> Value {
    let runs = d.status()["rotation"]["runs"].as_u64().unwrap_or(0);
    d.wait_status("two more rotations", |s| {
        s["rotation"]["runs"].as_u64() >= Some(runs + 2)
    })
}

/// `n` events of about `pad` bytes each, as a JSON array.
fn events(n: usize, pad: usize, tag: &str) -> String {
    let pad = "x".repeat(pad);
    let one = format!(r#"{{"name":"{tag}","attributes":{{"pad":"{pad}"}}}}"#);
    format!("[{}]", vec![one; n].join(","))
}

fn file_bytes(d: &Daemon) -> u64 {
    let size = |suffix: &str| {
        let mut p = d.db_path.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
    };
    size("") + size("-wal")
}

#[test]
fn rows_older_than_the_age_limit_go_and_newer_ones_stay() {
    let d = Daemon::start(&[
        ("TRACE_ROTATE_INTERVAL", "1s"),
        ("TRACE_DB_ROTATE_DAYS", "7"),
    ]);
    let old = now_ms() - 8 * 86_400_000;
    let recent = now_ms() - 6 * 86_400_000;
    for (path, body) in [
        (
            "/v1/events",
            format!(
                r#"[{{"name":"old","timestamp":{old}}},{{"name":"recent","timestamp":{recent}}},{{"name":"now"}}]"#
            ),
        ),
        (
            "/v1/traces",
            format!(
                r#"[{{"provider":"p","model":"old","timestamp":{old}}},{{"provider":"p","model":"now"}}]"#
            ),
        ),
        (
            "/v1/errors",
            format!(
                r#"[{{"error_type":"Old","message":"m","timestamp":{old}}},{{"error_type":"Now","message":"m"}}]"#
            ),
        ),
    ] {
        let r = d.post_json(path, &body);
        assert_eq!(r.status, 202, "{path}: {}", r.body);
    }
    let status = wait_rotations(&d);

    assert_eq!(
        d.strings("SELECT name FROM events WHERE source = 'native' ORDER BY id"),
        ["recent", "now"]
    );
    assert_eq!(d.strings("SELECT model FROM llm_calls"), ["now"]);
    assert_eq!(d.strings("SELECT error_type FROM errors"), ["Now"]);
    let rotation = &status["rotation"];
    assert_eq!(rotation["deleted"]["age"]["events"], 1, "{rotation}");
    assert_eq!(rotation["deleted"]["age"]["llm_calls"], 1, "{rotation}");
    assert_eq!(rotation["deleted"]["age"]["errors"], 1, "{rotation}");
    // Nothing is pushed without an endpoint: every deleted row is a drop.
    assert_eq!(rotation["dropped"]["age"]["events"], 1, "{rotation}");
    assert!(rotation["last_run"].is_string(), "{rotation}");
    assert!(d.logged("rotation deleted rows that were never pushed"));

    let metrics = d.get("/metrics").body;
    assert!(
        metrics.contains(
            r#"openclaw_trace_rotation_dropped_rows_total{reason="age",table="events"} 1"#
        ),
        "{metrics}"
    );
}

#[test]
fn zero_days_keeps_rows_of_any_age() {
    let d = Daemon::start(&[
        ("TRACE_ROTATE_INTERVAL", "1s"),
        ("TRACE_DB_ROTATE_DAYS", "0"),
    ]);
    let ancient = now_ms() - 400 * 86_400_000;
    let r = d.post_json(
        "/v1/events",
        &format!(r#"{{"name":"ancient","timestamp":{ancient}}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let status = wait_rotations(&d);
    assert_eq!(d.count("events"), 1, "{}", status["rotation"]);
}

#[test]
fn the_file_stays_within_its_bound_during_a_long_ingest_and_keeps_the_newest_rows() {
    const BOUND: u64 = 4 << 20;
    let d = Daemon::start(&[
        ("TRACE_DB_MAX_BYTES", "4MiB"),
        // Only the store's own trigger (and the first run) rotates here.
        ("TRACE_ROTATE_INTERVAL", "1h"),
    ]);
    let mut largest = 0;
    let mut last_ids = Vec::new();
    // About 16 MB of events: four times the bound.
    for i in 0..400 {
        let r = d.post_json("/v1/events", &events(100, 300, &format!("batch{i}")));
        assert_eq!(r.status, 202, "{}", r.body);
        last_ids = r.json()["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        largest = largest.max(file_bytes(&d));
    }
    // Let the last triggered rotation finish.
    let status = d.wait_status("the rotation to catch up", |s| {
        s["database"]["size_bytes"].as_u64().unwrap_or(u64::MAX)
            + s["database"]["wal_size_bytes"].as_u64().unwrap_or(u64::MAX)
            <= BOUND
            && s["rotation"]["runs"].as_u64() > Some(0)
    });
    eprintln!(
        "largest file+wal during ingest: {largest} bytes; bound {BOUND}; after: {}",
        file_bytes(&d)
    );
    // The slack is what arrives between the store's look at the file (every
    // 100 ms) and the end of the rotation it asks for.
    assert!(
        largest <= BOUND + BOUND / 2,
        "file+wal reached {largest} bytes against a bound of {BOUND}"
    );
    let kept: i64 = d
        .db()
        .query_row(
            &format!(
                "SELECT count(*) FROM events WHERE id IN ({})",
                last_ids
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(kept, 100, "the newest batch is kept whole");
    let deleted = status["rotation"]["deleted"]["size"]["events"]
        .as_u64()
        .expect("deleted");
    let dropped = status["rotation"]["dropped"]["size"]["events"]
        .as_u64()
        .expect("dropped");
    assert!(deleted > 10_000, "{}", status["rotation"]);
    assert_eq!(
        dropped, deleted,
        "nothing was pushed, so every deleted row is a drop"
    );
    assert_eq!(
        d.count("events") as u64 + deleted,
        40_000,
        "every row is either kept or counted as deleted"
    );
}

#[test]
fn pushed_rows_leave_before_unpushed_ones() {
    let receiver = Receiver::start(Box::new(|_, _| ok()));
    let d = Daemon::start(&[
        ("TRACE_DB_MAX_BYTES", "4MiB"),
        ("TRACE_ROTATE_INTERVAL", "1h"),
        ("TRACE_PUSH_ENDPOINT", receiver.url.as_str()),
        ("TRACE_PUSH_INTERVAL", "200ms"),
    ]);
    // 1.8 MB that the remote gets: under the high-water mark (90%).
    for _ in 0..6 {
        let r = d.post_json("/v1/events", &events(100, 3000, "pushed"));
        assert_eq!(r.status, 202, "{}", r.body);
    }
    d.wait_status("everything pushed", |s| {
        s["tables"]["events"]["unpushed"] == 0 && s["push"]["rows_pushed"].as_u64() > Some(0)
    });
    // The remote goes away; what follows stays unpushed.
    receiver.stop();
    let mut unpushed_ids = Vec::new();
    // 1.2 MB more passes it.
    for _ in 0..4 {
        let r = d.post_json("/v1/events", &events(100, 3000, "unpushed"));
        assert_eq!(r.status, 202, "{}", r.body);
        unpushed_ids.extend(
            r.json()["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .filter_map(Value::as_i64),
        );
    }
    let status = d.wait_status("a size rotation", |s| {
        s["rotation"]["deleted"]["size"]["events"].as_u64() > Some(0)
    });
    let rotation = &status["rotation"];
    assert_eq!(
        rotation["dropped_total"], 0,
        "only pushed rows went: {rotation}"
    );
    let kept: i64 = d
        .db()
        .query_row(
            "SELECT count(*) FROM events WHERE name = 'unpushed'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        kept as usize,
        unpushed_ids.len(),
        "every unpushed row is kept"
    );
    assert!(
        (d.count("events") as usize) < 1000,
        "some pushed rows went: {rotation}"
    );
}

#[test]
fn the_database_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    // A umask that lets everyone read what the daemon creates.
    let d = Daemon::start_with_umask(&[("TRACE_ROTATE_INTERVAL", "1s")], 0);
    assert_eq!(d.post_json("/v1/events", r#"{"name":"e"}"#).status, 202);
    wait_rotations(&d);
    let mut reserve = d.db_path.as_os_str().to_owned();
    reserve.push("-reserve");
    assert!(
        std::path::Path::new(&reserve).exists(),
        "the first rotation writes the reserve file"
    );
    for suffix in ["", "-wal", "-shm", "-reserve"] {
        let mut p = d.db_path.as_os_str().to_owned();
        p.push(suffix);
        let mode = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{p:?}: {e}"))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{p:?}");
    }
}
