//! Giving the file system back the space a purge or an erasure frees, while the server runs.
//!
//! SQLite keeps freed pages inside the file (on its freelist) unless the database was created
//! with `auto_vacuum=INCREMENTAL`, which keeps the bookkeeping that lets
//! `PRAGMA incremental_vacuum(N)` move up to N pages from the end of the file into free slots
//! and cut the end off. The mode is fixed when the first table is created, so:
//! - a new database gets it before its schema ([`use_incremental_vacuum`]);
//! - a database created before this had `auto_vacuum=NONE`: the first open after the upgrade
//!   rewrites it once with `VACUUM` (as long as a backup takes, with as much free disk as the
//!   file's size; docs/OPERATIONS.md), after which purges give space back without a stop.
//!
//! After a purge or an erasure the writer runs [`vacuum_step`]s, each its own short write
//! transaction queued like any other write, so ingest batches go between them instead of
//! waiting for the whole file to be reorganized. In WAL mode the file shrinks when the
//! checkpointer next copies the whole log (it truncates the database to its committed size).

use crate::Result;
use rusqlite::Connection;

/// Pages (4 KB) one step moves at most: a few milliseconds of the writer.
pub const STEP_PAGES: i64 = 2048;

/// `PRAGMA auto_vacuum`'s value for INCREMENTAL.
const INCREMENTAL: i64 = 2;

/// Makes `conn`'s database one whose freed pages can be given back: set before the first table
/// of a new database, or by a one-time `VACUUM` of an older one. Run at open, before anything
/// else uses the file.
pub fn use_incremental_vacuum(conn: &Connection) -> Result<()> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == INCREMENTAL {
        return Ok(());
    }
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    if tables > 0 {
        let started = std::time::Instant::now();
        tracing::info!("rewriting the database once so that purges can give space back (VACUUM)");
        conn.execute_batch("VACUUM")?;
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "database rewritten");
    }
    Ok(())
}

/// Pages on the freelist: what vacuum steps can still give back.
pub fn free_pages(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?)
}

/// Moves up to [`STEP_PAGES`] free pages to the end of the file and cuts them off; returns the
/// pages still free.
pub fn vacuum_step(conn: &Connection) -> Result<i64> {
    // Each step of the statement frees one page: run it to the end.
    conn.execute_batch(&format!("PRAGMA incremental_vacuum({STEP_PAGES})"))?;
    free_pages(conn)
}
