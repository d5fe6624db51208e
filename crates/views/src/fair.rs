//! Fair ranking beside a leaderboard's own order (SPEC §14): for each rep, the connect rate's
//! and the meeting rate's Wilson interval, shrunk estimate and rank among the reps with enough
//! volume, with ranks the data cannot support marked uncertain. The maths is
//! `engine::fairness`; this only reads a board's rows (already narrowed by the caller's
//! access) and is called once per board, so it moves with the leaderboard code unchanged.

use dialboard_engine::fairness::{self, Counts, Ranking};
use dialboard_store::FairRanking;
use serde_json::{json, Map, Value};

/// The rates ranked, each as (name, successes column, trials column).
const RATES: [(&str, &str, &str); 2] = [
    ("connect_rate", "connected_calls", "total_calls"),
    ("meeting_booked_rate", "meetings_booked", "connected_calls"),
];

fn count(row: &Map<String, Value>, column: &str) -> f64 {
    row.get(column).and_then(Value::as_f64).unwrap_or(0.0)
}

/// The fair placement on every rate of [`RATES`] of each row of `shown` (indices into `rows`,
/// the rows a leaderboard answers with), in that order: ranks are among all `rows`, but only
/// the shown rows' objects are built. Rates and bounds are percents. Anonymous rows
/// (leaderboard privacy) are ranked but not named: `None`.
pub fn placements(rows: &[Map<String, Value>], how: &FairRanking, shown: &[usize]) -> Vec<Option<Value>> {
    let mut out: Vec<Option<Map<String, Value>>> = shown
        .iter()
        .map(|&i| {
            let named = rows[i]
                .get("agent")
                .and_then(Value::as_str)
                .is_some_and(|a| a != "anonymous");
            named.then(Map::new)
        })
        .collect();
    for (rate, successes, trials) in RATES {
        let board: Vec<Counts> = rows
            .iter()
            .map(|r| Counts {
                successes: count(r, successes),
                trials: count(r, trials),
            })
            .collect();
        // A meeting rate's volume is connects, a connect rate's calls: both need min_calls.
        let placed = fairness::rank(
            &board,
            Ranking {
                min_volume: f64::from(how.min_calls),
                by_shrunk: how.by_shrunk,
            },
        );
        let percent = |x: Option<f64>| x.map(|x| x * 100.0);
        for (&i, rates) in shown.iter().zip(&mut out) {
            let (Some(rates), p) = (rates, &placed[i]) else {
                continue;
            };
            rates.insert(
                rate.to_string(),
                json!({"rank": p.rank, "rate": percent(p.rate), "low": percent(p.low), "high": percent(p.high),
                       "shrunk": percent(p.shrunk), "uncertain": p.uncertain}),
            );
        }
    }
    out.into_iter()
        .map(|rates| {
            rates.map(|mut rates| {
                rates.insert("min_calls".into(), json!(how.min_calls));
                rates.insert("ranked_by".into(), json!(if how.by_shrunk { "shrunk" } else { "rate" }));
                Value::Object(rates)
            })
        })
        .collect()
}
