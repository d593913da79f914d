//! `llm_rollup`: the LLM calls summed per hour, so the owner's summary reads
//! a few thousand rows instead of every call.
//!
//! One rollup row sums the `llm_calls` rows of one UTC hour that share a
//! source, provider, model, channel and session: rows, errors, the four token
//! counts, reported and estimated cost, calls with no cost at all, and a
//! latency histogram. The store keeps it equal to what `llm_calls` holds: each
//! insert adds to it and each delete subtracts from it in the same
//! transaction, and a change of prices rebuilds it ([`reprice`]). So a
//! summary over whole hours is exact without reading `llm_calls`; the partial
//! hours at the ends of a window are read from `llm_calls` itself.
//!
//! Latency percentiles come from the histogram: log-scale buckets 5% wide,
//! answered at the bucket's geometric middle, so within 2.5% of the exact
//! value. The buckets are ours rather than a sketch crate's because a rollup
//! row must also be subtracted from when rotation deletes calls.

use std::collections::{BTreeMap, HashMap};

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
fn bucket_of(ms: f64) -> u16 {
    if !ms.is_finite() || ms < 1.0 {
        return 0;
    }
    let b = 1.0 + (ms.ln() / BUCKET_GROWTH.ln()).floor();
    (b as u16).min(MAX_BUCKET)
}

/// The value a bucket answers: its geometric middle (0.5 ms for bucket 0).
fn bucket_value(bucket: u16) -> f64 {
    if bucket == 0 {
        return 0.5;
    }
    BUCKET_GROWTH.powf(f64::from(bucket) - 0.5)
}

/// Counts of latencies per bucket, sparse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram(BTreeMap<u16, i64>);

impl Histogram {
    /// Adds `n` (negative to take away) latencies of `ms`.
    pub fn add(&mut self, ms: f64, n: i64) {
        self.add_bucket(bucket_of(ms), n);
    }

    fn add_bucket(&mut self, bucket: u16, n: i64) {
        let count = self.0.entry(bucket).or_insert(0);
        *count += n;
        if *count <= 0 {
            self.0.remove(&bucket);
        }
    }

    /// Adds (or, with `sign` -1, takes away) every count of `other`.
    pub fn merge(&mut self, other: &Histogram, sign: i64) {
        for (b, n) in &other.0 {
            self.add_bucket(*b, n * sign);
        }
    }

    /// Latencies counted.
    pub fn count(&self) -> i64 {
        self.0.values().sum()
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
        for (b, n) in &self.0 {
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
        for (b, n) in &self.0 {
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

/// What a rollup row sums over.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    /// The start of the UTC hour, ns.
    pub hour_ns: i64,
    /// `llm_calls.source`.
    pub source: String,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The channel; `""` when none.
    pub channel: String,
    /// The session; `""` when none.
    pub session_id: String,
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
pub struct CallFacts {
    /// The row's time, ns.
    pub time_ns: i64,
    /// `source`.
    pub source: String,
    /// `provider`.
    pub provider: String,
    /// `model`.
    pub model: String,
    /// `channel`, `""` when NULL.
    pub channel: String,
    /// `session_id`, `""` when NULL.
    pub session_id: String,
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

impl CallFacts {
    /// Reads a row selected with [`FACT_COLUMNS`] from column `at` on.
    pub fn from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<CallFacts> {
        let status: String = row.get(at + 6)?;
        let cost_source: String = row.get(at + 12)?;
        Ok(CallFacts {
            time_ns: row.get(at)?,
            source: row.get(at + 1)?,
            provider: row.get(at + 2)?,
            model: row.get(at + 3)?,
            channel: row.get(at + 4)?,
            session_id: row.get(at + 5)?,
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

    /// The rollup row this call adds to.
    pub fn key(&self) -> RollupKey {
        RollupKey {
            hour_ns: hour_of(self.time_ns),
            source: self.source.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            channel: self.channel.clone(),
            session_id: self.session_id.clone(),
        }
    }
}

/// Changes to the rollup gathered over a batch, written by [`Delta::apply`].
#[derive(Debug, Default)]
pub struct Delta(HashMap<RollupKey, Sums>);

impl Delta {
    /// Adds (sign 1) or takes away (sign -1) one call.
    pub fn add(&mut self, call: &CallFacts, sign: i64) {
        self.0.entry(call.key()).or_default().add_call(call, sign);
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes the changes: each key's row is read, changed and written back,
    /// or deleted once it sums no row.
    pub fn apply(self, conn: &Connection) -> rusqlite::Result<()> {
        for (key, change) in self.0 {
            let mut sums = read_sums(conn, &key)?.unwrap_or_default();
            sums.merge(&change, 1);
            if sums.rows <= 0 {
                conn.prepare_cached(
                    "DELETE FROM llm_rollup WHERE hour_ns = ?1 AND source = ?2 AND provider = ?3
                     AND model = ?4 AND channel = ?5 AND session_id = ?6",
                )?
                .execute(params![
                    key.hour_ns,
                    key.source,
                    key.provider,
                    key.model,
                    key.channel,
                    key.session_id
                ])?;
                continue;
            }
            conn.prepare_cached(
                "INSERT OR REPLACE INTO llm_rollup (hour_ns, source, provider, model, channel,
                    session_id, rows, errors, input_tokens, output_tokens, cache_read_tokens,
                    cache_write_tokens, cost_reported, cost_estimated, unpriced, latency)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                key.hour_ns,
                key.source,
                key.provider,
                key.model,
                key.channel,
                key.session_id,
                sums.rows,
                sums.errors,
                sums.input,
                sums.output,
                sums.cache_read,
                sums.cache_write,
                sums.cost_reported,
                sums.cost_estimated,
                sums.unpriced,
                sums.latency.encode(),
            ])?;
        }
        Ok(())
    }
}

/// The rollup columns after the key, in the order [`sums_from_row`] reads.
pub const SUM_COLUMNS: &str = "rows, errors, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cost_reported, cost_estimated, unpriced, latency";

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
    conn.prepare_cached(&format!(
        "SELECT {SUM_COLUMNS} FROM llm_rollup WHERE hour_ns = ?1 AND source = ?2
         AND provider = ?3 AND model = ?4 AND channel = ?5 AND session_id = ?6"
    ))?
    .query_row(
        params![
            key.hour_ns,
            key.source,
            key.provider,
            key.model,
            key.channel,
            key.session_id
        ],
        |r| sums_from_row(r, 0),
    )
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

impl std::fmt::Debug for Pricing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pricing")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// What a change of prices did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repriced {
    /// Whether the stored fingerprint differed, so anything was done.
    pub ran: bool,
    /// Rows whose estimated cost changed.
    pub rows_changed: u64,
    /// Rollup rows written.
    pub rollup_rows: u64,
}

/// When the prices' `fingerprint` differs from the one the file was last
/// priced with (or the file was never priced): estimates every row that has
/// no reported cost again with `estimate`, rebuilds `llm_rollup` from
/// `llm_calls`, and records the fingerprint, in one transaction. Reported
/// costs are never touched.
pub fn reprice(
    conn: &mut Connection,
    fingerprint: &str,
    estimate: &dyn Fn(&PricingInput<'_>) -> Option<f64>,
) -> rusqlite::Result<Repriced> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let stored: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'prices_fingerprint'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if stored.as_deref() == Some(fingerprint) {
        return Ok(Repriced::default());
    }
    let mut rows_changed = 0u64;
    {
        let mut select = tx.prepare(
            "SELECT id, provider, model, prompt_tokens, completion_tokens, cache_read_tokens,
                cache_write_tokens, cost_usd, cost_source
             FROM llm_calls WHERE cost_source <> 'reported'",
        )?;
        let mut update =
            tx.prepare("UPDATE llm_calls SET cost_usd = ?2, cost_source = ?3 WHERE id = ?1")?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let provider: String = row.get(1)?;
            let model: String = row.get(2)?;
            let input = PricingInput {
                provider: &provider,
                model: &model,
                input: row.get(3)?,
                output: row.get(4)?,
                cache_read: row.get(5)?,
                cache_write: row.get(6)?,
            };
            let old: Option<f64> = row.get(7)?;
            let old_source: String = row.get(8)?;
            let new = estimate(&input);
            let source = match new {
                Some(_) => CostSource::Estimated,
                None => CostSource::Unknown,
            };
            if new != old || source.as_str() != old_source {
                update.execute(params![row.get::<_, i64>(0)?, new, source.as_str()])?;
                rows_changed += 1;
            }
        }
    }
    let rollup_rows = rebuild(&tx)?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('prices_fingerprint', ?1)",
        [fingerprint],
    )?;
    tx.commit()?;
    Ok(Repriced {
        ran: true,
        rows_changed,
        rollup_rows,
    })
}

/// Sums `llm_calls` into `llm_rollup` from scratch; returns the rollup rows.
pub fn rebuild(conn: &Connection) -> rusqlite::Result<u64> {
    conn.execute("DELETE FROM llm_rollup", [])?;
    let mut all: HashMap<RollupKey, Sums> = HashMap::new();
    {
        let mut stmt = conn.prepare(&format!("SELECT {FACT_COLUMNS} FROM llm_calls"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let call = CallFacts::from_row(row, 0)?;
            all.entry(call.key()).or_default().add_call(&call, 1);
        }
    }
    let n = all.len() as u64;
    Delta(all).apply(conn)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn hours_are_utc_and_floor_negative_times() {
        assert_eq!(hour_of(HOUR_NS + 1), HOUR_NS);
        assert_eq!(hour_of(-1), -HOUR_NS);
    }
}
