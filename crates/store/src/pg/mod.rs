//! The PostgreSQL store, for several `dialboard serve` nodes on one database.
//!
//! Each node has one ingest thread (group commit; see `writer.rs`), a compaction thread (the
//! job runs on one node at a time, under an advisory lock), a listener thread (`LISTEN
//! dialboard`: changes committed by other nodes reach this node's live subscribers, and their
//! settings and directory changes clear this node's caches) and a bounded pool of connections
//! for everything else ([`PoolOptions`]), used from tokio's blocking threads.
//!
//! Rollups are exact as on SQLite: the same cells and contributions (`crate::apply`), kept as
//! cell blocks plus per-transaction delta rows that queries add in (in one snapshot) until the
//! compaction folds them.

mod bodies;
pub mod cluster;
mod id_filter;
mod schema;
mod value_runs;
/// The schema version that first keeps call cells by campaign and intent (upgrade tests go back before it).
pub use schema::{
    AGENT_WEEKS_VERSION, BADGE_BASELINES_VERSION, CALL_INTENTS_VERSION, EVENT_BLOCKS_VERSION, HASHED_KEYS_VERSION,
    STAGED_CONTACTS_VERSION, TEAM_CAMPAIGNS_VERSION, VALUE_RUNS_VERSION,
};
mod working;
mod writer;

pub use schema::Lock;

use crate::access::{AuditEntry, KeyInfo, User};
use crate::group::WriterQueue;
use crate::rows::{call_with_analysis, select_calls_with_analysis};
use crate::{
    catalog, drill,
    jobs::{self, Claim, Job, JobUpdate, NewJob},
    retention,
    saved::{self, SavedChange, SavedItem, SavedKind, SavedOutcome, SavedVersion},
    Announcement, ApiKey, CallsPage, CallsRequest, Change, ChangeFeed, DirectoryKind, ExportPage, Feed, IngestSummary,
    Result, Store, StoreError, StoreMetrics, TenantCache, TenantInfo, TenantSettings,
};
use async_trait::async_trait;
use dialboard_engine::cells::{CellData, Cuboid};
use dialboard_engine::clock::Grain;
use dialboard_engine::event::{parse_event_text, CallAnalysis, CallRecord, ParsedEvent};
use dialboard_engine::query::{AgentTeams, CellSource, QueryResult, SourceError};
use dialboard_engine::FieldError;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Statement};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;
use writer::Command;

/// A PostgreSQL client or transaction, seen through the shared SQL surface (`crate::sql`).
pub struct Pg<'a, C>(pub &'a mut C);

/// The channel every node listens on.
const CHANNEL: &str = "dialboard";
/// PostgreSQL refuses a notice's payload of this many bytes or more. (Announcements are far
/// smaller: names are bounded, 200 characters for an alert's.)
const NOTIFY_LIMIT: usize = 8000;
/// How often each node tries to compact.
const COMPACT_EVERY: Duration = Duration::from_millis(500);

/// The writer's session. It reads records only by key, as a LATERAL probe per key of the batch
/// (`working::probe`); with only nested loops and plain index scans to choose from, each probe
/// is an index scan whatever the statistics say. Otherwise a table that had grown since its last
/// ANALYZE was read whole for each batch (45 ms at 350k calls), or, while it looked small, once
/// per key (seconds a batch). No JIT: a probe per key and generation of ids is costed past its
/// threshold, and compiling would take longer than the probes.
const WRITER_SESSION: &str = "SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_seqscan = off; \
                              SET enable_bitmapscan = off; SET enable_material = off; SET jit = off";
/// The pool of connections for reads and administration (besides the writer's, the
/// compactor's and the listener's own), from the database URL's `pool_max_size` and
/// `pool_timeout_seconds` parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolOptions {
    /// Connections open at most: a burst of requests waits for one rather than opening more.
    pub max_size: u32,
    /// How long a request waits for a free connection before it fails.
    pub timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 16,
            timeout: Duration::from_secs(30),
        }
    }
}

impl PoolOptions {
    /// Takes the pool's parameters out of a database URL: the options and the URL without them
    /// (the PostgreSQL client knows no such parameters).
    pub fn from_url(url: &str) -> Result<(PoolOptions, String)> {
        let mut options = PoolOptions::default();
        let Some((base, query)) = url.split_once('?') else {
            return Ok((options, url.to_string()));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || -> Result<u32> {
                value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| StoreError::Invalid(format!("database URL: {name} must be a whole number ≥ 1")))
            };
            match name {
                "pool_max_size" => options.max_size = number()?,
                "pool_timeout_seconds" => options.timeout = Duration::from_secs(number()?.into()),
                _ => kept.push(pair),
            }
        }
        let url = match kept.is_empty() {
            true => base.to_string(),
            false => format!("{base}?{}", kept.join("&")),
        };
        Ok((options, url))
    }
}

/// Makes the pool's connections (with the PostgreSQL client's manager) and checks them: each
/// is tested with an empty query when taken, and dropped once closed.
struct Manager(r2d2_postgres::PostgresConnectionManager<NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.0.connect()?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

type Pool = r2d2::Pool<Manager>;

/// What one node tells the others.
#[derive(Debug, PartialEq)]
enum Notice {
    /// A commit stored a tenant's events, logged as received at `received_ns`.
    Stored { tenant: i64, received_ns: i64 },
    /// A tenant's settings changed.
    Settings { tenant: i64 },
    /// A tenant's agents changed (their teams).
    Agents { tenant: i64 },
    /// A message for every node's live subscribers (JSON, without the tenant).
    Announce { tenant: i64, message: String },
}

impl Notice {
    fn encode(&self, node: &str) -> String {
        match self {
            Notice::Stored { tenant, received_ns } => format!("{node} stored {tenant} {received_ns}"),
            Notice::Settings { tenant } => format!("{node} settings {tenant}"),
            Notice::Agents { tenant } => format!("{node} agents {tenant}"),
            Notice::Announce { tenant, message } => format!("{node} announce {tenant} {message}"),
        }
    }

    /// The sending node and the notice.
    fn decode(payload: &str) -> Option<(&str, Notice)> {
        // The fourth part is the rest: an announcement's JSON has spaces.
        let mut parts = payload.splitn(4, ' ');
        let node = parts.next()?;
        let kind = parts.next()?;
        let tenant = parts.next()?.parse().ok()?;
        let notice = match kind {
            "stored" => Notice::Stored {
                tenant,
                received_ns: parts.next()?.parse().ok()?,
            },
            "settings" => Notice::Settings { tenant },
            "agents" => Notice::Agents { tenant },
            "announce" => Notice::Announce {
                tenant,
                message: parts.next()?.to_string(),
            },
            _ => return None,
        };
        Some((node, notice))
    }
}

/// State the node's threads and readers share.
pub struct Shared {
    /// This node's id in notices (random per process).
    node: String,
    tenants: TenantCache,
    agent_teams: RwLock<HashMap<i64, Arc<AgentTeams>>>,
    metrics: StoreMetrics,
    changes: ChangeFeed,
    announcements: Feed<Announcement>,
}

impl Shared {
    fn notify(&self, db: &mut impl postgres::GenericClient, notice: &Notice) -> Result<()> {
        db.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &notice.encode(&self.node)])?;
        Ok(())
    }

    fn tenant(&self, client: &mut Client, id: i64) -> Result<Arc<TenantInfo>> {
        if let Some(t) = self.tenants.get(id) {
            return Ok(t);
        }
        let row = catalog::tenant_by_id(&mut Pg(client), id)?.ok_or(StoreError::NotFound)?;
        self.tenants.from_row(row)
    }

    fn agent_teams(&self, client: &mut Client, tenant: i64) -> Result<Arc<AgentTeams>> {
        if let Some(map) = self.agent_teams.read().expect("agent teams lock").get(&tenant) {
            return Ok(map.clone());
        }
        self.reload_agent_teams(client, tenant)
    }

    fn reload_agent_teams(&self, client: &mut Client, tenant: i64) -> Result<Arc<AgentTeams>> {
        let map = Arc::new(
            catalog::agent_teams(&mut Pg(client), Some(tenant))?
                .remove(&tenant)
                .unwrap_or_default(),
        );
        self.agent_teams
            .write()
            .expect("agent teams lock")
            .insert(tenant, map.clone());
        Ok(map)
    }

    /// Acts on another node's notice.
    fn follow(&self, client: &mut Client, notice: Notice) -> Result<()> {
        match notice {
            Notice::Settings { tenant } => {
                self.tenants.forget(tenant);
            }
            Notice::Agents { tenant } => {
                self.agent_teams.write().expect("agent teams lock").remove(&tenant);
            }
            Notice::Stored { tenant, received_ns } => {
                let info = self.tenant(client, tenant)?;
                let blocks = bodies::blocks_at(client, tenant, &[received_ns])?;
                // Accepted once, so valid; a taxonomy changed since could reject one: skip it.
                let events: Vec<ParsedEvent> = blocks
                    .iter()
                    .flat_map(|(_, block)| block.entries())
                    .filter_map(|e| parse_event_text(e.body, &info.taxonomy).ok())
                    .collect();
                self.changes.publish(Change {
                    tenant_id: tenant,
                    events,
                    // Read only where the commit was made (badges): not derived here.
                    calls: Vec::new(),
                    local: false,
                });
            }
            Notice::Announce { tenant, message } => match serde_json::from_str::<Announcement>(&message) {
                Ok(announcement) => self.announcements.publish(Announcement {
                    tenant_id: tenant,
                    ..announcement
                }),
                Err(e) => tracing::warn!(error = %e, "unreadable announcement"),
            },
        }
        Ok(())
    }
}

/// A pooled connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    fn prepare(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

pub struct PgStore {
    shared: Arc<Shared>,
    /// Taken when the store closes: connections own runtimes, dropped off async threads.
    pool: Mutex<Option<Pool>>,
    writer: WriterQueue<Command>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
}

/// Runs blocking work off any async context: a `postgres::Client` runs (and drops) its own
/// small runtime, which tokio forbids inside another's.
fn off_runtime<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(job).join().expect("the thread finishes")
}

impl PgStore {
    /// Connects, migrates (one node at a time) and starts the node's threads; the URL may
    /// carry the pool's parameters ([`PoolOptions::from_url`]).
    pub fn open(url: &str) -> Result<PgStore> {
        let (options, url) = PoolOptions::from_url(url)?;
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        let setup = config.clone();
        let (client, partitions) = off_runtime(move || -> Result<_> {
            let mut client = setup.connect(NoTls)?;
            schema::migrate(&mut client)?;
            let partitions = schema::Partitions::load(&mut client)?;
            client.batch_execute(WRITER_SESSION)?;
            Ok((client, partitions))
        })?;
        let mut node = [0u8; 8];
        getrandom::fill(&mut node).map_err(|e| StoreError::Database(e.to_string()))?;
        let shared = Arc::new(Shared {
            node: node.iter().map(|b| format!("{b:02x}")).collect(),
            tenants: TenantCache::default(),
            agent_teams: RwLock::default(),
            metrics: StoreMetrics::default(),
            changes: ChangeFeed::default(),
            announcements: Feed::default(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let spawn = |name: &str, job: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(job)
                .map_err(|e| StoreError::Database(e.to_string()))
        };
        let writer_shared = shared.clone();
        let threads = vec![
            spawn(
                "dialboard-pg-writer",
                Box::new(move || writer::run(client, partitions, rx, &writer_shared)),
            )?,
            spawn("dialboard-pg-compact", {
                let (config, stop) = (config.clone(), stop.clone());
                Box::new(move || compact_loop(&config, &stop))
            })?,
            spawn("dialboard-pg-listen", {
                let (config, stop, shared) = (config.clone(), stop.clone(), shared.clone());
                Box::new(move || listen_loop(&config, &stop, &shared))
            })?,
        ];
        // Connections are made when first needed (none is kept open while idle for long).
        let pool = r2d2::Pool::builder()
            .max_size(options.max_size)
            .min_idle(Some(0))
            .connection_timeout(options.timeout)
            .test_on_check_out(true)
            .build_unchecked(Manager(r2d2_postgres::PostgresConnectionManager::new(config, NoTls)));
        Ok(PgStore {
            shared,
            pool: Mutex::new(Some(pool)),
            writer: WriterQueue::new(tx),
            threads: Mutex::new(threads),
            stop,
        })
    }

    /// Runs `job` on a pooled connection in tokio's blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Conn, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.pool.lock().expect("pool lock").clone().ok_or(StoreError::Closed)?;
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| StoreError::Database(format!("no database connection within the pool's timeout: {e}")))?;
            job(&mut conn, &shared)
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?
    }

    /// Runs shared SQL (`crate::catalog`) on a pooled connection.
    async fn sql<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Pg<Client>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.with(move |conn, _| job(&mut Pg(&mut conn.client))).await
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Connections own runtimes, which must not be dropped on an async thread.
        let pool = self.pool.lock().expect("pool lock").take();
        let writer = self.writer.close();
        std::thread::spawn(move || drop((pool, writer)));
    }
}

/// Tries to compact every [`COMPACT_EVERY`] until stopped; reconnects after errors.
fn compact_loop(config: &postgres::Config, stop: &AtomicBool) {
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(COMPACT_EVERY);
        // The node that compacts also keeps the planner's statistics current.
        let result = match &mut client {
            Some(c) => writer::compact(c).and_then(|compacted| {
                if compacted.is_some() {
                    writer::refresh_statistics(c)?;
                }
                Ok(compacted)
            }),
            None => config.connect(NoTls).map_err(StoreError::from).map(|c| {
                client = Some(c);
                None
            }),
        };
        match result {
            Ok(Some(rows)) if rows > 0 => tracing::debug!(rows, "compacted cell deltas"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "compaction failed; deltas stay pending");
                client = None;
            }
        }
    }
}

/// Listens for other nodes' notices until stopped; reconnects after errors.
fn listen_loop(config: &postgres::Config, stop: &AtomicBool, shared: &Shared) {
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = listen(config, stop, shared) {
            tracing::warn!(error = %e, "listening for other nodes failed; reconnecting");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn listen(config: &postgres::Config, stop: &AtomicBool, shared: &Shared) -> Result<()> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    // Anything changed while this node was not listening is unknown: start from the database.
    shared.tenants.clear();
    shared.agent_teams.write().expect("agent teams lock").clear();
    while !stop.load(Ordering::Relaxed) {
        let mut notices = Vec::new();
        {
            let mut notifications = client.notifications();
            let mut arrived = notifications.timeout_iter(Duration::from_millis(200));
            while let Some(n) = arrived.next()? {
                notices.push(n.payload().to_string());
            }
        }
        for payload in notices {
            match Notice::decode(&payload) {
                Some((node, _)) if node == shared.node => {}
                Some((_, notice)) => shared.follow(&mut client, notice)?,
                None => tracing::warn!(payload, "unknown notice"),
            }
        }
    }
    Ok(())
}

/// The engine's reads, from one snapshot: stored cell blocks plus pending delta rows.
struct Source<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
    cells: &'a Statement,
    raw: &'a Statement,
    tenant: i64,
}

impl CellSource for Source<'_, '_> {
    fn cells(
        &mut self,
        c: &Cuboid,
        grain: Grain,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(i64, &str, CellData),
    ) -> Result<(), SourceError> {
        let rows = self
            .tx
            .query(self.cells, &[&self.tenant, &(c.id as i16), &(grain as i16), &from, &to])?;
        for row in &rows {
            let bucket: i64 = row.get(0);
            for entry in crate::block::entries(row.get(1)) {
                let (key, stats) = entry.ok_or("corrupt cell block")?;
                sink(bucket, key, CellData::Encoded(stats));
            }
        }
        Ok(())
    }

    fn raw_calls(
        &mut self,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(&CallRecord, Option<&CallAnalysis>),
    ) -> Result<(), SourceError> {
        let params: [&(dyn postgres::types::ToSql + Sync); 3] =
            [&self.tenant, &(from * 1_000_000_000), &(to * 1_000_000_000)];
        let portal = self.tx.bind(self.raw, &params)?;
        for row in portal_rows(self.tx, &portal, 10_000) {
            let (call, analysis) = call_with_analysis(&row?)?;
            sink(&call, analysis.as_ref());
        }
        Ok(())
    }
}

/// The rows of a bound portal, fetched `chunk` at a time as they are consumed: a wide range is
/// never read whole, and a reader that stops early fetches no more.
fn portal_rows<'t, 'c>(
    tx: &'t mut postgres::Transaction<'c>,
    portal: &'t postgres::Portal,
    chunk: i32,
) -> impl Iterator<Item = std::result::Result<postgres::Row, postgres::Error>> + use<'t, 'c> {
    let mut buffered = std::collections::VecDeque::new();
    let mut exhausted = false;
    std::iter::from_fn(move || loop {
        if let Some(row) = buffered.pop_front() {
            return Some(Ok(row));
        }
        if exhausted {
            return None;
        }
        match tx.query_portal(portal, chunk) {
            Ok(rows) => {
                exhausted = rows.len() < chunk as usize;
                buffered.extend(rows);
            }
            Err(e) => {
                exhausted = true;
                return Some(Err(e));
            }
        }
    })
}

/// An agent's calls at some starts (`$3`) in a range, newest first: the rows of a streak.
const STREAK_CALLS: &str = "SELECT disposition FROM calls WHERE tenant_id = $1 AND agent_id = $2 \
     AND started_ns = ANY($3::int8[]) AND started_ns >= $4 AND started_ns < $5 \
     ORDER BY started_ns DESC, call_id DESC";

/// The bounds `[from, below)` of a range narrowed to a batch of starts, newest first: the
/// partitions a statement reads.
fn batch_bounds(starts: &[i64], from: i64, below: i64) -> (i64, i64) {
    let newest = starts.first().map_or(i64::MIN, |ns| ns.saturating_add(1));
    (from.max(*starts.last().unwrap_or(&from)), below.min(newest))
}

/// A read-only transaction whose statements all see one snapshot (REPEATABLE READ).
fn snapshot(client: &mut Client) -> Result<postgres::Transaction<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?)
}

/// The start (ns) of the tenant's earliest call: where a drill-down's `all_time` begins.
fn earliest_call(conn: &mut Conn, tenant_id: i64) -> Result<Option<i64>> {
    let statement = conn.prepare("SELECT min(started_ns) FROM calls WHERE tenant_id = $1")?;
    Ok(conn.client.query_one(&statement, &[&tenant_id])?.get(0))
}

/// The statement of a drill-down page: its filters are conditions of the SQL
/// ([`drill::Drill::pushed`], in that order from `$6`); with `by_starts`, only the calls at the
/// starts of the last parameter (read from the runs of its driving filter, pg/value_runs.rs).
fn drill_sql(pushed: &[drill::Pushed], by_starts: bool) -> String {
    let mut sql = String::from(
        // `started_ns <= $4` beside the cursor: the scan of the key is bounded by it.
        "WHERE c.tenant_id = $1 AND c.started_ns >= $2 AND c.started_ns < $3 AND c.started_ns <= $4 \
         AND (c.started_ns, c.call_id) < ($4, $5)",
    );
    for (i, p) in pushed.iter().enumerate() {
        let null = if p.or_null {
            format!(" OR c.{} IS NULL", p.column)
        } else {
            String::new()
        };
        sql += &format!(" AND (c.{} = ANY(${}::text[]){null})", p.column, i + 6);
    }
    if by_starts {
        sql += &format!(" AND c.started_ns = ANY(${}::int8[])", pushed.len() + 6);
    }
    sql += " ORDER BY c.started_ns DESC, c.call_id DESC";
    select_calls_with_analysis("calls c", &sql)
}

/// The statement [`drill_matching`] reads `drill` with, prepared before its snapshot.
fn drill_statement(conn: &mut Conn, tenant: &TenantInfo, drill: &drill::Drill) -> Result<Statement> {
    let pushed = drill.pushed(tenant);
    conn.prepare(&drill_sql(&pushed, drill::Drill::driving(&pushed).is_some()))
}

/// The calls of one page of a drill-down, newest first, as records, by `statement` (its
/// [`drill_statement`]): with a filter by one agent, campaign, team or disposition, the calls
/// at the starts that value's runs list, a batch at a time; otherwise along the key of `calls`.
fn drill_matching(
    tx: &mut postgres::Transaction,
    statement: &Statement,
    tenant: &TenantInfo,
    drill: &drill::Drill,
    limit: usize,
) -> Result<drill::Matched> {
    let range = drill.query.range;
    let (start, end) = (range.start * 1_000_000_000, range.end * 1_000_000_000);
    let pushed = drill.pushed(tenant);
    let values = pushed.iter().map(|p| &p.values as &(dyn postgres::types::ToSql + Sync));
    let Some(driving) = drill::Drill::driving(&pushed) else {
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            vec![&tenant.id, &start, &end, &drill.after.0, &drill.after.1];
        params.extend(values);
        let portal = tx.bind(statement, &params)?;
        // Rows come in chunks until the page is full.
        let chunk = (limit as i32 + 1).max(100);
        let rows = portal_rows(tx, &portal, chunk).map(|row| Ok(call_with_analysis(&row?)?));
        return drill::matching(tenant, drill, limit, rows);
    };
    let by = &pushed[driving];
    let field = value_runs::field_of(by.column).expect("the driving columns are the runs'");
    let below = end.min(drill.after.0.saturating_add(1));
    let reader = value_runs::NewestFirst::new(tx, tenant.id, field, &by.values[0], start, below)?;
    let values: Vec<_> = values.collect();
    let rows = reader.rows(tx, limit + 1, |tx, starts| {
        let (from, below) = batch_bounds(starts, start, below);
        let starts = starts.to_vec();
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            vec![&tenant.id, &from, &below, &drill.after.0, &drill.after.1];
        params.extend(values.iter().copied());
        params.push(&starts);
        tx.query(statement, &params)?
            .iter()
            .map(|r| Ok(call_with_analysis(r)?))
            .collect()
    });
    drill::matching(tenant, drill, limit, rows)
}

/// One page of a drill-down, newest first.
fn drill_page(
    tx: &mut postgres::Transaction,
    statement: &Statement,
    tenant: &TenantInfo,
    drill: &drill::Drill,
    limit: usize,
) -> Result<CallsPage> {
    Ok(drill::page(
        tenant,
        drill,
        drill_matching(tx, statement, tenant, drill, limit)?,
    ))
}

const CELLS_IN_RANGE: &str = "SELECT bucket, block FROM cells WHERE tenant_id = $1 AND cuboid = $2 AND grain = $3 \
     AND bucket >= $4 AND bucket < $5 UNION ALL SELECT bucket, block FROM cell_deltas WHERE tenant_id = $1 \
     AND cuboid = $2 AND grain = $3 AND bucket >= $4 AND bucket < $5";
const EARLIEST: &str = "SELECT min(b) FROM (SELECT min(bucket) AS b FROM cells WHERE tenant_id = $1 AND cuboid = 0 \
     AND grain = 0 UNION ALL SELECT min(bucket) FROM cell_deltas WHERE tenant_id = $1 AND cuboid = 0 AND grain = 0) m";

fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[async_trait]
impl Store for PgStore {
    async fn create_tenant(&self, name: &str, settings: TenantSettings) -> Result<Arc<TenantInfo>> {
        let info = TenantInfo::new(0, name.to_string(), settings.clone())?;
        let name = name.to_string();
        let id = self
            .sql(move |db| catalog::create_tenant(db, &name, &settings, now_seconds()))
            .await?;
        Ok(self.shared.tenants.insert(TenantInfo { id, ..info }))
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Arc<TenantInfo>>> {
        let name = name.to_string();
        self.with(move |conn, shared| {
            catalog::tenant_by_name(&mut Pg(&mut conn.client), &name)?
                .map(|row| shared.tenants.from_row(row))
                .transpose()
        })
        .await
    }

    async fn tenant(&self, id: i64) -> Result<Arc<TenantInfo>> {
        if let Some(t) = self.shared.tenants.get(id) {
            return Ok(t);
        }
        self.with(move |conn, shared| shared.tenant(&mut conn.client, id)).await
    }

    async fn create_key(&self, key_hash: [u8; 32], key: ApiKey) -> Result<()> {
        self.sql(move |db| catalog::insert_key(db, &key_hash, &key, now_seconds()))
            .await
    }

    async fn key(&self, key_hash: [u8; 32]) -> Result<Option<ApiKey>> {
        self.sql(move |db| catalog::key(db, &key_hash)).await
    }

    async fn keys(&self, tenant_id: i64) -> Result<Vec<KeyInfo>> {
        self.sql(move |db| catalog::keys(db, tenant_id)).await
    }

    async fn set_key_scram(&self, key_hash: [u8; 32], verifier: String) -> Result<()> {
        self.sql(move |db| catalog::set_key_scram(db, &key_hash, &verifier))
            .await
    }

    async fn key_verifiers(&self, tenant_id: i64) -> Result<Vec<([u8; 32], Option<String>)>> {
        self.sql(move |db| catalog::key_verifiers(db, tenant_id)).await
    }

    async fn revoke_key(&self, tenant_id: i64, key_id: &str) -> Result<bool> {
        let key_id = key_id.to_string();
        self.sql(move |db| catalog::revoke_key(db, tenant_id, &key_id, now_seconds()))
            .await
    }

    async fn create_user(&self, user: User, password_hash: String) -> Result<()> {
        self.sql(move |db| catalog::create_user(db, &user, &password_hash))
            .await
    }

    async fn user_by_email(&self, tenant_id: i64, email: &str) -> Result<Option<(User, String)>> {
        let email = email.to_string();
        self.sql(move |db| catalog::user_by_email(db, tenant_id, &email)).await
    }

    async fn users_by_email(&self, email: &str, limit: usize) -> Result<Vec<(User, String)>> {
        let email = email.to_string();
        self.sql(move |db| catalog::users_by_email(db, &email, limit as i64))
            .await
    }

    async fn users(&self, tenant_id: i64) -> Result<Vec<User>> {
        self.sql(move |db| catalog::users(db, tenant_id)).await
    }

    async fn delete_user(&self, tenant_id: i64, user_id: &str) -> Result<bool> {
        let user_id = user_id.to_string();
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            let deleted = catalog::delete_user(&mut Pg(&mut tx), tenant_id, &user_id, now_seconds())?;
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
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            let keep = keep_session.as_ref();
            let found = catalog::set_password(
                &mut Pg(&mut tx),
                tenant_id,
                &user_id,
                &password_hash,
                keep,
                now_seconds(),
            )?;
            tx.commit()?;
            Ok(found)
        })
        .await
    }

    async fn create_session(&self, token_hash: [u8; 32], user: &User, expires_at: i64) -> Result<()> {
        let user = user.clone();
        self.sql(move |db| catalog::create_session(db, &token_hash, &user, now_seconds(), expires_at))
            .await
    }

    async fn session(&self, token_hash: [u8; 32], now: i64) -> Result<Option<User>> {
        self.sql(move |db| catalog::session(db, &token_hash, now)).await
    }

    async fn revoke_session(&self, token_hash: [u8; 32]) -> Result<()> {
        self.sql(move |db| catalog::revoke_session(db, &token_hash, now_seconds()))
            .await
    }

    async fn audit(&self, tenant_id: i64, entry: AuditEntry) -> Result<()> {
        self.with(move |conn, _| {
            // The next sequence number of the tenant's log, taken one writer at a time.
            let mut tx = conn.client.transaction()?;
            Lock::Audit(tenant_id).take(&mut tx)?;
            catalog::audit(&mut Pg(&mut tx), tenant_id, &entry)?;
            Ok(tx.commit()?)
        })
        .await
    }

    async fn audit_log(&self, tenant_id: i64, limit: usize, before: Option<i64>) -> Result<Vec<(i64, AuditEntry)>> {
        self.sql(move |db| catalog::audit_log(db, tenant_id, limit, before))
            .await
    }

    async fn current_statuses(&self, tenant_id: i64) -> Result<Vec<(String, String, i64)>> {
        self.with(move |conn, _| {
            let rows = conn.client.query(
                "SELECT DISTINCT ON (agent_id) agent_id, status, at_ns FROM agent_status WHERE tenant_id = $1 \
                 ORDER BY agent_id, at_ns DESC, event_id DESC",
                &[&tenant_id],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
        })
        .await
    }

    async fn update_settings(&self, tenant_id: i64, settings: TenantSettings) -> Result<Arc<TenantInfo>> {
        let info = self.tenant(tenant_id).await?.with_settings(settings)?;
        let settings = info.settings.clone();
        self.with(move |conn, shared| {
            let mut tx = conn.client.transaction()?;
            catalog::update_settings(&mut Pg(&mut tx), tenant_id, &settings)?;
            shared.notify(&mut tx, &Notice::Settings { tenant: tenant_id })?;
            Ok(tx.commit()?)
        })
        .await?;
        Ok(self.shared.tenants.insert(info))
    }

    async fn put_directory(&self, tenant_id: i64, kind: DirectoryKind, id: &str, body: Value) -> Result<()> {
        let id = id.to_string();
        self.with(move |conn, shared| {
            let mut tx = conn.client.transaction()?;
            catalog::put_directory(&mut Pg(&mut tx), tenant_id, kind, &id, &body, now_seconds())?;
            agents_changed(&mut tx, shared, tenant_id, kind)?;
            tx.commit()?;
            refresh_agent_teams(&mut conn.client, shared, tenant_id, kind)
        })
        .await
    }

    async fn delete_directory(&self, tenant_id: i64, kind: DirectoryKind, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.with(move |conn, shared| {
            let mut tx = conn.client.transaction()?;
            let deleted = catalog::delete_directory(&mut Pg(&mut tx), tenant_id, kind, &id)?;
            agents_changed(&mut tx, shared, tenant_id, kind)?;
            tx.commit()?;
            refresh_agent_teams(&mut conn.client, shared, tenant_id, kind)?;
            Ok(deleted)
        })
        .await
    }

    async fn directory(&self, tenant_id: i64, kind: DirectoryKind) -> Result<Vec<(String, Value)>> {
        self.sql(move |db| catalog::directory(db, tenant_id, kind)).await
    }

    async fn agent_teams(&self, tenant_id: i64) -> Result<Arc<AgentTeams>> {
        self.with(move |conn, shared| shared.agent_teams(&mut conn.client, tenant_id))
            .await
    }

    async fn ingest(&self, tenant_id: i64, events: Vec<ParsedEvent>) -> Result<IngestSummary> {
        let tenant = self.tenant(tenant_id).await?;
        self.writer.ingest(tenant, events, Command::Ingest).await
    }

    async fn query(&self, tenant_id: i64, body: Value, now: i64) -> Result<Result<QueryResult, Vec<FieldError>>> {
        let tenant = self.tenant(tenant_id).await?;
        self.with(move |conn, shared| {
            let agent_teams = shared.agent_teams(&mut conn.client, tenant.id)?;
            let (earliest_sql, cells, raw) = (
                conn.prepare(EARLIEST)?,
                conn.prepare(CELLS_IN_RANGE)?,
                conn.prepare(&select_calls_with_analysis(
                    "calls c",
                    "WHERE c.tenant_id = $1 AND c.started_ns >= $2 AND c.started_ns < $3",
                ))?,
            );
            // One snapshot: a compaction commits either wholly before it or wholly after.
            let mut tx = snapshot(&mut conn.client)?;
            let earliest: Option<i64> = tx.query_one(&earliest_sql, &[&tenant.id])?.get(0);
            let mut source = Source {
                tx: &mut tx,
                cells: &cells,
                raw: &raw,
                tenant: tenant.id,
            };
            let result = tenant.run_query(&body, now, earliest, &agent_teams, &mut source)?;
            tx.commit()?;
            Ok(result)
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
        self.with(move |conn, shared| {
            let teams = shared.agent_teams(&mut conn.client, tenant.id)?;
            let drill = match drill::parse(&tenant, &request, now, earliest_call(conn, tenant.id)?, teams) {
                Ok(d) => d,
                Err(errors) => return Ok(Err(errors)),
            };
            let statement = drill_statement(conn, &tenant, &drill)?;
            // One snapshot for the page's statements: the runs read, then their chunks, then
            // the calls, with no compaction's merge in between.
            let mut tx = snapshot(&mut conn.client)?;
            let page = drill_page(&mut tx, &statement, &tenant, &drill, request.limit)?;
            tx.commit()?;
            Ok(Ok(page))
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
        self.with(move |conn, shared| {
            let teams = shared.agent_teams(&mut conn.client, tenant.id)?;
            // One snapshot for every chunk of the page.
            let mut tx = snapshot(&mut conn.client)?;
            let page = crate::listing::page(&mut Pg(&mut tx), &tenant, kind, &request, now, teams)?;
            tx.commit()?;
            Ok(page)
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
        self.with(move |conn, shared| {
            let teams = shared.agent_teams(&mut conn.client, tenant.id)?;
            let drill = match drill::parse(&tenant, &request, now, earliest_call(conn, tenant.id)?, teams) {
                Ok(d) => d,
                Err(errors) => return Ok(Err(errors)),
            };
            let drills = drill::per_agent(&drill, &agents);
            // Prepared before the snapshot (the connection's cache makes them one statement).
            let statements = drills
                .iter()
                .map(|d| d.as_ref().map(|d| drill_statement(conn, &tenant, d)).transpose())
                .collect::<Result<Vec<_>>>()?;
            // One snapshot for all of them.
            let mut tx = snapshot(&mut conn.client)?;
            let mut pages = Vec::with_capacity(agents.len());
            for (one, statement) in drills.iter().zip(&statements) {
                pages.push(match (one, statement) {
                    (Some(d), Some(statement)) => drill_page(&mut tx, statement, &tenant, d, request.limit)?,
                    _ => CallsPage::default(),
                });
            }
            tx.commit()?;
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
        self.with(move |conn, _| {
            let statement = conn.prepare(STREAK_CALLS)?;
            let field = value_runs::field_of("agent_id").expect("agents are listed in runs");
            let mut tx = snapshot(&mut conn.client)?;
            // Each agent's calls newest first through its runs, read only until the streak ends.
            let streaks = agents
                .iter()
                .map(|agent| {
                    let reader = value_runs::NewestFirst::new(&mut tx, tenant_id, field, agent, from_ns, to_ns)?;
                    let rows = reader.rows(&mut tx, 16, |tx, starts| {
                        let (from, below) = batch_bounds(starts, from_ns, to_ns);
                        let rows = tx.query(&statement, &[&tenant_id, agent, &starts.to_vec(), &from, &below])?;
                        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
                    });
                    drill::leading_run(rows, &dispositions)
                })
                .collect::<Result<Vec<i64>>>()?;
            tx.commit()?;
            Ok(streaks)
        })
        .await
    }

    async fn call(&self, tenant_id: i64, call_id: &str) -> Result<Option<Value>> {
        let tenant = self.tenant(tenant_id).await?;
        let call_id = call_id.to_string();
        self.with(move |conn, _| {
            let current = conn.client.query_opt(
                &select_calls_with_analysis(
                    &format!(
                        "(SELECT found.* FROM {}, LATERAL (SELECT tenant_id, call_id, started_ns FROM call_keys \
                         WHERE tenant_id = $1 AND {} OFFSET 0) AS found) AS k \
                         JOIN calls c ON c.tenant_id = k.tenant_id AND c.started_ns = k.started_ns \
                         AND c.call_id = k.call_id",
                        id_filter::generations("$1"),
                        working::call_key_is("$2::text")
                    ),
                    "",
                ),
                &[&tenant.id, &call_id],
            )?;
            let Some(row) = current else {
                return Ok(None);
            };
            let (call, analysis) = call_with_analysis(&row)?;
            let versions = bodies::versions(&mut conn.client, tenant.id, &call_id)?;
            Ok(Some(drill::detail(&tenant, &call, analysis.as_ref(), versions)))
        })
        .await
    }

    async fn checkpoint(&self) -> Result<usize> {
        self.with(|conn, _| Ok(writer::compact(&mut conn.client)?.unwrap_or(0)))
            .await
    }

    async fn ready(&self) -> Result<()> {
        self.with(|conn, _| {
            conn.client.query_one("SELECT 1", &[])?;
            Ok(())
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
        let notice = Notice::Announce {
            tenant: announcement.tenant_id,
            message: serde_json::to_string(&announcement).map_err(|e| StoreError::Database(e.to_string()))?,
        };
        // This node hears its own announcements here: the listener skips its own notices.
        self.shared.announcements.publish(announcement);
        let size = notice.encode(&self.shared.node).len();
        if size >= NOTIFY_LIMIT {
            return Err(StoreError::Invalid(format!(
                "an announcement of {size} bytes does not fit a notice ({NOTIFY_LIMIT} bytes)"
            )));
        }
        self.with(move |conn, shared| shared.notify(&mut conn.client, &notice))
            .await
    }

    fn announcements(&self) -> tokio::sync::broadcast::Receiver<Arc<Announcement>> {
        self.shared.announcements.subscribe()
    }

    async fn shutdown(&self) {
        let writer = self.writer.shut_down(Command::Shutdown).await;
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
        let pool = self.pool.lock().expect("pool lock").take();
        let _ = tokio::task::spawn_blocking(move || {
            drop((writer, pool));
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    async fn enqueue_job(&self, tenant_id: i64, job: NewJob, now: i64) -> Result<Job> {
        self.sql(move |db| jobs::enqueue(db, tenant_id, &job, now)).await
    }

    async fn enqueue_job_once(&self, tenant_id: i64, id: &str, job: NewJob, now: i64) -> Result<Option<Job>> {
        let id = id.to_string();
        self.sql(move |db| jobs::enqueue_once(db, tenant_id, &id, &job, now))
            .await
    }

    async fn tenant_ids(&self) -> Result<Vec<i64>> {
        self.sql(|db| catalog::tenant_ids(db)).await
    }

    async fn claim_job(&self, claim: Claim, now: i64) -> Result<Option<Job>> {
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            let job = jobs::claim(&mut Pg(&mut tx), &claim, now, true)?;
            tx.commit()?;
            Ok(job)
        })
        .await
    }

    async fn update_job(&self, tenant_id: i64, id: &str, worker: &str, update: JobUpdate, now: i64) -> Result<bool> {
        let (id, worker) = (id.to_string(), worker.to_string());
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            let held = jobs::update(&mut Pg(&mut tx), tenant_id, &id, &worker, &update, now)?;
            tx.commit()?;
            Ok(held)
        })
        .await
    }

    async fn job(&self, tenant_id: i64, id: &str) -> Result<Option<Job>> {
        let id = id.to_string();
        self.sql(move |db| jobs::get(db, tenant_id, &id)).await
    }

    async fn jobs(&self, tenant_id: i64, kind: &str, limit: usize) -> Result<Vec<Job>> {
        let kind = kind.to_string();
        self.sql(move |db| jobs::list(db, tenant_id, &kind, limit)).await
    }

    async fn put_job_file_chunk(&self, tenant_id: i64, id: &str, seq: i64, data: Vec<u8>) -> Result<()> {
        let id = id.to_string();
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            if seq == 0 {
                jobs::delete_file(&mut Pg(&mut tx), tenant_id, &id)?;
            }
            jobs::put_file_chunk(&mut Pg(&mut tx), tenant_id, &id, seq, &data)?;
            Ok(tx.commit()?)
        })
        .await
    }

    async fn job_file_chunk(&self, tenant_id: i64, id: &str, seq: i64) -> Result<Option<Vec<u8>>> {
        let id = id.to_string();
        self.sql(move |db| jobs::file_chunk(db, tenant_id, &id, seq)).await
    }

    async fn change_saved(
        &self,
        tenant_id: i64,
        kind: SavedKind,
        change: SavedChange,
        now: i64,
    ) -> Result<SavedOutcome> {
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            let outcome = saved::apply(&mut Pg(&mut tx), tenant_id, kind, &change, now)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn saved_item(&self, tenant_id: i64, kind: SavedKind, id: &str) -> Result<Option<SavedItem>> {
        let id = id.to_string();
        self.sql(move |db| saved::get(db, tenant_id, kind, &id)).await
    }

    async fn saved_items(&self, tenant_id: i64, kind: SavedKind) -> Result<Vec<SavedItem>> {
        self.sql(move |db| saved::list(db, tenant_id, kind)).await
    }

    async fn saved_versions(&self, tenant_id: i64, kind: SavedKind, id: &str) -> Result<Vec<SavedVersion>> {
        let id = id.to_string();
        self.sql(move |db| saved::versions(db, tenant_id, kind, &id)).await
    }

    async fn transact(&self, work: crate::SqlWork) -> Result<()> {
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            work(&mut Pg(&mut tx))?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn all_saved_items(&self, kind: SavedKind) -> Result<Vec<(i64, SavedItem)>> {
        self.sql(move |db| saved::list_all(db, kind)).await
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
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            let job = crate::schedules::create_run(
                &mut Pg(&mut tx),
                tenant_id,
                &schedule_id,
                scheduled_for,
                late,
                &job,
                now_ms,
            )?;
            tx.commit()?;
            Ok(job)
        })
        .await
    }

    async fn latest_schedule_run(&self, tenant_id: i64, schedule_id: &str) -> Result<Option<i64>> {
        let schedule_id = schedule_id.to_string();
        self.sql(move |db| crate::schedules::latest_run(db, tenant_id, &schedule_id))
            .await
    }

    async fn schedule_runs(
        &self,
        tenant_id: i64,
        schedule_id: &str,
        limit: usize,
    ) -> Result<Vec<crate::schedules::ScheduleRun>> {
        let schedule_id = schedule_id.to_string();
        self.sql(move |db| crate::schedules::runs(db, tenant_id, &schedule_id, limit))
            .await
    }

    async fn event_bodies(&self, tenant_id: i64, keys: Vec<(String, String)>) -> Result<HashMap<String, String>> {
        self.with(move |conn, _| bodies::bodies_of(&mut conn.client, tenant_id, keys))
            .await
    }

    async fn export_calls(
        &self,
        tenant_id: i64,
        request: CallsRequest,
        now: i64,
    ) -> Result<Result<ExportPage, Vec<FieldError>>> {
        let tenant = self.tenant(tenant_id).await?;
        self.with(move |conn, shared| {
            let teams = shared.agent_teams(&mut conn.client, tenant.id)?;
            let drill = match drill::parse(&tenant, &request, now, earliest_call(conn, tenant.id)?, teams) {
                Ok(d) => d,
                Err(errors) => return Ok(Err(errors)),
            };
            let statement = drill_statement(conn, &tenant, &drill)?;
            // One snapshot for the calls and their events.
            let mut tx = snapshot(&mut conn.client)?;
            let (calls, next_cursor) = drill_matching(&mut tx, &statement, &tenant, &drill, request.limit)?;
            let keys = calls
                .iter()
                .map(|(c, _)| (c.call_id.clone(), c.event_id.clone()))
                .collect();
            let bodies = bodies::bodies_of(&mut tx, tenant.id, keys)?;
            tx.commit()?;
            Ok(Ok(drill::export_page(calls, next_cursor, bodies)))
        })
        .await
    }

    async fn purge(&self, tenant_id: i64, cutoffs: retention::Cutoffs, dry_run: bool) -> Result<retention::Counts> {
        let tenant = self.tenant(tenant_id).await?;
        let after = tenant.with_purged(retention::purged(&tenant.settings.purged, &cutoffs))?;
        let settings = after.settings.clone();
        let counts = self
            .with(move |conn, shared| {
                // No ingest of the tenant, nor a compaction folding its deltas, meanwhile. A dry
                // run only counts, in one snapshot (a compaction commits wholly before or after
                // it): it holds neither lock, so it never stalls ingest behind a compaction.
                let isolation = if dry_run {
                    postgres::IsolationLevel::RepeatableRead
                } else {
                    postgres::IsolationLevel::ReadCommitted
                };
                let mut tx = conn.client.build_transaction().isolation_level(isolation).start()?;
                if !dry_run {
                    Lock::Ingest(tenant_id).take(&mut tx)?;
                    Lock::Compact.take(&mut tx)?;
                }
                let counts = retention::purge(
                    &mut Pg(&mut tx),
                    retention::Dialect::Postgres,
                    tenant_id,
                    &cutoffs,
                    dry_run,
                )?;
                if let Some(cutoff) = cutoffs.raw_ns.filter(|_| !dry_run) {
                    value_runs::purge(&mut tx, tenant_id, cutoff)?;
                }
                if !dry_run {
                    catalog::update_settings(&mut Pg(&mut tx), tenant_id, &settings)?;
                    shared.notify(&mut tx, &Notice::Settings { tenant: tenant_id })?;
                }
                tx.commit()?;
                Ok(counts)
            })
            .await?;
        if !dry_run {
            self.shared.tenants.insert(after);
        }
        Ok(counts)
    }

    async fn set_purge_state(&self, tenant_id: i64, state: retention::PurgeState) -> Result<Arc<TenantInfo>> {
        let info = self.tenant(tenant_id).await?.with_purged(state)?;
        let settings = info.settings.clone();
        self.with(move |conn, shared| {
            let mut tx = conn.client.transaction()?;
            catalog::update_settings(&mut Pg(&mut tx), tenant_id, &settings)?;
            shared.notify(&mut tx, &Notice::Settings { tenant: tenant_id })?;
            Ok(tx.commit()?)
        })
        .await?;
        Ok(self.shared.tenants.insert(info))
    }

    async fn erase_contact(&self, tenant_id: i64, contact_id: &str) -> Result<i64> {
        let contact_id = contact_id.to_string();
        self.with(move |conn, _| {
            let mut tx = conn.client.transaction()?;
            // Events stored before blocks in their rows, the others in their blocks.
            let n = retention::erase_contact(&mut Pg(&mut tx), retention::Dialect::Postgres, tenant_id, &contact_id)?
                + bodies::erase_contact(&mut tx, tenant_id, &contact_id)?;
            tx.commit()?;
            if n > 0 {
                // The UPDATEs left the old row versions, personal data included, in the tables'
                // pages (and TOAST) until a vacuum: remove them now rather than whenever
                // autovacuum comes by. VACUUM cannot run inside a transaction. (The WAL and
                // backups still hold them: docs/OPERATIONS.md.)
                conn.client.batch_execute("VACUUM events, event_blocks")?;
            }
            Ok(n)
        })
        .await
    }
}

/// Tells the other nodes when a tenant's agents changed (their teams attribute activity).
fn agents_changed(tx: &mut postgres::Transaction, shared: &Shared, tenant: i64, kind: DirectoryKind) -> Result<()> {
    if kind == DirectoryKind::Agent {
        shared.notify(tx, &Notice::Agents { tenant })?;
    }
    Ok(())
}

fn refresh_agent_teams(client: &mut Client, shared: &Shared, tenant: i64, kind: DirectoryKind) -> Result<()> {
    if kind == DirectoryKind::Agent {
        shared.reload_agent_teams(client, tenant)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{cluster::Cluster, working::call_keys_by_id, Notice, PgStore, WRITER_SESSION};
    use postgres::{Client, NoTls};

    /// Right after a table grew from nothing, before any ANALYZE, the writer's lookup of a
    /// batch's call keys is still an index probe per key (of the key's hash): no scan of the
    /// tenant's rows filtered by the keys (what `call_id = ANY($2)` was planned as), no bitmap,
    /// hash join or materialized side, no join filter; and in every generation of keys.
    #[test]
    fn key_lookups_probe_the_index_whatever_the_statistics() {
        let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
        let url = cluster.create_database().unwrap();
        drop(PgStore::open(&url).unwrap()); // the schema
        let mut client = Client::connect(&url, NoTls).unwrap();
        client
            .batch_execute(
                "ALTER TABLE call_keys SET (autovacuum_enabled = off); \
                 INSERT INTO call_keys (tenant_id, call_id, started_ns, contact_id, gen) \
                 SELECT 1, 'c' || g, g, 'k' || g, g % 3 FROM generate_series(1, 50000) g; \
                 INSERT INTO id_heads (tenant_id, ids, batches) VALUES (1, 2 * (1 << 18), 0)",
            )
            .unwrap();
        client.batch_execute(WRITER_SESSION).unwrap();
        let ids: Vec<String> = (0..2000).map(|i| format!("c{}", i * 40)).collect();
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN {}", call_keys_by_id()), &[&1i64, &ids])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("Index Scan using call_keys_by_hash"), "{plan}");
        let key = |l: &&str| l.contains("gen = generation.n") && l.contains("call_hash = ");
        assert!(
            plan.lines().filter(|l| l.contains("Index Cond")).any(|l| key(&l)),
            "the generation and the key's hash are index conditions:\n{plan}"
        );
        assert!(!plan.contains("JIT"), "{plan}");
        // The one filter: the id's text, compared on the rows its hash found.
        for line in plan.lines().filter(|l| l.contains("Filter")) {
            assert!(line.contains("call_id = "), "only the id's text is filtered:\n{plan}");
        }
        for unwanted in [
            "Seq Scan",
            "Bitmap",
            "Hash Join",
            "Hash Cond",
            "Materialize",
            "Join Filter",
        ] {
            assert!(!plan.contains(unwanted), "{unwanted} in\n{plan}");
        }
        let found = client.query(&call_keys_by_id(), &[&1i64, &ids]).unwrap().len();
        assert_eq!(found, 1250, "c0 does not exist; c40 … c50000 do, in three generations");
    }

    /// A commit's new events are one block per tenant and no `events` row: each logged id
    /// says the block's arrival and its record; a copy of an id already in the batch is not
    /// stored twice.
    #[test]
    fn a_commit_stores_its_new_events_as_one_block_per_tenant() {
        use crate::{Store, TenantSettings};
        use dialboard_engine::event::parse_event;
        use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
        let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
        let url = cluster.create_database().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store = PgStore::open(&url).unwrap();
        let tenant = rt
            .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
            .unwrap();
        let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
        let events: Vec<_> = [
            serde_json::json!({"id": "e1", "type": "call", "call_id": "c1", "agent_id": "a1",
                "disposition": "Connected", "started_at": "2026-03-02T10:00:00Z"}),
            serde_json::json!({"id": "e2", "type": "agent_status", "agent_id": "a1", "status": "idle",
                "at": "2026-03-02T10:00:00Z"}),
            serde_json::json!({"id": "e1", "type": "call", "call_id": "c1", "agent_id": "a1",
                "disposition": "Busy", "started_at": "2026-03-02T10:00:00Z"}),
        ]
        .iter()
        .map(|e| parse_event(e, &taxonomy).unwrap())
        .collect();
        let summary = rt.block_on(store.ingest(tenant.id, events.clone())).unwrap();
        assert_eq!((summary.accepted, summary.duplicates), (2, 1));
        rt.block_on(store.shutdown());
        let mut client = Client::connect(&url, NoTls).unwrap();
        let rows: i64 = client.query_one("SELECT count(*) FROM events", &[]).unwrap().get(0);
        assert_eq!(rows, 0);
        let blocks = client
            .query("SELECT tenant_id, received_ns, events, block FROM event_blocks", &[])
            .unwrap();
        assert_eq!(blocks.len(), 1);
        let (owner, received, count): (i64, i64, i32) = (blocks[0].get(0), blocks[0].get(1), blocks[0].get(2));
        assert_eq!((owner, count), (tenant.id, 2));
        let block = super::bodies::Block::decompress(blocks[0].get(3)).unwrap();
        let stored: Vec<(&str, &str, &str)> = block.entries().map(|e| (e.event_id, e.kind, e.body)).collect();
        assert_eq!(
            stored,
            [
                ("e1", "call", events[0].raw.as_str()),
                ("e2", "agent_status", events[1].raw.as_str())
            ]
        );
        let logged: Vec<(String, Option<i64>, Option<String>)> = client
            .query(
                "SELECT event_id, received_ns, record_key FROM event_ids ORDER BY event_id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(
            logged,
            [
                ("e1".to_string(), Some(received), Some("c1".to_string())),
                ("e2".to_string(), Some(received), None)
            ]
        );
    }

    #[test]
    fn notices_round_trip() {
        for notice in [
            Notice::Stored {
                tenant: 3,
                received_ns: 1_700_000_000_123_456_789,
            },
            Notice::Settings { tenant: 4 },
            Notice::Agents { tenant: 5 },
            Notice::Announce {
                tenant: 6,
                message: r#"{"kind": "alert", "body": {"alert_name": "a b"}}"#.into(),
            },
        ] {
            let text = notice.encode("ab12");
            assert_eq!(Notice::decode(&text), Some(("ab12", notice)));
        }
        assert_eq!(Notice::decode("ab12 nonsense 3"), None);
    }
}
