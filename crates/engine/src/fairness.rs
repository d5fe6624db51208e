//! Fair ranking of reps on a rate (connect rate, meeting rate…): a rep with 3 calls and 2
//! meetings must not top a board of reps with hundreds.
//!
//! - **Minimum volume**: below `min_volume` trials a rep is listed, not ranked.
//! - **Wilson score interval** (Wilson 1927; Agresti & Coull, "Approximate is better than
//!   exact", Am. Stat. 1998) for each rate: unlike `p ± z√(p(1−p)/n)` it stays inside [0, 1]
//!   and is honest at small `n` and at 0% or 100%.
//! - **Empirical-Bayes shrinkage** (Efron & Morris, "Data analysis using Stein's estimator and
//!   its generalizations", JASA 1975): each rate is pulled toward the board's pooled rate by a
//!   beta prior fitted by the method of moments, `(s + κ p̄) / (n + κ)`, so few trials move a
//!   rep little from the mean while many trials speak for themselves.
//! - **Uncertain ranks**: a rank whose interval overlaps its neighbour's is marked uncertain —
//!   the data cannot tell those two reps apart.

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959963984540054;

/// The Wilson score interval of `successes` out of `trials`, as fractions; `None` without trials.
pub fn wilson(successes: f64, trials: f64, z: f64) -> Option<(f64, f64)> {
    if trials <= 0.0 {
        return None;
    }
    let p = successes / trials;
    let z2 = z * z;
    let center = (p + z2 / (2.0 * trials)) / (1.0 + z2 / trials);
    let half = z / (1.0 + z2 / trials) * (p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)).sqrt();
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// One rep's counts for a rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    pub successes: f64,
    pub trials: f64,
}

/// The beta prior of a board: its pooled rate and strength κ (in pseudo-trials).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Prior {
    pub mean: f64,
    pub strength: f64,
}

/// The most a prior may weigh: when reps differ no more than chance says, every rate shrinks
/// almost to the mean, but not by more than this many pseudo-trials.
const MAX_STRENGTH: f64 = 1e6;

/// Fits the board's beta prior by the method of moments, weighting each rep by its trials (so
/// a rep with 3 calls cannot inflate the spread): the spread of rates beyond what binomial
/// noise explains, `τ² = (Σ nᵢ (rᵢ − p̄)² − (k − 1) p̄(1−p̄)) / (N − Σ nᵢ² / N)` (the
/// DerSimonian–Laird estimator, Controlled Clinical Trials 1986), is the prior's variance
/// `p̄(1−p̄) / (κ + 1)`. No spread beyond noise: every rate shrinks (almost) to the mean.
pub fn prior(board: &[Counts]) -> Option<Prior> {
    let with: Vec<&Counts> = board.iter().filter(|c| c.trials > 0.0).collect();
    let trials: f64 = with.iter().map(|c| c.trials).sum();
    if trials <= 0.0 {
        return None;
    }
    let mean = with.iter().map(|c| c.successes).sum::<f64>() / trials;
    let k = with.len() as f64;
    if k < 2.0 || mean <= 0.0 || mean >= 1.0 {
        return Some(Prior {
            mean,
            strength: if k < 2.0 { 0.0 } else { MAX_STRENGTH },
        });
    }
    let spread: f64 = with
        .iter()
        .map(|c| c.trials * (c.successes / c.trials - mean).powi(2))
        .sum();
    let noise = (k - 1.0) * mean * (1.0 - mean);
    let scale = trials - with.iter().map(|c| c.trials * c.trials).sum::<f64>() / trials;
    let between = (spread - noise) / scale;
    let strength = if between <= 0.0 || scale <= 0.0 {
        MAX_STRENGTH
    } else {
        (mean * (1.0 - mean) / between - 1.0).clamp(0.0, MAX_STRENGTH)
    };
    Some(Prior { mean, strength })
}

/// The shrunk estimate of a rate under `prior`.
pub fn shrunk(c: Counts, prior: Prior) -> f64 {
    (c.successes + prior.strength * prior.mean) / (c.trials + prior.strength)
}

/// How a board ranks on a rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranking {
    /// Fewest trials to be ranked.
    pub min_volume: f64,
    /// Rank by the shrunk estimate instead of the raw rate.
    pub by_shrunk: bool,
}

/// One rep's place on a fair board. Rates are fractions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Placed {
    /// 1-based; `None` below the minimum volume.
    pub rank: Option<usize>,
    pub rate: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub shrunk: Option<f64>,
    /// The interval overlaps a neighbour's: the rank is not supported by the data.
    pub uncertain: bool,
}

/// Ranks `board` (in its order; ties keep it), returning one placement per entry.
pub fn rank(board: &[Counts], how: Ranking) -> Vec<Placed> {
    let prior = prior(board);
    let mut placed: Vec<Placed> = board
        .iter()
        .map(|&c| {
            let interval = wilson(c.successes, c.trials, Z95);
            Placed {
                rank: None,
                rate: (c.trials > 0.0).then(|| c.successes / c.trials),
                low: interval.map(|i| i.0),
                high: interval.map(|i| i.1),
                shrunk: prior.filter(|_| c.trials > 0.0).map(|p| shrunk(c, p)),
                uncertain: false,
            }
        })
        .collect();
    let key = |p: &Placed| if how.by_shrunk { p.shrunk } else { p.rate };
    let mut ranked: Vec<usize> = (0..board.len())
        .filter(|&i| board[i].trials >= how.min_volume.max(1.0) && key(&placed[i]).is_some())
        .collect();
    ranked.sort_by(|&a, &b| {
        key(&placed[b])
            .unwrap_or(0.0)
            .total_cmp(&key(&placed[a]).unwrap_or(0.0))
    });
    for (position, &i) in ranked.iter().enumerate() {
        placed[i].rank = Some(position + 1);
    }
    let overlaps = |a: &Placed, b: &Placed| match (a.low, a.high, b.low, b.high) {
        (Some(al), Some(ah), Some(bl), Some(bh)) => al <= bh && bl <= ah,
        _ => false,
    };
    for w in 0..ranked.len().saturating_sub(1) {
        let (a, b) = (ranked[w], ranked[w + 1]);
        if overlaps(&placed[a], &placed[b]) {
            placed[a].uncertain = true;
            placed[b].uncertain = true;
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(successes: f64, trials: f64) -> Counts {
        Counts { successes, trials }
    }

    #[test]
    fn wilson_matches_the_published_example() {
        // Agresti & Coull's example shape: 0 of 10 still gets an upper bound; 95% for 81/263
        // is (0.2553, 0.3662) (e.g. Newcombe 1998, Table I, method 3).
        let (lo, hi) = wilson(81.0, 263.0, Z95).unwrap();
        assert!((lo - 0.2553).abs() < 5e-4 && (hi - 0.3662).abs() < 5e-4, "{lo} {hi}");
        let (lo, hi) = wilson(0.0, 10.0, Z95).unwrap();
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 5e-4, "{hi}");
        assert_eq!(wilson(0.0, 0.0, Z95), None);
    }

    #[test]
    fn a_low_volume_rep_is_not_ranked_on_the_rate() {
        // 2 of 3 tops the raw rates; with a minimum volume of 20 it is listed without a rank.
        let board = [c(2.0, 3.0), c(60.0, 200.0), c(56.0, 190.0), c(52.0, 195.0)];
        let placed = rank(
            &board,
            Ranking {
                min_volume: 20.0,
                by_shrunk: false,
            },
        );
        assert_eq!(placed[0].rank, None);
        assert_eq!(placed[0].rate, Some(2.0 / 3.0));
        assert_eq!(
            placed.iter().map(|p| p.rank).collect::<Vec<_>>(),
            [None, Some(1), Some(2), Some(3)]
        );
        // Without a minimum but ranked by the shrunk estimate it no longer tops the board.
        let shrunk = rank(
            &board,
            Ranking {
                min_volume: 1.0,
                by_shrunk: true,
            },
        );
        assert_ne!(shrunk[0].rank, Some(1), "{shrunk:?}");
    }

    #[test]
    fn overlapping_intervals_mark_ranks_uncertain() {
        let board = [c(100.0, 200.0), c(96.0, 200.0), c(20.0, 200.0)];
        let placed = rank(
            &board,
            Ranking {
                min_volume: 10.0,
                by_shrunk: false,
            },
        );
        assert!(
            placed[0].uncertain && placed[1].uncertain,
            "50% vs 48% of 200 cannot be told apart"
        );
        assert!(!placed[2].uncertain, "10% is clearly last");
    }

    #[test]
    fn shrinkage_pulls_small_samples_more() {
        let board = [
            c(2.0, 3.0),
            c(60.0, 200.0),
            c(50.0, 200.0),
            c(70.0, 200.0),
            c(55.0, 200.0),
        ];
        let p = prior(&board).unwrap();
        let small = shrunk(board[0], p);
        let big = shrunk(board[3], p);
        assert!(
            (small - p.mean).abs() < (2.0 / 3.0 - p.mean).abs() * 0.5,
            "{small} {p:?}"
        );
        assert!((big - 0.35).abs() < (0.35 - p.mean).abs(), "{big}");
    }
}
