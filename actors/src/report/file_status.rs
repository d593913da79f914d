//! What the database file alone says, for the CLI's `status --db`: the
//! schema version, rows and rows not yet pushed per table, when each push
//! cursor last moved, and the dead letters. The daemon's live state (its
//! health, counters, the push in progress) is not in the file.

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::query::{count_dead_letters, count_rows, QueryError};
use crate::time::rfc3339_ms;

/// The file's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStatus {
    /// `user_version`: the migrations the file has seen.
    pub schema_version: i64,
    /// Every record table, in `Table::ALL`'s order.
    pub tables: Vec<TableStatus>,
    /// Rows past their table's push cursor, all tables together.
    pub unpushed: u64,
    /// The latest time any push cursor moved, RFC 3339; `None`: never.
    pub last_push: Option<String>,
    /// Rows the remote refused for good.
    pub dead_letters: u64,
}

/// One record table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStatus {
    /// The table's name.
    pub table: String,
    /// Rows in the table.
    pub rows: u64,
    /// Rows past the table's push cursor.
    pub unpushed: u64,
    /// When the table's push cursor last moved, RFC 3339; `None`: never.
    pub last_push: Option<String>,
}

/// Reads the file's state. The counts are read in one transaction (they
/// agree with each other); the cursor times and dead letters right after.
pub fn file_status(conn: &mut Connection) -> Result<FileStatus, QueryError> {
    let schema_version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let counts = count_rows(conn)?;
    let mut tables = Vec::with_capacity(counts.len());
    let mut latest_ns = 0;
    for c in counts {
        let updated_ns: i64 = conn
            .query_row(
                "SELECT updated_ns FROM push_cursors WHERE table_name = ?1",
                [c.table],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        latest_ns = latest_ns.max(updated_ns);
        tables.push(TableStatus {
            table: c.table.to_string(),
            rows: c.rows,
            unpushed: c.unpushed,
            last_push: (updated_ns > 0).then(|| rfc3339_ms(updated_ns)),
        });
    }
    Ok(FileStatus {
        schema_version,
        unpushed: tables.iter().map(|t| t.unpushed).sum(),
        tables,
        last_push: (latest_ns > 0).then(|| rfc3339_ms(latest_ns)),
        dead_letters: count_dead_letters(conn)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{open_writer, SCHEMA_VERSION};

    #[test]
    fn counts_rows_unpushed_rows_cursor_times_and_dead_letters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open_writer(&dir.path().join("t.db")).expect("open");
        conn.execute_batch(
            "INSERT INTO errors (time_ns, received_ns, agent_id, source, error_type, message, severity)
               VALUES (1, 1, 'a', 'native', 't', 'm', 'error'), (2, 2, 'a', 'native', 't', 'm', 'error'),
                      (3, 3, 'a', 'native', 't', 'm', 'error');
             UPDATE push_cursors SET last_pushed_id = 2, updated_ns = 1795860000000000000
               WHERE table_name = 'errors';
             INSERT INTO dead_letters (table_name, row_id, last_row_id, status, message, time_ns)
               VALUES ('errors', 2, 2, 400, 'bad', 5);",
        )
        .expect("fill");
        let s = file_status(&mut conn).expect("status");
        assert_eq!(s.schema_version, SCHEMA_VERSION);
        let errors = s
            .tables
            .iter()
            .find(|t| t.table == "errors")
            .expect("errors");
        assert_eq!((errors.rows, errors.unpushed), (3, 1));
        assert_eq!(
            errors.last_push.as_deref(),
            Some("2026-11-28T10:00:00.000Z")
        );
        assert_eq!(s.last_push, errors.last_push);
        assert_eq!(s.unpushed, 1);
        assert_eq!(s.dead_letters, 1);
        let calls = s
            .tables
            .iter()
            .find(|t| t.table == "llm_calls")
            .expect("calls");
        assert_eq!((calls.rows, calls.last_push.as_deref()), (0, None));
    }
}
