//! `GET /v1/llm/summary`: calls, tokens, cost, errors and latency per group.
//!
//! Whole hours of the window are read from `llm_rollup` (whole days from
//! `llm_rollup_sessions` when grouped by session); the partial units at its
//! two ends from `llm_calls`. Both are summed by the same [`Sums`].
//!
//! **Sources.** OpenClaw reports each call twice when both its traces and
//! its metrics are exported: once as a usage span (`otlp_span`) and again
//! inside its usage metrics (`otlp_metric`). Unless `source` is given, the
//! summary leaves out `otlp_metric` rows in the hours (days, when grouped by
//! session) that hold `otlp_span` rows, and counts them elsewhere, so an
//! agent that exported only metrics for part of the window loses nothing; it
//! says so in `sources.skipped`. OpenClaw's own transcript
//! (`openclaw_transcript`) holds every call its agent made: in the hours
//! where it holds calls of a provider and model, the usage spans and
//! metrics and the native records of that provider and model are left out
//! (the same calls, exported or posted again); other models' are counted.
//! Grouped by session (days with no provider or model), spans and metrics
//! are left out in the transcript's days and native records are counted.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{llm_source, BadParameter, Params, ReportError, Window};
use crate::rollup::{sums_from_row, CallFacts, Level, Sums, FACT_COLUMNS, HOUR_NS, SUM_COLUMNS};
use crate::time::{day_label, hour_label, rfc3339_ms};

/// What a summary can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum GroupBy {
    /// The LLM provider.
    Provider,
    /// The model.
    Model,
    /// The UTC day.
    Day,
    /// The UTC hour.
    Hour,
    /// The agent's channel.
    Channel,
    /// The session.
    Session,
}

impl GroupBy {
    /// The name in `group_by` and in each group's `key`.
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn is_time(self) -> bool {
        matches!(self, GroupBy::Day | GroupBy::Hour)
    }
}

/// A checked summary request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryQuery {
    /// The window.
    pub window: Window,
    /// The grouping, in the order asked.
    pub group_by: Vec<GroupBy>,
    /// Only this source, when given.
    pub source: Option<String>,
    /// Groups answered at most.
    pub limit: usize,
}

/// Groups answered by default and at most.
const GROUPS_DEFAULT: usize = 100;
const GROUPS_MAX: usize = 1000;

impl SummaryQuery {
    /// Reads and checks the query string's pairs.
    pub fn parse(pairs: &[(String, String)], now_ns: i64) -> Result<Self, BadParameter> {
        let params = Params::new(pairs, &["since", "until", "group_by", "source", "limit"])?;
        let mut group_by = Vec::new();
        for name in params.get("group_by").unwrap_or_default().split(',') {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let Ok(g) = name.parse::<GroupBy>() else {
                return Err(BadParameter::new(
                    "group_by",
                    format!("{name:?} is not one of provider, model, day, hour, channel, session"),
                ));
            };
            if group_by.contains(&g) {
                return Err(BadParameter::new(
                    "group_by",
                    format!("{name:?} is given twice"),
                ));
            }
            group_by.push(g);
        }
        Ok(SummaryQuery {
            window: params.window(now_ns)?,
            group_by,
            source: llm_source(&params)?,
            limit: params.limit("limit", GROUPS_DEFAULT, GROUPS_MAX)?,
        })
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The window's start, RFC 3339.
    pub since: String,
    /// The window's end, RFC 3339.
    pub until: String,
    /// The grouping asked for.
    pub group_by: Vec<String>,
    /// Which sources were summed, and which left out and why.
    pub sources: Sources,
    /// Every group together.
    pub totals: Figures,
    /// The groups, at most `limit`.
    pub groups: Vec<Group>,
    /// Groups before the limit.
    pub groups_total: usize,
    /// Whether groups were left out by the limit.
    pub truncated: bool,
}

/// The sources of a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    /// Summed.
    pub used: Vec<String>,
    /// Not summed, with why.
    pub skipped: Vec<Skipped>,
}

/// A source left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The source.
    pub source: String,
    /// Its rows in the window.
    pub rows: i64,
    /// Why it was left out.
    pub reason: String,
}

/// One group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// One entry per `group_by` name; `null` when the rows have none.
    pub key: BTreeMap<String, Option<String>>,
    /// The group's figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// The figures of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Calls (rows of per-call sources).
    pub calls: i64,
    /// Calls whose status is a failure.
    pub errors: i64,
    /// `errors / calls`, 0 without calls.
    pub error_rate: f64,
    /// Tokens by kind.
    pub tokens: Tokens,
    /// Cost by origin.
    pub cost_usd: Cost,
    /// Latency percentiles.
    pub latency_ms: Latency,
}

/// Tokens by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Uncached input.
    pub input: i64,
    /// Output.
    pub output: i64,
    /// Read from the prompt cache.
    pub cache_read: i64,
    /// Written to the prompt cache.
    pub cache_write: i64,
    /// The four together.
    pub total: i64,
}

/// Cost by origin, USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// As the agent reported it.
    pub reported: f64,
    /// Estimated from tokens and the price table.
    pub estimated: f64,
    /// The two together.
    pub total: f64,
    /// Rows with neither.
    pub unpriced_calls: i64,
}

/// Latency percentiles, ms; `None` without latencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Rounds money to a billionth of a dollar, so float sums read cleanly.
fn money(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// Sums of one group, split by whether the rows are calls.
#[derive(Debug, Default)]
struct Acc {
    all: Sums,
    /// Rows and errors of per-call sources only.
    calls: i64,
    errors: i64,
}

impl Acc {
    fn add(&mut self, source: &str, sums: &Sums) {
        self.all.merge(sums, 1);
        if source == METRIC {
            // Intervals, not calls: their cost counts, their rows do not.
            self.all.unpriced -= sums.unpriced;
        } else {
            self.calls += sums.rows;
            self.errors += sums.errors;
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.all.merge(&other.all, 1);
        self.calls += other.calls;
        self.errors += other.errors;
    }

    fn figures(&self) -> Figures {
        let s = &self.all;
        let (reported, estimated) = (money(s.cost_reported), money(s.cost_estimated));
        Figures {
            calls: self.calls,
            errors: self.errors,
            error_rate: if self.calls > 0 {
                (self.errors as f64 / self.calls as f64 * 1e4).round() / 1e4
            } else {
                0.0
            },
            tokens: Tokens {
                input: s.input,
                output: s.output,
                cache_read: s.cache_read,
                cache_write: s.cache_write,
                total: s.input + s.output + s.cache_read + s.cache_write,
            },
            cost_usd: Cost {
                reported,
                estimated,
                total: money(s.cost_reported + s.cost_estimated),
                unpriced_calls: s.unpriced,
            },
            latency_ms: Latency {
                p50: s.latency.quantile(0.50),
                p95: s.latency.quantile(0.95),
                p99: s.latency.quantile(0.99),
            },
        }
    }
}

/// The identity of one rollup row or call, as the grouping sees it.
struct Identity<'a> {
    time_ns: i64,
    source: &'a str,
    provider: &'a str,
    model: &'a str,
    channel: &'a str,
    session: &'a str,
}

fn group_key(group_by: &[GroupBy], id: &Identity<'_>) -> Vec<Option<String>> {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    group_by
        .iter()
        .map(|g| match g {
            GroupBy::Provider => Some(id.provider.to_string()),
            GroupBy::Model => Some(id.model.to_string()),
            GroupBy::Day => Some(day_label(id.time_ns)),
            GroupBy::Hour => Some(hour_label(id.time_ns)),
            GroupBy::Channel => opt(id.channel),
            GroupBy::Session => opt(id.session),
        })
        .collect()
}

/// Groups a summary holds at most while reading, whatever `limit` says:
/// grouped by session over a long window, a busy agent has very many.
const GROUPS_HELD_MAX: usize = 20_000;

/// Everything read for the window, with the rows of sources left out
/// counted instead of summed.
#[derive(Default)]
struct Gathered {
    /// Per source, per group.
    by_source: HashMap<String, HashMap<Vec<Option<String>>, Acc>>,
    /// Rows summed, per source.
    rows: HashMap<String, i64>,
    /// Rows left out, per source, and why.
    left_out: HashMap<String, (i64, String)>,
    /// Only this source is summed, when asked.
    asked: Option<String>,
    /// The length of a unit: an hour, or a day when grouped by session.
    unit_ns: i64,
    /// The units, providers and models of calls read from OpenClaw's
    /// transcripts (units alone when grouped by session).
    transcript_models: HashSet<(i64, String, String)>,
    /// The rows of the sources that may repeat another's, per unit, source,
    /// provider, model and group: held until every unit's rows are seen.
    held: HashMap<Held, Sums>,
    /// Groups held, over all sources and the rows held back.
    groups: usize,
    /// Set once a group past [`GROUPS_HELD_MAX`] was met.
    overflow: bool,
}

/// A unit, source, provider, model and group of held rows.
type Held = (i64, &'static str, String, String, Vec<Option<String>>);

/// The sources, and which repeat which.
const TRANSCRIPT: &str = "openclaw_transcript";
const NATIVE: &str = "native";
const SPAN: &str = "otlp_span";
const METRIC: &str = "otlp_metric";

impl Gathered {
    fn add(&mut self, group_by: &[GroupBy], id: &Identity<'_>, sums: &Sums) {
        match &self.asked {
            Some(a) if a != id.source => {
                let why = format!("not asked for (source={a})");
                self.left_out
                    .entry(id.source.to_string())
                    .or_insert((0, why))
                    .0 += sums.rows;
            }
            Some(_) => self.sum(id.source, group_key(group_by, id), sums),
            None => {
                let unit = id.time_ns.div_euclid(self.unit_ns) * self.unit_ns;
                let (provider, model) = self.model_key(id);
                let source = match id.source {
                    TRANSCRIPT => {
                        self.transcript_models.insert((unit, provider, model));
                        self.sum(id.source, group_key(group_by, id), sums);
                        return;
                    }
                    NATIVE => NATIVE,
                    SPAN => SPAN,
                    METRIC => METRIC,
                    other => {
                        self.sum(other, group_key(group_by, id), sums);
                        return;
                    }
                };
                let key = (unit, source, provider, model, group_key(group_by, id));
                match self.held.get_mut(&key) {
                    Some(held) => held.merge(sums, 1),
                    None if self.groups >= GROUPS_HELD_MAX => self.overflow = true,
                    None => {
                        self.groups += 1;
                        self.held.insert(key, sums.clone());
                    }
                }
            }
        }
    }

    /// The provider and model a row is matched on: none when grouped by
    /// session (the session rollup keeps neither).
    fn model_key(&self, id: &Identity<'_>) -> (String, String) {
        if self.unit_ns == HOUR_NS {
            (id.provider.to_string(), id.model.to_string())
        } else {
            (String::new(), String::new())
        }
    }

    /// Adds `sums` to `source`'s group `key`.
    fn sum(&mut self, source: &str, key: Vec<Option<String>>, sums: &Sums) {
        *self.rows.entry(source.to_string()).or_default() += sums.rows;
        let groups = self.by_source.entry(source.to_string()).or_default();
        match groups.get_mut(&key) {
            Some(acc) => acc.add(source, sums),
            None if self.groups >= GROUPS_HELD_MAX => self.overflow = true,
            None => {
                self.groups += 1;
                groups.entry(key).or_default().add(source, sums);
            }
        }
    }

    /// Leaves `rows` of `source` out, for `why`.
    fn leave_out(&mut self, source: &str, rows: i64, why: impl FnOnce() -> String) {
        self.left_out
            .entry(source.to_string())
            .or_insert_with(|| (0, why()))
            .0 += rows;
    }

    /// Once everything is read, the held rows are summed, except where
    /// another source already counts the same calls: OpenClaw's transcript
    /// holds every call its agent made, so in its units the usage spans and
    /// metrics OpenClaw also exports, and native records of the same
    /// provider and model, repeat it; in units without it, usage metrics
    /// repeat usage spans.
    fn settle(&mut self) {
        let unit_name = if self.unit_ns == HOUR_NS {
            "hours"
        } else {
            "days"
        };
        let held = std::mem::take(&mut self.held);
        let span_units: HashSet<i64> = held
            .keys()
            .filter(|(_, source, ..)| *source == SPAN)
            .map(|(unit, ..)| *unit)
            .collect();
        let mut held: Vec<_> = held.into_iter().collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));
        let hourly = self.unit_ns == HOUR_NS;
        for ((unit, source, provider, model, key), sums) in held {
            // Grouped by session the units are days with no provider or
            // model, so the transcript's days are matched as a whole.
            let in_transcript = self.transcript_models.contains(&(unit, provider, model));
            match source {
                // Grouped by session a native call cannot be told from the
                // transcript's: it is counted.
                NATIVE if hourly && in_transcript => {
                    self.leave_out(NATIVE, sums.rows, || {
                        "native records repeat openclaw_transcript: in the hours where \
                         OpenClaw's transcript holds calls of the same provider and model, only \
                         the transcript is counted"
                            .to_string()
                    });
                }
                SPAN | METRIC if in_transcript => {
                    self.leave_out(source, sums.rows, || {
                        format!(
                            "{source} repeats openclaw_transcript: OpenClaw's transcript holds \
                             every call its agent made, so in the {unit_name} where it holds \
                             calls of the same provider and model only the transcript is counted"
                        )
                    });
                }
                METRIC if span_units.contains(&unit) => {
                    self.leave_out(METRIC, sums.rows, || {
                        format!(
                            "otlp_metric repeats the usage of otlp_span: OpenClaw exports each \
                             call both as a usage span and in its usage metrics, so in the \
                             {unit_name} with usage spans only the spans are counted"
                        )
                    });
                }
                _ => self.sum(source, key, &sums),
            }
        }
    }
}

/// Where a summary reads whole units of its window from.
fn plan(group_by: &[GroupBy]) -> Option<Level> {
    let session = group_by.contains(&GroupBy::Session);
    if !session {
        return Some(Level::Hourly);
    }
    // Sessions are kept per day, with no provider, model or channel.
    group_by
        .iter()
        .all(|g| matches!(g, GroupBy::Session | GroupBy::Day))
        .then_some(Level::Sessions)
}

/// Runs a summary. Whole hours (days, when grouped by session) come from a
/// rollup; the partial units at the ends from the calls themselves. Grouped
/// by session and anything but day, every call of the window is read.
pub fn summary(conn: &Connection, q: &SummaryQuery) -> Result<Summary, ReportError> {
    let Window { since_ns, until_ns } = q.window;
    let level = plan(&q.group_by);
    let unit = level.map_or(HOUR_NS, Level::unit_ns);
    let mut gathered = Gathered {
        asked: q.source.clone(),
        unit_ns: unit,
        ..Gathered::default()
    };
    let floor = |t: i64| t.div_euclid(unit) * unit;
    let first = if floor(since_ns) == since_ns {
        since_ns
    } else {
        floor(since_ns) + unit
    };
    let last = floor(until_ns);
    // The whole units come from the rollup, the ends from the calls; with no
    // rollup for the grouping, all from the calls.
    let (rolled, ends) = match level {
        Some(level) if first < last => (
            Some((level, first, last)),
            [(since_ns, first), (last, until_ns)],
        ),
        _ => (None, [(since_ns, until_ns), (until_ns, until_ns)]),
    };
    if let Some((level, from, to)) = rolled {
        rolled_up(conn, &q.group_by, level, from, to, &mut gathered)?;
    }
    for (from, to) in ends {
        raw(conn, &q.group_by, from, to, &mut gathered)?;
    }
    gathered.settle();

    if gathered.overflow {
        return Err(BadParameter::new(
            "group_by",
            format!(
                "the window holds more than {GROUPS_HELD_MAX} groups; group by fewer keys or \
                 narrow since and until"
            ),
        )
        .into());
    }
    let sources = sources(&gathered);
    let mut groups: HashMap<Vec<Option<String>>, Acc> = HashMap::new();
    for source in &sources.used {
        for (key, acc) in gathered.by_source.remove(source).unwrap_or_default() {
            groups.entry(key).or_default().merge(&acc);
        }
    }
    let mut totals = Acc::default();
    for acc in groups.values() {
        totals.merge(acc);
    }
    let mut groups: Vec<(Vec<Option<String>>, Figures)> = groups
        .into_iter()
        .map(|(k, acc)| (k, acc.figures()))
        .collect();
    let by_time = q.group_by.iter().any(|g| g.is_time());
    groups.sort_by(|(ka, fa), (kb, fb)| {
        let time_order = if by_time {
            let t = |k: &Vec<Option<String>>| -> Vec<Option<String>> {
                q.group_by
                    .iter()
                    .zip(k)
                    .filter(|(g, _)| g.is_time())
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            t(ka).cmp(&t(kb))
        } else {
            std::cmp::Ordering::Equal
        };
        time_order
            .then(fb.cost_usd.total.total_cmp(&fa.cost_usd.total))
            .then(fb.calls.cmp(&fa.calls))
            .then(ka.cmp(kb))
    });
    let groups_total = groups.len();
    groups.truncate(q.limit);
    Ok(Summary {
        since: rfc3339_ms(since_ns),
        until: rfc3339_ms(until_ns),
        group_by: q.group_by.iter().map(|g| g.name().to_string()).collect(),
        sources,
        totals: totals.figures(),
        truncated: groups.len() < groups_total,
        groups_total,
        groups: groups
            .into_iter()
            .map(|(key, figures)| Group {
                key: q
                    .group_by
                    .iter()
                    .map(|g| g.name().to_string())
                    .zip(key)
                    .collect(),
                figures,
            })
            .collect(),
    })
}

/// Adds the rollup rows of `level` for the units in `[from, to)`.
fn rolled_up(
    conn: &Connection,
    group_by: &[GroupBy],
    level: Level,
    from: i64,
    to: i64,
    gathered: &mut Gathered,
) -> Result<(), ReportError> {
    let columns = level.key_columns();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {}, {SUM_COLUMNS} FROM {} WHERE {} >= ?1 AND {} < ?2",
        columns.join(", "),
        level.table(),
        columns[0],
        columns[0]
    ))?;
    let mut rows = stmt.query([from, to])?;
    while let Some(row) = rows.next()? {
        let source: String = row.get(1)?;
        let (provider, model, channel, session): (String, String, String, String) = match level {
            Level::Hourly => (row.get(2)?, row.get(3)?, row.get(4)?, String::new()),
            Level::Sessions => (String::new(), String::new(), String::new(), row.get(2)?),
        };
        let id = Identity {
            time_ns: row.get(0)?,
            source: &source,
            provider: &provider,
            model: &model,
            channel: &channel,
            session: &session,
        };
        gathered.add(group_by, &id, &sums_from_row(row, columns.len())?);
    }
    Ok(())
}

/// Adds the calls of `[from, to)` one by one.
fn raw(
    conn: &Connection,
    group_by: &[GroupBy],
    from: i64,
    to: i64,
    gathered: &mut Gathered,
) -> Result<(), ReportError> {
    if from >= to {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FACT_COLUMNS} FROM llm_calls WHERE time_ns >= ?1 AND time_ns < ?2"
    ))?;
    let mut rows = stmt.query([from, to])?;
    while let Some(row) = rows.next()? {
        let call = CallFacts::from_row(row, 0)?;
        let mut sums = Sums::default();
        sums.add_call(&call, 1);
        let id = Identity {
            time_ns: call.time_ns,
            source: &call.source,
            provider: &call.provider,
            model: &call.model,
            channel: &call.channel,
            session: &call.session_id,
        };
        gathered.add(group_by, &id, &sums);
    }
    Ok(())
}

/// The sources summed and those left out, with why, in the order the
/// summary prefers them.
fn sources(gathered: &Gathered) -> Sources {
    let order = |s: &str| {
        super::LLM_SOURCES
            .iter()
            .position(|x| *x == s)
            .unwrap_or(usize::MAX)
    };
    let mut used: Vec<String> = gathered
        .rows
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, _)| s.clone())
        .collect();
    if let Some(a) = &gathered.asked {
        if !used.contains(a) {
            used.push(a.clone());
        }
    }
    used.sort_by_key(|s| (order(s), s.clone()));
    let mut skipped: Vec<Skipped> = gathered
        .left_out
        .iter()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(source, (rows, reason))| Skipped {
            source: source.clone(),
            rows: *rows,
            reason: reason.clone(),
        })
        .collect();
    skipped.sort_by_key(|s| (order(&s.source), s.source.clone()));
    Sources { used, skipped }
}
