//! The embedded store: one SQLite file in WAL mode, one writer thread (group commit) and a
//! small pool of reader connections.

pub mod backup;
mod bodies;
mod compactor;
mod durable;
mod first_calls;
pub mod keys;
mod parts;
mod records;
mod rows;
mod schema;
pub mod space;
mod spans;
pub(crate) mod value_runs;
/// The schema version that first keeps call cells by campaign and intent (upgrade tests go back before it).
pub use schema::{AGENT_WEEKS_VERSION, CALL_INTENTS_VERSION, TEAM_CAMPAIGNS_VERSION};
pub mod wal;
mod writer;

use crate::access::{AuditEntry, KeyInfo, User};
use crate::catalog;
use crate::contribution;
use crate::drill;
use crate::group::WriterQueue;
use crate::jobs::{self, Claim, Job, JobUpdate, NewJob};
use crate::overlay::{DeltaMap, Overlay, Spare};
use crate::retention;
use crate::rows::{call_with_analysis, select_calls_with_analysis, select_calls_with_analysis_and, AFTER_ANALYSIS};
use crate::saved::{self, SavedChange, SavedItem, SavedKind, SavedOutcome, SavedVersion};
use crate::{
    Announcement, ApiKey, CallsPage, CallsRequest, Change, ChangeFeed, DirectoryKind, ExportCall, ExportPage, Feed,
    IngestSummary, Result, Store, StoreError, StoreMetrics, TenantCache, TenantInfo, TenantSettings,
};
use async_trait::async_trait;
use dialboard_engine::cells::{CellData, Cuboid};
use dialboard_engine::clock::Grain;
use dialboard_engine::event::{CallAnalysis, CallRecord, ParsedEvent};
use dialboard_engine::query::{AgentTeams, CellSource, QueryResult, SourceError};
use dialboard_engine::FieldError;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, RwLock, RwLockReadGuard};
use tokio::sync::oneshot;
use wal::{CatchUp, WalCheckpointer};
use writer::WriteCommand;

pub use schema::configure;

/// State the writer thread and the readers share.
#[derive(Default)]
pub struct Shared {
    overlay: RwLock<Overlay>,
    tenants: TenantCache,
    /// Each tenant's agent → team map (see `engine::query::Context::agent_teams`): loaded at
    /// open, replaced only by the writer thread after an agent entry changed, so no reader can
    /// publish a stale one.
    agent_teams: RwLock<HashMap<i64, Arc<AgentTeams>>>,
    pub metrics: StoreMetrics,
    pub changes: ChangeFeed,
    /// One node: an announcement goes to this process's hub only.
    announcements: Feed<Announcement>,
    /// Set by the WAL checkpointer when the writer should copy the rest of a long log.
    wal_catch_up: CatchUp,
}

impl Shared {
    /// The cells the overlay holds, and in how many blocks.
    fn overlay_size(&self) -> (usize, usize) {
        let overlay = self.overlay.read().expect("overlay lock");
        (overlay.len(), overlay.blocks_len())
    }

    /// Returns the boxes of the cells merged away, for the next deltas.
    fn merge_overlay(&self, deltas: DeltaMap) -> Spare {
        self.overlay.write().expect("overlay lock").merge(deltas)
    }

    fn overlay_for_checkpoint(&self) -> RwLockReadGuard<'_, Overlay> {
        self.overlay.read().expect("overlay lock")
    }

    /// Commits a checkpoint and empties the overlay while no reader holds a snapshot; returns
    /// the folded cells, for another thread to free (5% of the writer's time).
    fn commit_checkpoint(&self, tx: Transaction) -> Result<Overlay> {
        let mut overlay = self.overlay.write().expect("overlay lock");
        tx.commit()?;
        Ok(std::mem::take(&mut *overlay))
    }

    /// A tenant, from the cache or else read with `conn`.
    fn tenant(&self, conn: &mut Connection, id: i64) -> Result<Arc<TenantInfo>> {
        if let Some(t) = self.tenants.get(id) {
            return Ok(t);
        }
        let row = catalog::tenant_by_id(conn, id)?.ok_or(StoreError::NotFound)?;
        self.tenants.from_row(row)
    }

    fn agent_teams(&self, tenant_id: i64) -> Arc<AgentTeams> {
        let maps = self.agent_teams.read().expect("agent teams lock");
        maps.get(&tenant_id).cloned().unwrap_or_default()
    }
}

pub struct Options {
    /// `synchronous=FULL` (survives power loss) rather than `NORMAL` (survives a crash of the
    /// process only).
    pub synchronous_full: bool,
    /// The write-ahead log starts over once a checkpoint pass leaves more frames than this
    /// (see [`wal`]).
    pub wal_restart_frames: i64,
}

impl Options {
    /// `synchronous=NORMAL`: what tests and throwaway databases want.
    pub fn not_durable() -> Options {
        Options {
            synchronous_full: false,
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            synchronous_full: true,
            // 128 MB of 4 KB pages: the writer's share of the copying, one commit's frames
            // each time, was 7% of its time at 64 MB.
            wal_restart_frames: 32_768,
        }
    }
}

/// Puts into the overlay what committed transactions added to the rollups and no checkpoint
/// folded yet.
fn load_pending(conn: &mut Connection, shared: &Shared) -> Result<()> {
    let corrupt = |table| move || StoreError::Database(format!("corrupt row in {table}"));
    let rows = |conn: &mut Connection, table: &str| -> Result<Vec<Vec<u8>>> {
        let mut stmt = conn.prepare(&format!("SELECT data FROM {table} ORDER BY seq"))?;
        let rows = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    };
    for data in rows(conn, "pending_deltas")? {
        shared.merge_overlay(DeltaMap::decode(&data).ok_or_else(corrupt("pending_deltas"))?);
    }
    for data in rows(conn, "pending_contributions")? {
        let mut tenants = Vec::new();
        for (tenant_id, contributions) in contribution::decode(&data).ok_or_else(corrupt("pending_contributions"))? {
            let tenant = match shared.tenant(conn, tenant_id) {
                Err(StoreError::NotFound) => return Err(corrupt("pending_contributions")()),
                tenant => tenant?,
            };
            tenants.push((tenant, contributions));
        }
        let mut deltas = DeltaMap::default();
        contribution::add_deltas(&mut deltas, tenants.iter().map(|(t, c)| (&**t, &c[..])));
        shared.merge_overlay(deltas);
    }
    Ok(())
}

pub struct SqliteStore {
    path: PathBuf,
    shared: Arc<Shared>,
    writer: WriterQueue<WriteCommand>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    wal: Mutex<Option<WalCheckpointer>>,
    readers: Mutex<Vec<Connection>>,
}

impl Drop for SqliteStore {
    /// Stops as a crash would, less abruptly: what is queued is committed, nothing more (no
    /// last checkpoint: `shutdown` does that). Waits for the writer, so that the file is free
    /// for the next store once this one is gone.
    fn drop(&mut self) {
        self.stop_wal_checkpointer();
        self.writer.close();
        if let Some(writer) = self.writer_thread.lock().expect("writer thread lock").take() {
            let _ = writer.join();
        }
    }
}

/// Makes this store the database file's only one (an exclusive lock, held until the writer
/// stops): a second store on a file, in this process or another, would run its own writer
/// beside the first — its own filters of ids, merges of runs and cells in memory, each blind to
/// the other's — and at open drop the runs the first one's merges are building, so that the
/// first then deleted their inputs (entries lost). The lock is on a file beside the database
/// (`PATH-lock`, as SQLite's `-wal` and `-shm`): one on the database itself would clash with
/// SQLite's own locks on NFS (where Linux emulates it with them) and on Windows (mandatory).
/// `None` for a database in memory.
fn own(conn: &Connection) -> Result<Option<std::fs::File>> {
    let Some(path) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let lock = format!("{path}-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| StoreError::Database(format!("{lock}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Database(format!(
            "{path} is in use by another dialboard process (a server?): one process at a time owns \
             an embedded database; stop it first, or make the change through the server's API \
             (keys, users, imports); `dialboard backup` copies the database while it runs"
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database(format!("locking {lock}: {e}"))),
    }
}

fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// `sqlite://PATH` or a plain path.
pub fn path_from_url(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database and starts the writer.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path)?;
        let owner = own(&conn)?;
        // Before the schema's first table, or before anything else opens an older file.
        space::use_incremental_vacuum(&conn)?;
        schema::configure(&conn, &options)?;
        let version = schema::migrate(&mut conn)?;
        if (1..schema::KEYED_VERSION).contains(&version) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            keys::rebuild(&tx, &keys::Kind::ALL)?;
            tx.commit()?;
        }
        // Runs a merge was building when the process stopped.
        keys::drop_unfinished(&conn)?;
        value_runs::drop_unfinished(&conn)?;
        let mut contacts = None;
        if (1..schema::TEAM_CAMPAIGNS_VERSION).contains(&version) {
            let built = contacts.insert(writer::Contacts::load(&conn)?);
            writer::backfill(&mut conn, version, built)?;
        }
        if (1..schema::AGENT_WEEKS_VERSION).contains(&version) {
            writer::backfill_coarse(&mut conn)?;
        }
        let shared = Arc::new(Shared::default());
        *shared.agent_teams.write().expect("agent teams lock") = catalog::agent_teams(&mut conn, None)?
            .into_iter()
            .map(|(tenant, map)| (tenant, Arc::new(map)))
            .collect();
        load_pending(&mut conn, &shared)?;
        let wal = WalCheckpointer::spawn(&conn, &path, &options, shared.wal_catch_up.clone())?;
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("dialboard-writer".into())
            .spawn(move || {
                // Released once the writer, its compactor and their connections are done.
                let _owner = owner;
                writer::run(conn, rx, writer_shared, contacts)
            })
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(SqliteStore {
            path,
            shared,
            writer: WriterQueue::new(tx),
            writer_thread: Mutex::new(Some(handle)),
            wal: Mutex::new(Some(wal)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Gives the pages a purge or an erasure freed back to the file system (`space`): bounded
    /// steps on the writer, in order with ingest, until none is left or a step frees nothing.
    async fn reclaim_space(&self) -> Result<()> {
        let mut free = self.write(|conn| space::free_pages(conn)).await?;
        while free > 0 {
            let left = self.write(|conn| space::vacuum_step(conn)).await?;
            if left >= free {
                break;
            }
            free = left;
        }
        Ok(())
    }

    fn stop_wal_checkpointer(&self) -> Option<std::thread::JoinHandle<()>> {
        Some(self.wal.lock().expect("wal lock").take()?.stop())
    }

    /// Runs `job` on the writer connection, in order with ingest.
    async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(WriteCommand::Admin(Box::new(move |conn| {
            let _ = reply.send(job(conn));
        })))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `job` on a pooled reader connection in the blocking pool, in one read transaction:
    /// everything a job reads is one snapshot. A job that reads runs and then their chunks
    /// would otherwise see a merge finished in between (the writer stores merges while readers
    /// read) take the listed runs away, with their entries. The transaction is deferred, so the
    /// snapshot starts at the job's first read: a job may take the overlay's lock before it.
    async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = match self.readers.lock().expect("reader pool").pop() {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.pragma_update(None, "busy_timeout", 10_000)?;
                c.pragma_update(None, "cache_size", -32_768)?;
                c.pragma_update(None, "mmap_size", 268_435_456)?;
                c
            }
        };
        let shared = self.shared.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            let out = conn
                .execute_batch("BEGIN DEFERRED")
                .map_err(StoreError::from)
                .and_then(|()| job(&mut conn, &shared));
            // Read only: ending it either way changes nothing.
            let ended = conn.is_autocommit() || conn.execute_batch("ROLLBACK").is_ok();
            (ended.then_some(conn), out)
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?;
        let mut pool = self.readers.lock().expect("reader pool");
        if let Some(conn) = conn.filter(|_| pool.len() < 8) {
            pool.push(conn);
        }
        out
    }
}

/// The engine's reads, served from one snapshot: stored cells plus the pending overlay.
struct Source<'a> {
    conn: &'a Connection,
    tenant: i64,
    overlay: &'a Overlay,
}

impl CellSource for Source<'_> {
    fn cells(
        &mut self,
        c: &Cuboid,
        grain: Grain,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(i64, &str, CellData),
    ) -> Result<(), SourceError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT bucket, block FROM cells WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND bucket >= ?4 AND bucket < ?5",
        )?;
        let mut rows = stmt.query(params![self.tenant, c.id, grain as i64, from, to])?;
        while let Some(row) = rows.next()? {
            let bucket: i64 = row.get(0)?;
            for entry in crate::block::entries(row.get_ref(1)?.as_blob()?) {
                let (key, stats) = entry.ok_or("corrupt cell block")?;
                sink(bucket, key, CellData::Encoded(stats));
            }
        }
        spans::read(
            self.conn,
            (self.tenant, c.id, grain),
            from,
            to,
            &mut |bucket, key, stats| sink(bucket, key, CellData::Encoded(stats)),
        )?;
        for (bucket, key, stats) in self.overlay.range(self.tenant, c.id, grain, from, to) {
            sink(bucket, key, CellData::Decoded(stats));
        }
        Ok(())
    }

    fn raw_calls(
        &mut self,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(&CallRecord, Option<&CallAnalysis>),
    ) -> Result<(), SourceError> {
        // The range's calls through the runs of every call by start (the sink takes them in any
        // order), each entry checked against its row.
        let mut stmt = self.conn.prepare_cached(&select_calls_with_analysis(
            "calls c",
            "WHERE c.seq = ?1 AND c.started_ns = ?2 AND c.tenant_id = ?3",
        ))?;
        let (from_ns, to_ns) = (from * 1_000_000_000, to * 1_000_000_000);
        let mut entries =
            value_runs::NewestFirst::new(self.conn, self.tenant, value_runs::Field::Start, "", from_ns, to_ns)?;
        while let Some((ns, seq)) = entries.next_entry()? {
            let row = stmt
                .query_row(params![seq, ns, self.tenant], |r| call_with_analysis(r))
                .optional()?;
            if let Some((call, analysis)) = row {
                sink(&call, analysis.as_ref());
            }
        }
        Ok(())
    }
}

/// The start (ns) of the tenant's earliest call: where a drill-down's `all_time` begins.
fn earliest_call(conn: &Connection, tenant_id: i64) -> Result<Option<i64>> {
    let mut stored =
        conn.prepare_cached("SELECT 1 FROM calls WHERE seq = ?1 AND started_ns = ?2 AND tenant_id = ?3")?;
    Ok(value_runs::oldest(
        conn,
        tenant_id,
        value_runs::Field::Start,
        "",
        |(ns, seq)| stored.exists(params![seq, ns, tenant_id]),
    )?)
}

/// The conditions of a drill-down page on `calls c` and their parameters (from `?1`). Its
/// filters are conditions of the SQL ([`drill::Drill::pushed`]); `driving`, the one with a
/// single value on a listed column, if any, reads its calls through the runs
/// ([`value_runs`]), the others are checked on the rows.
fn drill_conditions(
    tenant: &TenantInfo,
    drill: &drill::Drill,
    pushed: &[drill::Pushed],
    driving: Option<usize>,
) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as Sql;
    let range = drill.query.range;
    let mut values = vec![
        Sql::Integer(tenant.id),
        Sql::Integer(range.start * 1_000_000_000),
        Sql::Integer(drill_below(drill)),
        Sql::Integer(drill.after.0),
        Sql::Text(drill.after.1.clone()),
    ];
    let mut sql = String::from(
        "c.tenant_id = ?1 AND c.started_ns >= ?2 AND c.started_ns < ?3 AND (c.started_ns, c.call_id) < (?4, ?5)",
    );
    for (i, p) in pushed.iter().enumerate() {
        let first = values.len() + 1;
        values.extend(p.values.iter().map(|v| Sql::Text(v.clone())));
        if Some(i) == driving {
            sql += &format!(" AND c.{} = ?{first}", p.column);
            continue;
        }
        let list: Vec<String> = (first..first + p.values.len()).map(|n| format!("?{n}")).collect();
        let null = if p.or_null {
            format!(" OR c.{} IS NULL", p.column)
        } else {
            String::new()
        };
        sql += &format!(" AND (c.{} IN ({}){null})", p.column, list.join(", "));
    }
    (sql, values)
}

/// Where a page's calls start before: the range's end, or just after the cursor's start (its
/// own instant is bounded by the call id). The cursor also bounds the index range: SQLite does
/// not bound it by the row value, so each page would scan every row of the pages before it.
fn drill_below(drill: &drill::Drill) -> i64 {
    (drill.query.range.end * 1_000_000_000).min(drill.after.0.saturating_add(1))
}

/// What a drill-down row holds beyond the call and its analysis: the row of its event, by
/// which an export reads the bodies.
const DRILL_EXTRA: &str = ", c.event_seq";

/// How a drill-down page reads its calls: through the runs of the driving filter's value (or,
/// without one, of every call: `Field::Start`), newest first, each entry's row fetched by the
/// statement, given its `seq` and start as its two last parameters, and checked by the page's
/// conditions. SQLite never reads all of a value's rows to sort them.
struct DrillRead {
    field: value_runs::Field,
    value: String,
    sql: String,
    values: Vec<rusqlite::types::Value>,
}

fn drill_read(tenant: &TenantInfo, drill: &drill::Drill) -> DrillRead {
    let pushed = drill.pushed(tenant);
    let driving =
        drill::Drill::driving(&pushed).and_then(|i| Some((i, value_runs::Field::of_column(pushed[i].column)?)));
    let (conditions, values) = drill_conditions(tenant, drill, &pushed, driving.map(|(i, _)| i));
    let at = values.len() + 1;
    let sql = format!("WHERE c.seq = ?{at} AND c.started_ns = ?{} AND {conditions}", at + 1);
    let (field, value) = match driving {
        Some((i, field)) => (field, pushed[i].values[0].clone()),
        None => (value_runs::Field::Start, String::new()),
    };
    DrillRead {
        field,
        value,
        sql: select_calls_with_analysis_and(DRILL_EXTRA, "calls c", &sql),
        values,
    }
}

/// A call of a drill-down with its analysis (as an export's row, its body still to read), and
/// the row of its current event (`calls.event_seq`, NULL if the call was written before that
/// column).
type DrillRow = (ExportCall, Option<i64>);

/// The calls of one page of a drill-down, newest first, as records.
fn drill_matching(
    conn: &Connection,
    tenant: &TenantInfo,
    drill: &drill::Drill,
    limit: usize,
) -> Result<drill::Matched<DrillRow>> {
    let drill_row = |r: &rusqlite::Row| -> rusqlite::Result<DrillRow> {
        let (call, analysis) = call_with_analysis(r)?;
        let body = None;
        Ok((ExportCall { call, analysis, body }, r.get(AFTER_ANALYSIS)?))
    };
    let DrillRead {
        field,
        value,
        sql,
        mut values,
    } = drill_read(tenant, drill);
    let mut stmt = conn.prepare_cached(&sql)?;
    let from = drill.query.range.start * 1_000_000_000;
    let entries = value_runs::NewestFirst::new(conn, tenant.id, field, &value, from, drill_below(drill))?;
    let conditions = values.len();
    let rows = entries.rows(|seq, ns| {
        values.truncate(conditions);
        values.extend([seq.into(), ns.into()]);
        Ok(stmt
            .query_row(rusqlite::params_from_iter(values.iter()), drill_row)
            .optional()?)
    });
    drill::matching(tenant, drill, limit, drill::ties_by_id(rows))
}

/// A page of an export: its calls with the bodies of their events, read by the rows the calls
/// keep (each block of bodies read once, in `seq` order); the events of calls written before
/// `calls.event_seq` existed are found by their ids.
fn export_rows(conn: &Connection, tenant_id: i64, mut rows: Vec<DrillRow>) -> Result<Vec<ExportCall>> {
    let at_seq = rows.iter().enumerate().filter_map(|(i, r)| r.1.map(|seq| (seq, i)));
    for (i, body) in bodies::by_seq(conn, tenant_id, at_seq.collect())? {
        rows[i].0.body = Some(body);
    }
    let unplaced: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1.is_none()).collect();
    if !unplaced.is_empty() {
        let ids = unplaced.iter().map(|&i| rows[i].0.call.event_id.clone());
        let mut found = event_bodies(conn, tenant_id, ids)?;
        for i in unplaced {
            rows[i].0.body = found.remove(&rows[i].0.call.event_id);
        }
    }
    // In place: an `ExportCall` is smaller than its row.
    Ok(rows.into_iter().map(|(row, _)| row).collect())
}

/// One page of a drill-down, newest first.
fn drill_page(conn: &Connection, tenant: &TenantInfo, drill: &drill::Drill, limit: usize) -> Result<CallsPage> {
    Ok(drill::page(tenant, drill, drill_matching(conn, tenant, drill, limit)?))
}

/// The stored JSON body of each of `event_ids` (event id → body), found through the event
/// keys' runs (probed for all of them at once, in hash order).
fn event_bodies(
    conn: &Connection,
    tenant_id: i64,
    event_ids: impl Iterator<Item = String>,
) -> Result<HashMap<String, String>> {
    let ids: Vec<(u64, String)> = event_ids.map(|id| (keys::hash(tenant_id, &id), id)).collect();
    let hashes: Vec<u64> = ids.iter().map(|(h, _)| *h).collect();
    let candidates = keys::find_many(conn, keys::Kind::Event, &hashes)?;
    // Read in the order of the rows (`seq`), not of the page: rows of one table page, or of
    // neighbouring ones, are then read one after another while that page is at hand.
    let mut wanted: Vec<(i64, &str)> = ids
        .iter()
        .flat_map(|(hash, id)| {
            let seqs = candidates.get(hash).map_or(&[][..], Vec::as_slice);
            seqs.iter().map(move |&seq| (seq, id.as_str()))
        })
        .collect();
    wanted.sort_unstable();
    let mut reader = bodies::EventReader::default();
    let mut out = HashMap::with_capacity(ids.len());
    for (seq, event_id) in wanted {
        if out.contains_key(event_id) {
            continue;
        }
        // The event at a candidate `seq` is this one unless the 64-bit hashes collided.
        if let Some(event) = reader.event(conn, tenant_id, seq)?.filter(|e| e.event_id == event_id) {
            out.insert(event_id.to_string(), event.body);
        }
    }
    Ok(out)
}

/// After an agent entry changed (on the writer thread), the tenant's map is read again.
fn refresh_agent_teams(conn: &mut Connection, shared: &Shared, tenant_id: i64, kind: DirectoryKind) -> Result<()> {
    if kind == DirectoryKind::Agent {
        let map = catalog::agent_teams(conn, Some(tenant_id))?
            .remove(&tenant_id)
            .unwrap_or_default();
        shared
            .agent_teams
            .write()
            .expect("agent teams lock")
            .insert(tenant_id, Arc::new(map));
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_tenant(&self, name: &str, settings: TenantSettings) -> Result<Arc<TenantInfo>> {
        let info = TenantInfo::new(0, name.to_string(), settings.clone())?;
        let name = name.to_string();
        let id = self
            .write(move |conn| catalog::create_tenant(conn, &name, &settings, now_seconds()))
            .await?;
        Ok(self.shared.tenants.insert(TenantInfo { id, ..info }))
    }

    async fn current_statuses(&self, tenant_id: i64) -> Result<Vec<(String, String, i64)>> {
        self.read(move |conn, _| {
            // SQLite takes the bare columns from the row holding max(): the latest status.
            let mut stmt = conn.prepare_cached(
                "SELECT agent_id, status, max(at_ns) FROM agent_status WHERE tenant_id = ?1 GROUP BY agent_id",
            )?;
            let rows = stmt.query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn update_settings(&self, tenant_id: i64, settings: TenantSettings) -> Result<Arc<TenantInfo>> {
        let info = self.tenant(tenant_id).await?.with_settings(settings)?;
        let settings = info.settings.clone();
        self.write(move |conn| catalog::update_settings(conn, tenant_id, &settings))
            .await?;
        Ok(self.shared.tenants.insert(info))
    }

    async fn put_directory(&self, tenant_id: i64, kind: DirectoryKind, id: &str, body: Value) -> Result<()> {
        let id = id.to_string();
        let shared = self.shared.clone();
        self.write(move |conn| {
            catalog::put_directory(conn, tenant_id, kind, &id, &body, now_seconds())?;
            refresh_agent_teams(conn, &shared, tenant_id, kind)
        })
        .await
    }

    async fn delete_directory(&self, tenant_id: i64, kind: DirectoryKind, id: &str) -> Result<bool> {
        let id = id.to_string();
        let shared = self.shared.clone();
        self.write(move |conn| {
            let deleted = catalog::delete_directory(conn, tenant_id, kind, &id)?;
            refresh_agent_teams(conn, &shared, tenant_id, kind)?;
            Ok(deleted)
        })
        .await
    }

    async fn directory(&self, tenant_id: i64, kind: DirectoryKind) -> Result<Vec<(String, Value)>> {
        self.read(move |conn, _| catalog::directory(conn, tenant_id, kind))
            .await
    }

    async fn agent_teams(&self, tenant_id: i64) -> Result<Arc<AgentTeams>> {
        Ok(self.shared.agent_teams(tenant_id))
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Arc<TenantInfo>>> {
        let name = name.to_string();
        self.read(move |conn, shared| {
            catalog::tenant_by_name(conn, &name)?
                .map(|row| shared.tenants.from_row(row))
                .transpose()
        })
        .await
    }

    async fn tenant(&self, id: i64) -> Result<Arc<TenantInfo>> {
        if let Some(t) = self.shared.tenants.get(id) {
            return Ok(t);
        }
        self.read(move |conn, shared| shared.tenant(conn, id)).await
    }

    async fn create_key(&self, key_hash: [u8; 32], key: ApiKey) -> Result<()> {
        self.write(move |conn| catalog::insert_key(conn, &key_hash, &key, now_seconds()))
            .await
    }

    async fn key(&self, key_hash: [u8; 32]) -> Result<Option<ApiKey>> {
        self.read(move |conn, _| catalog::key(conn, &key_hash)).await
    }

    async fn keys(&self, tenant_id: i64) -> Result<Vec<KeyInfo>> {
        self.read(move |conn, _| catalog::keys(conn, tenant_id)).await
    }

    async fn set_key_scram(&self, key_hash: [u8; 32], verifier: String) -> Result<()> {
        self.write(move |conn| catalog::set_key_scram(conn, &key_hash, &verifier))
            .await
    }

    async fn key_verifiers(&self, tenant_id: i64) -> Result<Vec<([u8; 32], Option<String>)>> {
        self.read(move |conn, _| catalog::key_verifiers(conn, tenant_id)).await
    }

    async fn revoke_key(&self, tenant_id: i64, key_id: &str) -> Result<bool> {
        let key_id = key_id.to_string();
        self.write(move |conn| catalog::revoke_key(conn, tenant_id, &key_id, now_seconds()))
            .await
    }

    async fn create_user(&self, user: User, password_hash: String) -> Result<()> {
        self.write(move |conn| catalog::create_user(conn, &user, &password_hash))
            .await
    }

    async fn user_by_email(&self, tenant_id: i64, email: &str) -> Result<Option<(User, String)>> {
        let email = email.to_string();
        self.read(move |conn, _| catalog::user_by_email(conn, tenant_id, &email))
            .await
    }

    async fn users_by_email(&self, email: &str, limit: usize) -> Result<Vec<(User, String)>> {
        let email = email.to_string();
        self.read(move |conn, _| catalog::users_by_email(conn, &email, limit as i64))
            .await
    }

    async fn users(&self, tenant_id: i64) -> Result<Vec<User>> {
        self.read(move |conn, _| catalog::users(conn, tenant_id)).await
    }

    async fn delete_user(&self, tenant_id: i64, user_id: &str) -> Result<bool> {
        let user_id = user_id.to_string();
        self.write(move |conn| {
            let mut tx = conn.transaction()?;
            let deleted = catalog::delete_user(&mut tx, tenant_id, &user_id, now_seconds())?;
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }

    async fn set_password(
        &self,
        tenant_id: i64,
        user_id: &str,
        password_hash: String,
        keep_session: Option<[u8; 32]>,
    ) -> Result<bool> {
        let user_id = user_id.to_string();
        self.write(move |conn| {
            let mut tx = conn.transaction()?;
            let keep = keep_session.as_ref();
            let found = catalog::set_password(&mut tx, tenant_id, &user_id, &password_hash, keep, now_seconds())?;
            tx.commit()?;
            Ok(found)
        })
        .await
    }

    async fn create_session(&self, token_hash: [u8; 32], user: &User, expires_at: i64) -> Result<()> {
        let user = user.clone();
        self.write(move |conn| catalog::create_session(conn, &token_hash, &user, now_seconds(), expires_at))
            .await
    }

    async fn session(&self, token_hash: [u8; 32], now: i64) -> Result<Option<User>> {
        self.read(move |conn, _| catalog::session(conn, &token_hash, now)).await
    }

    async fn revoke_session(&self, token_hash: [u8; 32]) -> Result<()> {
        self.write(move |conn| catalog::revoke_session(conn, &token_hash, now_seconds()))
            .await
    }

    async fn audit(&self, tenant_id: i64, entry: AuditEntry) -> Result<()> {
        self.write(move |conn| catalog::audit(conn, tenant_id, &entry)).await
    }

    async fn audit_log(&self, tenant_id: i64, limit: usize, before: Option<i64>) -> Result<Vec<(i64, AuditEntry)>> {
        self.read(move |conn, _| catalog::audit_log(conn, tenant_id, limit, before))
            .await
    }

    async fn ingest(&self, tenant_id: i64, events: Vec<ParsedEvent>) -> Result<IngestSummary> {
        let tenant = self.tenant(tenant_id).await?;
        self.writer.ingest(tenant, events, WriteCommand::Ingest).await
    }

    async fn query(&self, tenant_id: i64, body: Value, now: i64) -> Result<Result<QueryResult, Vec<FieldError>>> {
        let tenant = self.tenant(tenant_id).await?;
        self.read(move |conn, shared| {
            // The overlay's read lock spans the snapshot, so a checkpoint cannot fold the
            // overlay into the cells halfway through this query.
            let overlay = shared.overlay.read().expect("overlay lock");
            let stored: Option<i64> = conn
                .prepare_cached(
                    "SELECT min(b) FROM (SELECT min(bucket) AS b FROM cells WHERE tenant_id = ?1 AND cuboid = 0 \
                     AND grain = 0 UNION ALL SELECT min(first_bucket) FROM cell_spans WHERE tenant_id = ?1 \
                     AND cuboid = 0 AND grain = 0)",
                )?
                .query_row([tenant.id], |r| r.get(0))?;
            let pending = overlay.min_bucket(tenant.id, 0, Grain::Quarter);
            let earliest = [stored, pending].into_iter().flatten().min();
            let mut source = Source {
                conn,
                tenant: tenant.id,
                overlay: &overlay,
            };
            tenant.run_query(&body, now, earliest, &shared.agent_teams(tenant.id), &mut source)
        })
        .await
    }

    async fn calls(
        &self,
        tenant_id: i64,
        request: CallsRequest,
        now: i64,
    ) -> Result<Result<CallsPage, Vec<FieldError>>> {
        let tenant = self.tenant(tenant_id).await?;
        self.read(move |conn, shared| {
            let teams = shared.agent_teams(tenant.id);
            let drill = match drill::parse(&tenant, &request, now, earliest_call(conn, tenant.id)?, teams) {
                Ok(d) => d,
                Err(errors) => return Ok(Err(errors)),
            };
            Ok(Ok(drill_page(conn, &tenant, &drill, request.limit)?))
        })
        .await
    }

    async fn records(
        &self,
        tenant_id: i64,
        kind: crate::listing::RecordKind,
        request: CallsRequest,
        now: i64,
    ) -> Result<Result<crate::listing::RecordsPage, Vec<FieldError>>> {
        let tenant = self.tenant(tenant_id).await?;
        self.read(move |conn, shared| {
            let teams = shared.agent_teams(tenant.id);
            crate::listing::page(conn, &tenant, kind, &request, now, teams)
        })
        .await
    }

    async fn calls_per_agent(
        &self,
        tenant_id: i64,
        request: CallsRequest,
        agents: Vec<String>,
        now: i64,
    ) -> Result<Result<Vec<CallsPage>, Vec<FieldError>>> {
        let tenant = self.tenant(tenant_id).await?;
        self.read(move |conn, shared| {
            let teams = shared.agent_teams(tenant.id);
            let drill = match drill::parse(&tenant, &request, now, earliest_call(conn, tenant.id)?, teams) {
                Ok(d) => d,
                Err(errors) => return Ok(Err(errors)),
            };
            let pages = drill::per_agent(&drill, &agents)
                .iter()
                .map(|one| match one {
                    Some(d) => drill_page(conn, &tenant, d, request.limit),
                    None => Ok(CallsPage::default()),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Ok(pages))
        })
        .await
    }

    async fn disposition_streaks(
        &self,
        tenant_id: i64,
        agents: Vec<String>,
        from_ns: i64,
        to_ns: i64,
        dispositions: Vec<String>,
    ) -> Result<Vec<i64>> {
        self.read(move |conn, _| {
            // The agent's calls newest first through its runs, read only until the streak ends.
            let mut stmt = conn.prepare_cached(
                "SELECT disposition, call_id FROM calls WHERE seq = ?1 AND started_ns = ?2 AND tenant_id = ?3 \
                 AND agent_id = ?4",
            )?;
            agents
                .iter()
                .map(|agent| {
                    let entries =
                        value_runs::NewestFirst::new(conn, tenant_id, value_runs::Field::Agent, agent, from_ns, to_ns)?;
                    let rows = entries.rows(|seq, ns| {
                        Ok(stmt
                            .query_row(params![seq, ns, tenant_id, agent], |r| {
                                Ok((ns, r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                            })
                            .optional()?)
                    });
                    let rows = drill::ties_by(rows, |r| r.0, |r| r.2.as_str());
                    drill::leading_run(rows.map(|r| r.map(|(_, d, _)| d)), &dispositions)
                })
                .collect()
        })
        .await
    }

    async fn call(&self, tenant_id: i64, call_id: &str) -> Result<Option<Value>> {
        let tenant = self.tenant(tenant_id).await?;
        let call_id = call_id.to_string();
        self.read(move |conn, _| {
            let mut current = None;
            let mut at = conn.prepare_cached(&select_calls_with_analysis(
                "calls c",
                "WHERE c.seq = ?3 AND c.tenant_id = ?1 AND c.call_id = ?2",
            ))?;
            for seq in keys::find(conn, keys::Kind::Call, keys::hash(tenant.id, &call_id))? {
                current = at
                    .query_row(params![tenant.id, call_id, seq], |r| call_with_analysis(r))
                    .optional()?;
                if current.is_some() {
                    break;
                }
            }
            let Some((call, analysis)) = current else {
                return Ok(None);
            };
            let mut versions = Vec::new();
            let mut reader = bodies::EventReader::default();
            // The call's events are its call keys since migration 34 (`keys::Kind::Call`),
            // the record keys before; a call key written before leads to its row, whose `seq`
            // may be another event's, which the record key check leaves out.
            let hash = keys::hash(tenant.id, &call_id);
            let mut seqs = keys::find(conn, keys::Kind::Record, hash)?;
            seqs.extend(keys::find(conn, keys::Kind::Call, hash)?);
            seqs.sort_unstable();
            seqs.dedup();
            for seq in seqs {
                let event = reader.event(conn, tenant.id, seq)?;
                if let Some(e) = event.filter(|e| e.record_key.as_deref() == Some(call_id.as_str())) {
                    versions.push(drill::Version {
                        event_id: e.event_id,
                        kind: e.kind,
                        received_ns: e.received_ns,
                        body: e.body,
                    });
                }
            }
            versions.sort_by(|a, b| (a.received_ns, &a.event_id).cmp(&(b.received_ns, &b.event_id)));
            Ok(Some(drill::detail(&tenant, &call, analysis.as_ref(), versions)))
        })
        .await
    }

    async fn checkpoint(&self) -> Result<usize> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(WriteCommand::Checkpoint(reply))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn ready(&self) -> Result<()> {
        self.read(|conn, _| {
            Ok(conn
                .query_row("SELECT 1 FROM tenants LIMIT 1", [], |_| Ok(()))
                .optional()
                .map(|_| ())?)
        })
        .await
    }

    fn metrics(&self) -> &StoreMetrics {
        &self.shared.metrics
    }

    fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<Change>> {
        self.shared.changes.subscribe()
    }

    async fn announce(&self, announcement: Announcement) -> Result<()> {
        self.shared.announcements.publish(announcement);
        Ok(())
    }

    fn announcements(&self) -> tokio::sync::broadcast::Receiver<Arc<Announcement>> {
        self.shared.announcements.subscribe()
    }

    async fn shutdown(&self) {
        self.writer.shut_down(WriteCommand::Shutdown).await;
        let handle = self.writer_thread.lock().expect("writer thread lock").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        if let Some(h) = self.stop_wal_checkpointer() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }

    async fn enqueue_job(&self, tenant_id: i64, job: NewJob, now: i64) -> Result<Job> {
        self.write(move |conn| jobs::enqueue(conn, tenant_id, &job, now)).await
    }

    async fn enqueue_job_once(&self, tenant_id: i64, id: &str, job: NewJob, now: i64) -> Result<Option<Job>> {
        let id = id.to_string();
        self.write(move |conn| jobs::enqueue_once(conn, tenant_id, &id, &job, now))
            .await
    }

    async fn tenant_ids(&self) -> Result<Vec<i64>> {
        self.read(|conn, _| catalog::tenant_ids(conn)).await
    }

    async fn claim_job(&self, claim: Claim, now: i64) -> Result<Option<Job>> {
        // IMMEDIATE: the write lock is taken before the due job is chosen, so another process
        // on the same file waits instead of choosing the same job.
        self.write(move |conn| {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let job = jobs::claim(&mut tx, &claim, now, false)?;
            tx.commit()?;
            Ok(job)
        })
        .await
    }

    async fn update_job(&self, tenant_id: i64, id: &str, worker: &str, update: JobUpdate, now: i64) -> Result<bool> {
        let (id, worker) = (id.to_string(), worker.to_string());
        self.write(move |conn| {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let held = jobs::update(&mut tx, tenant_id, &id, &worker, &update, now)?;
            tx.commit()?;
            Ok(held)
        })
        .await
    }

    async fn job(&self, tenant_id: i64, id: &str) -> Result<Option<Job>> {
        let id = id.to_string();
        self.read(move |conn, _| jobs::get(conn, tenant_id, &id)).await
    }

    async fn jobs(&self, tenant_id: i64, kind: &str, limit: usize) -> Result<Vec<Job>> {
        let kind = kind.to_string();
        self.read(move |conn, _| jobs::list(conn, tenant_id, &kind, limit))
            .await
    }

    async fn put_job_file_chunk(&self, tenant_id: i64, id: &str, seq: i64, data: Vec<u8>) -> Result<()> {
        let id = id.to_string();
        self.write(move |conn| {
            let mut tx = conn.transaction()?;
            if seq == 0 {
                jobs::delete_file(&mut tx, tenant_id, &id)?;
            }
            jobs::put_file_chunk(&mut tx, tenant_id, &id, seq, &data)?;
            Ok(tx.commit()?)
        })
        .await
    }

    async fn job_file_chunk(&self, tenant_id: i64, id: &str, seq: i64) -> Result<Option<Vec<u8>>> {
        let id = id.to_string();
        self.read(move |conn, _| jobs::file_chunk(conn, tenant_id, &id, seq))
            .await
    }

    async fn change_saved(
        &self,
        tenant_id: i64,
        kind: SavedKind,
        change: SavedChange,
        now: i64,
    ) -> Result<SavedOutcome> {
        self.write(move |conn| {
            let mut tx = conn.transaction()?;
            let outcome = saved::apply(&mut tx, tenant_id, kind, &change, now)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn saved_item(&self, tenant_id: i64, kind: SavedKind, id: &str) -> Result<Option<SavedItem>> {
        let id = id.to_string();
        self.read(move |conn, _| saved::get(conn, tenant_id, kind, &id)).await
    }

    async fn saved_items(&self, tenant_id: i64, kind: SavedKind) -> Result<Vec<SavedItem>> {
        self.read(move |conn, _| saved::list(conn, tenant_id, kind)).await
    }

    async fn saved_versions(&self, tenant_id: i64, kind: SavedKind, id: &str) -> Result<Vec<SavedVersion>> {
        let id = id.to_string();
        self.read(move |conn, _| saved::versions(conn, tenant_id, kind, &id))
            .await
    }

    async fn transact(&self, work: crate::SqlWork) -> Result<()> {
        self.write(move |conn| {
            let mut tx = conn.transaction()?;
            work(&mut tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn all_saved_items(&self, kind: SavedKind) -> Result<Vec<(i64, SavedItem)>> {
        self.read(move |conn, _| saved::list_all(conn, kind)).await
    }

    async fn create_schedule_run(
        &self,
        tenant_id: i64,
        schedule_id: &str,
        scheduled_for: i64,
        late: bool,
        job: NewJob,
        now_ms: i64,
    ) -> Result<Option<Job>> {
        let schedule_id = schedule_id.to_string();
        self.write(move |conn| {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let job =
                crate::schedules::create_run(&mut tx, tenant_id, &schedule_id, scheduled_for, late, &job, now_ms)?;
            tx.commit()?;
            Ok(job)
        })
        .await
    }

    async fn latest_schedule_run(&self, tenant_id: i64, schedule_id: &str) -> Result<Option<i64>> {
        let schedule_id = schedule_id.to_string();
        self.read(move |conn, _| crate::schedules::latest_run(conn, tenant_id, &schedule_id))
            .await
    }

    async fn schedule_runs(
        &self,
        tenant_id: i64,
        schedule_id: &str,
        limit: usize,
    ) -> Result<Vec<crate::schedules::ScheduleRun>> {
        let schedule_id = schedule_id.to_string();
        self.read(move |conn, _| crate::schedules::runs(conn, tenant_id, &schedule_id, limit))
            .await
    }

    async fn event_bodies(&self, tenant_id: i64, ids: Vec<(String, String)>) -> Result<HashMap<String, String>> {
        self.read(move |conn, _| event_bodies(conn, tenant_id, ids.into_iter().map(|(_, id)| id)))
            .await
    }

    async fn export_calls(
        &self,
        tenant_id: i64,
        request: CallsRequest,
        now: i64,
    ) -> Result<Result<ExportPage, Vec<FieldError>>> {
        let tenant = self.tenant(tenant_id).await?;
        self.read(move |conn, shared| {
            let teams = shared.agent_teams(tenant.id);
            let drill = match drill::parse(&tenant, &request, now, earliest_call(conn, tenant.id)?, teams) {
                Ok(d) => d,
                Err(errors) => return Ok(Err(errors)),
            };
            let (calls, next_cursor) = drill_matching(conn, &tenant, &drill, request.limit)?;
            let rows = export_rows(conn, tenant.id, calls)?;
            Ok(Ok(ExportPage { rows, next_cursor }))
        })
        .await
    }

    async fn purge(&self, tenant_id: i64, cutoffs: retention::Cutoffs, dry_run: bool) -> Result<retention::Counts> {
        // Cells still in the overlay are folded first, so none comes back after the purge.
        self.checkpoint().await?;
        let tenant = self.tenant(tenant_id).await?;
        let after = tenant.with_purged(retention::purged(&tenant.settings.purged, &cutoffs))?;
        let settings = after.settings.clone();
        let counts = self
            .write(move |conn| {
                let mut tx = conn.transaction()?;
                // Spans hold buckets of several blocks: in blocks, whole rows go.
                spans::fold_all(&tx, Some(tenant_id))?;
                let counts = retention::purge(&mut tx, retention::Dialect::Sqlite, tenant_id, &cutoffs, dry_run)?;
                if let Some(cutoff) = cutoffs.raw_ns.filter(|_| !dry_run) {
                    value_runs::purge(&tx, tenant_id, cutoff)?;
                }
                if !dry_run {
                    catalog::update_settings(&mut tx, tenant_id, &settings)?;
                }
                tx.commit()?;
                Ok(counts)
            })
            .await?;
        if !dry_run {
            self.shared.tenants.insert(after);
            self.reclaim_space().await?;
        }
        Ok(counts)
    }

    async fn set_purge_state(&self, tenant_id: i64, state: retention::PurgeState) -> Result<Arc<TenantInfo>> {
        let info = self.tenant(tenant_id).await?.with_purged(state)?;
        let settings = info.settings.clone();
        self.write(move |conn| catalog::update_settings(conn, tenant_id, &settings))
            .await?;
        Ok(self.shared.tenants.insert(info))
    }

    async fn erase_contact(&self, tenant_id: i64, contact_id: &str) -> Result<i64> {
        let contact_id = contact_id.to_string();
        let erased = self
            .write(move |conn| {
                // The old bodies must not stay in freed space, nor in the log's older frames.
                conn.pragma_update(None, "secure_delete", "ON")?;
                let erased = (|| {
                    let mut tx = conn.transaction()?;
                    let n = retention::erase_contact(&mut tx, retention::Dialect::Sqlite, tenant_id, &contact_id)?
                        + bodies::rewrite(&tx, tenant_id, |body| retention::erased_body(body, &contact_id))?;
                    tx.commit()?;
                    Ok::<_, StoreError>(n)
                })();
                conn.pragma_update(None, "secure_delete", "OFF")?;
                let erased = erased?;
                if erased > 0 {
                    wal::truncate(conn)?;
                }
                Ok(erased)
            })
            .await?;
        if erased > 0 {
            self.reclaim_space().await?;
        }
        Ok(erased)
    }
}

#[cfg(test)]
mod tests {
    use super::{drill, drill_read, schema, DrillRead, Options, SqliteStore, TenantInfo};
    use crate::{CallsRequest, TenantSettings};
    use rusqlite::Connection;
    use serde_json::json;

    /// One store a file: a second open, in this process or another, is refused naming the
    /// file and what to do, and the file is free again once the first store is dropped.
    #[test]
    fn a_file_has_one_store_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let first = SqliteStore::open(&path, Options::not_durable()).unwrap();
        let Err(refused) = SqliteStore::open(&path, Options::not_durable()) else {
            panic!("a second store opened on the file");
        };
        let message = refused.to_string();
        assert!(
            message.contains("t.db is in use by another dialboard process") && message.contains("stop it first"),
            "{message}"
        );
        drop(first);
        SqliteStore::open(&path, Options::not_durable()).unwrap();
    }

    /// How a drill-down page with `filters` over a month reads, and the plan of its statement.
    fn plan(filters: serde_json::Value) -> (String, String) {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        let tenant = TenantInfo::new(1, "t".into(), TenantSettings::default()).unwrap();
        let request = CallsRequest {
            query: json!({"range": {"start": "2026-03-01", "end": "2026-04-01"}, "filters": filters}),
            cursor: None,
            limit: 100,
        };
        let drill = drill::parse(&tenant, &request, 1_780_000_000, None, Default::default()).unwrap();
        let DrillRead {
            field,
            value,
            sql,
            mut values,
        } = drill_read(&tenant, &drill);
        values.extend([7.into(), 0.into()]);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), |r| r.get::<_, String>(3))
            .unwrap();
        (
            format!("{field:?} {value}"),
            rows.collect::<rusqlite::Result<Vec<_>>>().unwrap().join("\n"),
        )
    }

    /// A drill-down reads its calls newest first through the runs of its most selective
    /// one-valued filter, or else through the runs of every call by start (each row then fetched
    /// by its `seq`; never all the range's calls, never a sort by SQLite: calls that start at
    /// the same instant are put in order by id as they are read); filters of several values are
    /// checked on the rows read.
    #[test]
    fn drill_downs_read_through_the_runs_of_their_filter() {
        for (filters, runs) in [
            (json!({"agent": ["a1"]}), "Agent a1"),
            (json!({"team": ["t1"], "disposition": ["Busy"]}), "Team t1"),
            (json!({"campaign": ["k1"], "agent": ["a1", "a2"]}), "Campaign k1"),
            (json!({"disposition": ["Busy"]}), "Disposition Busy"),
            (
                json!({"disposition_category": ["invalid"], "hour_of_day": ["9"]}),
                "Start ",
            ),
            (json!({}), "Start "),
        ] {
            let (read, plan) = plan(filters.clone());
            assert_eq!(read, runs, "{filters}");
            assert!(!plan.contains("TEMP B-TREE"), "{filters}: {plan}");
            assert!(
                plan.contains("SEARCH c USING INTEGER PRIMARY KEY (rowid=?)"),
                "{filters}: {plan}"
            );
        }
    }
}

#[cfg(test)]
mod call_keys_tests {
    use super::{keys, schema, value_runs, Options, SqliteStore};
    use crate::{retention, CallsRequest, IngestSummary, Store, TenantSettings};
    use dialboard_engine::event::{parse_event, ParsedEvent};
    use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
    use rusqlite::Connection;
    use serde_json::{json, Value};
    use std::path::Path;

    fn parse(events: &[Value]) -> Vec<ParsedEvent> {
        let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
        events.iter().map(|e| parse_event(e, &taxonomy).unwrap()).collect()
    }

    fn call(id: &str, call: &str, disposition: &str, day: u32, updated_minute: u32) -> Value {
        json!({"id": id, "type": "call", "call_id": call, "agent_id": format!("a{}", day % 2),
               "disposition": disposition, "contact_id": format!("p{}", day % 3),
               "started_at": format!("2026-03-0{day}T10:00:00Z"),
               "updated_at": format!("2026-03-0{day}T10:{updated_minute:02}:00Z")})
    }

    /// What a database written before migration 34 holds for the same events: each call's row
    /// numbered on its own (here in reverse, so that a row's `seq` is another call's event's),
    /// listed under a call key and its contact's key, and every event of a call under a record
    /// key (`keys::rebuild` writes the keys of that layout from the rows and the blocks).
    fn downgrade(path: &Path) {
        let mut conn = Connection::open(path).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(
            "CREATE TEMP TABLE renumbered AS SELECT seq AS old, row_number() OVER (ORDER BY seq DESC) AS new FROM calls;
             UPDATE calls SET seq = -seq;
             UPDATE calls SET seq = (SELECT new FROM renumbered WHERE old = -calls.seq);
             PRAGMA user_version = 33;",
        )
        .unwrap();
        keys::rebuild(&tx, &[keys::Kind::Record, keys::Kind::Call, keys::Kind::Contact]).unwrap();
        value_runs::rebuild(&tx).unwrap();
        tx.commit().unwrap();
    }

    /// The answers of a store along one scenario: before and after `reopen` (which may leave
    /// the old layout), duplicates, corrections of calls stored before, new calls and their
    /// corrections, a purge and an analysis of a purged call.
    fn answers(path: &Path, reopen: &dyn Fn(&Path)) -> Vec<Value> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut out = Vec::new();
        let store = SqliteStore::open(path, Options::default()).unwrap();
        let tenant = rt
            .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
            .unwrap();
        let mut first: Vec<Value> = (1..=9)
            .map(|i| call(&format!("e{i}"), &format!("c{i}"), "No Answer", i, 1))
            .collect();
        first.push(call("e10", "c3", "Connected", 3, 5));
        first.push(json!({"id": "e11", "type": "call_analysis", "call_id": "c5", "score": 80}));
        // A conversation whose id is a call's: its record key hashes as the call's key.
        first.push(
            json!({"id": "e12", "type": "conversation", "conversation_id": "c7", "channel": "email",
                          "opened_at": "2026-03-07T09:00:00Z", "agent_id": "a1"}),
        );
        rt.block_on(store.ingest(tenant.id, parse(&first))).unwrap();
        rt.block_on(store.shutdown());
        drop(store);
        reopen(path);
        let store = SqliteStore::open(path, Options::default()).unwrap();
        let summary = |s: IngestSummary| json!([s.accepted, s.duplicates, s.refused.len()]);
        let observe = |out: &mut Vec<Value>| {
            let query = json!({"measures": ["total_calls", "connected_calls"],
                               "range": {"start": "2026-03-01", "end": "2026-03-31"}});
            out.push(
                rt.block_on(store.query(tenant.id, query, 0))
                    .unwrap()
                    .unwrap()
                    .to_json()["totals"]
                    .clone(),
            );
            for id in ["c1", "c3", "c5", "c7", "c20"] {
                let detail = rt.block_on(store.call(tenant.id, id)).unwrap();
                let versions = detail.as_ref().map(|d| {
                    d["versions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v["event_id"].clone())
                        .collect::<Vec<_>>()
                });
                let disposition = detail.as_ref().map(|d| d["disposition"].clone());
                out.push(json!([id, disposition, versions]));
            }
            // Through the value runs: an agent's calls and the range's, newest first.
            for filters in [json!({"agent": ["a1"]}), json!({})] {
                let request = CallsRequest {
                    query: json!({"range": {"start": "2026-03-01", "end": "2026-03-31"}, "filters": filters}),
                    cursor: None,
                    limit: 100,
                };
                let page = rt.block_on(store.calls(tenant.id, request, 0)).unwrap().unwrap();
                out.push(page.calls.iter().map(|c| c["call_id"].clone()).collect());
            }
        };
        observe(&mut out);
        let again = parse(&[
            call("e1", "c1", "Connected", 1, 1),
            call("e10", "c3", "Connected", 3, 5),
            call("e21", "c1", "Connected", 1, 7),
            call("e22", "c7", "Connected", 7, 7),
            call("e23", "c20", "No Answer", 8, 1),
            call("e24", "c20", "Connected", 8, 3),
            call("e25", "c3", "No Answer", 3, 2),
        ]);
        out.push(summary(rt.block_on(store.ingest(tenant.id, again)).unwrap()));
        observe(&mut out);
        // The calls started before 2026-03-07 purged: an analysis of one of them is refused.
        let cutoffs = retention::Cutoffs {
            raw_ns: Some(1_772_841_600_000_000_000), // 2026-03-07T00:00:00Z
            ..Default::default()
        };
        rt.block_on(store.purge(tenant.id, cutoffs, false)).unwrap();
        let late = parse(&[
            json!({"id": "e30", "type": "call_analysis", "call_id": "c1", "score": 10}),
            json!({"id": "e31", "type": "call_analysis", "call_id": "c7", "score": 10}),
        ]);
        out.push(summary(rt.block_on(store.ingest(tenant.id, late)).unwrap()));
        observe(&mut out);
        rt.block_on(store.shutdown());
        out
    }

    /// The scenario's answers on a store left as `older` leaves it, which must be those of a
    /// store written since (returned).
    fn answers_as_written_since(older: &dyn Fn(&Path)) -> Vec<Value> {
        let dir = tempfile::tempdir().unwrap();
        let old = answers(&dir.path().join("old.db"), older);
        let new = answers(&dir.path().join("new.db"), &|_| {});
        assert_eq!(old, new);
        new
    }

    /// What a database written before migration 35 holds: value chunks of fixed-width entries
    /// (two big-endian `i64`s each).
    fn fixed_width_value_chunks(path: &Path) {
        let mut conn = Connection::open(path).unwrap();
        let tx = conn.transaction().unwrap();
        let chunks: Vec<(i64, Vec<u8>)> = tx
            .prepare("SELECT id, data FROM value_chunks")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(!chunks.is_empty());
        for (id, data) in chunks {
            let fixed: Vec<u8> = value_runs::decode(&data)
                .flat_map(|(ns, seq)| [ns.to_be_bytes(), seq.to_be_bytes()].concat())
                .collect();
            tx.execute(
                "UPDATE value_chunks SET data = ?1 WHERE id = ?2",
                rusqlite::params![fixed, id],
            )
            .unwrap();
        }
        tx.pragma_update(None, "user_version", schema::COMPACT_VALUE_CHUNKS_VERSION - 1)
            .unwrap();
        tx.commit().unwrap();
    }

    /// A database whose value chunks hold fixed-width entries has its runs built again when
    /// opened: drill-downs, the purge and the calls after the upgrade read the same calls as on
    /// a database written since (fails if the chunks are read as they are).
    #[test]
    fn value_chunks_of_fixed_width_entries_are_rebuilt_at_open() {
        let new = answers_as_written_since(&fixed_width_value_chunks);
        assert_eq!(new[6], json!(["c9", "c7", "c5", "c3", "c1"]), "{new:?}");
    }

    /// A call's row takes the `seq` of the event that created it and its events are listed
    /// under its call key alone: the record keys hold only the analysis and the conversation
    /// (fails before migration 34, where every call event had one too).
    #[test]
    fn a_calls_events_are_its_keys_and_its_first_event_numbers_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        answers(&path, &|path| {
            let conn = Connection::open(path).unwrap();
            let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
            assert_eq!(count("SELECT sum(keys) FROM key_runs WHERE kind = 1"), 2);
            assert_eq!(count("SELECT sum(keys) FROM key_runs WHERE kind = 2"), 10);
            // c3's row is its first event's (the third), its event its second version's.
            assert_eq!(count("SELECT seq FROM calls WHERE call_id = 'c3'"), 3);
            assert_eq!(count("SELECT count(*) FROM calls WHERE seq = event_seq"), 8);
        });
    }

    /// A database of the layout before migration 34 opens and answers as one written since:
    /// its calls are found by their rows' keys (corrections, duplicates, a call's versions, the
    /// purge check), beside the calls stored after the upgrade.
    #[test]
    fn calls_stored_before_migration_34_answer_the_same() {
        let new = answers_as_written_since(&downgrade);
        // The scenario tells calls apart: corrections replaced, a purged call's analysis refused.
        assert_eq!(new[8], json!([5, 2, 0]), "{new:?}");
        assert_eq!(new[17], json!([1, 0, 1]), "{new:?}");
        assert_eq!(new[11], json!(["c3", "Connected", ["e10", "e3", "e25"]]), "{new:?}");
        assert_eq!(new[19], json!(["c1", null, null]), "purged: {new:?}");
    }
}
