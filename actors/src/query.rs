//! Read-side queries over the read pool (status now; push and rotation later).
//! They block: call them from a blocking thread, never from an actor or an
//! HTTP worker directly.

use std::path::Path;

use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::records::Table;
use crate::schema::ReadPool;

/// Errors of a read query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No read connection could be had.
    #[error("read pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// SQLite refused the query.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
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
/// transaction so the numbers agree with each other.
pub fn table_counts(pool: &ReadPool) -> Result<Vec<TableCounts>, QueryError> {
    let mut conn = pool.get()?;
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
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct FileSizes {
    /// The main database file.
    pub db_bytes: u64,
    /// The write-ahead log beside it (0 when absent).
    pub wal_bytes: u64,
}

/// Reads the sizes of `path` and `path-wal`.
pub fn file_sizes(path: &Path) -> FileSizes {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    FileSizes {
        db_bytes: size(path),
        wal_bytes: size(Path::new(&wal)),
    }
}
