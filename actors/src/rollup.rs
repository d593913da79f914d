//! The rollups: the LLM calls summed per hour (`llm_rollup`, by source,
//! provider, model and channel) and per day (`llm_rollup_sessions`, by
//! source and session), so the owner's summary reads a few thousand rows
//! instead of every call.
//!
//! A rollup row sums rows, errors, the four token counts, reported and
//! estimated cost, calls with no cost at all, and a latency histogram. The
//! store keeps both equal to what `llm_calls` holds: each group commit adds
//! its calls in the same transaction, each delete takes its calls away, and
//! a change of prices adjusts them a step at a time ([`reprice_step`]). So a
//! summary over whole hours (days) is exact without reading `llm_calls`; the
//! partial units at the ends of a window are read from `llm_calls` itself.
//!
//! Latency percentiles come from the histogram: log-scale buckets 5% wide,
//! answered at the bucket's geometric middle, so within 2.5% of the exact
//! value from 1 ms up (all below 1 ms is one bucket, answered as 0.5 ms). The buckets are ours rather than a sketch crate's because a rollup
//! row must also be subtracted from when rotation deletes calls.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use rusqlite::{params, Connection, OptionalExtension, Row};

/// One hour, in ns.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// The start of the UTC hour holding `t`.
pub fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR_NS) * HOUR_NS
}

/// A status that is not a failure.
pub fn is_ok_status(status: &str) -> bool {
    matches!(status, "ok" | "success" | "OK" | "Ok")
}

/// Growth from one bucket to the next.
const BUCKET_GROWTH: f64 = 1.05;
/// Buckets above 1 ms; past the last (about 41 hours) all go in the last.
const MAX_BUCKET: u16 = 400;

/// The bucket of a latency: 0 below 1 ms, then one per 5%.
///
/// The logarithms and powers here are the `libm` crate's, not `f64::ln`
/// and `f64::powf`, which call the system's libm: these, `table::money` and
/// bytesize's `Display` (built without `std` since) were all the daemon took
/// from it, and without them the shared library is not loaded at all (its pages were 330 kB of the idle RSS, resident
/// from the relocations the loader runs in it).
fn bucket_of(ms: f64) -> u16 {
    if !ms.is_finite() || ms < 1.0 {
        return 0;
    }
    let b = 1.0 + (libm::log(ms) / libm::log(BUCKET_GROWTH)).floor();
    (b as u16).min(MAX_BUCKET)
}

/// The value a bucket answers: its geometric middle (0.5 ms for bucket 0).
fn bucket_value(bucket: u16) -> f64 {
    if bucket == 0 {
        return 0.5;
    }
    libm::pow(BUCKET_GROWTH, f64::from(bucket) - 0.5)
}

/// Counts of latencies per bucket, sparse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram(BTreeMap<u16, i64>);

impl Histogram {
    /// Adds `n` (negative to take away) latencies of `ms`.
    pub fn add(&mut self, ms: f64, n: i64) {
        self.add_bucket(bucket_of(ms), n);
    }

    /// Counts may go below zero: a delta takes latencies away before it is
    /// applied to the stored counts. Only a count back at zero is dropped.
    fn add_bucket(&mut self, bucket: u16, n: i64) {
        let count = self.0.entry(bucket).or_insert(0);
        *count += n;
        if *count == 0 {
            self.0.remove(&bucket);
        }
    }

    /// Drops buckets below zero: what is stored holds only counts (a row
    /// taken away that was never counted, such as a call stored before the
    /// rollups had latencies, cannot make a count negative).
    fn settle(&mut self) {
        self.0.retain(|_, n| *n > 0);
    }

    /// Adds (or, with `sign` -1, takes away) every count of `other`.
    pub fn merge(&mut self, other: &Histogram, sign: i64) {
        for (b, n) in &other.0 {
            self.add_bucket(*b, n * sign);
        }
    }

    /// Latencies counted.
    pub fn count(&self) -> i64 {
        self.0.values().filter(|n| **n > 0).sum()
    }

    /// The `q` quantile (0 to 1), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        // The rank of the quantile, 1-based, as "nearest rank" does.
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for (b, n) in self.0.iter().filter(|(_, n)| **n > 0) {
            seen += n;
            if seen >= rank {
                return Some((bucket_value(*b) * 100.0).round() / 100.0);
            }
        }
        None
    }

    /// The stored form: (bucket u16, count u32) pairs, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 6);
        for (b, n) in self.0.iter().filter(|(_, n)| **n > 0) {
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&(u32::try_from(*n).unwrap_or(u32::MAX)).to_le_bytes());
        }
        out
    }

    /// Reads the stored form; a short tail is ignored.
    pub fn decode(bytes: &[u8]) -> Histogram {
        let mut h = Histogram::default();
        for pair in bytes.chunks_exact(6) {
            let b = u16::from_le_bytes([pair[0], pair[1]]);
            let n = u32::from_le_bytes([pair[2], pair[3], pair[4], pair[5]]);
            h.add_bucket(b, i64::from(n));
        }
        h
    }
}

/// The two rollups: the calls per hour by provider, model and channel, and
/// per day by session (sessions are many: kept apart, so the hourly rollup
/// stays small whatever their number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// `llm_rollup`: hour, source, provider, model, channel.
    Hourly,
    /// `llm_rollup_sessions`: day, source, session.
    Sessions,
}

impl Level {
    /// The table.
    pub fn table(self) -> &'static str {
        match self {
            Level::Hourly => "llm_rollup",
            Level::Sessions => "llm_rollup_sessions",
        }
    }

    /// The time a row covers, ns.
    pub fn unit_ns(self) -> i64 {
        match self {
            Level::Hourly => HOUR_NS,
            Level::Sessions => crate::time::DAY_NS,
        }
    }

    /// The key's columns: the start of the unit, the source, then the rest.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            Level::Hourly => &["hour_ns", "source", "provider", "model", "channel"],
            Level::Sessions => &["day_ns", "source", "session_id"],
        }
    }

    /// The statements [`Delta::apply`] runs on this level's table, built
    /// once: the group commit runs them for every key it changes.
    fn statements(self) -> &'static Statements {
        static HOURLY: OnceLock<Statements> = OnceLock::new();
        static SESSIONS: OnceLock<Statements> = OnceLock::new();
        let cell = match self {
            Level::Hourly => &HOURLY,
            Level::Sessions => &SESSIONS,
        };
        cell.get_or_init(|| Statements::of(self))
    }
}

/// A level's read, write and delete of one rollup row by its key.
struct Statements {
    select: String,
    upsert: String,
    delete: String,
}

impl Statements {
    fn of(level: Level) -> Statements {
        let table = level.table();
        let columns = level.key_columns();
        let matches = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        let placeholders = (1..=columns.len() + SUM_COLUMN_COUNT)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        Statements {
            select: format!("SELECT {SUM_COLUMNS} FROM {table} WHERE {matches}"),
            upsert: format!(
                "INSERT OR REPLACE INTO {table} ({}, {SUM_COLUMNS}) VALUES ({placeholders})",
                columns.join(", ")
            ),
            delete: format!("DELETE FROM {table} WHERE {matches}"),
        }
    }
}

/// What a rollup row sums over.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    /// Which rollup.
    pub level: Level,
    /// The start of the hour or day, ns (UTC).
    pub start_ns: i64,
    /// `llm_calls.source`.
    pub source: String,
    /// The other key columns' values ([`Level::key_columns`] after the
    /// first two); `""` for NULL.
    pub parts: Vec<String>,
}

impl RollupKey {
    /// The key's values in [`Level::key_columns`] order, borrowed.
    fn values(&self) -> impl Iterator<Item = &dyn rusqlite::ToSql> {
        std::iter::once(&self.start_ns as &dyn rusqlite::ToSql)
            .chain(std::iter::once(&self.source as &dyn rusqlite::ToSql))
            .chain(self.parts.iter().map(|p| p as &dyn rusqlite::ToSql))
    }

    /// Whether `call` adds to this row.
    fn is_of(&self, call: &CallFacts) -> bool {
        let unit = self.level.unit_ns();
        self.start_ns == call.time_ns.div_euclid(unit) * unit
            && self.source == call.source
            && match self.level {
                Level::Hourly => {
                    self.parts[0] == call.provider
                        && self.parts[1] == call.model
                        && self.parts[2] == call.channel
                }
                Level::Sessions => self.parts[0] == call.session_id,
            }
    }
}

/// The sums of one group of calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    /// Rows.
    pub rows: i64,
    /// Rows whose status is a failure.
    pub errors: i64,
    /// Uncached input tokens.
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Tokens read from the prompt cache.
    pub cache_read: i64,
    /// Tokens written to the prompt cache.
    pub cache_write: i64,
    /// Cost the agent reported, USD.
    pub cost_reported: f64,
    /// Cost estimated from the price table, USD.
    pub cost_estimated: f64,
    /// Rows with no cost, reported or estimated.
    pub unpriced: i64,
    /// Latencies.
    pub latency: Histogram,
}

impl Sums {
    /// Adds (sign 1) or takes away (sign -1) one call.
    pub fn add_call(&mut self, c: &CallFacts, sign: i64) {
        self.rows += sign;
        if !c.ok {
            self.errors += sign;
        }
        self.input += c.input * sign;
        self.output += c.output * sign;
        self.cache_read += c.cache_read * sign;
        self.cache_write += c.cache_write * sign;
        let signed = sign as f64;
        match (c.cost_source, c.cost_usd) {
            (CostSource::Reported, Some(cost)) => self.cost_reported += cost * signed,
            (CostSource::Estimated, Some(cost)) => self.cost_estimated += cost * signed,
            _ => self.unpriced += sign,
        }
        if let Some(ms) = c.latency_ms {
            self.latency.add(ms, sign);
        }
    }

    /// Adds (sign 1) or takes away (sign -1) another group's sums.
    pub fn merge(&mut self, other: &Sums, sign: i64) {
        self.rows += other.rows * sign;
        self.errors += other.errors * sign;
        self.input += other.input * sign;
        self.output += other.output * sign;
        self.cache_read += other.cache_read * sign;
        self.cache_write += other.cache_write * sign;
        self.cost_reported += other.cost_reported * sign as f64;
        self.cost_estimated += other.cost_estimated * sign as f64;
        self.unpriced += other.unpriced * sign;
        self.latency.merge(&other.latency, sign);
    }
}

/// Where a row's `cost_usd` came from (`llm_calls.cost_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostSource {
    /// The agent sent it; never changed.
    Reported,
    /// Tokens × the price table; changes when the prices do.
    Estimated,
    /// Neither: no cost sent and no price for the model.
    Unknown,
}

impl CostSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Reported => "reported",
            CostSource::Estimated => "estimated",
            CostSource::Unknown => "unknown",
        }
    }

    /// Reads a stored name; anything else is unknown.
    pub fn parse(s: &str) -> CostSource {
        match s {
            "reported" => CostSource::Reported,
            "estimated" => CostSource::Estimated,
            _ => CostSource::Unknown,
        }
    }
}

/// What of one `llm_calls` row the rollup sums.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFacts<'a> {
    /// The row's time, ns.
    pub time_ns: i64,
    /// `source`.
    pub source: Cow<'a, str>,
    /// `provider`.
    pub provider: Cow<'a, str>,
    /// `model`.
    pub model: Cow<'a, str>,
    /// `channel`, `""` when NULL.
    pub channel: Cow<'a, str>,
    /// `session_id`, `""` when NULL.
    pub session_id: Cow<'a, str>,
    /// Whether the status is not a failure.
    pub ok: bool,
    /// Uncached input tokens (0 when NULL).
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Cache-read tokens.
    pub cache_read: i64,
    /// Cache-write tokens.
    pub cache_write: i64,
    /// `cost_usd`.
    pub cost_usd: Option<f64>,
    /// `cost_source`.
    pub cost_source: CostSource,
    /// `latency_ms`.
    pub latency_ms: Option<f64>,
}

/// The `llm_calls` columns [`CallFacts::from_row`] reads, in order.
pub const FACT_COLUMNS: &str = "time_ns, source, provider, model, coalesce(channel, ''),
    coalesce(session_id, ''), status, coalesce(prompt_tokens, 0),
    coalesce(completion_tokens, 0), coalesce(cache_read_tokens, 0),
    coalesce(cache_write_tokens, 0), cost_usd, cost_source, latency_ms";

impl CallFacts<'static> {
    /// Reads a row selected with [`FACT_COLUMNS`] from column `at` on.
    pub fn from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<CallFacts<'static>> {
        let status: String = row.get(at + 6)?;
        let cost_source: String = row.get(at + 12)?;
        let text = |i: usize| row.get::<_, String>(at + i).map(Cow::Owned);
        Ok(CallFacts {
            time_ns: row.get(at)?,
            source: text(1)?,
            provider: text(2)?,
            model: text(3)?,
            channel: text(4)?,
            session_id: text(5)?,
            ok: is_ok_status(&status),
            input: row.get(at + 7)?,
            output: row.get(at + 8)?,
            cache_read: row.get(at + 9)?,
            cache_write: row.get(at + 10)?,
            cost_usd: row.get(at + 11)?,
            cost_source: CostSource::parse(&cost_source),
            latency_ms: row.get(at + 13)?,
        })
    }
}

impl CallFacts<'_> {
    /// The rollup rows this call adds to, one per level.
    pub fn keys(&self) -> [RollupKey; 2] {
        let start = |level: Level| self.time_ns.div_euclid(level.unit_ns()) * level.unit_ns();
        [
            RollupKey {
                level: Level::Hourly,
                start_ns: start(Level::Hourly),
                source: self.source.to_string(),
                parts: vec![
                    self.provider.to_string(),
                    self.model.to_string(),
                    self.channel.to_string(),
                ],
            },
            RollupKey {
                level: Level::Sessions,
                start_ns: start(Level::Sessions),
                source: self.source.to_string(),
                parts: vec![self.session_id.to_string()],
            },
        ]
    }
}

/// Changes to the rollups gathered over a batch, written by [`Delta::apply`].
#[derive(Debug, Default)]
pub struct Delta {
    sums: HashMap<RollupKey, Sums>,
    /// The keys of the last call added: the calls of a batch mostly share
    /// them, and reusing them saves building keys (allocations) per call.
    last: Vec<RollupKey>,
}

impl Delta {
    /// Adds (sign 1) or takes away (sign -1) one call.
    pub fn add(&mut self, call: &CallFacts, sign: i64) {
        if !(self.last.len() == 2 && self.last.iter().all(|k| k.is_of(call))) {
            self.last = call.keys().to_vec();
        }
        for key in &self.last {
            match self.sums.get_mut(key) {
                Some(sums) => sums.add_call(call, sign),
                None => {
                    let mut sums = Sums::default();
                    sums.add_call(call, sign);
                    self.sums.insert(key.clone(), sums);
                }
            }
        }
    }

    /// Adds another delta's changes.
    pub fn merge(&mut self, other: Delta) {
        for (key, sums) in other.sums {
            self.sums.entry(key).or_default().merge(&sums, 1);
        }
    }

    /// Writes the changes: each key's row is read, changed and written back,
    /// or deleted once it sums no row.
    pub fn apply(self, conn: &Connection) -> rusqlite::Result<()> {
        for (key, change) in self.sums {
            let statements = key.level.statements();
            let mut sums = read_sums(conn, &key)?.unwrap_or_default();
            sums.merge(&change, 1);
            sums.latency.settle();
            if sums.rows <= 0 {
                conn.prepare_cached(&statements.delete)?
                    .execute(rusqlite::params_from_iter(key.values()))?;
                continue;
            }
            let latency = sums.latency.encode();
            let figures: [&dyn rusqlite::ToSql; SUM_COLUMN_COUNT] = [
                &sums.rows,
                &sums.errors,
                &sums.input,
                &sums.output,
                &sums.cache_read,
                &sums.cache_write,
                &sums.cost_reported,
                &sums.cost_estimated,
                &sums.unpriced,
                &latency,
            ];
            conn.prepare_cached(&statements.upsert)?
                .execute(rusqlite::params_from_iter(key.values().chain(figures)))?;
        }
        Ok(())
    }
}

/// The rollup columns after the key, in the order [`sums_from_row`] reads.
pub const SUM_COLUMNS: &str = "rows, errors, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cost_reported, cost_estimated, unpriced, latency";

/// How many columns [`SUM_COLUMNS`] names.
const SUM_COLUMN_COUNT: usize = 10;

/// Reads the sums selected with [`SUM_COLUMNS`] from column `at` on.
pub fn sums_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Sums> {
    let latency: Option<Vec<u8>> = row.get(at + 9)?;
    Ok(Sums {
        rows: row.get(at)?,
        errors: row.get(at + 1)?,
        input: row.get(at + 2)?,
        output: row.get(at + 3)?,
        cache_read: row.get(at + 4)?,
        cache_write: row.get(at + 5)?,
        cost_reported: row.get(at + 6)?,
        cost_estimated: row.get(at + 7)?,
        unpriced: row.get(at + 8)?,
        latency: latency.map(|b| Histogram::decode(&b)).unwrap_or_default(),
    })
}

fn read_sums(conn: &Connection, key: &RollupKey) -> rusqlite::Result<Option<Sums>> {
    conn.prepare_cached(&key.level.statements().select)?
        .query_row(rusqlite::params_from_iter(key.values()), |r| {
            sums_from_row(r, 0)
        })
        .optional()
}

/// Token counts and identity of a row, for pricing it.
#[derive(Debug, Clone, PartialEq)]
pub struct PricingInput<'a> {
    /// The provider.
    pub provider: &'a str,
    /// The model.
    pub model: &'a str,
    /// Uncached input tokens.
    pub input: Option<i64>,
    /// Output tokens.
    pub output: Option<i64>,
    /// Cache-read tokens.
    pub cache_read: Option<i64>,
    /// Cache-write tokens.
    pub cache_write: Option<i64>,
}

/// Prices a row: USD, or `None` when its model has no price.
pub type Estimate = dyn Fn(&PricingInput<'_>) -> Option<f64> + Send + Sync;

/// How the store prices rows that came without a cost.
#[derive(Clone)]
pub struct Pricing {
    /// Changes whenever any price does (a new build, a new prices file).
    pub fingerprint: String,
    /// The estimate.
    pub estimate: std::sync::Arc<Estimate>,
}

impl Pricing {
    /// No prices at all: every row without a reported cost is `unknown`.
    pub fn none() -> Pricing {
        Pricing {
            fingerprint: "none".into(),
            estimate: std::sync::Arc::new(|_| None),
        }
    }

    /// The cost of a row and where it came from.
    pub fn cost_of(
        &self,
        reported: Option<f64>,
        input: &PricingInput<'_>,
    ) -> (Option<f64>, CostSource) {
        match reported {
            Some(c) => (Some(c), CostSource::Reported),
            None => match (self.estimate)(input) {
                Some(c) => (Some(c), CostSource::Estimated),
                None => (None, CostSource::Unknown),
            },
        }
    }
}

/// Rates looked up per provider and model, kept: an agent uses a handful of
/// models, and a lookup (names lowercased, dates and prefixes tried off) costs
/// about a microsecond. Emptied when full, so hostile names cannot grow it.
type RatesMemo = std::sync::Mutex<HashMap<String, HashMap<String, Option<crate::prices::Rates>>>>;

/// Models whose rates are kept at most.
const RATES_MEMO_MAX: usize = 1024;

impl From<std::sync::Arc<crate::prices::PriceTable>> for Pricing {
    fn from(table: std::sync::Arc<crate::prices::PriceTable>) -> Pricing {
        let memo = RatesMemo::default();
        Pricing {
            fingerprint: table.fingerprint(),
            estimate: std::sync::Arc::new(move |p: &PricingInput<'_>| {
                let usage = crate::prices::Usage {
                    input: p.input,
                    output: p.output,
                    cache_read: p.cache_read,
                    cache_write: p.cache_write,
                };
                if [
                    usage.input,
                    usage.output,
                    usage.cache_read,
                    usage.cache_write,
                ]
                .iter()
                .all(Option::is_none)
                {
                    return None;
                }
                let rates = {
                    let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
                    match memo.get(p.provider).and_then(|m| m.get(p.model)) {
                        Some(r) => *r,
                        None => {
                            if memo.values().map(HashMap::len).sum::<usize>() >= RATES_MEMO_MAX {
                                memo.clear();
                            }
                            let r = table.lookup(p.provider, p.model).copied();
                            memo.entry(p.provider.to_string())
                                .or_default()
                                .insert(p.model.to_string(), r);
                            r
                        }
                    }
                };
                rates.map(|r| r.cost(&usage))
            }),
        }
    }
}

impl std::fmt::Debug for Pricing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pricing")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Where a re-pricing stands: rows up to `upto_id` (the last row stored
/// before the prices changed; later rows were priced on insert) are priced
/// again, `after_id` is the last one done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repricing {
    /// The last row priced again.
    pub after_id: i64,
    /// The last row to price again.
    pub upto_id: i64,
    /// Rows whose cost changed so far.
    pub changed: u64,
}

/// A re-pricing to do when the file was last priced with other prices than
/// `fingerprint` (or never priced: an upgraded file); `None` when current.
pub fn repricing_due(conn: &Connection, fingerprint: &str) -> rusqlite::Result<Option<Repricing>> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'prices_fingerprint'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if stored.as_deref() == Some(fingerprint) {
        return Ok(None);
    }
    let upto_id: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM llm_calls", [], |r| {
        r.get(0)
    })?;
    Ok(Some(Repricing {
        after_id: 0,
        upto_id,
        changed: 0,
    }))
}

/// Prices up to `limit` more rows of a re-pricing again, in one
/// transaction: a row whose estimate changes is updated, and its old figures
/// taken out of the rollups and the new ones put in, so the rollups agree
/// with the rows after every step. Reported costs are never touched. Once
/// the last row is done, the fingerprint is recorded; returns whether done.
pub fn reprice_step(
    conn: &mut Connection,
    pricing: &Pricing,
    job: &mut Repricing,
    limit: usize,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut delta = Delta::default();
    let mut scanned = 0;
    {
        let mut select = tx.prepare_cached(&format!(
            "SELECT id, {FACT_COLUMNS}, prompt_tokens, completion_tokens, cache_read_tokens,
                cache_write_tokens FROM llm_calls
             WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3"
        ))?;
        let mut update = tx
            .prepare_cached("UPDATE llm_calls SET cost_usd = ?2, cost_source = ?3 WHERE id = ?1")?;
        let mut rows = select.query(params![job.after_id, job.upto_id, limit as i64])?;
        while let Some(row) = rows.next()? {
            scanned += 1;
            let id: i64 = row.get(0)?;
            job.after_id = id;
            let old = CallFacts::from_row(row, 1)?;
            if old.cost_source == CostSource::Reported {
                continue;
            }
            let (cost_usd, cost_source) = pricing.cost_of(
                None,
                &PricingInput {
                    provider: &old.provider,
                    model: &old.model,
                    input: row.get(15)?,
                    output: row.get(16)?,
                    cache_read: row.get(17)?,
                    cache_write: row.get(18)?,
                },
            );
            if cost_usd == old.cost_usd && cost_source == old.cost_source {
                continue;
            }
            update.execute(params![id, cost_usd, cost_source.as_str()])?;
            delta.add(&old, -1);
            delta.add(
                &CallFacts {
                    cost_usd,
                    cost_source,
                    ..old
                },
                1,
            );
            job.changed += 1;
        }
    }
    delta.apply(&tx)?;
    let done = scanned < limit || job.after_id >= job.upto_id;
    if done {
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('prices_fingerprint', ?1)",
            [&pricing.fingerprint],
        )?;
    }
    tx.commit()?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_names_every_sum_column_once() {
        assert_eq!(SUM_COLUMNS.split(',').count(), SUM_COLUMN_COUNT);
        for level in [Level::Hourly, Level::Sessions] {
            let statements = level.statements();
            let params = level.key_columns().len() + SUM_COLUMN_COUNT;
            assert!(statements.upsert.contains(&format!("?{params})")));
            assert!(!statements.upsert.contains(&format!("?{}", params + 1)));
            for sql in [&statements.select, &statements.upsert, &statements.delete] {
                assert!(sql.contains(level.table()), "{sql}");
            }
        }
    }

    #[test]
    fn buckets_answer_within_two_and_a_half_percent() {
        for ms in [1.0, 1.7, 12.0, 99.9, 812.0, 2_400.0, 61_000.0, 3_600_000.0] {
            let mut h = Histogram::default();
            h.add(ms, 1);
            let got = h.quantile(0.5).expect("one value");
            assert!(
                (got - ms).abs() / ms <= 0.026,
                "{ms} ms answered as {got} ms"
            );
        }
        let mut h = Histogram::default();
        h.add(0.2, 1);
        assert_eq!(h.quantile(0.5), Some(0.5), "below 1 ms is one bucket");
    }

    #[test]
    fn quantiles_follow_nearest_rank() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.add(f64::from(ms) * 10.0, 1);
        }
        let near = |q: f64, want: f64| {
            let got = h.quantile(q).expect("values");
            assert!((got - want).abs() / want <= 0.026, "q{q}: {got} vs {want}");
        };
        near(0.5, 500.0);
        near(0.95, 950.0);
        near(0.99, 990.0);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn histograms_round_trip_and_subtract_to_nothing() {
        let mut h = Histogram::default();
        h.add(5.0, 3);
        h.add(5_000.0, 2);
        let back = Histogram::decode(&h.encode());
        assert_eq!(back, h);
        let mut gone = back.clone();
        gone.merge(&h, -1);
        assert_eq!(gone, Histogram::default());
        assert!(gone.encode().is_empty());
    }

    #[test]
    fn a_delta_takes_latencies_away_from_what_is_stored() {
        let mut stored = Histogram::default();
        stored.add(100.0, 3);
        stored.add(5_000.0, 1);
        // A delta built alone: the row taken away, then (re-priced) put back,
        // and another taken away.
        let mut delta = Histogram::default();
        delta.add(5_000.0, -1);
        delta.add(100.0, -1);
        delta.add(100.0, 1);
        delta.add(100.0, -1);
        stored.merge(&delta, 1);
        stored.settle();
        let mut want = Histogram::default();
        want.add(100.0, 2);
        assert_eq!(stored, want);
        assert_eq!(Histogram::decode(&stored.encode()), want);
    }

    #[test]
    fn hours_are_utc_and_floor_negative_times() {
        assert_eq!(hour_of(HOUR_NS + 1), HOUR_NS);
        assert_eq!(hour_of(-1), -HOUR_NS);
    }
}
