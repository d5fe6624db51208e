//! Fair ranking beside a leaderboard's own order (SPEC §14): for each rep, the connect rate's
//! and the meeting rate's Wilson interval, shrunk estimate and rank among the reps with enough
//! volume, with ranks the data cannot support marked uncertain. The maths is
//! `engine::fairness`; this only reads a board's rows (already narrowed by the caller's
//! access) and is called once per board, so it moves with the leaderboard code unchanged.

use dialboard_engine::fairness::{self, Counts, Placed, Ranking};
use dialboard_store::FairRanking;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A rep's fair placements (the entry's `fair`): fields in the order of the object they
/// replace (sorted by name), so the answer's bytes are unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairPlacements {
    pub connect_rate: RatePlacement,
    pub meeting_booked_rate: RatePlacement,
    pub min_calls: u32,
    /// `rate` or `shrunk`.
    pub ranked_by: String,
}

/// The placement on one rate; rates and bounds are percents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatePlacement {
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub rank: Option<usize>,
    pub rate: Option<f64>,
    pub shrunk: Option<f64>,
    pub uncertain: bool,
}

impl RatePlacement {
    fn of(p: &Placed) -> RatePlacement {
        let percent = |x: Option<f64>| x.map(|x| x * 100.0);
        RatePlacement {
            high: percent(p.high),
            low: percent(p.low),
            rank: p.rank,
            rate: percent(p.rate),
            shrunk: percent(p.shrunk),
            uncertain: p.uncertain,
        }
    }
}

fn count(row: &Map<String, Value>, column: &str) -> f64 {
    row.get(column).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Each row's placement on one rate (successes column, trials column), among all `rows`.
fn placed(rows: &[Map<String, Value>], how: &FairRanking, successes: &str, trials: &str) -> Vec<Placed> {
    let board: Vec<Counts> = rows
        .iter()
        .map(|r| Counts {
            successes: count(r, successes),
            trials: count(r, trials),
        })
        .collect();
    // A meeting rate's volume is connects, a connect rate's calls: both need min_calls.
    fairness::rank(
        &board,
        Ranking {
            min_volume: f64::from(how.min_calls),
            by_shrunk: how.by_shrunk,
        },
    )
}

/// The fair placement on the connect rate (connects of calls) and on the meeting rate
/// (meetings of connects) of each row of `shown` (indices into `rows`, the rows a leaderboard
/// answers with), in that order: ranks are among all `rows`, but only the shown rows'
/// placements are built. Anonymous rows (leaderboard privacy) are ranked but not named: `None`.
pub fn placements(rows: &[Map<String, Value>], how: &FairRanking, shown: &[usize]) -> Vec<Option<FairPlacements>> {
    let connect = placed(rows, how, "connected_calls", "total_calls");
    let meeting = placed(rows, how, "meetings_booked", "connected_calls");
    shown
        .iter()
        .map(|&i| {
            let named = rows[i]
                .get("agent")
                .and_then(Value::as_str)
                .is_some_and(|a| a != "anonymous");
            named.then(|| FairPlacements {
                connect_rate: RatePlacement::of(&connect[i]),
                meeting_booked_rate: RatePlacement::of(&meeting[i]),
                min_calls: how.min_calls,
                ranked_by: if how.by_shrunk { "shrunk" } else { "rate" }.to_string(),
            })
        })
        .collect()
}
