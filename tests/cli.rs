//! The command line against the real binary: `status` and `report` asking a
//! running daemon, and reading its database file with `--db`, read-only,
//! while it runs and after it stopped; exit codes and messages.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::tmpfs::Tmpfs;
use common::Daemon;
use serde_json::Value;

/// What a run of the CLI printed and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `openclaw-trace args` with a clean environment plus `env`.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openclaw-trace"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the CLI");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `host:port` of a daemon, for `TRACE_LISTEN_ADDR`.
fn addr(d: &Daemon) -> &str {
    d.base.trim_start_matches("http://")
}

/// A window from three days ago to a minute from now, in RFC 3339.
fn window() -> (String, String) {
    let now = SystemTime::now();
    let at = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    (
        at(now - Duration::from_secs(3 * 86_400)),
        at(now + Duration::from_secs(60)),
    )
}

/// RFC 3339 for `ago` before now.
fn ago(ago: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() - ago).to_string()
}

/// Posts four native LLM calls over two days: three with a reported cost,
/// one an error, one of a model with no price. Returns nothing the tests do
/// not know: 4 calls, 1 error, 7,000 input and 1,400 output tokens, $1.75.
fn post_calls(d: &Daemon, headers: &[(&str, &str)]) {
    let hour = Duration::from_secs(3600);
    let body = format!(
        r#"[
        {{"provider":"anthropic","model":"claude-sonnet-4-5","prompt_tokens":1000,"completion_tokens":200,
          "cost_usd":1.25,"timestamp":"{}"}},
        {{"provider":"anthropic","model":"claude-sonnet-4-5","prompt_tokens":2000,"completion_tokens":400,
          "cost_usd":0.25,"timestamp":"{}"}},
        {{"provider":"openai","model":"gpt-4o","prompt_tokens":3000,"completion_tokens":600,
          "cost_usd":0.25,"status":"error","timestamp":"{}"}},
        {{"provider":"local","model":"mystery-7b","prompt_tokens":1000,"completion_tokens":200}}
    ]"#,
        ago(30 * hour),
        ago(3 * hour),
        ago(2 * hour),
    );
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let reply = d.post("/v1/traces", body.as_bytes(), &all);
    assert_eq!(reply.status, 202, "{}", reply.body);
}

/// The cells of the `TOTAL` row of a report, after the label.
fn totals_row(report: &str) -> Vec<String> {
    let line = report
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .unwrap_or_else(|| panic!("no TOTAL row in:\n{report}"));
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// `1,234` as 1234.
fn number(cell: &str) -> i64 {
    cell.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {cell}"))
}

/// `$1,234.56` as 1234.56.
fn dollars(cell: &str) -> f64 {
    cell.trim_start_matches('$')
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not money: {cell}"))
}

/// Asserts the TOTAL row of a text report shows the API's `totals`.
fn assert_totals_match(report: &str, totals: &Value) {
    let row = totals_row(report);
    assert_eq!(row.len(), 9, "{row:?}");
    let counts = [
        &totals["calls"],
        &totals["errors"],
        &totals["tokens"]["input"],
        &totals["tokens"]["output"],
        &totals["tokens"]["cache_read"],
        &totals["tokens"]["cache_write"],
    ];
    for (cell, expected) in row.iter().zip(counts) {
        assert_eq!(Some(number(cell)), expected.as_i64(), "{row:?} vs {totals}");
    }
    let money = [
        &totals["cost_usd"]["reported"],
        &totals["cost_usd"]["estimated"],
        &totals["cost_usd"]["total"],
    ];
    for (cell, expected) in row[6..].iter().zip(money) {
        let expected = expected.as_f64().expect("a number");
        // Shown to the cent (or two significant digits under a cent).
        assert!(
            (dollars(cell) - expected).abs() < 0.005,
            "{cell} vs {expected}"
        );
    }
}

#[test]
fn status_shows_health_database_rows_and_warnings() {
    let d = Daemon::start(&[]);
    post_calls(&d, &[]);
    let run = cli(&["status"], &[("TRACE_LISTEN_ADDR", addr(&d))]);
    assert_eq!(run.code, 0, "{run:?}");
    let first = run.stdout.lines().next().unwrap_or_default();
    assert!(first.ends_with(": healthy"), "{}", run.stdout);
    let calls_row: Vec<&str> = run
        .stdout
        .lines()
        .find(|l| l.starts_with("llm_calls "))
        .unwrap_or_else(|| panic!("no llm_calls row: {}", run.stdout))
        .split_whitespace()
        .collect();
    assert_eq!(calls_row, ["llm_calls", "4", "4"], "rows, unpushed");
    assert!(run.stdout.contains("of 512.0 MiB"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("disabled (TRACE_PUSH_ENDPOINT is not set)"),
        "{}",
        run.stdout
    );
    // Whatever the test machine warns of (a full volume, no agent process),
    // it is not critical.
    assert!(run.stdout.contains("\nwarnings:"), "{}", run.stdout);

    let json = cli(&["status", "--json"], &[("TRACE_LISTEN_ADDR", addr(&d))]);
    assert_eq!(json.code, 0, "{json:?}");
    let status: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(status["tables"]["llm_calls"]["rows"], 4);
    assert_eq!(status["agent_id"], "test-agent");
}

#[test]
fn status_with_nothing_listening_exits_3_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let target = format!("127.0.0.1:{port}");
    for command in ["status", "report"] {
        let run = cli(&[command], &[("TRACE_LISTEN_ADDR", &target)]);
        assert_eq!(run.code, 3, "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(&target) && run.stderr.contains("connection refused"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

/// Posts padded events until one is refused; returns the refusal.
fn post_until_refused(d: &Daemon) -> common::Reply {
    let pad = "x".repeat(2000);
    for i in 0..100_000 {
        let r = d.post_json(
            "/v1/events",
            &format!(r#"{{"name":"e{i}","attributes":{{"pad":"{pad}"}}}}"#),
        );
        if r.status != 202 {
            return r;
        }
    }
    panic!("never refused");
}

#[test]
fn a_daemon_that_never_answers_is_given_up_on_with_exit_3() {
    // The kernel completes the handshake for the listener's backlog; nothing
    // ever reads the request or answers it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = silent.local_addr().expect("addr").to_string();
    for command in ["status", "report"] {
        let run = cli(&[command], &[("TRACE_LISTEN_ADDR", &target)]);
        assert_eq!(run.code, 3, "{run:?}");
        assert!(
            run.stderr
                .contains(&format!("{target} did not answer within 5s")),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn status_exits_1_while_the_disk_is_full() {
    let Some(volume) = Tmpfs::mount("16m") else {
        return;
    };
    let db = volume.path().join("trace.db");
    // The volume rule at its default, as in tests/disk_full.rs.
    let d = Daemon::start_at(
        &db,
        &[
            ("TRACE_ROTATE_INTERVAL", "1h"),
            ("TRACE_DISK_MAX_PERCENT", "90"),
        ],
    );
    let env = [("TRACE_LISTEN_ADDR", addr(&d))];
    assert_eq!(cli(&["status"], &env).code, 0);
    // As in tests/disk_full.rs: the first rotation writes a reserve file,
    // which the daemon gives back to SQLite once the disk is full; fill the
    // volume again after that, so it stays full.
    d.wait_status("the first rotation", |s| {
        s["rotation"]["runs"].as_u64() >= Some(1)
    });
    let _filler = volume.fill_as("filler-1");
    assert_eq!(post_until_refused(&d).status, 507);
    d.wait_status("the reserve given back", |_| {
        !common_sibling(&db, "-reserve").exists()
    });
    let _filler_2 = volume.fill_as("filler-2");
    assert_eq!(post_until_refused(&d).status, 507);

    let run = cli(&["status"], &env);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("UNHEALTHY"), "{}", run.stdout);
    assert!(run.stdout.contains("disk full"), "{}", run.stdout);
    let json = cli(&["status", "--json"], &env);
    assert_eq!(json.code, 1, "{json:?}");
    let status: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(status["database"]["disk_full"], true);
}

#[test]
fn report_totals_are_the_apis_and_the_known_figures() {
    let d = Daemon::start(&[]);
    post_calls(&d, &[]);
    let env = [("TRACE_LISTEN_ADDR", addr(&d))];
    let run = cli(&["report", "--by", "model"], &env);
    assert_eq!(run.code, 0, "{run:?}");
    let api = d.get("/v1/llm/summary?since=7d&group_by=model").json();
    assert_totals_match(&run.stdout, &api["totals"]);
    // And against what was posted.
    let row = totals_row(&run.stdout);
    assert_eq!(
        row,
        ["4", "1", "7,000", "1,400", "0", "0", "$1.75", "$0.00", "$1.75"]
    );
    for (model, calls) in [
        ("claude-sonnet-4-5", "2"),
        ("gpt-4o", "1"),
        ("mystery-7b", "1"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(model))
            .unwrap_or_else(|| panic!("no {model} row: {}", run.stdout));
        assert_eq!(line.split_whitespace().nth(1), Some(calls), "{line}");
    }
    assert!(
        run.stdout.contains("sources used: native"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 calls had no reported cost"),
        "{}",
        run.stdout
    );

    // Grouped by day too: the same totals.
    let by_day = cli(&["report", "--by", "model,day", "--since", "3d"], &env);
    assert_eq!(by_day.code, 0, "{by_day:?}");
    assert_eq!(totals_row(&by_day.stdout)[..2], row[..2]);
    assert!(by_day.stdout.contains("DAY"), "{}", by_day.stdout);
}

#[test]
fn report_json_is_the_apis_json() {
    let d = Daemon::start(&[]);
    post_calls(&d, &[]);
    let (since, until) = window();
    let run = cli(
        &[
            "report", "--json", "--since", &since, "--until", &until, "--by", "provider",
        ],
        &[("TRACE_LISTEN_ADDR", addr(&d))],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let printed: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let api = d
        .get(&format!(
            "/v1/llm/summary?since={since}&until={until}&group_by=provider"
        ))
        .json();
    assert_eq!(printed, api);
    assert_eq!(printed["totals"]["calls"], 4);
}

#[test]
fn db_mode_gives_the_apis_numbers_and_leaves_the_file_as_it_was() {
    let d = Daemon::start(&[]);
    post_calls(&d, &[]);
    let (since, until) = window();
    let api = d
        .get(&format!(
            "/v1/llm/summary?since={since}&until={until}&group_by=model"
        ))
        .json();
    let db = d.db_path.clone();
    let db_arg = db.to_str().expect("a UTF-8 path").to_string();
    let report = |env: &[(&str, &str)]| {
        let run = cli(
            &[
                "report", "--json", "--db", &db_arg, "--since", &since, "--until", &until,
            ],
            env,
        );
        assert_eq!(run.code, 0, "{run:?}");
        serde_json::from_str::<Value>(&run.stdout).expect("JSON")
    };

    // While the daemon runs (no daemon address given: the file alone).
    assert_eq!(report(&[]), api);

    let (status, _dir, _, _) = d.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let before = Snapshot::of(&db);
    assert_eq!(report(&[]), api, "after the daemon stopped");
    let text = cli(
        &[
            "report", "--db", &db_arg, "--since", &since, "--until", &until,
        ],
        &[],
    );
    assert_eq!(text.code, 0, "{text:?}");
    assert_totals_match(&text.stdout, &api["totals"]);
    let status = cli(&["status", "--db", &db_arg], &[]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains("live state")
            && status.stdout.contains(&format!(
                "schema        version {}",
                openclaw_trace_actors::schema::SCHEMA_VERSION
            )),
        "{}",
        status.stdout
    );
    let calls_row: Vec<&str> = status
        .stdout
        .lines()
        .find(|l| l.starts_with("llm_calls "))
        .unwrap_or_else(|| panic!("no llm_calls row: {}", status.stdout))
        .split_whitespace()
        .collect();
    assert_eq!(calls_row, ["llm_calls", "4", "4", "never"]);
    let json = cli(&["status", "--db", &db_arg, "--json"], &[]);
    assert_eq!(json.code, 0, "{json:?}");
    let file: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(file["tables"][0]["rows"], 4);
    assert_eq!(file["dead_letters"], 0);
    assert_eq!(Snapshot::of(&db), before, "nothing written");

    // The daemon leaves its emptied WAL and index behind; SQLite removes them
    // when the last connection closes cleanly. Without them too, nothing is
    // created.
    let wal = common_sibling(&db, "-wal");
    if wal.exists() {
        assert_eq!(std::fs::metadata(&wal).expect("wal").len(), 0);
        std::fs::remove_file(&wal).expect("remove the empty WAL");
    }
    let _ = std::fs::remove_file(common_sibling(&db, "-shm"));
    let before = Snapshot::of(&db);
    assert_eq!(report(&[]), api, "with no WAL");
    assert_eq!(cli(&["status", "--db", &db_arg], &[]).code, 0);
    assert_eq!(Snapshot::of(&db), before, "nothing written or created");
}

/// `path` with `suffix` appended.
fn common_sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

/// The database file's bytes and mtime, and which files sit beside it.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    bytes: Vec<u8>,
    modified: SystemTime,
    files: Vec<String>,
}

impl Snapshot {
    fn of(db: &Path) -> Snapshot {
        let dir = db.parent().expect("a directory");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        Snapshot {
            bytes: std::fs::read(db).expect("read the database"),
            modified: std::fs::metadata(db)
                .expect("metadata")
                .modified()
                .expect("mtime"),
            files,
        }
    }
}

#[test]
fn db_on_a_missing_file_fails_clearly_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.db");
    let path = missing.to_str().expect("UTF-8");
    for command in ["status", "report"] {
        let run = cli(&[command, "--db", path], &[]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains(path) && run.stderr.contains("no such file"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);

    let not_db = dir.path().join("notes.txt");
    std::fs::write(&not_db, "not a database").expect("write");
    let run = cli(&["report", "--db", not_db.to_str().expect("UTF-8")], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("not a database"), "{}", run.stderr);
}

#[test]
fn bad_flags_and_values_exit_2_naming_them() {
    // No daemon is needed to refuse them: nothing listens on port 9 here.
    let env = [("TRACE_LISTEN_ADDR", "127.0.0.1:9")];
    let run = cli(&["report", "--since", "yesterday"], &env);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--since"), "{}", run.stderr);
    let run = cli(&["report", "--by", "colour"], &env);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--by"), "{}", run.stderr);
    for (args, named) in [
        (&["status", "--verbose"][..], "--verbose"),
        (&["report", "--format", "csv"][..], "--format"),
        (&["report", "--db"][..], "--db"),
        (&["frobnicate"][..], "frobnicate"),
    ] {
        let run = cli(args, &env);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(named), "{args:?}: {}", run.stderr);
    }
    let run = cli(&["status"], &[("TRACE_LISTEN_ADDR", "localhost")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("TRACE_LISTEN_ADDR"), "{}", run.stderr);
}

#[test]
fn help_lists_the_flags_and_exit_codes() {
    for command in ["status", "report"] {
        let run = cli(&[command, "--help"], &[]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("--db PATH"), "{}", run.stdout);
        assert!(run.stdout.contains("Exit codes:"), "{}", run.stdout);
        assert!(run.stdout.contains("  3  the daemon cannot be reached"));
    }
    let run = cli(&["--help"], &[]);
    assert!(
        run.stdout.contains("openclaw-trace report [...]"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_token_is_sent_from_trace_ingest_token_and_a_401_is_told() {
    let token = "s3cret-token";
    let d = Daemon::start(&[("TRACE_INGEST_TOKEN", token)]);
    let bearer = format!("Bearer {token}");
    post_calls(&d, &[("Authorization", &bearer)]);
    let with = cli(
        &["report"],
        &[
            ("TRACE_LISTEN_ADDR", addr(&d)),
            ("TRACE_INGEST_TOKEN", token),
        ],
    );
    assert_eq!(with.code, 0, "{with:?}");
    assert_eq!(totals_row(&with.stdout)[0], "4");

    for env in [
        vec![("TRACE_LISTEN_ADDR", addr(&d))],
        vec![
            ("TRACE_LISTEN_ADDR", addr(&d)),
            ("TRACE_INGEST_TOKEN", "wrong"),
        ],
    ] {
        let run = cli(&["report"], &env);
        assert_eq!(run.code, 4, "{run:?}");
        assert!(
            run.stderr.contains("401") && run.stderr.contains("TRACE_INGEST_TOKEN"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    // Status and health stay open, as they are for every client.
    assert_eq!(cli(&["status"], &[("TRACE_LISTEN_ADDR", addr(&d))]).code, 0);
}
