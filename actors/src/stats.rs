//! Counters every part of the daemon updates and `/v1/status` and
//! `/metrics` read, and the row counts the store keeps. Plain atomics: updating one costs a few nanoseconds and
//! no lock is ever held across an await or a database call.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use strum::VariantArray;

use crate::records::Table;
use crate::rotate::{RotateReason, Target};

/// Why a request was refused. The code doubles as the `error` field of the
/// HTTP error body, so it is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RejectReason {
    /// Ingest token set and the request did not carry it.
    Unauthorized,
    /// A `Content-Type` the endpoint does not read.
    UnsupportedMediaType,
    /// The body is over `TRACE_MAX_BODY_BYTES`.
    PayloadTooLarge,
    /// No body at all.
    EmptyBody,
    /// The body is not JSON.
    MalformedJson,
    /// The body is not valid protobuf, or not valid gzip.
    MalformedBody,
    /// A field is missing, of the wrong type or out of range.
    InvalidField,
    /// The store is behind; the client should retry later.
    Backpressure,
    /// The store failed or an actor crashed while handling the request.
    Internal,
    /// The database's volume is full (or the file read-only); rotation is
    /// freeing space and the client should retry later.
    DiskFull,
    /// The body did not arrive within `TRACE_REQUEST_TIMEOUT`.
    #[strum(serialize = "request_timeout")]
    Timeout,
}

impl RejectReason {
    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        self.into()
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The supervised actors, for per-actor panic and restart counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ActorName {
    /// Admission and enrichment of incoming records.
    Ingest,
    /// The single SQLite writer.
    Store,
    /// The host sampler.
    Metrics,
    /// The pusher.
    Push,
    /// The disk bound: age, size and volume rotation.
    Rotation,
    /// The follower of OpenClaw's transcript databases.
    Transcript,
    /// The follower of OpenClaw's gateway log.
    GatewayLog,
}

impl ActorName {
    /// The actor's name in logs and status.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The kinds of OTLP item, counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Signal {
    /// Spans (`/v1/traces`).
    Spans,
    /// Metric data points (`/v1/metrics`).
    DataPoints,
    /// Log records (`/v1/logs`).
    LogRecords,
}

impl Signal {
    /// The signal's name in status.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why one OTLP item of an otherwise valid request was not stored (it is
/// reported back as an OTLP partial success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ItemReject {
    /// A trace id that is not 16 bytes, or all zero.
    InvalidTraceId,
    /// A span id (or parent span id) that is not 8 bytes, or all zero.
    InvalidSpanId,
    /// A timestamp past what unix nanoseconds in an i64 can hold (year 2262).
    InvalidTimestamp,
    /// A metric without a name, or a data point without a value.
    InvalidMetric,
}

impl ItemReject {
    /// The reason's code in status.
    pub fn code(self) -> &'static str {
        self.into()
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one OTLP signal.
#[derive(Debug, Default)]
struct SignalCounters {
    /// Items in requests that could be decoded.
    received: AtomicU64,
    /// Items committed.
    stored: AtomicU64,
    /// Items refused, per reason.
    rejected: [AtomicU64; ItemReject::VARIANTS.len()],
}

/// The daemon's counters. Shared as `Arc<Stats>`.
#[derive(Debug)]
pub struct Stats {
    /// When the daemon started, for uptime.
    started: Instant,
    /// Requests whose records were all committed.
    accepted_requests: AtomicU64,
    /// Records committed, per table.
    accepted_records: [AtomicU64; Table::ALL.len()],
    /// Requests refused, per reason.
    rejected: [AtomicU64; RejectReason::VARIANTS.len()],
    /// Panics caught in actor handlers, per actor.
    panics: [AtomicU64; ActorName::VARIANTS.len()],
    /// Supervisor restarts, per actor.
    restarts: [AtomicU64; ActorName::VARIANTS.len()],
    /// Transactions the store committed (one per group of appends).
    store_commits: AtomicU64,
    /// Records handed to the store and not yet committed or failed.
    store_pending: AtomicU64,
    /// OTLP items, per signal.
    otlp: [SignalCounters; Signal::VARIANTS.len()],
    /// Set while writes fail for want of space (or a read-only file).
    disk_full: AtomicBool,
    /// Times the store went from writing to disk full.
    disk_full_episodes: AtomicU64,
    /// Host samples the store could not take.
    host_samples_dropped: AtomicU64,
    /// What rotation did.
    rotation: RotationCounters,
    /// Rows held, kept by the store as it writes.
    pub rows: RowCounts,
}

/// Rows held and rows not yet pushed per record table, and dead letters:
/// counted once at start, then kept by the store, the only writer, after
/// each commit that changes them. `/v1/status` and `/metrics` read these
/// instead of counting, so they stay cheap at any database size.
#[derive(Debug, Default)]
pub struct RowCounts {
    rows: [AtomicI64; Table::ALL.len()],
    unpushed: [AtomicI64; Table::ALL.len()],
    dead_letters: AtomicI64,
}

impl RowCounts {
    /// Starts from counts taken by scanning.
    pub fn set(&self, tables: &[crate::query::TableCounts], dead_letters: u64) {
        for t in tables {
            if let Some(table) = Table::ALL.iter().find(|x| x.name() == t.table) {
                let i = table.index();
                self.rows[i].store(t.rows as i64, Ordering::Relaxed);
                self.unpushed[i].store(t.unpushed as i64, Ordering::Relaxed);
            }
        }
        self.dead_letters
            .store(dead_letters as i64, Ordering::Relaxed);
    }

    /// `n` new rows, none pushed yet.
    pub fn added(&self, table: Table, n: u64) {
        self.rows[table.index()].fetch_add(n as i64, Ordering::Relaxed);
        self.unpushed[table.index()].fetch_add(n as i64, Ordering::Relaxed);
    }

    /// `rows` deleted, of which `unpushed` were never pushed.
    pub fn removed(&self, table: Table, rows: u64, unpushed: u64) {
        self.rows[table.index()].fetch_sub(rows as i64, Ordering::Relaxed);
        self.unpushed[table.index()].fetch_sub(unpushed as i64, Ordering::Relaxed);
    }

    /// The push cursor passed `n` rows.
    pub fn pushed(&self, table: Table, n: u64) {
        self.unpushed[table.index()].fetch_sub(n as i64, Ordering::Relaxed);
    }

    /// Dead letters added (or, negative, deleted by rotation).
    pub fn dead_lettered(&self, n: i64) {
        self.dead_letters.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts per table, in [`Table::ALL`] order.
    pub fn tables(&self) -> Vec<crate::query::TableCounts> {
        Table::ALL
            .iter()
            .map(|t| crate::query::TableCounts {
                table: t.name(),
                rows: self.rows[t.index()].load(Ordering::Relaxed).max(0) as u64,
                unpushed: self.unpushed[t.index()].load(Ordering::Relaxed).max(0) as u64,
            })
            .collect()
    }

    /// Dead letters held.
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Ordering::Relaxed).max(0) as u64
    }
}

/// Counters of the RotationActor.
#[derive(Debug, Default)]
struct RotationCounters {
    /// Rotations finished.
    runs: AtomicU64,
    /// When the last one ended (unix ns; 0 before the first).
    last_end_ns: AtomicI64,
    /// How long the last one took, in microseconds.
    last_duration_us: AtomicU64,
    /// Rows deleted, per reason and target.
    deleted: [[AtomicU64; Target::ALL.len()]; RotateReason::VARIANTS.len()],
    /// Of those, rows the remote never had, per reason and target.
    dropped: [[AtomicU64; Target::ALL.len()]; RotateReason::VARIANTS.len()],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            accepted_requests: AtomicU64::new(0),
            accepted_records: Default::default(),
            rejected: Default::default(),
            panics: Default::default(),
            restarts: Default::default(),
            store_commits: AtomicU64::new(0),
            store_pending: AtomicU64::new(0),
            otlp: Default::default(),
            disk_full: AtomicBool::new(false),
            disk_full_episodes: AtomicU64::new(0),
            host_samples_dropped: AtomicU64::new(0),
            rotation: RotationCounters::default(),
            rows: RowCounts::default(),
        }
    }
}

impl Stats {
    /// Seconds since the daemon started.
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts a request whose records were all committed.
    pub fn accepted_request(&self) {
        self.accepted_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `records` rows committed to `table`.
    pub fn accepted(&self, table: Table, records: usize) {
        self.accepted_records[table.index()].fetch_add(records as u64, Ordering::Relaxed);
    }

    /// Counts a refused request.
    pub fn rejected(&self, reason: RejectReason) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a panic caught in `actor`.
    pub fn panicked(&self, actor: ActorName) {
        self.panics[actor.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a supervisor restart of `actor`.
    pub fn restarted(&self, actor: ActorName) {
        self.restarts[actor.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one committed store transaction.
    pub fn committed(&self) {
        self.store_commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to the records awaiting commit; returns the new total.
    pub fn pending_add(&self, n: u64) -> u64 {
        self.store_pending.fetch_add(n, Ordering::AcqRel) + n
    }

    /// Records awaiting commit now.
    pub fn pending(&self) -> u64 {
        self.store_pending.load(Ordering::Acquire)
    }

    /// Removes `n` from the records awaiting commit.
    pub fn pending_sub(&self, n: u64) {
        self.store_pending.fetch_sub(n, Ordering::AcqRel);
    }

    /// Adds an ingest request's `records` to those awaiting commit; returns
    /// the new total and the request's share, released when it is dropped.
    pub fn admit(self: &Arc<Self>, records: u64) -> (u64, Admitted) {
        let total = self.pending_add(records);
        let share = Admitted {
            stats: Arc::clone(self),
            records,
        };
        (total, share)
    }

    /// Counts `n` OTLP items of `signal` in a decoded request.
    pub fn otlp_received(&self, signal: Signal, n: u64) {
        self.otlp[signal.index()]
            .received
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` OTLP items of `signal` committed.
    pub fn otlp_stored(&self, signal: Signal, n: u64) {
        self.otlp[signal.index()]
            .stored
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one OTLP item of `signal` refused for `reason`.
    pub fn otlp_rejected(&self, signal: Signal, reason: ItemReject) {
        self.otlp[signal.index()].rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records whether writes fail for want of space; returns true when this
    /// call started a new episode (so it is logged once).
    pub fn set_disk_full(&self, full: bool) -> bool {
        let was = self.disk_full.swap(full, Ordering::AcqRel);
        if full && !was {
            self.disk_full_episodes.fetch_add(1, Ordering::Relaxed);
        }
        full != was
    }

    /// Whether the last write failed for want of space.
    pub fn disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Acquire)
    }

    /// Counts a host sample the store could not take.
    pub fn host_sample_dropped(&self) {
        self.host_samples_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts rows a rotation deleted from `target` for `reason`, of which
    /// `unpushed` the remote never had.
    pub fn rotated(&self, reason: RotateReason, target: Target, deleted: u64, unpushed: u64) {
        let r = &self.rotation;
        r.deleted[reason.index()][target.index()].fetch_add(deleted, Ordering::Relaxed);
        r.dropped[reason.index()][target.index()].fetch_add(unpushed, Ordering::Relaxed);
    }

    /// Records the end of a rotation.
    pub fn rotation_done(&self, end_ns: i64, took: std::time::Duration) {
        let r = &self.rotation;
        r.runs.fetch_add(1, Ordering::Relaxed);
        r.last_end_ns.store(end_ns, Ordering::Relaxed);
        r.last_duration_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A consistent-enough copy of every counter, for status and metrics.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            uptime_seconds: self.uptime_seconds(),
            accepted_requests: load(&self.accepted_requests),
            accepted_records: Table::ALL
                .iter()
                .map(|t| (t.name(), load(&self.accepted_records[t.index()])))
                .collect(),
            rejected: RejectReason::VARIANTS
                .iter()
                .map(|r| (r.code(), load(&self.rejected[r.index()])))
                .collect(),
            panics: ActorName::VARIANTS
                .iter()
                .map(|a| (a.as_str(), load(&self.panics[a.index()])))
                .collect(),
            restarts: ActorName::VARIANTS
                .iter()
                .map(|a| (a.as_str(), load(&self.restarts[a.index()])))
                .collect(),
            store_commits: load(&self.store_commits),
            store_pending: load(&self.store_pending),
            otlp: Signal::VARIANTS
                .iter()
                .map(|s| {
                    let c = &self.otlp[s.index()];
                    OtlpSnapshot {
                        signal: s.as_str(),
                        received: load(&c.received),
                        stored: load(&c.stored),
                        rejected: ItemReject::VARIANTS
                            .iter()
                            .map(|r| (r.code(), load(&c.rejected[r.index()])))
                            .collect(),
                    }
                })
                .collect(),
            disk_full: self.disk_full(),
            disk_full_episodes: load(&self.disk_full_episodes),
            host_samples_dropped: load(&self.host_samples_dropped),
            rotation: {
                let r = &self.rotation;
                let per = |counts: &[[AtomicU64; Target::ALL.len()];
                                RotateReason::VARIANTS.len()]| {
                    RotateReason::VARIANTS
                        .iter()
                        .flat_map(|reason| {
                            Target::ALL.iter().map(move |target| {
                                (
                                    reason.as_str(),
                                    target.name(),
                                    load(&counts[reason.index()][target.index()]),
                                )
                            })
                        })
                        .collect()
                };
                RotationSnapshot {
                    runs: load(&r.runs),
                    last_end_ns: match r.last_end_ns.load(Ordering::Relaxed) {
                        0 => None,
                        ns => Some(ns),
                    },
                    last_duration_ms: load(&r.last_duration_us) as f64 / 1000.0,
                    deleted: per(&r.deleted),
                    dropped: per(&r.dropped),
                }
            },
        }
    }
}

/// Rotation counters at one moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotationSnapshot {
    /// Rotations finished.
    pub runs: u64,
    /// When the last one ended (unix ns).
    pub last_end_ns: Option<i64>,
    /// How long it took, in milliseconds.
    pub last_duration_ms: f64,
    /// Rows deleted: (reason, table, rows), every pair listed.
    pub deleted: Vec<(&'static str, &'static str, u64)>,
    /// Unpushed rows among them: (reason, table, rows).
    pub dropped: Vec<(&'static str, &'static str, u64)>,
}

impl RotationSnapshot {
    /// Unpushed rows rotation gave up, over every reason and table.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, _, n)| n).sum()
    }
}

/// OTLP counters of one signal at one moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OtlpSnapshot {
    /// The signal's name.
    pub signal: &'static str,
    /// Items received in decodable requests.
    pub received: u64,
    /// Items committed.
    pub stored: u64,
    /// Items refused, per reason.
    pub rejected: Vec<(&'static str, u64)>,
}

/// An ingest request's records between admission and their answer: their
/// share of the pending-record gauge, released however the request ends
/// (answered, refused, dropped with a store that stopped), and counted as
/// accepted once committed.
pub struct Admitted {
    stats: Arc<Stats>,
    records: u64,
}

impl Admitted {
    /// Counts the request and its rows as accepted, per table, then
    /// releases its share.
    pub fn committed(self, rows: impl IntoIterator<Item = (Table, usize)>) {
        self.stats.accepted_request();
        for (table, n) in rows {
            self.stats.accepted(table, n);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.stats.pending_sub(self.records);
    }
}

/// A copy of [`Stats`] at one moment, as ordered name/value lists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsSnapshot {
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Requests accepted.
    pub accepted_requests: u64,
    /// Records accepted, per table.
    pub accepted_records: Vec<(&'static str, u64)>,
    /// Requests rejected, per reason code.
    pub rejected: Vec<(&'static str, u64)>,
    /// Panics caught, per actor.
    pub panics: Vec<(&'static str, u64)>,
    /// Restarts, per actor.
    pub restarts: Vec<(&'static str, u64)>,
    /// Store transactions committed.
    pub store_commits: u64,
    /// Records waiting for their commit.
    pub store_pending: u64,
    /// OTLP counters per signal.
    pub otlp: Vec<OtlpSnapshot>,
    /// Whether writes are failing for want of space right now.
    pub disk_full: bool,
    /// Times writes started failing for want of space.
    pub disk_full_episodes: u64,
    /// Host samples the store could not take.
    pub host_samples_dropped: u64,
    /// What rotation did.
    pub rotation: RotationSnapshot,
}

impl StatsSnapshot {
    /// Records accepted over all tables.
    pub fn accepted_records_total(&self) -> u64 {
        self.accepted_records.iter().map(|(_, n)| n).sum()
    }

    /// Requests rejected over all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MetricKind;

    /// The names are what clients, dashboards and the database hold: the
    /// derives must give exactly these, in this order.
    #[test]
    fn names_are_the_stable_codes_in_order() {
        let codes: Vec<_> = RejectReason::VARIANTS.iter().map(|r| r.code()).collect();
        assert_eq!(
            codes,
            [
                "unauthorized",
                "unsupported_media_type",
                "payload_too_large",
                "empty_body",
                "malformed_json",
                "malformed_body",
                "invalid_field",
                "backpressure",
                "internal",
                "disk_full",
                "request_timeout",
            ]
        );
        let actors: Vec<_> = ActorName::VARIANTS.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            actors,
            [
                "ingest",
                "store",
                "metrics",
                "push",
                "rotation",
                "transcript",
                "gateway_log"
            ]
        );
        let signals: Vec<_> = Signal::VARIANTS.iter().map(|s| s.as_str()).collect();
        assert_eq!(signals, ["spans", "data_points", "log_records"]);
        let items: Vec<_> = ItemReject::VARIANTS.iter().map(|r| r.code()).collect();
        assert_eq!(
            items,
            [
                "invalid_trace_id",
                "invalid_span_id",
                "invalid_timestamp",
                "invalid_metric"
            ]
        );
        let reasons: Vec<_> = RotateReason::VARIANTS.iter().map(|r| r.as_str()).collect();
        assert_eq!(reasons, ["age", "size", "volume"]);
        let tables: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(
            tables,
            ["llm_calls", "errors", "events", "metric_points", "spans"]
        );
        let targets: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(&targets[5..], ["dead_letters", "cumulative_series"]);
        assert_eq!(targets.len(), Table::ALL.len() + 2);
        for (kind, name) in [
            (MetricKind::Gauge, "gauge"),
            (MetricKind::Counter, "counter"),
            (MetricKind::Sum, "sum"),
            (MetricKind::Histogram, "histogram"),
            (MetricKind::ExponentialHistogram, "exponential_histogram"),
            (MetricKind::Summary, "summary"),
        ] {
            assert_eq!(kind.as_str(), name);
            assert_eq!(MetricKind::from_name(name), Some(kind));
        }
        assert_eq!(MetricKind::from_name("Gauge"), None);
    }
}
