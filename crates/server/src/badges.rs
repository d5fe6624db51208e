//! Badges held and announced (SPEC §14). The awards are a function of the final records
//! (`dialboard_engine::gamification`); what each rep holds is stored (`store::badges`) and
//! reconciled with what the facts earn whenever events this node committed change a rep's
//! calls ([`Reconciler`]: a pass reads the reps whose calls changed, not the roster).
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

/// The facts (month totals) of `reps` (every rep with calls if `None`), day by day for `daily`
/// reps (all of them if `None`).
pub async fn load(
    state: &AppState,
    tenant: &TenantInfo,
    reps: Option<&[String]>,
    daily: Option<&[String]>,
) -> Result<Facts, ApiError> {
    let now = state.now();
    let today = tenant.zone.date_of(now);
    let daily_from = today
        .first_of_month()
        .checked_sub(DAILY_MONTHS.months())
        .unwrap_or(today);
    let end = today.tomorrow().unwrap_or(today).to_string();
    let everyone: Vec<String> = match reps {
        Some(reps) => reps.to_vec(),
        None => rows(
            state,
            tenant.id,
            json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"start": FIRST_DAY, "end": end},
                   "limit": dialboard_engine::query::DEFAULT_LIMIT}),
            now,
        )
        .await?
        .iter()
        .filter_map(|r| r.first().and_then(Value::as_str).map(str::to_string))
        .collect(),
    };
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

/// Which reps a pass reads: all of them, or those whose call facts changed, with the months
/// (first days, in the tenant's zone) their changed calls fell in.
#[derive(Debug, Clone, PartialEq)]
pub enum Reps {
    All,
    Changed {
        agents: BTreeSet<String>,
        months: BTreeSet<Date>,
    },
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Whether it read every rep.
    pub full: bool,
    /// The reps whose facts it read and whose awards it decided.
    pub evaluated: usize,
    /// The awards and revocations it recorded.
    pub recorded: usize,
}

/// Whether and how a pass tells live subscribers of what it records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    Each,
    /// The first reconciliation of a history earned before badges existed: its awards are
    /// recorded, not news.
    Silently,
}

/// Brings the tenant's stored awards to what the facts of `reps` earn; announces each change
/// this node recorded (unless `announce` says not to).
///
/// A pass over changed reps decides their awards, and those of the badges that compare reps
/// (the best connect rate of a month) for the finished months their changed calls fell in,
/// from every rep's totals of those months only. The other reps' awards cannot have changed.
pub async fn reconcile(state: &AppState, tenant_id: i64, reps: &Reps, announce: Announce) -> Result<Pass, ApiError> {
    let tenant = state.store.tenant(tenant_id).await?;
    let changed: Option<Vec<String>> = match reps {
        Reps::All => None,
        Reps::Changed { agents, .. } => Some(agents.iter().cloned().collect()),
    };
    let (mut facts, directory) = tokio::try_join!(load(state, &tenant, changed.as_deref(), None), async {
        Directory::load(state.store.as_ref(), tenant_id)
            .await
            .map_err(ApiError::from)
    })?;
    let (badges, goals) = rules(&tenant, &directory, &facts);
    let compared: BTreeSet<&str> = badges
        .iter()
        .filter(|b| matches!(b.rule, gamification::Rule::BestConnectRateOfMonth { .. }))
        .map(|b| b.id.as_str())
        .collect();
    // The finished months whose comparisons the changed calls may have moved.
    let months: Vec<Date> = match reps {
        Reps::Changed { months, .. } if !compared.is_empty() => months
            .iter()
            .copied()
            .filter(|m| *m < facts.today.first_of_month())
            .collect(),
        _ => Vec::new(),
    };
    if let Some(agents) = &changed {
        for month in &months {
            let others = month_totals(state, &tenant, *month).await?;
            facts
                .days
                .extend(others.into_iter().filter(|f| !agents.contains(&f.agent)));
        }
    }
    let periods: BTreeSet<String> = months
        .iter()
        .map(|m| format!("{:04}-{:02}", m.year(), m.month()))
        .collect();
    let in_scope = |a: &Award| match &changed {
        None => true,
        Some(agents) => {
            agents.contains(&a.agent) || (compared.contains(a.badge.as_str()) && periods.contains(&a.period))
        }
    };
    let mut verdict = Verdict::new(&facts.days, &badges, &goals, facts.today, facts.daily_from);
    verdict.earned.retain(|a| in_scope(a));
    let (whole, agents, periods_held): (bool, Vec<String>, Vec<String>) = (
        changed.is_none(),
        changed.clone().unwrap_or_default(),
        periods.iter().cloned().collect(),
    );
    let stored: BTreeSet<Award> = run(&*state.store, move |db| match whole {
        true => held::held(db, tenant_id, None),
        false => held::held_by(db, tenant_id, &agents, &periods_held),
    })
    .await?
    .into_iter()
    .map(|h| h.award)
    .filter(|a| in_scope(a))
    .collect();
    let now_ms = state.now() * 1000;
    let mut pass = Pass {
        full: *reps == Reps::All,
        evaluated: match reps {
            Reps::All => facts
                .days
                .iter()
                .map(|f| f.agent.as_str())
                .collect::<BTreeSet<_>>()
                .len(),
            Reps::Changed { agents, .. } => agents.len(),
        },
        recorded: 0,
    };
    for change in verdict.changes(&stored) {
        let step = change.clone();
        let won = run(&*state.store, move |db| match &step {
            Change::Awarded(a) => held::award(db, tenant_id, a, now_ms),
            Change::Revoked(a) => held::revoke(db, tenant_id, a),
        })
        .await?;
        if won {
            pass.recorded += 1;
            if announce == Announce::Each {
                // Every node's subscribers hear it, whichever node recorded it.
                let message = announcement(state, &tenant, &directory, &badges, &change);
                if let Err(e) = state.store.announce(message).await {
                    tracing::warn!(tenant_id, error = %e, "could not announce a badge to live dashboards");
                }
            }
        }
    }
    Ok(pass)
}

/// Every rep's totals of one month, dated on its first day.
async fn month_totals(state: &AppState, tenant: &TenantInfo, month: Date) -> Result<Vec<DayFacts>, ApiError> {
    let end = month.last_of_month().tomorrow().unwrap_or(month);
    let body = json!({"measures": MEASURES, "dimensions": ["agent"], "range": {"start": month.to_string(), "end": end.to_string()},
        "limit": dialboard_engine::query::DEFAULT_LIMIT});
    Ok(rows(state, tenant.id, body, state.now())
        .await?
        .iter()
        .filter_map(|row| {
            Some(DayFacts {
                agent: row.first()?.as_str()?.to_string(),
                date: month,
                calls: num(row, 1),
                connected: num(row, 2),
                meetings: num(row, 3),
            })
        })
        .collect())
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

/// How long the changes of a burst are gathered before a pass, so that under steady ingest a
/// tenant is reconciled once per interval, not once per commit, and a badge is announced within
/// about this long of its facts.
const INTERVAL: Duration = Duration::from_secs(2);

/// The passes this node owes, from the changes it committed, and what it knew at each tenant's
/// last pass. A pass reads only the reps whose calls changed; every rep when the tenant is
/// new to this process, when a month closed since its last pass (a finished month's best is
/// decided among all reps), when its badge rules or goals changed, or after missed changes.
#[derive(Default)]
pub struct Reconciler {
    /// Per tenant, the reps whose calls changed and the starts (seconds) of those calls, as
    /// heard: their months are the tenant's zone's, read when the pass runs.
    pending: BTreeMap<i64, (BTreeSet<String>, BTreeSet<i64>)>,
    /// Missed changes (the feed ran ahead) could be any tenant's: every tenant, every rep.
    everyone: bool,
    /// Per tenant, what its awards were last decided under (month, rules, goals).
    known: BTreeMap<i64, String>,
}

impl Reconciler {
    /// Notes a committed change, keeping only its reps and their calls' starts (not the change,
    /// whose events the feed would hold as long: `alerts::gather_for`). Only this node's: the
    /// node that commits a change reconciles it (it knows every call the change touched), and
    /// its announcements reach every node.
    pub fn note(&mut self, change: &dialboard_store::Change) {
        if !change.local || change.calls.is_empty() {
            return;
        }
        let (agents, starts) = self.pending.entry(change.tenant_id).or_default();
        for call in &change.calls {
            if !agents.contains(&call.agent) {
                agents.insert(call.agent.clone());
            }
            starts.insert(call.started_ns.div_euclid(1_000_000_000));
        }
    }

    /// Notes that changes were missed.
    pub fn missed(&mut self) {
        self.everyone = true;
    }

    /// Runs the passes owed; returns each tenant's.
    pub async fn run(&mut self, state: &AppState) -> Vec<(i64, Pass)> {
        let mut owed = BTreeMap::new();
        for (tenant_id, (agents, starts)) in std::mem::take(&mut self.pending) {
            match state.store.tenant(tenant_id).await {
                Ok(tenant) => {
                    let months = starts.into_iter().map(|s| tenant.zone.date_of(s).first_of_month());
                    owed.insert(
                        tenant_id,
                        Reps::Changed {
                            agents,
                            months: months.collect(),
                        },
                    );
                }
                Err(e) => tracing::warn!(tenant_id, error = %e, "badges: unknown tenant"),
            }
        }
        if std::mem::take(&mut self.everyone) {
            match state.store.tenant_ids().await {
                Ok(all) => owed.extend(all.into_iter().map(|t| (t, Reps::All))),
                Err(e) => tracing::warn!(error = %e, "could not list the tenants for badges"),
            }
        }
        let mut done = Vec::new();
        for (tenant_id, mut reps) in owed {
            let result = async {
                let basis = basis(state, tenant_id).await?;
                if self.known.get(&tenant_id) != Some(&basis) {
                    reps = Reps::All;
                }
                let pass = reconcile(state, tenant_id, &reps, Announce::Each).await?;
                self.known.insert(tenant_id, basis);
                Ok::<_, ApiError>(pass)
            }
            .await;
            match result {
                Ok(pass) => done.push((tenant_id, pass)),
                Err(e) => {
                    // Unknown state: the next pass reads everyone.
                    self.known.remove(&tenant_id);
                    tracing::warn!(tenant_id, error = %e.message, "badges not reconciled");
                }
            }
        }
        done
    }
}

/// What a tenant's awards are decided under besides the facts: the current month (a month
/// that closes decides its best), the badge rules, the tenant's targets and every rep's goal.
async fn basis(state: &AppState, tenant_id: i64) -> Result<String, ApiError> {
    let tenant = state.store.tenant(tenant_id).await?;
    let directory = Directory::load(state.store.as_ref(), tenant_id).await?;
    let month = tenant.zone.date_of(state.now()).first_of_month();
    let goals: BTreeMap<&str, f64> = directory
        .agents
        .keys()
        .map(|a| (a.as_str(), directory.daily_goal(a, &tenant.settings.targets)))
        .collect();
    let badges = tenant
        .settings
        .badges
        .clone()
        .unwrap_or_else(gamification::default_badges);
    Ok(
        json!({"month": month.to_string(), "badges": badges, "targets": tenant.settings.targets, "goals": goals})
            .to_string(),
    )
}

/// Starts reconciling badges for this server after every burst of committed events. Its own
/// task, so that a large tenant's pass does not hold up the alerts' evaluation.
pub fn spawn(state: Arc<AppState>) {
    let changes = state.store.changes();
    tokio::spawn(watch(state, changes));
}

/// Records, without announcing them, the awards of every tenant whose history predates badges
/// (an upgraded database): what reps earned before is not news. Returns each such tenant's pass.
/// Several nodes may do it at once: each award is still recorded once.
pub async fn baseline(state: &AppState) -> Result<Vec<(i64, Pass)>, ApiError> {
    let mut done = Vec::new();
    for tenant_id in run(&*state.store, held::baselines).await? {
        let pass = reconcile(state, tenant_id, &Reps::All, Announce::Silently).await?;
        run(&*state.store, move |db| held::baseline_done(db, tenant_id)).await?;
        done.push((tenant_id, pass));
    }
    Ok(done)
}

async fn watch(state: Arc<AppState>, mut changes: broadcast::Receiver<Arc<dialboard_store::Change>>) {
    // Before any change is reconciled (they wait in the feed), so no history is announced.
    match baseline(&state).await {
        Ok(done) => {
            for (tenant_id, pass) in done {
                tracing::info!(
                    tenant_id,
                    awards = pass.recorded,
                    "badges earned before the upgrade recorded silently"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e.message, "badges earned before the upgrade not recorded"),
    }
    let mut reconciler = Reconciler::default();
    loop {
        match changes.recv().await {
            Ok(change) => reconciler.note(&change),
            Err(RecvError::Lagged(_)) => reconciler.missed(),
            Err(RecvError::Closed) => return,
        }
        match crate::alerts::gather_for(&mut changes, INTERVAL, |c| reconciler.note(c)).await {
            Some(true) => reconciler.missed(),
            Some(false) => {}
            None => return,
        }
        reconciler.run(&state).await;
    }
}
