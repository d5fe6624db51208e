//! Leaderboards of a team or of the tenant: the seed's LeaderboardEntry rows.

use crate::agents::RANKING;
use crate::kpis::period;
use crate::params::Shared;
use crate::types::{metric, Metric, Period};
use crate::view::{add_missing_agents, by_key, choice, days, invalid, num, percent, range, records, shifted, View};
use crate::{Cx, ViewError};
use dialboard_engine::query::preset_range;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const BOARD: [&str; 6] = [
    "total_calls",
    "connected_calls",
    "connect_rate",
    "meetings_booked",
    "total_talk_time",
    "avg_call_score",
];

const SORTS: [&str; 4] = ["calls", "connects", "meetings", "score"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamLeaderboardParams {
    pub team_id: String,
    #[serde(flatten)]
    pub shared: Shared,
    /// The day ranked (and of the sparklines); the shared range, else today, by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// `calls` (default), `connects`, `meetings` or `score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    /// How many of the top rows (1–10,000, default 100); a rep's own row is always there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantLeaderboardParams {
    #[serde(flatten)]
    pub shared: Shared,
    /// `today` (default), `week`, `month` or `all_time`; overrides the shared range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// One ranked rep (the seed's LeaderboardEntry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaderboardEntry {
    pub rank: usize,
    pub agent_id: String,
    pub agent_name: String,
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    pub is_online: bool,
    pub current_status: String,
    pub calls: i64,
    pub connects: i64,
    pub connect_rate: Metric,
    pub meetings: i64,
    pub talk_time_minutes: f64,
    pub avg_call_score: Metric,
    /// Consecutive meetings booked in the rep's latest calls (last 30 days).
    pub meeting_streak: i64,
    pub calls_today: i64,
    pub daily_goal: f64,
    #[schema(required = true)]
    pub daily_goal_progress: Option<f64>,
    /// Calls per hour of the day (`sparkline_hours`).
    pub sparkline: Vec<f64>,
    /// Hours logged in over the board's range, and the rates per hour logged in beside the
    /// totals (SPEC §14); null without time logged in or for a row without a named agent.
    pub logged_in_hours: Metric,
    pub calls_per_logged_in_hour: Metric,
    pub connects_per_logged_in_hour: Metric,
    pub meetings_per_logged_in_hour: Metric,
    /// Fair ranking on the connect and meeting rates (SPEC §14), beside the board's own order:
    /// per rate its rank past the minimum volume, Wilson interval, shrunk estimate and whether
    /// the rank is uncertain; null for a row without a named agent.
    #[schema(value_type = Option<Object>, required = true)]
    pub fair: Option<crate::fair::FairPlacements>,
}

/// `GET /analytics/team-leaderboard/{team_id}` and `GET /analytics/leaderboard`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaderboardView {
    #[schema(required = true)]
    pub team_id: Option<String>,
    #[schema(required = true)]
    pub team_name: Option<String>,
    pub updated_at: String,
    pub sorted_by: String,
    pub period: Period,
    pub entries: Vec<LeaderboardEntry>,
    /// Rows ranked, of which `entries` are the top `limit` and the caller's own.
    pub total_entries: usize,
    pub team_total_calls: Metric,
    pub team_connect_rate: Metric,
    pub team_meetings: Metric,
    pub team_avg_score: Metric,
    pub sparkline_hours: Vec<String>,
}

/// A team's leaderboard for a day (`date`) or the shared range.
pub async fn team_leaderboard(cx: &Cx, p: &TeamLeaderboardParams) -> Result<LeaderboardView, ViewError> {
    let mut view = View::new(cx, &p.shared, "today")?;
    view.source("filters.team", "team_id");
    let sort_by = choice("sort_by", p.sort_by.as_deref(), &SORTS)?;
    if p.date.is_some() {
        let date = view.date("date", p.date.as_deref())?;
        view.set_range(range(date, shifted(date, days(1), "date")?), "date");
    }
    leaderboard(&view, Some(&p.team_id), sort_by, p.date.as_deref(), p.limit).await
}

/// The tenant's leaderboard for a period or the shared range.
pub async fn tenant_leaderboard(cx: &Cx, p: &TenantLeaderboardParams) -> Result<LeaderboardView, ViewError> {
    let mut view = View::new(cx, &p.shared, "today")?;
    let sort_by = choice("sort_by", p.sort_by.as_deref(), &SORTS)?;
    let preset = match choice("period", p.period.as_deref(), &["today", "week", "month", "all_time"])? {
        "week" => "this_week",
        "month" => "this_month",
        p => p,
    };
    if p.period.is_some() {
        view.set_range(json!({ "preset": preset }), "period");
    }
    leaderboard(&view, None, sort_by, None, p.limit).await
}

/// A leaderboard's `limit`: how many of its top rows it answers with (100 unless asked).
fn board_limit(limit: Option<i64>) -> Result<usize, ViewError> {
    const MOST: i64 = 10_000;
    match limit {
        None => Ok(100),
        Some(n) if (1..=MOST).contains(&n) => Ok(n as usize),
        Some(n) => Err(invalid(
            "limit",
            format!("must be a whole number from 1 to {MOST}, not {n}"),
        )),
    }
}

/// The leaderboard of one team or of the tenant, for the view's range.
async fn leaderboard(
    view: &View<'_>,
    team: Option<&str>,
    sort_by: &str,
    date: Option<&str>,
    limit: Option<i64>,
) -> Result<LeaderboardView, ViewError> {
    let cx = view.cx;
    let filter = match team {
        Some(t) => json!({"filters": {"team": [t]}}),
        None => json!({}),
    };
    // The day's volume per hour (today, or the board's `date`), for sparklines and the goal.
    let day = view.date("date", date)?;
    let next_day = shifted(day, days(1), "date")?;
    let limit = board_limit(limit)?;
    let mut hourly_filter = filter.clone();
    hourly_filter["range"] = range(day, next_day);
    hourly_filter["granularity"] = json!("hour");
    // The measures per hour logged in are read in the board's own pass where its query reads
    // exactly what theirs would (see `reads_as_per_hour`): a second pass over every agent's
    // cells was half of a full board's time.
    let board_body = view.body(&BOARD, &["agent"], filter);
    let beside = reads_as_per_hour(view, &board_body);
    let mut asked = board_body.clone();
    if beside {
        asked["measures"] = json!(BOARD.iter().chain(&PER_HOUR).collect::<Vec<_>>());
    }
    // Independent reads, side by side.
    let (board, hourly, directory, statuses) = tokio::try_join!(
        view.run(asked),
        view.run_from(
            view.body(&["total_calls"], &["agent"], hourly_filter),
            &[("range", "date")]
        ),
        view.directory(),
        async { Ok::<_, ViewError>(cx.store.current_statuses(cx.tenant.id).await?) },
    )?;
    let (board, per_hour_of_board) = match beside {
        true => match split_per_hour(board) {
            Some((board, per_hour)) => (board, Some(per_hour)),
            // More rows than a query answers: the board's own rows are read alone.
            None => (view.run(board_body).await?, None),
        },
        false => (board, None),
    };
    let statuses: HashMap<String, String> = statuses.into_iter().map(|(agent, status, _)| (agent, status)).collect();
    let hours = {
        let mut t = view.zone.date_start(day);
        let end = view.zone.date_start(next_day);
        let mut out = Vec::new();
        while t < end {
            out.push(view.zone.format(t));
            t = view.zone.next_hour_start(t);
        }
        out
    };
    let mut sparks: HashMap<String, HashMap<String, f64>> = HashMap::new();
    for r in records(&hourly) {
        if let (Some(a), Some(t)) = (r["agent"].as_str(), r["time"].as_str()) {
            sparks
                .entry(a.to_string())
                .or_default()
                .insert(t.to_string(), num(r.get("total_calls")));
        }
    }
    let mut rows = records(&board);
    if let Some(t) = team {
        add_missing_agents(&mut rows, view.named_members(&directory, t));
    }
    let key = match sort_by {
        "connects" => "connected_calls",
        "meetings" => "meetings_booked",
        "score" => "avg_call_score",
        _ => "total_calls",
    };
    // Each row's sort values read once (not two map lookups per comparison).
    let order: Vec<[f64; 4]> = rows
        .iter()
        .map(|r| {
            [
                num(r.get(key)),
                num(r.get(RANKING[0])),
                num(r.get(RANKING[1])),
                num(r.get(RANKING[2])),
            ]
        })
        .collect();
    let mut by_rank: Vec<usize> = (0..rows.len()).collect();
    by_rank.sort_by(|&a, &b| {
        order[b]
            .iter()
            .zip(&order[a])
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut slots: Vec<Option<Map<String, Value>>> = rows.into_iter().map(Some).collect();
    let rows: Vec<Map<String, Value>> = by_rank.into_iter().filter_map(|i| slots[i].take()).collect();
    // The top `limit` rows and the caller's own, each with its rank among all of them: the
    // streaks, sparklines and entries of the others are never built.
    let total_entries = rows.len();
    let own = cx.reach.own_agent();
    let shown: Vec<(usize, &Map<String, Value>)> = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| *i < limit || (own.is_some() && r["agent"].as_str() == own))
        .collect();
    let agents: Vec<String> = shown
        .iter()
        .map(|(_, r)| r["agent"].as_str().unwrap_or("").to_string())
        .collect();
    let (streaks, per_hour) = match per_hour_of_board {
        Some(per_hour) => (meeting_streaks(cx, &agents).await?, per_hour),
        None => tokio::try_join!(meeting_streaks(cx, &agents), per_logged_in_hour(view, &agents))?,
    };
    let shown_rows: Vec<usize> = shown.iter().map(|(i, _)| *i).collect();
    let fair = crate::fair::placements(&rows, &cx.tenant.settings.fair_ranking, &shown_rows);
    let mut entries = Vec::new();
    for (((i, r), streak), fair) in shown.into_iter().zip(streaks).zip(fair) {
        let agent = r["agent"].as_str().unwrap_or("").to_string();
        let spark = sparks.get(&agent);
        let sparkline: Vec<f64> = hours
            .iter()
            .map(|h| spark.and_then(|s| s.get(h)).copied().unwrap_or(0.0))
            .collect();
        let calls_today: f64 = sparkline.iter().sum();
        let status = statuses.get(&agent).map_or("offline", String::as_str);
        let goal = directory.daily_goal(&agent, &cx.tenant.settings.targets);
        entries.push(LeaderboardEntry {
            rank: i + 1,
            agent_name: directory.agent_name(&agent).to_string(),
            avatar_url: directory.agents.get(&agent).and_then(|a| a.avatar_url.clone()),
            is_online: status != "offline",
            current_status: status.to_string(),
            calls: num(r.get("total_calls")) as i64,
            connects: num(r.get("connected_calls")) as i64,
            connect_rate: metric(r.get("connect_rate")),
            meetings: num(r.get("meetings_booked")) as i64,
            talk_time_minutes: num(r.get("total_talk_time")) / 60.0,
            avg_call_score: metric(r.get("avg_call_score")),
            meeting_streak: streak,
            calls_today: calls_today as i64,
            daily_goal: goal,
            daily_goal_progress: percent(calls_today, goal),
            sparkline,
            logged_in_hours: metric(per_hour.get(&agent).and_then(|r| r.get("logged_in_hours"))),
            calls_per_logged_in_hour: metric(per_hour.get(&agent).and_then(|r| r.get("calls_per_logged_in_hour"))),
            connects_per_logged_in_hour: metric(
                per_hour.get(&agent).and_then(|r| r.get("connects_per_logged_in_hour")),
            ),
            meetings_per_logged_in_hour: metric(
                per_hour.get(&agent).and_then(|r| r.get("meetings_per_logged_in_hour")),
            ),
            fair,
            agent_id: agent,
        });
    }
    let t = &board["totals"];
    Ok(LeaderboardView {
        team_id: team.map(String::from),
        team_name: team.map(|t| directory.team_name(t).to_string()),
        updated_at: view.zone.format(cx.now),
        sorted_by: sort_by.into(),
        period: period(view, &board),
        entries,
        total_entries,
        team_total_calls: metric(t.get("total_calls")),
        team_connect_rate: metric(t.get("connect_rate")),
        team_meetings: metric(t.get("meetings_booked")),
        team_avg_score: metric(t.get("avg_call_score")),
        sparkline_hours: hours,
    })
}

/// The measures per hour logged in, read for the rows answered only (activity cells of every
/// agent of the board would double its reads).
const PER_HOUR: [&str; 4] = [
    "logged_in_hours",
    "calls_per_logged_in_hour",
    "connects_per_logged_in_hour",
    "meetings_per_logged_in_hour",
];

/// Whether the board's query, as it runs for this caller, reads each agent's calls exactly as
/// [`per_logged_in_hour`] would: the same filters but for the agent's (each row is one agent,
/// in both), so no team filter — neither the board's nor one the caller's reach adds.
fn reads_as_per_hour(view: &View<'_>, board_body: &Value) -> bool {
    let mut restricted = board_body.clone();
    if view.cx.reach.restrict(&mut restricted, false).is_err() {
        return false; // the board's own run reports it
    }
    let filters_but = |body: &Value, dims: &[&str]| -> Map<String, Value> {
        let mut f = body["filters"].as_object().cloned().unwrap_or_default();
        f.retain(|d, _| !dims.contains(&d.as_str()));
        f
    };
    filters_but(&restricted, &["agent"]) == filters_but(board_body, &["agent", "team"])
}

/// Splits a board's answer read with the [`PER_HOUR`] measures beside its own into the
/// answer of the board's measures alone and each named agent's [`PER_HOUR`] row, exactly as
/// the two queries would have answered (a query leaves out rows whose every measure is zero
/// or null: here each set of measures is judged alone). `None` if the answer was truncated
/// (the extra rows of agents with time logged in but no calls may have pushed others out).
fn split_per_hour(mut board: Value) -> Option<(Value, PerHour)> {
    if board["truncated"].as_bool() != Some(false) {
        return None;
    }
    let columns: Vec<String> = board["columns"]
        .as_array()?
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect();
    let agent = columns.iter().position(|c| c == "agent")?;
    let extra: Vec<usize> = (0..columns.len())
        .filter(|&i| PER_HOUR.contains(&columns[i].as_str()))
        .collect();
    let own: Vec<usize> = (0..columns.len())
        .filter(|&i| BOARD.contains(&columns[i].as_str()))
        .collect();
    let shows = |row: &[Value], of: &[usize]| of.iter().any(|&i| row[i].as_f64().is_some_and(|x| x != 0.0));
    let mut per_hour = HashMap::new();
    let rows = board["rows"].as_array_mut()?;
    rows.retain_mut(|row| {
        let Some(row) = row.as_array_mut() else { return false };
        let named = row[agent]
            .as_str()
            .filter(|a| !a.is_empty() && *a != crate::reach::ANONYMOUS);
        if let Some(a) = named.filter(|_| shows(row, &extra)) {
            let measures = extra.iter().map(|&i| (columns[i].clone(), row[i].clone())).collect();
            per_hour.insert(a.to_string(), measures);
        }
        let keep = shows(row, &own);
        for &i in extra.iter().rev() {
            row.remove(i);
        }
        keep
    });
    if let Some(totals) = board["totals"].as_object_mut() {
        totals.retain(|m, _| !PER_HOUR.contains(&m.as_str()));
    }
    if let Some(columns) = board["columns"].as_array_mut() {
        columns.retain(|c| !c.as_str().is_some_and(|c| PER_HOUR.contains(&c)));
    }
    Some((board, per_hour))
}

/// Each named agent's [`PER_HOUR`] measures, by agent id.
type PerHour = HashMap<String, Map<String, Value>>;

/// The [`PER_HOUR`] measures of each named agent of `agents` over the board's range, by agent
/// id. They are leaderboard measures every caller may read of the rows it was shown
/// (`reach::COLLEAGUE_MEASURES`): the rows were chosen under the caller's reach, so the query
/// is filtered to them rather than narrowed again (a rep may not filter by colleagues).
async fn per_logged_in_hour(view: &View<'_>, agents: &[String]) -> Result<PerHour, ViewError> {
    let named: Vec<&String> = agents
        .iter()
        .filter(|a| !a.is_empty() && *a != crate::reach::ANONYMOUS)
        .collect();
    if named.is_empty() {
        return Ok(HashMap::new());
    }
    let mut body = view.body(&PER_HOUR, &["agent"], json!({ "filters": {"agent": named} }));
    // Time logged in is the rep's, not a team's (status events name none): on a team's board
    // too, each rep's calls and hours over the range.
    if let Some(filters) = body["filters"].as_object_mut() {
        filters.remove("team");
    }
    let cx = view.cx;
    let result = cx
        .store
        .query(cx.tenant.id, body, cx.now)
        .await?
        .map_err(|f| view.refused(f, &[]))?
        .to_json();
    Ok(by_key(&result, "agent").into_iter().collect())
}

/// Each agent's consecutive meetings booked in its latest calls (of the last 30 days, in the
/// tenant's zone), read in one pass for all agents; 0 for rows without an agent to name.
async fn meeting_streaks(cx: &Cx, agents: &[String]) -> Result<Vec<i64>, ViewError> {
    let named = |a: &String| !a.is_empty() && a != crate::reach::ANONYMOUS;
    let no_activity = Default::default();
    let ctx = cx.tenant.context(cx.now, None, &no_activity);
    let last_30_days = preset_range("last_30_days", &cx.tenant.zone, &ctx).expect("a preset");
    let mut found = cx
        .store
        .disposition_streaks(
            cx.tenant.id,
            agents.iter().filter(|a| named(a)).cloned().collect(),
            last_30_days.start * 1_000_000_000,
            last_30_days.end * 1_000_000_000,
            cx.tenant.settings.taxonomy.meeting.clone(),
        )
        .await?
        .into_iter();
    Ok(agents
        .iter()
        .map(|a| if named(a) { found.next().unwrap_or(0) } else { 0 })
        .collect())
}
