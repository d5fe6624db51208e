//! Answering a commit only once it is on disk, without the writer waiting for the disk.
//!
//! With `synchronous=FULL` each commit synced the log on the writer thread, and the writer,
//! ingest's one serial thread, sat idle for it: ~¼ of its time at 1M calls, more later
//! (bench/README.md, "The writer no longer waits for the disk"). Now, when the store is
//! durable, the writer commits with `synchronous=NORMAL` (its log frames written, not synced),
//! counts the commit here and goes on with the next transaction; a thread of its own syncs the
//! log, once for every transaction committed before the sync began (group commit at the disk
//! as well as in the writer), and the merger, which meanwhile turned the transaction's
//! contributions into cell deltas, waits for that sync before it makes them visible and answers
//! the requests.
//!
//! Why that is as safe as `FULL`: SQLite's log is a sequence of frames with cumulative
//! checksums, and recovery keeps the longest prefix of whole transactions that check, so after
//! a power loss every transaction committed before a completed sync is there, and one that was
//! not synced is either there whole or not at all; its requests were not answered, and a retry
//! stores it once (idempotency on `id`). SQLite still syncs the log and the database around
//! each copy of the log into the database (`synchronous=NORMAL` keeps those syncs). Readers of
//! the tables may see a transaction up to one sync before it is durable; no request hears of it
//! before, and the rollups show it only after.
//!
//! A failed sync leaves the log's pages in an unknown state (the kernel may have dropped them
//! as written): the process stops, as PostgreSQL does, and the next start recovers what the
//! log holds. Nothing it lost was answered.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// The writer's commits, numbered, and how many of them are on disk.
#[derive(Default)]
pub struct Durability {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    committed: u64,
    synced: u64,
    stopping: bool,
}

impl Durability {
    /// A transaction committed: its number, to wait for with [`Durability::wait_synced`].
    pub fn committed(&self) -> u64 {
        let mut state = self.lock();
        state.committed += 1;
        self.changed.notify_all();
        state.committed
    }

    /// Returns once commit `number` is on disk.
    pub fn wait_synced(&self, number: u64) {
        let mut state = self.lock();
        while state.synced < number {
            state = self.changed.wait(state).expect("durability lock");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("durability lock")
    }
}

/// The thread that syncs: stop it with [`SyncThread::stop`] once nothing waits for it.
pub struct SyncThread {
    durability: Arc<Durability>,
    thread: JoinHandle<()>,
}

impl SyncThread {
    /// Starts syncing, with `sync`, whatever is counted committed in [`SyncThread::commits`]
    /// and not yet synced.
    pub fn spawn(mut sync: impl FnMut() -> io::Result<()> + Send + 'static) -> SyncThread {
        let durability = Arc::new(Durability::default());
        let shared = durability.clone();
        let thread = std::thread::Builder::new()
            .name("dialboard-sync".into())
            .spawn(move || loop {
                let through = {
                    let mut state = shared.lock();
                    while state.synced == state.committed && !state.stopping {
                        state = shared.changed.wait(state).expect("durability lock");
                    }
                    if state.synced == state.committed {
                        return;
                    }
                    state.committed
                };
                if let Err(e) = sync() {
                    tracing::error!(error = %e, "syncing the write-ahead log failed: stopping, the next start recovers it");
                    std::process::abort();
                }
                shared.lock().synced = through;
                shared.changed.notify_all();
            })
            .expect("the sync thread starts");
        SyncThread { durability, thread }
    }

    /// The commits this thread syncs.
    pub fn commits(&self) -> &Arc<Durability> {
        &self.durability
    }

    /// Syncs what is committed, then stops.
    pub fn stop(self) {
        self.durability.lock().stopping = true;
        self.durability.changed.notify_all();
        let _ = self.thread.join();
    }
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
    use std::sync::mpsc;
    use std::time::Duration;

    const A_WHILE: Duration = Duration::from_millis(100);

    /// A commit waits for a sync that began after it: one counted during a sync waits for the
    /// next, and one sync covers every commit counted before it began.
    #[test]
    fn a_commit_is_synced_by_a_sync_that_began_after_it() {
        let (began, sync_began) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let syncer = SyncThread::spawn(move || {
            began.send(()).unwrap();
            released.recv().unwrap();
            Ok(())
        });
        let durability = syncer.commits().clone();
        let waiter = |number: u64| {
            let (durability, (done, synced)) = (durability.clone(), mpsc::channel());
            std::thread::spawn(move || {
                durability.wait_synced(number);
                done.send(number).unwrap();
            });
            synced
        };
        let first = durability.committed();
        let first_synced = waiter(first);
        sync_began.recv().unwrap();
        let (second, third) = (durability.committed(), durability.committed());
        let (second_synced, third_synced) = (waiter(second), waiter(third));
        assert!(first_synced.recv_timeout(A_WHILE).is_err(), "not before its sync ends");
        release.send(()).unwrap();
        assert_eq!(first_synced.recv().unwrap(), first);
        assert!(
            second_synced.recv_timeout(A_WHILE).is_err(),
            "counted during the first sync: waits for the next"
        );
        sync_began.recv().unwrap();
        release.send(()).unwrap();
        assert_eq!(second_synced.recv().unwrap(), second);
        assert_eq!(third_synced.recv().unwrap(), third, "one sync for both");
        assert!(sync_began.recv_timeout(A_WHILE).is_err(), "no sync when all is synced");
        let fourth = durability.committed();
        sync_began.recv().unwrap();
        release.send(()).unwrap();
        syncer.stop();
        durability.wait_synced(fourth);
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
