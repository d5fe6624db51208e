//! Answering a commit only once it is on disk, without the writer waiting for the disk.
//!
//! With `synchronous=FULL` each commit synced the log on the writer thread, and the writer,
//! ingest's one serial thread, sat idle for it: ~¼ of its time at 1M calls, more later
//! (bench/README.md, "The writer waits for the disk"). Now, when the store is durable, the
//! writer commits with `synchronous=NORMAL` (its log frames written, not synced) and goes on with
//! the next transaction, while this stage syncs the log and only then passes the committed
//! transactions on to the merger, which answers their requests. One sync covers every
//! transaction committed before it began: group commit at the disk as well as in the writer.
//!
//! Why that is as safe as `FULL`: SQLite's log is a sequence of frames with cumulative
//! checksums, and recovery keeps the longest prefix of whole transactions that check, so after
//! a power loss every transaction committed before a completed sync is there, and one that was
//! not synced is either there whole or not at all; its requests were not answered, and a retry
//! stores it once (idempotency on `id`). SQLite still syncs the log and the database around
//! each copy of the log into the database (`synchronous=NORMAL` keeps those syncs). Readers may
//! see a transaction up to one sync before it is durable; no request hears of it before.
//!
//! A failed sync leaves the log's pages in an unknown state (the kernel may have dropped them
//! as written): the process stops, as PostgreSQL does, and the next start recovers what the
//! log holds. Nothing it lost was answered.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

/// Starts the stage: what is sent to the returned queue goes on to `next`, in order, once a
/// call of `sync` that began after it arrived has returned, if `needs_sync` says so for any
/// item of the batch received together (other items only keep their order).
pub fn spawn<T: Send + 'static>(
    next: Sender<T>,
    needs_sync: fn(&T) -> bool,
    mut sync: impl FnMut() -> io::Result<()> + Send + 'static,
) -> (Sender<T>, JoinHandle<()>) {
    let (queue, arrived) = mpsc::channel::<T>();
    let thread = std::thread::Builder::new()
        .name("dialboard-sync".into())
        .spawn(move || {
            while let Ok(first) = arrived.recv() {
                let mut batch = vec![first];
                batch.extend(arrived.try_iter());
                if batch.iter().any(needs_sync) {
                    if let Err(e) = sync() {
                        tracing::error!(error = %e, "syncing the write-ahead log failed: stopping, the next start recovers it");
                        std::process::abort();
                    }
                }
                for item in batch {
                    if next.send(item).is_err() {
                        return;
                    }
                }
            }
        })
        .expect("the sync thread starts");
    (queue, thread)
}

/// Syncs the write-ahead log of the database at `database` (its data and size). The file is
/// opened for each sync, so a log SQLite truncated or made again is still the one synced.
pub fn sync_log(database: PathBuf) -> impl FnMut() -> io::Result<()> + Send + 'static {
    let mut log = database.into_os_string();
    log.push("-wal");
    move || std::fs::File::open(&log)?.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A_WHILE: Duration = Duration::from_millis(100);

    /// Each item waits for a sync that began after it arrived: one that came during a sync
    /// waits for the next, and items that need none keep their place behind those that do.
    #[test]
    fn items_go_on_only_after_a_sync_that_began_after_they_came() {
        let (next, passed) = mpsc::channel();
        let (began, sync_began) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let (queue, thread) = spawn(
            next,
            |item: &i32| *item > 0,
            move || {
                began.send(()).unwrap();
                released.recv().unwrap();
                Ok(())
            },
        );
        queue.send(1).unwrap();
        sync_began.recv().unwrap();
        queue.send(2).unwrap();
        queue.send(-3).unwrap();
        assert!(passed.recv_timeout(A_WHILE).is_err(), "nothing goes on during the sync");
        release.send(()).unwrap();
        assert_eq!(passed.recv().unwrap(), 1);
        assert!(
            passed.recv_timeout(A_WHILE).is_err(),
            "2 came during the first sync, and -3 stays behind it"
        );
        sync_began.recv().unwrap();
        release.send(()).unwrap();
        assert_eq!(passed.recv().unwrap(), 2);
        assert_eq!(passed.recv().unwrap(), -3);
        queue.send(-4).unwrap();
        assert_eq!(passed.recv_timeout(10 * A_WHILE), Ok(-4), "no sync when nothing needs one");
        drop(queue);
        thread.join().unwrap();
    }

    #[test]
    fn the_log_synced_is_the_databases() {
        let dir = tempfile::tempdir().unwrap();
        let mut sync = sync_log(dir.path().join("a.db"));
        assert_eq!(sync().unwrap_err().kind(), io::ErrorKind::NotFound);
        std::fs::write(dir.path().join("a.db-wal"), b"frames").unwrap();
        sync().unwrap();
    }
}
