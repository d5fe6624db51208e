//! A rep's streak at the daily goal and badges (SPEC §14), from the rollups (`crate::badges`
//! loads the facts): the tenant's rules (`settings.badges`, else the defaults) applied by
//! `engine::gamification` to the final records, so a correction changes them at once, with
//! when each was recorded and announced (`awarded_at`, once the on-change reconciliation ran).

use super::auth::{forbidden, Principal, Reach};
use super::error::ApiError;
use super::openapi::{op, Routes};
use super::AppState;
use crate::directory::Directory;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Json;
use dialboard_engine::gamification::{self, Award, Badge, Verdict};
use dialboard_store::alerting::run;
use dialboard_store::badges::held;
use dialboard_store::Scope;
use jiff::civil::Date;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A badge a rep holds or earns now.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EarnedBadge {
    pub badge: String,
    #[schema(required = true)]
    pub name: Option<String>,
    /// The period it is for (a date, a week, a month).
    pub period: String,
    /// RFC 3339, once recorded and announced.
    #[schema(required = true)]
    pub awarded_at: Option<String>,
}

/// `GET /analytics/badges/{agent_id}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BadgesView {
    pub agent_id: String,
    #[schema(required = true)]
    pub agent_name: Option<String>,
    pub daily_goal: u32,
    pub goal_streak_days: u32,
    pub badges: Vec<EarnedBadge>,
    /// The tenant's badge rules.
    #[schema(value_type = Vec<std::collections::BTreeMap<String, serde_json::Value>>)]
    pub rules: Vec<Badge>,
}

pub fn routes(api: Routes) -> Routes {
    api.add(
        "/analytics/badges/{agent_id}",
        get(badges_view),
        vec![op(
            "get",
            "read",
            "a rep's streak at the daily goal and the badges the tenant's rules award them",
        )
        .answers(super::openapi::answer::<BadgesView>())],
    )
}

async fn badges_view(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(agent): Path<String>,
) -> Result<Json<BadgesView>, ApiError> {
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
    let facts = crate::badges::load(&state, &tenant, None, Some(std::slice::from_ref(&agent))).await?;
    let (badges, goals) = crate::badges::rules(&tenant, &directory, &facts);
    let goal = directory.daily_goal(&agent, &tenant.settings.targets).max(0.0) as u32;
    let calls_per_day: BTreeMap<Date, u32> = facts
        .days
        .iter()
        .filter(|f| f.agent == agent && f.date >= facts.daily_from)
        .map(|f| (f.date, f.calls))
        .collect();
    let verdict = Verdict::new(&facts.days, &badges, &goals, facts.today, facts.daily_from);
    let (who, tenant_id) = (agent.clone(), tenant.id);
    let stored: BTreeMap<Award, i64> = run(&*state.store, move |db| held(db, tenant_id, Some(&who)))
        .await?
        .into_iter()
        .map(|h| (h.award, h.awarded_at))
        .collect();
    // What the facts earn now, and what is held that they cannot decide (earned long ago);
    // `awarded_at` once the award is recorded and announced.
    let mine: BTreeSet<&Award> = verdict
        .earned
        .iter()
        .filter(|a| a.agent == agent)
        .chain(stored.keys().filter(|a| !verdict.decides(a)))
        .collect();
    let names: BTreeMap<&str, &str> = badges.iter().map(|b| (b.id.as_str(), b.name.as_str())).collect();
    let earned = mine
        .into_iter()
        .map(|a| {
            let at = stored.get(a).and_then(|ms| jiff::Timestamp::from_millisecond(*ms).ok());
            EarnedBadge {
                badge: a.badge.clone(),
                name: names.get(a.badge.as_str()).map(|n| n.to_string()),
                period: a.period.clone(),
                awarded_at: at.map(|t| tenant.zone.format(t.as_second())),
            }
        })
        .collect();
    Ok(Json(BadgesView {
        agent_name: Some(directory.agent_name(&agent).to_string()),
        agent_id: agent,
        daily_goal: goal,
        goal_streak_days: gamification::goal_streak(&calls_per_day, goal, facts.today),
        badges: earned,
        rules: badges,
    }))
}
