//! The WAL checkpointer: copies committed pages from the write-ahead log
//! into the database file on a connection and a thread of its own, so the
//! store's commits do not wait for it.
//!
//! Without it, the commit that takes the WAL past `wal_autocheckpoint`
//! copies the whole log on the store's thread (a tenth of that thread's time
//! under load, plus two `fsync`s). The store asks for a checkpoint after its
//! commits through a [`CheckpointRequest`]; the checkpointer runs a
//! `PASSIVE` checkpoint (it never waits for, nor blocks, readers or the
//! writer) at most every [`MIN_GAP`], and not at all while nothing is
//! written. The writer keeps its own `wal_autocheckpoint` as the bound: it
//! fires only when this actor falls behind, so the WAL is bounded as before.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rusqlite::{Connection, OpenFlags};
use slog::{debug, warn, Logger};

/// Checkpoints are at least this far apart: each costs two `fsync`s, and
/// under load the log gains a few MB in this time (the writer's own
/// threshold is 4 MB at the default bound).
pub const MIN_GAP: Duration = Duration::from_millis(50);

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
            conn: None,
            waiting,
            last: None,
            scheduled: false,
            failing: false,
            quiet: false,
            log,
        }
    }

    /// The connection, opened read-write on the existing file (never
    /// created, never migrated: the store did that).
    fn connection(&mut self) -> rusqlite::Result<&Connection> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                // A checkpoint reads frames from the log and writes pages
                // to the file; it needs no page cache of its own.
                conn.pragma_update(None, "cache_size", -64)?;
                conn
            }
        };
        Ok(self.conn.insert(conn))
    }

    /// One `PASSIVE` checkpoint; returns (frames in the log, frames copied).
    fn run(&mut self) -> rusqlite::Result<(i64, i64)> {
        self.waiting.store(false, Ordering::Release);
        let conn = self.connection()?;
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
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
        let wait = self
            .last
            .map_or(Duration::ZERO, |t| MIN_GAP.saturating_sub(t.elapsed()));
        ctx.run_later(wait, |act, _| {
            act.scheduled = false;
            if act.quiet {
                return;
            }
            match act.run() {
                Ok((frames, copied)) => {
                    act.failing = false;
                    debug!(act.log, "checkpoint"; "wal_frames" => frames, "copied" => copied);
                }
                Err(e) => {
                    // The writer's own autocheckpoint still bounds the log.
                    if !std::mem::replace(&mut act.failing, true) {
                        warn!(act.log, "WAL checkpoint failed; the store checkpoints meanwhile";
                            "error" => e.to_string());
                    }
                    act.conn = None;
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
