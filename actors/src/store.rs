//! The StoreActor: the one writer of the SQLite file.
//!
//! Appends are not written one by one. Each [`AppendRecords`] is parked with
//! its reply channel, and a `Flush` is queued behind it; actix drains the whole
//! mailbox before it runs queued notifications, so every append that arrived
//! meanwhile is committed in the same transaction (group commit). A batch is
//! stored whole or not at all, and one bad batch fails alone: the group is
//! written without savepoints, and only when an append fails is it written
//! again with a savepoint per append ([`write_group`]). Callers are answered
//! only after the commit. WAL checkpoints mostly run beside the writer
//! ([`crate::checkpoint`]).
//!
//! The actor runs on its own arbiter (thread): SQLite calls block, and they
//! must never block the HTTP workers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rusqlite::{params, CachedStatement, Connection, OptionalExtension, TransactionBehavior};
use slog::{error, info, warn, Logger};
use tokio::sync::oneshot;

use crate::checkpoint::CheckpointRequest;
use crate::follow::Position;
use crate::llm_view;
use crate::metrics::probes::{fs_usage, FsUsage};
use crate::records::{
    Batch, ErrorRecord, EventRecord, JsonObject, LlmCall, MetricPoint, OtlpOrigin, Source,
    SpanRecord, Stamp, Table,
};
use crate::rollup::{
    self, is_ok_status, CallFacts, Delta, Pricing, PricingInput, Repricing, FACT_COLUMNS,
};
use crate::rotate::{self, RotationSettings, RotationTrigger, Target};
use crate::schema;
use crate::stats::{ActorName, Admitted, Stats};
use crate::supervise::{contain, Panicked};
use crate::time::now_ns;

/// Why the store could not take an append.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused the write (I/O error, constraint).
    #[error("database write failed: {0}")]
    Write(String),
    /// The write failed for want of space (or the file became read-only);
    /// rotation is freeing space and a later write may succeed.
    #[error("the database's volume is full (or the file is read-only): {0}; space is being freed, retry later")]
    DiskFull(String),
    /// The database connection is not open (it is being reopened).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The daemon is shutting down and the database is closed.
    #[error("the store is closed for shutdown")]
    Closed,
    /// The store crashed while holding this append; it was not committed.
    #[error(transparent)]
    Panicked(#[from] Panicked),
}

/// Row ids a committed append produced: per batch, in record order.
pub type AppendResult = Result<Vec<Vec<i64>>, StoreError>;

/// Store these records, all of them or none; answered after the commit.
#[derive(Message)]
#[rtype(result = "AppendResult")]
pub struct AppendRecords {
    /// The records, one batch per table. Shared: a sender that keeps a
    /// clone until it is answered frees the records on its own thread,
    /// not on the writer's (the store lets go of its clone first).
    pub batches: Arc<Vec<Batch>>,
    /// Agent id, receive time and source for every row.
    pub stamp: Stamp,
    /// Where the follower that read these records from a file now stands;
    /// saved in the same transaction as the records.
    pub position: Option<Position>,
}

/// An [`AppendRecords`] answered on the sender's own channel: parked like any
/// append, and its result is sent on `answer` after the commit, with no
/// future per append on the store's thread. A store that stops first drops
/// `answer` unanswered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendAndAnswer {
    /// The records and what they carry.
    pub append: AppendRecords,
    /// Where the result goes.
    pub answer: oneshot::Sender<AppendResult>,
    /// The ingest request's share of the pending gauge: counted as accepted
    /// and released just before the answer is sent.
    pub admitted: Admitted,
}

/// Answer once the write connection has run a trivial query.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Ping;

/// Commit what is pending, checkpoint the WAL into the main file and close the
/// database. Later appends get [`StoreError::Closed`].
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Close;

/// Move a table's push cursor forward: the remote has every row up to
/// `up_to`. The cursor never moves back.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct MarkPushed {
    /// The table.
    pub table: Table,
    /// The last row id the remote acknowledged.
    pub up_to: i64,
}

/// Record a row the remote refused for good and move the cursor past it, so
/// it never blocks the rows behind it.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeadLetter {
    /// The table.
    pub table: Table,
    /// The first row of the refused record.
    pub row_id: i64,
    /// Its last row (the same row but for host samples).
    pub last_row_id: i64,
    /// The HTTP status the remote answered.
    pub status: u16,
    /// What the remote said.
    pub message: String,
}

/// Delete up to `limit` rows of `target` whose own time is before `cutoff_ns`.
#[derive(Message)]
#[rtype(result = "Result<Deleted, StoreError>")]
pub struct DeleteOlderThan {
    /// The table.
    pub target: Target,
    /// Rows older than this go (unix ns).
    pub cutoff_ns: i64,
    /// At most this many rows.
    pub limit: usize,
}

/// Delete up to `limit` of the oldest rows, from the record table whose
/// oldest row is oldest; with `pushed_only`, only rows the remote has.
#[derive(Message)]
#[rtype(result = "Result<Deleted, StoreError>")]
pub struct DeleteOldest {
    /// Only rows at or below the table's push cursor.
    pub pushed_only: bool,
    /// At most this many rows.
    pub limit: usize,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// The table.
    pub target: Target,
    /// Rows deleted.
    pub rows: u64,
    /// Of those, rows past the push cursor (the remote never had them).
    pub unpushed: u64,
}

/// Read how much of the file is in use.
#[derive(Message)]
#[rtype(result = "Result<DbSpace, StoreError>")]
pub struct SpaceUsed;

/// The database's pages and WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbSpace {
    /// Bytes per page.
    pub page_size: u64,
    /// Pages in the file (as SQLite sees it, WAL included).
    pub page_count: u64,
    /// Pages free for reuse.
    pub freelist_pages: u64,
    /// Bytes of the WAL file.
    pub wal_bytes: u64,
}

impl DbSpace {
    /// Bytes of pages holding data.
    pub fn used_bytes(&self) -> u64 {
        self.page_count.saturating_sub(self.freelist_pages) * self.page_size
    }
}

/// Give up to `pages` free pages back to the filesystem
/// (`PRAGMA incremental_vacuum`); with `checkpoint`, then checkpoint the WAL
/// and truncate it.
#[derive(Message)]
#[rtype(result = "Result<Reclaimed, StoreError>")]
pub struct Reclaim {
    /// Free pages to give back (0: none).
    pub pages: u32,
    /// Checkpoint (TRUNCATE) afterwards.
    pub checkpoint: bool,
}

/// What a reclaim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// Pages the file shrank by.
    pub pages_freed: u64,
}

/// Whether SQLite failed for want of space (SQLite reports ENOSPC on a write
/// as `SQLITE_FULL`), or because the file became read-only: conditions
/// rotation or the operator can heal. Other I/O errors (EIO) are not: they
/// answer 500, and rotation does not delete rows for them.
pub fn out_of_space(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            matches!(
                f.code,
                rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::ReadOnly
            ) || f.extended_code == ffi::SQLITE_IOERR_SHMSIZE
        }
        _ => false,
    }
}

/// A write error as the store reports it.
fn write_error(e: rusqlite::Error) -> StoreError {
    if out_of_space(&e) {
        StoreError::DiskFull(e.to_string())
    } else {
        StoreError::Write(e.to_string())
    }
}

/// How often, at most, the store looks at the file's size and the volume
/// after a commit.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// The store's side of the disk bound: after commits it looks at the file
/// and the volume, and asks for a rotation as soon as a bound is passed.
pub struct Watch {
    /// The bounds.
    pub settings: Arc<RotationSettings>,
    /// Where to ask.
    pub trigger: RotationTrigger,
    /// When the last look was taken.
    last: Option<Instant>,
    /// A look is scheduled for when the rate limit allows it.
    deferred: bool,
}

impl Watch {
    /// A watch over `settings`' bounds that asks `trigger`.
    pub fn new(settings: Arc<RotationSettings>, trigger: RotationTrigger) -> Self {
        Watch {
            settings,
            trigger,
            last: None,
            deferred: false,
        }
    }

    /// Whether a look now would come sooner than [`WATCH_EVERY`] after the last.
    fn too_soon(&self) -> bool {
        self.last.is_some_and(|t| t.elapsed() < WATCH_EVERY)
    }

    /// Asks for a rotation when the file and WAL pass the high-water mark or
    /// the volume passes its bound.
    fn look(&mut self, conn: &Connection) {
        self.last = Some(Instant::now());
        let Ok(space) = space_used(conn, &self.settings.db_path) else {
            return;
        };
        // The volume rule cannot go below its floor: past it, a volume that
        // others filled is no reason to rotate after every commit.
        if space.page_count * space.page_size + space.wal_bytes > self.settings.size_high_water()
            || (rotate::volume_over(&self.settings)
                && space.used_bytes() > self.settings.volume_floor())
        {
            self.trigger.request(false);
        }
    }
}

/// Commit everything parked so far (sent by the actor to itself).
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

/// Price another step of stored rows again (sent by the actor to itself).
#[derive(Message)]
#[rtype(result = "()")]
struct RepriceStep;

/// Rows looked at per re-pricing step: a few milliseconds of work.
const REPRICE_STEP_ROWS: usize = 2000;

impl Handler<RepriceStep> for StoreActor {
    type Result = ();

    fn handle(&mut self, _: RepriceStep, ctx: &mut Context<Self>) {
        if !self.closed {
            self.reprice_step(ctx);
        }
    }
}

/// An append waiting for the next group commit.
struct Parked {
    batches: Arc<Vec<Batch>>,
    stamp: Stamp,
    position: Option<Position>,
    reply: oneshot::Sender<AppendResult>,
    /// An ingest request's share of the pending gauge (none for followers'
    /// and samples' appends).
    admitted: Option<Admitted>,
}

impl Parked {
    /// Sends `result`. An ingest request's records are counted (when
    /// committed) and released from the pending gauge first, so whoever
    /// reads the answer sees both; the store lets go of its share of the
    /// records before the sender can free them.
    fn answer(self, result: AppendResult) {
        let Parked {
            batches,
            reply,
            admitted,
            ..
        } = self;
        if let Some(admitted) = admitted {
            if let Ok(ids) = &result {
                admitted.committed(
                    batches
                        .iter()
                        .map(Batch::table)
                        .zip(ids.iter().map(Vec::len)),
                );
            }
        }
        drop(batches);
        let _ = reply.send(result);
    }
}

/// The single SQLite writer.
pub struct StoreActor {
    /// Where the database lives, to reopen it after a restart.
    path: PathBuf,
    /// The write connection; `None` while it is being reopened or after `Close`.
    conn: Option<Connection>,
    /// Appends waiting for the next commit.
    parked: Vec<Parked>,
    /// Whether a `Flush` is already queued.
    flush_queued: bool,
    /// Set by `Close`: refuse appends from then on.
    closed: bool,
    /// Shared counters.
    stats: Arc<Stats>,
    /// Where this actor logs.
    log: Logger,
    /// The disk bound's watch; `None` in tests that run without rotation.
    watch: Option<Watch>,
    /// Prices for rows that come without a cost.
    pricing: Pricing,
    /// Stored rows still to be priced again after a change of prices.
    repricing: Option<Repricing>,
    /// Where to ask for WAL checkpoints off this thread; `None` in tests
    /// that run the store alone (the writer then checkpoints itself).
    checkpoints: Option<CheckpointRequest>,
    /// A fault armed by a test, run at the next flush.
    #[cfg(feature = "fault-injection")]
    fault: Option<crate::fault::FaultKind>,
}

impl StoreActor {
    /// A store over an already opened and migrated connection.
    pub fn new(
        path: PathBuf,
        conn: Connection,
        stats: Arc<Stats>,
        log: Logger,
        watch: Option<Watch>,
        pricing: Pricing,
    ) -> Self {
        apply_wal_limit(&conn, watch.as_ref(), &log);
        StoreActor {
            path,
            conn: Some(conn),
            parked: Vec::new(),
            flush_queued: false,
            closed: false,
            stats,
            log,
            watch,
            pricing,
            repricing: None,
            checkpoints: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    /// Asks `checkpoints` for WAL checkpoints after commits.
    pub fn checkpoints(mut self, checkpoints: CheckpointRequest) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Prices stored rows again, a step at a time, after a change of prices.
    pub fn repricing(mut self, job: Option<Repricing>) -> Self {
        self.repricing = job;
        self
    }

    /// Runs one step of the re-pricing, then queues the next behind whatever
    /// else is waiting, so ingest is never held for long.
    fn reprice_step(&mut self, ctx: &mut Context<Self>) {
        let Some(mut job) = self.repricing else {
            return;
        };
        let pricing = self.pricing.clone();
        let step = self.write_now(ctx, |conn| {
            rollup::reprice_step(conn, &pricing, &mut job, REPRICE_STEP_ROWS)
        });
        match step {
            Ok(true) => {
                info!(self.log, "stored LLM calls priced with the current price table";
                    "rows_changed" => job.changed, "fingerprint" => &pricing.fingerprint);
                self.repricing = None;
            }
            Ok(false) => {
                self.repricing = Some(job);
                ctx.notify(RepriceStep);
            }
            Err(e) => {
                warn!(self.log, "pricing stored LLM calls again failed; retrying in 10s"; "error" => e.to_string());
                ctx.run_later(Duration::from_secs(10), |act, ctx| act.reprice_step(ctx));
            }
        }
    }

    /// Opens the connection again after a restart; retries every second.
    fn reopen(&mut self, ctx: &mut Context<Self>) {
        if self.conn.is_some() || self.closed {
            return;
        }
        match schema::open_writer(&self.path) {
            Ok(conn) => {
                apply_wal_limit(&conn, self.watch.as_ref(), &self.log);
                info!(self.log, "database reopened"; "path" => self.path.display().to_string());
                self.conn = Some(conn);
            }
            Err(e) => {
                error!(self.log, "database reopen failed; retrying in 1s"; "error" => e.to_string());
                ctx.run_later(std::time::Duration::from_secs(1), |act, ctx| {
                    act.reopen(ctx)
                });
            }
        }
    }

    /// Commits every parked append in one transaction and answers each caller.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.flush_queued = false;
        if self.parked.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.parked);
        let Some(conn) = self.conn.as_mut() else {
            let why = StoreError::Unavailable("the write connection is being reopened".into());
            for p in parked {
                p.answer(Err(why.clone()));
            }
            return;
        };
        #[cfg(feature = "fault-injection")]
        let fault = self.fault.take();
        let pricing = &self.pricing;
        let mut tally = Tally::default();
        let outcome = contain(ActorName::Store, &self.stats, &self.log, ctx, || {
            #[cfg(feature = "fault-injection")]
            if let Some(fault) = fault {
                fault.strike();
            }
            write_group(conn, &parked, pricing, &mut tally)
        });
        match outcome {
            Ok(Ok(results)) => {
                self.stats.committed();
                tally.record(&self.stats.rows);
                for (p, result) in parked.into_iter().zip(results) {
                    p.answer(result);
                }
                self.wrote(ctx);
            }
            Ok(Err(e)) => {
                let why = self.failed(e);
                if !matches!(why, StoreError::DiskFull(_)) {
                    warn!(self.log, "group commit failed"; "error" => why.to_string(), "appends" => parked.len());
                }
                for p in parked {
                    p.answer(Err(why.clone()));
                }
            }
            Err(panicked) => {
                for p in parked {
                    p.answer(Err(panicked.into()));
                }
            }
        }
    }
}

impl StoreActor {
    /// Takes committed deletes out of the row counts.
    fn count_deleted(&self, d: &Deleted) {
        match d.target {
            Target::Data(table) => self.stats.rows.removed(table, d.rows, d.unpushed),
            Target::DeadLetters => self.stats.rows.dead_lettered(-(d.rows as i64)),
            Target::CumulativeSeries => {}
        }
    }

    /// A write succeeded: a disk-full episode is over; look at the bounds
    /// now, or as soon as the rate limit allows (so the last commit of a
    /// burst is looked at too).
    fn wrote(&mut self, ctx: &mut Context<Self>) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.committed();
        }
        if self.stats.disk_full() && self.stats.set_disk_full(false) {
            info!(
                self.log,
                "database writes succeed again; disk-full episode over"
            );
        }
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        if !watch.too_soon() {
            if let Some(conn) = self.conn.as_ref() {
                watch.look(conn);
            }
        } else if !watch.deferred {
            watch.deferred = true;
            ctx.run_later(WATCH_EVERY, |act, _| {
                if let Some(watch) = act.watch.as_mut() {
                    watch.deferred = false;
                    if let Some(conn) = act.conn.as_ref() {
                        watch.look(conn);
                    }
                }
            });
        }
    }

    /// A write failed: the error callers get; a full disk also starts (or
    /// continues) a disk-full episode.
    fn failed(&mut self, e: rusqlite::Error) -> StoreError {
        let why = write_error(e);
        if matches!(why, StoreError::DiskFull(_)) {
            self.out_of_space(&why);
        }
        why
    }

    /// A write failed for want of space: logged once per episode, and an
    /// emergency rotation asked for at every failure (it coalesces).
    fn out_of_space(&mut self, why: &StoreError) {
        if self.stats.set_disk_full(true) {
            error!(self.log, "database write failed for want of space; refusing writes with 507/503 until space is freed";
                "error" => why.to_string());
        }
        if let Some(watch) = &self.watch {
            watch.trigger.request(true);
        }
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reopen(ctx);
        if self.repricing.is_some() {
            ctx.notify(RepriceStep);
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        slog::debug!(self.log, "store actor stopped"; "closed" => self.closed);
    }
}

impl Supervised for StoreActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.stats.restarted(ActorName::Store);
        warn!(self.log, "store actor restarting");
        // Dropping the connection rolls back whatever the crash left open.
        self.conn = None;
        self.flush_queued = false;
        let why = StoreError::Panicked(Panicked(ActorName::Store.as_str()));
        for p in self.parked.drain(..) {
            p.answer(Err(why.clone()));
        }
    }
}

impl StoreActor {
    /// Parks an append for the next group commit, which sends its result on
    /// `reply`.
    fn park(
        &mut self,
        msg: AppendRecords,
        reply: oneshot::Sender<AppendResult>,
        admitted: Option<Admitted>,
        ctx: &mut Context<Self>,
    ) {
        let parked = Parked {
            batches: msg.batches,
            stamp: msg.stamp,
            position: msg.position,
            reply,
            admitted,
        };
        if self.closed {
            parked.answer(Err(StoreError::Closed));
            return;
        }
        self.parked.push(parked);
        if !self.flush_queued {
            self.flush_queued = true;
            ctx.notify(Flush);
        }
    }
}

impl Handler<AppendRecords> for StoreActor {
    type Result = ResponseFuture<AppendResult>;

    fn handle(&mut self, msg: AppendRecords, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.park(msg, reply, None, ctx);
        Box::pin(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Panicked(Panicked(ActorName::Store.as_str()))))
        })
    }
}

impl Handler<AppendAndAnswer> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: AppendAndAnswer, ctx: &mut Context<Self>) {
        self.park(msg.append, msg.answer, Some(msg.admitted), ctx);
    }
}

impl Handler<Flush> for StoreActor {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl StoreActor {
    /// Runs a small write outside the group commit (cursor moves). Pending
    /// appends are committed first so the order of effects is kept.
    fn write_now<R>(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        self.flush(ctx);
        let conn = self.conn.as_mut().ok_or_else(|| {
            StoreError::Unavailable("the write connection is being reopened".into())
        })?;
        let done = work(conn).map_err(|e| self.failed(e))?;
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.committed();
        }
        Ok(done)
    }
}

impl Handler<MarkPushed> for StoreActor {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: MarkPushed, ctx: &mut Context<Self>) -> Self::Result {
        let passed = self.write_now(ctx, |conn| advance_cursor(conn, msg.table, msg.up_to))?;
        self.stats.rows.pushed(msg.table, passed);
        Ok(())
    }
}

impl Handler<DeadLetter> for StoreActor {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: DeadLetter, ctx: &mut Context<Self>) -> Self::Result {
        self.write_now(ctx, |conn| {
            let tx = conn.transaction()?;
            let now = now_ns();
            tx.execute(
                "INSERT INTO dead_letters (table_name, row_id, last_row_id, status, message, time_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![msg.table.name(), msg.row_id, msg.last_row_id, msg.status, msg.message, now],
            )?;
            let passed = advance_cursor(&tx, msg.table, msg.last_row_id)?;
            tx.commit()?;
            Ok(passed)
        })
        .map(|passed| {
            self.stats.rows.pushed(msg.table, passed);
            self.stats.rows.dead_lettered(1);
        })
    }
}

/// Moves `table`'s push cursor to `up_to`; it never moves back. Returns the
/// rows it passed (a range of the primary key: cheap).
fn advance_cursor(conn: &Connection, table: Table, up_to: i64) -> rusqlite::Result<u64> {
    let before = cursor_of(conn, Target::Data(table))?.unwrap_or(0);
    conn.prepare_cached(
        "UPDATE push_cursors SET last_pushed_id = max(last_pushed_id, ?2), updated_ns = ?3
         WHERE table_name = ?1",
    )?
    .execute(params![table.name(), up_to, now_ns()])?;
    if up_to <= before {
        return Ok(0);
    }
    let passed: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM {} WHERE id > ?1 AND id <= ?2",
            table.name()
        ))?
        .query_row([before, up_to], |r| r.get(0))?;
    Ok(passed as u64)
}

impl Handler<DeleteOlderThan> for StoreActor {
    type Result = Result<Deleted, StoreError>;

    fn handle(&mut self, msg: DeleteOlderThan, ctx: &mut Context<Self>) -> Self::Result {
        self.write_now(ctx, |conn| {
            let target = msg.target;
            let cursor = cursor_of(conn, target)?;
            let (key, time) = (target.key_column(), target.time_column());
            let sql = format!(
                "DELETE FROM {t} WHERE {key} IN
                    (SELECT {key} FROM {t} WHERE {time} < ?1 ORDER BY {time} LIMIT ?2)
                 RETURNING {id}{facts}",
                t = target.name(),
                id = if cursor.is_some() { "rowid" } else { "0" },
                facts = facts_of(target),
            );
            let ids = delete_rows(conn, target, &sql, params![msg.cutoff_ns, msg.limit as i64])?;
            Ok(deleted(target, &ids, cursor))
        })
        .inspect(|d| self.count_deleted(d))
    }
}

impl Handler<DeleteOldest> for StoreActor {
    type Result = Result<Deleted, StoreError>;

    fn handle(&mut self, msg: DeleteOldest, ctx: &mut Context<Self>) -> Self::Result {
        self.write_now(ctx, |conn| {
            // The table whose first deletable row is oldest by its own time,
            // with its push cursor and the highest id that may go.
            let mut oldest: Option<(i64, Table, i64, i64)> = None;
            for table in Table::ALL {
                let target = Target::Data(table);
                let cursor = cursor_of(conn, target)?.unwrap_or(0);
                let bound = if msg.pushed_only { cursor } else { i64::MAX };
                let first: Option<i64> = conn
                    .prepare_cached(&format!(
                        "SELECT {time} FROM {t} WHERE id <= ?1 ORDER BY id LIMIT 1",
                        t = table.name(),
                        time = target.time_column()
                    ))?
                    .query_row([bound], |r| r.get(0))
                    .optional()?;
                if let Some(time) = first {
                    if oldest.is_none_or(|(t, ..)| time < t) {
                        oldest = Some((time, table, cursor, bound));
                    }
                }
            }
            let Some((_, table, cursor, bound)) = oldest else {
                return Ok(Deleted {
                    target: Target::Data(Table::LlmCalls),
                    rows: 0,
                    unpushed: 0,
                });
            };
            let target = Target::Data(table);
            let sql = format!(
                "DELETE FROM {t} WHERE id IN
                    (SELECT id FROM {t} WHERE id <= ?1 ORDER BY id LIMIT ?2)
                 RETURNING id{facts}",
                t = table.name(),
                facts = facts_of(target),
            );
            let ids = delete_rows(conn, target, &sql, params![bound, msg.limit as i64])?;
            Ok(deleted(Target::Data(table), &ids, Some(cursor)))
        })
        .inspect(|d| self.count_deleted(d))
    }
}

impl Handler<SpaceUsed> for StoreActor {
    type Result = Result<DbSpace, StoreError>;

    fn handle(&mut self, _: SpaceUsed, _ctx: &mut Context<Self>) -> Self::Result {
        let conn = self.conn.as_ref().ok_or_else(|| {
            StoreError::Unavailable("the write connection is being reopened".into())
        })?;
        space_used(conn, &self.path).map_err(write_error)
    }
}

impl Handler<Reclaim> for StoreActor {
    type Result = Result<Reclaimed, StoreError>;

    fn handle(&mut self, msg: Reclaim, ctx: &mut Context<Self>) -> Self::Result {
        let path = self.path.clone();
        self.write_now(ctx, |conn| {
            let before = space_used(conn, &path)?.page_count;
            if msg.pages > 0 {
                // The pragma frees one page per step: step it to the end.
                let mut stmt =
                    conn.prepare(&format!("PRAGMA incremental_vacuum({})", msg.pages))?;
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
            }
            if msg.checkpoint {
                // A reader still on an old snapshot makes TRUNCATE wait; wait
                // briefly, never the full busy timeout, so ingest is not held.
                conn.busy_timeout(CHECKPOINT_WAIT)?;
                let checkpoint = truncate_wal(conn, CHECKPOINT_WAIT);
                conn.busy_timeout(schema::BUSY_TIMEOUT)?;
                checkpoint?;
            }
            let after = space_used(conn, &path)?.page_count;
            Ok(Reclaimed {
                pages_freed: before.saturating_sub(after),
            })
        })
    }
}

/// Sets the writer's WAL bounds from the rotation's settings and logs them:
/// the WAL is cut back to the rotation's limit after each checkpoint, so the
/// file plus its WAL stays within the bound, and it is checkpointed when it
/// holds half the reserve file this volume allows
/// ([`RotationSettings::wal_checkpoint_bytes`]; SQLite's default is every
/// 1000 pages). The rule assumes the reserve file is in place; the
/// [`crate::checkpoint::Checkpointer`] copies the log into the file
/// meanwhile, so what a full disk finds not yet copied is far less.
fn apply_wal_limit(conn: &Connection, watch: Option<&Watch>, log: &Logger) {
    let Some(watch) = watch else { return };
    let volume = fs_usage(&watch.settings.db_dir);
    let pages = set_wal_limits(
        conn,
        &watch.settings,
        volume.as_ref().map_or(0, FsUsage::capacity_bytes),
    );
    // A file an earlier build made keeps its 4 KiB pages (schema::PAGE_SIZE).
    let page_size: i64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap_or(0);
    match volume {
        Ok(_) => info!(log, "WAL bounds"; "checkpoint_pages" => pages,
            "page_size" => page_size, "journal_size_limit" => watch.settings.wal_limit()),
        // Taken for a small volume until the store opens the file again.
        Err(e) => {
            warn!(log, "cannot read the volume's size; the WAL is checkpointed as on a small one";
            "checkpoint_pages" => pages, "page_size" => page_size, "error" => e.to_string())
        }
    }
}

/// Sets `journal_size_limit` and `wal_autocheckpoint` for `settings` on a
/// volume of `capacity` bytes (0: unknown, taken for a small one); returns
/// the checkpoint threshold in pages. Also used by the benchmark's raw
/// SQLite baseline, so that it writes as the store does.
pub fn set_wal_limits(conn: &Connection, settings: &RotationSettings, capacity: u64) -> i64 {
    let limit = i64::try_from(settings.wal_limit()).unwrap_or(i64::MAX);
    // Pragmas that only set a number; they cannot fail on an open connection.
    let _ = conn.pragma_update(None, "journal_size_limit", limit);
    let page_size: i64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap_or(4096);
    let checkpoint_at = i64::try_from(settings.wal_checkpoint_bytes(capacity)).unwrap_or(i64::MAX);
    let pages = (checkpoint_at / page_size.max(512)).max(32);
    let _ = conn.pragma_update(None, "wal_autocheckpoint", pages);
    pages
}

/// How long a rotation's checkpoint waits for readers.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(100);

/// How long the checkpoint at shutdown waits for readers and the
/// checkpointer.
const CLOSE_CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// Copies the whole WAL into the file and truncates it; whether it did.
///
/// SQLite answers a checkpoint "busy" at once, without its busy handler,
/// while another connection (the [`crate::checkpoint::Checkpointer`]) runs
/// one; that lasts milliseconds, so it is tried again until `wait` passes.
fn truncate_wal(conn: &Connection, wait: Duration) -> rusqlite::Result<bool> {
    let start = Instant::now();
    loop {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(true);
        }
        if start.elapsed() >= wait {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The push cursor of a record table; `None` for the bookkeeping tables.
fn cursor_of(conn: &Connection, target: Target) -> rusqlite::Result<Option<i64>> {
    let Target::Data(table) = target else {
        return Ok(None);
    };
    conn.prepare_cached("SELECT last_pushed_id FROM push_cursors WHERE table_name = ?1")?
        .query_row([table.name()], |r| r.get(0))
        .optional()
        .map(|c| Some(c.unwrap_or(0)))
}

/// What a delete of `target` returns after the id: for `llm_calls`, what
/// the rollup sums, so it can be taken away again; for `spans`, the id and
/// trace, whose keys may go with them.
fn facts_of(target: Target) -> String {
    match target {
        Target::Data(Table::LlmCalls) => format!(", {FACT_COLUMNS}"),
        Target::Data(Table::Spans) => ", rowid, trace_id".to_string(),
        _ => String::new(),
    }
}

/// Runs a `DELETE … RETURNING id[, facts]` and collects the ids; deleted
/// LLM calls are taken out of the rollup, and deleted spans' trace keys
/// that name no span any more are deleted, in the same transaction.
fn delete_rows(
    conn: &Connection,
    target: Target,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<i64>> {
    let with_facts = matches!(target, Target::Data(Table::LlmCalls));
    let with_traces = matches!(target, Target::Data(Table::Spans));
    let tx = conn.unchecked_transaction()?;
    let mut rollup = Delta::default();
    // Each deleted span's trace, with the highest id deleted of it.
    let mut traces: HashMap<String, i64> = HashMap::new();
    let mut ids = Vec::new();
    {
        let mut stmt = tx.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        while let Some(row) = rows.next()? {
            ids.push(row.get(0)?);
            if with_facts {
                rollup.add(&CallFacts::from_row(row, 1)?, -1);
            }
            if with_traces {
                let id: i64 = row.get(1)?;
                traces
                    .entry(row.get(2)?)
                    .and_modify(|highest| *highest = id.max(*highest))
                    .or_insert(id);
            }
        }
    }
    rollup.apply(&tx)?;
    forget_trace_keys(&tx, &traces)?;
    tx.commit()?;
    Ok(ids)
}

/// Counts deleted ids, and those past the cursor (never pushed).
fn deleted(target: Target, ids: &[i64], cursor: Option<i64>) -> Deleted {
    Deleted {
        target,
        rows: ids.len() as u64,
        unpushed: cursor.map_or(0, |c| ids.iter().filter(|id| **id > c).count() as u64),
    }
}

/// Pages in use and the WAL's size.
fn space_used(conn: &Connection, path: &std::path::Path) -> rusqlite::Result<DbSpace> {
    let pragma =
        |name: &str| -> rusqlite::Result<i64> { conn.pragma_query_value(None, name, |r| r.get(0)) };
    Ok(DbSpace {
        page_size: pragma("page_size")?.max(0) as u64,
        page_count: pragma("page_count")?.max(0) as u64,
        freelist_pages: pragma("freelist_count")?.max(0) as u64,
        wal_bytes: crate::query::file_sizes(path).wal_bytes,
    })
}

impl Handler<Ping> for StoreActor {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, _: Ping, _ctx: &mut Context<Self>) -> Self::Result {
        let conn = self.conn.as_ref().ok_or_else(|| {
            if self.closed {
                StoreError::Closed
            } else {
                StoreError::Unavailable("the write connection is being reopened".into())
            }
        })?;
        conn.query_row("SELECT 1", [], |_| Ok(()))
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

impl Handler<Close> for StoreActor {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) -> Self::Result {
        self.flush(ctx);
        self.closed = true;
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        // A WAL still in use after the wait is replayed at the next start.
        let checkpoint = truncate_wal(&conn, CLOSE_CHECKPOINT_WAIT)
            .map_err(|e| StoreError::Write(format!("checkpoint: {e}")));
        let close = conn
            .close()
            .map_err(|(_, e)| StoreError::Write(format!("close: {e}")));
        info!(self.log, "database closed"; "checkpointed" => matches!(checkpoint, Ok(true)));
        checkpoint.and(close)
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::fault::InjectFault> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: crate::fault::InjectFault, _ctx: &mut Context<Self>) {
        self.fault = Some(msg.0);
    }
}

/// Writes every parked append inside one transaction. The outer error is a
/// failure of the transaction as a whole.
///
/// The appends are first written side by side with no savepoint: under a
/// savepoint SQLite copies every page it is about to change to a
/// sub-journal first, which cost the store a sixth of its time under load,
/// and an append that fails on its own (a constraint, a value SQLite
/// refuses) is rare. Only when one does is the group written again with a
/// savepoint per append, so that append alone is refused.
fn write_group(
    conn: &mut Connection,
    parked: &[Parked],
    pricing: &Pricing,
    tally: &mut Tally,
) -> Result<Vec<AppendResult>, rusqlite::Error> {
    match write_together(conn, parked, pricing, tally) {
        Ok(results) => Ok(results),
        Err(GroupFailure::Append(e)) if !out_of_space(&e) => {
            write_apart(conn, parked, pricing, tally)
        }
        Err(GroupFailure::Append(e) | GroupFailure::Group(e)) => Err(e),
    }
}

/// Why [`write_together`] gave up.
enum GroupFailure {
    /// An append's own insert failed; nothing of the group was kept.
    Append(rusqlite::Error),
    /// The transaction itself failed (begin, rollups, commit).
    Group(rusqlite::Error),
}

/// Inserts all of `batches` for one append; adds what they wrote to
/// `counted` and `rollup`.
fn insert_append(
    conn: &Connection,
    p: &Parked,
    pricing: &Pricing,
    counted: &mut Tally,
    rollup: &mut Delta,
) -> Result<Vec<Vec<i64>>, rusqlite::Error> {
    let ids = p
        .batches
        .iter()
        .map(|b| {
            let inserted = insert_batch(conn, b, &p.stamp, pricing, rollup)?;
            counted.add(b.table(), inserted.ids.len() as u64);
            counted.add(Table::LlmCalls, inserted.derived_llm_calls);
            Ok(inserted.ids)
        })
        .collect::<Result<_, rusqlite::Error>>()?;
    if let Some(position) = &p.position {
        save_position(conn, position, p.stamp.received_ns)?;
    }
    Ok(ids)
}

/// Saves where a follower stands, with the rows it read (same transaction).
fn save_position(conn: &Connection, at: &Position, now_ns: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO follow_positions (kind, key, path, offset, fingerprint, rows_read,
                rows_failed, updated_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (kind, key) DO UPDATE SET path = excluded.path,
            offset = excluded.offset, fingerprint = excluded.fingerprint,
            rows_read = rows_read + excluded.rows_read,
            rows_failed = rows_failed + excluded.rows_failed,
            updated_ns = excluded.updated_ns",
    )?
    .execute(params![
        at.kind.as_str(),
        at.key,
        at.path,
        at.offset,
        at.fingerprint,
        at.read as i64,
        at.failed as i64,
        now_ns
    ])?;
    Ok(())
}

/// The group in one transaction without savepoints: all appends or none.
fn write_together(
    conn: &mut Connection,
    parked: &[Parked],
    pricing: &Pricing,
    tally: &mut Tally,
) -> Result<Vec<AppendResult>, GroupFailure> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(GroupFailure::Group)?;
    let mut counted = Tally::default();
    let mut rollup = Delta::default();
    let mut results = Vec::with_capacity(parked.len());
    for p in parked {
        let ids = insert_append(&tx, p, pricing, &mut counted, &mut rollup)
            .map_err(GroupFailure::Append)?;
        results.push(Ok(ids));
    }
    rollup.apply(&tx).map_err(GroupFailure::Group)?;
    tx.commit().map_err(GroupFailure::Group)?;
    tally.merge(&counted);
    Ok(results)
}

/// The group in one transaction, each append under its own savepoint, so an
/// append that fails is refused alone and the others are kept.
fn write_apart(
    conn: &mut Connection,
    parked: &[Parked],
    pricing: &Pricing,
    tally: &mut Tally,
) -> Result<Vec<AppendResult>, rusqlite::Error> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(parked.len());
    // The rollups change once per group: the appends that stay add to it.
    let mut rollup = Delta::default();
    let mut counted = Tally::default();
    for p in parked {
        let sp = tx.savepoint()?;
        let mut added_rows = Tally::default();
        let mut added = Delta::default();
        match insert_append(&sp, p, pricing, &mut added_rows, &mut added) {
            Ok(ids) => {
                sp.commit()?;
                counted.merge(&added_rows);
                rollup.merge(added);
                results.push(Ok(ids));
            }
            // Out of space: SQLite may have rolled the whole transaction
            // back, so nothing of this group can be trusted; fail it all.
            Err(e) if out_of_space(&e) => return Err(e),
            // Dropping the savepoint rolls this append back; the others stay.
            Err(e) => results.push(Err(StoreError::Write(e.to_string()))),
        }
    }
    rollup.apply(&tx)?;
    tx.commit()?;
    tally.merge(&counted);
    Ok(results)
}

/// Rows an append added per record table, counted once it commits.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally([u64; Table::ALL.len()]);

impl Tally {
    fn add(&mut self, table: Table, n: u64) {
        self.0[table.index()] += n;
    }

    fn merge(&mut self, other: &Tally) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Adds the tally to the shared counts.
    fn record(&self, counts: &crate::stats::RowCounts) {
        for table in Table::ALL {
            let n = self.0[table.index()];
            if n > 0 {
                counts.added(table, n);
            }
        }
    }
}

/// What [`insert_batch`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The batch's new row ids, in order.
    pub ids: Vec<i64>,
    /// LLM rows derived from the batch (OpenClaw's usage metrics), besides.
    pub derived_llm_calls: u64,
}

const INSERT_LLM_CALL: &str =
    "INSERT INTO llm_calls (time_ns, received_ns, agent_id, source, trace_id, span_id,
            session_id, provider, model, input_text, output_text, prompt_tokens,
            completion_tokens, total_tokens, cache_read_tokens, cache_write_tokens, cost_usd,
            latency_ms, status, error_type, channel, metadata, truncated, cost_source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24)";

const INSERT_ERROR: &str =
    "INSERT INTO errors (time_ns, received_ns, agent_id, source, trace_id, session_id,
            error_type, message, stack_trace, severity, metadata, truncated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

const INSERT_EVENT: &str =
    "INSERT INTO events (time_ns, received_ns, agent_id, source, name, severity, body,
            trace_id, span_id, attributes, severity_number, service_name, resource, scope_name,
            scope_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

const INSERT_METRIC: &str =
    "INSERT INTO metric_points (time_ns, start_time_ns, received_ns, agent_id, source, name,
            kind, unit, value, temporality, is_monotonic, data, attributes, service_name,
            resource, scope_name, scope_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

const INSERT_SPAN: &str =
    "INSERT INTO spans (received_ns, agent_id, trace_id, span_id, parent_span_id, name,
            kind, start_ns, end_ns, status_code, status_message, service_name, resource,
            scope_name, scope_version, attributes, events, links)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18)";

/// Inserts one batch; returns the new row ids in order. Public so the
/// benchmarks can time the same statements without the daemon around them.
///
/// The LLM calls' figures are added to `rollup`, for the caller to write
/// with [`Delta::apply`] in the same transaction, once per group commit.
pub fn insert_batch(
    conn: &Connection,
    batch: &Batch,
    stamp: &Stamp,
    pricing: &Pricing,
    rollup: &mut Delta,
) -> Result<Inserted, rusqlite::Error> {
    let mut derived_llm_calls = 0;
    let ids = match batch {
        Batch::LlmCalls(rows) => {
            let mut stmt = conn.prepare_cached(INSERT_LLM_CALL)?;
            rows.iter()
                .map(|r| insert_llm_call(&mut stmt, r, stamp, pricing, rollup))
                .collect()
        }
        Batch::Errors(rows) => {
            let mut stmt = conn.prepare_cached(INSERT_ERROR)?;
            rows.iter()
                .map(|r| insert_error(&mut stmt, r, stamp))
                .collect()
        }
        Batch::Events(rows) => {
            let mut stmt = conn.prepare_cached(INSERT_EVENT)?;
            let mut resources = ResourceText::default();
            rows.iter()
                .map(|r| insert_event(&mut stmt, r, stamp, &mut resources))
                .collect()
        }
        Batch::MetricPoints(rows) => {
            let ids = {
                let mut stmt = conn.prepare_cached(INSERT_METRIC)?;
                let mut resources = ResourceText::default();
                rows.iter()
                    .map(|r| insert_metric(&mut stmt, r, stamp, &mut resources))
                    .collect::<Result<Vec<_>, _>>()?
            };
            if stamp.source == Source::Otlp {
                let calls = llm_view::usage_calls(conn, rows, stamp)?;
                let mut stmt = conn.prepare_cached(INSERT_LLM_CALL)?;
                for call in calls {
                    insert_llm_call(&mut stmt, &call, stamp, pricing, rollup)?;
                    derived_llm_calls += 1;
                }
            }
            Ok(ids)
        }
        Batch::Spans(rows) => {
            let mut stmt = conn.prepare_cached(INSERT_SPAN)?;
            let mut resources = ResourceText::default();
            let ids = rows
                .iter()
                .map(|r| insert_span(&mut stmt, r, stamp, &mut resources))
                .collect::<Result<Vec<_>, _>>()?;
            key_traces(conn, rows, &ids)?;
            Ok(ids)
        }
    };
    Ok(Inserted {
        ids: ids?,
        derived_llm_calls,
    })
}

/// Writes one `span_traces` key per trace in a batch of spans: the first and
/// last ids of its spans, so a trace is found through a key per batch rather
/// than an index entry per span (see migration 4 in `schema.rs`).
fn key_traces(conn: &Connection, rows: &[SpanRecord], ids: &[i64]) -> rusqlite::Result<()> {
    let mut ranges: HashMap<&str, (i64, i64)> = HashMap::new();
    for (r, &id) in rows.iter().zip(ids) {
        ranges
            .entry(r.trace_id.as_str())
            .and_modify(|(_, last)| *last = id)
            .or_insert((id, id));
    }
    // A key is deleted with the last span it names (`forget_trace_keys`),
    // so one of the same trace and first id (an id SQLite gave out again
    // after the newest spans went) should not be there; if it is, it names
    // no span, and is replaced rather than failing the append.
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO span_traces (first_id, last_id, trace_id) VALUES (?1, ?2, ?3)",
    )?;
    for (trace, (first, last)) in ranges {
        stmt.execute(params![first, last, trace])?;
    }
    Ok(())
}

/// Deletes the `span_traces` keys of the traces of deleted spans that name
/// no span of their trace any more. `deleted` maps each trace to the highest
/// id deleted of it: its keys that start above that id lost nothing. A key
/// still naming a span costs one step to keep (its first id is one, unless
/// that span went), so a long trace's many keys are cheap to look over.
fn forget_trace_keys(conn: &Connection, deleted: &HashMap<String, i64>) -> rusqlite::Result<()> {
    if deleted.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "DELETE FROM span_traces
         WHERE trace_id = ?1 AND first_id <= ?2 AND NOT EXISTS (
            SELECT 1 FROM spans s
            WHERE s.id BETWEEN span_traces.first_id AND span_traces.last_id
                AND s.trace_id = ?1)",
    )?;
    for (trace, highest) in deleted {
        stmt.execute(params![trace, highest])?;
    }
    Ok(())
}

/// The JSON text of an optional object column.
fn json_text(value: &Option<JsonObject>) -> Option<String> {
    value
        .as_ref()
        .map(|m| serde_json::to_string(m).expect("a JSON map with string keys always serializes"))
}

/// The JSON text of an optional list column.
fn json_list(value: &Option<Vec<serde_json::Value>>) -> Option<String> {
    value
        .as_ref()
        .map(|v| serde_json::to_string(v).expect("a JSON value always serializes"))
}

/// The JSON text of the resource of a batch's records, made once while
/// consecutive records share it: an OTLP export repeats one resource over
/// all its items, which share one [`OtlpOrigin`] per scope (compared by
/// pointer), and its scopes the same resource (compared by value).
#[derive(Default)]
struct ResourceText {
    last: Option<(Arc<OtlpOrigin>, Option<String>)>,
}

impl ResourceText {
    /// The text of `origin`'s resource, NULL when there is none.
    fn text(&mut self, origin: Option<&Arc<OtlpOrigin>>) -> Option<&str> {
        let origin = origin?;
        match &mut self.last {
            Some((last, _)) if Arc::ptr_eq(last, origin) => {}
            // A new scope of the same resource: its items match by pointer.
            Some((last, _)) if last.resource == origin.resource => *last = Arc::clone(origin),
            _ => self.last = Some((Arc::clone(origin), json_text(&origin.resource))),
        }
        self.last.as_ref().and_then(|(_, text)| text.as_deref())
    }
}

/// The `truncated` column: the names of the cut fields, or NULL.
fn truncated_text(fields: &[&str]) -> Option<String> {
    (!fields.is_empty()).then(|| fields.join(","))
}

fn insert_llm_call(
    stmt: &mut CachedStatement<'_>,
    r: &LlmCall,
    s: &Stamp,
    pricing: &Pricing,
    rollup: &mut Delta,
) -> Result<i64, rusqlite::Error> {
    let (cost_usd, cost_source) = pricing.cost_of(
        r.cost_usd,
        &PricingInput {
            provider: &r.provider,
            model: &r.model,
            input: r.prompt_tokens,
            output: r.completion_tokens,
            cache_read: r.cache_read_tokens,
            cache_write: r.cache_write_tokens,
        },
    );
    let time_ns = r.time_ns.unwrap_or(s.received_ns);
    rollup.add(
        &CallFacts {
            time_ns,
            source: Cow::Borrowed(r.origin.as_str()),
            provider: Cow::Borrowed(&r.provider),
            model: Cow::Borrowed(&r.model),
            channel: Cow::Borrowed(r.channel.as_deref().unwrap_or_default()),
            session_id: Cow::Borrowed(r.session_id.as_deref().unwrap_or_default()),
            ok: is_ok_status(&r.status),
            input: r.prompt_tokens.unwrap_or(0),
            output: r.completion_tokens.unwrap_or(0),
            cache_read: r.cache_read_tokens.unwrap_or(0),
            cache_write: r.cache_write_tokens.unwrap_or(0),
            cost_usd,
            cost_source,
            latency_ms: r.latency_ms,
        },
        1,
    );
    stmt.insert(params![
        time_ns,
        s.received_ns,
        s.agent_id,
        r.origin.as_str(),
        r.trace_id.as_deref().unwrap_or_default(),
        r.span_id,
        r.session_id,
        r.provider,
        r.model,
        r.input_text,
        r.output_text,
        r.prompt_tokens,
        r.completion_tokens,
        r.total_tokens,
        r.cache_read_tokens,
        r.cache_write_tokens,
        cost_usd,
        r.latency_ms,
        r.status,
        r.error_type,
        r.channel,
        json_text(&r.metadata),
        truncated_text(&r.truncated),
        cost_source.as_str(),
    ])
}

fn insert_error(
    stmt: &mut CachedStatement<'_>,
    r: &ErrorRecord,
    s: &Stamp,
) -> Result<i64, rusqlite::Error> {
    stmt.insert(params![
        r.time_ns.unwrap_or(s.received_ns),
        s.received_ns,
        s.agent_id,
        s.source.as_str(),
        r.trace_id,
        r.session_id,
        r.error_type,
        r.message,
        r.stack_trace,
        r.severity,
        json_text(&r.metadata),
        truncated_text(&r.truncated),
    ])
}

fn insert_event(
    stmt: &mut CachedStatement<'_>,
    r: &EventRecord,
    s: &Stamp,
    resources: &mut ResourceText,
) -> Result<i64, rusqlite::Error> {
    let o = r.origin.as_ref();
    stmt.insert(params![
        r.time_ns.unwrap_or(s.received_ns),
        s.received_ns,
        s.agent_id,
        s.source.as_str(),
        r.name,
        r.severity,
        r.body,
        r.trace_id,
        r.span_id,
        json_text(&r.attributes),
        r.severity_number,
        o.and_then(|o| o.service_name.as_deref()),
        resources.text(o),
        o.and_then(|o| o.scope_name.as_deref()),
        o.and_then(|o| o.scope_version.as_deref()),
    ])
}

fn insert_metric(
    stmt: &mut CachedStatement<'_>,
    r: &MetricPoint,
    s: &Stamp,
    resources: &mut ResourceText,
) -> Result<i64, rusqlite::Error> {
    let o = r.origin.as_ref();
    stmt.insert(params![
        r.time_ns.unwrap_or(s.received_ns),
        r.start_time_ns,
        s.received_ns,
        s.agent_id,
        s.source.as_str(),
        r.name,
        r.kind.as_str(),
        r.unit,
        r.value,
        r.temporality.map(|t| t.as_i32()),
        r.monotonic,
        r.data.as_ref().map(|d| d.to_string()),
        json_text(&r.attributes),
        o.and_then(|o| o.service_name.as_deref()),
        resources.text(o),
        o.and_then(|o| o.scope_name.as_deref()),
        o.and_then(|o| o.scope_version.as_deref()),
    ])
}

fn insert_span(
    stmt: &mut CachedStatement<'_>,
    r: &SpanRecord,
    s: &Stamp,
    resources: &mut ResourceText,
) -> Result<i64, rusqlite::Error> {
    stmt.insert(params![
        s.received_ns,
        s.agent_id,
        r.trace_id,
        r.span_id,
        r.parent_span_id,
        r.name,
        r.kind,
        r.start_ns,
        r.end_ns,
        r.status_code,
        r.status_message,
        r.origin.service_name,
        resources.text(Some(&r.origin)),
        r.origin.scope_name,
        r.origin.scope_version,
        json_text(&r.attributes),
        json_list(&r.events),
        json_list(&r.links),
    ])
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod store_tests;
