//! Whose records a caller reads ([`Reach`]), and what a rep (a caller of agent reach) sees of
//! colleagues. The leaderboard's own
//! measures — volume, connects, rate, meetings, talk time, call score and hours logged in (the
//! board ranks by them, SPEC §14 rates per hour logged in) — are shared: a rep reads them of
//! any colleague, by name. Every other measure (filler words, idle minutes, talk ratio,
//! sentiment, waits, …) is private, as the coaching and compliance views hide it, and a rep
//! reads it only
//! - of their own records: the query is filtered to `agent = self` (any breakdown), or their
//!   own row of a breakdown by agent;
//! - merged over the whole tenant or one of their own teams: a query whose only breakdowns
//!   are by agent (colleagues' rows hidden as above) and by time (`granularity`,
//!   `hour_of_day`, `day_of_week`), filtered by nothing but time and their own teams.
//!
//! Any other breakdown or filter — another team, a campaign, list, lead source, disposition,
//! channel, stage, intent, score range, direction — can narrow the merge to one colleague
//! (a campaign one rep works, a team of one), so there those measures are `null`: in rows,
//! totals and the comparison. What remains is what any shared aggregate gives away (the
//! tenant's number minus one's own when there are two reps), which the leaderboard accepts.
//! Nor may a rep order colleagues' rows by a private measure (rows are ordered and cut at the
//! limit before they are hidden): [`check_private_order`].
//! Under the tenant's `leaderboard_privacy`, colleagues are `anonymous`, and rows are ordered
//! by what the caller sees (the query's `order_by`, then the visible columns), never by the
//! hidden ids: no position links a row to a colleague.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::HashSet;

/// Whose records a caller reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Every record of the tenant (admins, viewers, unbound keys).
    All,
    /// The records of these teams (managers, team-bound keys).
    Teams(Vec<String>),
    /// Its own agent's records, plus aggregates over teams and the tenant (agents,
    /// agent-bound keys); `teams` are the agent's own, for live team scopes.
    Agent { id: String, teams: Vec<String> },
}

impl Reach {
    /// Whether this caller sees every agent's and team's records.
    pub fn sees_everyone(&self) -> bool {
        *self == Reach::All
    }

    /// Whether a record of `agent` in `team` is visible to this caller.
    pub fn sees_record(&self, agent: Option<&str>, team: Option<&str>) -> bool {
        match self {
            Reach::All => true,
            Reach::Teams(teams) => team.is_some_and(|t| teams.iter().any(|x| x == t)),
            Reach::Agent { id, .. } => agent == Some(id.as_str()),
        }
    }

    /// Narrows a query-shaped body to what this caller may read, the one place every read
    /// passes through. A manager reads their teams only. An agent reads their own records
    /// (`records`: raw calls) and filters by no other agent; aggregates stay open to them,
    /// including a breakdown by agent (a leaderboard, see [`Reach::redact`]). Asking for
    /// more is refused with a message naming the filter (a 403).
    pub fn restrict(&self, body: &mut Value, records: bool) -> Result<(), String> {
        let (dimension, allowed) = match self {
            Reach::All => return Ok(()),
            Reach::Teams(teams) => ("team", teams.clone()),
            Reach::Agent { id, teams } => {
                if !records {
                    check_private_order(body, teams)?;
                }
                if !records && body["filters"].get("agent").is_none() {
                    return Ok(());
                }
                ("agent", vec![id.clone()])
            }
        };
        let Some(obj) = body.as_object_mut() else {
            return Ok(()); // the query's own validation reports it
        };
        let filters = obj.entry("filters").or_insert_with(|| json!({}));
        let Some(filters) = filters.as_object_mut() else {
            return Ok(());
        };
        match filters.get(dimension).and_then(Value::as_array) {
            Some(asked) => {
                if let Some(other) = asked
                    .iter()
                    .find(|v| !v.as_str().is_some_and(|v| allowed.iter().any(|a| a == v)))
                {
                    return Err(format!(
                        "filters.{dimension}: {other} is not visible to this credential"
                    ));
                }
            }
            None => {
                filters.insert(dimension.into(), json!(allowed));
            }
        }
        Ok(())
    }

    /// Whether this caller sees a rep's individual coaching and compliance rows: a rep
    /// sees only their own (rankings, unlike these, are shared with the team).
    pub fn sees_individual(&self, agent: &str) -> bool {
        match self {
            Reach::Agent { id, .. } => id == agent,
            _ => true,
        }
    }

    /// Under leaderboard privacy an agent sees other reps only as `anonymous`: then this is the
    /// one agent whose name it sees (its own); `None` when it sees every name it may read.
    pub fn only_named(&self, leaderboard_privacy: bool) -> Option<&str> {
        match self {
            Reach::Agent { id, .. } if leaderboard_privacy => Some(id),
            _ => None,
        }
    }

    /// The caller's own agent, for a rep.
    pub fn own_agent(&self) -> Option<&str> {
        match self {
            Reach::Agent { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// The measures a rep sees of each colleague: those of the leaderboard views.
pub const COLLEAGUE_MEASURES: [&str; 11] = [
    "total_calls",
    "connected_calls",
    "connect_rate",
    "meetings_booked",
    "total_talk_time",
    "avg_call_score",
    "active_hours",
    "logged_in_hours",
    "calls_per_logged_in_hour",
    "connects_per_logged_in_hour",
    "meetings_per_logged_in_hour",
];

pub const ANONYMOUS: &str = "anonymous";

/// Breakdowns and filters by time only: they never select whose work is merged.
const TIME_DIMENSIONS: [&str; 2] = ["hour_of_day", "day_of_week"];

/// Whether `query` is filtered to agents ([restricted](Reach::restrict): the caller alone).
fn own_records(query: &Value) -> bool {
    query["filters"]["agent"]
        .as_array()
        .is_some_and(|agents| !agents.is_empty())
}

/// Rows are ordered, and cut at the limit, before colleagues' private measures are hidden: a
/// rep ordering colleagues by one would learn their ranking. So a rep orders by a private
/// measure only where it is open on every row: their own records, or a merge not broken down
/// by agent. Else a 403 naming `order_by`.
pub fn check_private_order(query: &Value, teams: &[String]) -> Result<(), String> {
    let by_agent = query["dimensions"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d == "agent"));
    if own_records(query) || (!by_agent && merges_without_isolating(query, teams)) {
        return Ok(());
    }
    let measures = query["measures"].as_array();
    let private = query["order_by"].as_array().into_iter().flatten().find_map(|pair| {
        let column = pair.get(0)?.as_str()?;
        let asked = measures.is_some_and(|m| m.iter().any(|m| m == column));
        (asked && !COLLEAGUE_MEASURES.contains(&column)).then_some(column)
    });
    match private {
        Some(column) => Err(format!(
            "order_by: {column} is private to each colleague; order by a leaderboard measure, \
             or ask for your own records (filters.agent)"
        )),
        None => Ok(()),
    }
}

/// Whether `query` (already [restricted](Reach::restrict)) merges private measures only
/// over the caller's own records, or over the tenant or one of `teams` with no breakdown
/// that could isolate a colleague (see the module's rule).
fn merges_without_isolating(query: &Value, teams: &[String]) -> bool {
    if own_records(query) {
        return true;
    }
    let dimensions_ok = query["dimensions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|d| d.as_str().is_some_and(|d| d == "agent" || TIME_DIMENSIONS.contains(&d)));
    let filters_ok = query["filters"].as_object().into_iter().flatten().all(|(d, values)| {
        TIME_DIMENSIONS.contains(&d.as_str())
            || (d == "team"
                && values.as_array().is_some_and(|values| {
                    !values.is_empty() && values.iter().all(|v| teams.iter().any(|t| v.as_str() == Some(t)))
                }))
    });
    dimensions_ok && filters_ok
}

impl Reach {
    /// Applies this module's rules to a `/query`-shaped result of `query` (the body as
    /// [restricted](Reach::restrict) for this caller).
    pub fn redact(&self, result: &mut Value, leaderboard_privacy: bool, query: &Value) {
        self.redact_opted_out(result, leaderboard_privacy, &HashSet::new(), query)
    }

    /// [`Reach::redact`], where the reps of `opted_out` (SPEC §14: out of public leaderboards)
    /// are `anonymous` to colleagues as every rep is under leaderboard privacy; a rep still
    /// sees their own row, and managers and admins see every name.
    pub fn redact_opted_out(
        &self,
        result: &mut Value,
        leaderboard_privacy: bool,
        opted_out: &HashSet<String>,
        query: &Value,
    ) {
        let Reach::Agent { id: own, teams } = self else {
            return;
        };
        let columns: Vec<String> = result["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(String::from))
            .collect();
        let agent = columns.iter().position(|c| c == "agent");
        let merged = merges_without_isolating(query, teams);
        if merged && agent.is_none() {
            return;
        }
        let key_len = result["totals"]
            .as_object()
            .map_or(columns.len(), |t| columns.len() - t.len());
        let private = |name: &str| !COLLEAGUE_MEASURES.contains(&name);
        let hidden: Vec<usize> = (key_len..columns.len()).filter(|i| private(&columns[*i])).collect();
        if !merged {
            hide_private(&mut result["totals"], &private);
            if let Some(comparison) = result.get_mut("comparison") {
                for part in ["totals", "change_percent"] {
                    if let Some(per_measure) = comparison.get_mut(part) {
                        hide_private(per_measure, &private);
                    }
                }
            }
        }
        let order = sort_columns(&columns, key_len, &query["order_by"]);
        let redact_rows = |rows: &mut Value| {
            let Some(rows) = rows.as_array_mut() else {
                return;
            };
            for row in rows.iter_mut() {
                let own_row = agent.is_some_and(|a| row[a].as_str() == Some(own.as_str()));
                if own_row || (merged && agent.is_none()) {
                    continue;
                }
                for &i in &hidden {
                    row[i] = Value::Null;
                }
                if let Some(agent) = agent {
                    let out = row[agent].as_str().is_some_and(|a| opted_out.contains(a));
                    if leaderboard_privacy || out {
                        row[agent] = json!(ANONYMOUS);
                    }
                }
            }
            // As the engine does, rows with nothing to show are left out.
            rows.retain(|row| {
                row.as_array()
                    .is_some_and(|r| r[key_len..].iter().any(|v| v.as_f64().is_some_and(|x| x != 0.0)))
            });
            if (leaderboard_privacy || !opted_out.is_empty()) && agent.is_some() {
                rows.sort_by(|a, b| compare_visible(a, b, &order, key_len));
            }
        };
        redact_rows(&mut result["rows"]);
        if let Some(comparison) = result.get_mut("comparison") {
            redact_rows(&mut comparison["rows"]);
        }
    }
}

/// Nulls the private measures of a `{measure: value}` object (totals, change percents).
fn hide_private(per_measure: &mut Value, private: &impl Fn(&str) -> bool) {
    for (name, value) in per_measure.as_object_mut().into_iter().flatten() {
        if private(name) {
            *value = Value::Null;
        }
    }
}

/// The columns rows are ordered by: `order_by`'s, then every key column ascending, then every
/// measure descending (so equal keys are told apart only by what is shown).
fn sort_columns(columns: &[String], key_len: usize, order_by: &Value) -> Vec<(usize, bool)> {
    let asked = order_by.as_array().into_iter().flatten().filter_map(|pair| {
        let column = pair.get(0)?.as_str()?;
        let desc = pair.get(1)?.as_str()? == "desc";
        Some((columns.iter().position(|c| c == column)?, desc))
    });
    asked
        .chain((0..key_len).map(|i| (i, false)))
        .chain((key_len..columns.len()).map(|i| (i, true)))
        .collect()
}

fn compare_visible(a: &Value, b: &Value, order: &[(usize, bool)], key_len: usize) -> Ordering {
    for &(i, desc) in order {
        let (x, y) = (&a[i], &b[i]);
        let ord = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            // Null keys come first, as in the engine; null measures last.
            (true, false) if i < key_len => Ordering::Less,
            (false, true) if i < key_len => Ordering::Greater,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let o = match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    _ => x.as_str().cmp(&y.as_str()),
                };
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep() -> Reach {
        Reach::Agent {
            id: "a2".into(),
            teams: vec![],
        }
    }

    #[test]
    fn colleagues_show_only_leaderboard_measures() {
        let mut r = json!({"columns": ["agent", "total_calls", "filler_word_rate"],
            "rows": [["a1", 3, 2.5], ["a2", 4, 1.0], ["a3", 0, 7.0]],
            "totals": {"total_calls": 7, "filler_word_rate": 3.5}});
        rep().redact(&mut r, false, &Value::Null);
        assert_eq!(r["rows"], json!([["a1", 3, null], ["a2", 4, 1.0]]));
        assert_eq!(r["totals"]["filler_word_rate"], 3.5, "aggregates stay open");
    }

    #[test]
    fn anonymous_rows_are_ordered_by_what_is_visible_not_by_id() {
        for rows in [
            json!([["a1", 5], ["a3", 9], ["a4", 7]]),
            json!([["a1", 9], ["a3", 7], ["a4", 5]]),
        ] {
            let mut r = json!({"columns": ["agent", "total_calls"], "rows": rows, "totals": {"total_calls": 21}});
            rep().redact(&mut r, true, &Value::Null);
            assert_eq!(r["rows"], json!([["anonymous", 9], ["anonymous", 7], ["anonymous", 5]]));
        }
        let mut r = json!({"columns": ["agent", "total_calls"], "rows": [["a1", 5], ["a2", 1], ["a3", 9]],
            "totals": {"total_calls": 15}});
        rep().redact(&mut r, true, &json!({"order_by": [["total_calls", "asc"]]}));
        assert_eq!(r["rows"], json!([["a2", 1], ["anonymous", 5], ["anonymous", 9]]));
    }
}
