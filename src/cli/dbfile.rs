//! Reading the database file directly (`--db PATH`), without ever writing
//! it, whether the daemon runs or not.
//!
//! The daemon keeps the file in WAL mode. SQLite opens a read-only
//! connection to a WAL database by creating `-wal` and `-shm` beside it when
//! they are absent (and leaves them there), so a plain `SQLITE_OPEN_READ_ONLY`
//! is not enough. What the files say:
//!
//! - **No `-wal`, or an empty one and no `-shm`**: no connection has the
//!   file open (a connection keeps the WAL, and maps the `-shm` index, for
//!   as long as it is open), and everything is in the main file. The file is read with
//!   `immutable=1`: no locks, no WAL, nothing created. What the file system
//!   says (length, mtime, the WAL's length, the index's presence) is looked
//!   at again after the read; if the daemon started meanwhile, the read is
//!   done again the next way.
//! - **`-wal` and `-shm`**: the daemon runs, or stopped without removing
//!   them (it often does: they are left empty): an ordinary read-only
//!   connection reads through them, as the daemon's own read pool does. The
//!   main file is not written; SQLite may rebuild the `-shm` index, which
//!   holds nothing of the data.
//! - **A `-wal` with frames but no `-shm`**: recent writes sit in a WAL that
//!   only a writer can replay; refused, saying so.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use openclaw_trace_actors::rusqlite::{Connection, OpenFlags};
use openclaw_trace_actors::schema::{sibling, SCHEMA_VERSION};

use super::{CliError, Exit};

/// What the file system says about the database at one moment.
#[derive(Debug, PartialEq, Eq)]
struct Look {
    len: u64,
    modified: Option<SystemTime>,
    /// The WAL's length; `None` when absent.
    wal: Option<u64>,
    shm: bool,
}

fn look(path: &Path) -> Result<Look, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => e.to_string(),
        };
        CliError::new(
            Exit::Trouble,
            format!("cannot read the database {}: {why}", path.display()),
        )
    })?;
    if !meta.is_file() {
        return Err(CliError::new(
            Exit::Trouble,
            format!("{} is not a file", path.display()),
        ));
    }
    Ok(Look {
        len: meta.len(),
        modified: meta.modified().ok(),
        wal: std::fs::metadata(sibling(path, "-wal"))
            .ok()
            .map(|m| m.len()),
        shm: sibling(path, "-shm").exists(),
    })
}

/// `path` as an SQLite URI with `immutable=1`: every byte but the
/// unreserved ones and `/` percent-encoded, so `?`, `#` and `%` in a name
/// are read as the name.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// The oldest schema the CLI reads (`llm_rollup` and `meta` are in 2).
const OLDEST_SCHEMA: i64 = 2;

/// Opens `path` read-only as described in the module comment, checks it is
/// an openclaw-trace database this build reads, and runs `read` on it.
pub fn read<T>(
    path: &Path,
    mut read: impl FnMut(&mut Connection) -> Result<T, String>,
) -> Result<T, CliError> {
    let cannot = |e: String| {
        CliError::new(
            Exit::Trouble,
            format!("cannot read the database {}: {e}", path.display()),
        )
    };
    for _ in 0..3 {
        let before = look(path)?;
        let immutable = before.wal.is_none() || (before.wal == Some(0) && !before.shm);
        let mut conn = if immutable {
            Connection::open_with_flags(
                immutable_uri(path),
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        } else if before.shm {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        } else {
            return Err(cannot(format!(
                "{} holds writes but its -shm index is gone: the daemon stopped without \
                 closing the database, and only a writer can replay its WAL; start the daemon \
                 once (it recovers them), then read again",
                sibling(path, "-wal").display()
            )));
        }
        .map_err(|e| cannot(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| cannot(e.to_string()))?;
        check_schema(&conn).map_err(cannot)?;
        let result = read(&mut conn).map_err(cannot);
        drop(conn);
        if !immutable || look(path)? == before {
            return result;
        }
        // The daemon opened the file while it was read immutably: read
        // again through its WAL.
    }
    Err(cannot(
        "it kept changing while it was read; try again".to_string(),
    ))
}

/// Refuses a file that is not an openclaw-trace database of a schema this
/// build reads.
fn check_schema(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'llm_calls'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if version == 0 || tables == 0 {
        return Err("not an openclaw-trace database (it has no llm_calls table)".into());
    }
    if version > SCHEMA_VERSION {
        return Err(format!(
            "its schema version {version} is newer than this build's {SCHEMA_VERSION}; use a newer openclaw-trace"
        ));
    }
    if version < OLDEST_SCHEMA {
        return Err(format!(
            "its schema version {version} is older than {OLDEST_SCHEMA}; start the daemon once \
             on it (it migrates the file), then read again"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_encoded_in_the_uri() {
        assert_eq!(
            immutable_uri(Path::new("/data/a b?#%.db")),
            "file:/data/a%20b%3F%23%25.db?immutable=1"
        );
        assert_eq!(
            immutable_uri(Path::new("rel/trace.db")),
            "file:rel/trace.db?immutable=1"
        );
    }
}
