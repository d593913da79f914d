//! Read-side queries: table counts, file sizes, push cursors and the rows to
//! push. The owner's queries are in [`crate::report`].
//! They block: call them from a blocking thread, never from an actor or an
//! HTTP worker directly.

use std::path::Path;

use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::records::Table;
use crate::schema::ReadPool;
use crate::stored::StoredRow;

/// Errors of a read query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No read connection could be had.
    #[error("read pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// SQLite refused the query.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// What was read could not be encoded.
    #[error("encoding: {0}")]
    Encode(String),
    /// A stored value is not what its column should hold.
    #[error("{table}.{column} of row {id}: {problem}")]
    Column {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The row's id.
        id: i64,
        /// What is wrong with the value.
        problem: String,
    },
}

/// Row counts of one record table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableCounts {
    /// The table's name.
    pub table: &'static str,
    /// Rows in the table.
    pub rows: u64,
    /// Rows past the table's push cursor.
    pub unpushed: u64,
}

/// Counts rows and not-yet-pushed rows of every record table, in one read
/// transaction so the numbers agree with each other. Scans every table, so
/// it takes time on a large file: the daemon does it once at start and keeps
/// the counts from then on ([`crate::stats::RowCounts`]).
pub fn count_rows(conn: &mut rusqlite::Connection) -> Result<Vec<TableCounts>, QueryError> {
    let tx = conn.transaction()?;
    let mut counts = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        let name = table.name();
        let cursor: i64 = tx
            .query_row(
                "SELECT last_pushed_id FROM push_cursors WHERE table_name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let (rows, unpushed): (i64, i64) = tx.query_row(
            &format!("SELECT count(*), count(*) FILTER (WHERE id > ?1) FROM {name}"),
            [cursor],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        counts.push(TableCounts {
            table: name,
            rows: rows as u64,
            unpushed: unpushed as u64,
        });
    }
    tx.finish()?;
    Ok(counts)
}

/// Sizes of the database's files on disk, in bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct FileSizes {
    /// The main database file.
    pub db_bytes: u64,
    /// The write-ahead log beside it (0 when absent).
    pub wal_bytes: u64,
}

/// Reads the sizes of `path` and `path-wal`.
pub fn file_sizes(path: &Path) -> FileSizes {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    FileSizes {
        db_bytes: size(path),
        wal_bytes: size(&crate::schema::sibling(path, "-wal")),
    }
}

/// The push cursor of `table`: the highest row id the remote has.
pub fn push_cursor(pool: &ReadPool, table: Table) -> Result<i64, QueryError> {
    let conn = pool.get()?;
    Ok(conn
        .query_row(
            "SELECT last_pushed_id FROM push_cursors WHERE table_name = ?1",
            [table.name()],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Calls `each` with the rows of `table` after `after_id`, in id order, at
/// most `limit` of them, one at a time (so a large backlog is never held in
/// memory), until `each` returns false.
pub fn scan_unpushed(
    pool: &ReadPool,
    table: Table,
    after_id: i64,
    limit: usize,
    mut each: impl FnMut(StoredRow) -> bool,
) -> Result<(), QueryError> {
    let conn = pool.get()?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM {} WHERE id > ?1 ORDER BY id LIMIT ?2",
        StoredRow::columns(table),
        table.name()
    ))?;
    let mut rows = stmt.query(rusqlite::params![after_id, limit as i64])?;
    while let Some(row) = rows.next()? {
        if !each(StoredRow::from_row(table, row)?) {
            break;
        }
    }
    Ok(())
}

/// Rows the remote refused for good.
pub fn count_dead_letters(conn: &rusqlite::Connection) -> Result<u64, QueryError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?;
    Ok(n as u64)
}
