//! The gateway log follower (run by a [`FollowActor`](crate::follow::FollowActor)): follows OpenClaw's gateway log (JSON lines in
//! `/tmp/openclaw/openclaw-YYYY-MM-DD.log`, kept by OpenClaw for 24 hours)
//! and keeps every line as an `events` row, `ERROR` and `FATAL` lines also
//! as `errors` rows.
//!
//! Files are found by glob patterns at every look, so the daily switch and a
//! directory that appears late are followed. A file is known by its device
//! and inode, so a size rotation (the active file renamed `.1`, `.1` to `.2`
//! …) keeps its position, and by a CRC of its first bytes, so a reused inode
//! or a file truncated and written again is read from its start. A file seen
//! for the first time is read from its beginning: OpenClaw deletes it after
//! a day, so what is there is all the owner still has. A partial last line
//! waits for its newline. Reading goes a bounded chunk at a time, each
//! chunk's rows committed with the new byte offset (see [`crate::follow`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::follow::{Chunk, Core, FollowKind, Follower, Position, Read, Saved};
use crate::records::{Batch, ErrorRecord, EventRecord, JsonObject, Source, Table};
use crate::stats::ActorName;
use crate::time::rfc3339_ns;

/// The most bytes read from a file in one chunk.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Bytes at a file's start its fingerprint covers.
const FINGERPRINT_BYTES: usize = 4096;

/// The event name of every log line.
pub const EVENT_NAME: &str = "openclaw.log";

/// One log line, read.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The `events` row.
    pub event: EventRecord,
    /// The `errors` row, for `ERROR` and `FATAL` lines.
    pub error: Option<ErrorRecord>,
    /// Whether the line was not a JSON object (kept as text).
    pub unparsed: bool,
}

/// The OTLP severity number of a tslog level name.
fn severity_number(level: &str) -> Option<i32> {
    Some(match level {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => return None,
    })
}

/// Reads one line of the gateway log (without its newline).
pub fn parse_line(line: &str) -> LogLine {
    let line = line.strip_suffix('\r').unwrap_or(line);
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => parse_object(fields),
        _ => LogLine {
            event: EventRecord {
                name: EVENT_NAME.to_string(),
                severity: "info".to_string(),
                body: Some(line.to_string()),
                attributes: Some(JsonObject::from_iter([(
                    "format".to_string(),
                    Value::from("text"),
                )])),
                ..EventRecord::default()
            },
            error: None,
            unparsed: true,
        },
    }
}

/// The subsystem a tslog logger name names: its names are JSON strings
/// like `{"subsystem":"gateway/channels/telegram"}`.
fn subsystem_of(name: &str) -> Option<String> {
    let parsed: Value = serde_json::from_str(name).ok()?;
    parsed.get("subsystem")?.as_str().map(str::to_string)
}

/// Whether a value is an error as OpenClaw's logger writes one.
fn is_error_object(v: &Value) -> bool {
    v.get("nativeError").is_some() || (v.get("name").is_some() && v.get("stack").is_some())
}

/// A stack as one text: tslog writes a list of frames.
fn stack_text(stack: &Value) -> Option<String> {
    match stack {
        Value::String(s) => Some(s.clone()),
        Value::Array(frames) => {
            let lines: Vec<String> = frames
                .iter()
                .map(|f| {
                    let get = |k: &str| f.get(k).map(plain).unwrap_or_default();
                    let function = get("functionName");
                    let place = format!(
                        "{}:{}:{}",
                        get("fileName"),
                        get("fileLine"),
                        get("fileColumn")
                    );
                    if function.is_empty() {
                        format!("    at {place}")
                    } else {
                        format!("    at {function} ({place})")
                    }
                })
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        }
        _ => None,
    }
}

/// A JSON value as text: strings as they are, the rest as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_object(mut fields: Map<String, Value>) -> LogLine {
    let meta = match fields.remove("_meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let level = meta
        .get("logLevelName")
        .and_then(Value::as_str)
        .unwrap_or("INFO")
        .to_ascii_uppercase();
    let logger = meta.get("name").and_then(Value::as_str).map(str::to_string);
    let subsystem = logger.as_deref().and_then(subsystem_of);
    let time_ns = fields
        .remove("time")
        .and_then(|t| t.as_str().and_then(rfc3339_ns))
        .or_else(|| {
            meta.get("date")
                .and_then(Value::as_str)
                .and_then(rfc3339_ns)
        });
    let take_str = |fields: &mut Map<String, Value>, key: &str| match fields.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let trace_id = take_str(&mut fields, "traceId");
    let span_id = take_str(&mut fields, "spanId");

    // The arguments of the call ("0", "1", …): the subsystem's name is not
    // worth keeping; an error object is looked at for the errors row.
    let error_object = fields
        .values()
        .find(|v| is_error_object(v))
        .cloned()
        .or_else(|| {
            is_error_object(&Value::Object(fields.clone())).then(|| Value::Object(fields.clone()))
        });
    if let Some(name) = &logger {
        fields.retain(|k, v| !(k.parse::<u32>().is_ok() && v.as_str() == Some(name.as_str())));
    }
    let message = match fields.remove("message") {
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
        None => None,
    }
    .or_else(|| {
        error_object
            .as_ref()
            .and_then(|e| e.get("message"))
            .map(plain)
    })
    .or_else(|| {
        fields
            .iter()
            .find(|(k, v)| k.parse::<u32>().is_ok() && v.is_string())
            .map(|(_, v)| plain(v))
    });

    // String arguments are in the message already (tslog joins them).
    if let Some(text) = &message {
        fields.retain(|k, v| {
            !(k.parse::<u32>().is_ok() && v.as_str().is_some_and(|a| text.contains(a)))
        });
    }
    let mut attributes = fields;
    attributes.insert("level".into(), Value::from(level.clone()));
    if let Some(s) = &subsystem {
        attributes.insert("subsystem".into(), Value::from(s.clone()));
    } else if let Some(name) = &logger {
        attributes.insert("logger".into(), Value::from(name.clone()));
    }
    if let Some(parents) = meta.get("parentNames") {
        attributes.insert("parent_names".into(), parents.clone());
    }
    if let Some(path) = meta.get("path") {
        attributes.insert("path".into(), path.clone());
    }
    let session_id = attributes
        .get("session_id")
        .and_then(Value::as_str)
        .map(str::to_string);

    let severity = level.to_ascii_lowercase();
    let error = matches!(level.as_str(), "ERROR" | "FATAL").then(|| {
        let error_type = error_object
            .as_ref()
            .and_then(|e| e.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| subsystem.clone())
            .unwrap_or_else(|| EVENT_NAME.to_string());
        let mut metadata = JsonObject::new();
        metadata.insert("source".into(), Value::from(EVENT_NAME));
        for (key, value) in [("trace_id", &trace_id), ("span_id", &span_id)] {
            if let Some(v) = value {
                metadata.insert(key.into(), Value::from(v.clone()));
            }
        }
        if let Some(s) = &subsystem {
            metadata.insert("subsystem".into(), Value::from(s.clone()));
        }
        ErrorRecord {
            time_ns,
            trace_id: None,
            session_id: session_id.clone(),
            error_type,
            message: message.clone().unwrap_or_default(),
            stack_trace: error_object
                .as_ref()
                .and_then(|e| e.get("stack"))
                .and_then(stack_text),
            severity: severity.clone(),
            metadata: Some(metadata),
            truncated: Vec::new(),
        }
    });
    LogLine {
        event: EventRecord {
            time_ns,
            name: EVENT_NAME.to_string(),
            severity,
            body: message,
            trace_id,
            span_id,
            severity_number: severity_number(&level),
            attributes: Some(attributes),
            origin: None,
        },
        error,
        unparsed: false,
    }
}

/// Where a followed file stands, in memory.
#[derive(Debug, Clone)]
struct Followed {
    /// `device:inode`: a path opened later must still lead here.
    key: String,
    /// The path it was last seen at.
    path: PathBuf,
    /// Bytes read (and committed).
    offset: u64,
    /// `len:crc32` of its first bytes, once it has any.
    fingerprint: Option<String>,
    /// Its size at the last look.
    size: u64,
    /// When it was last modified, for the order files are read in.
    mtime: i64,
    /// Whether the bytes at `offset` are the rest of a line longer than a
    /// chunk, already kept (cut) and to be passed over to its newline.
    skipping: bool,
}

/// `len:crc32` of the first `len` bytes of `file`, `len` at most
/// [`FINGERPRINT_BYTES`] and at most `size`.
fn fingerprint(file: &mut File, size: u64) -> std::io::Result<Option<String>> {
    let len = size.min(FINGERPRINT_BYTES as u64) as usize;
    if len == 0 {
        return Ok(None);
    }
    let mut head = vec![0; len];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    let mut crc = flate2::Crc::new();
    crc.update(&head);
    Ok(Some(format!("{len}:{:08x}", crc.sum())))
}

/// Whether `file` still starts as it did when `saved` was taken.
fn same_start(file: &mut File, size: u64, saved: &str) -> std::io::Result<bool> {
    let Some(len) = saved.split(':').next().and_then(|n| n.parse::<u64>().ok()) else {
        return Ok(false);
    };
    if size < len {
        return Ok(false);
    }
    Ok(fingerprint(file, len)?.as_deref() == Some(saved))
}

/// The files the patterns match now, by `device:inode`.
fn list_files(patterns: &[String]) -> (Vec<(String, PathBuf, std::fs::Metadata)>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for pattern in patterns {
        let paths = match glob::glob(pattern) {
            Ok(paths) => paths,
            Err(e) => {
                problems.push(format!("{pattern}: {e}"));
                continue;
            }
        };
        for entry in paths {
            match entry {
                Ok(path) => match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => {
                        let key = format!("{}:{}", meta.dev(), meta.ino());
                        if seen.insert(key.clone()) {
                            found.push((key, path, meta));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(format!("{}: {e}", path.display())),
                },
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    (found, problems)
}

/// What the gateway log follower knows of its files.
pub struct GatewayLog {
    /// Glob patterns of the files.
    patterns: Vec<String>,
    /// How many files the patterns matched at the last look, readable or not.
    matched: usize,
    /// Files by `device:inode`.
    files: BTreeMap<String, Followed>,
    /// Positions saved by earlier runs, not yet matched to a file.
    saved: HashMap<String, Saved>,
}

/// Why a log file cannot be read, in the daemon's log.
const CANNOT_READ: &str = "cannot read an OpenClaw gateway log file";

impl GatewayLog {
    /// A follower of the files `patterns` match.
    pub fn new(patterns: Vec<String>) -> Self {
        GatewayLog {
            patterns,
            matched: 0,
            files: BTreeMap::new(),
            saved: HashMap::new(),
        }
    }

    /// Finds the files the patterns match and what became of known ones.
    fn look(&mut self, core: &mut Core) {
        let (found, problems) = list_files(&self.patterns);
        for p in &problems {
            core.problem_once(CANNOT_READ, p);
        }
        let present: HashSet<String> = found.iter().map(|(key, ..)| key.clone()).collect();
        self.matched = present.len();
        for (key, path, meta) in found {
            let (size, mtime) = (meta.len(), meta.mtime());
            if let Some(f) = self.files.get_mut(&key) {
                f.path = path;
                f.size = size;
                f.mtime = mtime;
                continue;
            }
            // A file not followed in this run: go on from a saved position
            // if it is the same file, else from its start. One that cannot
            // be read now keeps its saved position for a later look.
            let (mut offset, mut fingerprint) = (0, None);
            if let Some(saved) = self.saved.remove(&key) {
                let same =
                    File::open(&path).and_then(|mut file| match saved.fingerprint.as_deref() {
                        Some(fp) => same_start(&mut file, size, fp),
                        None => Ok(saved.offset == 0),
                    });
                match same {
                    Ok(true) if saved.offset as u64 <= size => {
                        offset = saved.offset as u64;
                        fingerprint.clone_from(&saved.fingerprint);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let text = format!("{}: {e}", path.display());
                        core.sink.view.update(FollowKind::GatewayLog, |v| {
                            let s = v.sources.entry(key.clone()).or_default();
                            s.path = path.display().to_string();
                            s.problem = Some(text.clone());
                        });
                        core.problem_once(CANNOT_READ, &text);
                        self.saved.insert(key, saved);
                        continue;
                    }
                }
                core.sink.view.update(FollowKind::GatewayLog, |v| {
                    let s = v.sources.entry(key.clone()).or_default();
                    if s.rows_read == 0 {
                        s.rows_read = saved.read;
                        s.rows_failed = saved.failed;
                    }
                });
            }
            self.files.insert(
                key.clone(),
                Followed {
                    key,
                    path,
                    offset,
                    fingerprint,
                    size,
                    mtime,
                    skipping: false,
                },
            );
        }
        // Gone files (pruned by OpenClaw) are forgotten; their saved
        // positions stay, harmless, until a reused inode's start tells
        // them apart.
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|key| !present.contains(*key))
            .cloned()
            .collect();
        for key in &gone {
            self.files.remove(key);
        }
        core.sink.view.update(FollowKind::GatewayLog, |v| {
            for key in &gone {
                v.sources.remove(key);
            }
            v.problem = problems.first().cloned();
        });
    }
}

impl Follower for GatewayLog {
    const KIND: FollowKind = FollowKind::GatewayLog;
    const ACTOR: ActorName = ActorName::GatewayLog;
    const SOURCE: Source = Source::OpenClawLog;
    const WHAT: &'static str = "OpenClaw's gateway log";
    const STORED: Table = Table::Errors;
    /// Whether the file's next bytes are the rest of an overlong line.
    type Cursor = bool;

    fn watching(&self) -> Vec<String> {
        self.patterns.clone()
    }

    fn resume(&mut self, saved: BTreeMap<String, Saved>) {
        self.saved = saved.into_iter().collect();
    }

    /// Reads the next chunk: from the least recently modified file with
    /// unread bytes (older files first, so lines arrive in about their
    /// order).
    fn next(&mut self, core: &mut Core) -> Option<Read<bool>> {
        self.look(core);
        let mut order: Vec<(&String, &mut Followed)> = self.files.iter_mut().collect();
        order.sort_by_key(|(_, f)| f.mtime);
        for (key, f) in order {
            match read_chunk(f) {
                Ok(Some(LogChunk {
                    mut chunk,
                    newest_ns,
                    full,
                    skipping,
                })) => {
                    chunk.position.key.clone_from(key);
                    return Some(Read {
                        key: key.clone(),
                        behind: f.size.saturating_sub(chunk.position.offset as u64),
                        chunk,
                        newest_ns,
                        full,
                        cursor: skipping,
                    });
                }
                Ok(None) => core.sink.view.update(FollowKind::GatewayLog, |v| {
                    let s = v.sources.entry(key.clone()).or_default();
                    s.path = f.path.display().to_string();
                    s.position = f.offset as i64;
                    s.behind = f.size.saturating_sub(f.offset);
                    s.problem = None;
                }),
                Err(e) => {
                    let text = format!("{}: {e}", f.path.display());
                    core.sink.view.update(FollowKind::GatewayLog, |v| {
                        let s = v.sources.entry(key.clone()).or_default();
                        s.path = f.path.display().to_string();
                        s.problem = Some(text.clone());
                    });
                    core.problem_once(CANNOT_READ, &text);
                }
            }
        }
        None
    }

    fn committed(&mut self, key: &str, position: &Position, skipping: bool) {
        if let Some(f) = self.files.get_mut(key) {
            f.offset = position.offset as u64;
            f.fingerprint.clone_from(&position.fingerprint);
            f.skipping = skipping;
        }
    }

    fn found(&self) -> bool {
        self.matched > 0
    }

    fn reset(&mut self) {
        self.files.clear();
        self.saved.clear();
    }
}

/// Reads the next chunk of complete lines of `f`, or `None` when there is
/// none yet; with the newest line's time, whether the chunk stopped at
/// [`CHUNK_BYTES`], and whether the next chunk starts inside a line too
/// long for one. A file that no longer starts as it did, or is shorter
/// than what was read, is read again from its start.
fn read_chunk(f: &mut Followed) -> std::io::Result<Option<LogChunk>> {
    let mut file = File::open(&f.path)?;
    let meta = file.metadata()?;
    // Renamed away since the look (a size rotation), and another file took
    // the path: the next look sorts them out.
    if format!("{}:{}", meta.dev(), meta.ino()) != f.key {
        return Ok(None);
    }
    let size = meta.len();
    f.size = size;
    let restarted = match &f.fingerprint {
        Some(fp) => !same_start(&mut file, size, fp)?,
        None => false,
    } || size < f.offset;
    if restarted {
        f.offset = 0;
        f.fingerprint = None;
        f.skipping = false;
    }
    if size <= f.offset && !restarted {
        return Ok(None);
    }
    let want = (size - f.offset).min(CHUNK_BYTES as u64) as usize;
    let mut buf = vec![0; want];
    file.seek(SeekFrom::Start(f.offset))?;
    file.read_exact(&mut buf)?;
    let fingerprint = fingerprint(&mut file, size)?;
    let full = want == CHUNK_BYTES;
    // The rest of a line longer than a chunk is passed over to its newline.
    let mut start = 0;
    let mut skipping = f.skipping;
    if skipping {
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                start = i + 1;
                skipping = false;
            }
            None if full => start = want,
            None => return Ok(None),
        }
    }
    // Only whole lines; a line longer than a chunk is kept cut at the
    // chunk, once, and the rest of it passed over.
    let end = match buf[start..].iter().rposition(|&b| b == b'\n') {
        Some(i) => start + i + 1,
        None if full && start == 0 => {
            skipping = true;
            want
        }
        None if full || start > 0 || restarted => start,
        None => return Ok(None),
    };
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let (mut read, mut failed) = (0u64, 0u64);
    let mut newest_ns = None;
    for raw in buf[start..end].split(|&b| b == b'\n') {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = String::from_utf8_lossy(raw);
        let line = parse_line(&text);
        read += 1;
        failed += u64::from(line.unparsed);
        newest_ns = newest_ns.max(line.event.time_ns);
        events.push(line.event);
        errors.extend(line.error);
    }
    let offset = f.offset + end as u64;
    Ok(Some(LogChunk {
        chunk: Chunk {
            batches: vec![Batch::Events(events), Batch::Errors(errors)],
            position: Position {
                kind: FollowKind::GatewayLog,
                key: String::new(),
                path: f.path.display().to_string(),
                offset: offset as i64,
                fingerprint,
                read,
                failed,
            },
        },
        newest_ns,
        full,
        skipping,
    }))
}

/// What [`read_chunk`] read.
struct LogChunk {
    /// The lines' rows and the new position.
    chunk: Chunk,
    /// The newest line's own time.
    newest_ns: Option<i64>,
    /// Whether it stopped at [`CHUNK_BYTES`].
    full: bool,
    /// Whether the next bytes are the rest of a line too long for a chunk.
    skipping: bool,
}

/// The default patterns: OpenClaw's default log directory, and its
/// fallback when `/tmp/openclaw` is unsafe (`$TMPDIR/openclaw-<uid>`).
pub fn default_patterns(tmpdir: Option<&Path>, uid: u32) -> Vec<String> {
    let mut dirs = vec![PathBuf::from("/tmp/openclaw")];
    let tmp = tmpdir.unwrap_or(Path::new("/tmp"));
    dirs.push(tmp.join(format!("openclaw-{uid}")));
    dirs.iter().map(|d| dir_pattern(d)).collect()
}

/// The pattern of the log files OpenClaw writes in `dir`: dated files,
/// named profiles and their size archives.
pub fn dir_pattern(dir: &Path) -> String {
    format!(
        "{}/openclaw-*.log",
        glob::Pattern::escape(&dir.display().to_string())
    )
}

/// The patterns of one fixed log file and its size archives (`x.log` has
/// archives `x.1.log` … `x.5.log`).
pub fn file_patterns(file: &Path) -> Vec<String> {
    let escape = |p: &std::ffi::OsStr| glob::Pattern::escape(&p.to_string_lossy());
    let whole = escape(file.as_os_str());
    match (file.file_stem(), file.extension()) {
        (Some(stem), Some(ext)) => {
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => escape(d.as_os_str()),
                _ => ".".to_string(),
            };
            let archives = format!("{dir}/{}.[1-5].{}", escape(stem), escape(ext));
            vec![whole, archives]
        }
        _ => vec![whole],
    }
}

#[cfg(test)]
#[path = "gateway_log_tests.rs"]
mod gateway_log_tests;
