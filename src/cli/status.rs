//! `openclaw-trace status`: the daemon's health, its database against the
//! bound, rows not yet pushed, the last push and the warnings; with `--db`,
//! what the file alone says.

use std::collections::BTreeMap;
use std::path::Path;

use openclaw_trace_actors::follow::FollowerView;
use openclaw_trace_actors::query::file_sizes;
use openclaw_trace_actors::records::Table as RecordTable;
use openclaw_trace_actors::report::file_status::{file_status, FileStatus};
use serde::{Deserialize, Serialize};

use super::client::{self, Answer, Target};
use super::table::{bytes, count, Align, Table};
use super::{config, dbfile, listen_addr_default, output, CliError, Exit, Flags, EXIT_CODES};

/// `status --help`.
fn help() -> String {
    format!(
        "Usage: openclaw-trace status [--json] [--db PATH]

The daemon's health: its database's size against TRACE_DB_MAX_BYTES, rows not yet
pushed, the last push, and its warnings. It asks the running daemon at
TRACE_LISTEN_ADDR (default {listen}; GET /health and /v1/status).

Options:
  --json       print /v1/status's JSON as the daemon sends it (with --db: the
               file's state as JSON)
  --db PATH    read the database file instead, strictly read-only (the daemon may
               run or not): size, schema version, rows and unpushed rows per table,
               the last push, dead letters. The daemon's live state is not in the
               file. Exits 0 when the file could be read.
  -h, --help   this text

{EXIT_CODES}",
        listen = listen_addr_default()
    )
}

/// The parts of `/v1/status` the summary shows (docs in `http::status`).
#[derive(Debug, Deserialize)]
struct DaemonStatus {
    version: String,
    agent_id: String,
    uptime_seconds: f64,
    db_status: String,
    #[serde(default)]
    warnings: Vec<String>,
    database: Database,
    rotation: Rotation,
    tables: BTreeMap<String, TableCounts>,
    push: Push,
    last_push_time: Option<String>,
    last_push_status: String,
    unsynced_count: u64,
    /// OpenClaw's own files followed (absent from daemons before them).
    #[serde(default)]
    openclaw: BTreeMap<String, FollowerView>,
}

#[derive(Debug, Deserialize)]
struct Database {
    path: String,
    size_bytes: u64,
    wal_size_bytes: u64,
    max_bytes: u64,
    disk_full: bool,
}

#[derive(Debug, Deserialize)]
struct Rotation {
    dropped_total: u64,
}

#[derive(Debug, Deserialize)]
struct TableCounts {
    rows: u64,
    unpushed: u64,
}

#[derive(Debug, Deserialize)]
struct Push {
    enabled: bool,
    reason: Option<String>,
    endpoint: Option<String>,
    last_error: Option<String>,
    #[serde(default)]
    consecutive_failures: u64,
    dead_lettered_rows: u64,
}

/// Runs `status` with its flags.
pub fn run(args: &[String]) -> Result<Exit, CliError> {
    let flags = Flags::parse(args, "status", &["db"], &["json", "help"])?;
    if flags.switch("help") {
        output(&help())?;
        return Ok(Exit::Ok);
    }
    let config = config()?;
    match flags.value("db") {
        Some(path) => from_file(
            Path::new(path),
            config.rotation.max_db_bytes,
            flags.switch("json"),
        ),
        None => from_daemon(&Target::from_config(&config), flags.switch("json")),
    }
}

/// Asks the daemon.
fn from_daemon(target: &Target, json: bool) -> Result<Exit, CliError> {
    let answers = client::get(target, &[("/health", &[]), ("/v1/status", &[])])?;
    let [health, status]: [Answer; 2] = answers.try_into().expect("one answer per request");
    if status.status == 401 {
        return Err(status.unauthorized());
    }
    if status.status != 200 {
        return Err(CliError::new(
            Exit::Trouble,
            format!(
                "unhealthy: /health answered {} ({}), /v1/status answered {} ({})",
                health.status,
                health.message(),
                status.status,
                status.message()
            ),
        ));
    }
    let parsed: DaemonStatus = serde_json::from_slice(&status.body).map_err(|e| {
        CliError::new(
            Exit::Trouble,
            format!("/v1/status answered JSON this build cannot read: {e}"),
        )
    })?;
    let verdict = Verdict::of(&health, &parsed);
    if json {
        output(&format!("{}\n", String::from_utf8_lossy(&status.body)))?;
    } else {
        output(&render_daemon(target, &parsed, &verdict))?;
    }
    Ok(if verdict.problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Trouble
    })
}

/// Healthy, or what makes the daemon unhealthy.
struct Verdict {
    /// Empty when healthy.
    problems: Vec<String>,
}

impl Verdict {
    /// Unhealthy: `/health` is not 200, records are refused for want of
    /// space, or rotation deleted rows that were never pushed (records
    /// lost). Other warnings (a volume over 80%, memory, zombies, the agent
    /// not found, a database over its bound while rotation shrinks it, push
    /// failures: the rows wait in the file) are shown but not critical.
    fn of(health: &Answer, s: &DaemonStatus) -> Verdict {
        let mut problems = Vec::new();
        if health.status != 200 {
            problems.push(format!(
                "/health answered {} (db_status: {})",
                health.status, s.db_status
            ));
        }
        if s.database.disk_full {
            problems.push("records are refused for want of space (disk full)".into());
        }
        if s.rotation.dropped_total > 0 {
            problems.push(format!(
                "rotation deleted {} rows that were never pushed",
                count(s.rotation.dropped_total as i64)
            ));
        }
        Verdict { problems }
    }
}

/// The size line: `4.0 KiB + 1.2 MiB WAL = 1.2 MiB, 0.2% of 512.0 MiB`.
fn size_line(db: u64, wal: u64, bound: u64) -> String {
    let total = db + wal;
    format!(
        "{} + {} WAL = {}, {:.1}% of {}",
        bytes(db),
        bytes(wal),
        bytes(total),
        total as f64 * 100.0 / bound.max(1) as f64,
        bytes(bound),
    )
}

fn render_daemon(target: &Target, s: &DaemonStatus, verdict: &Verdict) -> String {
    let mut out = String::new();
    let health = if verdict.problems.is_empty() {
        "healthy".to_string()
    } else {
        format!("UNHEALTHY: {}", verdict.problems.join("; "))
    };
    out.push_str(&format!(
        "openclaw-trace {} at {}: {health}\n",
        s.version, target.addr
    ));
    let uptime = std::time::Duration::from_secs(s.uptime_seconds.max(0.0) as u64);
    let mut facts = Table::new(vec![
        (String::new(), Align::Left),
        (String::new(), Align::Left),
    ]);
    facts.row(vec![
        "agent".into(),
        format!("{}, up {}", s.agent_id, humantime::format_duration(uptime)),
    ]);
    facts.row(vec!["database".into(), s.database.path.clone()]);
    facts.row(vec![
        "size".into(),
        format!(
            "{} (TRACE_DB_MAX_BYTES)",
            size_line(
                s.database.size_bytes,
                s.database.wal_size_bytes,
                s.database.max_bytes
            )
        ),
    ]);
    facts.row(vec![
        "unpushed".into(),
        format!("{} rows", count(s.unsynced_count as i64)),
    ]);
    let push = if s.push.enabled {
        let mut line = format!(
            "to {}: last success {}, status {}",
            s.push.endpoint.as_deref().unwrap_or("?"),
            s.last_push_time.as_deref().unwrap_or("never"),
            s.last_push_status
        );
        if let Some(e) = &s.push.last_error {
            line.push_str(&format!(
                " ({} failures in a row; last: {e})",
                s.push.consecutive_failures
            ));
        }
        line
    } else {
        format!(
            "disabled ({})",
            s.push.reason.as_deref().unwrap_or("no endpoint")
        )
    };
    facts.row(vec!["last push".into(), push]);
    facts.row(vec![
        "dead letters".into(),
        count(s.push.dead_lettered_rows as i64),
    ]);
    out.push_str(skip_header(&facts.render()));
    out.push('\n');
    let mut tables = Table::new(vec![
        ("TABLE".into(), Align::Left),
        ("ROWS".into(), Align::Right),
        ("UNPUSHED".into(), Align::Right),
    ]);
    for table in RecordTable::ALL {
        if let Some(c) = s.tables.get(table.name()) {
            tables.row(vec![
                table.name().into(),
                count(c.rows as i64),
                count(c.unpushed as i64),
            ]);
        }
    }
    out.push_str(&tables.render());
    out.push('\n');
    out.push_str(&openclaw_sources(&s.openclaw));
    out.push_str(&warnings(&s.warnings));
    out
}

/// The OpenClaw files followed: one line each, or why none is.
fn openclaw_sources(followers: &BTreeMap<String, FollowerView>) -> String {
    let mut sources = Table::new(vec![
        ("OPENCLAW".into(), Align::Left),
        ("PATH".into(), Align::Left),
        ("READ".into(), Align::Right),
        ("FAILED".into(), Align::Right),
        ("STORED".into(), Align::Right),
        ("BEHIND".into(), Align::Right),
        ("LAG".into(), Align::Right),
    ]);
    let mut any = false;
    let mut off = Vec::new();
    for (kind, follower) in followers {
        if !follower.enabled {
            off.push(kind.as_str());
            continue;
        }
        if follower.sources.is_empty() {
            any = true;
            let watching = follower.watching.join(", ");
            sources.row(vec![
                kind.clone(),
                format!("nothing yet under {watching}"),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for source in follower.sources.values() {
            any = true;
            let behind = if kind == "gateway_log" {
                bytes(source.behind)
            } else {
                format!("{} rows", count(source.behind as i64))
            };
            sources.row(vec![
                kind.clone(),
                source.path.clone(),
                count(source.rows_read as i64),
                count(source.rows_failed as i64),
                count(source.stored as i64),
                behind,
                source
                    .lag_ms
                    .map_or("-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
            ]);
        }
    }
    let mut out = String::new();
    if any {
        out.push_str(&sources.render());
        out.push('\n');
    }
    if !off.is_empty() {
        out.push_str(&format!("openclaw: not following {}\n\n", off.join(", ")));
    }
    out
}

/// A table rendered without its (empty) header line.
fn skip_header(text: &str) -> &str {
    text.split_once('\n').map_or("", |(_, rest)| rest)
}

fn warnings(list: &[String]) -> String {
    if list.is_empty() {
        return "warnings: none\n".into();
    }
    let mut out = String::from("warnings:\n");
    for w in list {
        out.push_str(&format!("  - {w}\n"));
    }
    out
}

/// `status --db --json`: the file's state with its sizes.
#[derive(Debug, Serialize)]
struct FileReport<'a> {
    path: String,
    size_bytes: u64,
    wal_size_bytes: u64,
    /// `TRACE_DB_MAX_BYTES` in this environment.
    max_bytes: u64,
    #[serde(flatten)]
    status: &'a FileStatus,
    note: &'static str,
}

const FILE_NOTE: &str = "read from the file alone: the daemon's live state (health, counters, the push in progress, warnings) is not included";

/// Reads the file.
fn from_file(path: &Path, max_bytes: u64, json: bool) -> Result<Exit, CliError> {
    let status = dbfile::read(path, |conn| file_status(conn).map_err(|e| e.to_string()))?;
    let sizes = file_sizes(path);
    if json {
        let report = FileReport {
            path: path.display().to_string(),
            size_bytes: sizes.db_bytes,
            wal_size_bytes: sizes.wal_bytes,
            max_bytes,
            status: &status,
            note: FILE_NOTE,
        };
        let text = serde_json::to_string(&report)
            .map_err(|e| CliError::new(Exit::Trouble, format!("encoding: {e}")))?;
        output(&format!("{text}\n"))?;
        return Ok(Exit::Ok);
    }
    let mut out = format!("database file {}\n{FILE_NOTE}\n\n", path.display());
    let mut facts = Table::new(vec![
        (String::new(), Align::Left),
        (String::new(), Align::Left),
    ]);
    facts.row(vec![
        "size".into(),
        format!(
            "{} (TRACE_DB_MAX_BYTES in this environment)",
            size_line(sizes.db_bytes, sizes.wal_bytes, max_bytes)
        ),
    ]);
    facts.row(vec![
        "schema".into(),
        format!("version {}", status.schema_version),
    ]);
    facts.row(vec![
        "unpushed".into(),
        format!("{} rows", count(status.unpushed as i64)),
    ]);
    facts.row(vec![
        "last push".into(),
        status.last_push.clone().unwrap_or_else(|| "never".into()),
    ]);
    facts.row(vec![
        "dead letters".into(),
        count(status.dead_letters as i64),
    ]);
    out.push_str(skip_header(&facts.render()));
    out.push('\n');
    let mut tables = Table::new(vec![
        ("TABLE".into(), Align::Left),
        ("ROWS".into(), Align::Right),
        ("UNPUSHED".into(), Align::Right),
        ("LAST PUSH".into(), Align::Left),
    ]);
    for t in &status.tables {
        tables.row(vec![
            t.table.clone(),
            count(t.rows as i64),
            count(t.unpushed as i64),
            t.last_push.clone().unwrap_or_else(|| "never".into()),
        ]);
    }
    out.push_str(&tables.render());
    output(&out)?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(disk_full: bool, dropped: u64, warnings: &[&str]) -> DaemonStatus {
        serde_json::from_value(serde_json::json!({
            "version": "0.1.0", "agent_id": "a", "uptime_seconds": 5, "db_status": "ok",
            "warnings": warnings,
            "database": {"path": "/data/t.db", "size_bytes": 4096, "wal_size_bytes": 0,
                         "max_bytes": 1 << 20, "disk_full": disk_full},
            "rotation": {"dropped_total": dropped},
            "tables": {"llm_calls": {"rows": 3, "unpushed": 1}},
            "push": {"enabled": false, "reason": "TRACE_PUSH_ENDPOINT is not set",
                     "dead_lettered_rows": 0},
            "last_push_time": null, "last_push_status": "disabled", "unsynced_count": 1,
        }))
        .expect("a /v1/status the daemon sends")
    }

    fn health(code: u16) -> Answer {
        Answer {
            status: code,
            body: Vec::new(),
        }
    }

    #[test]
    fn only_refused_or_lost_records_are_critical() {
        let ordinary = ["volume /data is 85% full", "agent process not found"];
        assert!(Verdict::of(&health(200), &status(false, 0, &ordinary))
            .problems
            .is_empty());
        let lost = Verdict::of(&health(200), &status(false, 3, &[]));
        assert_eq!(
            lost.problems,
            ["rotation deleted 3 rows that were never pushed"]
        );
        let full = Verdict::of(&health(503), &status(true, 0, &[]));
        assert_eq!(full.problems.len(), 2, "{:?}", full.problems);
    }
}
