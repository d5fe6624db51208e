//! Alerts (SPEC §7): who may watch what, the evaluation of a tenant's alerts when new events
//! change its numbers (and on a timer, as windows slide), and the notifications of a firing or
//! a recovery — the live `alert` message, webhooks, e-mail.
//!
//! The decision is `dialboard_engine::alerting` (no IO); the numbers come from
//! `api::query::run_query` with the reach of the alert's owner at creation, as `/query` would
//! answer them. A state change is a compare-and-set in the store (`alerting::transition`): when
//! several nodes evaluate the same crossing, one records it and only that one notifies; its
//! live `alert` message goes through the store's announcements to every node's subscribers.

use crate::api::auth::{Actor, Principal, Reach};
use crate::api::AppState;
use crate::mail::{Mailer, OutgoingEmail};
use dialboard_engine::alerting::{AlertDef, Decision, ScopeKind, SubjectState};
use dialboard_engine::FieldError;
use dialboard_store::access::Role;
use dialboard_store::alerting::{self, Alert};
use dialboard_store::{Announcement, CoachingThresholds, Scope, StoreError};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Events arriving within this time of the first are evaluated together.
const COALESCE: Duration = Duration::from_millis(200);
/// Windows slide with time: every tenant with alerts is evaluated this often without events.
const SWEEP: Duration = Duration::from_secs(60);

/// What is stored for an alert: its definition and the reach it is evaluated with (its
/// creator's at the time, so a rep's alert never reads beyond what the rep could).
pub fn stored_body(def: &AlertDef, reach: &Reach) -> Value {
    json!({"definition": def, "reach": reach})
}

pub fn definition(alert: &Alert) -> Result<AlertDef, Vec<FieldError>> {
    AlertDef::parse(&alert.body["definition"])
}

/// The reach an alert is evaluated with.
pub fn reach(alert: &Alert) -> Reach {
    serde_json::from_value(alert.body["reach"].clone()).unwrap_or(Reach::Agent {
        id: String::new(),
        teams: Vec::new(),
    })
}

/// Whether `principal` may watch a scope: an admin or viewer anything, a manager their teams
/// and their teams' agents, a rep only themselves.
pub fn may_target(principal: &Principal, def: &AlertDef, agent_teams: &HashMap<String, String>) -> bool {
    let id = def.scope_id.as_deref().unwrap_or_default();
    match &principal.reach {
        Reach::All => true,
        Reach::Teams(teams) => match def.scope {
            ScopeKind::Team | ScopeKind::EachAgentOfTeam => teams.iter().any(|t| t == id),
            ScopeKind::Agent => agent_teams.get(id).is_some_and(|t| teams.contains(t)),
            ScopeKind::Tenant | ScopeKind::Campaign => false,
        },
        Reach::Agent { id: me, .. } => def.scope == ScopeKind::Agent && me == id,
    }
}

/// Viewers read everything and change nothing.
pub fn may_write(principal: &Principal) -> bool {
    !matches!(&principal.actor, Actor::User(u) if u.role == Role::Viewer)
}

/// Changes an alert: its owner, or an admin.
pub fn may_change(principal: &Principal, alert: &Alert) -> bool {
    may_write(principal) && (principal.scopes.contains(&Scope::Admin) || alert.owner == principal.actor_name())
}

/// Starts evaluating alerts for this server: after every burst of committed events (coalesced
/// per tenant) and every minute for windows that slide.
pub fn spawn(state: Arc<AppState>) {
    let changes = state.store.changes();
    tokio::spawn(run(state, changes));
}

/// Hands `each` every change the feed brings during `period`, as it comes, and drops it. Whether
/// some changes were missed (the feed ran ahead of its reader: they could be any tenant's), or
/// `None` once the feed is closed. Shared by the alerts' and the badges' loops.
///
/// The feed keeps an item until its last reader has it, and an item holds every event its commit
/// stored: a loop that slept through its period and only then read what was waiting kept every
/// event of the period alive. The badges' 2 s were the top of resident memory under ingest, ~1 KB
/// a call of the last 2 s: at 84,000 calls/s RssAnon swung from ~190 to ~390 MB and back every
/// 2 s (bench/README.md).
pub(crate) async fn gather_for(
    changes: &mut tokio::sync::broadcast::Receiver<Arc<dialboard_store::Change>>,
    period: Duration,
    mut each: impl FnMut(&dialboard_store::Change),
) -> Option<bool> {
    let until = tokio::time::Instant::now() + period;
    let mut missed = false;
    loop {
        tokio::select! {
            received = changes.recv() => match received {
                Ok(change) => each(&change),
                Err(RecvError::Lagged(_)) => missed = true,
                Err(RecvError::Closed) => return None,
            },
            _ = tokio::time::sleep_until(until) => return Some(missed),
        }
    }
}

async fn run(state: Arc<AppState>, mut changes: tokio::sync::broadcast::Receiver<Arc<dialboard_store::Change>>) {
    loop {
        let mut dirty: HashSet<i64> = HashSet::new();
        let mut sweep = false;
        tokio::select! {
            received = changes.recv() => match received {
                Ok(change) => { dirty.insert(change.tenant_id); }
                Err(RecvError::Lagged(_)) => sweep = true,
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(SWEEP) => sweep = true,
        }
        match gather_for(&mut changes, COALESCE, |c| {
            dirty.insert(c.tenant_id);
        })
        .await
        {
            Some(missed) => sweep |= missed,
            None => return,
        }
        if sweep {
            match alerting::run(&*state.store, alerting::tenants_with_alerts).await {
                Ok(tenants) => dirty.extend(tenants),
                Err(e) => tracing::warn!(error = %e, "could not list the tenants with alerts"),
            }
        }
        for &tenant_id in &dirty {
            if let Err(e) = evaluate_tenant(&state, tenant_id).await {
                tracing::warn!(tenant_id, error = %e, "alert evaluation failed");
            }
        }
    }
}

/// Evaluates every enabled alert of a tenant now; returns how many changes it recorded.
pub async fn evaluate_tenant(state: &AppState, tenant_id: i64) -> Result<usize, StoreError> {
    let alerts = alerting::run(&*state.store, move |db| alerting::alerts(db, tenant_id)).await?;
    let mut changes = 0;
    for alert in alerts {
        match evaluate(state, tenant_id, &alert).await {
            Ok(n) => changes += n,
            Err(e) => tracing::warn!(tenant_id, alert = %alert.id, error = %e, "alert not evaluated"),
        }
    }
    Ok(changes)
}

async fn evaluate(state: &AppState, tenant_id: i64, alert: &Alert) -> Result<usize, String> {
    let def = definition(alert).map_err(|e| format!("{e:?}"))?;
    if !def.enabled {
        return Ok(0);
    }
    let principal = Principal {
        tenant_id,
        scopes: vec![Scope::Read],
        reach: reach(alert),
        actor: Actor::Key {
            id: format!("alert-{}", alert.id),
        },
        session: None,
    };
    let now = state.now();
    let now_ms = now * 1000;
    let (current, base) = def.queries(now);
    let window = current["range"].clone();
    let current = crate::api::query::run_query(state, &principal, current)
        .await
        .map_err(|e| e.message)?;
    let base = match base {
        Some(b) => Some(
            crate::api::query::run_query(state, &principal, b)
                .await
                .map_err(|e| e.message)?,
        ),
        None => None,
    };
    let readings = def.readings(&current, base.as_ref());
    let alert_id = alert.id.clone();
    let states = alerting::run(&*state.store, move |db| {
        alerting::alert_states(db, tenant_id, &alert_id)
    })
    .await
    .map_err(|e| e.to_string())?;
    let states: HashMap<String, alerting::AlertState> = states.into_iter().map(|s| (s.subject.clone(), s)).collect();
    let mut recorded = 0;
    for (subject, reading) in readings {
        let known = states.get(&subject).cloned().unwrap_or_default();
        let current_state = SubjectState {
            firing: known.firing,
            last_fired_at: known.last_fired_at,
        };
        let (kind, signal, threshold) = match def.decide(&current_state, &reading, now_ms) {
            Decision::Stay => continue,
            Decision::Fire(s) => ("fired", s, def.threshold),
            Decision::Recover(s) => ("recovered", s, def.recovery()),
        };
        let (agent, team, campaign) = subject_of(&def, &subject);
        let event = json!({
            "alert_id": alert.id,
            "alert_name": def.name,
            "kind": kind,
            "at": jiff::Timestamp::from_second(now).map(|t| t.to_string()).unwrap_or_default(),
            "measure": def.measure,
            "condition": def.condition,
            "value": reading.value,
            "compared": signal,
            "threshold": threshold,
            "volume": reading.volume,
            "base_value": reading.base_value,
            "agent_id": agent,
            "team_id": team,
            "campaign_id": campaign,
            "window": window,
        });
        let change = alerting::StateChange {
            subject: subject.clone(),
            expected_revision: known.revision,
            firing: kind == "fired",
            event: event.clone(),
            at: now_ms,
        };
        let alert_id = alert.id.clone();
        let won = alerting::run(&*state.store, move |db| {
            alerting::transition(db, tenant_id, &alert_id, &change)
        })
        .await
        .map_err(|e| e.to_string())?;
        if won {
            recorded += 1;
            notify(state, tenant_id, &def, &event).await;
        }
    }
    Ok(recorded)
}

/// The agent, team and campaign an alert's subject is about.
fn subject_of(def: &AlertDef, subject: &str) -> (Option<String>, Option<String>, Option<String>) {
    let id = def.scope_id.clone();
    match def.scope {
        ScopeKind::Tenant => (None, None, None),
        ScopeKind::Team => (None, id, None),
        ScopeKind::Agent => (id, None, None),
        ScopeKind::Campaign => (None, None, id),
        ScopeKind::EachAgentOfTeam => (Some(subject.to_string()), id, None),
    }
}

/// Tells everyone the alert names: live dashboards, its webhooks, its e-mail recipients.
async fn notify(state: &AppState, tenant_id: i64, def: &AlertDef, event: &Value) {
    let text = |k: &str| event[k].as_str().map(str::to_string);
    let live = Announcement {
        tenant_id,
        kind: "alert".into(),
        agent: text("agent_id"),
        team: text("team_id"),
        campaign: text("campaign_id"),
        agent_scope_only: false,
        body: event.clone(),
    };
    // Every node's subscribers, whichever node recorded the change.
    if let Err(e) = state.store.announce(live).await {
        tracing::warn!(tenant_id, error = %e, "could not announce an alert to live dashboards");
    }
    let kind = format!("alert.{}", event["kind"].as_str().unwrap_or_default());
    for webhook in &def.webhook_ids {
        if let Err(e) = crate::webhooks::enqueue(&state.store, tenant_id, webhook, &kind, event.clone()).await {
            tracing::warn!(%webhook, error = %e, "could not queue an alert's webhook delivery");
        }
    }
    if !def.emails.is_empty() {
        Mailer::notify(state.mailer.as_ref(), &email(def, event), "alert").await;
    }
}

/// What the recipients of an alert read when it fires or recovers.
pub fn email(def: &AlertDef, event: &Value) -> OutgoingEmail {
    let fired = event["kind"] == "fired";
    let who = match (
        event["agent_id"].as_str(),
        event["team_id"].as_str(),
        event["campaign_id"].as_str(),
    ) {
        (Some(a), _, _) => format!("agent {a}"),
        (None, Some(t), _) => format!("team {t}"),
        (None, None, Some(c)) => format!("campaign {c}"),
        _ => "the whole tenant".to_string(),
    };
    let number = |v: &Value| v.as_f64().map_or("—".to_string(), |n| format!("{n:.2}"));
    let subject = format!(
        "[dialboard] {}: {} ({who})",
        if fired { "Alert" } else { "Recovered" },
        def.name
    );
    let condition = serde_json::to_value(def.condition)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default();
    let text = format!(
        "{name} {state} for {who}.\n\n\
         {measure}: {value} (compared: {compared}; {condition} {threshold})\n\
         Volume in the window: {volume}\n\
         Window: {start} to {end} (UTC)\n\
         At: {at}\n",
        name = def.name,
        state = if fired { "fired" } else { "recovered" },
        measure = def.measure,
        value = number(&event["value"]),
        compared = number(&event["compared"]),
        threshold = number(&event["threshold"]),
        volume = number(&event["volume"]),
        start = event["window"]["start"].as_str().unwrap_or_default(),
        end = event["window"]["end"].as_str().unwrap_or_default(),
        at = event["at"].as_str().unwrap_or_default(),
    );
    OutgoingEmail {
        to: def.emails.clone(),
        subject,
        text,
        ..Default::default()
    }
}

/// The seed's eight coaching rules as alerts over each agent of `team` (null: the caller
/// fills it in), with the tenant's coaching thresholds.
pub fn templates(thresholds: &CoachingThresholds, team: Option<&str>) -> Vec<Value> {
    const DAY: i64 = 24 * 60;
    let t = thresholds;
    let rule = |key: &str,
                name: &str,
                action: &str,
                measure: &str,
                window: i64,
                condition: &str,
                threshold: f64,
                recovery: f64,
                min_volume: f64| {
        json!({
            "key": key,
            "name": name,
            "suggested_action": action,
            "alert": {
                "name": name, "measure": measure, "scope": "each_agent_of_team", "scope_id": team,
                "window_minutes": window, "condition": condition, "threshold": threshold,
                "recovery_threshold": recovery, "min_volume": min_volume, "rearm_minutes": DAY,
            },
        })
    };
    let mut sentiment = rule(
        "declining_sentiment",
        "Declining sentiment",
        "Review call recordings, identify pattern",
        "avg_prospect_sentiment",
        7 * DAY,
        "falls_by",
        t.sentiment_decline,
        t.sentiment_decline / 2.0,
        10.0,
    );
    sentiment["alert"]["compare_to"] = json!("week_before");
    sentiment["alert"]["change_unit"] = json!("points");
    // No goal is known per alert: the volume rule takes the share of 100 calls a day (edit it
    // to the team's daily goal).
    let volume = t.below_volume_percent;
    vec![
        rule(
            "low_connect_rate",
            "Low connect rate",
            "Review call timing, check list quality",
            "connect_rate",
            2 * DAY,
            "below",
            t.low_connect_rate,
            t.low_connect_rate * 1.2,
            20.0,
        ),
        rule(
            "low_call_score",
            "Low call score",
            "Schedule 1:1 coaching, review low-scoring calls",
            "avg_call_score",
            7 * DAY,
            "below",
            t.low_call_score,
            t.low_call_score + 5.0,
            10.0,
        ),
        rule(
            "high_talk_ratio",
            "High talk ratio",
            "Practice active listening exercises",
            "avg_talk_ratio",
            7 * DAY,
            "above",
            t.high_talk_ratio,
            t.high_talk_ratio - 0.05,
            10.0,
        ),
        rule(
            "low_meeting_rate",
            "Low meeting rate",
            "Review closing technique, offer talk track",
            "meeting_booked_rate",
            7 * DAY,
            "below",
            t.low_meeting_rate,
            t.low_meeting_rate * 1.2,
            20.0,
        ),
        rule(
            "high_filler_words",
            "High filler words",
            "Awareness training, practice pausing",
            "filler_word_rate",
            7 * DAY,
            "above",
            t.high_filler_words,
            t.high_filler_words - 1.0,
            10.0,
        ),
        sentiment,
        rule(
            "below_call_volume",
            "Below call volume",
            "Check for blockers, adjust workload",
            "total_calls",
            DAY,
            "below",
            volume,
            volume,
            0.0,
        ),
        rule(
            "long_wrap_time",
            "Long wrap time",
            "Streamline disposition workflow, train on CRM",
            "avg_wrapup_time",
            7 * DAY,
            "above",
            t.long_wrap_seconds,
            t.long_wrap_seconds * 0.9,
            10.0,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change is freed as soon as it is read, not when the gathering period ends: the feed
    /// holds what its slowest reader has not read, every event of it.
    #[tokio::test]
    async fn changes_gathered_over_a_period_are_freed_as_they_come() {
        let (feed, mut changes) = tokio::sync::broadcast::channel(16);
        let gathering = tokio::spawn(async move {
            let mut tenants = Vec::new();
            let missed = gather_for(&mut changes, Duration::from_secs(1), |c| tenants.push(c.tenant_id)).await;
            (missed, tenants)
        });
        let mut sent = Vec::new();
        for tenant_id in [7, 8] {
            let change = Arc::new(dialboard_store::Change {
                tenant_id,
                events: Vec::new(),
                calls: Vec::new(),
                local: true,
            });
            sent.push(Arc::downgrade(&change));
            feed.send(change).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!gathering.is_finished(), "the period is not over");
        assert!(
            sent.iter().all(|c| c.upgrade().is_none()),
            "a change read is still held"
        );
        assert_eq!(gathering.await.unwrap(), (Some(false), vec![7, 8]));
    }

    #[test]
    fn every_template_is_a_valid_alert() {
        for template in templates(&CoachingThresholds::default(), Some("t1")) {
            let parsed = AlertDef::parse(&template["alert"]);
            assert!(parsed.is_ok(), "{}: {parsed:?}", template["key"]);
        }
    }

    #[test]
    fn the_email_names_the_alert_the_subject_and_the_numbers() {
        let def = AlertDef::parse(
            &json!({"name": "Low connect", "measure": "connect_rate", "scope": "team",
            "scope_id": "t1", "window_minutes": 120, "condition": "below", "threshold": 20}),
        )
        .unwrap();
        let event = json!({"kind": "fired", "value": 12.5, "compared": 12.5, "threshold": 20, "volume": 40,
            "team_id": "t1", "window": {"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T12:00:00Z"}, "at": "x"});
        let mail = email(&def, &event);
        assert_eq!(mail.subject, "[dialboard] Alert: Low connect (team t1)");
        assert!(
            mail.text.contains("connect_rate: 12.50") && mail.text.contains("below 20.00"),
            "{}",
            mail.text
        );
    }
}
