//! Checkpoint deltas of sparse blocks, kept as one row per **chunk** of buckets (a span) until a
//! few checkpoints' worth have gathered, then folded into the blocks together.
//!
//! A block row (`parts::fold`) costs about the same whatever it holds: the lookup of its parts,
//! a row written, its page logged at commit. Calls in time order put hundreds of cells in each
//! block a checkpoint touches, but a backfill in random time order puts one or two in each of
//! ~29k (every quarter and hour of its range, per cuboid), so a checkpoint cost a block row for
//! every few cells (~45% of the writer). Now the deltas of a chunk whose blocks hold fewer than
//! [`DENSE_CELLS`] cells each on average are written as one span row (all its buckets), and a
//! chunk's spans go into its blocks only with the checkpoint that would make them more than
//! [`MAX_SPANS`]: each block row then carries [`MAX_SPANS`] + 1 checkpoints' deltas.
//!
//! Readers add the spans of the chunks a range covers (keeping the buckets inside it) to the
//! blocks and the overlay, which is exact because cells are sums. A purge folds the tenant's
//! spans first (so that it deletes whole blocks, as before), and so does a clean shutdown (a file
//! the store closed has none).

use super::parts;
use crate::overlay::BlockId;
use crate::{Result, StoreError};
use dialboard_engine::cells::{get_bytes, get_varint, put_bytes, put_varint, Stats};
use dialboard_engine::clock::Grain;
use rusqlite::{params, Connection, Transaction};
use std::collections::{BTreeMap, HashMap};

/// Buckets per chunk: a day of quarters, four days of hours, 96 days, weeks or months.
const CHUNK_BUCKETS: i64 = 96;
/// The most spans a chunk keeps: the bound on the rows a reader reads per chunk beside its
/// blocks, and the number of checkpoints a block row of a sparse chunk gathers (plus one).
pub const MAX_SPANS: usize = 8;
/// Cells a block a checkpoint's deltas of a chunk must average to go straight into its blocks.
const DENSE_CELLS: usize = 8;

/// A chunk: tenant, cuboid, grain, and the bucket's chunk number ([`chunk`]).
type ChunkId = (i64, u8, Grain, i64);

/// The chunk of `bucket` (seconds): buckets in order have chunks in order, whatever the widths
/// of local days, weeks and months, so a range of buckets is a range of chunks.
pub fn chunk(grain: Grain, bucket: i64) -> i64 {
    let nominal = match grain {
        Grain::Quarter => 900,
        Grain::Hour => 3_600,
        Grain::Day => 86_400,
        Grain::Week => 7 * 86_400,
        Grain::Month => 31 * 86_400,
    };
    bucket.div_euclid(CHUNK_BUCKETS * nominal)
}

fn chunk_of(id: BlockId) -> ChunkId {
    (id.0, id.1, id.2, chunk(id.2, id.3))
}

/// Folds a checkpoint's deltas, block by block in `BlockId` order (so a chunk's blocks come
/// together; each block's cells sorted by key, none zero), in the checkpoint's transaction.
pub fn checkpoint<'a, C>(tx: &Transaction, blocks: impl Iterator<Item = (BlockId, C)>) -> Result<()>
where
    C: Iterator<Item = (&'a str, &'a Stats)>,
{
    let stored = stored_spans(tx)?;
    let mut group: Vec<(BlockId, Vec<(&'a str, &'a Stats)>)> = Vec::new();
    for (id, cells) in blocks {
        if group.first().is_some_and(|(first, _)| chunk_of(*first) != chunk_of(id)) {
            fold_chunk(tx, &stored, &group)?;
            group.clear();
        }
        group.push((id, cells.collect()));
    }
    if !group.is_empty() {
        fold_chunk(tx, &stored, &group)?;
    }
    Ok(())
}

/// The number of spans of each chunk that has some, and the highest span number.
fn stored_spans(tx: &Transaction) -> Result<HashMap<ChunkId, (usize, i64)>> {
    let mut stmt =
        tx.prepare_cached("SELECT tenant_id, cuboid, grain, chunk, count(*), max(span) FROM cell_spans GROUP BY 1, 2, 3, 4")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next()? {
        let grain = Grain::from_i64(row.get(2)?).ok_or_else(corrupt)?;
        let count: i64 = row.get(4)?;
        out.insert((row.get(0)?, row.get(1)?, grain, row.get(3)?), (count as usize, row.get(5)?));
    }
    Ok(out)
}

/// One chunk's deltas: into its blocks if they are dense or its spans are full, else one span.
fn fold_chunk(
    tx: &Transaction,
    stored: &HashMap<ChunkId, (usize, i64)>,
    group: &[(BlockId, Vec<(&str, &Stats)>)],
) -> Result<()> {
    let id = chunk_of(group[0].0);
    let (spans, last) = stored.get(&id).copied().unwrap_or((0, 0));
    let cells: usize = group.iter().map(|(_, cells)| cells.len()).sum();
    let dense = cells >= DENSE_CELLS * group.len();
    if dense && spans == 0 {
        for (block, cells) in group {
            parts::fold(tx, *block, cells.iter().copied())?;
        }
        return Ok(());
    }
    if !dense && spans < MAX_SPANS {
        let mut data = Vec::new();
        for (block, cells) in group {
            put_varint(&mut data, block.3);
            put_bytes(&mut data, &crate::block::merge(&[], cells.iter().copied()).ok_or_else(corrupt)?);
        }
        let (tenant, cuboid, grain, chunk) = id;
        tx.prepare_cached(
            "INSERT INTO cell_spans (tenant_id, cuboid, grain, chunk, span, first_bucket, data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![tenant, cuboid, grain as i64, chunk, last + 1, group[0].0 .3, data])?;
        return Ok(());
    }
    into_blocks(tx, id, group)
}

/// Folds the chunk's spans and `group` (its deltas, if any) into its blocks and deletes the spans.
fn into_blocks(tx: &Transaction, id: ChunkId, group: &[(BlockId, Vec<(&str, &Stats)>)]) -> Result<()> {
    let (tenant, cuboid, grain, chunk) = id;
    let key = params![tenant, cuboid, grain as i64, chunk];
    let spans: Vec<Vec<u8>> = tx
        .prepare_cached("SELECT data FROM cell_spans WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND chunk = ?4")?
        .query_map(key, |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut sums: BTreeMap<(i64, &str), Stats> = BTreeMap::new();
    for data in &spans {
        for entry in entries(data) {
            let (bucket, key, bytes) = entry.ok_or_else(corrupt)?;
            sums.entry((bucket, key))
                .or_default()
                .merge(&Stats::from_bytes(bytes).ok_or_else(corrupt)?, 1);
        }
    }
    for (block, cells) in group {
        for (key, stats) in cells {
            sums.entry((block.3, key)).or_default().merge(stats, 1);
        }
    }
    tx.prepare_cached("DELETE FROM cell_spans WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND chunk = ?4")?
        .execute(key)?;
    sums.retain(|_, stats| !stats.is_zero());
    let mut cells = sums.iter().peekable();
    while let Some(&(&(bucket, _), _)) = cells.peek() {
        let mut in_bucket = Vec::new();
        while let Some((&(b, key), stats)) = cells.next_if(|((b, _), _)| *b == bucket) {
            debug_assert_eq!(b, bucket);
            in_bucket.push((key, stats));
        }
        parts::fold(tx, (tenant, cuboid, grain, bucket), in_bucket.into_iter())?;
    }
    Ok(())
}

/// Folds every span (of `tenant`, or of all tenants) into its blocks.
pub fn fold_all(tx: &Transaction, tenant: Option<i64>) -> Result<()> {
    let chunks: Vec<ChunkId> = stored_spans(tx)?
        .into_keys()
        .filter(|c| tenant.is_none_or(|t| t == c.0))
        .collect();
    for chunk in chunks {
        into_blocks(tx, chunk, &[])?;
    }
    Ok(())
}

/// The cells of a span: (bucket, key, encoded stats), buckets in order; `None` once if corrupt.
pub fn entries(data: &[u8]) -> impl Iterator<Item = Option<(i64, &str, &[u8])>> {
    blocks(data).flat_map(|block| {
        let (bucket, cells) = block.unwrap_or((0, &[]));
        let corrupt = std::iter::once(None).filter(move |_| block.is_none());
        corrupt.chain(crate::block::entries(cells).map(move |e| e.map(|(key, stats)| (bucket, key, stats))))
    })
}

/// The blocks of a span: (bucket, encoded block); `None` once if corrupt.
fn blocks(mut data: &[u8]) -> impl Iterator<Item = Option<(i64, &[u8])>> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let block = (|| Some((get_varint(&mut data)?, get_bytes(&mut data)?)))();
        if block.is_none() {
            data = &[]; // corrupt: report once, then stop
        }
        Some(block)
    })
}

/// Calls `sink` with the span cells of one tenant, cuboid and grain with bucket in `[from, to)`.
pub fn read(
    conn: &Connection,
    (tenant, cuboid, grain): (i64, u8, Grain),
    from: i64,
    to: i64,
    sink: &mut dyn FnMut(i64, &str, &[u8]),
) -> Result<()> {
    if from >= to {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT data FROM cell_spans WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND chunk >= ?4 AND chunk <= ?5",
    )?;
    let mut rows = stmt.query(params![tenant, cuboid, grain as i64, chunk(grain, from), chunk(grain, to - 1)])?;
    while let Some(row) = rows.next()? {
        let data = row.get_ref(0)?.as_blob().map_err(|_| corrupt())?;
        for entry in entries(data) {
            let (bucket, key, stats) = entry.ok_or_else(corrupt)?;
            if (from..to).contains(&bucket) {
                sink(bucket, key, stats);
            }
        }
    }
    Ok(())
}

fn corrupt() -> StoreError {
    StoreError::Database("corrupt cell span".into())
}
