//! Exact histograms of integer seconds. Merging is addition, so a histogram of any union of
//! cells is exact, and percentiles computed from it equal PostgreSQL's `PERCENTILE_CONT`.

use crate::cells::{get_varint, put_varint};

/// A histogram's values and their non-zero counts. Counts may be negative inside a delta (a
/// retraction); a histogram of real records never has a negative count.
///
/// It holds sorted `(value, count)` pairs until it has many values close together, then a count
/// per value of a range ([`Counts`]): on ingest a wide cell (a day of one disposition) takes one
/// talk time at a time, and inserting it into hundreds of sorted pairs shifted half of them
/// (13% of the merge thread in mg24j's profile; bench/README). Every form reads, compares and
/// encodes the same.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// Sorted by value, no zero count.
    Pairs(Vec<(i64, i64)>),
    /// One value and its non-zero count, without an allocation: a record's contribution, and
    /// the cell it makes when first seen (most of a transaction's cells).
    One((i64, i64)),
    /// Boxed: a `Stats` (in every cell) stays as small as with pairs alone.
    Counts(Box<Counts>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Pairs(Vec::new())
    }
}

/// A count per value from `first` on (zero where a value is absent), at least one non-zero.
#[derive(Debug, Clone)]
struct Counts {
    first: i64,
    counts: Vec<i64>,
    /// How many counts are non-zero: the number of pairs this stands for.
    distinct: usize,
}

/// The fewest values a histogram holds before it may take counts (a shift of fewer pairs is cheap).
const COUNTS_FROM: usize = 64;
/// Counts are taken when their range spans at most this many values per distinct value (a count
/// is half a pair's bytes: at most twice the memory of the pairs)…
const COUNTS_SPAN: usize = 4;
/// …and left for pairs when a value far outside would make it span more than this many (no
/// back and forth at the edge).
const PAIRS_SPAN: usize = 8;

impl Counts {
    /// Counts of the sorted `pairs`, over `lo..=hi` (which covers them).
    fn of_pairs(pairs: &[(i64, i64)], lo: i64, hi: i64) -> Counts {
        let mut counts = vec![0; (hi - lo + 1) as usize];
        for &(v, c) in pairs {
            counts[(v - lo) as usize] = c;
        }
        Counts {
            first: lo,
            counts,
            distinct: pairs.len(),
        }
    }

    fn last(&self) -> i64 {
        self.first + self.counts.len() as i64 - 1
    }

    /// Extends the range to cover `lo..=hi`, unless that would span too many values for the
    /// `distinct` it may then hold (`false`: nothing changed).
    fn reach(&mut self, lo: i64, hi: i64, distinct: usize) -> bool {
        if span(self.first.min(lo), self.last().max(hi)) > (PAIRS_SPAN * distinct + COUNTS_FROM) as u64 {
            return false;
        }
        if hi > self.last() {
            self.counts.resize(self.counts.len() + (hi - self.last()) as usize, 0);
        }
        if lo < self.first {
            // Room below as well, so that values coming down one at a time rarely move them all.
            let room = (self.counts.len() / 8).min(lo.abs_diff(i64::MIN) as usize);
            let below = (self.first - lo) as usize + room;
            let mut counts = Vec::with_capacity(below + self.counts.len());
            counts.resize(below, 0);
            counts.extend_from_slice(&self.counts);
            self.counts = counts;
            self.first -= below as i64;
        }
        true
    }

    /// Adds `count` at `value`, which the range covers.
    #[inline]
    fn add(&mut self, value: i64, count: i64) {
        let slot = &mut self.counts[(value - self.first) as usize];
        let was_zero = *slot == 0;
        *slot += count;
        match (was_zero, *slot == 0) {
            (true, false) => self.distinct += 1,
            (false, true) => self.distinct -= 1,
            _ => {}
        }
    }

    fn pairs(&self) -> Vec<(i64, i64)> {
        let mut pairs = Vec::with_capacity(self.distinct);
        pairs.extend(Iter::Counts(self.first, self.counts.iter().enumerate()));
        pairs
    }
}

/// A histogram's `(value, count)` pairs in ascending value order, from either form.
#[derive(Clone)]
pub enum Iter<'a> {
    Pairs(std::slice::Iter<'a, (i64, i64)>),
    Counts(i64, std::iter::Enumerate<std::slice::Iter<'a, i64>>),
}

impl Iterator for Iter<'_> {
    type Item = (i64, i64);

    #[inline]
    fn next(&mut self) -> Option<(i64, i64)> {
        match self {
            Iter::Pairs(pairs) => pairs.next().copied(),
            Iter::Counts(first, counts) => counts.find(|(_, &c)| c != 0).map(|(i, &c)| (*first + i as i64, c)),
        }
    }
}

impl PartialEq for Histogram {
    fn eq(&self, other: &Histogram) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Histogram {}

impl Histogram {
    pub fn from_entries(mut entries: Vec<(i64, i64)>) -> Self {
        entries.sort_unstable_by_key(|e| e.0);
        let mut pairs = Vec::with_capacity(entries.len());
        for (v, c) in entries {
            push_sorted(&mut pairs, v, c);
        }
        Histogram {
            repr: Repr::Pairs(pairs),
        }
    }

    pub fn single(value: i64, count: i64) -> Self {
        Histogram {
            repr: if count == 0 {
                Repr::default()
            } else {
                Repr::One((value, count))
            },
        }
    }

    /// The `(value, count)` pairs, in ascending value order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Pairs(pairs) => Iter::Pairs(pairs.iter()),
            Repr::One(pair) => Iter::Pairs(std::slice::from_ref(pair).iter()),
            Repr::Counts(c) => Iter::Counts(c.first, c.counts.iter().enumerate()),
        }
    }

    /// The number of distinct values.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pairs(pairs) => pairs.len(),
            Repr::One(_) => 1,
            Repr::Counts(c) => c.distinct,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it holds counts over a range (for tests of the switch).
    #[cfg(test)]
    fn is_counts(&self) -> bool {
        matches!(self.repr, Repr::Counts(_))
    }

    /// A range of values covering every value held (`None` when empty).
    fn bounds(&self) -> Option<(i64, i64)> {
        match &self.repr {
            Repr::Pairs(pairs) => Some((pairs.first()?.0, pairs.last()?.0)),
            Repr::One((value, _)) => Some((*value, *value)),
            Repr::Counts(c) => Some((c.first, c.last())),
        }
    }

    /// Appends the encoded form: the number of entries, then each value as the difference from
    /// the previous one and its count, as zigzag varints (the same from either form).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as i64);
        let mut previous = 0;
        for (value, count) in self.iter() {
            put_varint(out, value - previous);
            put_varint(out, count);
            previous = value;
        }
    }

    /// Reads what [`Histogram::encode`] wrote; `None` if it is corrupt.
    pub fn decode(input: &mut &[u8]) -> Option<Histogram> {
        let mut entries = Vec::new();
        for_each_encoded(input, |value, count| entries.push((value, count)))?;
        Some(Histogram {
            repr: Repr::Pairs(entries),
        })
    }

    /// Adds `sign × other` (sign is 1 or −1).
    pub fn merge(&mut self, other: &Histogram, sign: i64) {
        let Some((lo, hi)) = other.bounds() else {
            return;
        };
        let as_pairs = match &mut self.repr {
            Repr::Counts(counts) => {
                if counts.reach(lo, hi, counts.distinct + other.len()) {
                    for (value, count) in other.iter() {
                        counts.add(value, count * sign);
                    }
                    if counts.distinct == 0 {
                        self.repr = Repr::default();
                    }
                    return;
                }
                // A value far outside the range: back to pairs.
                Some(counts.pairs())
            }
            Repr::One(pair) => Some(vec![*pair]),
            Repr::Pairs(_) => None,
        };
        if let Some(pairs) = as_pairs {
            self.repr = Repr::Pairs(pairs);
        }
        let Repr::Pairs(pairs) = &mut self.repr else {
            unreachable!("made pairs above")
        };
        if pairs.is_empty() {
            *self = other.clone();
            if sign != 1 {
                self.scale(sign);
            }
            return;
        }
        let most = pairs.len().max(other.len());
        if pairs.len() + other.len() >= COUNTS_FROM {
            let (lo, hi) = (lo.min(pairs[0].0), hi.max(pairs[pairs.len() - 1].0));
            if span(lo, hi) <= (COUNTS_SPAN * most) as u64 {
                let mut counts = Counts::of_pairs(pairs, lo, hi);
                for (value, count) in other.iter() {
                    counts.add(value, count * sign);
                }
                self.repr = if counts.distinct == 0 {
                    Repr::default()
                } else {
                    Repr::Counts(Box::new(counts))
                };
                return;
            }
        }
        if other.len() <= 2 {
            // Adding one record's value (the common case on ingest): insert in place.
            for (value, count) in other.iter() {
                match pairs.binary_search_by_key(&value, |e| e.0) {
                    Ok(i) => {
                        pairs[i].1 += count * sign;
                        if pairs[i].1 == 0 {
                            pairs.remove(i);
                        }
                    }
                    Err(i) => pairs.insert(i, (value, count * sign)),
                }
            }
            return;
        }
        // A linear merge of the two sorted lists.
        let mine = std::mem::take(pairs);
        pairs.reserve(mine.len() + other.len());
        let mut theirs = other.iter().map(|(v, c)| (v, c * sign)).peekable();
        for (v, c) in mine {
            while let Some(&(tv, tc)) = theirs.peek() {
                if tv > v {
                    break;
                }
                push_sorted(pairs, tv, tc);
                theirs.next();
            }
            push_sorted(pairs, v, c);
        }
        for (v, c) in theirs {
            push_sorted(pairs, v, c);
        }
    }

    /// Multiplies every count by `sign` (not 0).
    fn scale(&mut self, sign: i64) {
        match &mut self.repr {
            Repr::Pairs(pairs) => pairs.iter_mut().for_each(|e| e.1 *= sign),
            Repr::One(pair) => pair.1 *= sign,
            Repr::Counts(c) => c.counts.iter_mut().for_each(|c| *c *= sign),
        }
    }

    pub fn total(&self) -> i64 {
        self.iter().map(|e| e.1).sum()
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
        for (v, c) in self.iter() {
            seen += c;
            if rank < seen {
                return Some(v);
            }
        }
        None
    }
}

/// How many values `lo..=hi` holds (all of `i64` would overflow it: never asked).
fn span(lo: i64, hi: i64) -> u64 {
    hi.abs_diff(lo).saturating_add(1)
}

/// Appends `(value, count)` to sorted pairs whose last value is at most `value`, adding to it
/// if it is the same (and dropping it if that makes zero).
fn push_sorted(pairs: &mut Vec<(i64, i64)>, value: i64, count: i64) {
    match pairs.last_mut() {
        Some(last) if last.0 == value => {
            last.1 += count;
            if last.1 == 0 {
                pairs.pop();
            }
        }
        _ if count != 0 => pairs.push((value, count)),
        _ => {}
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

    /// A wide cell takes counts once it holds many values close together, and goes back to
    /// pairs when one far off would make its counts mostly zeros; it reads the same throughout.
    #[test]
    fn takes_counts_and_goes_back() {
        let mut h = Histogram::default();
        let mut model = std::collections::BTreeMap::new();
        for i in 0..2_000i64 {
            let v = (i * 7919) % 600;
            h.merge(&Histogram::single(v, 1), 1);
            *model.entry(v).or_insert(0) += 1;
        }
        assert!(h.is_counts(), "600 values in 0..600 are held as counts");
        let pairs: Vec<(i64, i64)> = model.iter().map(|(&v, &c)| (v, c)).collect();
        assert_eq!(h, Histogram::from_entries(pairs.clone()));
        h.merge(&Histogram::single(1_000_000, 1), 1);
        assert!(!h.is_counts(), "a value far off takes it back to pairs");
        h.merge(&Histogram::single(1_000_000, 1), -1);
        assert_eq!(h, Histogram::from_entries(pairs.clone()));
        let all = Histogram::from_entries(pairs);
        h.merge(&all, -1);
        assert!(h.is_empty() && h == Histogram::default());
    }

    proptest! {
        #[test]
        fn percentiles_match_sorting(values in prop::collection::vec(0i64..5000, 1..200), p in 0.0f64..=1.0) {
            let mut sorted = values.clone();
            sorted.sort();
            let h = values.iter().fold(Histogram::default(), |mut h, &v| { h.merge(&Histogram::single(v, 1), 1); h });
            prop_assert_eq!(h.percentile_cont(p), Some(percentile_of_sorted(&sorted, p)));
        }

        /// Merges of single values (most), of histograms and retractions, against a plain
        /// sorted list of `(value, count)`: mostly talk times close together (so the histogram
        /// takes counts), some far off (so it goes back to pairs), some negative.
        #[test]
        fn merges_match_a_sorted_list(
            steps in prop::collection::vec(
                (
                    prop_oneof![
                        20 => prop::collection::vec((0i64..250, 1i64..3), 1..=1),
                        1 => prop::collection::vec(
                            (prop_oneof![40 => 0i64..250, 2 => -50i64..0, 1 => 2_000i64..3_000, 1 => Just(1i64 << 40)], 1i64..3),
                            1..40,
                        ),
                    ],
                    prop_oneof![3 => Just(1i64), 1 => Just(-1i64)],
                ),
                1..400,
            ),
            p in 0.0f64..=1.0,
        ) {
            let mut h = Histogram::default();
            let mut model: Vec<(i64, i64)> = Vec::new();
            for (i, (entries, sign)) in steps.into_iter().enumerate() {
                let other = match entries[..] {
                    [(v, c)] => Histogram::single(v, c),
                    _ => Histogram::from_entries(entries.clone()),
                };
                h.merge(&other, sign);
                for (v, c) in entries {
                    match model.binary_search_by_key(&v, |e| e.0) {
                        Ok(i) => model[i].1 += c * sign,
                        Err(i) => model.insert(i, (v, c * sign)),
                    }
                }
                model.retain(|e| e.1 != 0);
                prop_assert_eq!(h.iter().collect::<Vec<_>>(), model.clone());
                prop_assert_eq!(h.len(), model.len());
                if i % 16 == 0 {
                    // Merged into a histogram of pairs, it cancels it; encoded, it reads back equal.
                    let mut copy = Histogram::from_entries(model.clone());
                    copy.merge(&h, -1);
                    prop_assert!(copy.is_empty());
                    let mut encoded = Vec::new();
                    h.encode(&mut encoded);
                    prop_assert_eq!(&Histogram::decode(&mut &encoded[..]).unwrap(), &h);
                }
            }
            if model.iter().all(|e| e.1 > 0) {
                prop_assert_eq!(h.percentile_cont(p), Histogram::from_entries(model).percentile_cont(p));
            }
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
                for (v, c) in h.iter() {
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
                HistogramRef::Decoded(h) => h.len(),
                HistogramRef::Encoded(mut bytes) => get_varint(&mut bytes)?.max(0) as usize,
            };
            if self.sparse.len() + incoming <= self.dense_after {
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
