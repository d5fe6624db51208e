//! Cell deltas not yet folded into the cells table. Each ingest transaction writes its merged
//! deltas as one durable row (cheap: no per-cell read-modify-write on the hot path); a
//! checkpoint later folds them into the cells. Queries add the overlay to the stored cells,
//! which is exact because cells are sums.

use dialboard_engine::cells::{get_bytes, get_varint, put_bytes, put_varint, CellId, Stats};
use dialboard_engine::clock::Grain;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// The Fx hash (rustc's): cell ids are produced by the engine, not chosen by clients, so
/// SipHash's flooding resistance buys nothing on this hot path.
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Deltas of one transaction, by tenant and cell.
#[derive(Debug, Default)]
pub struct DeltaMap(pub HashMap<(i64, CellId), Stats, BuildHasherDefault<FxHasher>>);

impl DeltaMap {
    pub fn add(&mut self, tenant_id: i64, id: CellId, stats: &Stats, sign: i64) {
        self.0.entry((tenant_id, id)).or_default().merge(stats, sign);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 24);
        for ((tenant, id), stats) in &self.0 {
            if stats.is_zero() {
                continue;
            }
            put_varint(&mut out, *tenant);
            put_varint(&mut out, id.cuboid as i64);
            put_varint(&mut out, id.grain as i64);
            put_varint(&mut out, id.bucket);
            put_bytes(&mut out, id.key.as_bytes());
            stats.encode(&mut out);
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
            let key = String::from_utf8(get_bytes(&mut input)?.to_vec()).ok()?;
            let stats = Stats::decode(&mut input)?;
            map.add(
                tenant,
                CellId {
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

/// Ordered by tenant, cuboid, grain and bucket, so a query reads a range.
type OverlayKey = (i64, u8, Grain, i64, String);

#[derive(Debug, Default)]
pub struct Overlay {
    cells: BTreeMap<OverlayKey, Stats>,
}

impl Overlay {
    pub fn merge(&mut self, deltas: DeltaMap) {
        for ((tenant, id), stats) in deltas.0 {
            let key = (tenant, id.cuboid, id.grain, id.bucket, id.key);
            let entry = self.cells.entry(key.clone()).or_default();
            entry.merge(&stats, 1);
            if entry.is_zero() {
                self.cells.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn clear(&mut self) {
        self.cells.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&OverlayKey, &Stats)> {
        self.cells.iter()
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
        let lo = (tenant, cuboid, grain, from, String::new());
        let hi = (tenant, cuboid, grain, to, String::new());
        self.cells.range(lo..hi).map(|(k, s)| (k.3, k.4.as_str(), s))
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

    #[test]
    fn deltas_round_trip_and_cancel() {
        let mut stats = Stats::default();
        stats.c[0] = 3;
        let id = CellId {
            cuboid: 1,
            grain: Grain::Hour,
            bucket: 3600,
            key: "a\u{1f}t\u{1f}Busy".into(),
        };
        let mut d = DeltaMap::default();
        d.add(7, id.clone(), &stats, 1);
        let back = DeltaMap::decode(&d.encode()).unwrap();
        assert_eq!(back.0[&(7, id.clone())], stats);
        let mut overlay = Overlay::default();
        overlay.merge(back);
        assert_eq!(overlay.range(7, 1, Grain::Hour, 0, 7200).count(), 1);
        let mut minus = DeltaMap::default();
        minus.add(7, id, &stats, -1);
        overlay.merge(minus);
        assert!(overlay.is_empty(), "a retraction that cancels removes the cell");
    }
}
