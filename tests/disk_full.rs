//! A full disk, for real: the database on a small tmpfs the test mounts (the
//! tests run as root; where mounting is refused they say so and skip).
//! Writes that fail for want of space are answered 507 (native) or 503
//! (OTLP) with `Retry-After`, `/health` turns 503, the daemon never crashes,
//! and ingest recovers by itself: after the operator frees space, or through
//! rotation alone.

mod common;

use std::time::{Duration, Instant};

use common::tmpfs::Tmpfs;
use common::{open_db, Daemon, Reply};

/// A hang guard, not a performance bound.
const PATIENCE: Duration = Duration::from_secs(60);

/// One event named `name`, with a body that takes some room.
fn event(name: &str) -> String {
    format!(
        r#"[{{"name":"{name}","attributes":{{"pad":"{}"}}}}]"#,
        "x".repeat(2000)
    )
}

/// Posts numbered events until one is refused; returns the names acknowledged
/// and the refusal.
fn post_until_refused(d: &Daemon, tag: &str, acked: &mut Vec<String>) -> Reply {
    let start = Instant::now();
    for i in 0.. {
        let name = format!("{tag}-{i}");
        let r = d.post_json("/v1/events", &event(&name));
        if r.status == 202 {
            acked.push(name);
        } else {
            return r;
        }
        assert!(start.elapsed() < PATIENCE, "never refused");
    }
    unreachable!()
}

fn assert_disk_full_refusal(r: &Reply) {
    assert_eq!(r.status, 507, "{}", r.body);
    assert_eq!(r.json()["error"], "disk_full", "{}", r.body);
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
}

/// Every acknowledged event is in the file, and the file is sound.
fn assert_all_there(db: &std::path::Path, acked: &[String]) {
    let conn = open_db(db);
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    let mut stmt = conn
        .prepare("SELECT count(*) FROM events WHERE name = ?1")
        .expect("prepare");
    let missing: Vec<&String> = acked
        .iter()
        .filter(|name| stmt.query_row([name.as_str()], |r| r.get::<_, i64>(0)).ok() != Some(1))
        .collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
}

#[test]
fn a_full_disk_is_refused_with_retry_after_and_heals_when_space_returns() {
    let Some(volume) = Tmpfs::mount("16m") else {
        return;
    };
    let db = volume.path().join("trace.db");
    let ballast = volume.path().join("trace.db-reserve");
    // The default bound (512 MiB) keeps the volume rule's floor (32 MiB)
    // above this small database: rotation cannot free space here, only the
    // operator can. The volume rule at its default (the tests' harness
    // turns it off, as other tests share the machine's volume).
    let d = Daemon::start_at(
        &db,
        &[
            ("TRACE_ROTATE_INTERVAL", "1h"),
            ("TRACE_METRICS_INTERVAL", "1s"),
            ("TRACE_DISK_MAX_PERCENT", "90"),
        ],
    );
    let mut acked = Vec::new();
    for i in 0..20 {
        let name = format!("before-{i}");
        assert_eq!(d.post_json("/v1/events", &event(&name)).status, 202);
        acked.push(name);
    }
    // The first rotation writes the reserve file.
    d.wait_status("the first rotation", |s| {
        s["rotation"]["runs"].as_u64() >= Some(1)
    });
    assert!(ballast.exists(), "the reserve file is written");

    let filler = volume.fill_as("filler-1");
    let refused = post_until_refused(&d, "filling", &mut acked);
    assert_disk_full_refusal(&refused);

    // The emergency rotation gives the reserve file's space to SQLite; an
    // operator's process takes that too.
    d.wait_status("the emergency rotation", |_| !ballast.exists());
    let filler_2 = volume.fill_as("filler-2");
    let refused = post_until_refused(&d, "full", &mut acked);
    assert_disk_full_refusal(&refused);
    let otlp = d.post_json(
        "/v1/logs",
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}"#,
    );
    assert_eq!(otlp.status, 503, "OTLP exporters retry 503: {}", otlp.body);
    assert!(
        otlp.headers.contains_key("retry-after"),
        "{:?}",
        otlp.headers
    );

    let health = d.get("/health");
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["db_status"], "disk_full");
    let status = d.status();
    assert_eq!(status["database"]["disk_full"], true);
    assert!(
        status["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("want of space"))),
        "{}",
        status["warnings"]
    );
    assert!(status["ingest"]["rejected"]["disk_full"].as_u64() >= Some(2));
    // The host sampler's rows cannot be stored either: counted, not lost silently.
    d.wait_status("a host sample dropped", |s| {
        s["store"]["host_samples_dropped"].as_u64() > Some(0)
    });

    // The operator frees space: the next write succeeds, with no restart.
    std::fs::remove_file(filler).expect("remove filler");
    std::fs::remove_file(filler_2).expect("remove filler");
    let after = d.post_json("/v1/events", &event("after"));
    assert_eq!(after.status, 202, "{}", after.body);
    acked.push("after".into());
    assert_eq!(d.get("/health").status, 200);
    let status = d.status();
    assert_eq!(status["database"]["disk_full"], false);
    let episodes = status["database"]["disk_full_episodes"]
        .as_u64()
        .expect("episodes");
    assert!(episodes >= 1);
    let logged = d
        .logs
        .lock()
        .expect("logs")
        .iter()
        .filter(|l| l.contains("database write failed for want of space"))
        .count() as u64;
    assert_eq!(
        logged, episodes,
        "one log line per episode, not per request"
    );

    eprintln!(
        "disk full, then freed by the operator: native {} {}, OTLP {} (Retry-After {:?}), \
         /health {} {}, episodes {episodes}, refused disk_full {}, host samples dropped {}, \
         {} acknowledged rows",
        refused.status,
        refused.body,
        otlp.status,
        otlp.headers.get("retry-after"),
        health.status,
        health.body,
        status["ingest"]["rejected"]["disk_full"],
        status["store"]["host_samples_dropped"],
        acked.len()
    );
    let (exit, _dir, db_path, _) = d.stop_with(libc::SIGTERM);
    assert!(exit.success(), "{exit:?}");
    assert_all_there(&db_path, &acked);
    eprintln!(
        "after exit: integrity_check ok, all {} acknowledged rows present",
        acked.len()
    );
}

#[test]
fn rotation_alone_heals_a_disk_the_database_filled() {
    let Some(volume) = Tmpfs::mount("16m") else {
        return;
    };
    let db = volume.path().join("trace.db");
    // A 64 MiB bound: a 4 MiB floor, and a 1 MiB reserve file (a sixteenth
    // of this 16 MiB volume, less than the bound's 4 MiB). The volume
    // rule acts only once writes fail (100%), so the disk really fills.
    let d = Daemon::start_at(
        &db,
        &[
            ("TRACE_ROTATE_INTERVAL", "1h"),
            ("TRACE_DB_MAX_BYTES", "64MiB"),
            ("TRACE_DISK_MAX_PERCENT", "100"),
        ],
    );
    let mut acked = Vec::new();
    // About 5 MB of rows.
    for i in 0..2000 {
        let name = format!("old-{i}");
        let r = d.post_json("/v1/events", &event(&name));
        assert_eq!(r.status, 202, "{}", r.body);
        acked.push(name);
    }
    d.wait_status("the first rotation", |s| {
        s["rotation"]["runs"].as_u64() >= Some(1)
    });
    // Another process takes what is left; nobody frees it.
    let _filler = volume.fill_as("filler");
    let refused = post_until_refused(&d, "filling", &mut acked);
    assert_disk_full_refusal(&refused);

    // Retry as an exporter would, honouring Retry-After, until accepted.
    let start = Instant::now();
    let mut newest = Vec::new();
    while newest.len() < 20 {
        let name = format!("new-{}", newest.len());
        let r = d.post_json("/v1/events", &event(&name));
        match r.status {
            202 => newest.push(name),
            507 => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("unexpected {other}: {}", r.body),
        }
        if start.elapsed() > PATIENCE {
            let logs: Vec<String> = d
                .logs
                .lock()
                .expect("logs")
                .iter()
                .filter(|l| l.contains("rotation") || l.contains("reserve"))
                .cloned()
                .collect();
            panic!(
                "ingest never recovered: {} {logs:#?}",
                d.status()["rotation"]
            );
        }
    }
    assert_eq!(d.get("/health").status, 200);
    let status = d.status();
    let rotation = &status["rotation"];
    let deleted = rotation["deleted"]["volume"]["events"]
        .as_u64()
        .expect("deleted");
    assert!(deleted > 0, "{rotation}");
    assert_eq!(
        rotation["dropped"]["volume"]["events"], deleted,
        "{rotation}"
    );

    eprintln!(
        "disk filled by the database, healed by rotation alone: first refusal {}, \
         recovered after {:?} with no action by the test; rotation deleted (and dropped) {deleted} \
         of {} acknowledged rows",
        refused.status,
        start.elapsed(),
        acked.len() + newest.len()
    );
    let (exit, _dir, db_path, _) = d.stop_with(libc::SIGTERM);
    assert!(exit.success(), "{exit:?}");
    // What rotation dropped was the oldest; everything after it is there.
    assert_all_there(&db_path, &newest);
    let conn = open_db(&db_path);
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE source = 'native'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        kept as u64 + deleted,
        (acked.len() + newest.len()) as u64,
        "every acknowledged row is kept or counted as dropped"
    );
    let oldest_kept: String = conn
        .query_row(
            "SELECT name FROM events WHERE source = 'native' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("oldest");
    let position = acked
        .iter()
        .position(|n| *n == oldest_kept)
        .expect("kept row was acked");
    assert_eq!(position as u64, deleted, "the oldest rows went first");
}
