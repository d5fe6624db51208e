//! Badges held and announced (SPEC §14). The awards are a function of the final records
//! (`dialboard_engine::gamification`); what each rep holds is stored (`store::badges`) and
//! reconciled with what the facts earn whenever committed events change a tenant's numbers
//! (the alerts' coalesced on-change evaluation calls [`reconcile_tenant`]).
//!
//! Each award and revocation is an insert or delete that reports whether it changed the row:
//! when several nodes reconcile the same facts, exactly one records each change and only that
//! one announces the live `badge` message, which every node's hub forwards to its subscribers. A correction that takes a badge away revokes it; one that
//! gives it back awards it again.
//!
//! The facts come from the rollups, never a scan of calls: each rep's day counts for the last
//! few months and month totals before (`Verdict` leaves alone what month totals cannot decide).

use crate::api::error::{ApiError, Code};
use crate::api::AppState;
use crate::directory::Directory;
use dialboard_engine::gamification::{self, Award, Badge, Change, DayFacts, Verdict};
use dialboard_store::alerting::run;
use dialboard_store::badges as held;
use dialboard_store::{Announcement, TenantInfo};
use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// Months read day by day (besides the current one): enough for weekly badges and goal streaks
/// to be decided over the last quarter.
const DAILY_MONTHS: i64 = 3;
/// The first month read (month totals): nothing before it earns a badge.
const FIRST_DAY: &str = "2000-01-01";
/// Reps per query: 25 reps × ~26 years of months stays inside a query's row limit.
const AGENTS_PER_QUERY: usize = 25;
const MEASURES: [&str; 3] = ["total_calls", "connected_calls", "meetings_booked"];

/// What badges are computed from.
pub struct Facts {
    pub days: Vec<DayFacts>,
    /// Facts on and after this day are day by day; before it, month totals.
    pub daily_from: Date,
    pub today: Date,
}

fn num(row: &[Value], i: usize) -> u32 {
    row.get(i).and_then(Value::as_f64).unwrap_or(0.0).max(0.0) as u32
}

fn date(v: &Value) -> Option<Date> {
    v.as_str().and_then(|t| t.get(..10)).and_then(|d| d.parse().ok())
}

async fn rows(state: &AppState, tenant: i64, body: Value, now: i64) -> Result<Vec<Vec<Value>>, ApiError> {
    let result = state
        .store
        .query(tenant, body, now)
        .await?
        .map_err(|f| ApiError::invalid(Code::InvalidRequest, f))?
        .to_json();
    Ok(result["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_array().cloned())
        .collect())
}

/// The facts of every rep (their month totals), day by day for `daily` reps (all if `None`).
pub async fn load(state: &AppState, tenant: &TenantInfo, daily: Option<&[String]>) -> Result<Facts, ApiError> {
    let now = state.now();
    let today = tenant.zone.date_of(now);
    let daily_from = today
        .first_of_month()
        .checked_sub(DAILY_MONTHS.months())
        .unwrap_or(today);
    let end = today.tomorrow().unwrap_or(today).to_string();
    let everyone: Vec<String> = rows(
        state,
        tenant.id,
        json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"start": FIRST_DAY, "end": end},
               "limit": dialboard_engine::query::DEFAULT_LIMIT}),
        now,
    )
    .await?
    .iter()
    .filter_map(|r| r.first().and_then(Value::as_str).map(str::to_string))
    .collect();
    let daily: BTreeSet<&str> = match daily {
        Some(agents) => agents.iter().map(String::as_str).collect(),
        None => everyone.iter().map(String::as_str).collect(),
    };
    let mut days = Vec::new();
    for chunk in everyone.chunks(AGENTS_PER_QUERY) {
        let months = json!({"measures": MEASURES, "dimensions": ["agent"], "granularity": "month",
            "range": {"start": FIRST_DAY, "end": end}, "filters": {"agent": chunk}, "limit": dialboard_engine::query::DEFAULT_LIMIT});
        let in_days: Vec<&String> = chunk.iter().filter(|a| daily.contains(a.as_str())).collect();
        let by_day = json!({"measures": MEASURES, "dimensions": ["agent"], "granularity": "day",
            "range": {"start": daily_from.to_string(), "end": end}, "filters": {"agent": in_days},
            "limit": dialboard_engine::query::DEFAULT_LIMIT});
        let (months, by_day) = tokio::try_join!(rows(state, tenant.id, months, now), async {
            if in_days.is_empty() {
                Ok(Vec::new())
            } else {
                rows(state, tenant.id, by_day, now).await
            }
        })?;
        let tagged = months
            .iter()
            .map(|r| (true, r))
            .chain(by_day.iter().map(|r| (false, r)));
        for (monthly, row) in tagged {
            let (Some(agent), Some(day)) = (row.first().and_then(Value::as_str), row.get(1).and_then(date)) else {
                continue;
            };
            // A rep read day by day has their month totals from `daily_from` on in the days.
            if monthly && day >= daily_from && daily.contains(agent) {
                continue;
            }
            days.push(DayFacts {
                agent: agent.to_string(),
                date: day,
                calls: num(row, 2),
                connected: num(row, 3),
                meetings: num(row, 4),
            });
        }
    }
    Ok(Facts {
        days,
        daily_from,
        today,
    })
}

/// The tenant's badge rules and each rep's daily goal.
pub fn rules(tenant: &TenantInfo, directory: &Directory, facts: &Facts) -> (Vec<Badge>, BTreeMap<String, u32>) {
    let badges = tenant
        .settings
        .badges
        .clone()
        .unwrap_or_else(gamification::default_badges);
    let goals = facts
        .days
        .iter()
        .map(|f| {
            let goal = directory.daily_goal(&f.agent, &tenant.settings.targets).max(0.0) as u32;
            (f.agent.clone(), goal)
        })
        .collect();
    (badges, goals)
}

/// Brings the tenant's stored awards to what its facts earn; announces each change this node
/// recorded. Returns how many it recorded.
pub async fn reconcile_tenant(state: &AppState, tenant_id: i64) -> Result<usize, ApiError> {
    let tenant = state.store.tenant(tenant_id).await?;
    let (facts, directory) = tokio::try_join!(load(state, &tenant, None), async {
        Directory::load(state.store.as_ref(), tenant_id)
            .await
            .map_err(ApiError::from)
    })?;
    let (badges, goals) = rules(&tenant, &directory, &facts);
    let verdict = Verdict::new(&facts.days, &badges, &goals, facts.today, facts.daily_from);
    let stored: BTreeSet<Award> = run(&*state.store, move |db| held::held(db, tenant_id, None))
        .await?
        .into_iter()
        .map(|h| h.award)
        .collect();
    let now_ms = state.now() * 1000;
    let mut recorded = 0;
    for change in verdict.changes(&stored) {
        let step = change.clone();
        let won = run(&*state.store, move |db| match &step {
            Change::Awarded(a) => held::award(db, tenant_id, a, now_ms),
            Change::Revoked(a) => held::revoke(db, tenant_id, a),
        })
        .await?;
        if won {
            recorded += 1;
            // Every node's subscribers hear it, whichever node recorded it.
            let message = announcement(state, &tenant, &directory, &badges, &change);
            if let Err(e) = state.store.announce(message).await {
                tracing::warn!(tenant_id, error = %e, "could not announce a badge to live dashboards");
            }
        }
    }
    Ok(recorded)
}

/// The live `badge` message of a change this node recorded: to the subscribers of the tenant,
/// the rep's team and the rep who may see the rep; a rep who opted out of public leaderboards
/// is announced on their own scope only.
fn announcement(
    state: &AppState,
    tenant: &TenantInfo,
    directory: &Directory,
    badges: &[Badge],
    change: &Change,
) -> Announcement {
    let (kind, award) = match change {
        Change::Awarded(a) => ("awarded", a),
        Change::Revoked(a) => ("revoked", a),
    };
    let name = badges.iter().find(|b| b.id == award.badge).map(|b| b.name.as_str());
    let rep = directory.agents.get(&award.agent);
    let message = json!({
        "change": kind,
        "badge": award.badge,
        "name": name.unwrap_or(&award.badge),
        "agent_id": award.agent,
        "agent_name": directory.agent_name(&award.agent),
        "period": award.period,
        "at": tenant.zone.format(state.now()),
    });
    let public = rep.is_none_or(|r| r.leaderboard_opt_out != Some(true));
    Announcement {
        tenant_id: tenant.id,
        kind: "badge".into(),
        agent: Some(award.agent.clone()),
        team: rep.and_then(|r| r.team_id.clone()),
        campaign: None,
        agent_scope_only: !public,
        body: message,
    }
}

/// How long the changes of a burst are gathered before a pass: a pass reads every rep's facts
/// of the tenant (two queries per 25 reps), so under steady ingest it runs once per interval,
/// not once per commit, and a badge is announced within about this long of its facts.
const INTERVAL: Duration = Duration::from_secs(2);

/// Starts reconciling badges for this server after every burst of committed events. Its own
/// task, so that a large tenant's pass does not hold up the alerts' evaluation.
pub fn spawn(state: Arc<AppState>) {
    let changes = state.store.changes();
    tokio::spawn(watch(state, changes));
}

async fn watch(state: Arc<AppState>, mut changes: broadcast::Receiver<Arc<dialboard_store::Change>>) {
    loop {
        let mut dirty = BTreeSet::new();
        // Missed changes (the feed ran ahead) could be any tenant's: all are reconciled.
        let mut everyone = false;
        match changes.recv().await {
            Ok(change) => {
                dirty.insert(change.tenant_id);
            }
            Err(RecvError::Lagged(_)) => everyone = true,
            Err(RecvError::Closed) => return,
        }
        tokio::time::sleep(INTERVAL).await;
        match crate::alerts::gather(&mut changes, &mut dirty) {
            Some(missed) => everyone |= missed,
            None => return,
        }
        if everyone {
            match state.store.tenant_ids().await {
                Ok(all) => dirty.extend(all),
                Err(e) => tracing::warn!(error = %e, "could not list the tenants for badges"),
            }
        }
        for tenant_id in dirty {
            if let Err(e) = reconcile_tenant(&state, tenant_id).await {
                tracing::warn!(tenant_id, error = %e.message, "badges not reconciled");
            }
        }
    }
}
