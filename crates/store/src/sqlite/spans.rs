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
use std::collections::HashMap;

/// Buckets per chunk: a day of quarters, four days of hours, 96 days, weeks or months.
const CHUNK_BUCKETS: i64 = 96;
/// The most spans a chunk keeps: the bound on the rows a reader reads per chunk beside its
/// blocks, and the number of checkpoints a block row of a sparse chunk gathers (plus one).
pub const MAX_SPANS: usize = 8;
/// Cells a block a checkpoint's deltas of a chunk must average to go straight into its blocks.
/// At 8, the blocks of such chunks (days and some hours in random order) still took 18% of the
/// writer's time against 5% for folding the spans (`perf`, random order at 1M calls).
const DENSE_CELLS: usize = 32;

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
    let mut stmt = tx.prepare_cached(
        "SELECT tenant_id, cuboid, grain, chunk, count(*), max(span) FROM cell_spans GROUP BY 1, 2, 3, 4",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next()? {
        let grain = Grain::from_i64(row.get(2)?).ok_or_else(corrupt)?;
        let count: i64 = row.get(4)?;
        out.insert(
            (row.get(0)?, row.get(1)?, grain, row.get(3)?),
            (count as usize, row.get(5)?),
        );
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
            put_bytes(
                &mut data,
                &crate::block::merge(&[], cells.iter().copied()).ok_or_else(corrupt)?,
            );
        }
        let (tenant, cuboid, grain, chunk) = id;
        tx.prepare_cached(
            "INSERT INTO cell_spans (tenant_id, cuboid, grain, chunk, span, first_bucket, data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            tenant,
            cuboid,
            grain as i64,
            chunk,
            last + 1,
            group[0].0 .3,
            data
        ])?;
        return Ok(());
    }
    into_blocks(tx, id, group)
}

/// Folds the chunk's spans and `group` (its deltas, if any) into its blocks and deletes the spans.
///
/// The cells stay encoded: sorted by (bucket, key), a cell found once (most of them: a
/// backfill in random order gives a cell a call or two over the chunk's nine checkpoints) is
/// copied into its block as it is, and only a cell found several times is decoded and summed.
/// Decoding every cell into a map of sums and encoding it again was 27% of the writer's time
/// in random order at 1M calls (`perf`, bench/README.md).
fn into_blocks(tx: &Transaction, id: ChunkId, group: &[(BlockId, Vec<(&str, &Stats)>)]) -> Result<()> {
    let (tenant, cuboid, grain, chunk) = id;
    let key = params![tenant, cuboid, grain as i64, chunk];
    let spans: Vec<Vec<u8>> = tx
        .prepare_cached(
            "SELECT data FROM cell_spans WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND chunk = ?4",
        )?
        .query_map(key, |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // The group's deltas, encoded as the spans' cells are.
    let fresh: Vec<(i64, Vec<u8>)> = group
        .iter()
        .map(|(block, cells)| Some((block.3, crate::block::merge(&[], cells.iter().copied())?)))
        .collect::<Option<_>>()
        .ok_or_else(corrupt)?;
    let mut cells: Vec<(i64, &str, &[u8])> = Vec::new();
    for data in &spans {
        for entry in entries(data) {
            cells.push(entry.ok_or_else(corrupt)?);
        }
    }
    for (bucket, block) in &fresh {
        for entry in crate::block::entries(block) {
            let (key, bytes) = entry.ok_or_else(corrupt)?;
            cells.push((*bucket, key, bytes));
        }
    }
    tx.prepare_cached("DELETE FROM cell_spans WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND chunk = ?4")?
        .execute(key)?;
    cells.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut rest = &cells[..];
    while let Some(&(bucket, _, _)) = rest.first() {
        let n = rest.iter().take_while(|c| c.0 == bucket).count();
        let in_bucket: Vec<(&str, &[u8])> = rest[..n].iter().map(|c| (c.1, c.2)).collect();
        let block = crate::block::sum_sorted(&in_bucket).ok_or_else(corrupt)?;
        rest = &rest[n..];
        if !block.is_empty() {
            parts::fold_block(tx, (tenant, cuboid, grain, bucket), block)?;
        }
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
    let mut rows = stmt.query(params![
        tenant,
        cuboid,
        grain as i64,
        chunk(grain, from),
        chunk(grain, to - 1)
    ])?;
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

#[cfg(test)]
mod tests {
    use super::super::parts::tests::{random, stats, store};
    use super::*;
    use std::collections::BTreeMap;

    type Cells = BTreeMap<(u8, i64, String), Stats>;

    /// What a reader sees of cuboid `cuboid`'s quarter cells in `[from, to)`: blocks and spans.
    fn read_range(conn: &Connection, cuboid: u8, from: i64, to: i64) -> Cells {
        let mut out = Cells::new();
        let mut add = |bucket: i64, key: &str, bytes: &[u8]| {
            let s = Stats::from_bytes(bytes).unwrap();
            out.entry((cuboid, bucket, key.to_string())).or_default().merge(&s, 1);
        };
        let mut stmt = conn
            .prepare("SELECT bucket, block FROM cells WHERE cuboid = ?1 AND bucket >= ?2 AND bucket < ?3")
            .unwrap();
        let mut rows = stmt.query(params![cuboid, from, to]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for entry in crate::block::entries(row.get_ref(1).unwrap().as_blob().unwrap()) {
                let (key, bytes) = entry.unwrap();
                add(row.get(0).unwrap(), key, bytes);
            }
        }
        read(conn, (1, cuboid, Grain::Quarter), from, to, &mut add).unwrap();
        out.retain(|_, s| !s.is_zero());
        out
    }

    fn read_all(conn: &Connection) -> Cells {
        let mut out = read_range(conn, 0, i64::MIN, i64::MAX);
        out.extend(read_range(conn, 1, i64::MIN, i64::MAX));
        out
    }

    fn checkpoint_of(conn: &mut Connection, deltas: &Cells) {
        let tx = conn.transaction().unwrap();
        let mut blocks: BTreeMap<BlockId, Vec<(&str, &Stats)>> = BTreeMap::new();
        for ((cuboid, bucket, key), s) in deltas {
            blocks
                .entry((1, *cuboid, Grain::Quarter, *bucket))
                .or_default()
                .push((key, s));
        }
        checkpoint(&tx, blocks.into_iter().map(|(id, cells)| (id, cells.into_iter()))).unwrap();
        tx.commit().unwrap();
    }

    fn rows(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// Checkpoints of sparse cells over three days (cuboid 1: spans) and dense ones (cuboid 0:
    /// straight into blocks), with retractions of cells stored earlier (corrections): after
    /// each, blocks plus spans add up to every delta so far, in any range of buckets; no chunk
    /// has more than `MAX_SPANS` spans; and once all are folded, the blocks alone do.
    #[test]
    fn blocks_and_spans_add_up_to_the_deltas() {
        let mut conn = store();
        let mut expected = Cells::new();
        let mut random = random();
        let day = 86_400;
        for round in 0..300 {
            let mut deltas = Cells::new();
            let dense_bucket = random(3 * 96) as i64 * 900;
            for agent in 0..DENSE_CELLS as u64 + random(8) {
                let cell = (0, dense_bucket, format!("agent-{agent:03}"));
                deltas.insert(cell, stats(1, 60 * random(4) as i64));
            }
            for _ in 0..random(40) {
                let cell = (1, random(3 * 96) as i64 * 900, format!("agent-{:03}", random(40)));
                let delta = match expected.get(&cell) {
                    Some(had) if random(3) == 0 => stats(-had.c[0].min(1), 60),
                    _ => stats(1, 60 * random(4) as i64),
                };
                deltas.entry(cell).or_default().merge(&delta, 1);
            }
            deltas.retain(|_, s| !s.is_zero());
            for (cell, delta) in &deltas {
                expected.entry(cell.clone()).or_default().merge(delta, 1);
            }
            expected.retain(|_, s| !s.is_zero());
            checkpoint_of(&mut conn, &deltas);
            assert_eq!(read_all(&conn), expected, "after checkpoint {round}");
            let (from, to) = (random(3 * day) as i64, random(3 * day) as i64);
            let in_range: Cells = expected
                .iter()
                .filter(|((c, b, _), _)| *c == 1 && (from..to).contains(b))
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect();
            assert_eq!(read_range(&conn, 1, from, to), in_range, "[{from}, {to})");
            let most: i64 = conn
                .query_row(
                    "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM cell_spans GROUP BY cuboid, chunk)",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(most as usize <= MAX_SPANS, "{most} spans in a chunk");
        }
        assert!(rows(&conn, "cell_spans") > 0, "sparse cells wait in spans");
        let spans_of_dense: i64 = conn
            .query_row("SELECT count(*) FROM cell_spans WHERE cuboid = 0", [], |r| r.get(0))
            .unwrap();
        assert_eq!(spans_of_dense, 0, "dense blocks are folded straight");
        let tx = conn.transaction().unwrap();
        fold_all(&tx, None).unwrap();
        tx.commit().unwrap();
        assert_eq!(rows(&conn, "cell_spans"), 0);
        assert_eq!(read_all(&conn), expected, "all folded into blocks");
    }

    /// A sparse checkpoint (a cell in each of a day's quarters, the shape of a backfill in
    /// random order) writes one row for the day, not 96; the checkpoint after `MAX_SPANS`
    /// folds them into one row per block.
    #[test]
    fn a_sparse_checkpoint_writes_a_row_per_chunk() {
        let mut conn = store();
        for round in 0..=MAX_SPANS as i64 {
            let deltas: Cells = (0..96)
                .map(|q| ((1, q * 900, format!("agent-{round}")), stats(1, 60)))
                .collect();
            checkpoint_of(&mut conn, &deltas);
            let (spans, blocks) = (rows(&conn, "cell_spans"), rows(&conn, "cells"));
            if round < MAX_SPANS as i64 {
                assert_eq!((spans, blocks), (round + 1, 0), "after checkpoint {round}");
            } else {
                assert_eq!((spans, blocks), (0, 96), "the spans folded");
            }
        }
        let cells = read_all(&conn);
        assert_eq!(cells.len(), 96 * (MAX_SPANS + 1));
    }

    #[test]
    fn chunks_are_in_bucket_order() {
        for grain in Grain::ALL {
            let buckets = [-90 * 86_400, -1, 0, 1, 899, 900, 86_399, 86_400, 400 * 86_400];
            for pair in buckets.windows(2) {
                assert!(chunk(grain, pair[0]) <= chunk(grain, pair[1]));
            }
        }
        assert_eq!(chunk(Grain::Quarter, 95 * 900), 0);
        assert_eq!(chunk(Grain::Quarter, 96 * 900), 1);
        assert_eq!(chunk(Grain::Quarter, -1), -1);
    }
}
