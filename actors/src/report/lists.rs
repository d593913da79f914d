//! The list endpoints (`/v1/llm/calls`, `/v1/errors`, `/v1/events`), one
//! trace (`/v1/traces/{id}`) and the host's series (`/v1/host`).
//!
//! Lists are newest first by the row's own time, then by id. A cursor holds
//! the last row answered and the highest id there was when the first page was
//! read, so rows stored after it never show up on later pages, and no row is
//! skipped or repeated however many arrive meanwhile.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, Row};
use serde::{Deserialize, Serialize};

use super::{llm_source, BadParameter, Params, ReportError, Window};
use crate::metrics::names;
use crate::time::{parse_duration_ns, rfc3339_ms};

/// Rows per page by default and at most.
const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 500;

/// Where a page ends: the last row's time and id, and the highest id of the
/// first page's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    time_ns: i64,
    id: i64,
    max_id: i64,
}

impl Cursor {
    fn encode(self) -> String {
        format!("{}.{}.{}", self.time_ns, self.id, self.max_id)
    }

    fn decode(text: &str) -> Result<Cursor, BadParameter> {
        let bad = || BadParameter::new("cursor", "is not a cursor this API gave out");
        let mut parts = text.split('.').map(|p| p.parse::<i64>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(time_ns)), Some(Ok(id)), Some(Ok(max_id)), None) => Ok(Cursor {
                time_ns,
                id,
                max_id,
            }),
            _ => Err(bad()),
        }
    }
}

/// The paging part of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The window.
    pub window: Window,
    /// Rows at most.
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl Page {
    fn parse(params: &Params<'_>, now_ns: i64) -> Result<Page, BadParameter> {
        Ok(Page {
            window: params.window(now_ns)?,
            limit: params.limit("limit", PAGE_DEFAULT, PAGE_MAX)?,
            cursor: params.get("cursor").map(Cursor::decode).transpose()?,
        })
    }
}

/// Runs a page query over `table` with extra `filters` (SQL on the table's
/// columns, `?` placeholders, and their values); `columns` are selected,
/// then `time_ns` and `id` last. Returns the rows and the next cursor.
fn page<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    filters: &[(&str, SqlValue)],
    page: &Page,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<(Vec<T>, Option<String>), ReportError> {
    let max_id = match page.cursor {
        Some(c) => c.max_id,
        None => conn.query_row(
            &format!("SELECT coalesce(max(id), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?,
    };
    let mut sql = format!(
        "SELECT {columns}, time_ns, id FROM {table} WHERE time_ns >= ? AND time_ns < ? AND id <= ?"
    );
    let mut values: Vec<SqlValue> = vec![
        page.window.since_ns.into(),
        page.window.until_ns.into(),
        max_id.into(),
    ];
    if let Some(c) = page.cursor {
        sql.push_str(" AND (time_ns < ? OR (time_ns = ? AND id < ?))");
        values.extend([c.time_ns.into(), c.time_ns.into(), c.id.into()]);
    }
    for (clause, value) in filters {
        sql.push_str(" AND ");
        sql.push_str(clause);
        values.push(value.clone());
    }
    sql.push_str(" ORDER BY time_ns DESC, id DESC LIMIT ?");
    values.push(((page.limit + 1) as i64).into());
    let n = columns.split(',').count();
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(values))?;
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if out.len() == page.limit {
            more = true;
            break;
        }
        out.push(read(row)?);
        last = Some((row.get::<_, i64>(n)?, row.get::<_, i64>(n + 1)?));
    }
    let next = more.then_some(last).flatten().map(|(time_ns, id)| {
        Cursor {
            time_ns,
            id,
            max_id,
        }
        .encode()
    });
    Ok((out, next))
}

/// Reads a JSON text column as JSON (text that is not JSON stays text).
fn json_column(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    let text: Option<String> = row.get(i)?;
    Ok(text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))))
}

/// Token counts of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTokens {
    /// Uncached input.
    pub input: Option<i64>,
    /// Output.
    pub output: Option<i64>,
    /// Read from the prompt cache.
    pub cache_read: Option<i64>,
    /// Written to the prompt cache.
    pub cache_write: Option<i64>,
    /// As sent, or the parts added up.
    pub total: Option<i64>,
}

/// One LLM call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRow {
    /// Row id.
    pub id: i64,
    /// When, RFC 3339.
    pub time: String,
    /// `native`, `otlp_span` or `otlp_metric`.
    pub source: String,
    /// Trace id.
    pub trace_id: String,
    /// Span id, for span-derived rows.
    pub span_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Channel.
    pub channel: Option<String>,
    /// `ok`, `error`, ...
    pub status: String,
    /// The kind of failure.
    pub error_type: Option<String>,
    /// Wall time, ms.
    pub latency_ms: Option<f64>,
    /// Tokens.
    pub tokens: CallTokens,
    /// Cost, USD.
    pub cost_usd: Option<f64>,
    /// `reported`, `estimated` or `unknown`.
    pub cost_source: String,
    /// The prompt, with `include_text=true`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input_text: Option<String>,
    /// The completion, with `include_text=true`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_text: Option<String>,
}

const CALL_COLUMNS: &str = "id, time_ns, source, trace_id, span_id, session_id, provider, model,
    channel, status, error_type, latency_ms, prompt_tokens, completion_tokens, cache_read_tokens,
    cache_write_tokens, total_tokens, cost_usd, cost_source";

fn call_row(row: &Row<'_>, with_text: bool) -> rusqlite::Result<CallRow> {
    Ok(CallRow {
        id: row.get(0)?,
        time: rfc3339_ms(row.get(1)?),
        source: row.get(2)?,
        trace_id: row.get(3)?,
        span_id: row.get(4)?,
        session_id: row.get(5)?,
        provider: row.get(6)?,
        model: row.get(7)?,
        channel: row.get(8)?,
        status: row.get(9)?,
        error_type: row.get(10)?,
        latency_ms: row.get(11)?,
        tokens: CallTokens {
            input: row.get(12)?,
            output: row.get(13)?,
            cache_read: row.get(14)?,
            cache_write: row.get(15)?,
            total: row.get(16)?,
        },
        cost_usd: row.get(17)?,
        cost_source: row.get(18)?,
        input_text: if with_text { row.get(19)? } else { None },
        output_text: if with_text { row.get(20)? } else { None },
    })
}

/// `/v1/llm/calls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calls {
    /// Newest first.
    pub calls: Vec<CallRow>,
    /// The next page's cursor; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Lists LLM calls.
pub fn calls(
    conn: &Connection,
    pairs: &[(String, String)],
    now_ns: i64,
) -> Result<Calls, ReportError> {
    let params = Params::new(
        pairs,
        &[
            "since",
            "until",
            "model",
            "provider",
            "status",
            "session",
            "source",
            "limit",
            "cursor",
            "include_text",
        ],
    )?;
    let paging = Page::parse(&params, now_ns)?;
    let with_text = params.flag("include_text")?;
    let mut filters: Vec<(&str, SqlValue)> = Vec::new();
    for (name, clause) in [
        ("model", "model = ?"),
        ("provider", "provider = ?"),
        ("status", "status = ?"),
        ("session", "session_id = ?"),
    ] {
        if let Some(v) = params.text(name)? {
            filters.push((clause, v.into()));
        }
    }
    if let Some(s) = llm_source(&params)? {
        filters.push(("source = ?", s.into()));
    }
    let columns = if with_text {
        format!("{CALL_COLUMNS}, input_text, output_text")
    } else {
        CALL_COLUMNS.to_string()
    };
    let (calls, next_cursor) = page(conn, "llm_calls", &columns, &filters, &paging, |r| {
        call_row(r, with_text)
    })?;
    Ok(Calls { calls, next_cursor })
}

/// One error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRow {
    /// Row id.
    pub id: i64,
    /// When, RFC 3339.
    pub time: String,
    /// Where it came from.
    pub source: String,
    /// Trace id, when known.
    pub trace_id: Option<String>,
    /// Session, when known.
    pub session_id: Option<String>,
    /// The kind of error.
    pub error_type: String,
    /// What happened.
    pub message: String,
    /// Stack trace.
    pub stack_trace: Option<String>,
    /// Severity.
    pub severity: String,
}

const ERROR_COLUMNS: &str =
    "id, time_ns, source, trace_id, session_id, error_type, message, stack_trace, severity";

fn error_row(row: &Row<'_>) -> rusqlite::Result<ErrorRow> {
    Ok(ErrorRow {
        id: row.get(0)?,
        time: rfc3339_ms(row.get(1)?),
        source: row.get(2)?,
        trace_id: row.get(3)?,
        session_id: row.get(4)?,
        error_type: row.get(5)?,
        message: row.get(6)?,
        stack_trace: row.get(7)?,
        severity: row.get(8)?,
    })
}

/// `/v1/errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// Newest first.
    pub errors: Vec<ErrorRow>,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
}

/// Lists errors.
pub fn errors(
    conn: &Connection,
    pairs: &[(String, String)],
    now_ns: i64,
) -> Result<Errors, ReportError> {
    let params = Params::new(pairs, &["since", "until", "limit", "cursor"])?;
    let paging = Page::parse(&params, now_ns)?;
    let (errors, next_cursor) = page(conn, "errors", ERROR_COLUMNS, &[], &paging, error_row)?;
    Ok(Errors {
        errors,
        next_cursor,
    })
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// Row id.
    pub id: i64,
    /// When, RFC 3339.
    pub time: String,
    /// Where it came from.
    pub source: String,
    /// The event's name.
    pub name: String,
    /// Severity.
    pub severity: String,
    /// Body.
    pub body: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Span id.
    pub span_id: Option<String>,
    /// Attributes, as JSON.
    pub attributes: Option<serde_json::Value>,
}

/// `/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Events {
    /// Newest first.
    pub events: Vec<EventRow>,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
}

/// Lists events.
pub fn events(
    conn: &Connection,
    pairs: &[(String, String)],
    now_ns: i64,
) -> Result<Events, ReportError> {
    let params = Params::new(pairs, &["name", "since", "until", "limit", "cursor"])?;
    let paging = Page::parse(&params, now_ns)?;
    let mut filters: Vec<(&str, SqlValue)> = Vec::new();
    if let Some(name) = params.text("name")? {
        filters.push(("name = ?", name.into()));
    }
    let (events, next_cursor) = page(
        conn,
        "events",
        "id, time_ns, source, name, severity, body, trace_id, span_id, attributes",
        &filters,
        &paging,
        |r| {
            Ok(EventRow {
                id: r.get(0)?,
                time: rfc3339_ms(r.get(1)?),
                source: r.get(2)?,
                name: r.get(3)?,
                severity: r.get(4)?,
                body: r.get(5)?,
                trace_id: r.get(6)?,
                span_id: r.get(7)?,
                attributes: json_column(r, 8)?,
            })
        },
    )?;
    Ok(Events {
        events,
        next_cursor,
    })
}

/// Spans of one trace answered at most.
const TRACE_SPANS_MAX: usize = 2000;
/// How far before and after a trace's spans and errors its LLM calls are
/// looked for (a call's time is its start; an agent's clock may lag).
const TRACE_SLACK_NS: i64 = 3_600_000_000_000;

/// Levels of the span tree at most.
const TREE_DEPTH_MAX: usize = 32;
/// LLM calls and errors of one trace answered at most.
const TRACE_ROWS_MAX: usize = 500;

/// One span with its children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanNode {
    /// Span id.
    pub span_id: String,
    /// Parent span id.
    pub parent_span_id: Option<String>,
    /// Name.
    pub name: String,
    /// OTLP kind number.
    pub kind: i64,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
    /// End minus start, ms.
    pub duration_ms: f64,
    /// OTLP status code (2 = error).
    pub status_code: i64,
    /// Status message.
    pub status_message: Option<String>,
    /// `service.name`.
    pub service_name: Option<String>,
    /// Attributes, as JSON.
    pub attributes: Option<serde_json::Value>,
    /// Child spans, by start time.
    pub children: Vec<SpanNode>,
}

/// `/v1/traces/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The trace id.
    pub trace_id: String,
    /// Root spans with their children.
    pub spans: Vec<SpanNode>,
    /// Spans held for the trace (the tree shows at most 2,000).
    pub span_count: usize,
    /// The trace's LLM calls, by time.
    pub llm_calls: Vec<CallRow>,
    /// The trace's errors, by time.
    pub errors: Vec<ErrorRow>,
}

/// The ids of the spans of trace `?1`: each `span_traces` key names the
/// span ids of one stored batch that hold the trace's spans among others'.
const TRACE_SPAN_IDS: &str = "SELECT s.id FROM span_traces k
    JOIN spans s ON s.id BETWEEN k.first_id AND k.last_id
    WHERE k.trace_id = ?1 AND s.trace_id = ?1";

/// Reads one trace: OTLP's 32 hex digits in any case, or a native trace id
/// as the agent sent it.
pub fn trace(conn: &Connection, trace_id: &str) -> Result<Trace, ReportError> {
    // OTLP ids are stored as lowercase hex; native ones as the agent sent
    // them (a UUID, or any text): both spellings are looked for.
    let given = trace_id.trim();
    if given.is_empty() || given.len() > 128 || !given.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BadParameter::new(
            "trace_id",
            "must be 1 to 128 visible ASCII characters (32 hex digits for OTLP, or a native trace id)",
        )
        .into());
    }
    let id = given.to_ascii_lowercase();
    let mut flat: Vec<SpanNode> = Vec::new();
    let (span_count, spans_first, spans_last) = conn
        .prepare_cached(&format!(
            "SELECT count(*), min(start_ns), max(end_ns) FROM spans WHERE id IN ({TRACE_SPAN_IDS})"
        ))?
        .query_row([&id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT span_id, parent_span_id, name, kind, start_ns, end_ns, status_code,
                status_message, service_name, attributes
             FROM spans WHERE id IN ({TRACE_SPAN_IDS}) ORDER BY start_ns, id LIMIT ?2"
        ))?;
        let mut rows = stmt.query(rusqlite::params![id, TRACE_SPANS_MAX as i64])?;
        while let Some(r) = rows.next()? {
            let (start, end): (i64, i64) = (r.get(4)?, r.get(5)?);
            flat.push(SpanNode {
                span_id: r.get(0)?,
                parent_span_id: r.get::<_, Option<String>>(1)?.filter(|p| !p.is_empty()),
                name: r.get(2)?,
                kind: r.get(3)?,
                start: rfc3339_ms(start),
                end: rfc3339_ms(end),
                duration_ms: (end - start).max(0) as f64 / 1e6,
                status_code: r.get(6)?,
                status_message: r.get(7)?,
                service_name: r.get(8)?,
                attributes: json_column(r, 9)?,
                children: Vec::new(),
            });
        }
    }
    let errors = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ERROR_COLUMNS} FROM errors WHERE trace_id IN (?1, ?3)
             ORDER BY time_ns, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            rusqlite::params![id, TRACE_ROWS_MAX as i64, given],
            error_row,
        )?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    // `llm_calls` has no index on trace ids (it would halve ingest): its
    // rows are looked for by time, around the trace's spans and errors, and
    // only when the trace has neither, through the whole table.
    let (errors_first, errors_last) = conn.query_row(
        "SELECT min(time_ns), max(time_ns) FROM errors WHERE trace_id IN (?1, ?2)",
        [&id, given],
        |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
    )?;
    let first = spans_first.into_iter().chain(errors_first).min();
    let last = spans_last.into_iter().chain(errors_last).max();
    let (from, to) = match (first, last) {
        (Some(a), Some(b)) => (
            a.saturating_sub(TRACE_SLACK_NS),
            b.saturating_add(TRACE_SLACK_NS),
        ),
        _ => (i64::MIN, i64::MAX),
    };
    let llm_calls = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CALL_COLUMNS} FROM llm_calls
             WHERE time_ns >= ?3 AND time_ns <= ?4 AND trace_id IN (?1, ?5)
             ORDER BY time_ns, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            rusqlite::params![id, TRACE_ROWS_MAX as i64, from, to, given],
            |r| call_row(r, false),
        )?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    if flat.is_empty() && llm_calls.is_empty() && errors.is_empty() {
        return Err(ReportError::NotFound(format!(
            "trace {id}: nothing of it is held"
        )));
    }
    Ok(Trace {
        trace_id: id,
        spans: tree(flat),
        span_count: span_count as usize,
        llm_calls,
        errors,
    })
}

/// Hangs each span under its parent; spans whose parent is not held are
/// roots. Order within a level is by start time (the input's order).
fn tree(flat: Vec<SpanNode>) -> Vec<SpanNode> {
    let index: HashMap<String, usize> = flat
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.clone(), i))
        .collect();
    let parent: Vec<Option<usize>> = flat
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parent_span_id
                .as_ref()
                .and_then(|p| index.get(p).copied())
                .filter(|p| *p != i)
        })
        .collect();
    // A parent chain that loops (a hostile exporter) makes its spans roots.
    let in_cycle = |start: usize| {
        let mut at = start;
        for _ in 0..flat.len() {
            match parent[at] {
                Some(p) if p == start => return true,
                Some(p) => at = p,
                None => return false,
            }
        }
        true
    };
    let mut parent: Vec<Option<usize>> = (0..flat.len())
        .map(|i| parent[i].filter(|_| !in_cycle(i)))
        .collect();
    // Past TREE_DEPTH_MAX levels a span starts a new root, so the answer
    // stays within what JSON readers nest (serde's limit is 128).
    let mut depth: Vec<Option<usize>> = vec![None; flat.len()];
    for i in 0..flat.len() {
        let mut chain = vec![i];
        while let Some(p) = chain.last().and_then(|n| parent[*n]) {
            if depth[p].is_some() {
                break;
            }
            chain.push(p);
        }
        for n in chain.into_iter().rev() {
            let d = parent[n].and_then(|p| depth[p]).map_or(0, |d| d + 1);
            if d >= TREE_DEPTH_MAX {
                parent[n] = None;
                depth[n] = Some(0);
            } else {
                depth[n] = Some(d);
            }
        }
    }
    // Deepest first, so each span's children are complete before it is hung
    // under its own parent; no recursion, so a deep chain cannot overflow
    // the stack. Siblings keep the input's order (by start time).
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(depth[*i]));
    let mut nodes: Vec<Option<SpanNode>> = flat.into_iter().map(Some).collect();
    let mut children: Vec<Vec<(usize, SpanNode)>> = vec![Vec::new(); nodes.len()];
    let mut roots = Vec::new();
    for i in order {
        let Some(mut node) = nodes[i].take() else {
            continue;
        };
        let mut mine = std::mem::take(&mut children[i]);
        mine.sort_by_key(|(j, _)| *j);
        node.children = mine.into_iter().map(|(_, c)| c).collect();
        match parent[i] {
            Some(p) => children[p].push((i, node)),
            None => roots.push((i, node)),
        }
    }
    roots.sort_by_key(|(j, _)| *j);
    roots.into_iter().map(|(_, r)| r).collect()
}

/// Default steps, in seconds: round ones.
const NICE_STEPS_S: [i64; 18] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
];

/// Points per host series at most.
const HOST_POINTS_MAX: i64 = 300;

/// `/v1/host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// The window's start.
    pub since: String,
    /// The window's end.
    pub until: String,
    /// Seconds per point.
    pub step_seconds: f64,
    /// The database's volume, as sampled.
    pub mountpoint: String,
    /// Series by name: `[time, mean]` pairs.
    pub series: std::collections::BTreeMap<String, Vec<(String, f64)>>,
}

/// A series' answer name, metric, and required attribute.
type HostSeries = (&'static str, &'static str, Option<(&'static str, String)>);

/// The series `/v1/host` answers: its name, the metric, and the attribute
/// the point must have (`None`: no attributes at all).
fn host_series(mountpoint: &str) -> [HostSeries; 5] {
    [
        ("cpu_utilization", names::SYSTEM_CPU_UTILIZATION, None),
        (
            "memory_utilization",
            names::SYSTEM_MEMORY_UTILIZATION,
            Some(("state", "used".into())),
        ),
        (
            "disk_utilization",
            names::SYSTEM_FILESYSTEM_UTILIZATION,
            Some(("mountpoint", mountpoint.into())),
        ),
        (
            "agent_cpu_utilization",
            names::PROCESS_CPU_UTILIZATION,
            Some(("process", "agent".into())),
        ),
        (
            "agent_rss_bytes",
            names::PROCESS_MEMORY_USAGE,
            Some(("process", "agent".into())),
        ),
    ]
}

/// Reads the host's series, downsampled to `step` (means per step; steps
/// are whole multiples of `step` since the epoch, so they stay put from one
/// refresh to the next).
/// `min_step_ns` is the sampling interval: no step is finer.
pub fn host(
    conn: &Connection,
    pairs: &[(String, String)],
    now_ns: i64,
    mountpoint: &str,
    min_step_ns: i64,
) -> Result<Host, ReportError> {
    let params = Params::new(pairs, &["since", "until", "step"])?;
    let window = params.window(now_ns)?;
    let span = window.until_ns - window.since_ns;
    let fit = (span + HOST_POINTS_MAX - 1) / HOST_POINTS_MAX;
    let step = match params.get("step") {
        Some(v) => {
            let asked = parse_duration_ns(v).map_err(|m| BadParameter::new("step", m))?;
            if asked < fit {
                return Err(BadParameter::new(
                    "step",
                    format!(
                        "{v:?} gives more than {HOST_POINTS_MAX} points over the window; use at least {}s",
                        (fit + 999_999_999) / 1_000_000_000
                    ),
                )
                .into());
            }
            asked.max(min_step_ns)
        }
        // The first round step that fits, so points fall on round times.
        None => NICE_STEPS_S
            .iter()
            .map(|s| s * 1_000_000_000)
            .find(|s| *s >= fit.max(min_step_ns))
            .unwrap_or_else(|| fit.max(min_step_ns)),
    };
    let mut series = std::collections::BTreeMap::new();
    for (name, metric, attr) in host_series(mountpoint) {
        let (clause, value) = match &attr {
            None => ("attributes IS NULL".to_string(), None),
            Some((k, v)) => (
                format!("json_extract(attributes, '$.\"{k}\"') = ?4"),
                Some(v.clone()),
            ),
        };
        let sql = format!(
            "SELECT time_ns / ?5 AS b, avg(value) FROM metric_points
             WHERE name = ?1 AND time_ns >= ?2 AND time_ns < ?3 AND source = 'host'
               AND value IS NOT NULL AND {clause}
             GROUP BY b ORDER BY b"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let map = |r: &Row<'_>| -> rusqlite::Result<(String, f64)> {
            let b: i64 = r.get(0)?;
            Ok((rfc3339_ms(b * step), r.get(1)?))
        };
        let points = match value {
            None => stmt
                .query_map(
                    rusqlite::params![metric, window.since_ns, window.until_ns, "", step],
                    map,
                )?
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => stmt
                .query_map(
                    rusqlite::params![metric, window.since_ns, window.until_ns, v, step],
                    map,
                )?
                .collect::<Result<Vec<_>, _>>()?,
        };
        series.insert(name.to_string(), points);
    }
    Ok(Host {
        since: rfc3339_ms(window.since_ns),
        until: rfc3339_ms(window.until_ns),
        step_seconds: step as f64 / 1e9,
        mountpoint: mountpoint.to_string(),
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span with every field empty.
    fn blank() -> SpanNode {
        SpanNode {
            span_id: String::new(),
            parent_span_id: None,
            name: String::new(),
            kind: 0,
            start: String::new(),
            end: String::new(),
            duration_ms: 0.0,
            status_code: 0,
            status_message: None,
            service_name: None,
            attributes: None,
            children: Vec::new(),
        }
    }

    fn node(id: &str, parent: Option<&str>) -> SpanNode {
        SpanNode {
            span_id: id.into(),
            parent_span_id: parent.map(str::to_string),
            ..blank()
        }
    }

    #[test]
    fn spans_hang_under_their_parents_and_loops_become_roots() {
        let t = tree(vec![
            node("a", None),
            node("b", Some("a")),
            node("c", Some("b")),
            node("d", Some("missing")),
            node("x", Some("y")),
            node("y", Some("x")),
        ]);
        let names: Vec<&str> = t.iter().map(|n| n.span_id.as_str()).collect();
        assert_eq!(names, ["a", "d", "x", "y"]);
        assert_eq!(t[0].children[0].span_id, "b");
        assert_eq!(t[0].children[0].children[0].span_id, "c");
    }

    #[test]
    fn a_deep_chain_does_not_overflow() {
        let mut flat = vec![node("0", None)];
        for i in 1..2000 {
            flat.push(node(&i.to_string(), Some(&(i - 1).to_string())));
        }
        let t = tree(flat);
        assert_eq!(
            t.len(),
            2000usize.div_ceil(TREE_DEPTH_MAX),
            "cut into roots"
        );
        let mut depth = 0;
        let mut at = &t[0];
        while let Some(c) = at.children.first() {
            depth += 1;
            at = c;
        }
        assert_eq!(depth, TREE_DEPTH_MAX - 1);
        let json = serde_json::to_string(&t).expect("serializes");
        let back: Vec<SpanNode> =
            serde_json::from_str(&json).expect("reads back within serde's nesting limit");
        assert_eq!(back.len(), t.len());
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = Cursor {
            time_ns: 5,
            id: 7,
            max_id: 9,
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert!(Cursor::decode("5.7").is_err());
        assert!(Cursor::decode("a.b.c").is_err());
        assert!(Cursor::decode("1.2.3.4").is_err());
    }
}
