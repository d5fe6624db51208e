//! Run merges prepared off the writer thread, as LSM stores compact in the background.
//!
//! Merging a full level of key runs or value runs is reading its runs' chunks, merging them
//! and encoding the result; only storing the result needs the write connection. The writer was
//! the serial bottleneck of ingest and did all of it (at 3–5M calls the two merges were a fifth
//! of its time, growing with history), while the server's other core was half idle. So the
//! writer plans the merges due and gives each a run to build, out of sight of readers
//! (`keys::begin`, `value_runs::begin`); this thread reads and merges the inputs on a read-only
//! connection of its own and hands the merged chunks over a slice (~2 MB) at a time; the
//! writer stores a slice between two ingest transactions, and once a merge is read to its end
//! gives its run its place instead of the inputs (`keys::finish`, `value_runs::finish`):
//!
//! - runs are immutable once committed and only the writer deletes them; while a plan is
//!   prepared the writer starts no other, so inputs change only by a purge of value entries,
//!   which `finish` detects (the merged run is then dropped, the entries stay where they were,
//!   and the merge is planned again);
//! - a probe or a reader meanwhile reads the inputs, which exist until `finish` commits; a
//!   crash leaves the inputs and a run half built, which the next open drops;
//! - memory holds a few slices, not the merge (SPEC §10's memory bound), so merges of any size
//!   are prepared here. Those too large to hold (key runs into level 4, ~6.5M keys a kind at
//!   ~7M calls; value runs into their top level, ~75 MB of entries every ~0.9M calls) streamed
//!   on the writer before, and ingest paused for seconds.

use super::keys::{self, KeySlice, StreamedKeys};
use super::value_runs::{self, StreamedValues, ValueSlice};
use rusqlite::{Connection, OpenFlags};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// About the bytes of chunks handed over at a time: a slice takes the writer a few ms to store.
/// The slices held at once (the one in the channel, the one being filled, the one being stored)
/// add to the resident peak of a 10M-call ingest, which is at SPEC §10's 500 MB bound.
pub const SLICE_BYTES: usize = 2 << 20;

/// Steps the compactor may run ahead of the writer.
const STEPS_AHEAD: usize = 1;

/// A merge's chunks, held until they make a slice of about `slice_bytes`, then handed over
/// (`keys::stream`, `value_runs::stream`). `false` from `hand_over`: nobody takes them any more
/// (the writer stopped), and the merge stops with an error.
pub struct Slicer<T, F> {
    held: Vec<T>,
    bytes: usize,
    slice_bytes: usize,
    hand_over: F,
}

impl<T, F: FnMut(Vec<T>) -> bool> Slicer<T, F> {
    pub fn new(slice_bytes: usize, hand_over: F) -> Slicer<T, F> {
        Slicer {
            held: Vec::new(),
            bytes: 0,
            slice_bytes,
            hand_over,
        }
    }

    /// Holds a chunk of `bytes`; hands the held ones over once they make a slice.
    pub fn push(&mut self, chunk: T, bytes: usize) -> rusqlite::Result<()> {
        self.bytes += bytes;
        self.held.push(chunk);
        if self.bytes >= self.slice_bytes {
            self.finish()?;
        }
        Ok(())
    }

    /// Hands over what is held (at a slice's end, or the merge's).
    pub fn finish(&mut self) -> rusqlite::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        if (self.hand_over)(std::mem::take(&mut self.held)) {
            return Ok(());
        }
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
            Some("the writer no longer takes the merge's chunks".into()),
        ))
    }
}

/// Merges to prepare, with disjoint inputs, each given its run to build by the writer.
#[derive(Default)]
pub struct Planned {
    pub keys: Vec<StreamedKeys>,
    pub values: Vec<StreamedValues>,
}

/// What the compactor hands the writer, in order: a merge's slices, then the merge.
pub enum Step {
    KeySlice(KeySlice),
    /// A key merge read to its end: its run is to take its inputs' place.
    KeysMerged(StreamedKeys),
    ValueSlice(ValueSlice),
    /// A value merge read to its end: its run is to take its inputs' place.
    ValuesMerged(StreamedValues),
    /// The plan is done, or failed (then the runs it was building are the writer's to drop):
    /// the compactor is free.
    Done(rusqlite::Result<()>),
}

impl Step {
    /// The chunks' bytes a step stores.
    pub fn bytes(&self) -> usize {
        match self {
            Step::KeySlice(slice) => slice.bytes(),
            Step::ValueSlice(slice) => slice.bytes(),
            _ => 0,
        }
    }
}

/// The thread that prepares merges, one [`Planned`] at a time.
pub struct Compactor {
    jobs: Option<mpsc::Sender<Planned>>,
    steps: Option<mpsc::Receiver<Step>>,
    thread: Option<JoinHandle<()>>,
    busy: bool,
    /// The plan's steps are dropped until its end ([`Compactor::abandon`]).
    abandoned: bool,
    slice_bytes: usize,
}

impl Compactor {
    /// Starts the thread on a read-only connection to the database at `path`, handing merged
    /// chunks over in slices of about `slice_bytes` ([`SLICE_BYTES`]; tests take fewer).
    pub fn spawn(path: &str, slice_bytes: usize) -> std::io::Result<Compactor> {
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
                    let outcome = prepare(&conn, job, slice_bytes, &step);
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
            slice_bytes,
        })
    }

    /// About the bytes of chunks a slice holds: the writer stores this much at a time.
    pub fn slice_bytes(&self) -> usize {
        self.slice_bytes
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

fn prepare(
    conn: &Connection,
    planned: Planned,
    slice_bytes: usize,
    step: &mpsc::SyncSender<Step>,
) -> rusqlite::Result<()> {
    let hand_over = |s: Step| step.send(s).is_ok();
    for mut merge in planned.keys {
        keys::stream(conn, &mut merge, slice_bytes, |slice| hand_over(Step::KeySlice(slice)))?;
        if !hand_over(Step::KeysMerged(merge)) {
            return Ok(());
        }
    }
    for merge in planned.values {
        value_runs::stream(conn, &merge, slice_bytes, |slice| hand_over(Step::ValueSlice(slice)))?;
        if !hand_over(Step::ValuesMerged(merge)) {
            return Ok(());
        }
    }
    Ok(())
}
