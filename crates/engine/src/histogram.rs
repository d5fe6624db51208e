//! Exact histograms of integer seconds. Merging is addition, so a histogram of any union of
//! cells is exact, and percentiles computed from it equal PostgreSQL's `PERCENTILE_CONT`.

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

    /// Entries already strictly increasing by value with non-zero counts (as encoded);
    /// `None` if they are not.
    pub fn from_sorted(entries: Vec<(i64, i64)>) -> Option<Self> {
        let valid = entries.iter().all(|e| e.1 != 0) && entries.windows(2).all(|w| w[0].0 < w[1].0);
        valid.then_some(Histogram { entries })
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

    /// Adds `sign × other` (sign is 1 or −1) by a linear merge of the two sorted lists.
    pub fn merge(&mut self, other: &Histogram, sign: i64) {
        if other.entries.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.entries = other.entries.iter().map(|&(v, c)| (v, c * sign)).collect();
            return;
        }
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
        let mine = std::mem::take(&mut self.entries);
        self.entries.reserve(mine.len() + other.entries.len());
        let (mut i, mut j) = (0, 0);
        while i < mine.len() || j < other.entries.len() {
            let take_mine = j == other.entries.len() || (i < mine.len() && mine[i].0 <= other.entries[j].0);
            if take_mine {
                let (v, c) = mine[i];
                i += 1;
                self.push_sorted(v, c);
            } else {
                let (v, c) = other.entries[j];
                j += 1;
                self.push_sorted(v, c * sign);
            }
        }
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
/// once it holds more than `dense_after` distinct values, switches to a count per second (no
/// re-allocation per merge), so summing hundreds of day cells costs their size, not their
/// number times the running size.
#[derive(Debug, Clone)]
pub struct HistogramSum {
    sparse: Histogram,
    dense: Vec<i64>,
    /// Values outside `0..DENSE_LIMIT` once dense.
    tail: std::collections::BTreeMap<i64, i64>,
    dense_after: usize,
}

/// Seconds counted densely: up to 18 hours.
const DENSE_LIMIT: i64 = 1 << 16;

impl Default for HistogramSum {
    fn default() -> Self {
        HistogramSum::with_dense_after(512)
    }
}

impl HistogramSum {
    pub fn with_dense_after(dense_after: usize) -> Self {
        HistogramSum {
            sparse: Histogram::default(),
            dense: Vec::new(),
            tail: Default::default(),
            dense_after,
        }
    }

    fn is_dense(&self) -> bool {
        !self.dense.is_empty()
    }

    pub fn add(&mut self, h: &Histogram) {
        if !self.is_dense() {
            self.sparse.merge(h, 1);
            if self.sparse.entries.len() <= self.dense_after {
                return;
            }
            let sparse = std::mem::take(&mut self.sparse);
            self.dense = vec![0; 1];
            self.add_dense(sparse.entries());
            return;
        }
        self.add_dense(h.entries());
    }

    fn add_dense(&mut self, entries: &[(i64, i64)]) {
        for &(value, count) in entries {
            if (0..DENSE_LIMIT).contains(&value) {
                let i = value as usize;
                if i >= self.dense.len() {
                    self.dense.resize(i + 1, 0);
                }
                self.dense[i] += count;
            } else {
                *self.tail.entry(value).or_default() += count;
            }
        }
    }

    /// `PERCENTILE_CONT(p)` of everything added, as [`Histogram::percentile_cont`].
    pub fn percentile_cont(&self, p: f64) -> Option<f64> {
        if !self.is_dense() {
            return self.sparse.percentile_cont(p);
        }
        let below: Vec<(i64, i64)> = self.tail.range(..0).map(|(&v, &c)| (v, c)).collect();
        let above = self.tail.range(DENSE_LIMIT..).map(|(&v, &c)| (v, c));
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, &c)| c != 0)
            .map(|(v, &c)| (v as i64, c));
        let all = || below.iter().copied().chain(dense.clone()).chain(above.clone());
        let n: i64 = all().map(|e| e.1).sum();
        if n <= 0 {
            return None;
        }
        let position = p * (n - 1) as f64;
        let (lower_rank, upper_rank) = (position.floor() as i64, position.ceil() as i64);
        let (mut lower, mut upper, mut seen) = (None, None, 0);
        for (value, count) in all() {
            seen += count;
            if lower.is_none() && lower_rank < seen {
                lower = Some(value);
            }
            if upper_rank < seen {
                upper = Some(value);
                break;
            }
        }
        let (lower, upper) = (lower?, upper?);
        Some(lower as f64 + (position - lower_rank as f64) * (upper - lower) as f64)
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
            for c in &cells {
                let h = Histogram::from_entries(c.clone());
                reference.merge(&h, 1);
                sum.add(&h);
            }
            prop_assert_eq!(sum.percentile_cont(p), reference.percentile_cont(p));
        }
    }
}
