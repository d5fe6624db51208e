//! `dialboard backup` on SQLite: SQLite's online backup API copies the database, page by
//! page, from one read transaction — a consistent snapshot of everything committed before it
//! began — while the server keeps writing (WAL: readers never block the writer). The copy is
//! an ordinary database file: restoring is putting it in place of the original (without the
//! original's `-wal` and `-shm` files); on open, the store folds the rollup contributions the
//! copy holds that were not yet checkpointed, as after any restart.

use crate::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// Copies the database at `from` to a new file `to` (which must not exist); the copy's pages.
pub fn backup(from: &Path, to: &Path) -> Result<i32> {
    if !from.exists() {
        return Err(StoreError::Invalid(format!("no database at {}", from.display())));
    }
    if to.exists() {
        return Err(StoreError::Invalid(format!(
            "{} exists already; back up to a new file",
            to.display()
        )));
    }
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut target = Connection::open(to)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
        // All pages in one step: one read transaction, so one snapshot however busy the
        // writer is (a copy in several steps starts over whenever another connection writes).
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                _ => {}
            }
        }
    }
    let pages: i32 = target.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    // The copy's own journal: a plain file, not a WAL with a sidecar.
    target.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = target.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError::Database(format!("the copy failed its check: {check}")));
    }
    Ok(pages)
}
