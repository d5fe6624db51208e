//! Where a record is, by its id, without a B-tree keyed by the id.
//!
//! Ids come random (UUIDs, Twilio SIDs): an index keyed by them takes each new id at a random
//! place, so every call dirtied a page of each such index, and once those indexes outgrew the
//! cache every call also read pages back. Ingest then slowed as history grew (14.7k calls/s at
//! the storage floor with UUIDs against 73.8k with counting ids). Here, as log-structured stores
//! do, the records themselves are appended (`calls` is a table in arrival order, events are in
//! their transaction's block, `bodies`) and their ids are kept as **fixed-width hashed keys in sorted runs**:
//!
//! - a key is a 64-bit hash of (tenant, id) with the record's `seq`: 16 bytes whatever the id;
//! - each ingest transaction writes its keys, sorted, as a new run of level 0 (`key_runs`,
//!   chunks of at most [`CHUNK`] keys in `key_chunks`): appended, in the same transaction as the
//!   records, so they are as durable as the records;
//! - [`FANOUT`] runs of a level are merged into one of the next: sequential work, each key
//!   rewritten once per level (~5 levels at 10M keys). The compactor (`compactor`) reads and
//!   merges them off the writer and hands the result over a slice at a time, for the writer to
//!   store between its transactions ([`StreamedKeys`]); on a database in memory (no compactor)
//!   the writer merges ([`merge_now`]);
//! - the writer keeps a compact in-memory [`Filter`] of every event and call id in front of
//!   the runs: an id never seen (nearly every new event and call) is answered from memory; only
//!   a possible match (a duplicate, a correction, or ~0.1–0.5% of new ids) probes the runs, one
//!   indexed read per run, and every candidate is checked against its stored id, so a hash
//!   collision never merges two ids;
//! - calls are also listed by their contact (`Kind::Contact`), for the rare question "which are
//!   this contact's calls" (`first_calls`): without a filter, as only contacts that have calls
//!   are asked about.
//!
//! Idempotency and corrections therefore hold for every id ever stored, as before.

use super::compactor::Slicer;
use crate::bloom::Filter;
use dialboard_engine::fxhash::Fx;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};

/// What a run indexes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    /// An event's id → its `seq`: its block (or, written before migration 32, its row of
    /// `events`) (idempotency).
    Event = 0,
    /// A record's key → the `seq`s of the events of its versions: a conversation's, a call's
    /// analyses, and (written before migration 34) a call's events.
    Record = 1,
    /// A call's id → the `seq`s of its events (migration 34 on), the first of which numbers
    /// its row of `calls`; written before, its row. One key a call event leads both to its
    /// versions and to its row, where a call's event once took a record key and its row a call
    /// key of its own (each rewritten at every level: ~1/5 of a call's key bytes and work).
    Call = 2,
    /// A contact's id → the rows of `calls` that had it (a meeting's first call, `first_calls`):
    /// probed only when a meeting needs a first call the writer does not hold, so no filter.
    Contact = 3,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Event, Kind::Record, Kind::Call, Kind::Contact];
}

/// Runs of a level merged into one of the next once there are this many.
pub const FANOUT: usize = 8;
/// Keys per chunk (4 KB): a probe reads one chunk of each run.
pub const CHUNK: usize = 256;
const KEY_BYTES: usize = 16;
/// About the keys of one ingest transaction (4 clients' batches of 1,000): the size of a run of
/// level 0, from which a rebuild places a run of `n` keys at the level its size calls for.
const LEVEL0_KEYS: usize = 4_096;

/// The hash of an id of a tenant (MurmurHash64A, seeded by the tenant): stored on disk, so it
/// must never change.
pub fn hash(tenant: i64, id: &str) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let bytes = id.as_bytes();
    let mut h = (tenant as u64 ^ 0x9e37_79b9_7f4a_7c15) ^ (bytes.len() as u64).wrapping_mul(M);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        h ^= u64::from_le_bytes(tail);
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Hashes compare unsigned; SQLite's integers are signed: flipping the top bit keeps the order.
fn ordered(hash: u64) -> i64 {
    (hash ^ (1 << 63)) as i64
}

fn encode(keys: &[(u64, i64)]) -> Vec<u8> {
    let mut data = Vec::with_capacity(keys.len() * KEY_BYTES);
    for (hash, seq) in keys {
        data.extend_from_slice(&hash.to_be_bytes());
        data.extend_from_slice(&seq.to_be_bytes());
    }
    data
}

fn decode(data: &[u8]) -> impl Iterator<Item = (u64, i64)> + '_ {
    data.chunks_exact(KEY_BYTES).map(|k| {
        (
            u64::from_be_bytes(k[..8].try_into().expect("8 bytes")),
            i64::from_be_bytes(k[8..].try_into().expect("8 bytes")),
        )
    })
}

/// Writes `keys` as a new run of `level`, sorted; returns the run, if there were keys.
pub fn write_run(tx: &Transaction, kind: Kind, level: i64, keys: &mut [(u64, i64)]) -> rusqlite::Result<Option<i64>> {
    if keys.is_empty() {
        return Ok(None);
    }
    keys.sort_unstable();
    let run = new_run(tx, kind, level, keys.len())?;
    let mut chunks = Chunker::new(insert_chunk(tx, run));
    for key in keys.iter() {
        chunks.push(*key)?;
    }
    chunks.finish()?;
    Ok(Some(run))
}

fn new_run(tx: &Connection, kind: Kind, level: i64, keys: usize) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO key_runs (kind, level, keys) VALUES (?1, ?2, ?3)")?
        .execute(params![kind as i64, level, keys as i64])?;
    Ok(tx.last_insert_rowid())
}

/// Stores a chunk (its first hash, its data) in `run`.
fn insert_chunk(tx: &Connection, run: i64) -> impl FnMut(i64, Vec<u8>) -> rusqlite::Result<()> + '_ {
    move |first, data| {
        tx.prepare_cached("INSERT INTO key_chunks (run, first_hash, data) VALUES (?1, ?2, ?3)")?
            .execute(params![run, first, data])?;
        Ok(())
    }
}

/// Keys given in order, cut into chunks of [`CHUNK`] keys that never split one hash (so a
/// probe finds every row of a hash in one chunk), each handed to `emit` (first hash, data).
struct Chunker<E> {
    chunk: Vec<(u64, i64)>,
    emit: E,
}

impl<E: FnMut(i64, Vec<u8>) -> rusqlite::Result<()>> Chunker<E> {
    fn new(emit: E) -> Chunker<E> {
        Chunker {
            chunk: Vec::with_capacity(CHUNK),
            emit,
        }
    }

    fn push(&mut self, key: (u64, i64)) -> rusqlite::Result<()> {
        if self.chunk.len() >= CHUNK && self.chunk.last().is_some_and(|last| last.0 != key.0) {
            self.flush()?;
        }
        self.chunk.push(key);
        Ok(())
    }

    fn flush(&mut self) -> rusqlite::Result<()> {
        if let Some(first) = self.chunk.first() {
            (self.emit)(ordered(first.0), encode(&self.chunk))?;
            self.chunk.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> rusqlite::Result<()> {
        self.flush()
    }
}

/// A stored run read in order, a chunk at a time.
struct RunReader {
    run: i64,
    /// Where the next chunk's first hash starts (`None` once the last chunk was read).
    next_first: Option<i64>,
    keys: std::vec::IntoIter<(u64, i64)>,
}

impl RunReader {
    fn new(run: i64) -> RunReader {
        RunReader {
            run,
            next_first: Some(i64::MIN),
            keys: Vec::new().into_iter(),
        }
    }

    fn next(&mut self, conn: &Connection) -> rusqlite::Result<Option<(u64, i64)>> {
        loop {
            if let Some(key) = self.keys.next() {
                return Ok(Some(key));
            }
            let Some(from) = self.next_first else {
                return Ok(None);
            };
            let chunk = conn
                .prepare_cached(
                    "SELECT first_hash, data FROM key_chunks WHERE run = ?1 AND first_hash >= ?2 \
                     ORDER BY first_hash LIMIT 1",
                )?
                .query_row(params![self.run, from], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        decode(r.get_ref(1)?.as_blob()?).collect::<Vec<_>>(),
                    ))
                })
                .optional()?;
            match chunk {
                Some((first, keys)) => {
                    // Chunks never share a first hash: the next one starts above this one's.
                    self.next_first = first.checked_add(1);
                    self.keys = keys.into_iter();
                }
                None => self.next_first = None,
            }
        }
    }
}

/// A merge of the runs of a kind and level into one run of the next level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMerge {
    kind: Kind,
    /// The merged run's level.
    level: i64,
    inputs: Vec<Input>,
}

/// A run to merge, as the merge was planned: its number, keys, and first hashes of its first
/// and last chunks (a run deleted and its number taken by a new run differs from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Input {
    run: i64,
    keys: i64,
    first: i64,
    last: i64,
}

/// The first hashes of the first and the last chunk of each run, by the run's number.
const RUN_ENDS: &str = "(SELECT first_hash FROM key_chunks c WHERE c.run = r.run ORDER BY first_hash LIMIT 1), \
    (SELECT first_hash FROM key_chunks c WHERE c.run = r.run ORDER BY first_hash DESC LIMIT 1)";

impl KeyMerge {
    /// The bytes of the merged run's chunks.
    pub fn bytes(&self) -> usize {
        self.inputs.iter().map(|input| input.keys as usize).sum::<usize>() * KEY_BYTES
    }
}

/// The merges due: every kind and level that holds [`FANOUT`] runs, each with all its runs.
pub fn due_merges(conn: &Connection) -> rusqlite::Result<Vec<KeyMerge>> {
    let mut merges: Vec<KeyMerge> = Vec::new();
    let mut runs = conn.prepare_cached(&format!(
        "SELECT kind, level, run, keys, {RUN_ENDS} FROM key_runs r WHERE (kind, level) IN \
         (SELECT kind, level FROM key_runs WHERE kind >= 0 GROUP BY kind, level HAVING count(*) >= ?1) \
         ORDER BY kind, level, run"
    ))?;
    let mut rows = runs.query([FANOUT as i64])?;
    while let Some(row) = rows.next()? {
        let kind = Kind::ALL[row.get::<_, i64>(0)? as usize];
        let level = row.get::<_, i64>(1)? + 1;
        let input = Input {
            run: row.get(2)?,
            keys: row.get(3)?,
            first: row.get(4)?,
            last: row.get(5)?,
        };
        match merges.last_mut() {
            Some(m) if m.kind == kind && m.level == level => m.inputs.push(input),
            _ => merges.push(KeyMerge {
                kind,
                level,
                inputs: vec![input],
            }),
        }
    }
    Ok(merges)
}

/// Merges the keys of `runs` in order, a chunk of each at a time, into chunks
/// handed to `emit`: memory stays a few chunks whatever the runs hold.
fn merge_into(
    conn: &Connection,
    runs: &[Input],
    emit: impl FnMut(i64, Vec<u8>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut readers: Vec<RunReader> = runs.iter().map(|input| RunReader::new(input.run)).collect();
    let mut next = BinaryHeap::with_capacity(readers.len());
    for (i, reader) in readers.iter_mut().enumerate() {
        if let Some(key) = reader.next(conn)? {
            next.push(Reverse((key, i)));
        }
    }
    let mut merged = Chunker::new(emit);
    // The run of the smallest key gives its next key in place: one sift of the heap a key,
    // where a pop and a push took two.
    while let Some(mut smallest) = next.peek_mut() {
        let Reverse((key, i)) = *smallest;
        merged.push(key)?;
        match readers[i].next(conn)? {
            Some(key) => *smallest = Reverse((key, i)),
            None => {
                std::collections::binary_heap::PeekMut::pop(smallest);
            }
        }
    }
    merged.finish()
}

/// Runs `merge` in the caller's transaction, streaming (a merge of the top level at 10M calls
/// is 16M keys, 256 MB if held); returns how many keys were rewritten.
fn merge_in_place(tx: &Transaction, merge: &KeyMerge, keys_view: Option<&mut Keys>) -> rusqlite::Result<usize> {
    let run = new_run(tx, merge.kind, merge.level, merge.bytes() / KEY_BYTES)?;
    merge_into(tx, &merge.inputs, insert_chunk(tx, run))?;
    // The view builds the new run's filter after the commit (`Keys::filter_new_runs`).
    delete_inputs(tx, merge, keys_view)?;
    Ok(merge.bytes() / KEY_BYTES)
}

/// Deletes the runs `merge` merged. A merged run's number may be the new run's (SQLite reuses
/// the greatest rowid): the view's filter of a merged run goes now, the new run's comes after
/// the commit ([`Keys::filter_new_runs`]).
/// Returns the view, for the caller to add the new run's filter.
fn delete_inputs<'v>(
    tx: &Transaction,
    merge: &KeyMerge,
    keys_view: Option<&'v mut Keys>,
) -> rusqlite::Result<Option<&'v mut Keys>> {
    for input in &merge.inputs {
        delete_run(tx, input.run)?;
    }
    let view = keys_view.filter(|_| merge.kind == RUN_FILTERED);
    if let Some(view) = view {
        for input in &merge.inputs {
            view.run_filters.remove(&input.run);
        }
        return Ok(Some(view));
    }
    Ok(None)
}

/// The kind a run is stored under while a merge off the writer builds it ([`begin`]): no
/// kind's readers, probes or merges see it until [`finish`] gives it its own kind in place of
/// its inputs. One a crash left is dropped at the next open ([`drop_unfinished`]).
fn building(kind: Kind) -> i64 {
    -1 - kind as i64
}

/// A merge prepared off the writer, in slices: the writer gives it a run to build ([`begin`]),
/// the compactor reads and merges the inputs on a connection of its own ([`stream`]: runs are
/// immutable once committed, and only the writer deletes them), handing the chunks over a
/// slice at a time, the writer stores each slice between its transactions ([`store_slice`]),
/// then the run takes the inputs' place ([`finish`]).
///
/// The merges into level 4 and up (~6.5M keys of each kind at ~7M calls, 100 MB each) were
/// too large to hold and streamed on the writer: ingest paused for seconds (the 100k calls
/// ending at 7M ran at 11k calls/s against ~40k).
pub struct StreamedKeys {
    merge: KeyMerge,
    run: i64,
    /// The merged run's filter, built as its keys pass by ([`RUN_FILTERED`] only): the writer
    /// would otherwise read the whole run again for it.
    filter: Option<Filter>,
}

/// Chunks (first hash, data) of a run being built, in order.
pub struct KeySlice {
    run: i64,
    chunks: Vec<(i64, Vec<u8>)>,
}

impl KeySlice {
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.1.len()).sum()
    }
}

/// Gives `merge` its run to build, in the writer's transaction.
pub fn begin(tx: &Connection, merge: KeyMerge) -> rusqlite::Result<StreamedKeys> {
    tx.prepare_cached("INSERT INTO key_runs (kind, level, keys) VALUES (?1, ?2, ?3)")?
        .execute(params![
            building(merge.kind),
            merge.level,
            (merge.bytes() / KEY_BYTES) as i64
        ])?;
    Ok(StreamedKeys {
        merge,
        run: tx.last_insert_rowid(),
        filter: None,
    })
}

/// Reads and merges the inputs of `streamed` on `conn`, handing its chunks to `hand_over` in
/// slices of about `slice_bytes` (`false` from it: nobody takes them any more, the merge stops).
pub fn stream(
    conn: &Connection,
    streamed: &mut StreamedKeys,
    slice_bytes: usize,
    mut hand_over: impl FnMut(KeySlice) -> bool,
) -> rusqlite::Result<()> {
    let run = streamed.run;
    let mut filter = (streamed.merge.kind == RUN_FILTERED).then(|| Filter::sized(streamed.merge.bytes() / KEY_BYTES));
    let mut slices = Slicer::new(slice_bytes, |chunks| hand_over(KeySlice { run, chunks }));
    merge_into(conn, &streamed.merge.inputs, |first, data| {
        if let Some(filter) = filter.as_mut() {
            for (hash, _) in decode(&data) {
                filter.insert(hash);
            }
        }
        let bytes = data.len();
        slices.push((first, data), bytes)
    })?;
    slices.finish()?;
    streamed.filter = filter;
    Ok(())
}

/// Stores a slice of a run being built, in the writer's transaction.
pub fn store_slice(tx: &Connection, slice: KeySlice) -> rusqlite::Result<()> {
    let mut insert = insert_chunk(tx, slice.run);
    for (first, data) in slice.chunks {
        insert(first, data)?;
    }
    Ok(())
}

/// Gives a built run its kind in place of its inputs, in the writer's transaction, unless an
/// input is gone or changed, or the run is no longer one being built: then the run is dropped
/// and `false` returned (the keys are where they were, and the merge is planned again). The
/// view's filter of the run, if the merge built one, is the view's from now on.
pub fn finish(tx: &Transaction, streamed: StreamedKeys, keys_view: Option<&mut Keys>) -> rusqlite::Result<bool> {
    let StreamedKeys { merge, run, filter } = streamed;
    let mut unchanged = tx.prepare_cached(&format!(
        "SELECT 1 FROM key_runs r WHERE run = ?1 AND kind = ?2 AND level = ?3 AND keys = ?4 AND ({RUN_ENDS}) = (?5, ?6)"
    ))?;
    for input in &merge.inputs {
        let same = params![
            input.run,
            merge.kind as i64,
            merge.level - 1,
            input.keys,
            input.first,
            input.last
        ];
        if !unchanged.exists(same)? {
            delete_run(tx, run)?;
            return Ok(false);
        }
    }
    // The run must still be one being built: if it is gone (dropped as unfinished), deleting
    // the inputs would lose their keys.
    let promoted = tx
        .prepare_cached("UPDATE key_runs SET kind = ?1 WHERE run = ?2 AND kind < 0")?
        .execute(params![merge.kind as i64, run])?;
    if promoted != 1 {
        delete_run(tx, run)?;
        return Ok(false);
    }
    let view = delete_inputs(tx, &merge, keys_view)?;
    if let (Some(view), Some(filter)) = (view, filter) {
        view.run_filters.insert(run, filter);
    }
    Ok(true)
}

fn delete_run(tx: &Connection, run: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM key_chunks WHERE run = ?1")?
        .execute([run])?;
    tx.prepare_cached("DELETE FROM key_runs WHERE run = ?1")?
        .execute([run])?;
    Ok(())
}

/// Drops the runs being built (a crash or a failed merge left them; none is being built when
/// this runs).
pub fn drop_unfinished(tx: &Connection) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DELETE FROM key_chunks WHERE run IN (SELECT run FROM key_runs WHERE kind < 0); \
         DELETE FROM key_runs WHERE kind < 0;",
    )
}

/// The rows every run of `kind` lists for `hash` (candidates: the caller checks their ids).
pub fn find(conn: &Connection, kind: Kind, hash: u64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT data FROM key_chunks c WHERE c.run = r.run AND c.first_hash <= ?2 \
         ORDER BY c.first_hash DESC LIMIT 1) FROM key_runs r WHERE r.kind = ?1",
    )?;
    let mut rows = stmt.query(params![kind as i64, ordered(hash)])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        if let Some(data) = row.get_ref(0)?.as_blob_or_null()? {
            found.extend(rows_in_chunk(data, hash));
        }
    }
    Ok(found)
}

/// The rows a chunk lists for `hash`.
fn rows_in_chunk(data: &[u8], hash: u64) -> impl Iterator<Item = i64> + '_ {
    let count = data.len() / KEY_BYTES;
    let hash_at = |i: usize| u64::from_be_bytes(data[i * KEY_BYTES..i * KEY_BYTES + 8].try_into().expect("8"));
    // The first key not below `hash`, then every key equal to it.
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if hash_at(mid) < hash {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    decode(&data[lo * KEY_BYTES..])
        .take_while(move |(h, _)| *h == hash)
        .map(|(_, seq)| seq)
}

/// [`find`] over the runs of `kind`, skipping those whose filter in `filters` rules `hash` out
/// (a run without a filter is always read).
fn find_filtered(conn: &Connection, runs: &[i64], hash: u64, filters: &RunFilters) -> rusqlite::Result<Vec<i64>> {
    let mut chunk = conn.prepare_cached(
        "SELECT data FROM key_chunks WHERE run = ?1 AND first_hash <= ?2 ORDER BY first_hash DESC LIMIT 1",
    )?;
    let mut found = Vec::new();
    for &run in runs.iter().filter(|run| filters.get(run).is_none_or(|f| f.maybe(hash))) {
        let mut rows = chunk.query(params![run, ordered(hash)])?;
        if let Some(row) = rows.next()? {
            found.extend(rows_in_chunk(row.get_ref(0)?.as_blob()?, hash));
        }
    }
    Ok(found)
}

/// [`find`] for many hashes at once (an export's page): the hashes are probed in order, so a
/// chunk that holds several of them is read once per run, not once per hash. Returns the rows
/// each hash lists (candidates, as [`find`]'s).
pub fn find_many(conn: &Connection, kind: Kind, hashes: &[u64]) -> rusqlite::Result<HashMap<u64, Vec<i64>>> {
    let mut sorted = hashes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let runs: Vec<i64> = conn
        .prepare_cached("SELECT run FROM key_runs WHERE kind = ?1")?
        .query_map([kind as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut chunk_of = conn.prepare_cached(
        "SELECT data FROM key_chunks WHERE run = ?1 AND first_hash <= ?2 ORDER BY first_hash DESC LIMIT 1",
    )?;
    let mut found: HashMap<u64, Vec<i64>> = HashMap::new();
    for run in runs {
        // The chunk read last: it answers every later hash up to its last key (a chunk never
        // splits a hash, so the next chunk starts above it).
        let mut chunk: Vec<(u64, i64)> = Vec::new();
        for &hash in &sorted {
            let covered = matches!((chunk.first(), chunk.last()), (Some(f), Some(l)) if f.0 <= hash && hash <= l.0);
            if !covered {
                chunk = match chunk_of
                    .query_row(params![run, ordered(hash)], |r| {
                        Ok(decode(r.get_ref(0)?.as_blob()?).collect())
                    })
                    .optional()?
                {
                    Some(keys) => keys,
                    None => continue,
                };
            }
            let from = chunk.partition_point(|(h, _)| *h < hash);
            let seqs = chunk[from..]
                .iter()
                .take_while(|(h, _)| *h == hash)
                .map(|(_, seq)| *seq);
            let mut seqs = seqs.peekable();
            if seqs.peek().is_some() {
                found.entry(hash).or_default().extend(seqs);
            }
        }
    }
    Ok(found)
}

/// Merges runs wherever a level holds [`FANOUT`] of them, level after level, in a transaction
/// of its own; returns how many keys were rewritten. `keys_view` keeps a filter for each run of
/// contacts: the merged runs' go, the new run's comes once it is committed. For the tests and
/// `bench/src/bin/floor.rs`: the writer merges these runs and the value runs in one transaction
/// (`writer::merge_runs`).
pub fn compact(conn: &mut Connection, mut keys_view: Option<&mut Keys>) -> rusqlite::Result<usize> {
    if !merge_due(conn)? {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let rewritten = merge_full_levels(&tx, keys_view.as_deref_mut())?;
    tx.commit()?;
    if let Some(view) = keys_view {
        view.filter_new_runs(conn)?;
    }
    Ok(rewritten)
}

/// Whether some level holds [`FANOUT`] runs of a kind (a merge to do).
pub fn merge_due(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM key_runs WHERE kind >= 0 GROUP BY kind, level HAVING count(*) >= ?1 LIMIT 1")?
        .exists([FANOUT as i64])
}

/// The merges that are due, level after level (a merge may fill the level above it), in the
/// caller's transaction: once it commits, the view's filters of the new runs are built by
/// [`Keys::filter_new_runs`].
pub fn merge_full_levels(tx: &Transaction, mut keys_view: Option<&mut Keys>) -> rusqlite::Result<usize> {
    let mut rewritten = 0;
    loop {
        let due = due_merges(tx)?;
        if due.is_empty() {
            return Ok(rewritten);
        }
        for merge in &due {
            rewritten += merge_in_place(tx, merge, keys_view.as_deref_mut())?;
        }
    }
}

/// The merges `due` in the writer's transaction, streaming (a database in memory, which has no
/// compactor).
pub fn merge_now(tx: &Transaction, due: &[KeyMerge], mut keys_view: Option<&mut Keys>) -> rusqlite::Result<()> {
    for merge in due {
        merge_in_place(tx, merge, keys_view.as_deref_mut())?;
    }
    Ok(())
}

/// Replaces the runs of `kinds` by one per kind, built from the rows and the blocks of events
/// (a database written before those runs existed). Keys go straight to the level their number calls for.
pub fn rebuild(tx: &Transaction, kinds: &[Kind]) -> rusqlite::Result<()> {
    let sources = [
        (Kind::Event, "SELECT seq, tenant_id, event_id FROM events"),
        (
            Kind::Record,
            "SELECT seq, tenant_id, record_key FROM events WHERE record_key IS NOT NULL",
        ),
        (Kind::Call, "SELECT seq, tenant_id, call_id FROM calls"),
        (
            Kind::Contact,
            "SELECT seq, tenant_id, contact_id FROM calls WHERE contact_id IS NOT NULL",
        ),
    ];
    for (kind, sql) in sources.into_iter().filter(|(k, _)| kinds.contains(k)) {
        tx.execute(
            "DELETE FROM key_chunks WHERE run IN (SELECT run FROM key_runs WHERE kind = ?1)",
            [kind as i64],
        )?;
        tx.execute("DELETE FROM key_runs WHERE kind = ?1", [kind as i64])?;
        let mut keys = Vec::new();
        let mut stmt = tx.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            keys.push((hash(row.get(1)?, row.get_ref(2)?.as_str()?), row.get(0)?));
        }
        // Events written since they have no row are in their blocks only.
        if matches!(kind, Kind::Event | Kind::Record) {
            super::bodies::for_each_rowless(tx, |tenant, e| {
                let key = if kind == Kind::Event {
                    Some(e.event_id)
                } else {
                    e.record_key
                };
                keys.extend(key.map(|key| (hash(tenant, key), e.seq)));
            })?;
        }
        let mut level = 0;
        let mut size = LEVEL0_KEYS;
        while keys.len() > size {
            size *= FANOUT;
            level += 1;
        }
        write_run(tx, kind, level, &mut keys)?;
    }
    Ok(())
}

/// The writer's view of the keys: a filter per kind it looks up for every event or call, a
/// filter per run of contacts, and the keys of the open transaction (which no run holds yet).
pub struct Keys {
    filters: HashMap<Kind, Filter, Fx>,
    run_filters: RunFilters,
    /// The filter of the open transaction's run of contacts, until it commits.
    open_run: Option<(i64, Filter)>,
    open: HashMap<(Kind, u64), OpenRows, Fx>,
    added: Vec<(Kind, u64, i64)>,
}

/// The rows the open transaction added under one key: nearly always one, held without a `Vec`
/// of its own (an allocation for each of a call's three keys, 2% of the writer at 1M calls).
enum OpenRows {
    One(i64),
    Many(Vec<i64>),
}

impl OpenRows {
    fn push(&mut self, seq: i64) {
        match self {
            OpenRows::One(first) => *self = OpenRows::Many(vec![*first, seq]),
            OpenRows::Many(rows) => rows.push(seq),
        }
    }

    fn to_vec(&self) -> Vec<i64> {
        match self {
            OpenRows::One(seq) => vec![*seq],
            OpenRows::Many(rows) => rows.clone(),
        }
    }
}

/// A filter per run, by its number.
type RunFilters = HashMap<i64, Filter, Fx>;

/// The runs of [`RUN_FILTERED`] (contacts), listed at most once for an ingest transaction: no
/// run is written, merged or deleted while it applies its events (its own keys become a run as
/// it commits; merges commit between ingest transactions). Listing them (a query of
/// `key_runs`) for every probe of a meeting's contact was ~1.5% of the writer at 1M calls, more
/// than reading the chunks their filters let through.
#[derive(Default)]
pub struct FilteredRuns(Option<Vec<i64>>);

impl FilteredRuns {
    fn list(&mut self, conn: &Connection) -> rusqlite::Result<&[i64]> {
        if self.0.is_none() {
            let runs = conn
                .prepare_cached("SELECT run FROM key_runs WHERE kind = ?1")?
                .query_map([RUN_FILTERED as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            self.0 = Some(runs);
        }
        Ok(self.0.as_deref().expect("listed above"))
    }
}

/// The kind whose runs each have a filter. A meeting's first call probes the runs of its
/// contact (`first_calls`), which always has keys, so one filter of every contact would answer
/// "maybe" each time; but its few calls are in few runs. Without these filters a probe read one
/// chunk of every run (~17 at 1M calls, ~30 at 10M) and cost grew with history: at 1M calls a
/// fifth of the writer's time in the ingest bench. At 12 bits a key, ~1.5 bytes a call.
const RUN_FILTERED: Kind = Kind::Contact;

fn run_filter(hashes: impl ExactSizeIterator<Item = u64>) -> Filter {
    let mut filter = Filter::sized(hashes.len());
    for hash in hashes {
        filter.insert(hash);
    }
    filter
}

/// The kinds the writer looks up for every event or call, behind a filter. Contacts are looked
/// up only for meetings (nearly always present, so a filter would not spare a probe); records'
/// versions only by queries.
const FILTERED: [Kind; 2] = [Kind::Event, Kind::Call];

/// The filters of the kinds in [`FILTERED`], filled from every run: one sequential read of 16
/// bytes a key.
fn id_filters(conn: &Connection) -> rusqlite::Result<HashMap<Kind, Filter, Fx>> {
    let mut filters = HashMap::default();
    for kind in FILTERED {
        let stored: i64 = conn
            .prepare_cached("SELECT coalesce(sum(keys), 0) FROM key_runs WHERE kind = ?1")?
            .query_row([kind as i64], |r| r.get(0))?;
        let mut filter = Filter::with_capacity(2 * stored as usize);
        let mut stmt =
            conn.prepare_cached("SELECT data FROM key_chunks WHERE run IN (SELECT run FROM key_runs WHERE kind = ?1)")?;
        let mut rows = stmt.query([kind as i64])?;
        while let Some(row) = rows.next()? {
            for (hash, _) in decode(row.get_ref(0)?.as_blob()?) {
                filter.insert(hash);
            }
        }
        filters.insert(kind, filter);
    }
    Ok(filters)
}

impl Keys {
    /// Fills the filters from every run: one sequential read of 16 bytes a key.
    pub fn load(conn: &Connection) -> rusqlite::Result<Keys> {
        let filters = id_filters(conn)?;
        let mut keys = Keys {
            filters,
            run_filters: RunFilters::default(),
            open_run: None,
            open: HashMap::default(),
            added: Vec::new(),
        };
        keys.filter_new_runs(conn)?;
        Ok(keys)
    }

    /// Builds the filter of every run of contacts that has none (all of them at a load; a
    /// merged run after its merge committed): one sequential read of its chunks.
    pub fn filter_new_runs(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let runs: Vec<(i64, i64)> = conn
            .prepare_cached("SELECT run, keys FROM key_runs WHERE kind = ?1")?
            .query_map([RUN_FILTERED as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .filter(|run| {
                run.as_ref()
                    .map_or(true, |(run, _)| !self.run_filters.contains_key(run))
            })
            .collect::<rusqlite::Result<_>>()?;
        let mut chunks = conn.prepare_cached("SELECT data FROM key_chunks WHERE run = ?1")?;
        for (run, keys) in runs {
            let mut filter = Filter::sized(keys as usize);
            let mut rows = chunks.query([run])?;
            while let Some(row) = rows.next()? {
                for (hash, _) in decode(row.get_ref(0)?.as_blob()?) {
                    filter.insert(hash);
                }
            }
            self.run_filters.insert(run, filter);
        }
        Ok(())
    }

    /// The rows that may hold the id hashed to `hash`: the open transaction's, then the runs'
    /// if the filter cannot rule them out.
    pub fn candidates(&self, conn: &Connection, kind: Kind, hash: u64) -> rusqlite::Result<Vec<i64>> {
        self.candidates_in(conn, &mut FilteredRuns::default(), kind, hash)
    }

    /// [`Keys::candidates`], the runs of the kind that has a filter per run listed by `runs`.
    pub fn candidates_in(
        &self,
        conn: &Connection,
        runs: &mut FilteredRuns,
        kind: Kind,
        hash: u64,
    ) -> rusqlite::Result<Vec<i64>> {
        let mut found = self.open.get(&(kind, hash)).map(OpenRows::to_vec).unwrap_or_default();
        if kind == RUN_FILTERED {
            found.extend(find_filtered(conn, runs.list(conn)?, hash, &self.run_filters)?);
        } else if self.filters.get(&kind).is_none_or(|f| f.maybe(hash)) {
            found.extend(find(conn, kind, hash)?);
        }
        Ok(found)
    }

    /// A row the open transaction added under `hash`.
    pub fn add(&mut self, kind: Kind, hash: u64, seq: i64) {
        if kind != Kind::Record {
            match self.open.entry((kind, hash)) {
                Entry::Occupied(mut rows) => rows.get_mut().push(seq),
                Entry::Vacant(slot) => {
                    slot.insert(OpenRows::One(seq));
                }
            }
        }
        self.added.push((kind, hash, seq));
    }

    /// Writes the open transaction's keys as runs of level 0, in that transaction.
    pub fn write(&mut self, tx: &Transaction) -> rusqlite::Result<()> {
        for kind in Kind::ALL {
            let mut keys: Vec<(u64, i64)> = self
                .added
                .iter()
                .filter(|(k, _, _)| *k == kind)
                .map(|(_, hash, seq)| (*hash, *seq))
                .collect();
            let run = write_run(tx, kind, 0, &mut keys)?;
            if kind == RUN_FILTERED {
                self.open_run = run.map(|run| (run, run_filter(keys.iter().map(|k| k.0))));
            }
        }
        Ok(())
    }

    /// The open transaction committed: its keys join the filters (which grow, rebuilt from
    /// the runs, once past their capacity).
    pub fn committed(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut grow = false;
        for (kind, hash, _) in self.added.drain(..) {
            if let Some(filter) = self.filters.get_mut(&kind) {
                filter.insert(hash);
                grow |= filter.full();
            }
        }
        self.open.clear();
        self.run_filters.extend(self.open_run.take());
        if grow {
            // The old filters go before the new ones are built: both at once are the peak. The
            // contact runs' filters are current and stay.
            self.filters.clear();
            self.filters = id_filters(conn)?;
        }
        Ok(())
    }

    /// The open transaction rolled back: its keys are forgotten.
    pub fn rolled_back(&mut self) {
        self.added.clear();
        self.open.clear();
        self.open_run = None;
    }

    /// Memory the filters take.
    pub fn bytes(&self) -> usize {
        self.filters
            .values()
            .chain(self.run_filters.values())
            .map(Filter::bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_and_tenant_specific() {
        // Stored on disk: a change of this function would lose every key written before.
        assert_eq!(hash(1, "e1"), hash(1, "e1"));
        assert_ne!(hash(1, "e1"), hash(2, "e1"));
        assert_ne!(hash(1, "e1"), hash(1, "e2"));
        assert_eq!(hash(7, "2f1c9a3e-8b7d-4c1e-9f00-1a2b3c4d5e6f"), 0xf398_10f7_817a_8588);
    }

    #[test]
    fn a_filter_never_forgets_and_rarely_lies() {
        let mut filter = Filter::with_capacity(100_000);
        for i in 0..100_000 {
            filter.insert(hash(1, &format!("k{i}")));
        }
        assert!((0..100_000).all(|i| filter.maybe(hash(1, &format!("k{i}")))));
        let false_positives = (0..100_000).filter(|i| filter.maybe(hash(1, &format!("x{i}")))).count();
        assert!(false_positives < 1_000, "{false_positives} of 100,000");
    }

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::key_tables!()).unwrap();
        conn
    }

    /// Streams `merge` as the compactor and the writer do: begun, its chunks handed over in
    /// slices of about `slice_bytes`, each stored in a transaction of its own; returns the merge
    /// to finish (its run still being built) and how many slices it took.
    fn stream_slices(conn: &mut Connection, merge: KeyMerge, slice_bytes: usize) -> (StreamedKeys, usize) {
        let tx = conn.transaction().unwrap();
        let mut streamed = begin(&tx, merge).unwrap();
        tx.commit().unwrap();
        let mut slices = Vec::new();
        stream(conn, &mut streamed, slice_bytes, |slice| {
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

    /// A run being built is out of sight: while its slices are stored every key is found once
    /// (from the inputs), by `find` and by the view; a run a crash left half built is dropped
    /// at the next open; a finished one holds every key once, and the filter its merge built
    /// is the one a reload builds from the stored run.
    #[test]
    fn a_run_being_built_is_seen_only_once_finished() {
        for crash in [true, false] {
            let mut conn = store();
            let mut all = Vec::new();
            for run in 0..FANOUT {
                let tx = conn.transaction().unwrap();
                let mut keys: Vec<(u64, i64)> = (0..700)
                    .map(|i| (hash(1, &format!("{run}-{i}")), (run * 1_000 + i) as i64))
                    .collect();
                all.extend(keys.iter().copied());
                write_run(&tx, Kind::Contact, 0, &mut keys).unwrap();
                tx.commit().unwrap();
            }
            let mut view = Keys::load(&conn).unwrap();
            let due = due_merges(&conn).unwrap();
            let (streamed, slices) = stream_slices(&mut conn, due[0].clone(), 3 * CHUNK * KEY_BYTES);
            assert!(slices > 3, "{slices} slices");
            assert!(streamed.filter.is_some(), "a merge of contacts builds its run's filter");
            let found_once = |conn: &Connection, view: &Keys| {
                for &(h, seq) in &all {
                    assert_eq!(find(conn, Kind::Contact, h).unwrap(), vec![seq]);
                    assert_eq!(view.candidates(conn, Kind::Contact, h).unwrap(), vec![seq]);
                }
            };
            found_once(&conn, &view);
            assert_eq!(due_merges(&conn).unwrap(), due, "no merge takes it");
            if crash {
                drop_unfinished(&conn).unwrap();
                // A merge whose run was dropped under it finishes as discarded: the inputs stay.
                let tx = conn.transaction().unwrap();
                assert!(!finish(&tx, streamed, Some(&mut view)).unwrap());
                tx.commit().unwrap();
                let orphans: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM key_chunks WHERE run NOT IN (SELECT run FROM key_runs)",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(orphans, 0);
                assert_eq!(due_merges(&conn).unwrap(), due);
            } else {
                let tx = conn.transaction().unwrap();
                assert!(finish(&tx, streamed, Some(&mut view)).unwrap());
                tx.commit().unwrap();
                let levels: Vec<(i64, i64)> = conn
                    .prepare("SELECT kind, level FROM key_runs")
                    .unwrap()
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                assert_eq!(levels, vec![(Kind::Contact as i64, 1)]);
                let reloaded = Keys::load(&conn).unwrap();
                assert_eq!(view.run_filters.len(), 1);
                let (run, filter) = view.run_filters.iter().next().unwrap();
                assert!(*filter == reloaded.run_filters[run], "the filter a reload builds");
            }
            found_once(&conn, &view);
        }
    }

    /// Every key stays findable through writes of runs and their merges, whatever its hash,
    /// equal hashes included.
    #[test]
    fn keys_are_found_through_merges() {
        let mut conn = store();
        let mut seq = 0;
        let mut all = Vec::new();
        for run in 0..(FANOUT * FANOUT + 3) {
            let tx = conn.transaction().unwrap();
            let mut keys: Vec<(u64, i64)> = (0..300)
                .map(|i| {
                    seq += 1;
                    // Some hashes at the extremes, and one hash shared by a key of every run.
                    let h = match i {
                        0 => 7,
                        1 => u64::MAX,
                        2 => 0,
                        _ => hash(run as i64, &format!("{i}")),
                    };
                    (h, seq)
                })
                .collect();
            all.extend(keys.iter().copied());
            write_run(&tx, Kind::Call, 0, &mut keys).unwrap();
            tx.commit().unwrap();
            compact(&mut conn, None).unwrap();
        }
        let levels: Vec<i64> = conn
            .prepare("SELECT level FROM key_runs ORDER BY level")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(levels.len() < 2 * FANOUT, "{levels:?}");
        for (h, seq) in &all {
            assert!(find(&conn, Kind::Call, *h).unwrap().contains(seq), "{h} {seq}");
        }
        let mut shared = find(&conn, Kind::Call, 7).unwrap();
        shared.sort();
        let mut expected: Vec<i64> = all.iter().filter(|(h, _)| *h == 7).map(|k| k.1).collect();
        expected.sort();
        assert_eq!(shared, expected);
        assert!(find(&conn, Kind::Event, 7).unwrap().is_empty());
    }

    /// Contacts are looked up through a filter per run: through the writer's transactions,
    /// one rolled back, merges (whose new run may take a merged run's number) and a reload,
    /// every contact's rows are found, and a contact in one run is looked for in few others.
    #[test]
    fn contacts_are_found_through_the_filters_of_their_runs() {
        let mut conn = store();
        let mut keys = Keys::load(&conn).unwrap();
        let mut all: Vec<(u64, i64)> = Vec::new();
        let mut seq = 0;
        for run in 0..(FANOUT * FANOUT + 5) {
            let tx = conn.transaction().unwrap();
            let mut added = Vec::new();
            for i in 0..50 {
                seq += 1;
                // A contact of every run, and one of every other run.
                let h = match i {
                    0 => 1,
                    1 if run % 2 == 0 => 2,
                    _ => hash(1, &format!("{run}-{i}")),
                };
                keys.add(Kind::Contact, h, seq);
                added.push((h, seq));
            }
            keys.write(&tx).unwrap();
            if run % 7 == 3 {
                drop(tx);
                keys.rolled_back();
                continue;
            }
            tx.commit().unwrap();
            keys.committed(&conn).unwrap();
            all.extend(added);
            compact(&mut conn, Some(&mut keys)).unwrap();
        }
        let check = |keys: &Keys| {
            let tx = conn.unchecked_transaction().unwrap();
            for (h, seq) in &all {
                assert!(
                    keys.candidates(&tx, Kind::Contact, *h).unwrap().contains(seq),
                    "{h} {seq}"
                );
            }
            let mut shared = keys.candidates(&tx, Kind::Contact, 1).unwrap();
            shared.sort();
            let expected: Vec<i64> = all.iter().filter(|(h, _)| *h == 1).map(|k| k.1).collect();
            assert_eq!(shared, expected);
        };
        check(&keys);
        let runs: usize = conn
            .query_row(
                "SELECT count(*) FROM key_runs WHERE kind = ?1",
                [Kind::Contact as i64],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            keys.run_filters.len(),
            runs,
            "a filter for every run, none for a run gone"
        );
        let maybe = |keys: &Keys, h: u64| keys.run_filters.values().filter(|f| f.maybe(h)).count();
        let absent = (0..1_000)
            .map(|i| maybe(&keys, hash(2, &format!("x{i}"))))
            .sum::<usize>();
        assert!(
            absent < 1_000 * runs / 20,
            "{absent} runs read for 1,000 absent contacts of {runs} runs"
        );
        let reloaded = Keys::load(&conn).unwrap();
        assert_eq!(reloaded.run_filters.len(), runs);
        check(&reloaded);
    }

    /// A streamed merge whose input was replaced before it finished (the run deleted, a new run
    /// of other keys written) is dropped: no key is lost or stored twice; planned again, the
    /// merge finishes, and its keys are found once.
    #[test]
    fn a_merge_whose_input_changed_is_discarded() {
        let mut conn = store();
        let mut all = Vec::new();
        let write = |conn: &mut Connection, run: usize, all: &mut Vec<(u64, i64)>| {
            let tx = conn.transaction().unwrap();
            let mut keys: Vec<(u64, i64)> = (0..300)
                .map(|i| (hash(1, &format!("{run}-{i}")), (run * 1_000 + i) as i64))
                .collect();
            all.extend(keys.iter().copied());
            write_run(&tx, Kind::Call, 0, &mut keys).unwrap();
            tx.commit().unwrap();
        };
        for run in 0..FANOUT {
            write(&mut conn, run, &mut all);
        }
        let due = due_merges(&conn).unwrap();
        assert_eq!(due.len(), 1);
        let (streamed, _) = stream_slices(&mut conn, due[0].clone(), 1 << 20);
        let last = due[0].inputs.last().unwrap().run;
        let gone: Vec<(u64, i64)> = all.drain(all.len() - 300..).collect();
        conn.execute_batch(&format!(
            "DELETE FROM key_chunks WHERE run = {last}; DELETE FROM key_runs WHERE run = {last};"
        ))
        .unwrap();
        write(&mut conn, FANOUT, &mut all);
        let tx = conn.transaction().unwrap();
        assert!(!finish(&tx, streamed, None).unwrap());
        tx.commit().unwrap();
        let found_once = |conn: &Connection, all: &[(u64, i64)]| {
            for (h, seq) in all {
                assert_eq!(find(conn, Kind::Call, *h).unwrap(), vec![*seq]);
            }
        };
        found_once(&conn, &all);
        assert!(gone
            .iter()
            .all(|(h, _)| find(&conn, Kind::Call, *h).unwrap().is_empty()));
        let again = due_merges(&conn).unwrap();
        let (streamed, _) = stream_slices(&mut conn, again[0].clone(), 1 << 20);
        let tx = conn.transaction().unwrap();
        assert!(finish(&tx, streamed, None).unwrap());
        tx.commit().unwrap();
        let levels: Vec<i64> = conn
            .prepare("SELECT level FROM key_runs")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(levels, vec![1]);
        found_once(&conn, &all);
    }

    /// A merge streams its runs chunk by chunk: the merged run holds every key of its inputs
    /// once, sorted, in chunks of at least [`CHUNK`] keys (the last excepted) that never split
    /// a hash — also when one hash has more rows than a chunk holds.
    #[test]
    fn a_merge_keeps_every_key_in_whole_sorted_chunks() {
        let mut conn = store();
        let mut all = Vec::new();
        for run in 0..FANOUT {
            let tx = conn.transaction().unwrap();
            let mut keys: Vec<(u64, i64)> = (0..700)
                .map(|i| {
                    let seq = (run * 1_000 + i) as i64;
                    // A hash that spans chunks, a few keys at the ends of the range.
                    let h = match i % 7 {
                        0 => 7,
                        1 if i < 30 => 0,
                        2 if i < 30 => u64::MAX,
                        _ => hash(run as i64, &format!("{i}")),
                    };
                    (h, seq)
                })
                .collect();
            all.extend(keys.iter().copied());
            write_run(&tx, Kind::Event, 0, &mut keys).unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(compact(&mut conn, None).unwrap(), all.len());
        let (level, stored): (i64, i64) = conn
            .query_row("SELECT level, keys FROM key_runs", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((level, stored), (1, all.len() as i64));
        let chunks: Vec<(i64, Vec<(u64, i64)>)> = conn
            .prepare("SELECT first_hash, data FROM key_chunks ORDER BY first_hash")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, decode(r.get_ref(1)?.as_blob()?).collect())))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for (i, (first, keys)) in chunks.iter().enumerate() {
            assert_eq!(*first, ordered(keys[0].0));
            assert!(
                i + 1 == chunks.len() || keys.len() >= CHUNK,
                "chunk {i}: {} keys",
                keys.len()
            );
            if let Some((_, next)) = chunks.get(i + 1) {
                assert_ne!(keys.last().unwrap().0, next[0].0, "chunk {i} splits a hash");
            }
        }
        let merged: Vec<(u64, i64)> = chunks.into_iter().flat_map(|(_, keys)| keys).collect();
        all.sort_unstable();
        assert_eq!(merged, all);
        let mut sevens = find(&conn, Kind::Event, 7).unwrap();
        sevens.sort_unstable();
        assert_eq!(sevens.len(), FANOUT * 100);
    }
}
