//! `/api/v1/alerts` (SPEC §7): create, list, read, replace, delete an alert, its firings and
//! recoveries, and the coaching rules as templates. Who may watch what is
//! `alerts::may_target`; evaluation and notifications are `crate::alerts`.

use super::auth::Principal;
use super::error::{ApiError, Body, Code};
use super::AppState;
use crate::access::audit;
use crate::alerts::{definition, may_change, may_target, may_write, stored_body};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use dialboard_engine::alerting::AlertDef;
use dialboard_engine::FieldError;
use dialboard_store::alerting::{self, Alert};
use dialboard_store::Scope;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

fn millis(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms).map_or(Value::Null, |t| json!(t.to_string()))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no alert '{id}'"))
}

/// Checks a body: a valid definition, a scope the caller may watch, webhooks of the tenant.
async fn checked(state: &AppState, principal: &Principal, body: &[u8]) -> Result<AlertDef, ApiError> {
    principal.require(Scope::Read)?;
    if !may_write(principal) {
        return Err(super::auth::forbidden("viewers cannot change alerts"));
    }
    let body: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let def = AlertDef::parse(&body).map_err(|fields| ApiError::invalid(Code::InvalidAlert, fields))?;
    let agent_teams = state.store.agent_teams(principal.tenant_id).await?;
    if !may_target(principal, &def, &agent_teams) {
        return Err(super::auth::forbidden(
            "scope: this credential may not watch that scope (a manager: their teams and their agents; a rep: themselves)",
        ));
    }
    let mut unknown = Vec::new();
    for (i, id) in def.webhook_ids.iter().enumerate() {
        if !crate::webhooks::exists(&state.store, principal.tenant_id, id).await? {
            unknown.push(FieldError::new(
                format!("webhook_ids[{i}]"),
                "is not a webhook of this tenant",
            ));
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::invalid(Code::InvalidAlert, unknown));
    }
    Ok(def)
}

/// An alert as the API shows it: its definition, id, owner, and its subjects' states.
fn alert_json(principal: &Principal, alert: &Alert, states: &[alerting::AlertState]) -> Value {
    let mut out = alert.body["definition"].clone();
    out["id"] = json!(alert.id);
    out["owner"] = json!(alert.owner);
    out["created_at"] = millis(alert.created_at);
    out["updated_at"] = millis(alert.updated_at);
    out["can_edit"] = json!(may_change(principal, alert));
    out["firing"] = json!(states.iter().any(|s| s.firing));
    out["states"] = json!(states
        .iter()
        .map(
            |s| json!({"subject": s.subject, "firing": s.firing, "since": millis(s.changed_at),
            "last_fired_at": s.last_fired_at.map(millis)})
        )
        .collect::<Vec<_>>());
    out
}

/// The alert, if the caller may see it (an alert about a scope they may not watch is absent).
async fn visible(state: &AppState, principal: &Principal, id: &str) -> Result<Alert, ApiError> {
    principal.require(Scope::Read)?;
    let (tenant_id, alert_id) = (principal.tenant_id, id.to_string());
    let alert = alerting::run(&*state.store, move |db| alerting::alert(db, tenant_id, &alert_id)).await?;
    let agent_teams = state.store.agent_teams(principal.tenant_id).await?;
    alert
        .filter(|a| definition(a).is_ok_and(|d| may_target(principal, &d, &agent_teams)))
        .ok_or_else(|| not_found(id))
}

async fn states(state: &AppState, tenant_id: i64, id: &str) -> Result<Vec<alerting::AlertState>, ApiError> {
    let id = id.to_string();
    Ok(alerting::run(&*state.store, move |db| alerting::alert_states(db, tenant_id, &id)).await?)
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let def = checked(&state, &principal, &body).await?;
    let now = crate::jobs::now_ms();
    let alert = Alert {
        id: dialboard_store::jobs::new_id(),
        owner: principal.actor_name(),
        body: stored_body(&def, &principal.reach),
        created_at: now,
        updated_at: now,
    };
    let (tenant_id, stored) = (principal.tenant_id, alert.clone());
    alerting::run(&*state.store, move |db| alerting::insert_alert(db, tenant_id, &stored)).await?;
    audit(
        &state.store,
        tenant_id,
        &principal.actor_name(),
        "alert.create",
        Some(&alert.id),
        json!({"name": def.name, "measure": def.measure}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(alert_json(&principal, &alert, &[]))))
}

pub async fn list(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let tenant_id = principal.tenant_id;
    let all = alerting::run(&*state.store, move |db| alerting::alerts(db, tenant_id)).await?;
    let agent_teams = state.store.agent_teams(tenant_id).await?;
    let mut out = Vec::new();
    for alert in all {
        if definition(&alert).is_ok_and(|d| may_target(&principal, &d, &agent_teams)) {
            let states = states(&state, tenant_id, &alert.id).await?;
            out.push(alert_json(&principal, &alert, &states));
        }
    }
    Ok(Json(json!({"alerts": out})))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let alert = visible(&state, &principal, &id).await?;
    let states = states(&state, principal.tenant_id, &id).await?;
    Ok(Json(alert_json(&principal, &alert, &states)))
}

/// Replaces an alert's definition (its owner or an admin); its state starts over.
pub async fn replace(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let alert = visible(&state, &principal, &id).await?;
    if !may_change(&principal, &alert) {
        return Err(super::auth::forbidden(
            "only the alert's owner or an admin may change it",
        ));
    }
    let def = checked(&state, &principal, &body).await?;
    // An alert reads with its owner's reach: an admin's edit does not widen it.
    let reach = match alert.owner == principal.actor_name() {
        true => principal.reach.clone(),
        false => crate::alerts::reach(&alert),
    };
    let stored = stored_body(&def, &reach);
    let (tenant_id, alert_id, body) = (principal.tenant_id, id.clone(), stored.clone());
    let now = crate::jobs::now_ms();
    alerting::run(&*state.store, move |db| {
        alerting::update_alert(db, tenant_id, &alert_id, &body, now)
    })
    .await?;
    audit(
        &state.store,
        tenant_id,
        &principal.actor_name(),
        "alert.update",
        Some(&id),
        json!({"name": def.name}),
    )
    .await?;
    let updated = Alert {
        body: stored,
        updated_at: now,
        ..alert
    };
    Ok(Json(alert_json(&principal, &updated, &[])))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let alert = visible(&state, &principal, &id).await?;
    if !may_change(&principal, &alert) {
        return Err(super::auth::forbidden(
            "only the alert's owner or an admin may delete it",
        ));
    }
    let (tenant_id, alert_id) = (principal.tenant_id, id.clone());
    alerting::run(&*state.store, move |db| {
        alerting::delete_alert(db, tenant_id, &alert_id)
    })
    .await?;
    audit(
        &state.store,
        tenant_id,
        &principal.actor_name(),
        "alert.delete",
        Some(&id),
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every firing and recovery, newest first, with the value, threshold, volume and subject.
pub async fn events(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let alert = visible(&state, &principal, &id).await?;
    let (tenant_id, alert_id) = (principal.tenant_id, alert.id.clone());
    let events = alerting::run(&*state.store, move |db| {
        alerting::alert_events(db, tenant_id, &alert_id, 1000)
    })
    .await?;
    Ok(Json(json!({"events": events})))
}

/// The coaching rules as alert templates over each agent of `team` (when given).
pub async fn templates(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let team = params.get("team").map(String::as_str);
    Ok(Json(
        json!({"templates": crate::alerts::templates(&tenant.settings.coaching, team)}),
    ))
}
