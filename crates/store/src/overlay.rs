//! Cell deltas not yet folded into the cells table. Each ingest transaction writes its merged
//! deltas as one durable row (cheap: no per-cell read-modify-write on the hot path); a
//! checkpoint later folds them into the cells. Queries add the overlay to the stored cells,
//! which is exact because cells are sums.
//!
//! Both maps are keyed first by block — (tenant, cuboid, grain, bucket), a few integers — and
//! then by the cell's key string, kept in the cell when short (else allocated when the cell is
//! first seen). A key's
//! hash is computed once, when its delta is added, and kept beside it: growing a table and
//! merging a transaction's deltas into the overlay never hash a string again (hashing keys was
//! 16% of the merge thread when the maps rehashed them).

use dialboard_engine::cells::{
    self, coarse_bucket, get_bytes, get_varint, put_bytes, put_varint, summed_from_hours, CellRef, Stats,
};
use dialboard_engine::clock::{Clock, Grain};
use dialboard_engine::fxhash::{Fx, FxHasher};
use hashbrown::HashTable;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;

/// A block of cells: tenant, cuboid, grain, bucket.
pub type BlockId = (i64, u8, Grain, i64);

/// One cell of a block. `Stats` is 320 bytes: boxed, a table's inserts and rehashes move a
/// pointer instead. That took ingest at 1M calls from 28k to 37k calls/s (and the server's
/// memory at 100k calls from 605 to 243 MB: the tables' empty slots were full-size).
#[derive(Debug)]
struct Cell {
    /// [`key_hash`] of `key`.
    hash: u64,
    key: Key,
    stats: Box<Stats>,
}

/// Bytes of a key kept in the cell itself: a cell is then 64 bytes, and ids of a few dozen
/// characters (an agent, a team and a disposition) fit.
const INLINE_KEY: usize = 46;

/// A cell's key: in the cell when it is short, saving an allocation and a free per new cell of
/// a transaction's deltas (a third of the merge thread's allocations), else on the heap.
#[derive(Debug, Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<str>),
}

impl Key {
    fn new(key: &str) -> Key {
        match key.len() {
            len @ 0..=INLINE_KEY => {
                let mut bytes = [0; INLINE_KEY];
                bytes[..len].copy_from_slice(key.as_bytes());
                Key::Inline { len: len as u8, bytes }
            }
            _ => Key::Heap(key.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(key) => key.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("a key is made from a str")
    }

    fn is(&self, key: &str) -> bool {
        self.as_bytes() == key.as_bytes()
    }
}

/// The cells of one block.
///
/// A block starts empty and grows as its cells come. Calls in time order put dozens to
/// thousands of cells in each of a few blocks, but a backfill in random time order puts one or
/// two in each of tens of thousands (every quarter, hour and day of its range, per cuboid): blocks
/// sized for 128 cells took ~8 KB each, 300–500 MB for one transaction's deltas and the overlay.
/// Growing costs little, as the stats are boxed and the hashes kept.
type Cells = HashTable<Cell>;

fn key_hash(key: &str) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// Adds `sign × stats` to the cell of `key` (whose hash is `hash`) in `cells`; a cell that
/// becomes zero is removed. A new cell's stats take a box from `spare` if it has one.
fn add_to(cells: &mut Cells, spare: &mut Spare, hash: u64, key: &str, stats: &Stats, sign: i64) {
    add_keyed(cells, spare, hash, |k| k.is(key), || Key::new(key), stats, sign)
}

/// [`add_to`] for a key that `is_key` recognizes and `new_key` makes.
#[inline]
fn add_keyed(
    cells: &mut Cells,
    spare: &mut Spare,
    hash: u64,
    is_key: impl Fn(&Key) -> bool,
    new_key: impl FnOnce() -> Key,
    stats: &Stats,
    sign: i64,
) {
    match cells.find_entry(hash, |c| c.hash == hash && is_key(&c.key)) {
        Ok(mut entry) => {
            let existing = &mut entry.get_mut().stats;
            existing.merge(stats, sign);
            if existing.is_zero() {
                spare.keep(entry.remove().0.stats);
            }
        }
        Err(absent) => {
            let fresh = spare.holding(stats, sign);
            if fresh.is_zero() {
                spare.keep(fresh);
            } else {
                let cell = Cell {
                    hash,
                    key: new_key(),
                    stats: fresh,
                };
                absent.into_table().insert_unique(hash, cell, |c| c.hash);
            }
        }
    }
}

/// Boxes of stats no cell holds any more, for new cells: a transaction's delta cells that the
/// overlay's merge adds to its own are freed there, and as many new cells of the next
/// transaction's deltas allocated. Allocating and freeing them was a large part of the merge
/// thread (with the page faults of the allocator handing back, then touching again, the pages
/// they were in).
// The boxes themselves are what is kept: each goes to a new cell whole.
#[allow(clippy::vec_box)]
#[derive(Debug, Default)]
pub struct Spare(Vec<Box<Stats>>);

/// Most boxes kept spare (~5 MB): a transaction's worth of calls in time order frees a few
/// thousand; a backfill in random order frees few until a checkpoint folds the overlay.
const MOST_SPARE: usize = 16_384;

impl Spare {
    /// Keeps `stats`' box for a new cell, if not enough are kept already.
    fn keep(&mut self, stats: Box<Stats>) {
        if self.0.len() < MOST_SPARE {
            self.0.push(stats);
        }
    }

    /// A box holding `sign × stats`: a kept one, overwritten, else a new one.
    fn holding(&mut self, stats: &Stats, sign: i64) -> Box<Stats> {
        match (self.0.pop(), sign) {
            (Some(mut kept), 1) => {
                Stats::clone_from(&mut kept, stats);
                kept
            }
            (None, 1) => Box::new(stats.clone()),
            (kept, _) => {
                let mut fresh = kept.unwrap_or_default();
                *fresh = Stats::default();
                fresh.merge(stats, sign);
                fresh
            }
        }
    }

    /// The boxes kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps `other`'s boxes too.
    pub fn keep_all(&mut self, other: Spare) {
        for stats in other.0 {
            self.keep(stats);
        }
    }
}

/// A block's cells in key order (the order blocks are stored in).
fn sorted(cells: &Cells) -> impl Iterator<Item = (&str, &Stats)> {
    let mut sorted: Vec<(&str, &Stats)> = cells.iter().map(|c| (c.key.as_str(), &*c.stats)).collect();
    sorted.sort_unstable_by_key(|e| e.0);
    sorted.into_iter()
}

/// Cuboid ids below this get a hint of their blocks' size (every cuboid's, today).
const HINTED_CUBOIDS: usize = 16;
/// Kinds of block (cuboid and grain) a hint is kept for.
const BLOCK_KINDS: usize = HINTED_CUBOIDS * Grain::ALL.len();

/// The kind of a block, for its size hint (`None`: no hint).
fn block_kind(id: &BlockId) -> Option<usize> {
    let cuboid = id.1 as usize;
    (cuboid < HINTED_CUBOIDS).then_some(cuboid * Grain::ALL.len() + id.2 as usize)
}

/// Deltas of one transaction.
#[derive(Debug)]
pub struct DeltaMap {
    blocks: HashMap<BlockId, Cells, Fx>,
    /// The last key added and its hash: a contribution adds the same key to each grain's block
    /// in turn.
    last_key: (String, u64),
    /// Room a new block of each kind is made with: what the previous transaction's blocks of
    /// that kind held on average ([`DeltaMap::take`]). A table grown from empty to a hundred
    /// cells rehashed six times (6% of the merge thread). The mean, not the largest: a backfill
    /// in random order puts one or two cells in each of tens of thousands of blocks.
    room: [u32; BLOCK_KINDS],
    /// Boxes for new cells' stats, given back by the overlay ([`DeltaMap::reuse`]).
    spare: Spare,
}

impl Default for DeltaMap {
    fn default() -> Self {
        DeltaMap {
            blocks: HashMap::default(),
            last_key: Default::default(),
            room: [0; BLOCK_KINDS],
            spare: Spare::default(),
        }
    }
}

impl DeltaMap {
    /// Hands over the deltas added so far and starts again empty, making room in each new block
    /// for as many cells as the blocks of its kind held in the deltas handed over.
    pub fn take(&mut self) -> DeltaMap {
        let (mut cells, mut blocks) = ([0usize; BLOCK_KINDS], [0usize; BLOCK_KINDS]);
        for (id, block) in &self.blocks {
            if let Some(kind) = block_kind(id) {
                cells[kind] += block.len();
                blocks[kind] += 1;
            }
        }
        for ((room, cells), blocks) in self.room.iter_mut().zip(cells).zip(blocks) {
            if let Some(mean) = cells.checked_div(blocks) {
                *room = mean as u32;
            }
        }
        DeltaMap {
            blocks: std::mem::take(&mut self.blocks),
            last_key: std::mem::take(&mut self.last_key),
            room: self.room,
            spare: Spare::default(),
        }
    }

    /// Makes new cells in the boxes `spare` holds before allocating any.
    pub fn reuse(&mut self, spare: Spare) {
        self.spare.keep_all(spare);
    }

    pub fn add(&mut self, tenant_id: i64, cell: CellRef, stats: &Stats, sign: i64) {
        if self.last_key.0 != cell.key {
            self.last_key.0.clear();
            self.last_key.0.push_str(cell.key);
            self.last_key.1 = key_hash(cell.key);
        }
        let id = (tenant_id, cell.cuboid, cell.grain, cell.bucket);
        let room = block_kind(&id).map_or(0, |kind| self.room[kind] as usize);
        let block = self.blocks.entry(id).or_insert_with(|| Cells::with_capacity(room));
        add_to(block, &mut self.spare, self.last_key.1, cell.key, stats, sign);
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.values().all(Cells::is_empty)
    }

    /// Adds every hour cell to the cells of its cuboid's grains summed from hours (day, week,
    /// month: [`summed_from_hours`]), in the zone `clocks` gives for its tenant. For deltas
    /// whose records were added up to the hour only ([`Grains::UpToHour`]), and once: a cell
    /// added at those grains before would be counted twice.
    ///
    /// [`Grains::UpToHour`]: dialboard_engine::cells::Grains::UpToHour
    pub fn add_coarse_from_hours(&mut self, clocks: &[(i64, &Clock)]) {
        let hours: Vec<BlockId> = self.blocks.keys().filter(|id| id.2 == Grain::Hour).copied().collect();
        // Each hour's coarse buckets, worked out once for all its cuboids.
        let mut buckets: HashMap<(i64, i64), [Option<i64>; Grain::ALL.len()], Fx> = HashMap::default();
        for id in hours {
            let (tenant, cuboid_id, _, hour) = id;
            let Some(cuboid) = cells::cuboid(cuboid_id) else {
                continue;
            };
            let clock = clocks
                .iter()
                .find(|(t, _)| *t == tenant)
                .map(|(_, clock)| *clock)
                .expect("the deltas' tenants have clocks");
            let from = self.blocks.remove(&id).expect("listed above");
            for &grain in cuboid.grains.iter().filter(|&&g| summed_from_hours(cuboid, g)) {
                let bucket = *buckets.entry((tenant, hour)).or_default()[grain as usize]
                    .get_or_insert_with(|| coarse_bucket(clock, grain, hour));
                let target = (tenant, cuboid_id, grain, bucket);
                let room = block_kind(&target).map_or(0, |kind| self.room[kind] as usize);
                let into = self.blocks.entry(target).or_insert_with(|| Cells::with_capacity(room));
                for cell in &from {
                    let is_key = |k: &Key| k.as_bytes() == cell.key.as_bytes();
                    add_keyed(
                        into,
                        &mut self.spare,
                        cell.hash,
                        is_key,
                        || cell.key.clone(),
                        &cell.stats,
                        1,
                    );
                }
            }
            self.blocks.insert(id, from);
        }
    }

    /// Each block with its cells sorted by key.
    pub fn blocks(&self) -> impl Iterator<Item = (BlockId, impl Iterator<Item = (&str, &Stats)>)> {
        self.blocks.iter().map(|(id, cells)| (*id, sorted(cells)))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for ((tenant, cuboid, grain, bucket), cells) in &self.blocks {
            for cell in cells {
                put_varint(&mut out, *tenant);
                put_varint(&mut out, *cuboid as i64);
                put_varint(&mut out, *grain as i64);
                put_varint(&mut out, *bucket);
                put_bytes(&mut out, cell.key.as_bytes());
                cell.stats.encode(&mut out);
            }
        }
        out
    }

    pub fn decode(mut input: &[u8]) -> Option<DeltaMap> {
        let mut map = DeltaMap::default();
        while !input.is_empty() {
            let tenant = get_varint(&mut input)?;
            let cuboid = u8::try_from(get_varint(&mut input)?).ok()?;
            let grain = Grain::from_i64(get_varint(&mut input)?)?;
            let bucket = get_varint(&mut input)?;
            let key = std::str::from_utf8(get_bytes(&mut input)?).ok()?;
            let stats = Stats::decode(&mut input)?;
            map.add(
                tenant,
                CellRef {
                    cuboid,
                    grain,
                    bucket,
                    key,
                },
                &stats,
                1,
            );
        }
        Some(map)
    }
}

#[derive(Debug, Default)]
pub struct Overlay {
    blocks: BTreeMap<BlockId, Cells>,
}

impl Overlay {
    /// Moves the deltas in: a block new to the overlay is moved whole; otherwise the smaller
    /// of the two is merged into the larger (key strings are moved, never copied). Returns the
    /// boxes of the cells merged away, for the next deltas' new cells ([`DeltaMap::reuse`]).
    pub fn merge(&mut self, deltas: DeltaMap) -> Spare {
        use std::collections::btree_map::Entry;
        let mut spare = deltas.spare;
        for (id, mut cells) in deltas.blocks {
            // No pass to drop zero cells: `add_to` never keeps one (a pass read every cell's
            // stats once more).
            debug_assert!(cells.iter().all(|c| !c.stats.is_zero()));
            let target = match self.blocks.entry(id) {
                Entry::Vacant(slot) => {
                    if !cells.is_empty() {
                        slot.insert(cells);
                    }
                    continue;
                }
                Entry::Occupied(slot) => slot.into_mut(),
            };
            if cells.len() > target.len() {
                std::mem::swap(target, &mut cells);
            }
            for cell in cells {
                match target.find_entry(cell.hash, |c| {
                    c.hash == cell.hash && c.key.as_bytes() == cell.key.as_bytes()
                }) {
                    Ok(mut entry) => {
                        let existing = &mut entry.get_mut().stats;
                        existing.merge(&cell.stats, 1);
                        if existing.is_zero() {
                            spare.keep(entry.remove().0.stats);
                        }
                        spare.keep(cell.stats);
                    }
                    Err(absent) => {
                        absent.into_table().insert_unique(cell.hash, cell, |c| c.hash);
                    }
                }
            }
            if target.is_empty() {
                self.blocks.remove(&id);
            }
        }
        spare
    }

    /// The number of cells held.
    pub fn len(&self) -> usize {
        self.blocks.values().map(Cells::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The number of blocks whose cells it holds.
    pub fn blocks_len(&self) -> usize {
        self.blocks.len()
    }

    /// Each block with its cells sorted by key, for folding into stored blocks.
    pub fn blocks(&self) -> impl Iterator<Item = (BlockId, impl Iterator<Item = (&str, &Stats)>)> {
        self.blocks.iter().map(|(id, cells)| (*id, sorted(cells)))
    }

    /// Cells of one tenant, cuboid and grain with bucket in `[from, to)`.
    pub fn range(
        &self,
        tenant: i64,
        cuboid: u8,
        grain: Grain,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = (i64, &str, &Stats)> {
        self.blocks
            .range((tenant, cuboid, grain, from)..(tenant, cuboid, grain, to))
            .flat_map(|(id, cells)| cells.iter().map(move |c| (id.3, c.key.as_str(), &*c.stats)))
    }

    pub fn min_bucket(&self, tenant: i64, cuboid: u8, grain: Grain) -> Option<i64> {
        self.range(tenant, cuboid, grain, i64::MIN, i64::MAX)
            .next()
            .map(|(b, _, _)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backfill in random time order touches tens of thousands of blocks with a cell or two
    /// each: a block takes room for the cells it holds, not for a hundred.
    #[test]
    fn a_block_takes_room_for_its_cells() {
        let mut stats = Stats::default();
        stats.c[0] = 1;
        let mut d = DeltaMap::default();
        for bucket in 0..1_000 {
            let cell = CellRef {
                cuboid: 1,
                grain: Grain::Quarter,
                bucket: bucket * 900,
                key: "agent-001",
            };
            d.add(7, cell, &stats, 1);
        }
        let room: usize = d.blocks.values().map(Cells::capacity).sum();
        assert!(room <= 4 * 1_000, "room for {room} cells in 1,000 blocks of one cell");
        let mut overlay = Overlay::default();
        overlay.merge(d);
        let room: usize = overlay.blocks.values().map(Cells::capacity).sum();
        assert!(room <= 4 * 1_000, "room for {room} cells in 1,000 blocks of one cell");
    }

    /// A new block is made with room for what the previous transaction's blocks of its kind
    /// held on average: wide after wide blocks, small after a backfill's one-cell blocks.
    #[test]
    fn new_blocks_take_the_last_transactions_size() {
        let mut stats = Stats::default();
        stats.c[0] = 1;
        let keys: Vec<String> = (0..100).map(|i| format!("agent-{i:03}")).collect();
        let quarter = |bucket, key| CellRef {
            cuboid: 1,
            grain: Grain::Quarter,
            bucket,
            key,
        };
        let mut d = DeltaMap::default();
        for bucket in 0..3 {
            keys.iter().for_each(|k| d.add(7, quarter(bucket * 900, k), &stats, 1));
        }
        let first = d.take();
        assert_eq!(first.blocks.len(), 3);
        assert!(d.blocks.is_empty());
        d.add(7, quarter(9_000, "agent-000"), &stats, 1);
        assert!(
            d.blocks.values().all(|c| c.capacity() >= 100),
            "room for the 100 cells the last blocks held"
        );
        let hour = CellRef {
            grain: Grain::Hour,
            ..quarter(3_600, "agent-000")
        };
        d.add(7, hour, &stats, 1);
        assert!(
            d.blocks.values().any(|c| c.capacity() < 100),
            "no hint for a kind not seen"
        );
        d.take();
        for bucket in 100..1_100 {
            d.add(7, quarter(bucket * 900, "agent-001"), &stats, 1);
        }
        d.take();
        d.add(7, quarter(0, "agent-000"), &stats, 1);
        assert!(
            d.blocks.values().all(|c| c.capacity() <= 4),
            "one-cell blocks leave small room"
        );
    }

    /// Keys short enough to sit in the cell and longer ones on the heap are found, listed and
    /// cancelled alike, and never taken for one another.
    #[test]
    fn short_and_long_keys() {
        let mut stats = Stats::default();
        stats.c[0] = 1;
        let keys: Vec<String> = [0, 1, INLINE_KEY - 1, INLINE_KEY, INLINE_KEY + 1, 90]
            .iter()
            .map(|&n| "k".repeat(n))
            .collect();
        let mut d = DeltaMap::default();
        for key in keys.iter().chain(&keys) {
            let cell = CellRef {
                cuboid: 1,
                grain: Grain::Hour,
                bucket: 0,
                key,
            };
            d.add(7, cell, &stats, 1);
        }
        let mut overlay = Overlay::default();
        overlay.merge(DeltaMap::decode(&d.encode()).unwrap());
        let mut found: Vec<(&str, i64)> = overlay
            .range(7, 1, Grain::Hour, 0, 1)
            .map(|(_, k, s)| (k, s.c[0]))
            .collect();
        found.sort();
        let expected: Vec<(&str, i64)> = keys.iter().map(|k| (k.as_str(), 2)).collect();
        assert_eq!(found, expected);
        let mut minus = DeltaMap::default();
        for key in &keys {
            let cell = CellRef {
                cuboid: 1,
                grain: Grain::Hour,
                bucket: 0,
                key,
            };
            minus.add(7, cell, &stats, -2);
        }
        overlay.merge(minus);
        assert!(overlay.is_empty());
    }

    /// Delta cells merged into the overlay's give their boxes back, and the next deltas' new
    /// cells take them holding only what was added to them, not what the boxes held before.
    #[test]
    fn new_cells_reuse_the_boxes_merged_away() {
        use dialboard_engine::histogram::Histogram;
        let mut stats = Stats::default();
        stats.c[0] = 5;
        stats.durations = Histogram::single(30, 5);
        let hour = |bucket, key| CellRef {
            cuboid: 1,
            grain: Grain::Hour,
            bucket,
            key,
        };
        let (mut gathering, mut overlay) = (DeltaMap::default(), Overlay::default());
        for _ in 0..2 {
            ["a", "b", "c"]
                .iter()
                .for_each(|k| gathering.add(7, hour(0, k), &stats, 1));
            let spare = overlay.merge(gathering.take());
            gathering.reuse(spare);
        }
        assert_eq!(
            gathering.spare.len(),
            3,
            "the second deltas' three cells were merged away"
        );
        let mut one = Stats::default();
        one.c[1] = 2;
        one.durations = Histogram::single(7, 1);
        gathering.add(7, hour(3_600, "d"), &one, 1);
        gathering.add(7, hour(3_600, "e"), &one, -1);
        assert_eq!(gathering.spare.len(), 1, "two new cells took a box each");
        let spare = overlay.merge(gathering.take());
        gathering.reuse(spare);
        let mut minus_one = Stats::default();
        minus_one.merge(&one, -1);
        let mut twice = Stats::default();
        twice.merge(&stats, 2);
        let mut found: Vec<(i64, &str, &Stats)> = overlay.range(7, 1, Grain::Hour, 0, 7_200).collect();
        found.sort_by_key(|e| (e.0, e.1));
        assert_eq!(
            found,
            vec![
                (0, "a", &twice),
                (0, "b", &twice),
                (0, "c", &twice),
                (3_600, "d", &one),
                (3_600, "e", &minus_one)
            ]
        );
    }

    #[test]
    fn deltas_round_trip_and_cancel() {
        let mut stats = Stats::default();
        stats.c[0] = 3;
        let cell = CellRef {
            cuboid: 1,
            grain: Grain::Hour,
            bucket: 3600,
            key: "a\u{1f}t\u{1f}Busy",
        };
        let mut d = DeltaMap::default();
        d.add(7, cell, &stats, 1);
        let back = DeltaMap::decode(&d.encode()).unwrap();
        let mut overlay = Overlay::default();
        overlay.merge(back);
        let found: Vec<_> = overlay.range(7, 1, Grain::Hour, 0, 7200).collect();
        assert_eq!(found, vec![(3600, "a\u{1f}t\u{1f}Busy", &stats)]);
        let mut minus = DeltaMap::default();
        minus.add(7, cell, &stats, -1);
        overlay.merge(minus);
        assert!(overlay.is_empty(), "a retraction that cancels removes the cell");
    }
}
