//! The WAL checkpointer: copies committed pages from the write-ahead log
//! into the database file on a connection and a thread of its own, so the
//! store's commits mostly do not wait for it.
//!
//! Without it, the commit that takes the WAL past `wal_autocheckpoint`
//! copies the whole log on the store's thread (a tenth of that thread's time
//! under load, plus two `fsync`s). The store asks for a checkpoint after its
//! commits through a [`CheckpointRequest`]; the checkpointer runs a
//! `PASSIVE` checkpoint, which copies what it can and never waits for, nor
//! blocks, readers or the writer. While the store writes steadily it runs
//! again as soon as it is asked; after a checkpoint with little to copy it
//! waits [`MIN_GAP`] (each one costs two `fsync`s); with nothing written it
//! does not run at all.
//!
//! The writer keeps its own `wal_autocheckpoint`, which bounds the WAL as
//! before. A log only starts over when a write begins with every frame
//! copied, which under a steady stream of commits a checkpoint on another
//! connection never sees: so the writer's own checkpoint still runs at its
//! threshold, but it finds all but the last few frames copied already.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rusqlite::{Connection, OpenFlags};
use slog::{debug, warn, Logger};

/// Checkpoints that find little to copy are at least this far apart: each
/// costs two `fsync`s.
pub const MIN_GAP: Duration = Duration::from_millis(50);

/// A checkpoint that copied at least this many frames is followed by the
/// next one without [`MIN_GAP`]: the store is writing steadily. Frames, not
/// bytes: a trickle of small commits (a host sample's) writes the same few
/// pages whatever the file's page size.
const BUSY_FRAMES: i64 = 64;

/// Checkpoint now (sent by the store after a commit, at most one waiting).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Checkpoint;

/// Stop checkpointing and close the connection (at shutdown, before the
/// store's last checkpoint, which must not find this one running).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Quiesce;

/// The store's side: asks for a checkpoint after a commit without sending a
/// message per commit (one waits at most; the actor clears the flag when it
/// starts).
#[derive(Clone)]
pub struct CheckpointRequest {
    waiting: Arc<AtomicBool>,
    to: Recipient<Checkpoint>,
}

impl CheckpointRequest {
    /// Asks `to`, sharing `waiting` with it.
    pub fn new(waiting: Arc<AtomicBool>, to: Recipient<Checkpoint>) -> Self {
        CheckpointRequest { waiting, to }
    }

    /// Called after a commit: asks for a checkpoint unless one is asked for.
    pub fn committed(&self) {
        if !self.waiting.swap(true, Ordering::AcqRel) {
            self.to.do_send(Checkpoint);
        }
    }
}

/// Runs `PASSIVE` checkpoints of one database on its own connection.
pub struct Checkpointer {
    /// The database.
    path: PathBuf,
    /// Opened at the first checkpoint, dropped after an error.
    conn: Option<Connection>,
    /// Shared with [`CheckpointRequest`]: a request is waiting.
    waiting: Arc<AtomicBool>,
    /// When the last checkpoint ended.
    last: Option<Instant>,
    /// The last checkpoint copied at least [`BUSY_FRAMES`].
    busy: bool,
    /// Frames of the log copied so far, as the last checkpoint counted.
    backfilled: i64,
    /// A checkpoint is scheduled.
    scheduled: bool,
    /// The last checkpoint failed (logged once per run of failures).
    failing: bool,
    /// Set by [`Quiesce`]: no more checkpoints.
    quiet: bool,
    /// Where this actor logs.
    log: Logger,
}

impl Checkpointer {
    /// A checkpointer of `path`; `waiting` is the flag its requests share.
    pub fn new(path: PathBuf, waiting: Arc<AtomicBool>, log: Logger) -> Self {
        Checkpointer {
            path,
            busy: false,
            backfilled: 0,
            conn: None,
            waiting,
            last: None,
            scheduled: false,
            failing: false,
            quiet: false,
            log,
        }
    }

    /// Opens the connection, read-write on the existing file (never
    /// created, never migrated: the store did that).
    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A checkpoint reads frames from the log and writes pages to the
        // file; it needs no page cache of its own, nor the lookaside that
        // speeds up preparing statements (one PRAGMA, prepared each time).
        crate::schema::no_lookaside(&conn);
        conn.pragma_update(None, "cache_size", -64)?;
        Ok(conn)
    }

    /// A `PASSIVE` checkpoint; returns (frames in the log, frames copied).
    fn run(&mut self) -> rusqlite::Result<(i64, i64)> {
        self.waiting.store(false, Ordering::Release);
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.open()?,
        };
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        });
        // After an error the connection is opened anew next time.
        if done.is_ok() {
            self.conn = Some(conn);
        }
        done
    }
}

impl Actor for Checkpointer {
    type Context = Context<Self>;
}

impl Supervised for Checkpointer {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.conn = None;
        self.scheduled = false;
        self.waiting.store(false, Ordering::Release);
    }
}

impl Handler<Checkpoint> for Checkpointer {
    type Result = ();

    fn handle(&mut self, _: Checkpoint, ctx: &mut Context<Self>) {
        if self.scheduled || self.quiet {
            return;
        }
        self.scheduled = true;
        let wait = match self.last {
            Some(t) if !self.busy => MIN_GAP.saturating_sub(t.elapsed()),
            _ => Duration::ZERO,
        };
        ctx.run_later(wait, |act, _| {
            act.scheduled = false;
            if act.quiet {
                return;
            }
            match act.run() {
                Ok((frames, copied)) => {
                    act.failing = false;
                    // The count is of the log so far; a log started over
                    // counts from zero.
                    let new = if copied >= act.backfilled {
                        copied - act.backfilled
                    } else {
                        copied
                    };
                    act.backfilled = copied;
                    act.busy = new >= BUSY_FRAMES;
                    debug!(act.log, "checkpoint"; "wal_frames" => frames, "copied" => copied);
                }
                Err(e) => {
                    // The writer's own autocheckpoint still bounds the log.
                    if !std::mem::replace(&mut act.failing, true) {
                        warn!(act.log, "WAL checkpoint failed; the store checkpoints meanwhile";
                            "error" => e.to_string());
                    }
                }
            }
            act.last = Some(Instant::now());
        });
    }
}

impl Handler<Quiesce> for Checkpointer {
    type Result = ();

    fn handle(&mut self, _: Quiesce, _ctx: &mut Context<Self>) {
        self.quiet = true;
        self.conn = None;
    }
}
