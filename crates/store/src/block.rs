//! A block: the cells of one (tenant, cuboid, grain, bucket), as `(key, stats)` pairs sorted by
//! key, each length-prefixed so a reader can skip or lazily decode a cell's stats.

use dialboard_engine::cells::{get_bytes, put_bytes, Stats};

/// The cells of a block, in key order, still encoded.
pub fn entries(mut block: &[u8]) -> impl Iterator<Item = Option<(&str, &[u8])>> {
    std::iter::from_fn(move || {
        if block.is_empty() {
            return None;
        }
        let entry = (|| {
            let key = std::str::from_utf8(get_bytes(&mut block)?).ok()?;
            let stats = get_bytes(&mut block)?;
            Some((key, stats))
        })();
        if entry.is_none() {
            block = &[]; // corrupt: report once, then stop
        }
        Some(entry)
    })
}

/// `stored` plus `deltas` (sorted by key): cells only in `stored` are copied without decoding;
/// cells whose sum is zero are dropped. `None` if `stored` is corrupt.
pub fn merge<'a>(stored: &[u8], deltas: impl Iterator<Item = (&'a str, &'a Stats)>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(stored.len() + 64);
    let mut old = entries(stored).peekable();
    let write = |out: &mut Vec<u8>, key: &str, stats: &Stats| {
        if !stats.is_zero() {
            put_bytes(out, key.as_bytes());
            put_bytes(out, &stats.to_bytes());
        }
    };
    for (key, delta) in deltas {
        while let Some(Some((k, bytes))) = old.peek().copied() {
            if k >= key {
                break;
            }
            put_bytes(&mut out, k.as_bytes());
            put_bytes(&mut out, bytes);
            old.next();
        }
        match old.peek().copied() {
            Some(None) => return None,
            Some(Some((k, bytes))) if k == key => {
                let mut stats = Stats::from_bytes(bytes)?;
                stats.merge(delta, 1);
                write(&mut out, key, &stats);
                old.next();
            }
            _ => write(&mut out, key, delta),
        }
    }
    for entry in old {
        let (k, bytes) = entry?;
        put_bytes(&mut out, k.as_bytes());
        put_bytes(&mut out, bytes);
    }
    Some(out)
}

/// The block of `cells`, sorted by key with a key possibly several times (stretches of
/// blocks sorted by a stable sort): a key's only cell is copied as it is, a key's several
/// cells are decoded and summed (and dropped if the sum is zero). Decoding every cell and
/// encoding it again was most of the cost of folding a chunk's spans or a block's parts.
/// `None` if a summed cell is corrupt.
pub fn sum_sorted<'a>(cells: &[(&'a str, &'a [u8])]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(cells.iter().map(|(k, b)| k.len() + b.len() + 2).sum());
    let mut rest = cells;
    while let Some(&(key, bytes)) = rest.first() {
        let same = rest.iter().take_while(|c| c.0 == key).count();
        if same == 1 {
            put_bytes(&mut out, key.as_bytes());
            put_bytes(&mut out, bytes);
        } else {
            let mut sum = Stats::default();
            for (_, bytes) in &rest[..same] {
                sum.merge(&Stats::from_bytes(bytes)?, 1);
            }
            if !sum.is_zero() {
                put_bytes(&mut out, key.as_bytes());
                put_bytes(&mut out, &sum.to_bytes());
            }
        }
        rest = &rest[same..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(calls: i64) -> Stats {
        let mut s = Stats::default();
        s.c[0] = calls;
        s
    }

    fn talk(calls: i64, seconds: i64) -> Stats {
        let mut s = stats(calls);
        s.durations = dialboard_engine::histogram::Histogram::single(seconds, calls);
        s
    }

    fn decoded(block: &[u8]) -> Vec<(String, i64)> {
        entries(block)
            .map(|e| e.unwrap())
            .map(|(k, b)| (k.to_string(), Stats::from_bytes(b).unwrap().c[0]))
            .collect()
    }

    /// A key's only cell is copied byte for byte (not decoded and encoded again: bytes a
    /// decoding would not give back show it), several cells of a key are summed, and a key
    /// whose cells cancel out is dropped.
    #[test]
    fn a_key_found_once_is_copied_and_several_are_summed() {
        let (one, two, minus_one) = (talk(1, 60), talk(2, 120), talk(-1, 60));
        let mut once = one.to_bytes();
        once.push(0xff); // trailing bytes: kept only by a copy
        let (two_bytes, minus_bytes) = (two.to_bytes(), minus_one.to_bytes());
        let one_bytes = one.to_bytes();
        let cells: Vec<(&str, &[u8])> = vec![
            ("a", &once),
            ("b", &two_bytes),
            ("b", &one_bytes),
            ("c", &one_bytes),
            ("c", &minus_bytes),
        ];
        let block = sum_sorted(&cells).unwrap();
        let mut summed = two.clone();
        summed.merge(&one, 1);
        let decoded: Vec<(&str, &[u8])> = entries(&block).map(Option::unwrap).collect();
        assert_eq!(decoded, vec![("a", &once[..]), ("b", &summed.to_bytes()[..])]);
    }

    #[test]
    fn merging_keeps_key_order_and_drops_zeros() {
        let (one, two, minus_one) = (stats(1), stats(2), stats(-1));
        let first = merge(&[], [("b", &one), ("d", &two)].into_iter()).unwrap();
        assert_eq!(decoded(&first), vec![("b".into(), 1), ("d".into(), 2)]);
        let second = merge(
            &first,
            [("a", &two), ("b", &minus_one), ("c", &one), ("e", &one)].into_iter(),
        )
        .unwrap();
        assert_eq!(
            decoded(&second),
            vec![("a".into(), 2), ("c".into(), 1), ("d".into(), 2), ("e".into(), 1)]
        );
        assert!(
            merge(&[5, 1], std::iter::empty()).is_none(),
            "corrupt blocks are reported"
        );
    }
}
