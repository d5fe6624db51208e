//! A rep's streak at the daily goal and badges (SPEC §14), from the rollups: the rep's calls,
//! connects and meetings per local day, and every rep's per month (for "best connect rate of
//! the month"). Badges are the tenant's rules (`settings.badges`, else the defaults) applied by
//! `engine::gamification` to the final records, so a correction changes them at once and a
//! badge is held once per rule, rep and period.

use super::auth::{forbidden, Principal, Reach};
use super::error::{ApiError, Code};
use super::openapi::{op, Routes};
use super::AppState;
use crate::directory::Directory;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Json;
use dialboard_engine::gamification::{self, DayFacts};
use dialboard_store::Scope;
use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How far back badges look: a year and a bit, so every month of the last year is closed.
const DAYS_BACK: i64 = 400;
const MEASURES: [&str; 3] = ["total_calls", "connected_calls", "meetings_booked"];

pub fn routes(api: Routes) -> Routes {
    api.add(
        "/analytics/badges/{agent_id}",
        get(badges_view),
        vec![op(
            "get",
            "read",
            "a rep's streak at the daily goal and the badges the tenant's rules award them",
        )],
    )
}

fn num(row: &[Value], i: usize) -> u32 {
    row.get(i).and_then(Value::as_f64).unwrap_or(0.0).max(0.0) as u32
}

async fn badges_view(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let directory = Directory::load(state.store.as_ref(), tenant.id).await?;
    let visible = match &principal.reach {
        Reach::All => true,
        Reach::Teams(teams) => directory
            .agents
            .get(&agent)
            .and_then(|a| a.team_id.as_ref())
            .is_some_and(|t| teams.contains(t)),
        Reach::Agent { .. } => principal.reach.sees_individual(&agent),
    };
    if !visible {
        return Err(forbidden(format!("agent {agent} is not visible to this credential")));
    }
    let _running = state.admission.admit(&principal).await?;
    let now = state.now();
    let today = tenant.zone.date_of(now);
    let start = today.checked_sub(DAYS_BACK.days()).unwrap_or(today);
    let end = today.tomorrow().unwrap_or(today);
    let range = json!({"start": start.to_string(), "end": end.to_string()});
    // Badges are facts about the whole tenant (the best rate of a month is among every rep),
    // whoever asks; only this rep's are answered, after the access check above.
    let run = |body: Value| {
        let state = state.clone();
        let tenant = tenant.id;
        async move {
            state
                .store
                .query(tenant, body, now)
                .await?
                .map_err(|f| ApiError::invalid(Code::InvalidRequest, f))
                .map(|r| r.to_json())
        }
    };
    let (daily, monthly) = tokio::try_join!(
        run(
            json!({"measures": MEASURES, "dimensions": [], "granularity": "day", "range": range,
                   "filters": {"agent": [agent]}})
        ),
        run(json!({"measures": MEASURES, "dimensions": ["agent"], "granularity": "month", "range": range})),
    )?;
    let date = |v: &Value| {
        v.as_str()
            .and_then(|t| t.get(..10))
            .and_then(|d| d.parse::<Date>().ok())
    };
    let mut facts = Vec::new();
    let mut calls_per_day = BTreeMap::new();
    for row in daily["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
    {
        let Some(day) = row.first().and_then(date) else {
            continue;
        };
        calls_per_day.insert(day, num(row, 1));
        facts.push(DayFacts {
            agent: agent.clone(),
            date: day,
            calls: num(row, 1),
            connected: num(row, 2),
            meetings: num(row, 3),
        });
    }
    // Other reps' months count for "best of the month" only, dated on the month's first day.
    for row in monthly["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
    {
        let (Some(other), Some(day)) = (row.first().and_then(Value::as_str), row.get(1).and_then(date)) else {
            continue;
        };
        if other != agent {
            facts.push(DayFacts {
                agent: other.to_string(),
                date: day,
                calls: num(row, 2),
                connected: num(row, 3),
                meetings: num(row, 4),
            });
        }
    }
    let goal = directory.daily_goal(&agent, &tenant.settings.targets).max(0.0) as u32;
    let badges = tenant
        .settings
        .badges
        .clone()
        .unwrap_or_else(gamification::default_badges);
    let goals = BTreeMap::from([(agent.clone(), goal)]);
    let names: BTreeMap<&str, &str> = badges.iter().map(|b| (b.id.as_str(), b.name.as_str())).collect();
    let earned: Vec<Value> = gamification::awards(&facts, &badges, &goals, today)
        .into_iter()
        .filter(|a| a.agent == agent)
        .map(|a| json!({"badge": a.badge, "name": names.get(a.badge.as_str()), "period": a.period}))
        .collect();
    Ok(Json(json!({
        "agent_id": agent,
        "agent_name": directory.agent_name(&agent),
        "daily_goal": goal,
        "goal_streak_days": gamification::goal_streak(&calls_per_day, goal, today),
        "badges": earned,
        "rules": badges,
    })))
}
