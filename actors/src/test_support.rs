//! What the actors' unit tests share: a database file in a temporary
//! directory, a StoreActor on a thread of its own over it, and a way to hold
//! that thread, so a test decides when the store may go on instead of
//! racing it.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use actix::prelude::*;
use rusqlite::Connection;
use slog::{o, Logger};

use crate::records::{Batch, EventRecord, Source, Stamp};
use crate::rollup::Pricing;
use crate::schema;
use crate::stats::Stats;
use crate::store::{AppendRecords, StoreActor};

/// How long a hold lasts when the test never releases it (a hang guard).
const HOLD_AT_MOST: Duration = Duration::from_secs(60);

/// A database file in a directory removed with it.
pub struct TestDb {
    /// Holds the directory.
    _dir: tempfile::TempDir,
    /// The SQLite file.
    pub path: PathBuf,
}

impl TestDb {
    /// A new, empty database file (created and migrated by the store).
    pub fn new() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("trace.db");
        TestDb { _dir: dir, path }
    }

    /// Creates the file as an earlier build did, with SQLite's default
    /// 4 KiB pages in WAL mode (switching to WAL writes the header, which
    /// fixes the page size), before the store or a test opens it.
    pub fn create_with_4_kib_pages(&self) {
        let conn = Connection::open(&self.path).expect("create");
        conn.pragma_update(None, "page_size", 4096)
            .expect("page_size");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
    }

    /// A read-only connection of the test's own.
    pub fn read(&self) -> Connection {
        Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database read-only")
    }
}

/// A logger that drops everything.
pub fn quiet() -> Logger {
    Logger::root(slog::Discard, o!())
}

/// A StoreActor over `path` on an arbiter (thread) of its own; `prepare`
/// runs on its write connection first (a trigger, say).
pub struct StoreThread {
    /// The store.
    pub addr: Addr<StoreActor>,
    /// Its thread.
    pub arbiter: Arbiter,
    /// The counters it keeps.
    pub stats: Arc<Stats>,
}

impl StoreThread {
    /// Starts the store. Must run inside an actix system.
    pub fn start(path: &Path, prepare: impl FnOnce(&Connection)) -> StoreThread {
        let conn = schema::open_writer(path).expect("open and migrate the database");
        prepare(&conn);
        let stats = Arc::new(Stats::default());
        let arbiter = Arbiter::new();
        let actor = StoreActor::new(
            path.to_path_buf(),
            conn,
            Arc::clone(&stats),
            quiet(),
            None,
            Pricing::none(),
        );
        let addr = StoreActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        StoreThread {
            addr,
            arbiter,
            stats,
        }
    }

    /// Sends `append` and waits for its commit; the row ids, per batch.
    pub async fn commit(&self, append: AppendRecords) -> Vec<Vec<i64>> {
        self.addr
            .send(append)
            .await
            .expect("answered")
            .expect("committed")
    }

    /// Blocks the store's thread until the hold is released or dropped:
    /// messages sent meanwhile wait in its mailbox. Returns once the thread
    /// is held.
    pub fn hold(&self) -> Hold {
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let spawned = self.arbiter.spawn_fn(move || {
            let _ = held_tx.send(());
            let _ = release_rx.recv_timeout(HOLD_AT_MOST);
        });
        assert!(spawned, "the store's arbiter is running");
        held_rx
            .recv_timeout(HOLD_AT_MOST)
            .expect("the store's thread was held");
        Hold {
            release: Some(release_tx),
        }
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        self.arbiter.stop();
    }
}

/// A held thread; released when dropped.
pub struct Hold {
    release: Option<mpsc::Sender<()>>,
}

impl Hold {
    /// Lets the thread go on.
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

/// Makes SQLite refuse, with the error "poisoned", a row of `table` whose
/// `column` is `'poison'`: a real database failure for one record. For
/// [`StoreThread::start`]'s `prepare`.
pub fn refuse_poison(conn: &Connection, table: &str, column: &str) {
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON {table} WHEN NEW.{column} = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END;"
    ))
    .expect("create the trigger");
}

/// An event named `name`.
pub fn event(name: &str) -> EventRecord {
    EventRecord {
        time_ns: Some(1_764_324_000_000_000_000),
        name: name.to_string(),
        severity: "info".to_string(),
        ..EventRecord::default()
    }
}

/// A native stamp.
pub fn stamp() -> Stamp {
    Stamp {
        agent_id: "test-agent".to_string(),
        received_ns: 1_764_324_000_000_000_000,
        source: Source::Native,
        openclaw_metric_prefix: crate::llm_view::DEFAULT_METRIC_PREFIX.into(),
    }
}

/// An append of one event per name.
pub fn append(names: &[&str]) -> AppendRecords {
    AppendRecords {
        position: None,
        batches: Arc::new(vec![Batch::Events(
            names.iter().map(|n| event(n)).collect(),
        )]),
        stamp: stamp(),
    }
}

/// The names of the stored events, in id order.
pub fn event_names(db: &TestDb) -> Vec<String> {
    db.read()
        .prepare("SELECT name FROM events ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Rotation settings of the bound `max_db_bytes` for a database at
/// `/data/openclaw-trace.db`, with the daemon's other defaults.
pub fn rotation_settings(max_db_bytes: u64) -> crate::rotate::RotationSettings {
    crate::rotate::RotationSettings {
        interval: Duration::from_secs(600),
        first_delay: Duration::from_secs(5),
        max_age: None,
        max_db_bytes,
        disk_max_percent: 90.0,
        db_path: PathBuf::from("/data/openclaw-trace.db"),
        db_dir: PathBuf::from("/data"),
        chunk_rows: 2000,
    }
}
