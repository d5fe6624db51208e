//! Exact histograms of integer seconds. Merging is addition, so a histogram of any union of
//! cells is exact, and percentiles computed from it equal PostgreSQL's `PERCENTILE_CONT`.

use crate::cells::{get_varint, put_varint};

/// Sorted `(value, count)` pairs with non-zero counts. Counts may be negative inside a delta
/// (a retraction); a histogram of real records never has a negative count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    entries: Vec<(i64, i64)>,
}

impl Histogram {
    pub fn from_entries(mut entries: Vec<(i64, i64)>) -> Self {
        entries.sort_unstable_by_key(|e| e.0);
        let mut h = Histogram {
            entries: Vec::with_capacity(entries.len()),
        };
        for (v, c) in entries {
            h.push_sorted(v, c);
        }
        h
    }

    pub fn single(value: i64, count: i64) -> Self {
        Histogram {
            entries: if count == 0 { vec![] } else { vec![(value, count)] },
        }
    }

    pub fn entries(&self) -> &[(i64, i64)] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn push_sorted(&mut self, value: i64, count: i64) {
        match self.entries.last_mut() {
            Some(last) if last.0 == value => {
                last.1 += count;
                if last.1 == 0 {
                    self.entries.pop();
                }
            }
            _ if count != 0 => self.entries.push((value, count)),
            _ => {}
        }
    }

    /// Appends the encoded form: the number of entries, then each value as the difference from
    /// the previous one and its count, as zigzag varints.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.entries.len() as i64);
        let mut previous = 0;
        for &(value, count) in &self.entries {
            put_varint(out, value - previous);
            put_varint(out, count);
            previous = value;
        }
    }

    /// Reads what [`Histogram::encode`] wrote; `None` if it is corrupt.
    pub fn decode(input: &mut &[u8]) -> Option<Histogram> {
        let mut entries = Vec::new();
        for_each_encoded(input, |value, count| entries.push((value, count)))?;
        Some(Histogram { entries })
    }

    /// Adds `sign × other` (sign is 1 or −1) by a linear merge of the two sorted lists.
    pub fn merge(&mut self, other: &Histogram, sign: i64) {
        // Adding one record's value (the common case on ingest): insert in place.
        if other.entries.len() <= 2 {
            for &(value, count) in &other.entries {
                match self.entries.binary_search_by_key(&value, |e| e.0) {
                    Ok(i) => {
                        self.entries[i].1 += count * sign;
                        if self.entries[i].1 == 0 {
                            self.entries.remove(i);
                        }
                    }
                    Err(i) => self.entries.insert(i, (value, count * sign)),
                }
            }
            return;
        }
        self.merge_in_place(&other.entries, sign);
    }

    /// The linear merge, in `entries`' own buffer: it grows by `other`'s length (amortized, as a
    /// `Vec` grows), the two lists are merged from the back into it, and what the merge wrote is
    /// moved down over the gap, without the counts that summed to zero. Merging into a new list
    /// allocated and freed one each time, for every cell of the overlay a transaction touched
    /// (the merge thread's garbage between two checkpoints).
    fn merge_in_place(&mut self, other: &[(i64, i64)], sign: i64) {
        let mine = self.entries.len();
        let total = mine + other.len();
        self.entries.resize(total, (0, 0));
        let entries = &mut self.entries[..];
        // Unread entries of mine are `entries[..i]`, of other `other[..j]`; the merge writes
        // downwards from `k`. `k − i` is `j` plus the values found in both, so it never writes
        // over an entry of mine not yet read.
        let (mut i, mut j, mut k) = (mine, other.len(), total);
        while j > 0 {
            let (value, count) = other[j - 1];
            k -= 1;
            if i > 0 && entries[i - 1].0 > value {
                entries[k] = entries[i - 1];
                i -= 1;
            } else if i > 0 && entries[i - 1].0 == value {
                entries[k] = (value, entries[i - 1].1 + count * sign);
                i -= 1;
                j -= 1;
            } else {
                entries[k] = (value, count * sign);
                j -= 1;
            }
        }
        // `entries[..i]` is in place; the merged `entries[k..]` follows it.
        let mut kept = i;
        for read in k..total {
            let entry = entries[read];
            if entry.1 != 0 {
                entries[kept] = entry;
                kept += 1;
            }
        }
        self.entries.truncate(kept);
    }

    pub fn total(&self) -> i64 {
        self.entries.iter().map(|e| e.1).sum()
    }

    /// `PERCENTILE_CONT(p)`: the value at fractional rank `p × (n − 1)` of the sorted values,
    /// interpolated linearly between its two neighbours. `None` when empty.
    pub fn percentile_cont(&self, p: f64) -> Option<f64> {
        let n = self.total();
        if n <= 0 {
            return None;
        }
        let position = p * (n - 1) as f64;
        let lower_rank = position.floor() as i64;
        let upper_rank = position.ceil() as i64;
        let lower = self.value_at_rank(lower_rank)?;
        let upper = if upper_rank == lower_rank {
            lower
        } else {
            self.value_at_rank(upper_rank)?
        };
        Some(lower as f64 + (position - lower_rank as f64) * (upper - lower) as f64)
    }

    /// The value of the `rank`-th smallest element (0-based).
    fn value_at_rank(&self, rank: i64) -> Option<i64> {
        let mut seen = 0;
        for &(v, c) in &self.entries {
            seen += c;
            if rank < seen {
                return Some(v);
            }
        }
        None
    }
}

/// Calls `f` with each `(value, count)` of an encoded histogram, in order, leaving `input` after
/// it; `None` if it is corrupt (truncated, values not increasing, or a zero count).
#[inline]
fn for_each_encoded(input: &mut &[u8], mut f: impl FnMut(i64, i64)) -> Option<()> {
    let entries = get_varint(input)?;
    let mut value = 0;
    for i in 0..entries {
        let step = get_varint(input)?;
        let count = get_varint(input)?;
        if (i > 0 && step <= 0) || count == 0 {
            return None;
        }
        value += step;
        f(value, count);
    }
    Some(())
}

/// A histogram as it is handed to a [`HistogramSum`]: in memory, or still encoded in a stored
/// cell (then its entries are summed as they are decoded, without an intermediate copy).
#[derive(Debug, Clone, Copy)]
pub enum HistogramRef<'a> {
    Decoded(&'a Histogram),
    Encoded(&'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// PostgreSQL's definition over a sorted list, for comparison.
    fn percentile_of_sorted(values: &[i64], p: f64) -> f64 {
        let pos = p * (values.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        values[lo] as f64 + (pos - lo as f64) * (values[hi] - values[lo]) as f64
    }

    #[test]
    fn known_postgres_values() {
        // SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM (VALUES (1),(2),(3),(10)) v(x) → 2.5
        let h = Histogram::from_entries(vec![(1, 1), (2, 1), (3, 1), (10, 1)]);
        assert_eq!(h.percentile_cont(0.5), Some(2.5));
        // percentile_cont(0.9) of the same → 7.9 (3 + 0.7 × 7)
        assert!((h.percentile_cont(0.9).unwrap() - 7.9).abs() < 1e-12);
        assert_eq!(Histogram::default().percentile_cont(0.5), None);
    }

    proptest! {
        #[test]
        fn percentiles_match_sorting(values in prop::collection::vec(0i64..5000, 1..200), p in 0.0f64..=1.0) {
            let mut sorted = values.clone();
            sorted.sort();
            let h = values.iter().fold(Histogram::default(), |mut h, &v| { h.merge(&Histogram::single(v, 1), 1); h });
            prop_assert_eq!(h.percentile_cont(p), Some(percentile_of_sorted(&sorted, p)));
        }

        /// The in-place merge against a map of counts (values shared or not, counts that cancel).
        #[test]
        fn merge_equals_adding_counts(a in prop::collection::vec((0i64..60, -3i64..4), 0..80), b in prop::collection::vec((0i64..60, -3i64..4), 0..80), sign in prop::sample::select(vec![1i64, -1])) {
            let (ha, hb) = (Histogram::from_entries(a.clone()), Histogram::from_entries(b.clone()));
            let mut model = std::collections::BTreeMap::new();
            for (v, c) in a.iter().copied().chain(b.iter().map(|&(v, c)| (v, c * sign))) {
                *model.entry(v).or_insert(0) += c;
            }
            model.retain(|_, c| *c != 0);
            let mut merged = ha;
            merged.merge(&hb, sign);
            prop_assert_eq!(merged.entries(), &model.into_iter().collect::<Vec<_>>()[..]);
        }

        #[test]
        fn retraction_undoes_addition(a in prop::collection::vec((0i64..100, 1i64..5), 0..50), b in prop::collection::vec((0i64..100, 1i64..5), 0..50)) {
            let ha = Histogram::from_entries(a);
            let hb = Histogram::from_entries(b);
            let mut sum = ha.clone();
            sum.merge(&hb, 1);
            sum.merge(&hb, -1);
            prop_assert_eq!(sum, ha);
        }
    }
}

/// Accumulates many histograms for one result row. It starts as a sparse [`Histogram`] and,
/// once it would hold more than `dense_after` distinct values, switches to a count per second
/// (no re-allocation per merge), so summing hundreds of day cells costs their size, not their
/// number times the running size.
#[derive(Debug, Clone)]
pub struct HistogramSum {
    sparse: Histogram,
    dense: Dense,
    dense_after: usize,
}

/// Counts per second, once a sum is dense.
#[derive(Debug, Clone, Default)]
struct Dense {
    /// Counts of `0..DENSE_LIMIT` (32-bit: a row would need two billion calls of one length to
    /// overflow, and half the memory makes summing a trend's rows markedly faster).
    counts: Vec<i32>,
    /// Values outside `0..DENSE_LIMIT`.
    tail: std::collections::BTreeMap<i64, i64>,
    /// The sum of all counts.
    total: i64,
}

/// Seconds counted densely: up to 18 hours.
const DENSE_LIMIT: i64 = 1 << 16;
/// Room reserved when a sum turns dense: two hours and a bit, so that talk times rarely grow it.
const DENSE_CAPACITY: usize = 8192;

/// How far the counts grow past a new largest value (growing by one zeroed the counts a value
/// at a time while the first histogram was added).
const DENSE_GROWTH: usize = 256;

impl Dense {
    /// Adds `count` at `value`; callers sum the counts into `total` themselves (in a local, which
    /// stays in a register, where `self.total` was a store and a load per entry).
    #[inline]
    fn add_count(&mut self, value: i64, count: i64) {
        if (0..DENSE_LIMIT).contains(&value) {
            let i = value as usize;
            if i >= self.counts.len() {
                self.grow(i);
            }
            self.counts[i] += count as i32;
        } else {
            *self.tail.entry(value).or_default() += count;
        }
    }

    #[cold]
    fn grow(&mut self, i: usize) {
        let len = (i + 1).next_multiple_of(DENSE_GROWTH).min(DENSE_LIMIT as usize);
        self.counts.resize(len, 0);
    }

    /// Adds every entry of `h`; `None` if it was encoded and is corrupt.
    fn add(&mut self, h: HistogramRef) -> Option<()> {
        let mut total = 0;
        let added = match h {
            HistogramRef::Decoded(h) => {
                for &(v, c) in &h.entries {
                    total += c;
                    self.add_count(v, c);
                }
                Some(())
            }
            HistogramRef::Encoded(mut bytes) => for_each_encoded(&mut bytes, |v, c| {
                total += c;
                self.add_count(v, c);
            }),
        };
        self.total += total;
        added
    }
}

impl Default for HistogramSum {
    fn default() -> Self {
        HistogramSum::with_dense_after(512)
    }
}

impl HistogramSum {
    pub fn with_dense_after(dense_after: usize) -> Self {
        HistogramSum {
            sparse: Histogram::default(),
            dense: Dense::default(),
            dense_after,
        }
    }

    fn is_dense(&self) -> bool {
        !self.dense.counts.is_empty()
    }

    /// Adds a histogram; `None` if it was encoded and is corrupt.
    pub fn add(&mut self, h: HistogramRef) -> Option<()> {
        if !self.is_dense() {
            let incoming = match h {
                HistogramRef::Decoded(h) => h.entries.len(),
                HistogramRef::Encoded(mut bytes) => get_varint(&mut bytes)?.max(0) as usize,
            };
            if self.sparse.entries.len() + incoming <= self.dense_after {
                match h {
                    HistogramRef::Decoded(h) => self.sparse.merge(h, 1),
                    HistogramRef::Encoded(mut bytes) => self.sparse.merge(&Histogram::decode(&mut bytes)?, 1),
                }
                return Some(());
            }
            self.dense.counts = Vec::with_capacity(DENSE_CAPACITY);
            self.dense.counts.push(0);
            let sparse = std::mem::take(&mut self.sparse);
            self.dense.add(HistogramRef::Decoded(&sparse));
        }
        self.dense.add(h)
    }

    /// Adds everything another sum holds.
    pub fn add_sum(&mut self, other: &HistogramSum) {
        if !other.is_dense() {
            self.add(HistogramRef::Decoded(&other.sparse));
            return;
        }
        if !self.is_dense() {
            let mine = std::mem::replace(self, other.clone());
            self.add(HistogramRef::Decoded(&mine.sparse));
            return;
        }
        let (mine, theirs) = (&mut self.dense, &other.dense);
        if mine.counts.len() < theirs.counts.len() {
            mine.counts.resize(theirs.counts.len(), 0);
        }
        for (m, t) in mine.counts.iter_mut().zip(&theirs.counts) {
            *m += *t;
        }
        for (&value, &count) in &theirs.tail {
            *mine.tail.entry(value).or_default() += count;
        }
        mine.total += theirs.total;
    }

    /// `PERCENTILE_CONT(p)` of everything added, as [`Histogram::percentile_cont`].
    pub fn percentile_cont(&self, p: f64) -> Option<f64> {
        if !self.is_dense() {
            return self.sparse.percentile_cont(p);
        }
        let Dense { counts, tail, total: n } = &self.dense;
        if *n <= 0 {
            return None;
        }
        let position = p * (n - 1) as f64;
        let (lower_rank, upper_rank) = (position.floor() as i64, position.ceil() as i64);
        let below = tail.range(..0).map(|(&v, &c)| (v, c));
        let above = tail.range(DENSE_LIMIT..).map(|(&v, &c)| (v, c));
        let dense = counts.iter().enumerate().map(|(v, &c)| (v as i64, c as i64));
        let (mut lower, mut seen) = (None, 0);
        // Ascending values; the scan stops at the upper rank (early, for medians).
        for (value, count) in below.chain(dense).chain(above) {
            seen += count;
            if lower.is_none() && lower_rank < seen {
                lower = Some(value);
            }
            if upper_rank < seen {
                let lower = lower? as f64;
                return Some(lower + (position - lower_rank as f64) * (value as f64 - lower));
            }
        }
        None
    }
}

#[cfg(test)]
mod sum_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn dense_and_sparse_sums_agree(
            cells in prop::collection::vec(prop::collection::vec((prop_oneof![0i64..3000, 70_000i64..70_010], 1i64..4), 0..40), 0..30),
            threshold in 0usize..64,
            p in 0.0f64..=1.0,
        ) {
            let mut reference = Histogram::default();
            let mut sum = HistogramSum::with_dense_after(threshold);
            let mut halves = [HistogramSum::with_dense_after(threshold), HistogramSum::with_dense_after(2 * threshold)];
            for (i, c) in cells.iter().enumerate() {
                let h = Histogram::from_entries(c.clone());
                reference.merge(&h, 1);
                let mut encoded = Vec::new();
                h.encode(&mut encoded);
                let h = if i % 2 == 0 { HistogramRef::Decoded(&h) } else { HistogramRef::Encoded(&encoded) };
                prop_assert!(sum.add(h).is_some());
                prop_assert!(halves[i % 2].add(h).is_some());
            }
            prop_assert_eq!(sum.percentile_cont(p), reference.percentile_cont(p));
            let [mut first, second] = halves;
            first.add_sum(&second);
            prop_assert_eq!(first.percentile_cont(p), reference.percentile_cont(p));
        }
    }
}
