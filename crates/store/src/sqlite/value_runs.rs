//! The calls of each agent, team, campaign and disposition, and all of a tenant's calls by
//! their start, newest first, without a B-tree index on those columns.
//!
//! A drill-down by one of them (`/calls?agent=…`) must read that value's calls newest first.
//! Four indexes `(tenant, column, started_ns)` did that, but each call inserted one entry into
//! each, at the place of its value: a B-tree descent per index and call, and a leaf per agent,
//! team, campaign and disposition dirtied and copied to the log at every commit (43% of the
//! writer's time with the call's own insert). The index by start did the same to a backfill in
//! random time order: each call a random leaf of an index of every call (at 1.5M calls its
//! insert and the leaves it dirtied were ~10% of the writer and most of the log's bytes, ~4 KB a
//! call). Here, as log-structured stores do:
//!
//! - each ingest transaction writes its calls' entries as one **run** (`value_runs`): per
//!   (tenant, field, value), the `(started_ns, seq)` of its calls, newest first, in chunks of at
//!   most [`CHUNK_BYTES`] (`value_chunks`, a page each when full, found by the run first:
//!   appended, a few pages a commit), in the same transaction as the calls, so they are as
//!   durable as the calls;
//! - [`FANOUT`] runs of a level are merged into one of the next, up to [`TOP_LEVEL`]: off the
//!   writer by the compactor, which hands the merged chunks over a slice at a time for the
//!   writer to store between its transactions ([`StreamedValues`]), or, on a database in memory
//!   (no compactor), on the writer ([`merge_now`]). Runs there (~8³
//!   transactions of calls) are never merged again, so each entry is rewritten at most
//!   [`TOP_LEVEL`] times. Each run knows the span of its calls' starts, and a
//!   reader skips the runs outside its range: when calls come roughly in time order the top
//!   runs are partitions by time;
//! - a reader ([`NewestFirst`]) merges the runs' chunks of its value newest first, reading one
//!   chunk of a run at a time, and checks each entry against its row (`seq`): an entry whose row
//!   has another value or start (a correction changed it: the new version has its own entry) or
//!   no row (purged) is skipped, so a correction never needs the old entry found.
//!
//! A purge removes the entries before its cutoff with the calls ([`purge`]).

use super::compactor::Slicer;
use dialboard_engine::cells::{get_varint, put_varint};
use dialboard_engine::event::CallRecord;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};

/// A column of `calls` whose calls the runs list.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Field {
    Agent = 0,
    Team = 1,
    Campaign = 2,
    Disposition = 3,
    /// Every call, under the value `""`: the tenant's calls by start (a drill-down without a
    /// listed filter, the raw calls of a range, the earliest call, the calls a purge deletes).
    Start = 4,
}

impl Field {
    pub fn of_column(column: &str) -> Option<Field> {
        Some(match column {
            "agent_id" => Field::Agent,
            "team_id" => Field::Team,
            "campaign_id" => Field::Campaign,
            "disposition" => Field::Disposition,
            _ => return None,
        })
    }

    /// The call's value of this field, if it has one to list.
    fn of(self, call: &CallRecord) -> Option<&str> {
        let value = match self {
            Field::Start => return Some(""),
            Field::Agent => Some(call.agent_id.as_str()),
            Field::Team => call.team_id.as_deref(),
            Field::Campaign => call.campaign_id.as_deref(),
            Field::Disposition => Some(call.disposition.as_str()),
        };
        // A drill-down never reads "" through the runs (it also matches NULL).
        value.filter(|v| !v.is_empty())
    }

    /// Indexed by the number each field is stored as.
    const ALL: [Field; 5] = [
        Field::Agent,
        Field::Team,
        Field::Campaign,
        Field::Disposition,
        Field::Start,
    ];
}

/// Runs of a level merged into one of the next once there are this many.
pub const FANOUT: usize = 8;
/// Runs of this level are not merged further.
pub const TOP_LEVEL: i64 = 3;
/// Bytes per chunk at most (but a chunk never splits one instant): a reader reads a chunk of
/// each run it needs at a time, and 3,968 bytes keep a chunk in one 4 KB page (SQLite spills a
/// table row of over 4,061 bytes to overflow pages).
pub const CHUNK_BYTES: usize = 3_968;
/// Calls per run when the runs are built from the rows (an upgrade): bounded memory.
const REBUILD_CALLS: usize = 1 << 20;

/// A call's start (ns) and row: entries are ordered newest first, `seq` descending on a tie.
type Entry = (i64, i64);

/// A chunk's entries, newest first, each as its distance from the one before (the first from
/// `(0, 0)`): the start's as a varint of the whole seconds, milliseconds or microseconds it
/// counts (the unit in its low two bits; 3: the distance follows as a varint of nanoseconds),
/// then the row's as a varint. Starts come in whole seconds or milliseconds from most sources
/// and neighbours in a value are close in time and in arrival, so an entry takes ~3–6 bytes
/// where two fixed `i64`s took 16: each run is rewritten at every level, and its pages were a
/// fifth of the log's bytes (bench/README.md). Exact for any entries, in any order.
#[derive(Default)]
struct Encoded {
    data: Vec<u8>,
    last: Entry,
}

/// The most bytes one entry takes: the unit's byte, the distance and the row (10 each).
const MAX_ENTRY_BYTES: usize = 21;
const UNITS: [i64; 3] = [1_000_000_000, 1_000_000, 1_000];
const NANOSECONDS: i64 = 3;

impl Encoded {
    fn push(&mut self, (ns, seq): Entry) {
        let (last_ns, last_seq) = self.last;
        let back = last_ns.wrapping_sub(ns);
        match UNITS.iter().position(|unit| back >= 0 && back % unit == 0) {
            // At most i64::MAX / 1000 units: times 4 fits.
            Some(unit) => put_varint(&mut self.data, back / UNITS[unit] * 4 + unit as i64),
            None => {
                put_varint(&mut self.data, NANOSECONDS);
                put_varint(&mut self.data, back);
            }
        }
        put_varint(&mut self.data, last_seq.wrapping_sub(seq));
        self.last = (ns, seq);
    }

    fn take(&mut self) -> Vec<u8> {
        self.last = (0, 0);
        std::mem::take(&mut self.data)
    }
}

pub(crate) fn decode(data: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    let mut input = data;
    let mut last: Entry = (0, 0);
    std::iter::from_fn(move || {
        if input.is_empty() {
            return None;
        }
        // Chunks are written whole by `Encoded`: a truncated one (a corrupt file) ends there.
        let step = get_varint(&mut input)?;
        let back = match step & 3 {
            NANOSECONDS => get_varint(&mut input)?,
            unit => (step >> 2) * UNITS[unit as usize],
        };
        last = (last.0.wrapping_sub(back), last.1.wrapping_sub(get_varint(&mut input)?));
        Some(last)
    })
}

fn newest_first(entries: &mut Vec<Entry>) {
    // Already sorted stretches (a merge's input: each chunk of each run is newest first): the
    // stable sort finds them and merges them (n log of their number), where the unstable
    // one sorted from scratch (n log n; 15% of a value-run merge, `perf` at 1M calls).
    entries.sort_by(|a, b| b.cmp(a));
    entries.dedup();
}

/// The entries of one run, per (tenant, field) and value, until they are written. Every call
/// adds four or five (its agent's, team's, campaign's, disposition's, start's): a value already
/// pending is found by its `&str`, hashed once, with no `String` made for it. (SipHash: Fx, as
/// it was before its final rotation (`fxhash`), mixed the low bits of values such as `agent-042`
/// too little and cost more; not measured again since.)
#[derive(Default)]
pub struct PendingEntries(HashMap<(i64, Field), ValueEntries>);

type ValueEntries = hashbrown::HashMap<String, Vec<Entry>, RandomState>;

impl PendingEntries {
    /// The call stored at row `seq` (over `previous`, if it is a new version): an entry for each
    /// of its values, unless the previous version's entry (same value, same start) still holds.
    pub fn add(&mut self, tenant: i64, call: &CallRecord, seq: i64, previous: Option<&CallRecord>) {
        for field in Field::ALL {
            let Some(value) = field.of(call) else {
                continue;
            };
            let unchanged = previous.is_some_and(|p| p.started_ns == call.started_ns && field.of(p) == Some(value));
            if unchanged {
                continue;
            }
            let values = self.0.entry((tenant, field)).or_default();
            values.entry_ref(value).or_default().push((call.started_ns, seq));
        }
    }

    /// Writes the entries as a new run of `level` (in the transaction that stored the calls)
    /// and empties itself.
    pub fn write(&mut self, tx: &Connection, level: i64) -> rusqlite::Result<()> {
        let mut groups: Vec<((i64, Field, String), Vec<Entry>)> = self
            .0
            .drain()
            .flat_map(|((tenant, field), values)| {
                values
                    .into_iter()
                    .map(move |(value, entries)| ((tenant, field, value), entries))
            })
            .collect();
        if groups.is_empty() {
            return Ok(());
        }
        // In key order: the run's chunks are then appended in the order of their B-tree.
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let all = groups.iter().flat_map(|(_, e)| e.iter());
        let (oldest, newest, count) = all.fold((i64::MAX, i64::MIN, 0), |(o, n, c), (ns, _)| {
            (o.min(*ns), n.max(*ns), c + 1)
        });
        let run = new_run(tx, level, count, oldest, newest)?;
        for ((tenant, field, value), mut entries) in groups {
            newest_first(&mut entries);
            write_chunks(tx, run, tenant, field, &value, &entries)?;
        }
        Ok(())
    }
}

fn new_run(tx: &Connection, level: i64, entries: i64, oldest: i64, newest: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO value_runs (level, entries, oldest_ns, newest_ns) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![level, entries, oldest, newest])?;
    Ok(tx.last_insert_rowid())
}

/// Writes one value's entries (newest first) in a run.
fn write_chunks(
    tx: &Connection,
    run: i64,
    tenant: i64,
    field: Field,
    value: &str,
    entries: &[Entry],
) -> rusqlite::Result<()> {
    let mut out = Chunks::new(tenant, field, value);
    let mut insert = Insert { tx, run };
    for &entry in entries {
        out.push(&mut insert, entry)?;
    }
    out.finish(&mut insert)
}

/// Where a run's chunks go: the run's table, or memory (a merge prepared off the writer).
trait ChunkSink {
    fn chunk(&mut self, tenant: i64, field: Field, value: &str, oldest_ns: i64, data: Vec<u8>) -> rusqlite::Result<()>;
}

/// Into `value_chunks`, in `run`.
struct Insert<'t> {
    tx: &'t Connection,
    run: i64,
}

impl ChunkSink for Insert<'_> {
    fn chunk(&mut self, tenant: i64, field: Field, value: &str, oldest_ns: i64, data: Vec<u8>) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO value_chunks (run, tenant_id, field, value, oldest_ns, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![self.run, tenant, field as i64, value, oldest_ns, data])?;
        Ok(())
    }
}

/// A chunk held in memory: tenant, field, value, oldest start, data.
type HeldChunk = (i64, Field, String, i64, Vec<u8>);

impl ChunkSink for Vec<HeldChunk> {
    fn chunk(&mut self, tenant: i64, field: Field, value: &str, oldest_ns: i64, data: Vec<u8>) -> rusqlite::Result<()> {
        self.push((tenant, field, value.to_string(), oldest_ns, data));
        Ok(())
    }
}

/// One value's entries of a run, given newest first and written as chunks keyed by their
/// oldest start, never splitting an instant (so the chunk after one holds only older calls).
struct Chunks<'v> {
    tenant: i64,
    field: Field,
    value: &'v str,
    pending: Encoded,
}

impl<'v> Chunks<'v> {
    fn new(tenant: i64, field: Field, value: &'v str) -> Chunks<'v> {
        Chunks {
            tenant,
            field,
            value,
            pending: Encoded::default(),
        }
    }

    fn push(&mut self, out: &mut impl ChunkSink, entry: Entry) -> rusqlite::Result<()> {
        if self.pending.data.len() + MAX_ENTRY_BYTES > CHUNK_BYTES && self.pending.last.0 != entry.0 {
            self.write(out)?;
        }
        self.pending.push(entry);
        Ok(())
    }

    fn finish(mut self, out: &mut impl ChunkSink) -> rusqlite::Result<()> {
        self.write(out)
    }

    fn write(&mut self, out: &mut impl ChunkSink) -> rusqlite::Result<()> {
        if self.pending.data.is_empty() {
            return Ok(());
        }
        let oldest = self.pending.last.0;
        out.chunk(self.tenant, self.field, self.value, oldest, self.pending.take())
    }
}

/// Whether a level below [`TOP_LEVEL`] holds [`FANOUT`] runs (a merge to do).
pub fn merge_due(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM value_runs WHERE level BETWEEN 0 AND ?1 - 1 GROUP BY level HAVING count(*) >= ?2 LIMIT 1",
    )?
    .exists(params![TOP_LEVEL, FANOUT as i64])
}

/// A merge of the runs of a level into one run of the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueMerge {
    /// The merged run's level.
    level: i64,
    inputs: Vec<i64>,
    entries: i64,
    /// [`purges`] when the merge was planned: a purge since rewrote chunks of the inputs.
    purges: u64,
}

/// Purges run so far in this process: a merge prepared before one may hold entries it dropped.
static PURGES: AtomicU64 = AtomicU64::new(0);

fn purges() -> u64 {
    PURGES.load(Ordering::SeqCst)
}

/// The merges due: every level below [`TOP_LEVEL`] that holds [`FANOUT`] runs, with all of them.
pub fn due_merges(conn: &Connection) -> rusqlite::Result<Vec<ValueMerge>> {
    let mut merges: Vec<ValueMerge> = Vec::new();
    let mut runs = conn.prepare_cached(
        "SELECT level, run, entries FROM value_runs WHERE level IN (SELECT level FROM value_runs \
         WHERE level BETWEEN 0 AND ?1 - 1 GROUP BY level HAVING count(*) >= ?2) ORDER BY level, run",
    )?;
    let mut rows = runs.query(params![TOP_LEVEL, FANOUT as i64])?;
    while let Some(row) = rows.next()? {
        let level = row.get::<_, i64>(0)? + 1;
        let (run, entries): (i64, i64) = (row.get(1)?, row.get(2)?);
        match merges.last_mut() {
            Some(m) if m.level == level => {
                m.inputs.push(run);
                m.entries += entries;
            }
            _ => merges.push(ValueMerge {
                level,
                inputs: vec![run],
                entries,
                purges: purges(),
            }),
        }
    }
    Ok(merges)
}

/// Merges runs wherever a level below [`TOP_LEVEL`] holds [`FANOUT`] of them, level after
/// level, in the caller's transaction; returns how many entries were rewritten.
#[cfg(test)]
pub fn merge_full_levels(tx: &Transaction) -> rusqlite::Result<usize> {
    let mut rewritten = 0;
    // A merge may fill the level above it: go up.
    for level in 0..TOP_LEVEL {
        if let Some(merge) = due_merges(tx)?.into_iter().find(|m| m.level == level + 1) {
            rewritten += merge_in_place(tx, &merge)?;
        }
    }
    Ok(rewritten)
}

/// The merges `due` in the writer's transaction, streaming (a database in memory, which has no
/// compactor).
pub fn merge_now(tx: &Transaction, due: &[ValueMerge]) -> rusqlite::Result<()> {
    for merge in due {
        merge_in_place(tx, merge)?;
    }
    Ok(())
}

/// The span of starts of `runs`.
fn span(conn: &Connection, runs: &[i64]) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        &format!(
            "SELECT min(oldest_ns), max(newest_ns) FROM value_runs WHERE run IN ({})",
            list(runs)
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Runs as an SQL list (integers only: safe to put in a statement).
fn list(runs: &[i64]) -> String {
    runs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// Replaces the inputs of `merge` by one run, in the caller's transaction, streaming.
fn merge_in_place(tx: &Transaction, merge: &ValueMerge) -> rusqlite::Result<usize> {
    let (oldest, newest) = span(tx, &merge.inputs)?;
    let run = new_run(tx, merge.level, merge.entries, oldest, newest)?;
    let rewritten = merge_into(tx, &merge.inputs, &mut Insert { tx, run })?;
    delete_runs(tx, &merge.inputs)?;
    Ok(rewritten)
}

fn delete_runs(tx: &Transaction, runs: &[i64]) -> rusqlite::Result<()> {
    let list = list(runs);
    tx.execute_batch(&format!(
        "DELETE FROM value_chunks WHERE run IN ({list}); DELETE FROM value_runs WHERE run IN ({list});"
    ))
}

/// Merges `runs` into `out`, one value at a time, newest first. Each input run is read once,
/// in one scan of its chunks backwards along their index (values in descending order, each
/// value's chunks newest first), and a merge holds one chunk of each run, however many calls a
/// value has (every call has an entry of [`Field::Start`]). The chunks of the runs below the
/// top are small (a run of one transaction holds a few calls of each agent): a lookup per chunk
/// and per value read them before, 70% of the compactor's time. Returns how many entries it
/// wrote.
fn merge_into(conn: &Connection, runs: &[i64], out: &mut impl ChunkSink) -> rusqlite::Result<usize> {
    let mut statements = runs
        .iter()
        .map(|_| {
            conn.prepare_cached(
                "SELECT tenant_id, field, value, oldest_ns, data FROM value_chunks WHERE run = ?1 \
                 ORDER BY tenant_id DESC, field DESC, value DESC, oldest_ns DESC",
            )
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut scans = Vec::with_capacity(runs.len());
    for (statement, run) in statements.iter_mut().zip(runs) {
        scans.push(RunScan::start(statement.query([run])?)?);
    }
    let mut rewritten = 0;
    while let Some(value) = scans.iter().filter_map(|s| s.value.as_ref()).max().cloned() {
        let (tenant, field, ref name) = value;
        let mut chunks = Chunks::new(tenant, Field::ALL[field as usize], name);
        let mut active: Vec<&mut RunScan> = scans.iter_mut().filter(|s| s.value.as_ref() == Some(&value)).collect();
        let mut last = None;
        while !active.is_empty() {
            // The run with the newest entry gives entries until another run's is newer: runs
            // in time order give a whole chunk at a time.
            let (best, next) = newest_two(&active);
            let scan = &mut active[best];
            let in_value = loop {
                let entry = scan.next_entry();
                if next.is_some_and(|n| entry < n) {
                    break true;
                }
                if last != Some(entry) {
                    chunks.push(out, entry)?;
                    last = Some(entry);
                    rewritten += 1;
                }
                if !scan.advance(&value)? {
                    break false;
                }
            };
            if !in_value {
                active.swap_remove(best);
            }
        }
        chunks.finish(out)?;
    }
    Ok(rewritten)
}

/// The index of the run whose next entry is the newest, and the newest next entry of the others.
fn newest_two(active: &[&mut RunScan]) -> (usize, Option<Entry>) {
    let (mut best, mut next) = (0, None);
    for (i, scan) in active.iter().enumerate().skip(1) {
        let (entry, best_entry) = (scan.next_entry(), active[best].next_entry());
        if entry > best_entry {
            next = Some(best_entry);
            best = i;
        } else if Some(entry) > next {
            next = Some(entry);
        }
    }
    (best, next)
}

/// A value: tenant, field, value.
type ValueKey = (i64, i64, String);

/// One run's chunks in a merge, read in one scan: the value of the chunk it is in (`None` at
/// its end) and that chunk's entries not yet taken.
struct RunScan<'s> {
    rows: rusqlite::Rows<'s>,
    value: Option<ValueKey>,
    /// The chunk's entries, newest first, and how many were taken.
    entries: Vec<Entry>,
    taken: usize,
}

impl<'s> RunScan<'s> {
    fn start(rows: rusqlite::Rows<'s>) -> rusqlite::Result<RunScan<'s>> {
        let mut scan = RunScan {
            rows,
            value: None,
            entries: Vec::new(),
            taken: 0,
        };
        scan.next_chunk()?;
        Ok(scan)
    }

    /// The next entry of the value the scan is in (a scan is asked only while it has one).
    fn next_entry(&self) -> Entry {
        self.entries[self.taken]
    }

    /// Takes the entry `next_entry` gave; whether the scan has more of `value` (at the end of
    /// a chunk it reads the next one, which may be another value's).
    fn advance(&mut self, value: &ValueKey) -> rusqlite::Result<bool> {
        self.taken += 1;
        if self.taken < self.entries.len() {
            return Ok(true);
        }
        self.next_chunk()?;
        Ok(self.value.as_ref() == Some(value))
    }

    fn next_chunk(&mut self) -> rusqlite::Result<()> {
        self.entries.clear();
        self.taken = 0;
        self.value = None;
        // A chunk is never empty, but a scan never stops on one either.
        while self.entries.is_empty() {
            let Some(row) = self.rows.next()? else {
                return Ok(());
            };
            self.value = Some((row.get(0)?, row.get(1)?, row.get(2)?));
            self.entries.extend(decode(row.get_ref(4)?.as_blob()?));
        }
        Ok(())
    }
}

/// The level of a run a merge off the writer is building ([`begin`]): readers and merges see
/// only levels from 0 up, so its chunks stay out of sight until [`finish`] gives it its level in
/// place of its inputs. One a crash left is dropped at the next open ([`drop_unfinished`]).
const BUILDING: i64 = -1;

/// A merge prepared off the writer, in slices: the writer gives it a run to build ([`begin`]),
/// the compactor reads and merges the inputs on a connection of its own ([`stream`]: runs change
/// only on the writer, by an install or a purge, which [`finish`] detects), handing the chunks
/// over a slice at a time; the writer stores each slice between its transactions
/// ([`store_slice`]), then the run takes the inputs' place ([`finish`]).
///
/// Merges into the top level (~75 MB of entries at ~1M calls a run) streamed on the writer
/// before, a pause of seconds every ~0.9M calls in time order; the writer now only stores their
/// chunks, a slice at a time.
#[derive(Debug)]
pub struct StreamedValues {
    merge: ValueMerge,
    run: i64,
}

/// Chunks of a run being built, in the merge's order (descending keys).
pub struct ValueSlice {
    run: i64,
    chunks: Vec<HeldChunk>,
}

impl ValueSlice {
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.4.len()).sum()
    }
}

/// Gives `merge` its run to build, in the writer's transaction.
pub fn begin(tx: &Connection, merge: ValueMerge) -> rusqlite::Result<StreamedValues> {
    let (oldest, newest) = span(tx, &merge.inputs)?;
    let run = new_run(tx, BUILDING, merge.entries, oldest, newest)?;
    Ok(StreamedValues { merge, run })
}

/// Reads and merges the inputs of `streamed` on `conn`, handing its chunks to `hand_over` in
/// slices of about `slice_bytes` (`false` from it: nobody takes them any more, the merge stops).
pub fn stream(
    conn: &Connection,
    streamed: &StreamedValues,
    slice_bytes: usize,
    mut hand_over: impl FnMut(ValueSlice) -> bool,
) -> rusqlite::Result<()> {
    let run = streamed.run;
    let mut out = Slicer::new(slice_bytes, |chunks| hand_over(ValueSlice { run, chunks }));
    merge_into(conn, &streamed.merge.inputs, &mut out)?;
    out.finish()
}

impl<F: FnMut(Vec<HeldChunk>) -> bool> ChunkSink for Slicer<HeldChunk, F> {
    fn chunk(&mut self, tenant: i64, field: Field, value: &str, oldest_ns: i64, data: Vec<u8>) -> rusqlite::Result<()> {
        let bytes = data.len();
        self.push((tenant, field, value.to_string(), oldest_ns, data), bytes)
    }
}

/// Stores a slice of a run being built, in the writer's transaction.
pub fn store_slice(tx: &Connection, slice: ValueSlice) -> rusqlite::Result<()> {
    let mut insert = Insert { tx, run: slice.run };
    // Merged in descending order of the chunks' key: a slice is inserted ascending, each chunk
    // at the end of its run's part of the index, below the slice stored before it.
    for (tenant, field, value, oldest_ns, data) in slice.chunks.into_iter().rev() {
        insert.chunk(tenant, field, &value, oldest_ns, data)?;
    }
    Ok(())
}

/// Gives a built run its level in place of its inputs, in the writer's transaction, unless an
/// input is gone, a purge ran since the merge was planned, or the run is no longer one being
/// built: then the run is dropped and `false` returned (the entries are where they were, and
/// the merge is planned again).
pub fn finish(tx: &Transaction, streamed: StreamedValues) -> rusqlite::Result<bool> {
    let StreamedValues { merge, run } = streamed;
    let present: usize = tx.query_row(
        &format!(
            "SELECT count(*) FROM value_runs WHERE run IN ({}) AND level = ?1",
            list(&merge.inputs)
        ),
        [merge.level - 1],
        |r| r.get(0),
    )?;
    if merge.purges != purges() || present != merge.inputs.len() {
        delete_runs(tx, &[run])?;
        return Ok(false);
    }
    // The run must still be one being built: if it is gone (dropped as unfinished), deleting
    // the inputs would lose their entries.
    let promoted = tx
        .prepare_cached(&format!(
            "UPDATE value_runs SET level = ?1 WHERE run = ?2 AND level = {BUILDING}"
        ))?
        .execute(params![merge.level, run])?;
    if promoted != 1 {
        delete_runs(tx, &[run])?;
        return Ok(false);
    }
    delete_runs(tx, &merge.inputs)?;
    Ok(true)
}

/// Drops the runs being built (a crash or a failed merge left them; none is being built when
/// this runs).
pub fn drop_unfinished(tx: &Connection) -> rusqlite::Result<()> {
    tx.execute_batch(&format!(
        "DELETE FROM value_chunks WHERE run IN (SELECT run FROM value_runs WHERE level = {BUILDING}); \
         DELETE FROM value_runs WHERE level = {BUILDING};"
    ))
}

/// Drops the tenant's entries of calls that started before `cutoff_ns` (purged with them).
pub fn purge(tx: &Connection, tenant: i64, cutoff_ns: i64) -> rusqlite::Result<()> {
    // Before it changes anything: a merge prepared from the chunks it rewrites is discarded.
    PURGES.fetch_add(1, Ordering::SeqCst);
    let chunks: Vec<(i64, i64, String, i64, Vec<u8>)> = tx
        .prepare("SELECT run, field, value, oldest_ns, data FROM value_chunks WHERE tenant_id = ?1 AND oldest_ns < ?2")?
        .query_map(params![tenant, cutoff_ns], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut delete = tx.prepare(
        "DELETE FROM value_chunks WHERE run = ?1 AND tenant_id = ?2 AND field = ?3 AND value = ?4 AND oldest_ns = ?5",
    )?;
    for (run, field, value, oldest, data) in chunks {
        delete.execute(params![run, tenant, field, value, oldest])?;
        let kept: Vec<Entry> = decode(&data).filter(|(ns, _)| *ns >= cutoff_ns).collect();
        if !kept.is_empty() {
            write_chunks(tx, run, tenant, Field::ALL[field as usize], &value, &kept)?;
        }
    }
    Ok(())
}

/// Replaces every run by runs of [`TOP_LEVEL`] built from the rows (migration 35: a database
/// whose calls were indexed by B-trees, or whose chunks hold fixed-width entries).
pub fn rebuild(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch("DELETE FROM value_chunks; DELETE FROM value_runs;")?;
    build(tx)
}

/// Writes the entries of every stored call as runs of [`TOP_LEVEL`], [`REBUILD_CALLS`] calls
/// at a time.
fn build(tx: &Transaction) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare(
        "SELECT seq, tenant_id, started_ns, agent_id, team_id, campaign_id, disposition FROM calls ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut pending = PendingEntries::default();
    let mut calls = 0;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let tenant: i64 = row.get(1)?;
        let started_ns: i64 = row.get(2)?;
        for field in Field::ALL {
            let value: Option<String> = match field {
                Field::Start => Some(String::new()),
                // The columns after `started_ns`, in the order of the fields' numbers.
                listed => row.get(3 + listed as usize)?,
            };
            if let Some(value) = value.filter(|v| !v.is_empty() || field == Field::Start) {
                let values = pending.0.entry((tenant, field)).or_default();
                values.entry(value).or_default().push((started_ns, seq));
            }
        }
        calls += 1;
        if calls % REBUILD_CALLS == 0 {
            pending.write(tx, TOP_LEVEL)?;
        }
    }
    pending.write(tx, TOP_LEVEL)
}

/// The start of the oldest entry of a value that `valid` accepts (its row still holds it): the
/// runs in the order of their oldest start, each read oldest chunk first, until no run left can
/// hold an older one.
pub fn oldest(
    conn: &Connection,
    tenant: i64,
    field: Field,
    value: &str,
    mut valid: impl FnMut(Entry) -> rusqlite::Result<bool>,
) -> rusqlite::Result<Option<i64>> {
    let runs: Vec<(i64, i64)> = conn
        .prepare_cached("SELECT run, oldest_ns FROM value_runs WHERE level >= 0 ORDER BY oldest_ns")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut next_chunk = conn.prepare_cached(
        "SELECT oldest_ns, data FROM value_chunks WHERE run = ?1 AND tenant_id = ?2 AND field = ?3 \
         AND value = ?4 AND oldest_ns > ?5 ORDER BY oldest_ns LIMIT 1",
    )?;
    let mut best: Option<i64> = None;
    for (run, run_oldest) in runs {
        if best.is_some_and(|b| run_oldest >= b) {
            break;
        }
        let mut after = i64::MIN;
        'chunks: while let Some((chunk_oldest, data)) = next_chunk
            .query_row(params![run, tenant, field as i64, value, after], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()?
        {
            if best.is_some_and(|b| chunk_oldest >= b) {
                break;
            }
            let entries: Vec<Entry> = decode(&data).collect();
            // Newest first in the chunk: its oldest entries are its last.
            for &entry in entries.iter().rev() {
                if valid(entry)? {
                    best = Some(best.map_or(entry.0, |b| b.min(entry.0)));
                    break 'chunks;
                }
            }
            after = chunk_oldest;
        }
    }
    Ok(best)
}

/// One run's entries of a value, read a chunk at a time, newest first.
struct RunCursor {
    run: i64,
    /// The chunk read last, oldest first (the next entry is the last).
    entries: Vec<Entry>,
    /// Entries of the next chunk are older than this; `None` once the run is read to `from`.
    below: Option<i64>,
}

/// The entries of one value in `[from, below)`, newest first, over every run that may hold
/// some; candidates, each to be checked against its row.
pub struct NewestFirst<'c> {
    conn: &'c Connection,
    tenant: i64,
    field: Field,
    value: String,
    from: i64,
    runs: Vec<RunCursor>,
    last: Option<Entry>,
}

impl<'c> NewestFirst<'c> {
    pub fn new(
        conn: &'c Connection,
        tenant: i64,
        field: Field,
        value: &str,
        from: i64,
        below: i64,
    ) -> rusqlite::Result<NewestFirst<'c>> {
        let runs = conn
            .prepare_cached("SELECT run FROM value_runs WHERE level >= 0 AND newest_ns >= ?1 AND oldest_ns < ?2")?
            .query_map(params![from, below], |r| r.get(0))?
            .map(|run| {
                Ok(RunCursor {
                    run: run?,
                    entries: Vec::new(),
                    below: Some(below),
                })
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(NewestFirst {
            conn,
            tenant,
            field,
            value: value.to_string(),
            from,
            runs,
            last: None,
        })
    }

    /// Reads the next chunk of `cursor` while it has no entry left and the run has more.
    fn fill(&self, cursor: &mut RunCursor) -> rusqlite::Result<()> {
        // Called for every cursor at every entry: the statement is looked up only when needed.
        if !cursor.entries.is_empty() || cursor.below.is_none() {
            return Ok(());
        }
        let mut chunk = self.conn.prepare_cached(
            "SELECT oldest_ns, data FROM value_chunks WHERE run = ?1 AND tenant_id = ?2 AND field = ?3 \
             AND value = ?4 AND oldest_ns < ?5 ORDER BY oldest_ns DESC LIMIT 1",
        )?;
        while cursor.entries.is_empty() {
            let Some(below) = cursor.below else {
                return Ok(());
            };
            let found: Option<(i64, Vec<u8>)> = chunk
                .query_row(
                    params![cursor.run, self.tenant, self.field as i64, self.value, below],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((oldest, data)) = found else {
                cursor.below = None;
                return Ok(());
            };
            cursor.below = (oldest >= self.from).then_some(oldest);
            cursor.entries = decode(&data)
                .filter(|(ns, _)| *ns < below && *ns >= self.from)
                .collect();
            cursor.entries.reverse();
        }
        Ok(())
    }

    /// The next entry, newest first (an entry found in several runs once).
    pub fn next_entry(&mut self) -> rusqlite::Result<Option<Entry>> {
        loop {
            let mut runs = std::mem::take(&mut self.runs);
            let filled = runs.iter_mut().try_for_each(|cursor| self.fill(cursor));
            self.runs = runs;
            filled?;
            let newest = self
                .runs
                .iter_mut()
                .filter(|c| !c.entries.is_empty())
                .max_by_key(|c| *c.entries.last().expect("not empty"));
            let Some(cursor) = newest else {
                return Ok(None);
            };
            let entry = cursor.entries.pop().expect("not empty");
            // A call whose version was stored again with the same value is listed once.
            if self.last != Some(entry) {
                self.last = Some(entry);
                return Ok(Some(entry));
            }
        }
    }

    /// The rows `fetch` finds for the entries (it is given each entry's row and start, and
    /// answers `None` for a row that no longer has that value or start), newest first; calls of
    /// one instant come in any order (`drill::ties_by` puts them in the drill-down's).
    pub fn rows<'r, T, F>(self, mut fetch: F) -> impl Iterator<Item = crate::Result<T>> + 'r
    where
        'c: 'r,
        T: 'r,
        F: FnMut(i64, i64) -> crate::Result<Option<T>> + 'r,
    {
        let mut this = self;
        std::iter::from_fn(move || loop {
            let (ns, seq) = match this.next_entry().transpose()? {
                Ok(entry) => entry,
                Err(e) => return Some(Err(e.into())),
            };
            match fetch(seq, ns) {
                Ok(Some(row)) => return Some(Ok(row)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Starts as sources send them (whole seconds, milliseconds, microseconds, nanoseconds)
    /// and any `i64` at all.
    fn start() -> impl Strategy<Value = i64> {
        prop_oneof![
            (-9_000_000_000i64..9_000_000_000).prop_map(|s| s * 1_000_000_000),
            (-9_000_000_000_000i64..9_000_000_000_000).prop_map(|ms| ms * 1_000_000),
            (-9_000_000_000_000_000i64..9_000_000_000_000_000).prop_map(|us| us * 1_000),
            any::<i64>(),
        ]
    }

    proptest! {
        /// A chunk gives back exactly the entries it was given, newest first as runs hold them
        /// or in any order, at any distance (`i64::MIN` to `i64::MAX` included).
        #[test]
        fn a_chunk_decodes_to_its_entries(
            mut entries in proptest::collection::vec((start(), any::<i64>()), 0..200),
            sorted in any::<bool>(),
        ) {
            if sorted {
                newest_first(&mut entries);
            }
            let mut encoded = Encoded::default();
            entries.iter().for_each(|&e| encoded.push(e));
            prop_assert!(encoded.data.len() <= entries.len() * MAX_ENTRY_BYTES);
            prop_assert_eq!(decode(&encoded.take()).collect::<Vec<_>>(), entries);
        }
    }

    /// Streams `merge` as the compactor and the writer do: begun, its chunks handed over in
    /// slices of about `slice_bytes`, each stored in a transaction of its own; returns the
    /// merge to finish, the run still being built.
    fn stream_slices(conn: &mut Connection, merge: ValueMerge, slice_bytes: usize) -> (StreamedValues, usize) {
        let tx = conn.transaction().unwrap();
        let streamed = begin(&tx, merge).unwrap();
        tx.commit().unwrap();
        let mut slices = Vec::new();
        stream(conn, &streamed, slice_bytes, |slice| {
            slices.push(slice);
            true
        })
        .unwrap();
        let count = slices.len();
        for slice in slices {
            let tx = conn.transaction().unwrap();
            store_slice(&tx, slice).unwrap();
            tx.commit().unwrap();
        }
        (streamed, count)
    }

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    /// A call of `agent` at `started_ns` (also the PostgreSQL runs' tests').
    pub(crate) fn call(id: &str, agent: &str, started_ns: i64) -> CallRecord {
        CallRecord {
            call_id: id.into(),
            agent_id: agent.into(),
            started_ns,
            disposition: "Sale".into(),
            event_id: format!("e-{id}"),
            version_ns: 0,
            team_id: None,
            campaign_id: None,
            list_id: None,
            contact_id: None,
            lead_source: None,
            direction: None,
            ended_ns: None,
            talk_seconds: None,
            wait_seconds: None,
            wrap_seconds: None,
            voicemail_dropped: false,
            is_callback: false,
            abandoned: false,
        }
    }

    fn read(conn: &Connection, agent: &str, from: i64, below: i64) -> Vec<Entry> {
        read_field(conn, Field::Agent, agent, from, below)
    }

    fn read_field(conn: &Connection, field: Field, value: &str, from: i64, below: i64) -> Vec<Entry> {
        let mut reader = NewestFirst::new(conn, 1, field, value, from, below).unwrap();
        std::iter::from_fn(|| reader.next_entry().unwrap()).collect()
    }

    /// Every entry stays findable, newest first and once, through runs of one transaction,
    /// their merges up to the top level, and instants shared by many calls (longer than a chunk).
    #[test]
    fn entries_are_read_newest_first_through_merges() {
        let mut conn = store();
        let mut seq = 0;
        let mut all = Vec::new();
        let mut every = Vec::new();
        for txn in 0..(FANOUT * FANOUT * FANOUT + 5) as i64 {
            let mut pending = PendingEntries::default();
            for i in 0..7 {
                seq += 1;
                // 600 calls of one instant, spread over transactions; the rest in time order
                // with some late ones.
                let ns = match i {
                    0 => 5_000,
                    1 => txn * 10,
                    _ => txn * 1_000 + i * 7 % 5,
                };
                let agent = if i == 6 { "b" } else { "a" };
                pending.add(1, &call(&format!("c{seq}"), agent, ns), seq, None);
                if agent == "a" {
                    all.push((ns, seq));
                }
                every.push((ns, seq));
            }
            let tx = conn.transaction().unwrap();
            pending.write(&tx, 0).unwrap();
            merge_full_levels(&tx).unwrap();
            tx.commit().unwrap();
        }
        let levels: Vec<i64> = conn
            .prepare("SELECT level FROM value_runs")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(levels.contains(&TOP_LEVEL), "{levels:?}");
        assert!(levels.len() < 3 * FANOUT, "{levels:?}");
        newest_first(&mut all);
        assert_eq!(read(&conn, "a", i64::MIN, i64::MAX), all);
        let window: Vec<Entry> = all
            .iter()
            .copied()
            .filter(|(ns, _)| (3_000..5_001).contains(ns))
            .collect();
        assert_eq!(read(&conn, "a", 3_000, 5_001), window);
        assert!(read(&conn, "nobody", i64::MIN, i64::MAX).is_empty());
        // Every call by start, whatever its values (the merges stream them a chunk at a time).
        newest_first(&mut every);
        assert_eq!(read_field(&conn, Field::Start, "", i64::MIN, i64::MAX), every);
        // A purge takes what started before its cutoff.
        let tx = conn.transaction().unwrap();
        purge(&tx, 1, 5_000).unwrap();
        tx.commit().unwrap();
        let kept: Vec<Entry> = all.iter().copied().filter(|(ns, _)| *ns >= 5_000).collect();
        assert_eq!(read(&conn, "a", i64::MIN, i64::MAX), kept);
    }

    /// Every stored entry of a value, as many times as the runs hold it (unlike a reader,
    /// which lists an entry of several runs once), sorted.
    /// The entries of a value in the runs readers see (a run being built is not one of them).
    pub(crate) fn stored_entries(conn: &Connection, tenant: i64, field: Field, value: &str) -> Vec<Entry> {
        let mut entries: Vec<Entry> = conn
            .prepare(
                "SELECT data FROM value_chunks WHERE tenant_id = ?1 AND field = ?2 AND value = ?3 \
                 AND run IN (SELECT run FROM value_runs WHERE level >= 0)",
            )
            .unwrap()
            .query_map(params![tenant, field as i64, value], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .flat_map(|data| decode(&data.unwrap()).collect::<Vec<_>>())
            .collect();
        entries.sort_unstable();
        entries
    }

    /// A merge streamed before a purge (which rewrote its inputs' chunks, and emptied one
    /// input) is discarded as it finishes: what the purge took stays gone, every other entry
    /// is stored once, and the merge planned again installs.
    #[test]
    fn a_merge_streamed_before_a_purge_is_discarded() {
        let mut conn = store();
        let mut all = Vec::new();
        for txn in 0..FANOUT as i64 {
            let mut pending = PendingEntries::default();
            for i in 0..300 {
                let (ns, seq) = (txn * 1_000 + i, txn * 1_000 + i);
                pending.add(1, &call(&format!("c{seq}"), "a", ns), seq, None);
                all.push((ns, seq));
            }
            let tx = conn.transaction().unwrap();
            pending.write(&tx, 0).unwrap();
            tx.commit().unwrap();
        }
        let due = due_merges(&conn).unwrap();
        assert_eq!(due.len(), 1);
        let (streamed, _) = stream_slices(&mut conn, due[0].clone(), 1 << 20);
        // Run 0 loses every entry, run 1 half of them.
        let cutoff = 1_150;
        let tx = conn.transaction().unwrap();
        purge(&tx, 1, cutoff).unwrap();
        assert!(!finish(&tx, streamed).unwrap(), "a merge of entries since purged");
        tx.commit().unwrap();
        let mut kept: Vec<Entry> = all.iter().copied().filter(|(ns, _)| *ns >= cutoff).collect();
        kept.sort_unstable();
        for field in [Field::Agent, Field::Start] {
            let value = if field == Field::Start { "" } else { "a" };
            assert_eq!(stored_entries(&conn, 1, field, value), kept);
        }
        let runs_at = |conn: &Connection, level: i64| -> i64 {
            conn.query_row("SELECT count(*) FROM value_runs WHERE level = ?1", [level], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(runs_at(&conn, 0), FANOUT as i64);
        assert_eq!(runs_at(&conn, BUILDING), 0, "the discarded run is dropped");
        let again = due_merges(&conn).unwrap();
        let (streamed, _) = stream_slices(&mut conn, again[0].clone(), 1 << 20);
        let tx = conn.transaction().unwrap();
        assert!(finish(&tx, streamed).unwrap());
        tx.commit().unwrap();
        assert_eq!((runs_at(&conn, 0), runs_at(&conn, 1)), (0, 1));
        assert_eq!(stored_entries(&conn, 1, Field::Agent, "a"), kept);
        newest_first(&mut kept);
        assert_eq!(read(&conn, "a", i64::MIN, i64::MAX), kept);
    }

    /// A run being built is out of sight: while its slices are stored, readers read every entry
    /// once (from the inputs) and no merge takes it; a run a crash left half built is dropped at
    /// the next open, the inputs answering as before; a finished one answers the same alone.
    #[test]
    fn a_run_being_built_is_seen_only_once_finished() {
        for crash in [true, false] {
            let mut conn = store();
            let mut all = Vec::new();
            for txn in 0..FANOUT as i64 {
                let mut pending = PendingEntries::default();
                for i in 0..300 {
                    let (ns, seq) = (txn * 1_000 + i, txn * 1_000 + i);
                    pending.add(1, &call(&format!("c{seq}"), "a", ns), seq, None);
                    all.push((ns, seq));
                }
                let tx = conn.transaction().unwrap();
                pending.write(&tx, 0).unwrap();
                tx.commit().unwrap();
            }
            newest_first(&mut all);
            let due = due_merges(&conn).unwrap();
            let (streamed, _) = stream_slices(&mut conn, due[0].clone(), 4096);
            let answers = |conn: &Connection| {
                (
                    read(conn, "a", i64::MIN, i64::MAX),
                    read_field(conn, Field::Start, "", 0, 7_100),
                    oldest(conn, 1, Field::Agent, "a", |_| Ok(true)).unwrap(),
                )
            };
            let expected = (
                all.clone(),
                all.iter().copied().filter(|e| e.0 < 7_100).collect::<Vec<_>>(),
                Some(0),
            );
            assert_eq!(answers(&conn), expected, "while it is built");
            assert_eq!(due_merges(&conn).unwrap(), due, "no merge takes it");
            if crash {
                drop_unfinished(&conn).unwrap();
                // A merge whose run was dropped under it finishes as discarded: the inputs stay.
                let tx = conn.transaction().unwrap();
                assert!(!finish(&tx, streamed).unwrap());
                tx.commit().unwrap();
                let levels: Vec<i64> = conn
                    .prepare("SELECT level FROM value_runs")
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                assert_eq!(levels, vec![0; FANOUT]);
                let orphans: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM value_chunks WHERE run NOT IN (SELECT run FROM value_runs)",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(orphans, 0);
            } else {
                let tx = conn.transaction().unwrap();
                assert!(finish(&tx, streamed).unwrap());
                tx.commit().unwrap();
            }
            assert_eq!(answers(&conn), expected, "crash: {crash}");
        }
    }

    /// Runs of several tenants, fields and values, of chunks full and small, with instants
    /// longer than a chunk and an entry stored in two runs, merge into one run (handed over in
    /// slices, as off the writer, or in place on the writer) that holds every entry once: each
    /// value's chunks newest first, none splitting an instant, none over a chunk but for one.
    #[test]
    fn a_merge_keeps_every_entry_of_every_value_once() {
        for streamed in [true, false] {
            let mut conn = store();
            let mut expected: HashMap<(i64, Field, String), Vec<Entry>> = HashMap::new();
            let mut seq = 0i64;
            let mut again = None;
            for txn in 0..FANOUT as i64 {
                let mut pending = PendingEntries::default();
                for i in 0..2_000i64 {
                    seq += 1;
                    let tenant = 1 + i % 2;
                    // In time order, a third late, and a long instant in every run.
                    let ns = match i % 3 {
                        0 => 7_777,
                        1 => txn * 1_000 + i,
                        _ => (i * 7_919) % 9_000,
                    };
                    let agent = format!("agent-{}", (i * 31 + txn) % (3 + txn));
                    let mut c = call(&format!("c{seq}"), &agent, ns);
                    c.campaign_id = (i % 5 != 0).then(|| format!("camp-{}", i % 4));
                    pending.add(tenant, &c, seq, None);
                    // A call of the run before stored again, with its values: the same entries.
                    if i == 10 {
                        if let Some((c, seq, tenant)) = again.replace((c.clone(), seq, tenant)) {
                            pending.add(tenant, &c, seq, None);
                        }
                    }
                    for field in Field::ALL {
                        if let Some(v) = field.of(&c) {
                            expected
                                .entry((tenant, field, v.to_string()))
                                .or_default()
                                .push((ns, seq));
                        }
                    }
                }
                let tx = conn.transaction().unwrap();
                pending.write(&tx, 0).unwrap();
                tx.commit().unwrap();
            }
            let due = due_merges(&conn).unwrap();
            if streamed {
                // Slices of a few chunks: the run is stored in many.
                let (streamed, slices) = stream_slices(&mut conn, due[0].clone(), 3 * 4096);
                assert!(slices > 3, "{slices} slices");
                let tx = conn.transaction().unwrap();
                assert!(finish(&tx, streamed).unwrap());
                tx.commit().unwrap();
            } else {
                let tx = conn.transaction().unwrap();
                merge_now(&tx, &due).unwrap();
                tx.commit().unwrap();
            }
            let runs: Vec<(i64, i64)> = conn
                .prepare("SELECT level, entries FROM value_runs")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(runs.len(), 1);
            assert_eq!(runs[0].0, 1);
            let (mut long_instant, mut many_chunks) = (false, false);
            for ((tenant, field, value), mut entries) in expected {
                let mut chunks: Vec<(i64, Vec<u8>)> = conn
                    .prepare(
                        "SELECT oldest_ns, data FROM value_chunks WHERE tenant_id = ?1 AND field = ?2 \
                         AND value = ?3 ORDER BY oldest_ns DESC",
                    )
                    .unwrap()
                    .query_map(params![tenant, field as i64, value], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                let mut stored = Vec::new();
                for (oldest, data) in chunks.drain(..) {
                    let chunk: Vec<Entry> = decode(&data).collect();
                    assert_eq!(chunk.last().unwrap().0, oldest);
                    // Over a chunk's bytes only by the instant it ends with.
                    let mut before_instant = Encoded::default();
                    chunk
                        .iter()
                        .filter(|e| e.0 != oldest)
                        .for_each(|&e| before_instant.push(e));
                    assert!(data.len() <= CHUNK_BYTES || before_instant.data.len() <= CHUNK_BYTES);
                    long_instant |= data.len() > CHUNK_BYTES;
                    many_chunks |= !stored.is_empty();
                    assert!(
                        stored.last().is_none_or(|l: &Entry| l.0 > chunk[0].0),
                        "{field:?} {value}"
                    );
                    stored.extend(chunk);
                }
                newest_first(&mut entries);
                assert_eq!(stored, entries, "{tenant} {field:?} {value} streamed: {streamed}");
            }
            assert!(long_instant && many_chunks);
        }
    }

    /// The oldest entry a row still holds, across runs and chunks: entries a correction left
    /// behind (older than every call stored) are skipped, and a tenant without calls has none.
    #[test]
    fn the_oldest_valid_entry_is_found_across_runs() {
        let mut conn = store();
        let mut stale = Vec::new();
        for run in 0..3i64 {
            let mut pending = PendingEntries::default();
            for i in 0..600i64 {
                let seq = run * 1_000 + i;
                // Run 1 holds the oldest starts; a third of its entries, the oldest ones
                // included, were left behind by corrections.
                let ns = if run == 1 { i } else { 10_000 + run * 1_000 + i };
                if run == 1 && (i < 300 || i % 3 == 0) {
                    stale.push(seq);
                }
                pending.add(1, &call(&format!("c{seq}"), "a", ns), seq, None);
            }
            let tx = conn.transaction().unwrap();
            pending.write(&tx, 0).unwrap();
            tx.commit().unwrap();
        }
        let valid = |(_, seq): Entry| Ok(!stale.contains(&seq));
        assert_eq!(oldest(&conn, 1, Field::Start, "", valid).unwrap(), Some(301));
        assert_eq!(oldest(&conn, 1, Field::Start, "", |_| Ok(true)).unwrap(), Some(0));
        assert_eq!(oldest(&conn, 2, Field::Start, "", |_| Ok(true)).unwrap(), None);
        let none_valid = oldest(&conn, 1, Field::Agent, "a", |(ns, _)| Ok(ns > 20_000)).unwrap();
        assert_eq!(none_valid, None);
    }

    /// A correction adds an entry only for what it changed; the old entry stays, for the
    /// reader's check against the row to skip.
    #[test]
    fn a_correction_lists_only_changed_values() {
        let mut pending = PendingEntries::default();
        let old = call("c1", "a", 10);
        pending.add(1, &old, 1, None);
        pending.add(1, &call("c1", "a", 10), 1, Some(&old));
        pending.add(1, &call("c1", "b", 10), 1, Some(&old));
        let agents = &pending.0[&(1, Field::Agent)];
        assert_eq!(agents["a"], vec![(10, 1)]);
        assert_eq!(agents["b"], vec![(10, 1)]);
        assert_eq!(pending.0[&(1, Field::Disposition)]["Sale"], vec![(10, 1)]);
    }
}
