//! Staffing maths: Erlang C (callers wait as long as it takes) and Erlang A (callers abandon
//! after an exponentially distributed patience), per interval.
//!
//! Both are the M/M/N queue's stationary distribution, computed so that it stays finite for
//! hundreds or thousands of agents: never `A^N / N!` (which overflows past N ≈ 170), but the
//! Erlang B recursion `1/B(n) = 1 + n/A · 1/B(n−1)`, whose terms only grow, and, for Erlang A,
//! the queue's tail in logarithms.
//!
//! Definitions (all per offered call; `A` = traffic in Erlangs = arrival rate × AHT):
//! - `probability_wait`: an arriving caller finds every agent busy (PASTA).
//! - `service_level`: the share of offered calls answered within `target_seconds` (a caller who
//!   abandons counts as not answered in time).
//! - `asa_seconds`: the mean wait over all offered calls, `E[queue] / λ` by Little's law; for
//!   Erlang C this is the textbook ASA `C · AHT / (N − A)`.
//! - `occupancy`: the share of agents' time spent handling calls, `A (1 − P(abandon)) / N`.
//!
//! Erlang A is the Palm / Garnett–Mandelbaum–Reiman M/M/N+M model ("Designing a call center
//! with impatient customers", MSOM 2002): a birth–death chain whose death rate in state `k` is
//! `min(k, N) μ + max(k − N, 0) θ` with `θ = 1 / mean patience`. The service level of a caller
//! who finds `m` callers waiting ahead is the probability that `m + 1` advances (each at rate
//! `Nμ + jθ`, `j` callers still ahead) happen within the target before its own patience runs
//! out (rate `θ`), computed by uniformization: a sum of positive terms, no cancellation.

/// The Erlang B blocking probability's inverse, `1/B(N, A)`, by the stable recursion. Infinite
/// when `B` underflows (far more agents than traffic), which callers read as "never waits".
fn inverse_erlang_b(agents: u32, traffic: f64) -> f64 {
    let mut inv = 1.0;
    for n in 1..=agents {
        inv = 1.0 + f64::from(n) / traffic * inv;
        if inv.is_infinite() {
            break;
        }
    }
    inv
}

/// Erlang B: the probability that a call finds all `agents` busy in a loss system.
pub fn erlang_b(agents: u32, traffic: f64) -> f64 {
    if traffic <= 0.0 {
        return if agents == 0 { 1.0 } else { 0.0 };
    }
    1.0 / inverse_erlang_b(agents, traffic)
}

/// Erlang C: the probability that a call waits, with `agents` serving `traffic` Erlangs and
/// callers who never hang up. 1 when the queue is unstable (`agents ≤ traffic`).
pub fn erlang_c(agents: u32, traffic: f64) -> f64 {
    if traffic <= 0.0 {
        return 0.0;
    }
    let n = f64::from(agents);
    if n <= traffic {
        return 1.0;
    }
    let b = erlang_b(agents, traffic);
    n * b / (n - traffic * (1.0 - b))
}

/// The offered load of one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub calls_per_hour: f64,
    pub aht_seconds: f64,
}

impl Load {
    /// Traffic intensity in Erlangs.
    pub fn traffic(&self) -> f64 {
        self.calls_per_hour * self.aht_seconds / 3600.0
    }
}

/// What a number of agents gives for a load.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub agents: u32,
    pub probability_wait: f64,
    pub service_level: f64,
    pub asa_seconds: f64,
    pub occupancy: f64,
    /// Erlang A only: the share of offered calls that abandon.
    pub abandon_probability: Option<f64>,
}

impl Outcome {
    fn idle(agents: u32, abandon_probability: Option<f64>) -> Outcome {
        Outcome {
            agents,
            probability_wait: 0.0,
            service_level: 1.0,
            asa_seconds: 0.0,
            occupancy: 0.0,
            abandon_probability,
        }
    }
}

/// Erlang C's outcome for `agents` on `load`, answered within `target_seconds`. An unstable
/// queue (too few agents) waits forever: service level 0, ASA infinite, occupancy 1.
pub fn erlang_c_outcome(agents: u32, load: Load, target_seconds: f64) -> Outcome {
    let a = load.traffic();
    let n = f64::from(agents);
    if a <= 0.0 {
        return Outcome::idle(agents, None);
    }
    if n <= a {
        return Outcome {
            agents,
            probability_wait: 1.0,
            service_level: 0.0,
            asa_seconds: f64::INFINITY,
            occupancy: 1.0,
            abandon_probability: None,
        };
    }
    let c = erlang_c(agents, a);
    Outcome {
        agents,
        probability_wait: c,
        service_level: 1.0 - c * (-(n - a) * target_seconds / load.aht_seconds).exp(),
        asa_seconds: c * load.aht_seconds / (n - a),
        occupancy: a / n,
        abandon_probability: None,
    }
}

/// Erlang A's outcome: as [`erlang_c_outcome`], with callers abandoning after an exponential
/// patience of mean `patience_seconds`.
pub fn erlang_a_outcome(agents: u32, load: Load, target_seconds: f64, patience_seconds: f64) -> Outcome {
    let lambda = load.calls_per_hour / 3600.0;
    let a = load.traffic();
    if a <= 0.0 {
        return Outcome::idle(agents, Some(0.0));
    }
    let mu = 1.0 / load.aht_seconds;
    let theta = 1.0 / patience_seconds;
    let n = f64::from(agents);
    // Stationary weights relative to π_N = 1: states below N sum to 1/B − 1, the queue's
    // states N+m (m ≥ 1) weigh t_m = Π_{j=1..m} λ / (Nμ + jθ), kept as logarithms.
    let inv_b = inverse_erlang_b(agents, a);
    let mut log_tail = Vec::new();
    let mut log_t = 0.0f64;
    let mut peak = 0.0f64;
    for m in 1..=10_000_000u32 {
        let rate = n * mu + f64::from(m) * theta;
        log_t += (lambda / rate).ln();
        peak = peak.max(log_t);
        log_tail.push(log_t);
        // Past the peak the terms fall geometrically; e^-45 of the peak is below f64's reach.
        if rate > lambda && log_t < peak - 45.0 {
            break;
        }
    }
    let scale = |l: f64| (l - peak).exp();
    let at_n = scale(0.0);
    let head = (inv_b - 1.0) * at_n;
    let tail: f64 = log_tail.iter().map(|&l| scale(l)).sum();
    let queue: f64 = log_tail
        .iter()
        .enumerate()
        .map(|(i, &l)| (i + 1) as f64 * scale(l))
        .sum();
    let total = head + at_n + tail;
    if total.is_infinite() {
        // Far more agents than traffic: nobody waits.
        return Outcome {
            occupancy: a / n,
            ..Outcome::idle(agents, Some(0.0))
        };
    }
    let probability_wait = (at_n + tail) / total;
    let mean_queue = queue / total;
    let abandon = (theta * mean_queue / lambda).min(1.0);
    // An arrival finding m callers waiting ahead (state N+m) has probability ahead[m].
    let mut ahead: Vec<f64> = std::iter::once(at_n / total)
        .chain(log_tail.iter().map(|&l| scale(l) / total))
        .collect();
    let answered_late = answered_within(&mut ahead, n * mu, theta, target_seconds);
    Outcome {
        agents,
        probability_wait,
        service_level: ((1.0 - probability_wait) + answered_late).min(1.0),
        asa_seconds: mean_queue / lambda,
        occupancy: (a * (1.0 - abandon) / n).min(1.0),
        abandon_probability: Some(abandon),
    }
}

/// Of callers who wait (`ahead[m]`: the probability of arriving with `m` callers ahead), the
/// probability of being answered within `t` seconds before abandoning. A caller with `j`
/// ahead advances at `served + jθ` and leaves at `θ`. Uniformization at a rate above every
/// state's total turns time into a Poisson number of steps; `ahead` is propagated step by step.
fn answered_within(ahead: &mut Vec<f64>, served: f64, theta: f64, t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    // Starts of negligible probability change nothing.
    let mass: f64 = ahead.iter().sum();
    while ahead.len() > 1 && ahead.last().is_some_and(|&w| w < mass * 1e-15) {
        ahead.pop();
    }
    // A caller starting with m ahead needs m+1 steps; past Λt + 12√(Λt) + 30 steps the Poisson
    // tail is negligible, so deeper starts never make it in time.
    let uniform = |len: usize| served + (len + 1) as f64 * theta;
    let steps_for = |rate: f64| (rate * t + 12.0 * (rate * t).sqrt() + 30.0).ceil() as usize;
    let mut rate = uniform(ahead.len());
    let mut steps = steps_for(rate);
    if ahead.len() > steps {
        ahead.truncate(steps);
        rate = uniform(ahead.len());
        steps = steps_for(rate);
    }
    let mean = rate * t;
    let mut log_pmf = -mean; // ln P(N(t) = k − 1)
    let mut cdf_below = 0.0; // P(N(t) < k)
    let mut answered = 0.0;
    let mut next = vec![0.0; ahead.len()];
    for k in 1..=steps {
        cdf_below += log_pmf.exp();
        log_pmf += mean.ln() - (k as f64).ln();
        let reached_by_t = (1.0 - cdf_below).max(0.0);
        answered += ahead[0] * served / rate * reached_by_t;
        for j in 0..ahead.len() {
            let advance_in = ahead
                .get(j + 1)
                .map_or(0.0, |w| w * (served + (j + 1) as f64 * theta) / rate);
            let stay = 1.0 - (served + (j + 1) as f64 * theta) / rate;
            next[j] = ahead[j] * stay + advance_in;
        }
        std::mem::swap(ahead, &mut next);
    }
    answered
}

/// The callers' mean patience, estimated from what happened to them: with exponential
/// patience of rate `θ`, the maximum-likelihood estimate from censored waits is
/// `θ̂ = abandons / total time waited by all callers` — abandoned callers count their wait
/// until they hung up, served ones their wait until answered (which only says their patience
/// was longer). Mean patience is `1 / θ̂`. (Mandelbaum & Zeltyn, "The impact of customers'
/// patience on delay and abandonment", Operations Research Letters / OR Spectrum 2004:
/// `θ ≈ P(abandon) / E[wait]`, the same ratio.) `None` without an abandon: no sign of
/// impatience, Erlang C applies.
pub fn estimated_patience(total_wait_seconds: f64, abandons: u64) -> Option<f64> {
    (abandons > 0 && total_wait_seconds > 0.0).then(|| total_wait_seconds / abandons as f64)
}

/// A service target: `service_level` (0–1) of calls answered within `target_seconds`, at
/// most `max_occupancy` (0–1], with `shrinkage` [0, 1) of scheduled time lost to breaks,
/// training and absence; `patience_seconds` selects Erlang A.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub service_level: f64,
    pub target_seconds: f64,
    pub max_occupancy: f64,
    pub shrinkage: f64,
    pub patience_seconds: Option<f64>,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            service_level: 0.8,
            target_seconds: 20.0,
            max_occupancy: 0.85,
            shrinkage: 0.3,
            patience_seconds: None,
        }
    }
}

/// How many agents a load needs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Staffing {
    /// Agents on the phones: the fewest meeting both the service level and the occupancy cap.
    pub agents: u32,
    /// Agents to schedule so that `agents` remain after shrinkage: `⌈agents / (1 − shrinkage)⌉`.
    pub scheduled_agents: u32,
    pub outcome: Outcome,
}

/// The outcome of `agents` on `load` under the model `target` selects.
pub fn outcome(agents: u32, load: Load, target: &Target) -> Outcome {
    match target.patience_seconds {
        Some(p) => erlang_a_outcome(agents, load, target.target_seconds, p),
        None => erlang_c_outcome(agents, load, target.target_seconds),
    }
}

/// The fewest agents meeting `target` on `load`. The service level rises with agents and
/// occupancy falls, so the search starts at a lower bound and walks up: for Erlang C the
/// occupancy cap (and a stable queue); for Erlang A the answered share, since agents must
/// carry at least `service_level × A` Erlangs.
pub fn staff(load: Load, target: &Target) -> Staffing {
    let a = load.traffic();
    let mut agents = match (a > 0.0, target.patience_seconds) {
        (false, _) => 0,
        // The 1e-9 keeps 40.000000001 from asking for 41.
        (true, None) => (((a / target.max_occupancy) - 1e-9).ceil() as u32).max(a.floor() as u32 + 1),
        (true, Some(_)) => ((a * target.service_level).floor() as u32).max(1),
    };
    let mut found = outcome(agents, load, target);
    while found.service_level + 1e-12 < target.service_level || found.occupancy > target.max_occupancy + 1e-12 {
        agents += 1;
        found = outcome(agents, load, target);
    }
    Staffing {
        agents,
        scheduled_agents: scheduled(agents, target.shrinkage),
        outcome: found,
    }
}

/// Agents to schedule so that `agents` are left after `shrinkage`.
pub fn scheduled(agents: u32, shrinkage: f64) -> u32 {
    ((f64::from(agents) / (1.0 - shrinkage)) - 1e-9).ceil().max(0.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn erlang_c_matches_the_published_example() {
        // 10 Erlangs on 14 agents (200 calls/h at 180 s): P(wait) 0.1741, 88.8% in 20 s,
        // ASA 7.84 s — the values of every Erlang C table.
        let load = Load {
            calls_per_hour: 200.0,
            aht_seconds: 180.0,
        };
        let o = erlang_c_outcome(14, load, 20.0);
        assert!(close(o.probability_wait, 0.1741, 0.00005), "{o:?}");
        assert!(close(o.service_level, 0.888, 0.0005), "{o:?}");
        assert!(close(o.asa_seconds, 7.84, 0.005), "{o:?}");
        assert!(close(o.occupancy, 10.0 / 14.0, 1e-12));
    }

    #[test]
    fn the_occupancy_cap_and_shrinkage_set_the_headcount() {
        // 1,000 calls/h at 120 s = 33.3 Erlangs: 80/20 alone needs fewer, the 85% cap 40, and
        // 30% shrinkage 58 scheduled.
        let load = Load {
            calls_per_hour: 1000.0,
            aht_seconds: 120.0,
        };
        let s = staff(
            load,
            &Target {
                shrinkage: 0.3,
                ..Target::default()
            },
        );
        assert_eq!((s.agents, s.scheduled_agents), (40, 58));
        assert!(s.outcome.service_level >= 0.8 && s.outcome.occupancy <= 0.85);
        let uncapped = staff(
            load,
            &Target {
                max_occupancy: 1.0,
                ..Target::default()
            },
        );
        assert!(uncapped.agents < 40);
        let below = erlang_c_outcome(uncapped.agents - 1, load, 20.0);
        assert!(below.service_level < 0.8, "the fewest agents: {below:?}");
    }

    #[test]
    fn hundreds_of_agents_stay_finite() {
        for (calls, agents) in [(20_000.0, 700u32), (60_000.0, 2_100), (100.0, 3_000)] {
            let load = Load {
                calls_per_hour: calls,
                aht_seconds: 120.0,
            };
            let o = erlang_c_outcome(agents, load, 20.0);
            assert!(
                o.probability_wait.is_finite() && (0.0..=1.0).contains(&o.probability_wait),
                "{o:?}"
            );
            assert!((0.0..=1.0).contains(&o.service_level), "{o:?}");
            let a = erlang_a_outcome(agents, load, 20.0, 60.0);
            assert!((0.0..=1.0).contains(&a.service_level), "{a:?}");
        }
        let s = staff(
            Load {
                calls_per_hour: 20_000.0,
                aht_seconds: 120.0,
            },
            &Target::default(),
        );
        // 666.7 Erlangs: the 85% cap dominates.
        assert_eq!(s.agents, 785);
    }

    #[test]
    fn erlang_b_recursion_matches_the_closed_form_where_it_is_finite() {
        let (n, a) = (12u32, 8.5f64);
        let term = |k: u32| a.powi(k as i32) / (1..=k).map(f64::from).product::<f64>();
        let closed = term(n) / (0..=n).map(term).sum::<f64>();
        assert!(close(erlang_b(n, a), closed, 1e-15));
    }

    /// Callers of an M/M/N+M queue (FCFS): each one's wait (until answered or until they
    /// hung up) and whether they abandoned, from a seeded simulation.
    fn simulated_queue(calls: usize, calls_per_hour: f64, aht: f64, agents: usize, patience: f64) -> Vec<(f64, bool)> {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut exp = |mean: f64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            -mean * (1.0 - (seed >> 11) as f64 / (1u64 << 53) as f64).ln()
        };
        let (mut t, mut free) = (0.0, vec![0.0f64; agents]);
        (0..calls)
            .map(|_| {
                t += exp(3600.0 / calls_per_hour);
                let (next, at) =
                    free.iter()
                        .copied()
                        .enumerate()
                        .fold((0, f64::INFINITY), |b, (i, f)| if f < b.1 { (i, f) } else { b });
                let wait = (at - t).max(0.0);
                let limit = exp(patience);
                if wait > limit {
                    (limit, true)
                } else {
                    free[next] = t + wait + exp(aht);
                    (wait, false)
                }
            })
            .collect()
    }

    #[test]
    fn patience_estimated_from_waits_and_abandons_recovers_the_true_mean() {
        for (patience, agents) in [(60.0, 9), (180.0, 10), (600.0, 10)] {
            let callers = simulated_queue(200_000, 200.0, 180.0, agents, patience);
            let waited: f64 = callers.iter().map(|c| c.0).sum();
            let abandons = callers.iter().filter(|c| c.1).count() as u64;
            let estimate = estimated_patience(waited, abandons).unwrap();
            assert!(abandons > 1_000, "{abandons} abandons");
            assert!((estimate / patience - 1.0).abs() < 0.05, "{estimate} vs {patience}");
        }
        assert_eq!(estimated_patience(1000.0, 0), None);
    }

    #[test]
    fn erlang_a_tends_to_erlang_c_as_patience_grows() {
        let load = Load {
            calls_per_hour: 200.0,
            aht_seconds: 180.0,
        };
        let c = erlang_c_outcome(14, load, 20.0);
        let a = erlang_a_outcome(14, load, 20.0, 1e9);
        assert!(close(a.probability_wait, c.probability_wait, 1e-5), "{a:?} {c:?}");
        assert!(close(a.service_level, c.service_level, 1e-5), "{a:?} {c:?}");
        assert!(close(a.asa_seconds, c.asa_seconds, 1e-3), "{a:?} {c:?}");
    }

    #[test]
    fn erlang_a_is_stable_when_overloaded() {
        // More traffic than agents: Erlang C has no steady state, Erlang A does.
        let load = Load {
            calls_per_hour: 600.0,
            aht_seconds: 180.0,
        };
        let o = erlang_a_outcome(25, load, 20.0, 120.0);
        let ab = o.abandon_probability.unwrap();
        // At least the excess traffic abandons: (30 − 25) / 30.
        assert!(ab > 5.0 / 30.0 && ab < 1.0, "{o:?}");
        assert!(o.occupancy <= 1.0 && o.occupancy > 0.95, "{o:?}");
    }

    #[test]
    fn erlang_a_matches_a_simulation_by_ciw() {
        // Reference: ciw 3.2.7 (Palmer, Knight, Harper & Tuson, "Ciw: an open-source discrete
        // event simulation library", J. Simulation 2019), M/M/N+M, six runs of 400,000 s each
        // after a 20,000 s warm-up (crates/engine/tests/reference/erlang_a_ciw.py). Each
        // figure: (mean over runs, its standard error); ours must fall within 4 of them.
        let cases = [
            // calls/h, AHT, agents, patience, target: abandon, service level, mean wait
            (
                (200.0, 180.0, 12, 120.0, 20.0),
                (0.06034, 0.00205),
                (0.83243, 0.00592),
                (7.0465, 0.2603),
            ),
            (
                (600.0, 180.0, 25, 120.0, 20.0),
                (0.18867, 0.00088),
                (0.43840, 0.00357),
                (22.6697, 0.1393),
            ),
            (
                (360.0, 300.0, 28, 180.0, 30.0),
                (0.12109, 0.00121),
                (0.62764, 0.00389),
                (21.9220, 0.1794),
            ),
        ];
        for ((calls, aht, agents, patience, t), ab, sl, wait) in cases {
            let o = erlang_a_outcome(
                agents,
                Load {
                    calls_per_hour: calls,
                    aht_seconds: aht,
                },
                t,
                patience,
            );
            let within = |ours: f64, (mean, se): (f64, f64)| (ours - mean).abs() <= 4.0 * se;
            assert!(within(o.abandon_probability.unwrap(), ab), "abandon {o:?} vs {ab:?}");
            assert!(within(o.service_level, sl), "service level {o:?} vs {sl:?}");
            assert!(within(o.asa_seconds, wait), "wait {o:?} vs {wait:?}");
        }
    }
}
