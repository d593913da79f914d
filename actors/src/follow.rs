//! What the two OpenClaw followers share: where a follower stands in a
//! source (saved with the rows read from it), what `/v1/status` shows of
//! them, and handing a chunk of records to the store behind its
//! backpressure.
//!
//! The followers read files OpenClaw writes on the same machine:
//! [`crate::transcript`] its per-agent transcript databases,
//! [`crate::gateway_log`] its gateway log. Each reads a bounded chunk, hands
//! the records and its new position to the store in one append, and reads
//! the next chunk only once that append is committed, so at most one chunk
//! per follower is ever in memory and a restart (or `kill -9`) resumes
//! exactly where the last commit left off.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use slog::{info, warn, Logger};

use crate::ingest::{complete, IngestError};
use crate::records::{Batch, Source, Stamp, Table};
use crate::schema::ReadPool;
use crate::stats::{ActorName, Stats};
use crate::store::AppendRecords;
use crate::supervise::contain;
use crate::time::{now_ns, rfc3339_ms};

/// Which follower a position belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum FollowKind {
    /// An OpenClaw transcript database.
    Transcript,
    /// An OpenClaw gateway log file.
    GatewayLog,
}

impl FollowKind {
    /// The name stored in `follow_positions.kind`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where a follower stands in one source once an append's rows are stored;
/// the store saves it in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The follower.
    pub kind: FollowKind,
    /// The source: a database's path, a log file's `device:inode`.
    pub key: String,
    /// The path the source was last seen at.
    pub path: String,
    /// The last transcript rowid read, or the log bytes read.
    pub offset: i64,
    /// What tells this source from another that took its key.
    pub fingerprint: Option<String>,
    /// Items read in this step (added to the saved count).
    pub read: u64,
    /// Items in this step that could not be parsed (added likewise).
    pub failed: u64,
}

/// A position as saved, read back at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The path the source was last seen at.
    pub path: String,
    /// See [`Position::offset`].
    pub offset: i64,
    /// See [`Position::fingerprint`].
    pub fingerprint: Option<String>,
    /// Items read so far.
    pub read: u64,
    /// Items that could not be parsed so far.
    pub failed: u64,
}

/// The positions saved for `kind`, by key.
pub fn saved_positions(
    pool: &ReadPool,
    kind: FollowKind,
) -> Result<BTreeMap<String, Saved>, String> {
    let conn = pool.get().map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare(
            "SELECT key, path, offset, fingerprint, rows_read, rows_failed
             FROM follow_positions WHERE kind = ?1",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([kind.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Saved {
                    path: r.get(1)?,
                    offset: r.get(2)?,
                    fingerprint: r.get(3)?,
                    read: r.get::<_, i64>(4)?.max(0) as u64,
                    failed: r.get::<_, i64>(5)?.max(0) as u64,
                },
            ))
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
}

/// One source as `/v1/status` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SourceView {
    /// Where it is.
    pub path: String,
    /// Transcript: the last rowid read; log: the bytes read.
    pub position: i64,
    /// Transcript: rows not yet read at the last look; log: bytes.
    pub behind: u64,
    /// Items read (transcript rows, log lines), over the source's life.
    pub rows_read: u64,
    /// Items that could not be parsed (log lines kept as text, transcript
    /// rows that did not decode).
    pub rows_failed: u64,
    /// Transcript: LLM calls stored from it; log: error rows besides events.
    pub stored: u64,
    /// At the last commit: its time less the newest stored item's own time,
    /// in milliseconds.
    pub lag_ms: Option<i64>,
    /// When the last commit of its rows was (RFC 3339).
    pub last_commit: Option<String>,
    /// Why it is not being read, when it is not.
    pub problem: Option<String>,
}

/// One follower as `/v1/status` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FollowerView {
    /// Whether it runs at all.
    pub enabled: bool,
    /// What it looks at (a state directory, log patterns).
    pub watching: Vec<String>,
    /// The sources found, by key.
    pub sources: BTreeMap<String, SourceView>,
    /// A problem of the follower as a whole (nothing readable, an error).
    pub problem: Option<String>,
}

/// The followers' state, shared with `/v1/status`.
#[derive(Debug, Clone, Default)]
pub struct FollowView(Arc<Mutex<BTreeMap<&'static str, FollowerView>>>);

impl FollowView {
    /// Runs `f` on `kind`'s view.
    pub fn update<R>(&self, kind: FollowKind, f: impl FnOnce(&mut FollowerView) -> R) -> R {
        let mut map = self.lock();
        f(map.entry(kind.as_str()).or_default())
    }

    /// Every follower's view, by kind.
    pub fn snapshot(&self) -> BTreeMap<&'static str, FollowerView> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, FollowerView>> {
        // A panic while holding the lock leaves a view, not a broken invariant.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What both followers are told at start.
#[derive(Debug, Clone)]
pub struct FollowSettings {
    /// OpenClaw's state directory, whose `agents/*/agent/` hold the
    /// transcripts; `None`: transcripts are not read.
    pub state_dir: Option<PathBuf>,
    /// Glob patterns of the gateway log files; empty: the log is not read.
    pub log_patterns: Vec<String>,
    /// Time between looks at the sources.
    pub poll: Duration,
    /// Stamped on every record.
    pub agent_id: String,
    /// Text fields are cut to this many bytes.
    pub max_text_bytes: usize,
    /// The ingest stage's limit of records waiting for the store; a
    /// follower waits while the store is that far behind.
    pub max_pending_records: u64,
}

/// How a follower hands its chunks to the store.
#[derive(Clone)]
pub struct Sink {
    /// The single writer.
    pub store: Recipient<AppendRecords>,
    /// Shared counters (the pending-record gauge).
    pub stats: Arc<Stats>,
    /// Read connections to the daemon's own file (saved positions).
    pub pool: ReadPool,
    /// Status.
    pub view: FollowView,
}

/// Records and position of one chunk, ready for the store.
pub struct Chunk {
    /// The records, one batch per table (empty batches are left out).
    pub batches: Vec<Batch>,
    /// Where the follower stands after them.
    pub position: Position,
}

impl Sink {
    /// Whether the store is so far behind that a follower should wait.
    pub fn store_busy(&self, settings: &FollowSettings) -> bool {
        self.stats.pending() >= settings.max_pending_records
    }

    /// Completes the records (trace ids, text cut like ingest does), stores
    /// them with the position in one transaction, and resolves once that is
    /// committed; `Ok` holds the rows stored per table.
    pub fn store(
        &self,
        settings: &FollowSettings,
        source: Source,
        mut chunk: Chunk,
    ) -> impl std::future::Future<Output = Result<Vec<(Table, usize)>, IngestError>> + 'static {
        chunk.batches.retain(|b| !b.is_empty());
        for batch in &mut chunk.batches {
            complete(batch, settings.max_text_bytes);
        }
        let records: u64 = chunk.batches.iter().map(|b| b.len() as u64).sum();
        let stats = Arc::clone(&self.stats);
        stats.pending_add(records);
        let tables: Vec<_> = chunk.batches.iter().map(Batch::table).collect();
        let batches = Arc::new(chunk.batches);
        let kept = Arc::clone(&batches);
        let sent = self.store.send(AppendRecords {
            batches,
            stamp: Stamp {
                agent_id: settings.agent_id.clone(),
                received_ns: now_ns(),
                source,
                // Only OTLP metric points are read by name; followers send none.
                openclaw_metric_prefix: Arc::from(""),
            },
            position: Some(chunk.position),
        });
        async move {
            let result = sent.await;
            drop(kept);
            stats.pending_sub(records);
            match result {
                Ok(Ok(ids)) => {
                    let rows: Vec<(Table, usize)> = tables
                        .iter()
                        .zip(&ids)
                        .map(|(t, r)| (*t, r.len()))
                        .collect();
                    for (table, n) in &rows {
                        stats.accepted(*table, *n);
                    }
                    Ok(rows)
                }
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(IngestError::StoreGone),
            }
        }
    }
}

/// Marks a committed chunk in `view`: counts, position, lag.
pub fn committed(
    view: &mut SourceView,
    position: &Position,
    stored: u64,
    newest_ns: Option<i64>,
    behind: u64,
) {
    let now = now_ns();
    view.path.clone_from(&position.path);
    view.position = position.offset;
    view.rows_read += position.read;
    view.rows_failed += position.failed;
    view.stored += stored;
    view.behind = behind;
    if let Some(t) = newest_ns {
        view.lag_ms = Some((now - t) / 1_000_000);
    }
    view.last_commit = Some(rfc3339_ms(now));
    view.problem = None;
}

/// How long a follower waits before trying again after the store refused
/// or was too far behind.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);

/// While a follower finds nothing at its paths (no OpenClaw on this
/// machine, or not yet; or a directory it cannot list), the time between
/// its looks doubles from the poll up to this many polls (a minute at the
/// default 5 s), and is the poll again from the first look (a timed one, a
/// retry or a full chunk's) that finds something, readable or not. Idle
/// with no OpenClaw on the machine, from 10 s to
/// 130 s after start (release builds side by side, three rounds): the
/// followers' thread woke 6 times in each instead of 49 to 51 (0.8 ms of
/// CPU instead of 5.7 in the last), and the daemon used 23.1 to 25.1 ms
/// instead of 29.0 to 31.8.
pub const ABSENT_POLLS: u32 = 12;

/// The time to the next look after `empty` looks in a row found no source.
pub fn next_look(poll: Duration, empty: u32) -> Duration {
    let factor = 1u32.checked_shl(empty).unwrap_or(u32::MAX);
    poll.saturating_mul(factor.min(ABSENT_POLLS))
}

/// The followers' timer slack ([`crate::slack`]) between polls: a tenth of
/// the poll, at most [`RETRY_AFTER`]. Polls seconds apart need no precision,
/// and with it the two followers' timers, and the extra wake-ups of tokio's
/// timer wheel for timers seconds away, are served by fewer wake-ups: idle
/// for 120 s with no OpenClaw on the machine (`sched.sh`, two builds twice
/// each, default 5 s poll), the followers' thread woke 47 and 48 times
/// instead of 98 and 99, and took 5.2 and 5.6 ms of CPU instead of 7.1 and
/// 7.4. Each step reads with the default slack ([`crate::slack::Precise`]),
/// so SQLite's busy sleeps on OpenClaw's files and on ours keep their
/// length.
fn idle_timer_slack(poll: Duration) -> Duration {
    (poll / 10).min(RETRY_AFTER)
}

/// One follower's own part: finding its sources and reading them a chunk at
/// a time. [`FollowActor`] runs it: on a timer, behind the store's
/// backpressure, one chunk with the store at a time, under a supervisor.
pub trait Follower: Unpin + 'static {
    /// Which follower (its positions and its part of `/v1/status`).
    const KIND: FollowKind;
    /// Its name in panic and restart counts.
    const ACTOR: ActorName;
    /// The `source` its rows are stored with.
    const SOURCE: Source;
    /// What it follows, in words, for its log lines.
    const WHAT: &'static str;
    /// What a follower keeps of a chunk until it is committed.
    type Cursor: Unpin + 'static;

    /// What it looks at (a state directory, log patterns), for status.
    fn watching(&self) -> Vec<String>;
    /// Takes the positions saved by earlier runs, by key; called once, and
    /// again after a restart (after [`Follower::reset`]).
    fn resume(&mut self, saved: BTreeMap<String, Saved>);
    /// Looks at the sources and reads the next chunk, if there is one.
    fn next(&mut self, core: &mut Core) -> Option<Read<Self::Cursor>>;
    /// Whether its last look found anything at its paths (a file it reads,
    /// or one it cannot read yet).
    fn found(&self) -> bool;
    /// The chunk read from `key` is committed, up to `position`.
    fn committed(&mut self, key: &str, position: &Position, cursor: Self::Cursor);
    /// The table whose rows `/v1/status` counts as stored (calls, errors).
    const STORED: Table;
    /// Forgets what it holds in memory: the actor restarts and reads the
    /// positions again from the file, what was committed.
    fn reset(&mut self);
}

/// A chunk a follower read, with what `/v1/status` needs.
pub struct Read<C> {
    /// The source.
    pub key: String,
    /// Records and position.
    pub chunk: Chunk,
    /// The newest stored item's own time, for the lag.
    pub newest_ns: Option<i64>,
    /// What is left to read after it (rows or bytes).
    pub behind: u64,
    /// Whether the chunk stopped at its bound, so more is waiting now.
    pub full: bool,
    /// What the follower wants back once it is committed.
    pub cursor: C,
}

/// What every follower has: its settings, the store, status, and the
/// problems it has logged (each is logged once).
pub struct Core {
    /// Settings shared by both followers.
    pub settings: Arc<FollowSettings>,
    /// The store, counters, read pool and status.
    pub sink: Sink,
    /// Where the follower logs.
    pub log: Logger,
    logged: HashSet<String>,
}

impl Core {
    /// Logs `problem` once per run, as `message`.
    pub fn problem_once(&mut self, message: &'static str, problem: &str) {
        if self.logged.insert(problem.to_string()) {
            warn!(self.log, "{}", message; "problem" => problem);
        }
    }
}

/// Runs a [`Follower`].
pub struct FollowActor<F: Follower> {
    core: Core,
    follower: F,
    /// Whether the saved positions were handed to the follower.
    resumed: bool,
    /// Whether a chunk is with the store.
    busy: bool,
    /// Whether a retry is already scheduled (one at a time).
    retrying: bool,
    /// Looks in a row that found nothing ([`next_look`]).
    empty_looks: u32,
    /// The next look's timer.
    next: Option<SpawnHandle>,
    #[cfg(feature = "fault-injection")]
    fault: Option<crate::fault::FaultKind>,
}

impl<F: Follower> FollowActor<F> {
    /// Runs `follower` with `settings`, storing through `sink`.
    pub fn new(follower: F, settings: Arc<FollowSettings>, sink: Sink, log: Logger) -> Self {
        FollowActor {
            core: Core {
                settings,
                sink,
                log,
                logged: HashSet::new(),
            },
            follower,
            resumed: false,
            busy: false,
            retrying: false,
            empty_looks: 0,
            next: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    /// Looks now, then schedules the next look: a poll away while it finds
    /// something to follow, further and further away while it finds nothing.
    fn look(&mut self, ctx: &mut Context<Self>) {
        self.next = None;
        self.step(ctx);
        if self.next.is_none() {
            self.schedule(ctx);
        }
    }

    /// (Re)sets the timer of the next look after [`next_look`].
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if let Some(pending) = self.next.take() {
            ctx.cancel_future(pending);
        }
        let wait = next_look(self.core.settings.poll, self.empty_looks);
        self.next = Some(ctx.run_later(wait, |act, ctx| act.look(ctx)));
    }

    /// Counts a look that ran (from the timer, a retry or a full chunk):
    /// one that found nothing makes the next wait longer; one that found
    /// something after empty ones brings the next look back to a poll away.
    fn counted(&mut self, ctx: &mut Context<Self>) {
        if !self.follower.found() {
            self.empty_looks = self.empty_looks.saturating_add(1);
        } else if self.empty_looks > 0 {
            self.empty_looks = 0;
            self.schedule(ctx);
        }
    }

    /// Hands the saved positions to the follower once; `false` while they
    /// cannot be read.
    fn resume(&mut self) -> bool {
        if self.resumed {
            return true;
        }
        match saved_positions(&self.core.sink.pool, F::KIND) {
            Ok(saved) => {
                self.follower.resume(saved);
                self.resumed = true;
                true
            }
            Err(e) => {
                warn!(self.core.log, "reading the saved positions failed; retrying";
                    "follower" => F::KIND.as_str(), "error" => e);
                false
            }
        }
    }

    /// Tries again after [`RETRY_AFTER`], unless a retry is already due.
    fn retry(&mut self, ctx: &mut Context<Self>) {
        if !self.retrying {
            self.retrying = true;
            ctx.run_later(RETRY_AFTER, |act, ctx| {
                act.retrying = false;
                act.step(ctx);
            });
        }
    }

    /// Reads the next chunk and hands it to the store; once it is
    /// committed, reads on at once if the chunk was full.
    fn step(&mut self, ctx: &mut Context<Self>) {
        let _precise = crate::slack::Precise::until_drop(idle_timer_slack(self.core.settings.poll));
        if self.busy || !self.resume() {
            return;
        }
        if self.core.sink.store_busy(&self.core.settings) {
            self.retry(ctx);
            return;
        }
        #[cfg(feature = "fault-injection")]
        let fault = self.fault.take();
        let (stats, log) = (Arc::clone(&self.core.sink.stats), self.core.log.clone());
        let (follower, core) = (&mut self.follower, &mut self.core);
        let read = contain(F::ACTOR, &stats, &log, ctx, || {
            #[cfg(feature = "fault-injection")]
            if let Some(fault) = fault {
                fault.strike();
            }
            follower.next(core)
        });
        if read.is_ok() {
            self.counted(ctx);
        }
        let Ok(Some(read)) = read else {
            return;
        };
        self.busy = true;
        let Read {
            key,
            chunk,
            newest_ns,
            behind,
            full,
            cursor,
        } = read;
        let position = chunk.position.clone();
        let stored = self.core.sink.store(&self.core.settings, F::SOURCE, chunk);
        ctx.spawn(stored.into_actor(self).map(move |result, act, ctx| {
            act.busy = false;
            match result {
                Ok(rows) => {
                    act.follower.committed(&key, &position, cursor);
                    act.core.sink.view.update(F::KIND, |v| {
                        let source = v.sources.entry(key).or_default();
                        let stored = rows
                            .iter()
                            .filter(|(t, _)| *t == F::STORED)
                            .map(|(_, n)| *n as u64)
                            .sum();
                        committed(source, &position, stored, newest_ns, behind);
                    });
                    // A full chunk: more is waiting, go on at once (a
                    // backlog is read at full speed). Else wait for the next
                    // look, so a steady writer costs a commit a poll, not
                    // one a line.
                    if full {
                        ctx.notify(Step);
                    }
                }
                Err(e) => {
                    warn!(act.core.log, "storing what was read failed; retrying";
                        "follower" => F::KIND.as_str(), "error" => e.to_string(),
                        "path" => &position.path);
                    act.retry(ctx);
                }
            }
        }));
    }
}

/// The first look, at start.
#[derive(Message)]
#[rtype(result = "()")]
struct Look;

impl<F: Follower> Handler<Look> for FollowActor<F> {
    type Result = ();

    fn handle(&mut self, _: Look, ctx: &mut Context<Self>) {
        self.look(ctx);
    }
}

/// Look at the sources and read what is new.
#[derive(Message)]
#[rtype(result = "()")]
struct Step;

impl<F: Follower> Handler<Step> for FollowActor<F> {
    type Result = ();

    fn handle(&mut self, _: Step, ctx: &mut Context<Self>) {
        self.step(ctx);
    }
}

impl<F: Follower> Actor for FollowActor<F> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let watching = self.follower.watching();
        info!(self.core.log, "following {}", F::WHAT; "watching" => watching.join(", "));
        self.core.sink.view.update(F::KIND, |v| {
            v.enabled = true;
            v.watching = watching;
        });
        // The first look, at once, leaves the idle timer slack in place.
        ctx.notify(Look);
    }
}

impl<F: Follower> Supervised for FollowActor<F> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.core.sink.stats.restarted(F::ACTOR);
        warn!(self.core.log, "follower restarting"; "follower" => F::KIND.as_str());
        self.follower.reset();
        self.resumed = false;
        self.busy = false;
        self.retrying = false;
        self.empty_looks = 0;
        // The restart dropped the context's timers, the next look's too.
        self.next = None;
    }
}

#[cfg(feature = "fault-injection")]
impl<F: Follower> Handler<crate::fault::InjectFault> for FollowActor<F> {
    type Result = ();

    fn handle(&mut self, msg: crate::fault::InjectFault, _ctx: &mut Context<Self>) {
        self.fault = Some(msg.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_grow_apart_while_no_source_is_found() {
        let poll = Duration::from_secs(5);
        let waits: Vec<u64> = (0..8).map(|n| next_look(poll, n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60, 60, 60]);
        assert_eq!(next_look(poll, u32::MAX), Duration::from_secs(60));
        let fast = Duration::from_millis(100);
        assert_eq!(next_look(fast, 0), fast, "a followed source: every poll");
        assert_eq!(next_look(fast, 40), Duration::from_millis(1200));
    }
}
