//! The SQLite file: connection settings, the schema and its migrations.
//!
//! Migrations are an append-only list; `PRAGMA user_version` holds how many
//! have been applied. Each runs in its own transaction together with the
//! version bump, so a crash leaves the file at one version or the next.
//!
//! All timestamps are unix nanoseconds (`*_ns` columns, `INTEGER`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use scheduled_thread_pool::ScheduledThreadPool;

/// A pool of read-only connections for status, push and queries.
pub type ReadPool = r2d2::Pool<SqliteConnectionManager>;

/// How long a connection waits for a lock before giving up with SQLITE_BUSY.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache per connection, in KiB (SQLite reads a negative size as KiB).
/// Small on purpose: the sidecar must stay light, and WAL reads are cheap.
const CACHE_KIB: i64 = 2048;

/// The page size of a file this build creates (SQLite's default is 4096).
/// A one-record commit rewrites a few whole pages (the row's, its time
/// index's, the two rollups'), so smaller pages write fewer bytes: 2,742-
/// 2,817 bytes a request against 4,192-4,254 under `wrk -t1 -c16`, and the
/// median 1-record p99 of seven rounds 2.43 against 3.59 ms on the test
/// disk. A rollup row whose latency histogram holds more than about 65
/// buckets (latencies spread over more than about 25 times; about 150 at
/// 4 KiB) no longer fits a 2 KiB page's share for one row and takes an
/// overflow page, so with latencies spread from 0.3 to 60 s the saving was
/// 18% and the p99 3.23 against 3.44 ms. A file an earlier build made keeps its 4096: SQLite
/// changes the page size only by rewriting the whole file outside WAL
/// mode. docs/benchmarks-history.md, "Half-size pages".
const PAGE_SIZE: i64 = 2048;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Read connections kept at most; readers are status, push and queries.
const READ_POOL_SIZE: u32 = 4;

/// A read connection unused this long is closed (r2d2 looks every 30 s).
/// The followers read their positions once at start and an idle daemon
/// reads nothing else, so with r2d2's default of 10 minutes a connection
/// (its schema, lookaside and cached pages) sat idle through the first
/// ten minutes. Opening one again costs well under a millisecond, next to
/// a push every 5 minutes (`TRACE_PUSH_INTERVAL`) or a person's query.
const READ_IDLE: Duration = Duration::from_secs(60);

/// The schema, one migration per entry. Never edit an entry that has shipped:
/// add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the record tables, the push cursors, cumulative usage state.
    r#"
    CREATE TABLE llm_calls (
        id                INTEGER PRIMARY KEY,
        time_ns           INTEGER NOT NULL,
        received_ns       INTEGER NOT NULL,
        agent_id          TEXT    NOT NULL,
        source            TEXT    NOT NULL,
        trace_id          TEXT    NOT NULL,
        span_id           TEXT,
        session_id        TEXT,
        provider          TEXT    NOT NULL,
        model             TEXT    NOT NULL,
        input_text        TEXT,
        output_text       TEXT,
        prompt_tokens     INTEGER,
        completion_tokens INTEGER,
        total_tokens      INTEGER,
        cache_read_tokens INTEGER,
        cache_write_tokens INTEGER,
        cost_usd          REAL,
        latency_ms        REAL,
        status            TEXT    NOT NULL,
        error_type        TEXT,
        channel           TEXT,
        metadata          TEXT,
        truncated         TEXT
    );
    CREATE INDEX llm_calls_time ON llm_calls (time_ns);

    CREATE TABLE errors (
        id          INTEGER PRIMARY KEY,
        time_ns     INTEGER NOT NULL,
        received_ns INTEGER NOT NULL,
        agent_id    TEXT    NOT NULL,
        source      TEXT    NOT NULL,
        trace_id    TEXT,
        session_id  TEXT,
        error_type  TEXT    NOT NULL,
        message     TEXT    NOT NULL,
        stack_trace TEXT,
        severity    TEXT    NOT NULL,
        metadata    TEXT,
        truncated   TEXT
    );
    CREATE INDEX errors_time ON errors (time_ns);

    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        time_ns     INTEGER NOT NULL,
        received_ns INTEGER NOT NULL,
        agent_id    TEXT    NOT NULL,
        source      TEXT    NOT NULL,
        name        TEXT    NOT NULL,
        severity    TEXT    NOT NULL,
        body        TEXT,
        trace_id    TEXT,
        span_id     TEXT,
        attributes  TEXT,
        severity_number INTEGER,
        service_name  TEXT,
        resource      TEXT,
        scope_name    TEXT,
        scope_version TEXT
    );
    CREATE INDEX events_time ON events (time_ns);

    CREATE TABLE metric_points (
        id            INTEGER PRIMARY KEY,
        time_ns       INTEGER NOT NULL,
        start_time_ns INTEGER,
        received_ns   INTEGER NOT NULL,
        agent_id      TEXT    NOT NULL,
        source        TEXT    NOT NULL,
        name          TEXT    NOT NULL,
        kind          TEXT    NOT NULL,
        unit          TEXT,
        value         REAL,
        temporality   INTEGER,
        is_monotonic  INTEGER,
        data          TEXT,
        attributes    TEXT,
        service_name  TEXT,
        resource      TEXT,
        scope_name    TEXT,
        scope_version TEXT
    );
    CREATE INDEX metric_points_time ON metric_points (time_ns);
    CREATE INDEX metric_points_name ON metric_points (name, time_ns);

    CREATE TABLE spans (
        id             INTEGER PRIMARY KEY,
        received_ns    INTEGER NOT NULL,
        agent_id       TEXT    NOT NULL,
        trace_id       TEXT    NOT NULL,
        span_id        TEXT    NOT NULL,
        parent_span_id TEXT,
        name           TEXT    NOT NULL,
        kind           INTEGER NOT NULL,
        start_ns       INTEGER NOT NULL,
        end_ns         INTEGER NOT NULL,
        status_code    INTEGER NOT NULL,
        status_message TEXT,
        service_name   TEXT,
        resource       TEXT,
        scope_name     TEXT,
        scope_version  TEXT,
        attributes     TEXT,
        events         TEXT,
        links          TEXT
    );
    CREATE INDEX spans_trace ON spans (trace_id);
    CREATE INDEX spans_start ON spans (start_ns);

    CREATE TABLE push_cursors (
        table_name     TEXT PRIMARY KEY,
        last_pushed_id INTEGER NOT NULL DEFAULT 0,
        updated_ns     INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO push_cursors (table_name) VALUES
        ('llm_calls'), ('errors'), ('events'), ('metric_points'), ('spans');

    -- Rows the remote refused for good (a 400 or 413 for a batch of that
    -- one record): recorded, counted, and passed over by the push cursor.
    -- A host sample is one record over several rows: row_id..last_row_id.
    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY,
        table_name  TEXT    NOT NULL,
        row_id      INTEGER NOT NULL,
        last_row_id INTEGER NOT NULL,
        status      INTEGER NOT NULL,
        message     TEXT    NOT NULL,
        time_ns     INTEGER NOT NULL
    );

    -- The last value of each cumulative usage series, so a point exported
    -- again (SDKs do at flush and at shutdown) adds nothing to llm_calls.
    CREATE TABLE cumulative_series (
        series_key    TEXT PRIMARY KEY,
        start_time_ns INTEGER NOT NULL,
        value         REAL    NOT NULL,
        time_ns       INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: where each call's cost came from, the hourly rollup the owner's
    // summary reads, and a place for facts about the file itself. The
    // rollups are filled from the calls already held; the first start after
    // this migration prices them again (`rollup::reprice_step`).
    r#"
    ALTER TABLE llm_calls ADD COLUMN cost_source TEXT NOT NULL DEFAULT 'unknown';
    UPDATE llm_calls SET cost_source = 'reported' WHERE cost_usd IS NOT NULL;

    CREATE TABLE llm_rollup (
        hour_ns            INTEGER NOT NULL,
        source             TEXT    NOT NULL,
        provider           TEXT    NOT NULL,
        model              TEXT    NOT NULL,
        channel            TEXT    NOT NULL,
        rows               INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        input_tokens       INTEGER NOT NULL,
        output_tokens      INTEGER NOT NULL,
        cache_read_tokens  INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost_reported      REAL    NOT NULL,
        cost_estimated     REAL    NOT NULL,
        unpriced           INTEGER NOT NULL,
        latency            BLOB,
        PRIMARY KEY (hour_ns, source, provider, model, channel)
    ) WITHOUT ROWID;

    CREATE TABLE llm_rollup_sessions (
        day_ns             INTEGER NOT NULL,
        source             TEXT    NOT NULL,
        session_id         TEXT    NOT NULL,
        rows               INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        input_tokens       INTEGER NOT NULL,
        output_tokens      INTEGER NOT NULL,
        cache_read_tokens  INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost_reported      REAL    NOT NULL,
        cost_estimated     REAL    NOT NULL,
        unpriced           INTEGER NOT NULL,
        latency            BLOB,
        PRIMARY KEY (day_ns, source, session_id)
    ) WITHOUT ROWID;

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    -- The rollups of the calls already held. Their latencies are not in
    -- the histograms (SQL cannot build them); their estimated costs come
    -- from the re-pricing that follows at start.
    INSERT INTO llm_rollup
    SELECT (time_ns / 3600000000000) * 3600000000000, source, provider, model,
        coalesce(channel, ''), count(*),
        sum(status NOT IN ('ok', 'success', 'OK', 'Ok')),
        coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
        coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
        coalesce(sum(cost_usd), 0.0), 0.0, count(*) - count(cost_usd), NULL
    FROM llm_calls GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO llm_rollup_sessions
    SELECT (time_ns / 86400000000000) * 86400000000000, source, coalesce(session_id, ''),
        count(*), sum(status NOT IN ('ok', 'success', 'OK', 'Ok')),
        coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
        coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
        coalesce(sum(cost_usd), 0.0), 0.0, count(*) - count(cost_usd), NULL
    FROM llm_calls GROUP BY 1, 2, 3;

    -- The list endpoints filter by these. Errors are few, so an index on
    -- their random trace ids costs little; one on llm_calls' trace ids halved
    -- ingest at 100 calls a request (each insert dirtied a random index
    -- page), so a trace's calls are found by time instead.
    CREATE INDEX errors_trace ON errors (trace_id);
    CREATE INDEX events_name ON events (name, time_ns);
    "#,
    // 3: where the daemon stands in the OpenClaw files it follows (the
    // transcript databases and the gateway log), saved in the same
    // transaction as the rows read from them, so nothing is read twice or
    // skipped across restarts.
    r#"
    -- One row per source followed. `kind` is `transcript` or `gateway_log`;
    -- `key` names the source (a database's path; a log file's device and
    -- inode); `offset` is the last transcript rowid read or the log bytes
    -- read; `fingerprint` tells the row or file read from another that
    -- took its rowid or inode since.
    CREATE TABLE follow_positions (
        kind        TEXT    NOT NULL,
        key         TEXT    NOT NULL,
        path        TEXT    NOT NULL,
        offset      INTEGER NOT NULL,
        fingerprint TEXT,
        rows_read   INTEGER NOT NULL DEFAULT 0,
        rows_failed INTEGER NOT NULL DEFAULT 0,
        updated_ns  INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;

    "#,
    // 4: a trace's spans found through one key per trace and batch instead
    // of an index entry per span. The index on `spans (trace_id)` took an
    // insert at a random place in a growing B-tree for every span, the
    // biggest cost of span ingest once the file held millions of rows.
    r#"
    -- One row per trace and stored batch: the span ids from `first_id` to
    -- `last_id` hold all of that batch's spans of `trace_id`, and may hold
    -- other traces' spans between them. Rows of older files are keyed by
    -- the time their request was received (one per batch, as new rows are:
    -- a range that also holds other batches' spans is only a longer scan).
    -- Rotation deletes a key with the last span it names.
    CREATE TABLE span_traces (
        trace_id TEXT    NOT NULL,
        first_id INTEGER NOT NULL,
        last_id  INTEGER NOT NULL,
        PRIMARY KEY (trace_id, first_id)
    ) WITHOUT ROWID;
    INSERT INTO span_traces (trace_id, first_id, last_id)
    SELECT trace_id, min(id), max(id) FROM spans GROUP BY trace_id, received_ns;
    DROP INDEX IF EXISTS spans_trace;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// SQLite refused.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file beside the database could not be created or narrowed to 0600.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The read pool could not be built.
    #[error("read pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The file was written by a newer build.
    #[error("database schema version {found} is newer than this build's {supported}; upgrade openclaw-trace")]
    TooNew {
        /// `user_version` in the file.
        found: i64,
        /// What this build knows.
        supported: i64,
    },
}

/// Opens (creating if needed) the database for writing and brings its schema
/// up to date. The returned connection is the one the StoreActor owns.
pub fn open_writer(path: &Path) -> Result<Connection, SchemaError> {
    open_writer_telling(path, |_| {})
}

/// [`open_writer`], calling `migrating` with the file's schema version before
/// migrating a file an earlier build wrote (not a new one).
pub fn open_writer_telling(
    path: &Path,
    migrating: impl FnOnce(i64),
) -> Result<Connection, SchemaError> {
    create_private(path)?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The page size and auto_vacuum must be chosen before the first table
    // exists; on an existing file both are no-ops, which is what we want.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // Every insert, rollup and rotation statement stays prepared: rusqlite's
    // default of 16 is fewer than the writer uses, and re-preparing a
    // statement costs more than running it.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut conn, migrating)?;
    // SQLite gives the -wal and -shm files the database file's mode; files
    // left by an older build (0644) are narrowed here too.
    for file in [
        path.to_path_buf(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
    ] {
        make_private(&file)?;
    }
    Ok(conn)
}

/// The database holds prompts and outputs: its files are `0600`, whatever
/// the umask.
const PRIVATE_MODE: u32 = 0o600;

/// Creates `path` empty with mode `0600` when it does not exist yet, so
/// SQLite opens a file that was never readable by others.
fn create_private(path: &Path) -> Result<(), SchemaError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(path)
    {
        Ok(_) => make_private(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(SchemaError::Io(path.display().to_string(), e)),
    }
}

/// Sets `path`'s mode to `0600` when it exists.
fn make_private(path: &Path) -> Result<(), SchemaError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o777 == PRIVATE_MODE => Ok(()),
        Ok(_) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_MODE))
            .map_err(|e| SchemaError::Io(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SchemaError::Io(path.display().to_string(), e)),
    }
}

/// `path` with `suffix` appended (`-wal`, `-shm`).
pub fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    std::path::PathBuf::from(p)
}

/// Applies the migrations the file has not seen yet; `migrating` hears of
/// an older build's file first.
fn migrate(conn: &mut Connection, migrating: impl FnOnce(i64)) -> Result<(), SchemaError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(SchemaError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if (1..SCHEMA_VERSION).contains(&found) {
        migrating(found);
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Turns off `conn`'s lookaside: the 48 KB SQLite allocates for each
/// connection and writes whole as it opens (so all of it is resident) to
/// serve small allocations fast. For a connection that runs one statement
/// now and then. Left as it is when SQLite refuses, which it does only
/// while lookaside memory is in use.
pub fn no_lookaside(conn: &Connection) {
    // SAFETY: the handle is the open connection's own, used on this thread
    // for the duration of the call; SQLITE_DBCONFIG_LOOKASIDE takes a
    // buffer pointer (null: SQLite's own) and two ints, as passed.
    unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            0 as std::ffi::c_int,
            0 as std::ffi::c_int,
        );
    }
}

/// Builds the pool of read-only connections. Call after [`open_writer`], which
/// creates the file and its WAL.
pub fn read_pool(path: &Path) -> Result<ReadPool, SchemaError> {
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            conn.pragma_update(None, "cache_size", -CACHE_KIB / 2)
        });
    let pool = r2d2::Pool::builder()
        .max_size(READ_POOL_SIZE)
        .min_idle(Some(0))
        .idle_timeout(Some(READ_IDLE))
        .connection_timeout(Duration::from_secs(5))
        // r2d2 keeps three threads for its upkeep by default: they open the
        // pool's connections (at most READ_POOL_SIZE, one at a time on one
        // thread) and close idle ones. One is plenty for a pool this small,
        // and each thread is memory the sidecar should not take.
        .thread_pool(Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("r2d2-worker-{}")
                .build(),
        ))
        .build(manager)?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OptionalExtension;

    #[test]
    fn migrates_a_new_file_and_reopens_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = open_writer(&path).expect("open");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
        let vacuum: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .expect("auto_vacuum");
        assert_eq!(vacuum, 2, "auto_vacuum must be INCREMENTAL (2)");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let page: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .expect("page_size");
        assert_eq!(page, PAGE_SIZE);
        drop(conn);
        // A second open finds the schema current and changes nothing.
        let conn = open_writer(&path).expect("reopen");
        let cursors: i64 = conn
            .query_row("SELECT count(*) FROM push_cursors", [], |r| r.get(0))
            .expect("cursors");
        assert_eq!(cursors, 5);
    }

    #[test]
    fn a_file_of_another_page_size_keeps_it() {
        let db = crate::test_support::TestDb::new();
        db.create_with_4_kib_pages();
        let conn = open_writer(&db.path).expect("open");
        let page: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .expect("page_size");
        assert_eq!(page, 4096);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
        conn.execute(
            "INSERT INTO spans (received_ns, agent_id, trace_id, span_id, name, kind,
                start_ns, end_ns, status_code)
             VALUES (1, 'x', 't', 's', 'op', 0, 1, 1, 0)",
            [],
        )
        .expect("insert");
    }

    #[test]
    fn files_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        // An older build's file, readable by all.
        std::fs::write(&path, b"").expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let conn = open_writer(&path).expect("open");
        conn.execute_batch("CREATE TABLE x (a); INSERT INTO x VALUES (1);")
            .expect("write");
        for suffix in ["", "-wal", "-shm"] {
            let file = sibling(&path, suffix);
            let mode = std::fs::metadata(&file).expect(suffix).permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }

    #[test]
    fn the_spans_of_an_older_file_are_keyed_by_trace_and_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = open_writer(&path).expect("open");
        // A file of version 3: an index entry per span, no keys.
        conn.execute_batch(
            "DROP TABLE span_traces;
             CREATE INDEX spans_trace ON spans (trace_id);
             PRAGMA user_version = 3;",
        )
        .expect("downgrade to version 3");
        // Four requests (received at 10, 20, 30, 40): ids 1-3 trace a and 4
        // b; 5 a and 6-7 b; 9 b (8 deleted); 10 and 12 a, 11 b.
        for (id, received, trace) in [
            (1, 10, "a"),
            (2, 10, "a"),
            (3, 10, "a"),
            (4, 10, "b"),
            (5, 20, "a"),
            (6, 20, "b"),
            (7, 20, "b"),
            (9, 30, "b"),
            (10, 40, "a"),
            (11, 40, "b"),
            (12, 40, "a"),
        ] {
            conn.execute(
                "INSERT INTO spans (id, received_ns, agent_id, trace_id, span_id, name, kind,
                    start_ns, end_ns, status_code)
                 VALUES (?1, ?2, 'x', ?3, ?1, 'op', 0, ?1, ?1, 0)",
                rusqlite::params![id, received, trace],
            )
            .expect("insert");
        }
        drop(conn);

        let conn = open_writer(&path).expect("migrate");
        let keys: Vec<(i64, i64, String)> = conn
            .prepare("SELECT first_id, last_id, trace_id FROM span_traces ORDER BY first_id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let key = |a, b, t: &str| (a, b, t.to_string());
        assert_eq!(
            keys,
            vec![
                key(1, 3, "a"),
                key(4, 4, "b"),
                key(5, 5, "a"),
                key(6, 7, "b"),
                key(9, 9, "b"),
                key(10, 12, "a"),
                key(11, 11, "b")
            ]
        );
        let index: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE name = 'spans_trace'",
                [],
                |r| r.get(0),
            )
            .optional()
            .expect("sqlite_master");
        assert_eq!(index, None, "the per-span index is dropped");
        let count = |id| {
            crate::report::lists::trace(&conn, id)
                .expect("trace")
                .span_count
        };
        assert_eq!((count("a"), count("b")), (6, 5));
    }

    #[test]
    fn refuses_a_file_from_a_newer_build() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = open_writer(&path).expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(conn);
        match open_writer(&path) {
            Err(SchemaError::TooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
            other => panic!("expected TooNew, got {other:?}"),
        }
    }
}
