//! Week and month cells summed from day cells, for a database written before a cuboid kept
//! its coarse grains (`cells::AGENT_WEEKS`). Summing the stored days (rather than replaying
//! raw calls) gives the weeks exactly what the days answer, also where retention has purged
//! the raw calls but kept their day cells.

use crate::{Result, StoreError};
use dialboard_engine::cells::{Stats, COARSE_GRAINS};
use dialboard_engine::clock::{Clock, Grain};
use std::collections::BTreeMap;

/// The coarse bucket being summed for one grain, and its cells by key.
struct Open {
    grain: Grain,
    bucket: Option<i64>,
    cells: BTreeMap<String, Stats>,
}

/// A finished week or month: its grain, bucket and encoded block.
pub type CoarseBlock = (Grain, i64, Vec<u8>);

/// Sums day blocks, given in bucket order (several blocks of one day are added together), into
/// a block per week and per month of `clock`, pushed to `out` as each is complete. Only one
/// week and one month are held at a time.
pub struct CoarseSums<'c> {
    clock: &'c Clock,
    open: Vec<Open>,
}

impl<'c> CoarseSums<'c> {
    pub fn new(clock: &'c Clock) -> Self {
        let open = COARSE_GRAINS
            .iter()
            .map(|&grain| Open {
                grain,
                bucket: None,
                cells: BTreeMap::new(),
            })
            .collect();
        CoarseSums { clock, open }
    }

    /// Adds the day block starting at `day`.
    pub fn add_day(&mut self, day: i64, block: &[u8], out: &mut Vec<CoarseBlock>) -> Result<()> {
        let corrupt = || StoreError::Database("corrupt cell block".into());
        for open in &mut self.open {
            let bucket = self.clock.cell_start(open.grain, day);
            if open.bucket != Some(bucket) {
                flush(open, out);
                open.bucket = Some(bucket);
            }
            for entry in crate::block::entries(block) {
                let (key, bytes) = entry.ok_or_else(corrupt)?;
                let stats = Stats::from_bytes(bytes).ok_or_else(corrupt)?;
                match open.cells.get_mut(key) {
                    Some(sum) => sum.merge(&stats, 1),
                    None => {
                        open.cells.insert(key.to_string(), stats);
                    }
                }
            }
        }
        Ok(())
    }

    /// Emits the weeks and months still open.
    pub fn finish(mut self, out: &mut Vec<CoarseBlock>) {
        for open in &mut self.open {
            flush(open, out);
        }
    }
}

fn flush(open: &mut Open, out: &mut Vec<CoarseBlock>) {
    let cells = std::mem::take(&mut open.cells);
    if let Some(bucket) = open.bucket {
        let block = crate::block::merge(&[], cells.iter().map(|(k, s)| (k.as_str(), s)))
            .expect("an empty block is never corrupt");
        if !block.is_empty() {
            out.push((open.grain, bucket, block));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialboard_engine::cells::put_bytes;

    fn block(cells: &[(&str, i64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, calls) in cells {
            let mut s = Stats::default();
            s.c[0] = *calls;
            put_bytes(&mut out, key.as_bytes());
            put_bytes(&mut out, &s.to_bytes());
        }
        out
    }

    fn calls(block: &[u8]) -> Vec<(String, i64)> {
        crate::block::entries(block)
            .map(|e| e.unwrap())
            .map(|(k, b)| (k.to_string(), Stats::from_bytes(b).unwrap().c[0]))
            .collect()
    }

    #[test]
    fn days_add_up_to_their_weeks_and_months() {
        let clock = Clock::new("America/New_York").unwrap();
        let day = |d: &str| clock.date_start(d.parse().unwrap());
        let mut sums = CoarseSums::new(&clock);
        let mut emit = Vec::new();
        // Sunday 2026-03-08 is the first day of summer time, the last of its week.
        sums.add_day(day("2026-03-07"), &block(&[("a", 1), ("b", 2)]), &mut emit)
            .unwrap();
        sums.add_day(day("2026-03-08"), &block(&[("a", 4)]), &mut emit).unwrap();
        sums.add_day(day("2026-03-08"), &block(&[("b", -2)]), &mut emit)
            .unwrap();
        sums.add_day(day("2026-03-09"), &block(&[("c", 8)]), &mut emit).unwrap();
        sums.finish(&mut emit);
        let out: Vec<_> = emit
            .into_iter()
            .map(|(g, bucket, block)| (g, bucket, calls(&block)))
            .collect();
        let s = |v: &[(&str, i64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect::<Vec<_>>();
        assert_eq!(
            out,
            vec![
                (Grain::Week, day("2026-03-02"), s(&[("a", 5)])),
                (Grain::Week, day("2026-03-09"), s(&[("c", 8)])),
                (Grain::Month, day("2026-03-01"), s(&[("a", 5), ("c", 8)])),
            ]
        );
    }
}
