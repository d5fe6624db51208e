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
//! - key merges are held whole, so only those of at most [`IN_MEMORY_BYTES`] are prepared
//!   here: larger ones (key runs into level 4 and up) stream on the writer, a few chunks in
//!   memory, which keeps SPEC §10's memory bound;
//! - value merges of any size are handed over a slice at a time
//!   ([`value_runs::StreamedMerge`]), the writer storing a slice between two ingest
//!   transactions: the merges into their top level (~75 MB of entries at ~1M calls a run)
//!   paused the writer for seconds every ~0.9M calls in time order when they streamed there.

use super::keys::{self, KeyMerge, MergedKeys};
use super::value_runs::{self, Slice, StreamedMerge};
use rusqlite::{Connection, OpenFlags};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The most a prepared key merge may hold (its input runs' keys, 16 bytes each): merges of key
/// runs into levels 1–3 (~16 MB into level 3 at ~1,000 calls a transaction) fit; the resident
/// memory at 10M calls leaves ~20 MB below SPEC §10's 500 MB.
pub const IN_MEMORY_BYTES: usize = 16 << 20;

/// Steps the compactor may run ahead of the writer: slices of value chunks held at once.
const STEPS_AHEAD: usize = 2;

/// Merges to prepare, with disjoint inputs.
#[derive(Default)]
pub struct Planned {
    pub keys: Vec<KeyMerge>,
    pub values: Vec<StreamedMerge>,
}

impl Planned {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.values.is_empty()
    }
}

/// What the compactor hands the writer, in order.
pub enum Step {
    /// The key merges, prepared whole, to install together.
    Keys(Vec<MergedKeys>),
    /// Chunks of a value run being built, to store.
    Slice(Slice),
    /// A value merge read to its end: its run is to take its inputs' place.
    Merged(StreamedMerge),
    /// The plan is done, or failed (then the runs it was building are the writer's to drop):
    /// the compactor is free.
    Done(rusqlite::Result<()>),
}

/// The thread that prepares merges, one [`Planned`] at a time.
pub struct Compactor {
    jobs: Option<mpsc::Sender<Planned>>,
    steps: Option<mpsc::Receiver<Step>>,
    thread: Option<JoinHandle<()>>,
    busy: bool,
    /// The plan's steps are dropped until its end ([`Compactor::abandon`]).
    abandoned: bool,
}

impl Compactor {
    /// Starts the thread on a read-only connection to the database at `path`.
    pub fn spawn(path: &str) -> std::io::Result<Compactor> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .and_then(|conn| conn.pragma_update(None, "busy_timeout", 10_000).map(|_| conn))
                .map_err(std::io::Error::other)?;
        let (jobs, planned) = mpsc::channel::<Planned>();
        let (step, steps) = mpsc::sync_channel(STEPS_AHEAD);
        let thread = std::thread::Builder::new()
            .name("dialboard-compact".into())
            .spawn(move || {
                for job in planned {
                    let outcome = prepare(&conn, job, &step);
                    if step.send(Step::Done(outcome)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Compactor {
            jobs: Some(jobs),
            steps: Some(steps),
            thread: Some(thread),
            busy: false,
            abandoned: false,
        })
    }

    /// Whether a plan is being prepared (or its last steps wait to be taken).
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

    /// The next step handed over, if one is ready.
    pub fn next_step(&mut self) -> Option<Step> {
        loop {
            let step = self.steps.as_ref()?.try_recv().ok()?;
            let done = matches!(step, Step::Done(_));
            self.busy &= !done;
            if !self.abandoned {
                return Some(step);
            }
            if done {
                self.abandoned = false;
                return Some(Step::Done(Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("a step of the plan could not be stored: the plan was abandoned".into()),
                ))));
            }
        }
    }

    /// Drops the current plan's steps up to its end, which then reads as failed (a step could
    /// not be stored, so the runs it builds would miss entries).
    pub fn abandon(&mut self) {
        self.abandoned = true;
    }
}

impl Drop for Compactor {
    /// Stops the thread: it stops at its next step handed over (nobody takes it), leaving the
    /// runs it was building for the next open to drop.
    fn drop(&mut self) {
        self.jobs.take();
        self.steps.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn prepare(conn: &Connection, planned: Planned, step: &mpsc::SyncSender<Step>) -> rusqlite::Result<()> {
    let hand_over = |s: Step| step.send(s).is_ok();
    if !planned.keys.is_empty() {
        let keys = planned
            .keys
            .into_iter()
            .map(|merge| keys::prepare(conn, merge))
            .collect::<rusqlite::Result<_>>()?;
        if !hand_over(Step::Keys(keys)) {
            return Ok(());
        }
    }
    for merge in planned.values {
        value_runs::stream(conn, &merge, value_runs::SLICE_BYTES, |slice| {
            hand_over(Step::Slice(slice))
        })?;
        if !hand_over(Step::Merged(merge)) {
            return Ok(());
        }
    }
    Ok(())
}
