//! The RotationActor: the database stays within its bounds, unattended.
//!
//! Three rules, checked every `TRACE_ROTATE_INTERVAL`, once shortly after
//! start, and at once whenever the store sees a bound passed between ticks
//! (a [`RotationTrigger`]):
//!
//! - **age**: rows whose own time (a record's timestamp, a span's start) is
//!   older than `TRACE_DB_ROTATE_DAYS` go, from every table;
//! - **size**: the database's pages in use stay under a low-water mark below
//!   `TRACE_DB_MAX_BYTES`, oldest rows first, rows the remote already has
//!   before rows it does not;
//! - **volume**: while the filesystem holding the database is more than
//!   `TRACE_DISK_MAX_PERCENT` used, the sidecar gives back space from its own
//!   rows (oldest pushed first) down to a floor, and never touches a file that
//!   is not its own.
//!
//! Every delete is a small chunk sent to the StoreActor, so appends that
//! arrive meanwhile are committed between two chunks and ingest never waits
//! for a whole rotation. Afterwards `PRAGMA incremental_vacuum` gives the
//! freed pages back to the filesystem and the WAL is checkpointed.
//!
//! A full disk is handled by a reserve file (the "ballast") kept beside the
//! database: when a write fails for want of space, the store asks for an
//! emergency rotation, which first deletes the ballast so that SQLite has room
//! to run its deletes, then frees space by the rules above, and writes the
//! ballast again once the volume is back under its bound.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::FutureExt;
use slog::{info, warn, Logger};
use strum::EnumCount;
use tokio::sync::Notify;

use crate::metrics::probes::fs_usage;
use crate::records::Table;
use crate::stats::{ActorName, Stats};
use crate::store::{
    DbSpace, DeleteOlderThan, DeleteOldest, Deleted, Reclaim, SpaceUsed, StoreError,
};
use crate::supervise::panic_message;
use crate::time::now_ns;

/// Why rows were deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RotateReason {
    /// Older than `TRACE_DB_ROTATE_DAYS`.
    Age,
    /// The database passed `TRACE_DB_MAX_BYTES`.
    Size,
    /// The volume passed `TRACE_DISK_MAX_PERCENT`, or a write failed for want
    /// of space.
    Volume,
}

impl RotateReason {
    /// The reason's name in status and metrics.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Position in `RotateReason::VARIANTS`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A table rotation deletes from: the record tables plus the bookkeeping
/// tables that grow with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A record table.
    Data(Table),
    /// Rows the remote refused for good.
    DeadLetters,
    /// The last value of each cumulative usage series.
    CumulativeSeries,
}

impl Target {
    /// Every target, in the order of [`Target::index`]: the record tables,
    /// then the two bookkeeping tables. Built at compile time from
    /// [`Table::ALL`], so a new record table is a target without a word here.
    pub const ALL: [Target; Table::COUNT + 2] = {
        let mut all = [Target::DeadLetters; Table::COUNT + 2];
        let mut i = 0;
        while i < Table::COUNT {
            all[i] = Target::Data(Table::ALL[i]);
            i += 1;
        }
        all[Table::COUNT] = Target::DeadLetters;
        all[Table::COUNT + 1] = Target::CumulativeSeries;
        all
    };

    /// The SQL name of the table.
    pub fn name(self) -> &'static str {
        match self {
            Target::Data(t) => t.name(),
            Target::DeadLetters => "dead_letters",
            Target::CumulativeSeries => "cumulative_series",
        }
    }

    /// The column holding a row's own time, in unix ns.
    pub fn time_column(self) -> &'static str {
        match self {
            Target::Data(Table::Spans) => "start_ns",
            _ => "time_ns",
        }
    }

    /// The column that identifies a row (`cumulative_series` has no rowid).
    pub fn key_column(self) -> &'static str {
        match self {
            Target::CumulativeSeries => "series_key",
            _ => "rowid",
        }
    }

    /// Position in [`Target::ALL`].
    pub fn index(self) -> usize {
        match self {
            Target::Data(t) => t.index(),
            Target::DeadLetters => Table::COUNT,
            Target::CumulativeSeries => Table::COUNT + 1,
        }
    }
}

/// Settings of the rotation.
#[derive(Debug, Clone)]
pub struct RotationSettings {
    /// Time between rotations (`TRACE_ROTATE_INTERVAL`).
    pub interval: Duration,
    /// Delay of the first rotation after start.
    pub first_delay: Duration,
    /// Rows older than this go (`TRACE_DB_ROTATE_DAYS`); `None`: no age limit.
    pub max_age: Option<Duration>,
    /// Bound of the database file plus its WAL (`TRACE_DB_MAX_BYTES`).
    pub max_db_bytes: u64,
    /// Bound of the volume's use, in percent (`TRACE_DISK_MAX_PERCENT`).
    pub disk_max_percent: f64,
    /// The SQLite file.
    pub db_path: PathBuf,
    /// The directory holding it: its filesystem is the volume watched.
    pub db_dir: PathBuf,
    /// Rows deleted per store message.
    pub chunk_rows: usize,
}

/// Store steps shorter than this are not followed by a rest.
const PACE_FROM: Duration = Duration::from_millis(2);

/// A rotation asked for while a failed one ran waits this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// Pages given back to the filesystem per store message (2 MiB of the 2 KiB
/// pages of a file this build made, 4 MiB of an older file's 4 KiB).
const VACUUM_STEP_PAGES: u32 = 1024;

impl RotationSettings {
    /// The size rule deletes until the pages in use are under this.
    pub fn size_low_water(&self) -> u64 {
        self.max_db_bytes / 10 * 7
    }

    /// The store asks for a rotation when the file and WAL pass this.
    pub fn size_high_water(&self) -> u64 {
        self.max_db_bytes / 10 * 9
    }

    /// Free pages kept for new rows to reuse after a size rotation, instead
    /// of giving them back and growing the file again: a tenth of the bound.
    pub fn keep_free_bytes(&self) -> u64 {
        self.max_db_bytes / 10
    }

    /// The WAL is cut back to this after each checkpoint
    /// (`PRAGMA journal_size_limit`): a tenth of the bound, 1 to 64 MiB.
    pub fn wal_limit(&self) -> u64 {
        (self.max_db_bytes / 10).clamp(1 << 20, 64 << 20)
    }

    /// The volume rule never shrinks the database below this: a sixteenth of
    /// the bound, at most 32 MiB (the default bound gives 32 MiB).
    pub fn volume_floor(&self) -> u64 {
        (self.max_db_bytes / 16).min(32 << 20)
    }

    /// Size of the reserve file: a sixteenth of the bound, 256 KiB to 32 MiB
    /// (32 MiB at the default bound); on a small volume see
    /// [`RotationSettings::ballast_bytes_on`].
    pub fn ballast_bytes(&self) -> u64 {
        (self.max_db_bytes / 16).clamp(256 << 10, 32 << 20)
    }

    /// The reserve file's size on a volume of `capacity` bytes: the
    /// settings' size, but at most a sixteenth of a small volume (and at
    /// least 64 KiB).
    pub fn ballast_bytes_on(&self, capacity: u64) -> u64 {
        self.ballast_bytes().min(capacity / 16).max(64 << 10)
    }

    /// The writer checkpoints the WAL when it holds this much: half the
    /// reserve file on a volume of `capacity` bytes. On a full disk the
    /// reserve file, once deleted, then has room for the checkpoint to grow
    /// the file by everything the WAL holds, after which the WAL starts over
    /// and the deletes have room.
    ///
    /// Each of these checkpoints makes the store's thread wait for two
    /// `fsync`s, so the threshold is as large as that rule allows: 16 MiB at
    /// the default bound on a volume of 512 MiB or more, instead of
    /// SQLite's 1,000 pages (measured in docs/benchmarks-history.md, "The writer's
    /// WAL checkpoint").
    pub fn wal_checkpoint_bytes(&self, capacity: u64) -> u64 {
        self.ballast_bytes_on(capacity) / 2
    }

    /// The volume rule deletes until the volume is this full, in percent.
    fn volume_target_percent(&self) -> f64 {
        (self.disk_max_percent - 5.0).max(self.disk_max_percent / 2.0)
    }

    /// The reserve file beside the database.
    pub fn ballast_path(&self) -> PathBuf {
        crate::schema::sibling(&self.db_path, "-reserve")
    }
}

/// How the store (or anyone) asks for a rotation between ticks. Requests made
/// while one runs coalesce into one more run.
#[derive(Debug, Clone, Default)]
pub struct RotationTrigger(Arc<TriggerInner>);

#[derive(Debug, Default)]
struct TriggerInner {
    notify: Notify,
    emergency: AtomicBool,
}

impl RotationTrigger {
    /// Asks for a rotation; `emergency` when a write already failed for want
    /// of space (the ballast goes first).
    pub fn request(&self, emergency: bool) {
        if emergency {
            self.0.emergency.store(true, Ordering::Release);
        }
        self.0.notify.notify_one();
    }

    /// Waits for a request; returns whether it was an emergency.
    async fn wait(&self) -> bool {
        self.0.notify.notified().await;
        self.0.emergency.swap(false, Ordering::AcqRel)
    }
}

/// The store's messages rotation sends, as recipients so a test can stand in.
#[derive(Clone)]
pub struct StoreOps {
    /// Deletes rows older than a time.
    pub older_than: Recipient<DeleteOlderThan>,
    /// Deletes the oldest rows.
    pub oldest: Recipient<DeleteOldest>,
    /// Reads the pages in use.
    pub space: Recipient<SpaceUsed>,
    /// Gives free pages back and checkpoints.
    pub reclaim: Recipient<Reclaim>,
}

/// Why a rotation stopped early.
#[derive(Debug, thiserror::Error)]
enum RotateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store is not running")]
    StoreGone,
}

impl From<MailboxError> for RotateError {
    fn from(_: MailboxError) -> Self {
        RotateError::StoreGone
    }
}

/// What one rotation did.
#[derive(Debug, Default)]
struct Outcome {
    /// Rows deleted, per reason and target.
    deleted: Vec<(RotateReason, Target, u64)>,
    /// Unpushed rows among them.
    dropped: Vec<(RotateReason, Target, u64)>,
    /// Pages given back to the filesystem.
    pages_freed: u64,
}

impl Outcome {
    fn add(&mut self, reason: RotateReason, d: &Deleted) {
        let bump = |list: &mut Vec<(RotateReason, Target, u64)>, n: u64| {
            if n == 0 {
                return;
            }
            match list
                .iter_mut()
                .find(|(r, t, _)| *r == reason && *t == d.target)
            {
                Some(entry) => entry.2 += n,
                None => list.push((reason, d.target, n)),
            }
        };
        bump(&mut self.deleted, d.rows);
        bump(&mut self.dropped, d.unpushed);
    }

    fn total(list: &[(RotateReason, Target, u64)]) -> u64 {
        list.iter().map(|(_, _, n)| n).sum()
    }
}

/// Runs the rotation rules; the free-standing state a run needs.
struct Run {
    settings: Arc<RotationSettings>,
    ops: StoreOps,
    stats: Arc<Stats>,
    outcome: Outcome,
    /// Rows per delete now: the settings' chunk, or fewer on a full disk,
    /// where a delete needs room in the WAL for every page it changes.
    chunk: usize,
    /// Free pages given back per step.
    vacuum_step: u32,
    /// The disk is full: checkpoint between steps to keep the WAL small.
    emergency: bool,
    /// A bound is passed (or the disk is full): delete at full speed.
    urgent: bool,
}

/// Rows per delete at the start of an emergency rotation.
const EMERGENCY_CHUNK_ROWS: usize = 64;

/// Pages given back per step in an emergency rotation.
const EMERGENCY_VACUUM_PAGES: u32 = 64;

impl Run {
    /// Rests as long as the last store step took, so a large rotation takes
    /// at most about half of the store's time and the CPU, and ingest keeps
    /// its latency while it runs. Not when a bound is passed: then space
    /// comes first.
    async fn pace(&mut self, step_took: Duration) {
        if self.urgent || step_took <= PACE_FROM {
            return;
        }
        // A bound passed meanwhile (a burst of ingest): no more rests.
        if over_bound(&self.settings) {
            self.urgent = true;
            return;
        }
        actix_rt::time::sleep(step_took).await;
    }

    /// After a delete failed for want of space: smaller deletes, and a
    /// checkpoint so the WAL starts over. `false` when already at one row.
    async fn shrink_chunk(&mut self) -> bool {
        if self.chunk <= 1 {
            return false;
        }
        self.chunk /= 2;
        let _ = self.checkpoint().await;
        true
    }

    /// Runs one delete of `self.chunk` rows through `send`; while it fails
    /// for want of space, again with smaller chunks.
    async fn delete_chunk<F>(&mut self, send: impl Fn(usize) -> F) -> Result<Deleted, RotateError>
    where
        F: std::future::Future<Output = Result<Result<Deleted, StoreError>, MailboxError>>,
    {
        loop {
            match send(self.chunk).await? {
                Ok(d) => return Ok(d),
                Err(StoreError::DiskFull(_)) if self.shrink_chunk().await => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn delete_older(&mut self, cutoff_ns: i64) -> Result<(), RotateError> {
        for target in Target::ALL {
            loop {
                let began = Instant::now();
                let older_than = self.ops.older_than.clone();
                let d = self
                    .delete_chunk(|limit| {
                        older_than.send(DeleteOlderThan {
                            target,
                            cutoff_ns,
                            limit,
                        })
                    })
                    .await?;
                self.record(RotateReason::Age, &d);
                if (d.rows as usize) < self.chunk {
                    break;
                }
                self.pace(began.elapsed()).await;
            }
        }
        Ok(())
    }

    /// Deletes the oldest rows, pushed ones first, until `enough` says so
    /// (given the pages in use) or nothing is left to delete.
    async fn delete_oldest(
        &mut self,
        reason: RotateReason,
        enough: impl Fn(&DbSpace) -> bool,
    ) -> Result<(), RotateError> {
        for pushed_only in [true, false] {
            loop {
                let space = self.ops.space.send(SpaceUsed).await??;
                if enough(&space) {
                    return Ok(());
                }
                let began = Instant::now();
                let oldest = self.ops.oldest.clone();
                let d = self
                    .delete_chunk(|limit| oldest.send(DeleteOldest { pushed_only, limit }))
                    .await?;
                if d.rows == 0 {
                    break;
                }
                self.record(reason, &d);
                if self.emergency {
                    // Freed pages are reused by the next writes: let them in.
                    let _ = self.checkpoint().await;
                }
                self.pace(began.elapsed()).await;
            }
        }
        Ok(())
    }

    fn record(&mut self, reason: RotateReason, d: &Deleted) {
        self.stats.rotated(reason, d.target, d.rows, d.unpushed);
        self.outcome.add(reason, d);
    }

    /// Gives the free pages back to the filesystem, a step at a time, then
    /// checkpoints the WAL and cuts it back.
    async fn reclaim(&mut self, keep_free_pages: u64) -> Result<(), RotateError> {
        loop {
            let free = self.ops.space.send(SpaceUsed).await??.freelist_pages;
            let Some(excess) = free.checked_sub(keep_free_pages).filter(|n| *n > 0) else {
                break;
            };
            let step = self
                .vacuum_step
                .min(u32::try_from(excess).unwrap_or(u32::MAX));
            let began = Instant::now();
            let r = match self
                .ops
                .reclaim
                .send(Reclaim {
                    pages: step,
                    checkpoint: self.emergency,
                })
                .await?
            {
                Ok(r) => r,
                Err(StoreError::DiskFull(_)) if self.vacuum_step > 1 => {
                    self.vacuum_step /= 2;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.outcome.pages_freed += r.pages_freed;
            if r.pages_freed < u64::from(step) {
                break;
            }
            self.pace(began.elapsed()).await;
        }
        self.checkpoint().await
    }

    /// Checkpoints the WAL into the file and truncates it.
    async fn checkpoint(&mut self) -> Result<(), RotateError> {
        self.ops
            .reclaim
            .send(Reclaim {
                pages: 0,
                checkpoint: true,
            })
            .await??;
        Ok(())
    }

    async fn all(&mut self, emergency: bool, ballast: &Ballast) -> Result<(), RotateError> {
        let settings = Arc::clone(&self.settings);
        if emergency {
            ballast.release();
            // Copy the WAL into the file and cut it to nothing: its space is
            // the first the deletes can use. It may fail on a disk this full.
            let _ = self.checkpoint().await;
        }
        if let Some(max_age) = settings.max_age {
            let cutoff =
                now_ns().saturating_sub(i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX));
            self.delete_older(cutoff).await?;
        }
        if over_size(&settings) {
            let low_water = settings.size_low_water();
            self.delete_oldest(RotateReason::Size, |s| s.used_bytes() <= low_water)
                .await?;
        }
        let volume = volume_excess(&settings, emergency);
        if let Some(need) = volume {
            let floor = settings.volume_floor();
            let start = self.ops.space.send(SpaceUsed).await??.used_bytes();
            self.delete_oldest(RotateReason::Volume, |s| {
                s.used_bytes() <= floor || start.saturating_sub(s.used_bytes()) >= need
            })
            .await?;
        }
        let space = self.ops.space.send(SpaceUsed).await??;
        // The volume needs its space back; otherwise some free pages stay for
        // new rows, so a busy file does not shrink only to grow again.
        let keep = if volume.is_some() {
            0
        } else {
            settings.keep_free_bytes() / space.page_size.max(1)
        };
        if space.freelist_pages > keep || space.wal_bytes > settings.wal_limit() {
            self.reclaim(keep).await?;
        }
        ballast.restore(&settings);
        Ok(())
    }
}

/// Bytes to give back for the volume rule, when the volume is over its bound
/// (or a write already failed for want of space).
fn volume_excess(settings: &RotationSettings, emergency: bool) -> Option<u64> {
    let fs = fs_usage(&settings.db_dir).ok()?;
    let capacity = fs.capacity_bytes();
    if capacity == 0 {
        return None;
    }
    let used_percent = fs.used_bytes as f64 * 100.0 / capacity as f64;
    if !emergency && used_percent <= settings.disk_max_percent {
        return None;
    }
    let target = (settings.volume_target_percent() / 100.0 * capacity as f64) as u64;
    // A full disk gives back at least the ballast's worth, so the next writes fit.
    Some(fs.used_bytes.saturating_sub(target).max(if emergency {
        settings.ballast_bytes_on(capacity)
    } else {
        0
    }))
}

/// Whether the file and its WAL are past the size rule's high-water mark.
fn over_size(settings: &RotationSettings) -> bool {
    let files = crate::query::file_sizes(&settings.db_path);
    files.db_bytes + files.wal_bytes > settings.size_high_water()
}

/// Whether the file and WAL are past the high-water mark, or the volume past
/// its bound: then the rotation does not rest between steps.
fn over_bound(settings: &RotationSettings) -> bool {
    over_size(settings) || volume_over(settings)
}

/// Whether the volume has less room than the reserve file would give: a
/// write that failed for want of space is still likely to fail.
fn disk_short(settings: &RotationSettings) -> bool {
    fs_usage(&settings.db_dir).map_or(true, |fs| {
        fs.available_bytes < settings.ballast_bytes_on(fs.capacity_bytes())
    })
}

/// Whether the volume holding the database is over its bound.
pub fn volume_over(settings: &RotationSettings) -> bool {
    volume_excess(settings, false).is_some()
}

/// The reserve file: space the sidecar holds back so a full disk can be
/// healed (deletes need room in the WAL before they free anything).
struct Ballast {
    path: PathBuf,
    log: Logger,
    /// A failed removal was logged; not again until one succeeds.
    release_failed: AtomicBool,
}

impl Ballast {
    /// Deletes the reserve file, giving its space to the deletes.
    fn release(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                self.release_failed.store(false, Ordering::Relaxed);
                warn!(self.log, "disk full: released the reserve file to make room";
                    "path" => self.path.display().to_string())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A read-only filesystem fails every retry: said once.
            Err(e) => {
                if !self.release_failed.swap(true, Ordering::Relaxed) {
                    warn!(self.log, "could not remove the reserve file"; "error" => e.to_string());
                }
            }
        }
    }

    /// Writes the reserve file again when it is missing and the volume has
    /// room for it without passing its bound. On a small volume it is at
    /// most a sixteenth of the volume.
    fn restore(&self, settings: &RotationSettings) {
        let Ok(fs) = fs_usage(&settings.db_dir) else {
            return;
        };
        let capacity = fs.capacity_bytes();
        let bytes = settings.ballast_bytes_on(capacity);
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= bytes) {
            return;
        }
        let after = (fs.used_bytes + bytes) as f64 * 100.0 / capacity.max(1) as f64;
        if fs.available_bytes < bytes * 2 || after > settings.disk_max_percent {
            return;
        }
        if let Err(e) = write_ballast(&self.path, bytes) {
            let _ = std::fs::remove_file(&self.path);
            warn!(self.log, "could not write the reserve file"; "error" => e.to_string());
        }
    }
}

/// Writes `bytes` zeros to `path` (really allocated: no sparse file), `0600`.
fn write_ballast(path: &Path, bytes: u64) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let block = vec![0u8; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// The rotation actor.
pub struct RotationActor {
    settings: Arc<RotationSettings>,
    ops: StoreOps,
    trigger: RotationTrigger,
    stats: Arc<Stats>,
    log: Logger,
    ballast: Arc<Ballast>,
    /// A rotation is running.
    running: bool,
    /// Another was asked for while one ran (and whether it is an emergency).
    again: Option<bool>,
    /// How the last rotation failed, so a failure is logged once.
    last_error: Option<String>,
    /// The last rotation failed: requests wait a moment.
    cooling: bool,
    /// A fault armed by a test, struck in the next run.
    #[cfg(feature = "fault-injection")]
    fault: Option<crate::fault::FaultKind>,
}

impl RotationActor {
    /// A rotation over the store's `ops`, asked for by `trigger` between ticks.
    pub fn new(
        settings: RotationSettings,
        ops: StoreOps,
        trigger: RotationTrigger,
        stats: Arc<Stats>,
        log: Logger,
    ) -> Self {
        let ballast = Arc::new(Ballast {
            path: settings.ballast_path(),
            log: log.clone(),
            release_failed: AtomicBool::new(false),
        });
        RotationActor {
            settings: Arc::new(settings),
            ops,
            trigger,
            stats,
            log,
            ballast,
            running: false,
            again: None,
            last_error: None,
            cooling: false,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    /// Starts a rotation unless one is running (then one more follows it).
    fn start(&mut self, emergency: bool, ctx: &mut Context<Self>) {
        if self.running || self.cooling {
            self.again = Some(self.again.unwrap_or(false) || emergency);
            return;
        }
        self.running = true;
        #[cfg(feature = "fault-injection")]
        let fault = self.fault.take();
        // A request from a write that failed may arrive after space came
        // back (a run that just ended freed it): no emergency then.
        let emergency = emergency && disk_short(&self.settings);
        let urgent = emergency || over_bound(&self.settings);
        let mut run = Run {
            urgent,
            settings: Arc::clone(&self.settings),
            ops: self.ops.clone(),
            stats: Arc::clone(&self.stats),
            outcome: Outcome::default(),
            chunk: if emergency {
                EMERGENCY_CHUNK_ROWS.min(self.settings.chunk_rows)
            } else {
                self.settings.chunk_rows
            },
            vacuum_step: if emergency {
                EMERGENCY_VACUUM_PAGES
            } else {
                VACUUM_STEP_PAGES
            },
            emergency,
        };
        let ballast = Arc::clone(&self.ballast);
        let started = Instant::now();
        let work = async move {
            #[cfg(feature = "fault-injection")]
            if let Some(fault) = fault {
                fault.strike();
            }
            let result = run.all(emergency, &ballast).await;
            (result, run.outcome)
        };
        std::panic::AssertUnwindSafe(work)
            .catch_unwind()
            .into_actor(self)
            .map(move |caught, act, ctx| {
                act.running = false;
                let failed;
                match caught {
                    Ok((result, outcome)) => {
                        failed = result.is_err();
                        act.finish(result, outcome, started);
                    }
                    Err(payload) => {
                        // A panic in the run: counted, logged, and the
                        // supervisor restarts the actor (actix would not).
                        act.stats.panicked(ActorName::Rotation);
                        slog::error!(act.log, "actor panicked; restarting it";
                            "actor" => ActorName::Rotation.as_str(),
                            "panic" => panic_message(payload.as_ref()));
                        ctx.stop();
                        return;
                    }
                }
                if failed {
                    // The disk is still full: try again in a moment, not at
                    // every refused request.
                    act.cooling = true;
                    ctx.run_later(RETRY_AFTER_FAILURE, |act, ctx| {
                        act.cooling = false;
                        if let Some(emergency) = act.again.take() {
                            act.start(emergency, ctx);
                        }
                    });
                } else if let Some(emergency) = act.again.take() {
                    // Requests queued by writes that failed before this run
                    // freed space are checked again at the start.
                    act.start(emergency, ctx);
                }
            })
            .spawn(ctx);
    }

    fn finish(&mut self, result: Result<(), RotateError>, outcome: Outcome, started: Instant) {
        let took = started.elapsed();
        self.stats.rotation_done(now_ns(), took);
        let deleted = Outcome::total(&outcome.deleted);
        let dropped = Outcome::total(&outcome.dropped);
        let list = |l: &[(RotateReason, Target, u64)]| {
            l.iter()
                .map(|(r, t, n)| format!("{}:{}={n}", r.as_str(), t.name()))
                .collect::<Vec<_>>()
                .join(",")
        };
        match &result {
            // Logged when the failure starts or changes, not at every retry.
            Err(e) if self.last_error.as_deref() != Some(e.to_string().as_str()) => {
                warn!(self.log, "rotation stopped early; the next one goes on";
                    "error" => e.to_string(), "deleted_rows" => deleted);
                self.last_error = Some(e.to_string());
            }
            Err(_) => {}
            Ok(()) => self.last_error = None,
        }
        if dropped > 0 {
            warn!(self.log, "rotation deleted rows that were never pushed";
                "dropped_rows" => dropped, "dropped" => list(&outcome.dropped));
        }
        if deleted > 0 || outcome.pages_freed > 0 {
            info!(self.log, "rotation done"; "deleted_rows" => deleted,
                "deleted" => list(&outcome.deleted), "pages_freed" => outcome.pages_freed,
                "took_ms" => took.as_millis() as u64);
        }
    }

    /// Waits for the next request from the trigger, then rotates and waits again.
    fn listen(&mut self, ctx: &mut Context<Self>) {
        let trigger = self.trigger.clone();
        async move { trigger.wait().await }
            .into_actor(self)
            .map(|emergency, act, ctx| {
                act.start(emergency, ctx);
                act.listen(ctx);
            })
            .spawn(ctx);
    }
}

impl Actor for RotationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(self.log, "rotation armed";
            "interval_s" => self.settings.interval.as_secs(),
            "max_age_days" => self.settings.max_age.map(|d| d.as_secs_f64() / 86_400.0),
            "max_db_bytes" => self.settings.max_db_bytes,
            "disk_max_percent" => self.settings.disk_max_percent);
        self.running = false;
        self.listen(ctx);
        ctx.run_later(self.settings.first_delay, |act, ctx| act.start(false, ctx));
        ctx.run_interval(self.settings.interval, |act, ctx| act.start(false, ctx));
    }
}

impl Supervised for RotationActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.stats.restarted(ActorName::Rotation);
        warn!(self.log, "rotation actor restarting");
        self.running = false;
        self.again = None;
        self.cooling = false;
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::fault::InjectFault> for RotationActor {
    type Result = ();

    /// Arms the fault and rotates at once, so it strikes now.
    fn handle(&mut self, msg: crate::fault::InjectFault, ctx: &mut Context<Self>) {
        self.fault = Some(msg.0);
        self.start(false, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::rotation_settings as settings;
    use strum::VariantArray;

    #[test]
    fn marks_and_floors_follow_the_bound() {
        let s = settings(512 << 20);
        assert!(s.size_low_water() < s.size_high_water());
        assert!(s.size_high_water() < s.max_db_bytes);
        assert_eq!(s.volume_floor(), 32 << 20);
        assert_eq!(s.ballast_bytes(), 32 << 20);
        assert_eq!(s.wal_checkpoint_bytes(8 << 30), 16 << 20);
        assert_eq!(
            s.wal_checkpoint_bytes(16 << 20),
            512 << 10,
            "half of a sixteenth of a small volume"
        );
        assert_eq!(s.wal_limit(), (512 << 20) / 10);
        assert_eq!(
            s.ballast_path(),
            PathBuf::from("/data/openclaw-trace.db-reserve")
        );
        let tiny = settings(1 << 20);
        assert_eq!(tiny.ballast_bytes(), 256 << 10, "never below 256 KiB");
        assert_eq!(tiny.wal_limit(), 1 << 20, "never below 1 MiB");
    }

    #[test]
    fn targets_have_distinct_indexes_in_order() {
        for (i, t) in Target::ALL.iter().enumerate() {
            assert_eq!(t.index(), i, "{}", t.name());
        }
        for (i, r) in RotateReason::VARIANTS.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
