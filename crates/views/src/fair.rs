//! Fair ranking beside a leaderboard's own order (SPEC §14): for each rep, the connect rate's
//! and the meeting rate's Wilson interval, shrunk estimate and rank among the reps with enough
//! volume, with ranks the data cannot support marked uncertain. The maths is
//! `engine::fairness`; this only reads a board's rows (already narrowed by the caller's
//! access) and is called once per board, so it moves with the leaderboard code unchanged.

use dialboard_engine::fairness::{self, Counts, Ranking};
use dialboard_store::FairRanking;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The rates ranked, each as (name, successes column, trials column).
const RATES: [(&str, &str, &str); 2] = [
    ("connect_rate", "connected_calls", "total_calls"),
    ("meeting_booked_rate", "meetings_booked", "connected_calls"),
];

fn count(row: &Map<String, Value>, column: &str) -> f64 {
    row.get(column).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Each named rep's fair placement on every rate of [`RATES`], keyed by agent id. Rates and
/// bounds are percents. Anonymous rows (leaderboard privacy) are ranked but not named.
pub fn placements(rows: &[Map<String, Value>], how: &FairRanking) -> HashMap<String, Value> {
    let mut out: HashMap<String, Map<String, Value>> = HashMap::new();
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
        for (row, p) in rows.iter().zip(placed) {
            let Some(agent) = row.get("agent").and_then(Value::as_str).filter(|a| *a != "anonymous") else {
                continue;
            };
            out.entry(agent.to_string()).or_default().insert(
                rate.to_string(),
                json!({"rank": p.rank, "rate": percent(p.rate), "low": percent(p.low), "high": percent(p.high),
                       "shrunk": percent(p.shrunk), "uncertain": p.uncertain}),
            );
        }
    }
    out.into_iter()
        .map(|(agent, mut rates)| {
            rates.insert("min_calls".into(), json!(how.min_calls));
            rates.insert("ranked_by".into(), json!(if how.by_shrunk { "shrunk" } else { "rate" }));
            (agent, Value::Object(rates))
        })
        .collect()
}
