//! The analytics views of SPEC §5 (`/api/v1/analytics/...`). Each view is a composition of
//! general queries (the one query model, narrowed by the caller's access like `/query`), so
//! every number in a view is what `/query` gives for the same scope and range; views only
//! arrange, rank and compare those numbers, and add names, goals and costs from the directory.

use super::admission::Permit;
use super::auth::{Principal, Reach};
use super::error::ApiError;
use super::query::params_body;
use super::AppState;
use crate::directory::Directory;
use axum::extract::{Path, Query, State};
use axum::Json;
use dialboard_engine::clock::Clock;
use dialboard_engine::query::preset_range;
use dialboard_engine::FieldError;
use dialboard_store::{CallsRequest, Scope, TenantInfo};
use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;
type ViewResult = Result<Json<Value>, ApiError>;

/// One view request: the caller, its tenant, the shared parameters as a query body, and the
/// view's own parameters.
struct View {
    state: Arc<AppState>,
    principal: Principal,
    tenant: Arc<TenantInfo>,
    /// The query-shaped base: `range`, `filters`, `timezone`.
    base: Map<String, Value>,
    own: HashMap<String, String>,
    /// The zone of the view's dates (the request's `timezone`, else the tenant's).
    zone: Clock,
    now: i64,
    /// The view's place among the caller's running queries (its own run side by side).
    _running: Permit,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("invalid_request", vec![FieldError::new(field, message)])
}

impl View {
    async fn new(
        state: Arc<AppState>,
        principal: Principal,
        params: &HashMap<String, String>,
        own: &[&str],
        default_preset: &str,
    ) -> Result<View, ApiError> {
        principal.require(Scope::Read)?;
        let (base, own) = params_body(params, own, default_preset)?;
        let _running = state.admission.admit(&principal).await?;
        let tenant = state.store.tenant(principal.tenant_id).await?;
        let zone = match base.get("timezone").and_then(Value::as_str) {
            Some(tz) => Clock::new(tz).map_err(|m| invalid("timezone", m))?,
            None => tenant.zone.clone(),
        };
        let now = state.now();
        Ok(View {
            state,
            principal,
            tenant,
            base,
            own,
            zone,
            now,
            _running,
        })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.own.get(name).map(String::as_str)
    }

    /// A parameter that must be one of `allowed` (the first is the default).
    fn choice(&self, name: &str, allowed: &[&'static str]) -> Result<&'static str, ApiError> {
        match self.param(name) {
            None => Ok(allowed[0]),
            Some(v) => allowed
                .iter()
                .find(|a| **a == v)
                .copied()
                .ok_or_else(|| invalid(name, format!("must be one of: {}", allowed.join(", ")))),
        }
    }

    /// `compare` for views with a comparison: `previous_period` unless asked otherwise.
    fn compare(&self) -> Result<Value, ApiError> {
        Ok(
            match self.choice("compare", &["previous_period", "same_period_last_year", "none"])? {
                "none" => Value::Null,
                c => json!(c),
            },
        )
    }

    /// The base query plus `measures`, `dimensions` and `extra` fields; `extra.filters` are
    /// added to the base filters.
    fn body(&self, measures: &[&str], dimensions: &[&str], extra: Value) -> Value {
        let mut body = self.base.clone();
        body.insert("measures".into(), json!(measures));
        body.insert("dimensions".into(), json!(dimensions));
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                match (k.as_str(), v) {
                    ("filters", Value::Object(f)) => {
                        let filters = body.entry("filters").or_insert_with(|| json!({}));
                        for (d, values) in f {
                            filters[d] = values;
                        }
                    }
                    (_, Value::Null) => {}
                    (k, v) => {
                        body.insert(k.to_string(), v);
                    }
                }
            }
        }
        Value::Object(body)
    }

    /// Runs one query as `/query` would for this caller.
    async fn run(&self, mut body: Value) -> Result<Value, ApiError> {
        self.principal.restrict(&mut body, false)?;
        let asked = body.clone();
        let result = self.state.store.query(self.tenant.id, body, self.now).await?;
        let mut json = result.map_err(|f| ApiError::invalid("invalid_request", f))?.to_json();
        self.principal
            .redact(&mut json, self.tenant.settings.leaderboard_privacy, &asked);
        Ok(json)
    }

    async fn directory(&self) -> Result<Directory, ApiError> {
        Ok(Directory::load(self.state.store.as_ref(), self.tenant.id).await?)
    }

    /// The directory's members of `team` that this caller sees by name. Under leaderboard
    /// privacy an agent sees colleagues only as `anonymous` rows: adding their names would
    /// reveal them and count them twice.
    fn named_members<'a>(&self, directory: &'a Directory, team: &str) -> Vec<&'a str> {
        match self.principal.only_named(self.tenant.settings.leaderboard_privacy) {
            Some(_) => vec![],
            None => directory.members(team),
        }
    }

    /// A local date parameter, today by default.
    fn date(&self, name: &str) -> Result<Date, ApiError> {
        match self.param(name) {
            None => Ok(self.zone.date_of(self.now)),
            Some(d) => dialboard_engine::clock::parse_date(d).map_err(|message| invalid(name, message)),
        }
    }

    /// The view's zone as asked, else the tenant's.
    fn zone_name(&self) -> Value {
        self.base
            .get("timezone")
            .cloned()
            .unwrap_or_else(|| json!(self.tenant.settings.timezone))
    }

    fn today(&self) -> Date {
        self.zone.date_of(self.now)
    }
}

fn range(start: Date, end: Date) -> Value {
    json!({"start": start.to_string(), "end": end.to_string()})
}

fn days(n: i64) -> jiff::Span {
    n.days()
}

/// `date` moved by `span`, or a 400 naming `field` (the parameter the date came from) when
/// that leaves the calendar: no unchecked date arithmetic on what a request sent.
fn shifted(date: Date, span: jiff::Span, field: &str) -> Result<Date, ApiError> {
    date.checked_add(span)
        .map_err(|_| invalid(field, dialboard_engine::clock::out_of_range_message()))
}

/// A result's rows as objects keyed by column name.
fn records(result: &Value) -> Vec<Map<String, Value>> {
    let columns: Vec<&str> = result["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    result["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .map(|row| columns.iter().map(|c| c.to_string()).zip(row.iter().cloned()).collect())
        .collect()
}

/// Adds an empty row for each of `agents` that has none (a rep without calls still ranks).
fn add_missing_agents(rows: &mut Vec<Map<String, Value>>, agents: Vec<&str>) {
    let seen: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r["agent"].as_str().map(String::from))
        .collect();
    for agent in agents.into_iter().filter(|a| !seen.contains(*a)) {
        rows.push(Map::from_iter([("agent".to_string(), json!(agent))]));
    }
}

/// Rows keyed by the text value of one column.
fn by_key(result: &Value, column: &str) -> BTreeMap<String, Map<String, Value>> {
    records(result)
        .into_iter()
        .filter_map(|r| Some((r.get(column)?.as_str()?.to_string(), r)))
        .collect()
}

fn num(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(0.0)
}

fn percent(part: f64, whole: f64) -> Value {
    if whole == 0.0 {
        Value::Null
    } else {
        json!(part * 100.0 / whole)
    }
}

/// The resolved range of a query's answer, its zone and totals.
fn period_json(view: &View, result: &Value) -> Value {
    json!({"range": result["range"], "timezone": view.zone_name(), "totals": result["totals"]})
}

/// The resolved range a compared answer was compared with (`None` without a comparison).
fn comparison_range(result: &Value) -> Option<Value> {
    result.get("comparison").map(|c| json!({"range": c["range"]}))
}

/// `GET /analytics/metrics`: today's KPIs with their change against the previous period.
pub async fn metrics(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let view = View::new(state, principal, &p, &["compare"], "today").await?;
    const KPIS: [&str; 10] = [
        "total_calls",
        "connected_calls",
        "connect_rate",
        "meetings_booked",
        "meeting_booked_rate",
        "total_talk_time",
        "ticket_volume",
        "avg_first_response_time",
        "resolution_rate",
        "deals_won",
    ];
    let compare = view.compare()?;
    let kpis = view.run(view.body(&KPIS, &[], json!({"compare": compare}))).await?;
    let agents = view
        .run(view.body(
            &["total_calls", "active_hours"],
            &["agent"],
            json!({"compare": compare}),
        ))
        .await?;
    let active = |rows: &Value| {
        rows.as_array().map_or(0, |r| {
            r.iter().filter(|r| num(r.get(1)) > 0.0 || num(r.get(2)) > 0.0).count()
        })
    };
    let mut out: Vec<Value> = KPIS
        .iter()
        .map(|m| {
            json!({"metric": m, "value": kpis["totals"][m],
                   "previous": kpis["comparison"]["totals"][m], "change_percent": kpis["comparison"]["change_percent"][m]})
        })
        .collect();
    let (now_active, before_active) = (active(&agents["rows"]), active(&agents["comparison"]["rows"]));
    out.push(json!({"metric": "active_agents", "value": now_active,
        "previous": agents.get("comparison").map(|_| before_active),
        "change_percent": agents.get("comparison").and_then(|_| change(now_active as f64, before_active as f64))}));
    Ok(Json(
        json!({"range": kpis["range"], "comparison": comparison_range(&kpis),
        "timezone": view.zone_name(), "kpis": out}),
    ))
}

fn change(now: f64, before: f64) -> Option<f64> {
    (before != 0.0).then(|| (now - before) / before.abs() * 100.0)
}

/// `GET /analytics/call-metrics`: volume, connects, meetings and connect rate over time (hourly
/// for a day, daily for longer), with the comparison period's series.
pub async fn call_metrics(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let view = View::new(state, principal, &p, &["compare", "granularity"], "today").await?;
    let one_day = matches!(view.base["range"]["preset"].as_str(), Some("today" | "yesterday"));
    let granularity = match view.param("granularity") {
        Some(g) => g.to_string(),
        None if one_day => "hour".into(),
        None => "day".into(),
    };
    let measures = ["total_calls", "connected_calls", "meetings_booked", "connect_rate"];
    let result = view
        .run(view.body(
            &measures,
            &[],
            json!({"granularity": granularity, "compare": view.compare()?}),
        ))
        .await?;
    Ok(Json(json!({
        "granularity": granularity,
        "period": period_json(&view, &result),
        "series": records(&result),
        "comparison": result.get("comparison").map(|c| json!({"range": c["range"],
            "series": records(c), "totals": c["totals"], "change_percent": c["change_percent"]})),
    })))
}

/// `GET /analytics/dispositions`: calls by category and disposition, with shares.
pub async fn dispositions(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let view = View::new(state, principal, &p, &[], "today").await?;
    let result = view
        .run(view.body(&["total_calls"], &["disposition_category", "disposition"], json!({})))
        .await?;
    let total = num(result["totals"].get("total_calls"));
    let mut categories: BTreeMap<String, (f64, Vec<Value>)> = BTreeMap::new();
    for r in records(&result) {
        let category = r["disposition_category"]
            .as_str()
            .unwrap_or("uncategorized")
            .to_string();
        let calls = num(r.get("total_calls"));
        let entry = categories.entry(category).or_default();
        entry.0 += calls;
        entry.1.push(
            json!({"disposition": r["disposition"], "total_calls": calls as i64, "percent": percent(calls, total)}),
        );
    }
    let categories: Vec<Value> = categories
        .into_iter()
        .map(|(c, (calls, dispositions))| {
            json!({"category": c, "total_calls": calls as i64, "percent": percent(calls, total), "dispositions": dispositions})
        })
        .collect();
    Ok(Json(
        json!({"period": period_json(&view, &result), "total_calls": total as i64, "categories": categories}),
    ))
}

/// `GET /analytics/call-time-heatmap?metric=connect_rate|calls`: day of week × hour of day.
pub async fn heatmap(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let view = View::new(state, principal, &p, &["metric"], "last_30_days").await?;
    let metric = match view.choice("metric", &["connect_rate", "calls"])? {
        "calls" => "total_calls",
        m => m,
    };
    let result = view
        .run(view.body(
            &["total_calls", "connect_rate"],
            &["day_of_week", "hour_of_day"],
            json!({}),
        ))
        .await?;
    let mut matrix = vec![vec![Value::Null; 24]; 7];
    let cells: Vec<Value> = records(&result)
        .into_iter()
        .map(|r| {
            let (day, hour) = (num(r.get("day_of_week")) as usize, num(r.get("hour_of_day")) as usize);
            if (1..=7).contains(&day) && hour < 24 {
                matrix[day - 1][hour] = r[metric].clone();
            }
            json!({"day_of_week": day, "hour_of_day": hour, "value": r[metric],
                   "total_calls": r["total_calls"], "connect_rate": r["connect_rate"]})
        })
        .collect();
    Ok(Json(json!({"metric": metric, "period": period_json(&view, &result),
        "days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "matrix": matrix, "cells": cells})))
}

const SCORECARD: [&str; 15] = [
    "total_calls",
    "connected_calls",
    "connect_rate",
    "calls_per_hour",
    "total_talk_time",
    "avg_talk_time",
    "meetings_booked",
    "avg_call_score",
    "avg_sentiment",
    "filler_word_rate",
    "avg_talk_ratio",
    "meeting_booked_rate",
    "positive_disposition_rate",
    "callback_conversion",
    "analysed_calls",
];

/// How agents are ranked within a team: meetings, then connects, then calls.
const RANKING: [&str; 3] = ["meetings_booked", "connected_calls", "total_calls"];

fn rank_order(a: &Map<String, Value>, b: &Map<String, Value>) -> std::cmp::Ordering {
    RANKING
        .iter()
        .map(|m| num(b.get(*m)).total_cmp(&num(a.get(*m))))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// `GET /analytics/agent-scorecard/{agent_id}?period=daily|weekly|monthly&date=`: the seed's
/// RepScorecard — activity, quality, outcomes, trend against the previous period, team rank.
pub async fn scorecard(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(agent): Path<String>,
    Query(p): Params,
) -> ViewResult {
    let mut view = View::new(state, principal, &p, &["period", "date"], "today").await?;
    let period = view.choice("period", &["daily", "weekly", "monthly"])?;
    let date = view.date("date")?;
    let (start, end) = match period {
        "daily" => (date, shifted(date, days(1), "date")?),
        "weekly" => {
            let monday = shifted(date, days(-(date.weekday().to_monday_zero_offset() as i64)), "date")?;
            (monday, shifted(monday, days(7), "date")?)
        }
        _ => (
            date.first_of_month(),
            shifted(date.first_of_month(), 1.month(), "date")?,
        ),
    };
    view.base.insert("range".into(), range(start, end));
    let directory = view.directory().await?;
    // The agent's team: the directory's, else the team most of its calls were made for.
    let team = match directory.agents.get(&agent).and_then(|a| a.team_id.clone()) {
        Some(t) => Some(t),
        None => {
            let teams = view
                .run(view.body(&["total_calls"], &["team"], json!({"filters": {"agent": [agent]}})))
                .await?;
            records(&teams)
                .into_iter()
                .filter(|r| r["team"].is_string())
                .max_by(|a, b| num(a.get("total_calls")).total_cmp(&num(b.get("total_calls"))))
                .and_then(|r| r["team"].as_str().map(String::from))
        }
    };
    // The agent's numbers and the team's ranking, read side by side.
    let agent_filter = json!({"filters": {"agent": [agent]}, "compare": "previous_period"});
    let ranking = async {
        match &team {
            Some(team) => view
                .run(view.body(&RANKING, &["agent"], json!({"filters": {"team": [team]}})))
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (own, board) = tokio::try_join!(view.run(view.body(&SCORECARD, &[], agent_filter)), ranking)?;
    let (mut rank, mut size) = (Value::Null, Value::Null);
    let mut percentile = Value::Null;
    if let (Some(team), Some(board)) = (&team, board) {
        let mut rows = records(&board);
        add_missing_agents(&mut rows, view.named_members(&directory, team));
        rows.sort_by(rank_order);
        if let Some(i) = rows.iter().position(|r| r["agent"].as_str() == Some(&agent)) {
            let n = rows.len();
            rank = json!(i + 1);
            size = json!(n);
            percentile = json!(if n > 1 {
                (n - 1 - i) as f64 * 100.0 / (n - 1) as f64
            } else {
                100.0
            });
        }
    }
    let t = &own["totals"];
    let previous = &own["comparison"]["totals"];
    let score_trend = match (t["avg_call_score"].as_f64(), previous["avg_call_score"].as_f64()) {
        (Some(a), Some(b)) => json!(a - b),
        _ => Value::Null,
    };
    Ok(Json(json!({
        "agent_id": agent,
        "agent_name": directory.agent_name(&agent),
        "period": period,
        "period_start": start.to_string(),
        "period_end": end.to_string(),
        "range": own["range"],
        "comparison": comparison_range(&own),
        "total_calls": t["total_calls"],
        "connected_calls": t["connected_calls"],
        "connect_rate": t["connect_rate"],
        "calls_per_hour": t["calls_per_hour"],
        "total_talk_time_minutes": t["total_talk_time"].as_f64().map(|s| s / 60.0),
        "avg_talk_time_seconds": t["avg_talk_time"],
        "meetings_booked": t["meetings_booked"],
        "avg_call_score": t["avg_call_score"],
        "call_score_trend": score_trend,
        "avg_sentiment_score": t["avg_sentiment"],
        "filler_word_rate": t["filler_word_rate"],
        "avg_talk_ratio": t["avg_talk_ratio"],
        "meeting_booked_rate": t["meeting_booked_rate"],
        "positive_disposition_rate": t["positive_disposition_rate"],
        "callback_conversion_rate": t["callback_conversion"],
        "team_id": team,
        "team_rank": rank,
        "team_size": size,
        "percentile": percentile,
        "previous": previous,
        "change_percent": own["comparison"]["change_percent"],
    })))
}

const BOARD: [&str; 6] = [
    "total_calls",
    "connected_calls",
    "connect_rate",
    "meetings_booked",
    "total_talk_time",
    "avg_call_score",
];

/// The leaderboard of one team or of the tenant, for the view's range.
async fn leaderboard(view: &View, team: Option<&str>, sort_by: &str) -> Result<Value, ApiError> {
    let filter = match team {
        Some(t) => json!({"filters": {"team": [t]}}),
        None => json!({}),
    };
    // The day's volume per hour (today, or the board's `date`), for sparklines and the goal.
    let day = view.date("date")?;
    let next_day = shifted(day, days(1), "date")?;
    let today_range = range(day, next_day);
    let mut hourly_filter = filter.clone();
    hourly_filter["range"] = today_range;
    hourly_filter["granularity"] = json!("hour");
    // Independent reads, side by side.
    let (board, hourly, directory, statuses) = tokio::try_join!(
        view.run(view.body(&BOARD, &["agent"], filter)),
        view.run(view.body(&["total_calls"], &["agent"], hourly_filter)),
        view.directory(),
        async { Ok::<_, ApiError>(view.state.store.current_statuses(view.tenant.id).await?) },
    )?;
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
    rows.sort_by(|a, b| {
        num(b.get(key))
            .total_cmp(&num(a.get(key)))
            .then_with(|| rank_order(a, b))
    });
    // The top `limit` rows and the caller's own, each with its rank among all of them: the
    // streaks, sparklines and entries of the others are never built.
    let total_entries = rows.len();
    let limit = board_limit(view)?;
    let own = match &view.principal.reach {
        Reach::Agent { id, .. } => Some(id.as_str()),
        _ => None,
    };
    let shown: Vec<(usize, &Map<String, Value>)> = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| *i < limit || (own.is_some() && r["agent"].as_str() == own))
        .collect();
    let agents: Vec<String> = shown
        .iter()
        .map(|(_, r)| r["agent"].as_str().unwrap_or("").to_string())
        .collect();
    let streaks = meeting_streaks(view, &agents).await?;
    let fair = super::fair_board::placements(&rows, &view.tenant.settings.fair_ranking);
    let mut entries = Vec::new();
    for ((i, r), streak) in shown.into_iter().zip(streaks) {
        let agent = r["agent"].as_str().unwrap_or("").to_string();
        let spark = sparks.get(&agent);
        let sparkline: Vec<f64> = hours
            .iter()
            .map(|h| spark.and_then(|s| s.get(h)).copied().unwrap_or(0.0))
            .collect();
        let calls_today: f64 = sparkline.iter().sum();
        let status = statuses.get(&agent).map_or("offline", String::as_str);
        let goal = directory.daily_goal(&agent, &view.tenant.settings.targets);
        entries.push(json!({
            "rank": i + 1,
            "agent_id": agent,
            "agent_name": directory.agent_name(&agent),
            "avatar_url": directory.agents.get(&agent).and_then(|a| a.avatar_url.clone()),
            "is_online": status != "offline",
            "current_status": status,
            "calls": num(r.get("total_calls")) as i64,
            "connects": num(r.get("connected_calls")) as i64,
            "connect_rate": r.get("connect_rate").cloned().unwrap_or(Value::Null),
            "meetings": num(r.get("meetings_booked")) as i64,
            "talk_time_minutes": num(r.get("total_talk_time")) / 60.0,
            "avg_call_score": r.get("avg_call_score").cloned().unwrap_or(Value::Null),
            "meeting_streak": streak,
            "calls_today": calls_today as i64,
            "daily_goal": goal,
            "daily_goal_progress": percent(calls_today, goal),
            "sparkline": sparkline,
            "fair": fair.get(&agent),
        }));
    }
    let t = &board["totals"];
    Ok(json!({
        "team_id": team,
        "team_name": team.map(|t| directory.team_name(t)),
        "updated_at": view.zone.format(view.now),
        "sorted_by": sort_by,
        "period": period_json(view, &board),
        "entries": entries,
        "total_entries": total_entries,
        "team_total_calls": t["total_calls"],
        "team_connect_rate": t["connect_rate"],
        "team_meetings": t["meetings_booked"],
        "team_avg_score": t["avg_call_score"],
        "sparkline_hours": hours,
    }))
}

/// A leaderboard's `limit`: how many of its top rows it answers with (100 unless asked).
fn board_limit(view: &View) -> Result<usize, ApiError> {
    const MOST: usize = 10_000;
    match view.param("limit") {
        None => Ok(100),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MOST).contains(n))
            .ok_or_else(|| invalid("limit", format!("must be a whole number from 1 to {MOST}, not {v:?}"))),
    }
}

/// Each agent's consecutive meetings booked in its latest calls (of the last 30 days, in the
/// tenant's zone), read in one pass for all agents; 0 for rows without an agent to name.
async fn meeting_streaks(view: &View, agents: &[String]) -> Result<Vec<i64>, ApiError> {
    let named = |a: &String| !a.is_empty() && a != "anonymous";
    let no_activity = Default::default();
    let ctx = view.tenant.context(view.now, None, &no_activity);
    let last_30_days = preset_range("last_30_days", &view.tenant.zone, &ctx).expect("a preset");
    let mut found = view
        .state
        .store
        .disposition_streaks(
            view.tenant.id,
            agents.iter().filter(|a| named(a)).cloned().collect(),
            last_30_days.start * 1_000_000_000,
            last_30_days.end * 1_000_000_000,
            view.tenant.settings.taxonomy.meeting.clone(),
        )
        .await?
        .into_iter();
    Ok(agents
        .iter()
        .map(|a| if named(a) { found.next().unwrap_or(0) } else { 0 })
        .collect())
}

const SORTS: [&str; 4] = ["calls", "connects", "meetings", "score"];

/// `GET /analytics/team-leaderboard/{team_id}?date=&sort_by=calls|connects|meetings|score`.
pub async fn team_leaderboard(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(team): Path<String>,
    Query(p): Params,
) -> ViewResult {
    let mut view = View::new(state, principal, &p, &["date", "sort_by", "limit"], "today").await?;
    let sort_by = view.choice("sort_by", &SORTS)?;
    if view.param("date").is_some() {
        let date = view.date("date")?;
        view.base
            .insert("range".into(), range(date, shifted(date, days(1), "date")?));
    }
    Ok(Json(leaderboard(&view, Some(&team), sort_by).await?))
}

/// `GET /analytics/leaderboard?period=today|week|month|all_time&sort_by=`.
pub async fn tenant_leaderboard(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(p): Params,
) -> ViewResult {
    let mut view = View::new(state, principal, &p, &["period", "sort_by", "limit"], "today").await?;
    let sort_by = view.choice("sort_by", &SORTS)?;
    let preset = match view.choice("period", &["today", "week", "month", "all_time"])? {
        "week" => "this_week",
        "month" => "this_month",
        p => p,
    };
    if view.param("period").is_some() {
        view.base.insert("range".into(), json!({"preset": preset}));
    }
    Ok(Json(leaderboard(&view, None, sort_by).await?))
}

/// `GET /analytics/trends/{agent_id}?days=30`: daily talk ratio, weekly sentiment, and the
/// daily call score with its rolling 7-day average (over the 7 days ending that day).
pub async fn trends(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(agent): Path<String>,
    Query(p): Params,
) -> ViewResult {
    let view = View::new(state, principal, &p, &["days"], "last_30_days").await?;
    let n: i64 = match view.param("days").map(str::parse) {
        None => 30,
        Some(Ok(n @ 1..=366)) => n,
        Some(_) => return Err(invalid("days", "must be a whole number from 1 to 366")),
    };
    let end = view.today() + days(1);
    let start = end - days(n);
    let agent_only = json!([agent]);
    let talk = view
        .run(view.body(
            &["avg_talk_ratio", "analysed_calls"],
            &[],
            json!({"filters": {"agent": agent_only}, "range": range(start, end), "granularity": "day"}),
        ))
        .await?;
    let sentiment = view
        .run(view.body(
            &["avg_sentiment", "avg_prospect_sentiment", "analysed_calls"],
            &[],
            json!({"filters": {"agent": agent_only}, "range": range(start, end), "granularity": "week"}),
        ))
        .await?;
    // Six days before the range feed the first days' rolling averages.
    let scores = view
        .run(view.body(
            &["avg_call_score", "scored_calls"],
            &[],
            json!({"filters": {"agent": agent_only}, "range": range(start - days(6), end), "granularity": "day"}),
        ))
        .await?;
    let daily: BTreeMap<Date, (f64, f64)> = records(&scores)
        .into_iter()
        .filter_map(|r| {
            let date = view
                .zone
                .date_of(r["time"].as_str()?.parse::<jiff::Timestamp>().ok()?.as_second());
            Some((date, (num(r.get("avg_call_score")), num(r.get("scored_calls")))))
        })
        .collect();
    let mut score = Vec::new();
    let mut d = start;
    while d < end {
        let window: Vec<&(f64, f64)> = daily.range(d - days(6)..=d).map(|(_, v)| v).collect();
        let (sum, count) = window.iter().fold((0.0, 0.0), |(s, c), (avg, n)| (s + avg * n, c + n));
        let today = daily.get(&d);
        score.push(json!({"date": d.to_string(), "avg_call_score": today.map(|t| t.0),
            "scored_calls": today.map_or(0.0, |t| t.1) as i64,
            "rolling_7day_avg": if count > 0.0 { json!(sum / count) } else { Value::Null }}));
        d += days(1);
    }
    Ok(Json(json!({
        "agent_id": agent,
        "range": range(start, end),
        "talk_ratio": records(&talk),
        "sentiment": records(&sentiment),
        "score": score,
    })))
}

/// The funnel steps: calls, connects, then the tenant's stages (a lost deal is an outcome, not
/// a step).
fn steps(tenant: &TenantInfo) -> Vec<String> {
    ["calls", "connects"]
        .into_iter()
        .map(String::from)
        .chain(tenant.settings.stages.iter().filter(|s| *s != "closed_lost").cloned())
        .collect()
}

fn conversions(steps: &[String], counts: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in steps.windows(2) {
        out.insert(
            format!("{}_to_{}", pair[0], pair[1]),
            percent(num(counts.get(&pair[1])), num(counts.get(&pair[0]))),
        );
    }
    if let Some(last) = steps.last() {
        out.insert(
            format!("calls_to_{last}"),
            percent(num(counts.get(last)), num(counts.get("calls"))),
        );
    }
    out
}

/// Calls and revenue per group, in one query (both facts have every grouping). Contacts keep a
/// group without calls or revenue in the rows, so its revenue reads 0 rather than missing.
const CALLS_AND_REVENUE: [&str; 9] = [
    "total_calls",
    "connected_calls",
    "revenue",
    "deals_won",
    "avg_deal_size",
    "revenue_per_call",
    "revenue_per_connect",
    "contacts_reached",
    "avg_days_to_meeting",
];

/// The seed's FunnelMetrics per group (campaign, lead source or agent) and overall.
async fn funnel(view: &View, group: &str) -> Result<(Vec<Value>, Value), ApiError> {
    let (stages, revenue) = tokio::try_join!(
        view.run(view.body(&["contacts_reached"], &[group, "stage"], json!({}))),
        view.run(view.body(&CALLS_AND_REVENUE, &[group], json!({}))),
    )?;
    let steps = steps(&view.tenant);
    let mut groups: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut overall = Map::new();
    let key = |r: &Map<String, Value>| r[group].as_str().unwrap_or("(none)").to_string();
    for r in records(&revenue) {
        let g = groups.entry(key(&r)).or_default();
        g.insert("calls".into(), r["total_calls"].clone());
        g.insert("connects".into(), r["connected_calls"].clone());
    }
    overall.insert("calls".into(), revenue["totals"]["total_calls"].clone());
    overall.insert("connects".into(), revenue["totals"]["connected_calls"].clone());
    for r in records(&stages) {
        let stage = r["stage"].as_str().unwrap_or_default().to_string();
        let n = num(r.get("contacts_reached"));
        groups
            .entry(key(&r))
            .or_default()
            .insert(stage.clone(), json!(n as i64));
        let total = num(overall.get(&stage)) + n;
        overall.insert(stage, json!(total as i64));
    }
    let revenue_rows = by_key(&revenue, group);
    let shape = |name: Value, counts: &Map<String, Value>, money: &Value| {
        let stages: Map<String, Value> = steps
            .iter()
            .chain(std::iter::once(&"closed_lost".to_string()))
            .map(|s| (s.clone(), json!(num(counts.get(s)) as i64)))
            .collect();
        json!({"group": name, "stages": stages, "conversion_rates": conversions(&steps, counts),
            "avg_days_first_call_to_meeting": money["avg_days_to_meeting"],
            "revenue": {"total_closed_won": money["revenue"], "deals_won": money["deals_won"],
                "avg_deal_size": money["avg_deal_size"], "revenue_per_call": money["revenue_per_call"],
                "revenue_per_connect": money["revenue_per_connect"]}})
    };
    let entries = groups
        .iter()
        .map(|(g, counts)| {
            // A group without a revenue row reads null in every field (indexing null is null).
            let money = revenue_rows.get(g).map_or(Value::Null, |r| Value::Object(r.clone()));
            shape(if g == "(none)" { Value::Null } else { json!(g) }, counts, &money)
        })
        .collect();
    Ok((entries, shape(Value::Null, &overall, &revenue["totals"])))
}

/// `GET /analytics/pipeline-funnel?group_by=campaign|lead_source|agent`.
pub async fn pipeline_funnel(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let view = View::new(state, principal, &p, &["group_by"], "last_30_days").await?;
    let group = view.choice("group_by", &["campaign", "lead_source", "agent"])?;
    let (groups, overall) = funnel(&view, group).await?;
    Ok(Json(
        json!({"group_by": group, "range": view.base.get("range"), "steps": steps(&view.tenant),
        "overall": overall, "groups": groups}),
    ))
}

/// `GET /analytics/lead-sources`: the funnel by lead source, best revenue first.
pub async fn lead_sources(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let view = View::new(state, principal, &p, &[], "last_30_days").await?;
    let (mut groups, overall) = funnel(&view, "lead_source").await?;
    let first = view.tenant.settings.stages.first().cloned().unwrap_or_default();
    for g in &mut groups {
        let leads = num(g["stages"].get(&first));
        g["total_leads"] = json!(leads as i64);
        g["conversion_rate"] = percent(num(g["revenue"].get("deals_won")), leads);
    }
    groups.sort_by(|a, b| {
        num(b["revenue"].get("total_closed_won")).total_cmp(&num(a["revenue"].get("total_closed_won")))
    });
    Ok(Json(
        json!({"range": view.base.get("range"), "lead_stage": first, "overall": overall, "lead_sources": groups}),
    ))
}

/// `GET /analytics/conversion-funnel?period=today|week|month|quarter`: contacts reaching each of
/// the tenant's stages, and the conversion from one to the next.
pub async fn conversion_funnel(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(p): Params,
) -> ViewResult {
    let mut view = View::new(state, principal, &p, &["period"], "this_month").await?;
    if view.param("period").is_some() {
        let preset = match view.choice("period", &["month", "week", "today", "quarter"])? {
            "month" => "this_month",
            "week" => "this_week",
            "quarter" => "this_quarter",
            p => p,
        };
        view.base.insert("range".into(), json!({"preset": preset}));
    }
    let result = view
        .run(view.body(&["contacts_reached"], &["stage"], json!({})))
        .await?;
    let counts = by_key(&result, "stage");
    let stages = &view.tenant.settings.stages;
    let reached = |s: &str| num(counts.get(s).and_then(|r| r.get("contacts_reached")));
    let out: Vec<Value> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let from_previous = (i > 0).then(|| percent(reached(s), reached(&stages[i - 1])));
            json!({"stage": s, "contacts": reached(s) as i64, "conversion_from_previous": from_previous,
                   "conversion_from_first": percent(reached(s), reached(&stages[0]))})
        })
        .collect();
    Ok(Json(json!({"range": view.base.get("range"), "stages": out})))
}

/// `GET /analytics/lead-volume?period=24h|7d|30d`: new leads (contacts reaching the first
/// stage) and conversions (deals won), hourly over 24 hours, else daily.
pub async fn lead_volume(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let mut view = View::new(state, principal, &p, &["period"], "last_30_days").await?;
    let period = view.choice("period", &["30d", "7d", "24h"])?;
    let granularity = match period {
        "24h" => {
            let end = view.zone.next_hour_start(view.now);
            let fmt = |t: i64| {
                view.zone
                    .checked_zoned(t)
                    .map(|z| z.timestamp().to_string())
                    .unwrap_or_default()
            };
            view.base
                .insert("range".into(), json!({"start": fmt(end - 86_400), "end": fmt(end)}));
            "hour"
        }
        "7d" => {
            view.base.insert("range".into(), json!({"preset": "last_7_days"}));
            "day"
        }
        _ => {
            if view.param("period").is_some() {
                view.base.insert("range".into(), json!({"preset": "last_30_days"}));
            }
            "day"
        }
    };
    let result = view
        .run(view.body(
            &["contacts_reached", "deals_won"],
            &["stage"],
            json!({"granularity": granularity}),
        ))
        .await?;
    let first = view.tenant.settings.stages.first().cloned().unwrap_or_default();
    let mut series: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in records(&result) {
        let Some(t) = r["time"].as_str() else { continue };
        let point = series.entry(t.to_string()).or_default();
        if r["stage"].as_str() == Some(first.as_str()) {
            point.0 += num(r.get("contacts_reached")) as i64;
        }
        point.1 += num(r.get("deals_won")) as i64;
    }
    let series: Vec<Value> = series
        .into_iter()
        .map(|(t, (leads, won))| json!({"time": t, "new_leads": leads, "conversions": won}))
        .collect();
    Ok(Json(
        json!({"period": period, "granularity": granularity, "range": view.base.get("range"),
        "lead_stage": first, "series": series}),
    ))
}

/// `GET /analytics/intents`: calls (from call analysis) and conversations by intent.
pub async fn intents(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let view = View::new(state, principal, &p, &[], "last_30_days").await?;
    let result = view
        .run(view.body(&["total_calls", "ticket_volume"], &["intent"], json!({})))
        .await?;
    let rows: Vec<Map<String, Value>> = records(&result)
        .into_iter()
        .filter(|r| r["intent"].is_string())
        .collect();
    let total: f64 = rows
        .iter()
        .map(|r| num(r.get("total_calls")) + num(r.get("ticket_volume")))
        .sum();
    let mut out: Vec<Value> = rows
        .iter()
        .map(|r| {
            let n = num(r.get("total_calls")) + num(r.get("ticket_volume"));
            json!({"intent": r["intent"], "calls": r["total_calls"], "conversations": r["ticket_volume"],
                   "total": n as i64, "percent": percent(n, total)})
        })
        .collect();
    out.sort_by(|a, b| num(b.get("total")).total_cmp(&num(a.get("total"))));
    Ok(Json(
        json!({"range": view.base.get("range"), "total": total as i64, "intents": out}),
    ))
}

const CHANNEL_MEASURES: [&str; 8] = [
    "ticket_volume",
    "avg_first_response_time",
    "median_first_response_time",
    "avg_resolution_time",
    "resolution_rate",
    "csat_avg",
    "csat_count",
    "csat_positive_rate",
];

/// `GET /analytics/channels`: volume, first response, resolution and CSAT per channel; voice
/// also counts the calls.
pub async fn channels(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let view = View::new(state, principal, &p, &[], "last_30_days").await?;
    let result = view.run(view.body(&CHANNEL_MEASURES, &["channel"], json!({}))).await?;
    let calls = view
        .run(view.body(&["total_calls", "connected_calls"], &[], json!({})))
        .await?;
    let rows = by_key(&result, "channel");
    let out: Vec<Value> = ["voice", "email", "whatsapp", "chat", "sms"]
        .iter()
        .map(|c| {
            let mut entry = json!({"channel": c});
            for m in CHANNEL_MEASURES {
                entry[m] = rows.get(*c).and_then(|r| r.get(m).cloned()).unwrap_or(Value::Null);
            }
            if *c == "voice" {
                entry["calls"] = calls["totals"]["total_calls"].clone();
                entry["connected_calls"] = calls["totals"]["connected_calls"].clone();
            }
            entry
        })
        .collect();
    Ok(Json(
        json!({"range": view.base.get("range"), "channels": out, "totals": result["totals"]}),
    ))
}

/// `GET /analytics/campaigns/{id}`: a campaign's calls, outcomes, funnel, revenue, intents,
/// cost per lead and ROI (against the directory's campaign cost).
pub async fn campaign(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Query(p): Params,
) -> ViewResult {
    let view = View::new(state, principal, &p, &["compare"], "last_30_days").await?;
    let filter = json!({"filters": {"campaign": [id]}, "compare": view.compare()?});
    const MEASURES: [&str; 10] = [
        "total_calls",
        "connected_calls",
        "connect_rate",
        "meetings_booked",
        "meeting_booked_rate",
        "avg_call_score",
        "revenue",
        "deals_won",
        "avg_deal_size",
        "revenue_per_call",
    ];
    let overview = view.run(view.body(&MEASURES, &[], filter)).await?;
    let campaign_only = json!({"filters": {"campaign": [id]}});
    let stages = view
        .run(view.body(&["contacts_reached"], &["stage"], campaign_only.clone()))
        .await?;
    let intents = view
        .run(view.body(&["total_calls"], &["intent"], campaign_only))
        .await?;
    let directory = view.directory().await?;
    let entry = directory.campaigns.get(&id);
    let reached = by_key(&stages, "stage");
    let first = view.tenant.settings.stages.first().cloned().unwrap_or_default();
    let leads = num(reached.get(&first).and_then(|r| r.get("contacts_reached")));
    let cost = entry.and_then(|c| c.cost);
    // The directory's cost is the whole campaign's: a narrower scope has no cost of its own.
    let narrowed = !view.principal.sees_everyone()
        || view.base["filters"]
            .as_object()
            .is_some_and(|f| f.keys().any(|d| d != "campaign"));
    let returns = Returns {
        cost: match cost {
            None => Err("no campaign cost in the directory"),
            Some(_) if narrowed => {
                Err("the directory's cost is the whole campaign's, not this team's, agent's or filter's")
            }
            Some(c) => Ok(c),
        },
        leads,
        revenue: revenue_known(&overview["totals"]),
    };
    let journey: Vec<Value> = view
        .tenant
        .settings
        .stages
        .iter()
        .map(|s| json!({"stage": s, "contacts": num(reached.get(s).and_then(|r| r.get("contacts_reached"))) as i64}))
        .collect();
    Ok(Json(json!({
        "campaign_id": id,
        "name": entry.map_or(id.as_str(), |c| c.name.as_str()),
        "range": overview["range"],
        "metrics": overview["totals"],
        "comparison": overview.get("comparison"),
        "journey": journey,
        "intents": records(&intents).into_iter().filter(|r| r["intent"].is_string()).collect::<Vec<_>>(),
        "cost": cost,
        "leads": leads as i64,
        "cost_per_lead": returns.cost_per_lead().ok(),
        "cost_per_lead_unavailable": returns.cost_per_lead().err(),
        "roi_percent": returns.roi_percent().ok(),
        "roi_unavailable": returns.roi_percent().err(),
    })))
}

/// What a campaign's cost per lead and ROI are computed from, each known or not (and why not):
/// a number that cannot be computed is `null` with its reason, never −100%.
struct Returns {
    cost: Result<f64, &'static str>,
    leads: f64,
    revenue: Result<f64, &'static str>,
}

impl Returns {
    fn cost_per_lead(&self) -> Result<f64, &'static str> {
        let cost = self.cost?;
        if self.leads > 0.0 {
            Ok(cost / self.leads)
        } else {
            Err("no leads in this range")
        }
    }

    fn roi_percent(&self) -> Result<f64, &'static str> {
        let cost = self.cost?;
        let revenue = self.revenue?;
        if cost > 0.0 {
            Ok((revenue - cost) / cost * 100.0)
        } else {
            Err("the campaign cost nothing")
        }
    }
}

/// The revenue of `totals`, if any is known: not for filters the pipeline's stages lack, nor
/// before a deal with an amount is won in the range (a return of −100% would only say that).
fn revenue_known(totals: &Value) -> Result<f64, &'static str> {
    let revenue = totals["revenue"]
        .as_f64()
        .ok_or("no revenue can be computed for these filters")?;
    if totals["avg_deal_size"].is_null() {
        return Err("no deal with an amount was won in this range");
    }
    Ok(revenue)
}

/// One coaching rule: the measure it watches over which window, and how it triggers.
struct Rule {
    issue: &'static str,
    measure: &'static str,
    suggested_action: &'static str,
    /// Calls behind it: this drill-down filter over the last 7 days.
    related: Option<Value>,
}

fn rules() -> [Rule; 8] {
    let connected = Some(json!({"disposition_category": ["connected"]}));
    [
        Rule {
            issue: "low_connect_rate",
            measure: "connect_rate",
            suggested_action: "Review call timing, check list quality",
            related: Some(json!({"disposition_category": ["no_contact"]})),
        },
        Rule {
            issue: "low_call_score",
            measure: "avg_call_score",
            suggested_action: "Schedule 1:1 coaching, review low-scoring calls",
            related: Some(json!({"score_range": ["0-20", "20-40", "40-60"]})),
        },
        Rule {
            issue: "high_talk_ratio",
            measure: "avg_talk_ratio",
            suggested_action: "Practice active listening exercises",
            related: connected.clone(),
        },
        Rule {
            issue: "low_meeting_rate",
            measure: "meeting_booked_rate",
            suggested_action: "Review closing technique, offer talk track",
            related: connected.clone(),
        },
        Rule {
            issue: "high_filler_words",
            measure: "filler_word_rate",
            suggested_action: "Awareness training, practice pausing",
            related: connected.clone(),
        },
        Rule {
            issue: "declining_sentiment",
            measure: "avg_prospect_sentiment",
            suggested_action: "Review call recordings, identify pattern",
            related: connected,
        },
        Rule {
            issue: "below_call_volume",
            measure: "total_calls",
            suggested_action: "Check for blockers, adjust workload",
            related: None,
        },
        Rule {
            issue: "long_wrap_time",
            measure: "avg_wrapup_time",
            suggested_action: "Streamline disposition workflow, train on CRM",
            related: Some(json!({})),
        },
    ]
}

/// Severity from how far the value is past its target, relative to the target.
fn severity(value: f64, target: f64) -> &'static str {
    let gap = if target == 0.0 {
        1.0
    } else {
        ((value - target) / target).abs()
    };
    if gap >= 0.5 {
        "high"
    } else if gap >= 0.2 {
        "medium"
    } else {
        "low"
    }
}

/// Whether the value moved toward the good side since the previous period.
fn trend(now: Option<f64>, before: Option<f64>, higher_is_better: bool) -> &'static str {
    match (now, before) {
        (Some(n), Some(b)) if (n - b).abs() > 1e-9 * b.abs().max(1.0) => {
            if (n > b) == higher_is_better {
                "improving"
            } else {
                "declining"
            }
        }
        _ => "flat",
    }
}

/// `GET /analytics/coaching-opportunities/{team_id}?date=`: the seed's eight rules over each
/// agent of the team, as of `date` (default today), with the tenant's thresholds.
pub async fn coaching(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(team): Path<String>,
    Query(p): Params,
) -> ViewResult {
    let view = View::new(state, principal, &p, &["date"], "last_7_days").await?;
    let today = view.date("date")?;
    let team_only = json!([team]);
    let week_measures = [
        "avg_call_score",
        "avg_talk_ratio",
        "meeting_booked_rate",
        "filler_word_rate",
        "avg_prospect_sentiment",
        "avg_wrapup_time",
        "total_calls",
    ];
    let week = view
        .run(view.body(
            &week_measures,
            &["agent"],
            json!({"filters": {"team": team_only}, "range": range(today - days(6), today + days(1)), "compare": "previous_period"}),
        ))
        .await?;
    let two_days = view
        .run(view.body(
            &["connect_rate", "total_calls"],
            &["agent"],
            json!({"filters": {"team": team_only}, "range": range(today - days(1), today + days(1)), "compare": "previous_period"}),
        ))
        .await?;
    // The last three completed days.
    let volume = view
        .run(view.body(
            &["total_calls"],
            &["agent"],
            json!({"filters": {"team": team_only}, "range": range(today - days(3), today), "granularity": "day"}),
        ))
        .await?;
    let directory = view.directory().await?;
    let c = &view.tenant.settings.coaching;
    let (week_now, week_before) = (by_key(&week, "agent"), by_key(&week["comparison"], "agent"));
    let (two_now, two_before) = (by_key(&two_days, "agent"), by_key(&two_days["comparison"], "agent"));
    let mut daily_volume: HashMap<String, Vec<f64>> = HashMap::new();
    for r in records(&volume) {
        if let Some(a) = r["agent"].as_str() {
            daily_volume
                .entry(a.to_string())
                .or_default()
                .push(num(r.get("total_calls")));
        }
    }
    let mut agents: BTreeSet<String> = week_now.keys().chain(two_now.keys()).cloned().collect();
    agents.extend(view.named_members(&directory, &team).into_iter().map(String::from));
    agents.remove("anonymous");
    agents.retain(|a| view.principal.sees_individual(a));
    let mut out = Vec::new();
    // The agents each rule triggered for (with their entry), whose calls are read per rule.
    let mut related: HashMap<&str, Vec<(usize, String)>> = HashMap::new();
    for agent in &agents {
        let get = |rows: &BTreeMap<String, Map<String, Value>>, m: &str| {
            rows.get(agent).and_then(|r| r.get(m)).and_then(Value::as_f64)
        };
        for rule in rules() {
            let (value, before, target, triggered, higher_is_better) = match rule.issue {
                "low_connect_rate" => {
                    let v = get(&two_now, rule.measure);
                    (
                        v,
                        get(&two_before, rule.measure),
                        c.low_connect_rate,
                        v.is_some_and(|v| v < c.low_connect_rate),
                        true,
                    )
                }
                "below_call_volume" => {
                    let goal = directory.daily_goal(agent, &view.tenant.settings.targets);
                    let target = goal * c.below_volume_percent / 100.0;
                    let days_seen = daily_volume.get(agent).cloned().unwrap_or_default();
                    // Days without calls are below any goal too.
                    let mut per_day = days_seen.clone();
                    per_day.resize(3, 0.0);
                    let total: f64 = days_seen.iter().sum();
                    (
                        Some(total / 3.0),
                        None,
                        target,
                        target > 0.0 && per_day.iter().all(|d| *d < target),
                        true,
                    )
                }
                "declining_sentiment" => {
                    let (v, b) = (get(&week_now, rule.measure), get(&week_before, rule.measure));
                    let target = b.map_or(0.0, |b| b - c.sentiment_decline);
                    (
                        v,
                        b,
                        target,
                        matches!((v, b), (Some(v), Some(b)) if v < b - c.sentiment_decline),
                        true,
                    )
                }
                issue => {
                    let v = get(&week_now, rule.measure);
                    let (target, high_is_bad) = match issue {
                        "low_call_score" => (c.low_call_score, false),
                        "high_talk_ratio" => (c.high_talk_ratio, true),
                        "low_meeting_rate" => (c.low_meeting_rate, false),
                        "high_filler_words" => (c.high_filler_words, true),
                        _ => (c.long_wrap_seconds, true),
                    };
                    let triggered = v.is_some_and(|v| if high_is_bad { v > target } else { v < target });
                    (v, get(&week_before, rule.measure), target, triggered, !high_is_bad)
                }
            };
            let Some(value) = value.filter(|_| triggered) else {
                continue;
            };
            if rule.related.is_some() {
                related.entry(rule.issue).or_default().push((out.len(), agent.clone()));
            }
            out.push(json!({
                "agent_id": agent,
                "agent_name": directory.agent_name(agent),
                "issue": rule.issue,
                "severity": if rule.issue == "declining_sentiment" {
                    severity_of_drop(before.unwrap_or(value) - value, c.sentiment_decline)
                } else { severity(value, target) },
                "metric": rule.measure,
                "current_value": value,
                "target_value": target,
                "previous_value": before,
                "trend": trend(Some(value), before, higher_is_better),
                "suggested_action": rule.suggested_action,
                "related_calls": [],
            }));
        }
    }
    for rule in rules() {
        if let (Some(filter), Some(wanted)) = (&rule.related, related.remove(rule.issue)) {
            let agents = wanted.iter().map(|(_, a)| a.clone()).collect();
            for ((at, _), calls) in wanted.iter().zip(related_calls(&view, agents, filter, today).await?) {
                out[*at]["related_calls"] = Value::Array(calls);
            }
        }
    }
    let rank = |s: &str| match s {
        "high" => 0,
        "medium" => 1,
        _ => 2,
    };
    out.sort_by_key(|o| rank(o["severity"].as_str().unwrap_or("")));
    Ok(Json(
        json!({"team_id": team, "team_name": directory.team_name(&team), "thresholds": c, "opportunities": out}),
    ))
}

fn severity_of_drop(drop: f64, threshold: f64) -> &'static str {
    if drop >= 3.0 * threshold {
        "high"
    } else if drop >= 2.0 * threshold {
        "medium"
    } else {
        "low"
    }
}

/// Up to five of each agent's latest calls of the last 7 days matching `filter`, in one pass.
async fn related_calls(
    view: &View,
    agents: Vec<String>,
    filter: &Value,
    today: Date,
) -> Result<Vec<Vec<Value>>, ApiError> {
    let query = json!({"range": range(today - days(6), today + days(1)), "filters": filter});
    let request = CallsRequest {
        query,
        cursor: None,
        limit: 5,
    };
    let pages = view
        .state
        .store
        .calls_per_agent(view.tenant.id, request, agents, view.now)
        .await?
        .map_err(|f| ApiError::invalid("invalid_request", f))?;
    Ok(pages
        .iter()
        .map(|page| page.calls.iter().map(|c| c["call_id"].clone()).collect())
        .collect())
}

/// `GET /analytics/compliance?date=`: each agent's day against its activity targets.
pub async fn compliance(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> ViewResult {
    let mut view = View::new(state, principal, &p, &["date"], "today").await?;
    let date = view.date("date")?;
    view.base
        .insert("range".into(), range(date, shifted(date, days(1), "date")?));
    let result = view
        .run(view.body(
            &[
                "total_calls",
                "connected_calls",
                "total_talk_time",
                "idle_minutes",
                "active_hours",
            ],
            &["agent"],
            json!({}),
        ))
        .await?;
    let directory = view.directory().await?;
    let mut entries = Vec::new();
    for r in records(&result) {
        let Some(agent) = r["agent"].as_str().filter(|a| view.principal.sees_individual(a)) else {
            continue;
        };
        let t = directory.targets(agent, &view.tenant.settings.targets);
        let actual = |m: &str| r.get(m).and_then(Value::as_f64);
        let calls = actual("total_calls").unwrap_or(0.0);
        let connects = actual("connected_calls").unwrap_or(0.0);
        let talk_minutes = actual("total_talk_time").unwrap_or(0.0) / 60.0;
        let (idle, dialing) = (actual("idle_minutes"), actual("active_hours"));
        let at_least = |a: f64, target: f64| if target == 0.0 { 100.0 } else { a * 100.0 / target };
        let compliance = json!({
            "calls": at_least(calls, t.min_calls),
            "connects": at_least(connects, t.min_connects),
            "talk_time": at_least(talk_minutes, t.min_talk_minutes),
            "idle": idle.map(|i| if i <= t.max_idle_minutes { 100.0 } else { t.max_idle_minutes * 100.0 / i }),
            "dialing_time": dialing.map(|d| at_least(d, t.min_dialing_hours)),
        });
        let parts: Vec<f64> = compliance
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| v.as_f64())
            .collect();
        let overall = parts.iter().map(|p| p.min(100.0)).sum::<f64>() / parts.len() as f64;
        entries.push(json!({
            "agent_id": agent,
            "agent_name": directory.agent_name(agent),
            "date": date.to_string(),
            "targets": t,
            "actuals": {"calls": calls as i64, "connects": connects as i64, "talk_minutes": talk_minutes,
                        "idle_minutes": idle, "dialing_hours": dialing},
            "compliance": compliance,
            "overall_compliance": overall,
            "is_compliant": parts.len() == 5 && parts.iter().all(|p| *p >= 100.0),
        }));
    }
    Ok(Json(json!({"date": date.to_string(), "agents": entries})))
}
