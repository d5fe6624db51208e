//! Copying the write-ahead log into the database file, on a thread beside the writer.
//!
//! The log starts over from its beginning only when a write begins with every frame copied.
//! Under steady ingest passes from another thread never catch up with the end of the log, so
//! without help it grows for as long as the ingest lasts (4.8 GB at 1M calls of the ingest
//! bench), every commit appends to a new part of the file, which the kernel zeroes first, and
//! the page cache fills with it. So once the log is long, passes follow each other until what is
//! left is small, and then the writer copies that rest itself between two transactions
//! ([`CatchUp`]); its next transaction starts the log over. (A RESTART pass from this thread
//! would have to win the write lock from a writer that takes it again right after each commit.)
//! The last pass truncates the log.

use super::{schema, Options};
use crate::{Result, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A pass that leaves at most this many frames to copy asks the writer to copy them.
const CATCH_UP_FRAMES: i64 = 256;

/// The writer's side: set by the checkpointer when the writer should copy the rest of a long log.
#[derive(Default, Clone)]
pub struct CatchUp(Arc<AtomicBool>);

impl CatchUp {
    /// Between two transactions: copies the log's last frames if asked to.
    pub fn between_transactions(&self, writer: &Connection) {
        if self.0.swap(false, Ordering::Relaxed) {
            checkpoint(writer, "PASSIVE");
        }
    }
}

pub struct WalCheckpointer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl WalCheckpointer {
    /// Takes the copying away from `writer`'s commits and starts a pass every quarter second
    /// (back to back while the log is longer than `options.wal_restart_frames`).
    pub fn spawn(writer: &Connection, path: &Path, options: &Options, catch_up: CatchUp) -> Result<WalCheckpointer> {
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let conn = Connection::open(path)?;
        schema::configure(&conn, options)?;
        let restart_frames = options.wal_restart_frames;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dialboard-wal".into())
            .spawn(move || {
                let (mut wait, mut copied_before) = (true, 0);
                while !stopped.load(Ordering::Relaxed) {
                    if wait {
                        std::thread::park_timeout(std::time::Duration::from_millis(250));
                    }
                    let (log, copied) = checkpoint(&conn, "PASSIVE");
                    let (long, little_left) = (log > restart_frames, log - copied <= CATCH_UP_FRAMES);
                    if long && little_left {
                        catch_up.0.store(true, Ordering::Relaxed);
                    }
                    // Passes follow each other while they make progress: a reader holding an old
                    // snapshot stops them copying, and then this thread waits as usual.
                    wait = !long || little_left || copied == copied_before;
                    copied_before = copied;
                }
                checkpoint(&conn, "TRUNCATE");
            })
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(WalCheckpointer { stop, thread })
    }

    /// Asks the thread to make its last pass; join the handle to wait for it.
    pub fn stop(self) -> JoinHandle<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        self.thread
    }
}

/// Runs a checkpoint pass; returns the frames in the log and how many of them are copied
/// (both 0 when the pass failed).
fn checkpoint(conn: &Connection, mode: &str) -> (i64, i64) {
    let pass = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    });
    pass.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "WAL checkpoint failed");
        (0, 0)
    })
}

/// Copies the whole log into the database and empties it, retrying while a reader or the
/// checkpointer's own pass holds it: what erasure needs, so no older frame keeps erased data.
pub fn truncate(conn: &Connection) -> Result<()> {
    for _ in 0..100 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(StoreError::Conflict(
        "the write-ahead log stayed in use; the erased data leaves it at its next restart".into(),
    ))
}
