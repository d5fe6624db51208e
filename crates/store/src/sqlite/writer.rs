//! The single writer: one thread owns the write connection. Concurrent ingest requests queue
//! on a channel and are applied in one transaction (group commit). A transaction stores its
//! rollup contributions as one row; after the commit, a second thread (the merger) turns them
//! into cell deltas, waits until the transaction is on disk (a durable store's log is synced
//! on a thread of its own, `durable`: one fsync for every transaction committed before it),
//! merges the deltas into the in-memory overlay and only then answers the requests, while the
//! writer goes on with the next transactions. A checkpoint folds the overlay into the cells table.

use super::bodies;
use super::compactor::{self, Compactor, Planned, Step};
use super::durable::{self, SyncThread};
use super::first_calls::FirstCalls;
use super::keys::{self, Keys};
use super::records::{AnalysedCalls, MeetingContacts, SqliteRecords};
use super::schema::{
    CALL_INTENTS_VERSION, MEETING_DAYS_VERSION, OTHER_FACTS_VERSION, STAGE_SUMMARY_VERSION, TEAM_CAMPAIGNS_VERSION,
};
use super::spans;
use super::value_runs;
use super::Shared;
use crate::contribution::{self, Counted};
use crate::group::{self, IngestRequest, Outcome};
use crate::overlay::{DeltaMap, Overlay};
use crate::rows::{
    call_with_analysis, conversation_from_row, csat_from_row, select_calls_with_analysis, stage_from_row,
    CONVERSATION_COLUMNS, CSAT_COLUMNS, STAGE_COLUMNS,
};
use crate::{Result, StoreError, TenantInfo};
use dialboard_engine::cells::{
    for_each_call_cell, for_each_csat_cell, for_each_stage_cell, for_each_ticket_cell, CellRef, Grains, Stats,
    AGENT_WEEKS, CALL_INTENTS, MEETING_STAGE, TEAM_CAMPAIGNS,
};
use dialboard_engine::clock::Grain;
use dialboard_engine::event::Conversation;
use rusqlite::{params, Connection};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub type AdminJob = Box<dyn FnOnce(&mut Connection) + Send>;

pub enum WriteCommand {
    Ingest(IngestRequest),
    Admin(AdminJob),
    Checkpoint(oneshot::Sender<Result<usize>>),
    Shutdown(oneshot::Sender<()>),
}

/// Fold deltas into cells when the overlay holds this many cells, or after this long. A cell
/// of the overlay takes ~0.5 KB, ~1 KB with what the merge thread frees meanwhile in the same
/// pages, and the overlay's climb between two checkpoints is the top of resident memory: at
/// 200,000 a backfill of 10M calls in random time order peaked at 518 MB, over SPEC §10's 500.
/// With mimalloc's purge delay at 100 ms (since 0, `main.rs`), 10M calls in time order at
/// 53–67k calls/s peaked at VmHWM 518,400–595,056 kB at 130,000 (SPEC's 500 MB are 488,281 kB),
/// 520,292–553,912 kB at 100,000 (two pairs: −26 and −41 MB, the writer's CPU a call within
/// their noise), 460,064 kB at 60,000 but with the writer +11% a call (bench/README.md).
const CHECKPOINT_CELLS: usize = 100_000;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// ... but an overlay spread over more blocks than this (a backfill in random time order puts a
/// cell or two in each block of its range) waits for `CHECKPOINT_CELLS`, or at most
/// `CHECKPOINT_WIDE_EVERY`: a checkpoint writes a row per block, so every 2 s it cost ~7 rows a
/// call under load (the fewer calls per 2 s, the more a call), three times what it costs once
/// the cells bound has gathered several calls per block.
const CHECKPOINT_BLOCKS: usize = 4_096;
const CHECKPOINT_WIDE_EVERY: Duration = Duration::from_secs(30);
/// While the compactor hands a merge over, how long the writer waits for a command before it
/// stores the next slice: a merge is stored a slice between two ingest transactions, and as
/// fast when no ingest comes (at one slice every `CHECKPOINT_EVERY` a 400 MB merge took minutes).
const SLICE_WAIT: Duration = Duration::from_millis(5);

/// Statements the writer's connection keeps prepared. Its ingest transactions, checkpoints and
/// run merges use more than rusqlite's default of 16 between them (~50 call sites), which
/// evicted some in every cycle, to be parsed again (1.2% of the writer's time at 1M calls).
const WRITER_STATEMENTS: usize = 96;

/// Whether an overlay of `cells` in `blocks` is to be folded, `since` the last checkpoint.
fn checkpoint_due(cells: usize, blocks: usize, since: Duration) -> bool {
    let every = if blocks > CHECKPOINT_BLOCKS {
        CHECKPOINT_WIDE_EVERY
    } else {
        CHECKPOINT_EVERY
    };
    cells >= CHECKPOINT_CELLS || since >= every
}

/// What the writer keeps in memory about contacts and ids (see each type), and the numbering
/// of events. Built by scanning the meetings and the key runs at the first ingest after the
/// store opens (admin commands and the CLI never wait for it); first calls are read as meetings
/// ask for them.
pub struct Contacts {
    pub meetings: MeetingContacts,
    pub analysed: AnalysedCalls,
    pub first_calls: FirstCalls,
    pub keys: Keys,
    /// The `seq` of the next new event (`bodies::next_seq`): numbers of a transaction that
    /// rolls back are not used again, a gap no reader minds.
    pub next_seq: i64,
}

impl Contacts {
    pub fn load(conn: &Connection) -> rusqlite::Result<Contacts> {
        let started = Instant::now();
        let contacts = Contacts {
            meetings: MeetingContacts::load(conn)?,
            analysed: AnalysedCalls::load(conn)?,
            first_calls: FirstCalls::default(),
            keys: Keys::load(conn)?,
            next_seq: bodies::next_seq(conn)?,
        };
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            key_filter_bytes = contacts.keys.bytes() + contacts.analysed.bytes(),
            "writer state loaded"
        );
        Ok(contacts)
    }

    /// The records as the transaction `tx` reads and changes them.
    pub fn records<'a>(&'a mut self, tx: &'a rusqlite::Transaction<'a>) -> SqliteRecords<'a> {
        SqliteRecords {
            tx,
            meetings: &mut self.meetings,
            analysed: &mut self.analysed,
            first_calls: &mut self.first_calls,
            keys: &mut self.keys,
            bodies: Default::default(),
            next_seq: &mut self.next_seq,
            stored: Default::default(),
            call_rows: Default::default(),
            values: Default::default(),
            statements: Default::default(),
            absent_call: None,
            contact_runs: Default::default(),
        }
    }
}

/// What the writer hands the merger.
enum Job {
    /// A committed (or failed) transaction.
    Committed {
        group: Vec<IngestRequest>,
        outcome: Result<Outcome>,
        started: Instant,
        /// Its number among the writer's commits (`durable::Durability`), on a durable store.
        commit: u64,
    },
    /// Cells a checkpoint folded, to be freed.
    Free(Overlay),
    /// Answered once every job sent before it is done.
    Barrier(mpsc::SyncSender<()>),
}

/// The thread that makes committed contributions visible and answers their requests, once
/// they are on disk.
struct Merger {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// On a durable store: the commits, and the thread that syncs them.
    syncer: Option<SyncThread>,
}

impl Merger {
    /// `sync_log`: how to make the writer's commits durable (`None`: they are already, or
    /// need not be).
    fn spawn(shared: Arc<Shared>, sync_log: Option<impl FnMut() -> std::io::Result<()> + Send + 'static>) -> Merger {
        let syncer = sync_log.map(SyncThread::spawn);
        let commits = syncer.as_ref().map(|s| s.commits().clone());
        let (queue, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("dialboard-merge".into())
            .spawn(move || {
                // Kept from one transaction to the next for its blocks' size hints and the
                // boxes the overlay's merge gives back.
                let mut gathering = DeltaMap::default();
                for job in rx {
                    match job {
                        Job::Committed {
                            group,
                            outcome,
                            started,
                            commit,
                        } => {
                            if let Ok(outcome) = &outcome {
                                // The deltas are made while the log is synced.
                                group::add_deltas(&mut gathering, &group, outcome);
                                let deltas = gathering.take();
                                if let Some(commits) = &commits {
                                    commits.wait_synced(commit);
                                }
                                gathering.reuse(shared.merge_overlay(deltas));
                            }
                            group::answer(group, outcome, started, &shared.metrics, &shared.changes);
                        }
                        Job::Free(cells) => drop(cells),
                        Job::Barrier(reached) => {
                            let _ = reached.send(());
                        }
                    }
                }
            })
            .expect("the merge thread starts");
        Merger {
            queue: Some(queue),
            thread: Some(thread),
            syncer,
        }
    }

    /// A transaction committed: its number, for the merger to wait for its sync.
    fn committed(&self) -> u64 {
        self.syncer.as_ref().map_or(0, |s| s.commits().committed())
    }

    fn send(&self, job: Job) {
        let queue = self.queue.as_ref().expect("the merger runs while the writer does");
        if queue.send(job).is_err() {
            // Its requests hear that the store closed; their data is committed.
            tracing::error!("the merge thread stopped");
        }
    }

    /// Waits until every transaction sent is in the overlay: a checkpoint folds the overlay and
    /// drops every pending row, so it must not run ahead of the merger. `false` if the merger
    /// died first (its barrier is dropped unanswered): then no checkpoint may run, and what it
    /// lost stays pending, reloaded at the next open.
    fn wait(&self) -> bool {
        let (reached, wait) = mpsc::sync_channel(1);
        self.send(Job::Barrier(reached));
        wait.recv().is_ok()
    }
}

impl Drop for Merger {
    /// Lets the merger finish what it was sent (its commits synced), then stops it.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(syncer) = self.syncer.take() {
            syncer.stop();
        }
    }
}

/// `contacts`: already built (by a backfill at open), or `None` until the first ingest.
pub fn run(mut conn: Connection, rx: Receiver<WriteCommand>, shared: Arc<Shared>, mut contacts: Option<Contacts>) {
    conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
    let sync_log = commits_synced_apart(&conn);
    let synced_apart = sync_log.is_some();
    let merger = Merger::spawn(shared.clone(), sync_log);
    let mut compactor = start_compactor(&conn);
    let mut last_checkpoint = Instant::now();
    let mut carried: Option<WriteCommand> = None;
    loop {
        let command = match carried.take() {
            Some(c) => c,
            None => match rx.recv_timeout(if compactor.as_ref().is_some_and(Compactor::busy) {
                SLICE_WAIT
            } else {
                CHECKPOINT_EVERY
            }) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = merge_runs(&mut conn, &mut compactor, contacts.as_mut().map(|c| &mut c.keys)) {
                        tracing::error!(error = %e, "merging key or value runs failed; they stay as they are");
                    }
                    if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                        checkpoint_logged(&mut conn, &shared, &merger, &mut last_checkpoint);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match command {
            WriteCommand::Ingest(first) => {
                let (group, other) = group::gather(first, &rx, as_ingest);
                carried = other;
                commit_group(&mut conn, &mut contacts, &merger, group);
                if let Err(e) = merge_runs(&mut conn, &mut compactor, contacts.as_mut().map(|c| &mut c.keys)) {
                    tracing::error!(error = %e, "merging key or value runs failed; they stay as they are");
                }
            }
            WriteCommand::Admin(job) => run_admin(&mut conn, synced_apart, job),
            WriteCommand::Checkpoint(reply) => {
                last_checkpoint = Instant::now();
                let _ = reply.send(checkpoint(&mut conn, &shared, &merger));
            }
            WriteCommand::Shutdown(done) => {
                // Everything queued before the shutdown is committed first, in one transaction;
                // other commands are dropped, so their callers hear the store is closed.
                let queued: Vec<IngestRequest> = rx.try_iter().filter_map(|c| as_ingest(c).ok()).collect();
                if !queued.is_empty() {
                    commit_group(&mut conn, &mut contacts, &merger, queued);
                }
                checkpoint_logged(&mut conn, &shared, &merger, &mut last_checkpoint);
                if let Err(e) = fold_spans(&mut conn) {
                    tracing::error!(error = %e, "folding the spans into blocks failed; they stay as they are");
                }
                drop(merger);
                let _ = done.send(());
                return;
            }
        }
        shared.wal_catch_up.between_transactions(&conn);
        let (cells, blocks) = shared.overlay_size();
        if checkpoint_due(cells, blocks, last_checkpoint.elapsed()) {
            checkpoint_logged(&mut conn, &shared, &merger, &mut last_checkpoint);
        }
    }
}

/// On a durable store (`synchronous=FULL`), the writer's ingest transactions commit without
/// waiting for the disk and the sync stage makes them durable before they are answered
/// (`durable`): the returned sync. `None` on a store that is not durable.
fn commits_synced_apart(conn: &Connection) -> Option<impl FnMut() -> std::io::Result<()> + Send + 'static> {
    let durable = conn
        .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|level| level >= 2);
    let database = conn.path().filter(|p| !p.is_empty())?.into();
    if !durable || conn.pragma_update(None, "synchronous", "NORMAL").is_err() {
        return None;
    }
    Some(durable::sync_log(database))
}

/// Runs an administrative job with the store's own durability: the job answers its caller
/// itself, so when ingest commits are synced apart its commits wait for the disk again (a few
/// a minute: not worth the stage).
fn run_admin(conn: &mut Connection, synced_apart: bool, job: AdminJob) {
    if synced_apart {
        let _ = conn.pragma_update(None, "synchronous", "FULL");
    }
    job(conn);
    if synced_apart {
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
    }
}

/// The compactor, on the writer's database file (none for a database in memory: its runs are
/// merged on the writer).
fn start_compactor(conn: &Connection) -> Option<Compactor> {
    let path = conn.path().filter(|p| !p.is_empty())?;
    Compactor::spawn(path, compactor::SLICE_BYTES)
        .inspect_err(|e| tracing::error!(error = %e, "the compaction thread did not start; runs merge on the writer"))
        .ok()
}

fn as_ingest(command: WriteCommand) -> Result<IngestRequest, WriteCommand> {
    match command {
        WriteCommand::Ingest(request) => Ok(request),
        other => Err(other),
    }
}

fn commit_group(conn: &mut Connection, contacts: &mut Option<Contacts>, merger: &Merger, group: Vec<IngestRequest>) {
    let started = Instant::now();
    let outcome = (|| {
        if contacts.is_none() {
            *contacts = Some(Contacts::load(conn)?);
        }
        let contacts = contacts.as_mut().expect("loaded above");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut records = contacts.records(&tx);
        let received_ns = group::now_ns();
        let outcome = group::apply_group(&mut records, &group, received_ns)?;
        records.bodies.write(&tx, received_ns)?;
        records.values.write(&tx, 0)?;
        // Its statements hold the transaction.
        drop(records);
        let contributions = group::encode_contributions(&group, &outcome);
        if !contributions.is_empty() {
            tx.prepare_cached("INSERT INTO pending_contributions (data) VALUES (?1)")?
                .execute([contributions])?;
        }
        contacts.keys.write(&tx)?;
        tx.commit()?;
        Ok(outcome)
    })();
    if let Some(c) = contacts.as_mut() {
        let committed = match outcome {
            Ok(_) => c.keys.committed(conn),
            Err(_) => {
                c.first_calls.rolled_back();
                c.keys.rolled_back();
                Ok(())
            }
        };
        if let Err(e) = committed {
            // The filters could not grow: forget the writer's state, rebuilt at the next ingest.
            tracing::error!(error = %e, "reloading the key filters failed");
            *contacts = None;
        }
    }
    let commit = if outcome.is_ok() { merger.committed() } else { 0 };
    merger.send(Job::Committed {
        group,
        outcome,
        started,
        commit,
    });
}

/// Stores what the compactor handed over, then plans the merges due: with a compactor, every
/// merge is prepared there and handed over in slices (`compactor`); without (a database in
/// memory), merges are done here. Key runs and value runs gain a run per ingest transaction
/// and fill a level together: their merges are planned together. While a plan is prepared no
/// other starts, so no two merges take a run.
fn merge_runs(
    conn: &mut Connection,
    compactor: &mut Option<Compactor>,
    mut keys_view: Option<&mut Keys>,
) -> rusqlite::Result<()> {
    if let Some(compactor) = compactor.as_mut() {
        store_steps(conn, compactor, keys_view.as_deref_mut())?;
    }
    if compactor.as_ref().is_some_and(Compactor::busy) {
        return Ok(());
    }
    let (keys_due, values_due) = (keys::merge_due(conn)?, value_runs::merge_due(conn)?);
    if !keys_due && !values_due {
        return Ok(());
    }
    let key_merges = if keys_due { keys::due_merges(conn)? } else { Vec::new() };
    let value_merges = if values_due {
        value_runs::due_merges(conn)?
    } else {
        Vec::new()
    };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(compactor) = compactor.as_mut() else {
        keys::merge_now(&tx, &key_merges, keys_view.as_deref_mut())?;
        value_runs::merge_now(&tx, &value_merges)?;
        tx.commit()?;
        return match keys_view.filter(|_| !key_merges.is_empty()) {
            Some(view) => view.filter_new_runs(conn),
            None => Ok(()),
        };
    };
    let planned = Planned {
        keys: key_merges
            .into_iter()
            .map(|merge| keys::begin(&tx, merge))
            .collect::<rusqlite::Result<_>>()?,
        values: value_merges
            .into_iter()
            .map(|merge| value_runs::begin(&tx, merge))
            .collect::<rusqlite::Result<_>>()?,
    };
    tx.commit()?;
    compactor.start(planned);
    Ok(())
}

/// Stores, in one transaction, the steps the compactor has handed over, up to about a slice of
/// chunks: a merge of any size is stored a slice between two ingest transactions. A merged run
/// is dropped instead if an input changed since it was planned (a purge), and planned again.
fn store_steps(conn: &mut Connection, compactor: &mut Compactor, keys_view: Option<&mut Keys>) -> rusqlite::Result<()> {
    let Some(step) = compactor.next_step() else {
        return Ok(());
    };
    store_from(conn, compactor, step, keys_view).inspect_err(|_| {
        // The steps taken are lost with the transaction: the runs being built miss them.
        compactor.abandon();
    })
}

fn store_from(
    conn: &mut Connection,
    compactor: &mut Compactor,
    mut step: Step,
    mut keys_view: Option<&mut Keys>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (mut stored, mut failed) = (0, None);
    loop {
        stored += step.bytes();
        match step {
            Step::KeySlice(slice) => keys::store_slice(&tx, slice)?,
            Step::KeysMerged(streamed) => {
                if !keys::finish(&tx, streamed, keys_view.as_deref_mut())? {
                    tracing::debug!("a merge of key runs was discarded: its inputs changed");
                }
            }
            Step::ValueSlice(slice) => value_runs::store_slice(&tx, slice)?,
            Step::ValuesMerged(streamed) => {
                if !value_runs::finish(&tx, streamed)? {
                    tracing::debug!("a merge of value runs was discarded: a purge changed its inputs");
                }
            }
            Step::Done(outcome) => {
                if let Err(e) = outcome {
                    keys::drop_unfinished(&tx)?;
                    value_runs::drop_unfinished(&tx)?;
                    failed = Some(e);
                }
                break;
            }
        }
        // What is over the slice is stored after the next ingest transaction (and taken only
        // then: a step taken is stored, or the transaction fails and the plan is abandoned).
        if stored >= compactor.slice_bytes() {
            break;
        }
        match compactor.next_step() {
            Some(next) => step = next,
            None => break,
        }
    }
    tx.commit()?;
    failed.map_or(Ok(()), Err)
}

/// Folds every span into its blocks (`spans`): a file the store closed has none.
fn fold_spans(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    spans::fold_all(&tx, None)?;
    tx.commit()?;
    Ok(())
}

/// Writes the week and month cells of `cells::AGENT_WEEKS` that a database written before
/// `AGENT_WEEKS_VERSION` lacks, summed from its day cells (`coarse`). Contributions not yet
/// folded are in neither: at start-up they become deltas of every grain (`load_pending`).
pub fn backfill_coarse(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // The day cells are read from the blocks.
    spans::fold_all(&tx, None)?;
    let tenants: Vec<(i64, String, String)> = tx
        .prepare("SELECT id, name, settings FROM tenants")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    {
        let mut days = tx.prepare(
            "SELECT bucket, block FROM cells WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 ORDER BY bucket",
        )?;
        // Whatever coarse cells are there (none, from an older version; but a file written by
        // this version and marked older must not end up with them twice) give way to the sums.
        tx.execute(
            "DELETE FROM cells WHERE cuboid = ?1 AND grain IN (?2, ?3)",
            params![AGENT_WEEKS, Grain::Week as i64, Grain::Month as i64],
        )?;
        let mut insert =
            tx.prepare("INSERT INTO cells (tenant_id, cuboid, grain, bucket, block) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for (id, name, settings) in tenants {
            let settings = serde_json::from_str(&settings).map_err(|e| StoreError::Database(e.to_string()))?;
            let tenant = TenantInfo::new(id, name, settings)?;
            let mut sums = crate::coarse::CoarseSums::new(&tenant.clock);
            let mut done = Vec::new();
            let mut rows = days.query(params![id, AGENT_WEEKS, Grain::Day as i64])?;
            while let Some(row) = rows.next()? {
                let block: Vec<u8> = row.get(1)?;
                sums.add_day(row.get(0)?, &block, &mut done)?;
            }
            sums.finish(&mut done);
            for (grain, bucket, block) in done {
                insert.execute(params![id, AGENT_WEEKS, grain as i64, bucket, block])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Computes, as one pending delta row (folded by the next checkpoint), the rollups a database
/// written by schema `version` lacks: before `OTHER_FACTS_VERSION`, those of conversations,
/// CSAT scores and stages; before `MEETING_DAYS_VERSION`, the time from each meeting's first
/// call; before `STAGE_SUMMARY_VERSION`, the stage cells without the agent; before
/// `CALL_INTENTS_VERSION`, the call cells by campaign and intent; before
/// `TEAM_CAMPAIGNS_VERSION`, the call cells by team and campaign.
pub fn backfill(conn: &mut Connection, version: usize, contacts: &mut Contacts) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut deltas = DeltaMap::default();
    let tenants: Vec<(i64, String, String)> = tx
        .prepare("SELECT id, name, settings FROM tenants")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let without_other_facts = version < OTHER_FACTS_VERSION;
    // The call cuboids the database lacks.
    let new_call_cuboids = crate::cuboids_newer_than(
        version,
        &[
            (CALL_INTENTS_VERSION, CALL_INTENTS),
            (TEAM_CAMPAIGNS_VERSION, TEAM_CAMPAIGNS),
        ],
    );
    for (id, name, settings) in tenants {
        let settings = serde_json::from_str(&settings).map_err(|e| StoreError::Database(e.to_string()))?;
        let tenant = TenantInfo::new(id, name, settings)?;
        let mut add = |cell: CellRef, stats: &Stats, sign| deltas.add(id, cell, stats, sign);
        if without_other_facts {
            let conversations: Vec<Conversation> = tx
                .prepare(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = ?1"
                ))?
                .query_map([id], |r| conversation_from_row(r))?
                .collect::<rusqlite::Result<_>>()?;
            for c in &conversations {
                for_each_ticket_cell(&tenant.clock, Grains::All, c, |cell, stats| add(cell, stats, 1));
            }
            let mut scores = tx.prepare(&format!(
                "SELECT {CSAT_COLUMNS}, (SELECT channel FROM conversations v WHERE v.tenant_id = s.tenant_id \
                 AND v.conversation_id = s.conversation_id) FROM csat s WHERE tenant_id = ?1"
            ))?;
            for row in scores.query_map([id], |r| Ok((csat_from_row(r)?, r.get::<_, Option<String>>(6)?)))? {
                let (score, channel) = row?;
                for_each_csat_cell(&tenant.clock, Grains::All, &score, channel.as_deref(), |cell, stats| {
                    add(cell, stats, 1)
                });
            }
        }
        if !new_call_cuboids.is_empty() {
            let mut calls = tx.prepare(&select_calls_with_analysis("calls c", "WHERE c.tenant_id = ?1"))?;
            let mut rows = calls.query([id])?;
            while let Some(row) = rows.next()? {
                let (call, analysis) = call_with_analysis(row)?;
                for_each_call_cell(&tenant.clock, Grains::All, &call, analysis.as_ref(), |cell, stats| {
                    if new_call_cuboids.contains(&cell.cuboid) {
                        add(cell, stats, 1);
                    }
                });
            }
            // Contributions not yet folded are turned into deltas of every cuboid at start-up
            // (`load_pending`), though the calls above already count them: take their cells of
            // the new cuboids back here.
            let mut pending = tx.prepare("SELECT data FROM pending_contributions")?;
            let mut rows = pending.query([])?;
            while let Some(row) = rows.next()? {
                let data: Vec<u8> = row.get(0)?;
                let corrupt = || StoreError::Database("corrupt row in pending_contributions".into());
                for (tenant_id, contributions) in contribution::decode(&data).ok_or_else(corrupt)? {
                    for c in contributions.iter().filter(|_| tenant_id == id) {
                        if let Counted::Call { call, analysis } = &c.counted {
                            for_each_call_cell(&tenant.clock, Grains::All, call, analysis.as_ref(), |cell, stats| {
                                if new_call_cuboids.contains(&cell.cuboid) {
                                    add(cell, stats, -c.sign);
                                }
                            });
                        }
                    }
                }
            }
        }
        if version >= STAGE_SUMMARY_VERSION {
            continue;
        }
        // The first event of each (contact, stage).
        let mut firsts = tx.prepare(&format!(
            "SELECT {STAGE_COLUMNS} FROM lead_stages s WHERE tenant_id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM lead_stages e WHERE e.tenant_id = s.tenant_id AND e.contact_id = s.contact_id \
             AND e.stage = s.stage AND (e.at_ns, e.event_id) < (s.at_ns, s.event_id))"
        ))?;
        // Which stage cells the database kept, and whether with the time from the first call.
        let kept = |cuboid: u8| !without_other_facts && (cuboid != 8 || version >= STAGE_SUMMARY_VERSION);
        let with_days = version >= MEETING_DAYS_VERSION;
        for stage in firsts.query_map([id], |r| stage_from_row(r))? {
            let stage = stage?;
            // Only a meeting counts the days from the first call.
            let first_call = match stage.stage.as_str() {
                MEETING_STAGE => {
                    contacts
                        .first_calls
                        .get(&tx, &contacts.keys, &mut Default::default(), id, &stage.contact_id)?
                }
                _ => None,
            };
            let clock = &tenant.clock;
            for_each_stage_cell(clock, Grains::All, &stage, first_call, |cell, stats| {
                if !(kept(cell.cuboid) && with_days) {
                    add(cell, stats, 1);
                }
            });
            // Where the stage was counted without the days, only the days are new.
            for_each_stage_cell(clock, Grains::All, &stage, None, |cell, stats| {
                if kept(cell.cuboid) && !with_days {
                    add(cell, stats, -1);
                }
            });
        }
    }
    if !deltas.is_empty() {
        tx.execute("INSERT INTO pending_deltas (data) VALUES (?1)", [deltas.encode()])?;
    }
    tx.commit()?;
    Ok(())
}

fn checkpoint_logged(conn: &mut Connection, shared: &Shared, merger: &Merger, last: &mut Instant) {
    *last = Instant::now();
    let started = Instant::now();
    match checkpoint(conn, shared, merger) {
        Ok(0) => {}
        Ok(cells) => tracing::debug!(cells, elapsed_ms = started.elapsed().as_millis() as u64, "checkpoint"),
        Err(e) => tracing::error!(error = %e, "checkpoint failed; contributions stay pending"),
    }
}

/// Folds the overlay into the cells table and drops the folded delta rows, in one
/// transaction: the deltas of a chunk of sparse blocks become a span (`spans`), until its
/// spans are full; other blocks get theirs as a new part, merged with their newest parts or
/// into their base when they have grown (`parts`). Readers hold the overlay's read lock for
/// their whole snapshot, so the commit and the clearing of the overlay happen together for them.
fn checkpoint(conn: &mut Connection, shared: &Shared, merger: &Merger) -> Result<usize> {
    if !merger.wait() {
        return Err(StoreError::Database("the merge thread stopped".into()));
    }
    if shared.overlay_size().0 == 0 {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let overlay = shared.overlay_for_checkpoint();
    let folded = overlay.len();
    spans::checkpoint(&tx, overlay.blocks())?;
    tx.execute_batch("DELETE FROM pending_deltas; DELETE FROM pending_contributions;")?;
    drop(overlay);
    merger.send(Job::Free(shared.commit_checkpoint(tx)?));
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::{schema, Options};

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    /// A durable store's writer commits without syncing and leaves the sync to the stage; a
    /// store that is not durable, or has no file, keeps its setting and has no stage.
    #[test]
    fn only_a_durable_stores_commits_are_synced_apart() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Connection::open(dir.path().join("durable.db")).unwrap();
        schema::configure(&durable, &Options::default()).unwrap();
        assert_eq!(synchronous(&durable), 2, "FULL");
        assert!(commits_synced_apart(&durable).is_some());
        assert_eq!(synchronous(&durable), 1, "NORMAL: the stage syncs");

        let throwaway = Connection::open(dir.path().join("throwaway.db")).unwrap();
        schema::configure(&throwaway, &Options::not_durable()).unwrap();
        assert!(commits_synced_apart(&throwaway).is_none());
        assert_eq!(synchronous(&throwaway), 1);

        let memory = Connection::open_in_memory().unwrap();
        memory.pragma_update(None, "synchronous", "FULL").unwrap();
        assert!(commits_synced_apart(&memory).is_none());
        assert_eq!(synchronous(&memory), 2);
    }

    /// An administrative job, answered by itself, commits with the store's own durability.
    #[test]
    fn admin_jobs_commit_synced() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        let (seen, level) = mpsc::channel();
        let job: AdminJob = Box::new(move |c| seen.send(synchronous(c)).unwrap());
        run_admin(&mut conn, true, job);
        assert_eq!(level.recv().unwrap(), 2);
        assert_eq!(synchronous(&conn), 1, "back to the writer's setting");
    }

    /// Runs merged by the compactor while new runs keep arriving: at every step, while a merge
    /// is prepared (its inputs still in place) and after its install, every key and every value
    /// entry written is stored exactly once, and the levels end merged. Slices of a chunk each:
    /// a merge is stored over many of the writer's turns, a slice at a time, none lost.
    #[test]
    fn runs_merge_in_the_background_while_new_runs_arrive() {
        use super::super::value_runs::tests::{call, stored_entries};
        use super::super::value_runs::{Field, PendingEntries};
        use keys::Kind;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("db")).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let mut compactor = Some(Compactor::spawn(dir.path().join("db").to_str().unwrap(), 1).unwrap());
        let mut view = Keys::load(&conn).unwrap();
        let (mut written, mut entries) = (Vec::new(), Vec::new());
        let check = |conn: &Connection, view: &Keys, written: &[(u64, i64)], entries: &[(i64, i64)]| {
            for &(h, seq) in written {
                assert_eq!(keys::find(conn, Kind::Event, h).unwrap(), vec![seq]);
                assert_eq!(view.candidates(conn, Kind::Contact, h).unwrap(), vec![seq]);
            }
            assert_eq!(stored_entries(conn, 1, Field::Agent, "a"), entries);
        };
        let (mut prepared_while_writing, mut checked_in_flight) = (0, 0);
        for txn in 0..(keys::FANOUT * keys::FANOUT + 3) as i64 {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            let mut pending = PendingEntries::default();
            for i in 0..40 {
                let seq = txn * 100 + i;
                let h = keys::hash(1, &format!("c{seq}"));
                view.add(Kind::Event, h, seq);
                view.add(Kind::Contact, h, seq);
                written.push((h, seq));
                pending.add(1, &call(&format!("c{seq}"), "a", seq), seq, None);
                entries.push((seq, seq));
            }
            pending.write(&tx, 0).unwrap();
            view.write(&tx).unwrap();
            tx.commit().unwrap();
            view.committed(&conn).unwrap();
            if compactor.as_ref().is_some_and(Compactor::busy) {
                prepared_while_writing += 1;
            }
            merge_runs(&mut conn, &mut compactor, Some(&mut view)).unwrap();
            if compactor.as_ref().is_some_and(Compactor::busy) && txn % 4 == 0 {
                checked_in_flight += 1;
                check(&conn, &view, &written, &entries);
            }
        }
        assert!(prepared_while_writing > 0 && checked_in_flight > 0);
        // The merges left: each installed, the next planned, until none is due.
        let deadline = Instant::now() + Duration::from_secs(60);
        let due = |conn: &Connection| keys::merge_due(conn).unwrap() || value_runs::merge_due(conn).unwrap();
        while compactor.as_ref().is_some_and(Compactor::busy) || due(&conn) {
            assert!(Instant::now() < deadline, "the merges never end");
            std::thread::sleep(Duration::from_millis(5));
            merge_runs(&mut conn, &mut compactor, Some(&mut view)).unwrap();
        }
        check(&conn, &view, &written, &entries);
        // 67 runs of each merged into fewer than FANOUT a level (how many a merge took depends
        // on what arrived while one was prepared).
        let (value_runs, event_runs): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM value_runs), (SELECT count(*) FROM key_runs WHERE kind = 0)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(value_runs < 2 * keys::FANOUT as i64 && event_runs < 2 * keys::FANOUT as i64);
        let reloaded = Keys::load(&conn).unwrap();
        check(&conn, &reloaded, &written, &entries);
    }

    #[test]
    fn a_wide_overlay_waits_for_its_cells() {
        let (two, ten) = (Duration::from_secs(2), Duration::from_secs(10));
        assert!(checkpoint_due(10, 10, two), "in time order: every 2 s");
        assert!(!checkpoint_due(10, 10, Duration::from_secs(1)));
        assert!(
            !checkpoint_due(20_000, 10_000, ten),
            "in random order: a cell or two a block"
        );
        assert!(checkpoint_due(CHECKPOINT_CELLS, 10_000, Duration::ZERO));
        assert!(checkpoint_due(20_000, 10_000, CHECKPOINT_WIDE_EVERY));
    }
}
