//! The transcript follower (run by a [`FollowActor`](crate::follow::FollowActor)): reads every model call's usage and cost out of
//! OpenClaw's own transcript databases, with no help from the agent.
//!
//! OpenClaw keeps one SQLite file per agent,
//! `<state dir>/agents/<agentId>/agent/openclaw-agent.sqlite`; its
//! `transcript_events` table holds one row per event of a session, keyed by
//! `(session_id, seq)`, the event's JSON in `event_json` or, for large
//! events, zstd-compressed in `event_zstd`. Each assistant message carries
//! the provider, model, token usage and OpenClaw's own cost; each becomes
//! one `llm_calls` row (`source` `openclaw_transcript`).
//!
//! A good neighbour: the file is opened read-only, each read is one short
//! statement (one read transaction of at most [`CHUNK_ROWS`] rows), and the
//! databases are looked at every `TRACE_OPENCLAW_POLL` (less often while
//! there are none, [`crate::follow::ABSENT_POLLS`]). A schema version
//! this build does not know is reported in `/v1/status` and the file is
//! skipped, never guessed at.
//!
//! Exactly once: rows are read in rowid order from the last rowid read,
//! saved with the calls in one transaction, with the session, `seq` and
//! `created_at` of the row at that rowid. OpenClaw deletes rows (a session
//! moved to a cold archive, a rewound tail whose `seq`s it then writes
//! again) and SQLite may give a deleted rowid to a new row: when the row at
//! the saved rowid is no longer the one read there, the table is read again
//! from its start. Either way a call is stored once: before a chunk goes to
//! the store, its calls already held (same session, start time and event
//! id) are dropped. Rows moved to cold archives after they were read change
//! nothing.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use slog::{info, warn};

use crate::follow::{Chunk, Core, FollowKind, Follower, Position, Read as Chunked, Saved};
use crate::records::{Batch, JsonObject, LlmCall, LlmOrigin, Source, Table, MAX_TOKENS};
use crate::stats::ActorName;
use crate::time::rfc3339_ns;

/// The agent schema versions whose `transcript_events` this build reads
/// (OpenClaw 2026.9.6 writes 23).
pub const KNOWN_SCHEMAS: &[i64] = &[23];

/// Rows read in one chunk at most.
pub const CHUNK_ROWS: usize = 256;

/// Event bytes read in one chunk at most (a row is always read whole).
const CHUNK_BYTES: usize = 4 << 20;

/// The largest event OpenClaw stores (its own bound, `event_utf8_bytes`).
const MAX_EVENT_BYTES: usize = 4 << 20;

/// How long a read waits for OpenClaw's lock before trying at the next look.
const BUSY_WAIT: Duration = Duration::from_millis(200);

/// The transcript file of each agent under `state_dir`, by agent id.
pub fn find_databases(state_dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(state_dir.join("agents"))? {
        let entry = entry?;
        let path = entry.path().join("agent").join("openclaw-agent.sqlite");
        if path.is_file() {
            found.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    found.sort();
    Ok(found)
}

/// A token count as stored: whole, not negative, within [`MAX_TOKENS`].
fn tokens(v: Option<&Value>) -> Option<i64> {
    let n = v?.as_f64()?;
    (n.is_finite() && (0.0..=MAX_TOKENS as f64).contains(&n)).then_some(n.round() as i64)
}

/// The LLM call an event records, if it is an assistant message with usage.
pub fn call_from_event(event: &Value, session_id: &str, agent: &str, seq: i64) -> Option<LlmCall> {
    let message = event.get("message")?;
    if event.get("type").and_then(Value::as_str) != Some("message")
        || message.get("role").and_then(Value::as_str) != Some("assistant")
    {
        return None;
    }
    let usage = message.get("usage")?.as_object()?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let started_ns = message
        .get("timestamp")
        .and_then(Value::as_i64)
        .and_then(|ms| ms.checked_mul(1_000_000));
    let ended_ns = event
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(rfc3339_ns);
    let latency_ms = match (started_ns, ended_ns) {
        (Some(s), Some(e)) if e >= s => Some((e - s) as f64 / 1e6),
        _ => None,
    };
    let stop = text(message, "stopReason");
    // OpenClaw's own class of failure (`server_error`), else the stop reason.
    let failure = |reason: &str| text(message, "errorType").unwrap_or_else(|| reason.to_string());
    let (status, error_type) = match stop.as_deref() {
        Some("error") => ("error", Some(failure("error"))),
        Some("aborted") => ("aborted", Some(failure("aborted"))),
        _ => ("ok", None),
    };
    let input = tokens(usage.get("input"));
    let output = tokens(usage.get("output"));
    let cache_read = tokens(usage.get("cacheRead"));
    let cache_write = tokens(usage.get("cacheWrite"));
    let total = tokens(usage.get("totalTokens")).or_else(|| {
        let parts = [input, output, cache_read, cache_write];
        parts
            .iter()
            .any(Option::is_some)
            .then(|| parts.iter().flatten().sum())
    });
    let cost = usage
        .get("cost")
        .and_then(|c| c.get("total"))
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && *c >= 0.0);

    let mut metadata = JsonObject::new();
    let mut keep = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            metadata.insert(key.to_string(), v);
        }
    };
    keep("openclaw_agent", Some(Value::from(agent)));
    keep("transcript_seq", Some(Value::from(seq)));
    keep(
        "run_id",
        message
            .get("__openclaw")
            .and_then(|o| o.get("runId"))
            .cloned(),
    );
    keep("response_id", message.get("responseId").cloned());
    keep("api", message.get("api").cloned());
    keep("stop_reason", stop.clone().map(Value::from));
    keep("error_message", message.get("errorMessage").cloned());
    keep("error_code", message.get("errorCode").cloned());
    keep("event_id", event.get("id").cloned());

    Some(LlmCall {
        time_ns: started_ns.or(ended_ns),
        session_id: Some(session_id.to_string()),
        provider: text(message, "provider").unwrap_or_else(|| "unknown".into()),
        model: text(message, "model").unwrap_or_else(|| "unknown".into()),
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: total,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        cost_usd: cost,
        latency_ms,
        status: status.to_string(),
        error_type,
        metadata: Some(metadata),
        origin: LlmOrigin::Transcript,
        ..LlmCall::default()
    })
}

/// An event's JSON text: as stored, or decompressed.
fn event_text(
    json: Option<String>,
    zstd: Option<Vec<u8>>,
    bytes: Option<i64>,
) -> Result<String, String> {
    if let Some(text) = json {
        return Ok(text);
    }
    let compressed = zstd.ok_or("neither event_json nor event_zstd is set")?;
    let expected = bytes
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=MAX_EVENT_BYTES).contains(n))
        .ok_or("event_utf8_bytes is missing or out of bounds")?;
    let decoder = ruzstd::decoding::StreamingDecoder::new(compressed.as_slice())
        .map_err(|e| format!("event_zstd is not a zstd frame: {e}"))?;
    let mut out = Vec::with_capacity(expected);
    decoder
        .take(expected as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("event_zstd does not decode: {e}"))?;
    if out.len() != expected {
        return Err(format!(
            "event_zstd decodes to {} bytes, event_utf8_bytes says {expected}",
            out.len()
        ));
    }
    String::from_utf8(out).map_err(|_| "event_zstd is not UTF-8".to_string())
}

/// One transcript row as read.
struct Row {
    rowid: i64,
    session_id: String,
    seq: i64,
    created_at: i64,
    json: Option<String>,
    zstd: Option<Vec<u8>>,
    utf8_bytes: Option<i64>,
}

/// One transcript database followed.
struct Followed {
    agent: String,
    path: PathBuf,
    conn: Option<Connection>,
    /// `(device, inode)` of the file `conn` opened: a file replaced at the
    /// path (an agent made again, a restore) is opened anew.
    opened: Option<(u64, u64)>,
    /// While the table is read again from its start (the row at the cursor
    /// changed), the cursor it had: calls older than any held are then
    /// left out, as rotation may have deleted them already.
    rescan_until: Option<i64>,
    /// The last rowid read.
    cursor: i64,
    /// `(session, seq, created_at)` of the row at `cursor`.
    at_cursor: Option<RowId>,
    /// Each session's channel, from `session_windows`.
    channels: HashMap<String, Option<String>>,
}

impl Followed {
    fn key(&self) -> String {
        self.path.display().to_string()
    }

    fn connection(&mut self) -> rusqlite::Result<&Connection> {
        let now = file_id(&self.path);
        if self.conn.is_some() && now != self.opened {
            // Another file at the path: its rowids say nothing of the old
            // one's, so the cursor check reads it from its start.
            self.conn = None;
        }
        if self.conn.is_none() {
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(BUSY_WAIT)?;
            self.conn = Some(conn);
            self.opened = now;
        }
        Ok(self.conn.as_ref().expect("opened above"))
    }
}

/// `(device, inode)` of the file at `path`, if there is one.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Followed {}

/// What tells a transcript row from another that took its rowid:
/// `(session_id, seq, created_at)`.
type RowId = (String, i64, i64);

/// The fingerprint saved with a position: the row at the cursor.
fn cursor_fingerprint(at: &Option<RowId>) -> Option<String> {
    at.as_ref()
        .map(|(s, q, c)| serde_json::json!([s, q, c]).to_string())
}

fn parse_fingerprint(text: Option<&str>) -> Option<RowId> {
    let v: Value = serde_json::from_str(text?).ok()?;
    Some((
        v.get(0)?.as_str()?.to_string(),
        v.get(1)?.as_i64()?,
        v.get(2)?.as_i64()?,
    ))
}

/// Drops the calls the daemon's file already holds (read before a restart
/// from a row OpenClaw since moved, or from a table read again): the same
/// session, start time and transcript event. Returns how many it dropped.
pub fn drop_stored(conn: &Connection, calls: &mut Vec<LlmCall>) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM llm_calls WHERE time_ns = ?1 AND source = 'openclaw_transcript'
           AND session_id IS ?2 AND json_extract(metadata, '$.event_id') IS ?3 LIMIT 1",
    )?;
    let before = calls.len();
    let mut keep = Vec::with_capacity(before);
    for call in calls.drain(..) {
        let event_id = call
            .metadata
            .as_ref()
            .and_then(|m| m.get("event_id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let held = match call.time_ns {
            Some(t) => stmt.exists(rusqlite::params![t, call.session_id, event_id])?,
            None => false,
        };
        if !held {
            keep.push(call);
        }
    }
    *calls = keep;
    Ok(before - calls.len())
}

/// What one read of a database gave.
enum Outcome {
    /// Rows to store.
    Chunk {
        chunk: Chunk,
        newest_ns: Option<i64>,
        behind: u64,
        /// Whether it stopped at [`CHUNK_ROWS`] or [`CHUNK_BYTES`].
        full: bool,
        /// Whether it is part of the table read again from its start.
        rescan: bool,
        at_cursor: Option<RowId>,
    },
    /// Nothing new; how many rows are behind (none).
    CaughtUp,
    /// The file is skipped: why.
    Skipped(String),
}

/// What the transcript follower knows of the agents' databases.
pub struct Transcripts {
    /// OpenClaw's state directory.
    state_dir: PathBuf,
    /// By key (path).
    dbs: BTreeMap<String, Followed>,
    /// Positions saved by earlier runs, not yet matched to a database.
    saved: HashMap<String, Saved>,
}

/// Why a transcript cannot be read, in the daemon's log.
const CANNOT_READ: &str = "cannot read an OpenClaw transcript";

impl Transcripts {
    /// A follower of the transcripts under `state_dir`.
    pub fn new(state_dir: PathBuf) -> Self {
        Transcripts {
            state_dir,
            dbs: BTreeMap::new(),
            saved: HashMap::new(),
        }
    }

    /// Finds the agents' databases, new ones included.
    fn look(&mut self, core: &mut Core) {
        let found = match find_databases(&self.state_dir) {
            Ok(found) => {
                core.sink
                    .view
                    .update(FollowKind::Transcript, |v| v.problem = None);
                found
            }
            Err(e) => {
                let text = format!("{}: {e}", self.state_dir.join("agents").display());
                core.sink
                    .view
                    .update(FollowKind::Transcript, |v| v.problem = Some(text.clone()));
                if e.kind() != std::io::ErrorKind::NotFound {
                    // Unreadable: what was followed stays, to be read again
                    // once it can be.
                    core.problem_once(CANNOT_READ, &text);
                    return;
                }
                // Gone (OpenClaw removed, or not there yet): nothing to
                // follow.
                Vec::new()
            }
        };
        // Databases gone (an agent removed) are forgotten; their saved
        // positions stay until a file appears there again.
        let present: std::collections::HashSet<String> =
            found.iter().map(|(_, p)| p.display().to_string()).collect();
        self.dbs.retain(|key, _| present.contains(key));
        core.sink.view.update(FollowKind::Transcript, |v| {
            v.sources.retain(|k, _| present.contains(k))
        });
        for (agent, path) in found {
            let key = path.display().to_string();
            if self.dbs.contains_key(&key) {
                continue;
            }
            let saved = self.saved.remove(&key);
            info!(core.log, "following an OpenClaw transcript"; "path" => &key,
                "from_rowid" => saved.as_ref().map_or(0, |s| s.offset));
            core.sink.view.update(FollowKind::Transcript, |v| {
                let s = v.sources.entry(key.clone()).or_default();
                s.path.clone_from(&key);
                if let Some(saved) = &saved {
                    s.position = saved.offset;
                    s.rows_read = saved.read;
                    s.rows_failed = saved.failed;
                }
            });
            let db = Followed {
                agent,
                path,
                conn: None,
                opened: None,
                rescan_until: None,
                cursor: saved.as_ref().map_or(0, |s| s.offset),
                at_cursor: saved
                    .as_ref()
                    .and_then(|s| parse_fingerprint(s.fingerprint.as_deref())),
                channels: HashMap::new(),
            };
            self.dbs.insert(key, db);
        }
    }
}

/// Drops from `chunk` the calls the daemon's file already holds; how many.
/// Reading a table again (`rescan`), it drops too the calls older than any
/// it holds: those were read before and deleted since by rotation.
fn drop_held(core: &Core, chunk: &mut Chunk, rescan: bool) -> Result<usize, String> {
    let conn = core.sink.pool.get().map_err(|e| e.to_string())?;
    let oldest: Option<i64> = if rescan {
        conn.query_row(
            "SELECT min(time_ns) FROM llm_calls WHERE source = 'openclaw_transcript'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?
    } else {
        None
    };
    let mut dropped = 0;
    for batch in &mut chunk.batches {
        if let Batch::LlmCalls(calls) = batch {
            if let Some(oldest) = oldest {
                let before = calls.len();
                calls.retain(|c| c.time_ns.is_none_or(|t| t >= oldest));
                dropped += before - calls.len();
            }
            dropped += drop_stored(&conn, calls).map_err(|e| e.to_string())?;
        }
    }
    Ok(dropped)
}

impl Follower for Transcripts {
    const KIND: FollowKind = FollowKind::Transcript;
    const ACTOR: ActorName = ActorName::Transcript;
    const SOURCE: Source = Source::OpenClawTranscript;
    const WHAT: &'static str = "OpenClaw's transcripts";
    const STORED: Table = Table::LlmCalls;
    type Cursor = Option<RowId>;

    fn watching(&self) -> Vec<String> {
        vec![self.state_dir.display().to_string()]
    }

    fn resume(&mut self, saved: BTreeMap<String, Saved>) {
        self.saved = saved.into_iter().collect();
    }

    /// Reads the next chunk of the first database with new rows.
    fn next(&mut self, core: &mut Core) -> Option<Chunked<Option<RowId>>> {
        self.look(core);
        for (key, db) in self.dbs.iter_mut() {
            match read_chunk(db) {
                Ok(Outcome::Chunk {
                    mut chunk,
                    newest_ns,
                    behind,
                    full,
                    rescan,
                    at_cursor,
                }) => {
                    match drop_held(core, &mut chunk, rescan) {
                        Ok(0) => {}
                        Ok(n) => {
                            info!(core.log, "transcript calls already stored were read again and left out";
                            "calls" => n, "path" => key)
                        }
                        Err(e) => {
                            // Not knowing what is held, store nothing yet.
                            warn!(core.log, "checking transcript calls against the database failed; retrying";
                                "error" => e);
                            return None;
                        }
                    }
                    return Some(Chunked {
                        key: key.clone(),
                        chunk,
                        newest_ns,
                        behind,
                        full,
                        cursor: at_cursor,
                    });
                }
                Ok(Outcome::CaughtUp) => {
                    core.sink.view.update(FollowKind::Transcript, |v| {
                        let s = v.sources.entry(key.clone()).or_default();
                        s.position = db.cursor;
                        s.behind = 0;
                        s.problem = None;
                    });
                }
                Ok(Outcome::Skipped(why)) => {
                    core.sink.view.update(FollowKind::Transcript, |v| {
                        v.sources.entry(key.clone()).or_default().problem = Some(why.clone());
                    });
                    core.problem_once(CANNOT_READ, &why);
                }
                Err(e) => {
                    // Busy or locked: tried again at the next look; a file
                    // that cannot be opened is reported.
                    db.conn = None;
                    let why = format!("{key}: {e}");
                    core.sink.view.update(FollowKind::Transcript, |v| {
                        v.sources.entry(key.clone()).or_default().problem = Some(why.clone());
                    });
                    let busy = matches!(
                        e.sqlite_error_code(),
                        Some(
                            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                        )
                    );
                    if !busy {
                        core.problem_once(CANNOT_READ, &why);
                    }
                }
            }
        }
        None
    }

    fn committed(&mut self, key: &str, position: &Position, at_cursor: Option<RowId>) {
        if let Some(db) = self.dbs.get_mut(key) {
            db.cursor = position.offset;
            db.at_cursor = at_cursor;
        }
    }

    fn found(&self) -> bool {
        !self.dbs.is_empty()
    }

    fn reset(&mut self) {
        self.dbs.clear();
        self.saved.clear();
    }
}

/// Reads the rows after the cursor (at most [`CHUNK_ROWS`]).
fn read_chunk(db: &mut Followed) -> rusqlite::Result<Outcome> {
    let key = db.key();
    let path = db.path.display().to_string();
    db.connection()?;
    let conn = db.conn.as_ref().expect("opened above");
    // One short read transaction: the cursor check and the rows read see
    // the same state of the file; it ends when this function returns.
    let tx = conn.unchecked_transaction()?;
    let conn: &Connection = &tx;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if !KNOWN_SCHEMAS.contains(&version) {
        return Ok(Outcome::Skipped(format!(
            "{path}: agent schema version {version} is not one this build reads ({KNOWN_SCHEMAS:?}); \
             the file is skipped"
        )));
    }
    // The row at the cursor must still be the one read there; if it is not
    // (its rowid was deleted and may be given to a new row), read from the
    // start: calls already held are dropped before they are stored.
    let mut from = db.cursor;
    if from > 0 {
        let at: Option<RowId> = conn
            .query_row(
                "SELECT session_id, seq, created_at FROM transcript_events WHERE rowid = ?1",
                [from],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if at.is_none() || at != db.at_cursor {
            db.rescan_until = Some(db.rescan_until.unwrap_or(0).max(from));
            from = 0;
        }
    }
    let (mut rows, bytes) = {
        let mut stmt = conn.prepare_cached(
            "SELECT rowid, session_id, seq, created_at, event_json, event_zstd, event_utf8_bytes
             FROM transcript_events WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )?;
        let mut rows = stmt.query(rusqlite::params![from, CHUNK_ROWS as i64])?;
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(r) = rows.next()? {
            let json: Option<String> = r.get(4)?;
            let zstd: Option<Vec<u8>> = r.get(5)?;
            bytes += json.as_ref().map_or(0, String::len) + zstd.as_ref().map_or(0, Vec::len);
            out.push(Row {
                rowid: r.get(0)?,
                session_id: r.get(1)?,
                seq: r.get(2)?,
                created_at: r.get(3)?,
                json,
                zstd,
                utf8_bytes: r.get(6)?,
            });
            if bytes >= CHUNK_BYTES {
                break;
            }
        }
        (out, bytes)
    };
    let full = rows.len() == CHUNK_ROWS || bytes >= CHUNK_BYTES;
    if rows.is_empty() {
        return Ok(Outcome::CaughtUp);
    }
    let newest_rowid: i64 = conn
        .query_row("SELECT max(rowid) FROM transcript_events", [], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .unwrap_or(0);
    // Channels of sessions not met before.
    for row in &rows {
        if !db.channels.contains_key(&row.session_id) {
            let channel: Option<String> = conn
                .query_row(
                    "SELECT channel FROM session_windows WHERE session_id = ?1",
                    [&row.session_id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            db.channels.insert(row.session_id.clone(), channel);
        }
    }
    let mut calls = Vec::new();
    let (mut read, mut failed) = (0u64, 0u64);
    let mut newest_ns = None;
    for row in rows.iter_mut() {
        read += 1;
        let event = event_text(row.json.take(), row.zstd.take(), row.utf8_bytes)
            .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()));
        match event {
            Ok(event) => {
                if let Some(mut call) = call_from_event(&event, &row.session_id, &db.agent, row.seq)
                {
                    call.channel = db.channels.get(&row.session_id).cloned().flatten();
                    let ended = event
                        .get("timestamp")
                        .and_then(Value::as_str)
                        .and_then(rfc3339_ns)
                        .or(call.time_ns);
                    newest_ns = newest_ns.max(ended);
                    calls.push(call);
                }
            }
            Err(_) => failed += 1,
        }
    }
    let last = rows.last().expect("not empty");
    let at_cursor = Some((last.session_id.clone(), last.seq, last.created_at));
    let rescan = db.rescan_until.is_some();
    if db.rescan_until.is_some_and(|until| last.rowid >= until) {
        db.rescan_until = None;
    }
    Ok(Outcome::Chunk {
        rescan,
        chunk: Chunk {
            batches: vec![Batch::LlmCalls(calls)],
            position: Position {
                kind: FollowKind::Transcript,
                key: key.clone(),
                path,
                offset: last.rowid,
                fingerprint: cursor_fingerprint(&at_cursor),
                read,
                failed,
            },
        },
        newest_ns,
        behind: newest_rowid.saturating_sub(last.rowid).max(0) as u64,
        full,
        at_cursor,
    })
}

#[cfg(test)]
#[path = "transcript_tests.rs"]
mod transcript_tests;
