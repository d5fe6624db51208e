//! Run merges prepared off the writer thread, as LSM stores compact in the background.
//!
//! Merging a full level of key runs or value runs is reading its runs' chunks, merging them
//! and encoding the result; only storing the result needs the write connection. The writer was
//! the serial bottleneck of ingest and did all of it (at 3–5M calls the two merges were a fifth
//! of its time, growing with history), while the server's other core was half idle. So the
//! writer plans a merge (which runs), this thread reads and merges them on a read-only
//! connection of its own into encoded chunks in memory, and the writer, between its
//! transactions, installs the result in one transaction (`keys::install`,
//! `value_runs::install`):
//!
//! - runs are immutable once committed and only the writer deletes them; while a merge is
//!   prepared the writer starts no other, so its inputs change only by a purge of value
//!   entries, which an install detects (its result is then discarded, the entries stay where
//!   they were, and the merge is planned again);
//! - a probe or a reader meanwhile reads the inputs, which exist until the install commits;
//!   a crash leaves either the inputs or the merged run;
//! - a result is held whole, so only merges of at most [`IN_MEMORY_BYTES`] are prepared here:
//!   larger ones (key runs into level 4 and up, the value runs' merge into their top level:
//!   ~75 MB of entries at ~1M calls a run) stream on the writer as before, a few chunks in
//!   memory, which keeps SPEC §10's memory bound.

use super::keys::{self, KeyMerge, MergedKeys};
use super::value_runs::{self, MergedValues, ValueMerge};
use rusqlite::{Connection, OpenFlags};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The most a prepared merge may hold (its input runs' keys or entries, 16 bytes each): merges
/// of key runs into levels 1–3 (~16 MB into level 3 at ~1,000 calls a transaction) and of value
/// runs into levels 1–2 fit; the resident memory at 10M calls leaves ~20 MB below SPEC §10's
/// 500 MB.
pub const IN_MEMORY_BYTES: usize = 16 << 20;

/// Merges to prepare, with disjoint inputs.
#[derive(Default)]
pub struct Planned {
    pub keys: Vec<KeyMerge>,
    pub values: Vec<ValueMerge>,
}

impl Planned {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.values.is_empty()
    }
}

/// Prepared merges, to be installed together.
pub struct Prepared {
    pub keys: Vec<MergedKeys>,
    pub values: Vec<MergedValues>,
}

/// The thread that prepares merges, one [`Planned`] at a time.
pub struct Compactor {
    jobs: Option<mpsc::Sender<Planned>>,
    done: mpsc::Receiver<rusqlite::Result<Prepared>>,
    thread: Option<JoinHandle<()>>,
    busy: bool,
}

impl Compactor {
    /// Starts the thread on a read-only connection to the database at `path`.
    pub fn spawn(path: &str) -> std::io::Result<Compactor> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .and_then(|conn| conn.pragma_update(None, "busy_timeout", 10_000).map(|_| conn))
                .map_err(std::io::Error::other)?;
        let (jobs, planned) = mpsc::channel::<Planned>();
        let (finished, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("dialboard-compact".into())
            .spawn(move || {
                for job in planned {
                    if finished.send(prepare(&conn, job)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Compactor {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            busy: false,
        })
    }

    /// Whether a merge is being prepared (or waits to be installed).
    pub fn busy(&self) -> bool {
        self.busy
    }

    pub fn start(&mut self, planned: Planned) {
        let sent = self.jobs.as_ref().is_some_and(|jobs| jobs.send(planned).is_ok());
        self.busy = sent;
        if !sent {
            tracing::error!("the compaction thread stopped; merges are not prepared");
        }
    }

    /// The merges prepared, once they are.
    pub fn finished(&mut self) -> Option<rusqlite::Result<Prepared>> {
        let prepared = self.done.try_recv().ok()?;
        self.busy = false;
        Some(prepared)
    }
}

impl Drop for Compactor {
    /// Lets the thread finish the merge it prepares (bounded by [`IN_MEMORY_BYTES`]), then stops it.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn prepare(conn: &Connection, planned: Planned) -> rusqlite::Result<Prepared> {
    Ok(Prepared {
        keys: planned
            .keys
            .into_iter()
            .map(|merge| keys::prepare(conn, merge))
            .collect::<rusqlite::Result<_>>()?,
        values: planned
            .values
            .into_iter()
            .map(|merge| value_runs::prepare(conn, merge))
            .collect::<rusqlite::Result<_>>()?,
    })
}
