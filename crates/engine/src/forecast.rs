//! Forecast of call volume and handle time per 15-minute interval, 1–14 days ahead, and its
//! backtest against the seasonal-naive baseline (the same interval a week before).
//!
//! The method is the call center's top-down split (Gans, Koole & Mandelbaum, "Telephone call
//! centers: tutorial, review and research prospects", MSOM 2003, §4; compared by Taylor,
//! "A comparison of univariate time series methods for forecasting intraday arrivals at a
//! call center", Management Science 2008):
//!
//! 1. **Daily volume**: Holt-Winters' multiplicative method without trend, weekly season
//!    (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., §8.3):
//!    `ℓ_t = α y_t / s_{t−7} + (1 − α) ℓ_{t−1}`, `s_t = γ y_t / ℓ_{t−1} + (1 − γ) s_{t−7}`,
//!    forecast `ℓ_T · s_{T+h−7k}`. α and γ are chosen on a grid by the one-step errors.
//!    Holidays of the tenant's calendar do not update the state; a future holiday gets the
//!    ratio past holidays had to their forecast (no past holiday: closed).
//! 2. **Intraday profile** (the daily seasonality): each weekday's share of the day per interval,
//!    averaged over past weeks with weights halving every ~3 weeks, so profile noise averages
//!    out while recent change is followed.
//! 3. **Handle time**: per weekday and interval, the weighted handle seconds over weighted calls
//!    (falling back to the interval over all weekdays, then to the overall mean).
//!
//! The prediction interval (80%) treats an interval's calls as overdispersed Poisson around the
//! forecast (dispersion φ measured on the history's profile residuals) plus the daily level's
//! relative error, which grows with the horizon as ETS(M,N,M)'s does: `σ² (1 + (h − 1) α²)`.
//! `Var = φ μ + μ² σ² (1 + (h−1) α²)`, band `μ ± 1.2816 √Var`, never below 0.

use jiff::civil::Date;
use jiff::ToSpan;

/// Intervals per day (local 15-minute slots; a 25-hour day's repeated slots add up).
pub const SLOTS: usize = 96;
/// The prediction interval's coverage and its normal quantile.
pub const INTERVAL_LEVEL: f64 = 0.8;
const Z: f64 = 1.2815515655446004;

/// One past local day: whether the tenant's calendar marks it a holiday, and per slot its
/// calls and their handle seconds (talk + wrap).
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub date: Date,
    pub holiday: bool,
    pub calls: Vec<f64>,
    pub handle_seconds: Vec<f64>,
}

impl Day {
    pub fn empty(date: Date, holiday: bool) -> Day {
        Day {
            date,
            holiday,
            calls: vec![0.0; SLOTS],
            handle_seconds: vec![0.0; SLOTS],
        }
    }

    fn total(&self) -> f64 {
        self.calls.iter().sum()
    }
}

/// The forecast of one interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub slot: usize,
    pub calls: f64,
    pub low: f64,
    pub high: f64,
    /// Expected average handle time; `None` where the history has no call to learn it from.
    pub aht_seconds: Option<f64>,
}

/// The forecast of one day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayForecast {
    pub date: Date,
    pub holiday: bool,
    pub calls: f64,
    pub intervals: Vec<Interval>,
}

/// What the history taught: the fitted daily model, the profiles and the handle times.
#[derive(Debug, Clone)]
pub struct Model {
    last_date: Date,
    alpha: f64,
    level: f64,
    /// Weekly indices by weekday (Monday = 0).
    season: [f64; 7],
    /// The daily model's relative one-step error variance.
    relative_variance: f64,
    holiday_ratio: f64,
    profiles: [Vec<f64>; 7],
    dispersion: f64,
    aht: [Vec<Option<f64>>; 7],
}

fn weekday(date: Date) -> usize {
    date.weekday().to_monday_zero_offset() as usize
}

/// Runs Holt-Winters over the daily totals; returns the final state, the sum of squared
/// one-step errors after the first week, the relative error variance and the holidays' ratio.
struct DailyFit {
    level: f64,
    season: [f64; 7],
    sse: f64,
    relative_variance: f64,
    holiday_ratio: f64,
}

fn run_daily(history: &[Day], alpha: f64, gamma: f64) -> DailyFit {
    let working: Vec<&Day> = history.iter().filter(|d| !d.holiday).collect();
    let init: Vec<&&Day> = working.iter().take(14).collect();
    let mut level = init.iter().map(|d| d.total()).sum::<f64>() / init.len().max(1) as f64;
    let mut season = [1.0; 7];
    if level > 0.0 {
        for (w, s) in season.iter_mut().enumerate() {
            let on: Vec<f64> = init
                .iter()
                .filter(|d| weekday(d.date) == w)
                .map(|d| d.total())
                .collect();
            if !on.is_empty() {
                *s = on.iter().sum::<f64>() / on.len() as f64 / level;
            }
        }
    }
    let (mut sse, mut rel, mut rel_n) = (0.0, 0.0, 0usize);
    let (mut holiday_actual, mut holiday_expected) = (0.0, 0.0);
    for (i, day) in history.iter().enumerate() {
        let w = weekday(day.date);
        let y = day.total();
        let predicted = level * season[w];
        if day.holiday {
            holiday_actual += y;
            holiday_expected += predicted;
            continue;
        }
        if i >= 7 {
            sse += (y - predicted).powi(2);
            if predicted > 0.0 {
                rel += ((y - predicted) / predicted).powi(2);
                rel_n += 1;
            }
        }
        let previous = level;
        if season[w] > 0.0 {
            level = alpha * y / season[w] + (1.0 - alpha) * level;
        }
        if previous > 0.0 {
            season[w] = gamma * y / previous + (1.0 - gamma) * season[w];
        }
    }
    DailyFit {
        level,
        season,
        sse,
        relative_variance: if rel_n > 0 { rel / rel_n as f64 } else { 0.25 },
        holiday_ratio: if holiday_expected > 0.0 {
            holiday_actual / holiday_expected
        } else {
            0.0
        },
    }
}

/// Weights of past days for the profiles and handle times: halving about every three weeks.
fn age_weight(days_back: usize) -> f64 {
    0.97f64.powi(days_back as i32)
}

/// A share-of-day profile from weighted days; `None` without any call.
fn profile<'a>(days: impl Iterator<Item = (f64, &'a Day)>) -> Option<Vec<f64>> {
    let mut num = vec![0.0; SLOTS];
    let mut den = 0.0;
    for (weight, day) in days {
        for (n, c) in num.iter_mut().zip(&day.calls) {
            *n += weight * c;
        }
        den += weight * day.total();
    }
    (den > 0.0).then(|| num.into_iter().map(|n| n / den).collect())
}

/// How the intraday profiles share information: each weekday's profile is shrunk toward the
/// profile of all days by `prior_days` days' worth of weight (empirical Bayes: a weekday seen
/// on few days borrows the common shape), and optionally smoothed over neighbouring slots.
/// Both are chosen on the history's last week, held out (`validated`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pooling {
    prior_days: f64,
    smooth: bool,
}

const NO_POOLING: Pooling = Pooling {
    prior_days: 0.0,
    smooth: false,
};

impl Pooling {
    /// The pooling whose profiles, learned without the last week, best split that week's
    /// actual day totals into intervals (absolute error); none when the history is too short
    /// to hold a week out.
    fn validated(history: &[Day]) -> Pooling {
        if history.len() < 14 {
            return NO_POOLING;
        }
        let (train, test) = history.split_at(history.len() - 7);
        let mut best = (f64::INFINITY, NO_POOLING);
        for prior_days in [0.0, 0.5, 1.0, 2.0, 4.0, 8.0] {
            for smooth in [false, true] {
                let pooling = Pooling { prior_days, smooth };
                let profiles = profiles(train, pooling);
                let error: f64 = test
                    .iter()
                    .filter(|d| !d.holiday)
                    .map(|d| {
                        let total = d.total();
                        let p = &profiles[weekday(d.date)];
                        d.calls.iter().zip(p).map(|(c, p)| (c - total * p).abs()).sum::<f64>()
                    })
                    .sum();
                if error < best.0 - 1e-9 {
                    best = (error, pooling);
                }
            }
        }
        best.1
    }
}

/// The weekday profiles of `history` under `pooling` (days weighted by age, holidays left out).
fn profiles(history: &[Day], pooling: Pooling) -> [Vec<f64>; 7] {
    let n = history.len();
    let weighted = |w: Option<usize>| {
        history
            .iter()
            .enumerate()
            .filter(move |(_, d)| !d.holiday && w.is_none_or(|w| weekday(d.date) == w))
            .map(move |(i, d)| (age_weight(n - 1 - i), d))
    };
    let all_days = profile(weighted(None)).unwrap_or_else(|| vec![0.0; SLOTS]);
    std::array::from_fn(|w| {
        let seen: f64 = weighted(Some(w)).filter(|(_, d)| d.total() > 0.0).map(|(x, _)| x).sum();
        let own = profile(weighted(Some(w)));
        let mut p: Vec<f64> = match own {
            Some(own) => own
                .iter()
                .zip(&all_days)
                .map(|(o, a)| (seen * o + pooling.prior_days * a) / (seen + pooling.prior_days))
                .collect(),
            None => all_days.clone(),
        };
        if pooling.smooth {
            p = smoothed(&p);
        }
        p
    })
}

/// A 1-2-1 moving average over the slots that keeps closed slots closed and the total at 1.
fn smoothed(p: &[f64]) -> Vec<f64> {
    let at = |i: isize| usize::try_from(i).ok().and_then(|i| p.get(i)).copied().unwrap_or(0.0);
    let mut out: Vec<f64> = (0..p.len() as isize)
        .map(|i| {
            if p[i as usize] == 0.0 {
                0.0
            } else {
                (at(i - 1) + 2.0 * at(i) + at(i + 1)) / 4.0
            }
        })
        .collect();
    let (before, after) = (p.iter().sum::<f64>(), out.iter().sum::<f64>());
    if after > 0.0 {
        out.iter_mut().for_each(|x| *x *= before / after);
    }
    out
}

impl Model {
    /// Learns from `history`: consecutive local days, oldest first (at least one).
    pub fn fit(history: &[Day]) -> Model {
        let last_date = history.last().map(|d| d.date).expect("a history of at least one day");
        let (mut best, mut best_alpha) = (None::<DailyFit>, 0.1);
        for alpha in [0.05, 0.1, 0.2, 0.3, 0.5] {
            for gamma in [0.05, 0.1, 0.2, 0.3] {
                let fit = run_daily(history, alpha, gamma);
                if best.as_ref().is_none_or(|b| fit.sse < b.sse) {
                    best = Some(fit);
                    best_alpha = alpha;
                }
            }
        }
        let daily = best.expect("a grid");
        let n = history.len();
        let weighted = |w: Option<usize>| {
            history
                .iter()
                .enumerate()
                .filter(move |(_, d)| !d.holiday && w.is_none_or(|w| weekday(d.date) == w))
                .map(move |(i, d)| (age_weight(n - 1 - i), d))
        };
        let pooling = Pooling::validated(history);
        let profiles = profiles(history, pooling);
        // Handle time per weekday and slot, then per slot, then overall.
        let sums = |w: Option<usize>| {
            let mut handle = vec![0.0; SLOTS];
            let mut calls = vec![0.0; SLOTS];
            for (weight, d) in weighted(w) {
                for s in 0..SLOTS {
                    handle[s] += weight * d.handle_seconds[s];
                    calls[s] += weight * d.calls[s];
                }
            }
            (handle, calls)
        };
        let (all_handle, all_calls) = sums(None);
        let overall = (all_calls.iter().sum::<f64>() > 0.0)
            .then(|| all_handle.iter().sum::<f64>() / all_calls.iter().sum::<f64>());
        let per_slot: Vec<Option<f64>> = (0..SLOTS)
            .map(|s| (all_calls[s] > 0.0).then(|| all_handle[s] / all_calls[s]).or(overall))
            .collect();
        let aht: [Vec<Option<f64>>; 7] = std::array::from_fn(|w| {
            let (handle, calls) = sums(Some(w));
            (0..SLOTS)
                .map(|s| {
                    if calls[s] >= 1.0 {
                        Some(handle[s] / calls[s])
                    } else {
                        per_slot[s]
                    }
                })
                .collect()
        });
        // Dispersion of the interval counts around (actual day total × profile), last 4 weeks.
        let (mut excess, mut expected) = (0.0, 0.0);
        for day in history.iter().rev().take(28).filter(|d| !d.holiday) {
            let total = day.total();
            for (c, p) in day.calls.iter().zip(&profiles[weekday(day.date)]) {
                let mu = total * p;
                if mu > 0.0 {
                    excess += (c - mu).powi(2);
                    expected += mu;
                }
            }
        }
        let dispersion = if expected > 0.0 {
            (excess / expected).max(1.0)
        } else {
            1.0
        };
        Model {
            last_date,
            alpha: best_alpha,
            level: daily.level,
            season: daily.season,
            relative_variance: daily.relative_variance,
            holiday_ratio: daily.holiday_ratio,
            profiles,
            dispersion,
            aht,
        }
    }

    /// The forecast of `date` (after the history's last day), a holiday or not.
    pub fn day(&self, date: Date, holiday: bool) -> DayForecast {
        let w = weekday(date);
        let horizon = (date - self.last_date).get_days().max(1) as f64;
        let mut total = self.level * self.season[w];
        if holiday {
            total *= self.holiday_ratio;
        }
        let level_variance = self.relative_variance * (1.0 + (horizon - 1.0) * self.alpha * self.alpha);
        let intervals = (0..SLOTS)
            .map(|slot| {
                let mu = total * self.profiles[w][slot];
                let spread = Z * (self.dispersion * mu + mu * mu * level_variance).sqrt();
                Interval {
                    slot,
                    calls: mu,
                    low: (mu - spread).max(0.0),
                    high: mu + spread,
                    aht_seconds: self.aht[w][slot],
                }
            })
            .collect();
        DayForecast {
            date,
            holiday,
            calls: total,
            intervals,
        }
    }
}

/// Today's forecast re-made from what has happened so far: the remaining intervals scale by
/// the day's actual-to-forecast ratio until `elapsed` slots, damped toward 1 by a prior of
/// `PRIOR_CALLS` forecast calls so that the first few calls of a morning do not swing the day.
pub fn reforecast(day: &DayForecast, actual: &[f64], elapsed: usize) -> DayForecast {
    const PRIOR_CALLS: f64 = 30.0;
    let elapsed = elapsed.min(SLOTS);
    let so_far: f64 = day.intervals[..elapsed].iter().map(|i| i.calls).sum();
    let seen: f64 = actual.iter().take(elapsed).sum();
    let ratio = (seen + PRIOR_CALLS) / (so_far + PRIOR_CALLS);
    let mut out = day.clone();
    for i in out.intervals.iter_mut().skip(elapsed) {
        i.calls *= ratio;
        i.low *= ratio;
        i.high *= ratio;
    }
    out.calls =
        actual.iter().take(elapsed).sum::<f64>() + out.intervals[elapsed..].iter().map(|i| i.calls).sum::<f64>();
    out
}

/// The forecast's error over the last weeks of the history, beside seasonal naive's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Backtest {
    /// Weeks tested: each forecast 1–7 days ahead from the history before it.
    pub weeks: usize,
    /// Σ|actual − forecast| / Σ actual over every interval.
    pub wape: Option<f64>,
    /// Mean absolute error over the in-sample MAE of seasonal naive (lag one week).
    pub mase: Option<f64>,
    pub baseline_wape: Option<f64>,
    pub baseline_mase: Option<f64>,
    /// The share of intervals (with a forecast or a call) whose actual fell in the band.
    pub interval_coverage: Option<f64>,
}

/// Backtests the last `weeks` whole weeks of `history` (fewer when it is short: each needs
/// two weeks before it to learn from).
pub fn backtest(history: &[Day], weeks: usize) -> Backtest {
    let weeks = weeks.min(history.len().saturating_sub(14) / 7);
    let (mut err, mut base_err, mut actual_sum, mut count) = (0.0, 0.0, 0.0, 0usize);
    let (mut covered, mut banded) = (0usize, 0usize);
    let first_cut = history.len() - 7 * weeks;
    for k in (1..=weeks).rev() {
        let cut = history.len() - 7 * k;
        let model = Model::fit(&history[..cut]);
        for i in 0..7 {
            let day = &history[cut + i];
            let forecast = model.day(day.date, day.holiday);
            let last_week = &history[cut + i - 7];
            for s in 0..SLOTS {
                let (a, f) = (day.calls[s], forecast.intervals[s]);
                err += (a - f.calls).abs();
                base_err += (a - last_week.calls[s]).abs();
                actual_sum += a;
                count += 1;
                if f.calls > 0.0 || a > 0.0 {
                    banded += 1;
                    covered += usize::from(a >= f.low && a <= f.high);
                }
            }
        }
    }
    // MASE's scale: seasonal naive's in-sample error before the first tested week.
    let (mut scale, mut scale_n) = (0.0, 0usize);
    for d in 7..first_cut {
        for s in 0..SLOTS {
            scale += (history[d].calls[s] - history[d - 7].calls[s]).abs();
            scale_n += 1;
        }
    }
    let ratio = |x: f64, y: f64| (y > 0.0).then(|| x / y);
    let mae = |e: f64| (count > 0).then(|| e / count as f64);
    let scale = (scale_n > 0).then(|| scale / scale_n as f64);
    Backtest {
        weeks,
        wape: ratio(err, actual_sum),
        mase: mae(err).zip(scale).and_then(|(m, s)| ratio(m, s)),
        baseline_wape: ratio(base_err, actual_sum),
        baseline_mase: mae(base_err).zip(scale).and_then(|(m, s)| ratio(m, s)),
        interval_coverage: (banded > 0).then(|| covered as f64 / banded as f64),
    }
}

/// The local dates `first`, `first + 1`, … (`n` of them).
pub fn dates(first: Date, n: usize) -> Vec<Date> {
    (0..n as i64).filter_map(|i| first.checked_add(i.days()).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator: xorshift, and Poisson draws by inversion (small means)
    /// or a rounded normal (large ones).
    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn poisson(&mut self, mean: f64) -> f64 {
            if mean > 50.0 {
                let (u, v) = (self.unit().max(1e-12), self.unit());
                let normal = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
                return (mean + mean.sqrt() * normal).round().max(0.0);
            }
            let (mut k, mut p, mut cdf) = (0.0, (-mean).exp(), (-mean).exp());
            let u = self.unit();
            while u > cdf && k < 1000.0 {
                k += 1.0;
                p *= mean / k;
                cdf += p;
            }
            k
        }
    }

    /// Known seasonality: weekdays busier than Saturday, closed Sunday and at night, two daily
    /// peaks; handle time longer in the afternoon. `holidays` are closed.
    fn generated(weeks: usize, seed: u64, holidays: &[usize]) -> Vec<Day> {
        let mut rng = Rng(seed);
        let start = Date::new(2026, 1, 5).unwrap(); // a Monday
        let weekly = [1.0, 0.95, 0.9, 0.9, 0.8, 0.35, 0.0];
        dates(start, weeks * 7)
            .into_iter()
            .enumerate()
            .map(|(i, date)| {
                let holiday = holidays.contains(&i);
                let mut day = Day::empty(date, holiday);
                for s in 0..SLOTS {
                    let hour = s as f64 / 4.0;
                    let shape = if (8.0..20.0).contains(&hour) {
                        1.0 + 0.8 * (-(hour - 10.5f64).powi(2) / 2.0).exp()
                            + 0.5 * (-(hour - 15.0f64).powi(2) / 3.0).exp()
                    } else {
                        0.0
                    };
                    let mean = if holiday { 0.0 } else { 12.0 * weekly[i % 7] * shape };
                    day.calls[s] = rng.poisson(mean);
                    day.handle_seconds[s] = day.calls[s] * (180.0 + 4.0 * hour);
                }
                day
            })
            .collect()
    }

    #[test]
    fn the_forecast_beats_seasonal_naive_on_known_seasonality() {
        let history = generated(8, 42, &[]);
        let b = backtest(&history, 4);
        eprintln!("generated backtest: {b:?}");
        assert_eq!(b.weeks, 4);
        let (wape, naive) = (b.wape.unwrap(), b.baseline_wape.unwrap());
        assert!(wape < naive * 0.85, "wape {wape} vs seasonal naive {naive}");
        assert!(
            b.mase.unwrap() < 1.0 && b.baseline_mase.unwrap() > b.mase.unwrap(),
            "{b:?}"
        );
        let coverage = b.interval_coverage.unwrap();
        assert!((0.7..=0.92).contains(&coverage), "80% band covered {coverage}");
    }

    #[test]
    fn the_forecast_recovers_the_seasonality_it_was_given() {
        let history = generated(10, 7, &[]);
        let model = Model::fit(&history);
        let monday = model.day(Date::new(2026, 3, 16).unwrap(), false);
        let saturday = model.day(Date::new(2026, 3, 21).unwrap(), false);
        let sunday = model.day(Date::new(2026, 3, 22).unwrap(), false);
        assert!(
            (saturday.calls / monday.calls - 0.35).abs() < 0.05,
            "{} {}",
            saturday.calls,
            monday.calls
        );
        assert_eq!(sunday.calls, 0.0);
        // Closed at night, busiest around 10:30, AHT as generated.
        assert_eq!(monday.intervals[8].calls, 0.0);
        let peak = monday
            .intervals
            .iter()
            .max_by(|a, b| a.calls.total_cmp(&b.calls))
            .unwrap();
        assert!((40..=44).contains(&peak.slot), "peak at slot {}", peak.slot);
        let aht = monday.intervals[60].aht_seconds.unwrap();
        assert!((aht - 240.0).abs() < 1e-6, "{aht}");
        for i in &monday.intervals {
            assert!(i.low <= i.calls && i.calls <= i.high && i.low >= 0.0);
        }
    }

    #[test]
    fn the_band_widens_with_the_horizon() {
        let history = generated(6, 3, &[]);
        let model = Model::fit(&history);
        let near = model.day(Date::new(2026, 2, 16).unwrap(), false);
        let far = model.day(Date::new(2026, 3, 2).unwrap(), false);
        let width = |d: &DayForecast| d.intervals[42].high - d.intervals[42].low;
        assert!(width(&far) > width(&near), "{} {}", width(&far), width(&near));
    }

    #[test]
    fn holidays_are_learned_from_the_calendar_and_skip_the_smoothing() {
        // Two past holidays (closed) on weekdays; the model neither learns a dip for those
        // weekdays nor forecasts a marked future holiday open.
        let history = generated(6, 11, &[9, 23]);
        let model = Model::fit(&history);
        let tuesday = Date::new(2026, 2, 17).unwrap();
        assert_eq!(model.day(tuesday, true).calls, 0.0);
        let open = model.day(tuesday, false).calls;
        let monday = model.day(Date::new(2026, 2, 16).unwrap(), false).calls;
        assert!(
            open / monday > 0.85,
            "a holiday Tuesday dragged Tuesdays down: {open} vs {monday}"
        );
    }

    #[test]
    fn reforecasting_scales_the_rest_of_the_day() {
        let history = generated(4, 5, &[]);
        let model = Model::fit(&history);
        let day = model.day(Date::new(2026, 2, 2).unwrap(), false);
        let busy: Vec<f64> = day.intervals.iter().map(|i| i.calls * 2.0).collect();
        let again = reforecast(&day, &busy, 48);
        let ratio = again.intervals[60].calls / day.intervals[60].calls;
        assert!(ratio > 1.5 && ratio < 2.0, "{ratio}");
        assert_eq!(again.intervals[10], day.intervals[10]);
    }
}
