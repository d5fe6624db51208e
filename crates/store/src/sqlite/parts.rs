//! How a checkpoint folds one block's deltas into `cells` so that it costs what it folds, not
//! what the block holds. A block is stored as a **base** (part 0) and a few **delta parts**
//! (parts 1, 2, … in the order they were written); readers add them all up, as they add the
//! overlay, which is exact because cells are sums.
//!
//! Rewriting the whole block at every checkpoint (what the checkpoint did before) made a
//! backfill in random time order rewrite the whole rollup every 2 s — every checkpoint touches
//! nearly every block of its 90 days — so ingest slowed as history grew (7% of the in-order
//! rate at 1M calls). Now a checkpoint writes a block's deltas as a new part, merged
//! size-tiered, as log-structured stores merge their runs:
//! - the new part first absorbs the newest parts that are not larger than what it holds so far
//!   (a binary counter: a cell is rewritten once per doubling, and a block has O(log) parts);
//! - the parts are merged into the base once they hold half the base's bytes (so the base is
//!   rewritten once per 1.5× growth, and readers read at most 1.5× the base), or once there are
//!   more than [`MAX_PARTS`].

use crate::overlay::BlockId;
use crate::{Result, StoreError};
use dialboard_engine::cells::Stats;
use rusqlite::{params, Transaction};

/// The most delta parts a block keeps beside its base: a bound on the rows a reader reads per
/// bucket when the parts are tiny against the base (the size rules alone keep ~log2 of the
/// base's size over a checkpoint's part).
pub const MAX_PARTS: usize = 12;

/// What a checkpoint does with one block's deltas.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Merge the parts and the deltas into the base (rewritten, or deleted if it sums to nothing).
    IntoBase,
    /// Merge the deltas with the parts from index `from` on (none if `from` is their number)
    /// into one part that replaces them.
    Part { from: usize },
}

/// The plan for deltas of `fresh` bytes, given the sizes of the block's base (0 if it has
/// none) and of its parts, oldest first.
pub fn plan(base: usize, parts: &[usize], fresh: usize) -> Plan {
    if base == 0 {
        return Plan::IntoBase;
    }
    let (mut from, mut merged) = (parts.len(), fresh);
    while from > 0 && parts[from - 1] <= merged {
        from -= 1;
        merged += parts[from];
    }
    let in_parts: usize = parts[..from].iter().sum::<usize>() + merged;
    if 2 * in_parts >= base || from + 1 > MAX_PARTS {
        Plan::IntoBase
    } else {
        Plan::Part { from }
    }
}

/// Folds `deltas` (sorted by key, none zero) into the stored block `id`, in the checkpoint's
/// transaction. Returns the bytes written.
pub fn fold<'a>(tx: &Transaction, id: BlockId, deltas: impl Iterator<Item = (&'a str, &'a Stats)>) -> Result<usize> {
    fold_block(tx, id, crate::block::merge(&[], deltas).ok_or_else(corrupt)?)
}

/// [`fold`] of deltas already encoded as a block (`fresh`: sorted by key, none zero).
pub fn fold_block(tx: &Transaction, id: BlockId, fresh: Vec<u8>) -> Result<usize> {
    let (tenant, cuboid, grain, bucket) = id;
    let pk = params![tenant, cuboid, grain as i64, bucket];
    // (part, bytes) of what is stored, base first: the lengths only (SQLite reads a blob's
    // length from its row's header, without the blob).
    let stored: Vec<(i64, usize)> = tx
        .prepare_cached(
            "SELECT part, length(block) FROM cells \
             WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND bucket = ?4 ORDER BY part",
        )?
        .query_map(pk, |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let (base, parts) = match stored.split_first() {
        Some((&(0, bytes), parts)) => (bytes, parts),
        _ => (0, &stored[..]),
    };
    let sizes: Vec<usize> = parts.iter().map(|p| p.1).collect();
    let next = parts.last().map_or(1, |p| p.0 + 1);
    // The number of the row written: the stored rows from it on are merged into it.
    let number = match plan(base, &sizes, fresh.len()) {
        Plan::IntoBase => 0,
        Plan::Part { from } => parts.get(from).map_or(next, |p| p.0),
    };
    if !stored.iter().any(|p| p.0 >= number) {
        insert(tx, id, number, &fresh)?;
        return Ok(fresh.len());
    }
    let replaced: Vec<Vec<u8>> = tx
        .prepare_cached(
            "SELECT block FROM cells \
             WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND bucket = ?4 AND part >= ?5 ORDER BY part",
        )?
        .query_map(params![tenant, cuboid, grain as i64, bucket, number], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // The rows replaced and the deltas, cells still encoded: each is sorted by key, so a stable
    // sort merges them, and only a key found in more than one is decoded and summed.
    let mut cells: Vec<(&str, &[u8])> = replaced
        .iter()
        .map(Vec::as_slice)
        .chain([fresh.as_slice()])
        .flat_map(crate::block::entries)
        .collect::<Option<_>>()
        .ok_or_else(corrupt)?;
    cells.sort_by(|a, b| a.0.cmp(b.0));
    let block = crate::block::sum_sorted(&cells).ok_or_else(corrupt)?;
    tx.prepare_cached(
        "DELETE FROM cells WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND bucket = ?4 AND part >= ?5",
    )?
    .execute(params![tenant, cuboid, grain as i64, bucket, number])?;
    insert(tx, id, number, &block)?;
    Ok(block.len())
}

/// Stores `block` as part `number` of block `id`, unless it holds nothing.
fn insert(tx: &Transaction, id: BlockId, number: i64, block: &[u8]) -> Result<()> {
    if !block.is_empty() {
        let (tenant, cuboid, grain, bucket) = id;
        tx.prepare_cached(
            "INSERT INTO cells (tenant_id, cuboid, grain, bucket, part, block) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![tenant, cuboid, grain as i64, bucket, number, block])?;
    }
    Ok(())
}

fn corrupt() -> StoreError {
    StoreError::Database("corrupt cell block".into())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use dialboard_engine::clock::Grain;
    use dialboard_engine::histogram::Histogram;
    use rusqlite::Connection;
    use std::collections::BTreeMap;

    #[test]
    fn a_new_part_absorbs_the_newest_parts_not_larger_than_itself() {
        assert_eq!(plan(0, &[], 10), Plan::IntoBase, "a block without a base gets one");
        assert_eq!(plan(1_000, &[], 10), Plan::Part { from: 0 });
        assert_eq!(plan(1_000, &[10], 10), Plan::Part { from: 0 }, "10 + 10");
        assert_eq!(plan(1_000, &[40, 20], 10), Plan::Part { from: 2 }, "a new part");
        assert_eq!(
            plan(1_000, &[40, 20, 10], 10),
            Plan::Part { from: 0 },
            "10 + 10 + 20 + 40"
        );
        assert_eq!(plan(1_000, &[80, 20, 10], 10), Plan::Part { from: 1 }, "40 < 80");
    }

    #[test]
    fn parts_go_into_the_base_at_half_its_size_or_past_the_count() {
        assert_eq!(plan(100, &[30], 20), Plan::IntoBase, "50 of 100");
        assert_eq!(plan(100, &[30], 19), Plan::Part { from: 1 });
        let many: Vec<usize> = (0..MAX_PARTS).map(|i| 1 << (MAX_PARTS - i)).collect();
        assert_eq!(plan(1 << 30, &many, 1), Plan::IntoBase, "{} parts", MAX_PARTS + 1);
    }

    /// One call's worth of `calls` with talk time `talk` (the spans' tests use it too).
    pub(in crate::sqlite) fn stats(calls: i64, talk: i64) -> Stats {
        let mut s = Stats::default();
        s.c[0] = calls;
        s.durations = Histogram::single(talk, calls);
        s
    }

    /// Sums every stored row of each block, as readers do.
    fn read(conn: &Connection) -> BTreeMap<(i64, String), Stats> {
        let mut out: BTreeMap<(i64, String), Stats> = BTreeMap::new();
        let mut stmt = conn.prepare("SELECT bucket, block FROM cells").unwrap();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let bucket: i64 = row.get(0).unwrap();
            for entry in crate::block::entries(row.get_ref(1).unwrap().as_blob().unwrap()) {
                let (key, bytes) = entry.unwrap();
                let s = Stats::from_bytes(bytes).unwrap();
                out.entry((bucket, key.to_string())).or_default().merge(&s, 1);
            }
        }
        out.retain(|_, s| !s.is_zero());
        out
    }

    /// A repeatable xorshift generator: `random()(n)` is below `n`.
    pub(in crate::sqlite) fn random() -> impl FnMut(u64) -> u64 {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    pub(in crate::sqlite) fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn checkpoint(conn: &mut Connection, deltas: &BTreeMap<(i64, String), Stats>) -> usize {
        let tx = conn.transaction().unwrap();
        let mut written = 0;
        let mut buckets: Vec<i64> = deltas.keys().map(|k| k.0).collect();
        buckets.dedup();
        for bucket in buckets {
            let cells = deltas.range((bucket, String::new())..(bucket + 1, String::new()));
            written += fold(
                &tx,
                (1, 0, Grain::Quarter, bucket),
                cells.map(|((_, k), s)| (k.as_str(), s)),
            )
            .unwrap();
        }
        tx.commit().unwrap();
        written
    }

    /// Checkpoints of cells of random blocks, with retractions (corrections) of cells stored
    /// earlier: after each, the rows of each block add up to every delta so far, the parts stay
    /// few, and a block that sums to nothing is deleted.
    #[test]
    fn the_parts_of_a_block_add_up_to_its_deltas() {
        let mut conn = store();
        let mut expected: BTreeMap<(i64, String), Stats> = BTreeMap::new();
        let mut random = random();
        for round in 0..400 {
            let mut deltas: BTreeMap<(i64, String), Stats> = BTreeMap::new();
            for _ in 0..random(30) {
                let cell = (random(8) as i64 * 900, format!("agent-{:03}", random(40)));
                let delta = match expected.get(&cell) {
                    // A correction moves a stored call away.
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
            checkpoint(&mut conn, &deltas);
            assert_eq!(read(&conn), expected, "after checkpoint {round}");
            let most: i64 = conn
                .query_row("SELECT coalesce(max(part), 0) FROM cells", [], |r| r.get(0))
                .unwrap();
            assert!(most as usize <= MAX_PARTS + 1, "part {most}");
        }
        // Retract everything: every block sums to nothing and its rows go.
        let all: BTreeMap<(i64, String), Stats> = expected
            .iter()
            .map(|(cell, s)| {
                let mut minus = Stats::default();
                minus.merge(s, -1);
                (cell.clone(), minus)
            })
            .collect();
        checkpoint(&mut conn, &all);
        let rows: i64 = conn.query_row("SELECT count(*) FROM cells", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 0, "blocks that sum to nothing are deleted");
    }

    /// A block that grows by the same few cells at every checkpoint (the newest quarter of calls
    /// in time order; every block of a backfill in random order) has each cell rewritten a few
    /// times, not at every checkpoint: rewriting the whole block each time wrote ~n²/2 deltas'
    /// worth for n checkpoints.
    #[test]
    fn a_checkpoint_costs_what_it_folds() {
        let mut conn = store();
        let (mut written, mut folded) = (0, 0);
        let n = 1_000;
        for i in 0..n {
            let deltas: BTreeMap<(i64, String), Stats> =
                [((0, format!("key-{i:06}")), stats(1, i))].into_iter().collect();
            folded += crate::block::merge(&[], deltas.iter().map(|((_, k), s)| (k.as_str(), s)))
                .unwrap()
                .len();
            written += checkpoint(&mut conn, &deltas);
        }
        let rewrites = written as f64 / folded as f64;
        assert!(
            rewrites < 16.0,
            "each cell written {rewrites:.1} times over {n} checkpoints"
        );
    }
}
