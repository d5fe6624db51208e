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
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// An alert's definition (`dialboard_engine::alerting::AlertDef`, as the API takes and shows
/// it); fields with a default may be left out of a request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AlertDefinition {
    pub name: String,
    /// One of `/catalogue`'s measures.
    pub measure: String,
    /// `tenant`, `team`, `agent`, `campaign` or `each_agent_of_team`.
    pub scope: String,
    /// The team, agent or campaign (none for the tenant).
    #[schema(required = false)]
    pub scope_id: Option<String>,
    /// The window: the last `window_minutes`, ending now.
    pub window_minutes: i64,
    /// `above`, `below`, `rises_by` or `falls_by`.
    pub condition: String,
    pub threshold: f64,
    /// Where it recovers (default: the threshold).
    #[schema(required = false)]
    pub recovery_threshold: Option<f64>,
    /// For `rises_by` / `falls_by`: `previous_window` or `week_before`.
    #[schema(required = false)]
    pub compare_to: Option<String>,
    /// `percent` (default) or `points`.
    #[schema(required = false)]
    pub change_unit: String,
    /// Below this volume in the window (of `volume_measure`), nothing is decided.
    #[schema(required = false)]
    pub min_volume: f64,
    #[schema(required = false)]
    pub volume_measure: String,
    /// After firing, it does not fire again for this long.
    #[schema(required = false)]
    pub rearm_minutes: i64,
    #[schema(required = false)]
    pub emails: Vec<String>,
    /// The webhook endpoints notified.
    #[schema(required = false)]
    pub webhook_ids: Vec<String>,
    #[schema(required = false)]
    pub enabled: bool,
}

/// One subject's state (the scope itself, or one agent of a team).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectState {
    pub firing: bool,
    /// RFC 3339.
    #[schema(required = true)]
    pub last_fired_at: Option<String>,
    /// When it last changed.
    #[schema(required = true)]
    pub since: Option<String>,
    pub subject: String,
}

/// An alert as the API shows it: its definition's fields, and its owner, states, and
/// whether the caller may change it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertAnswer {
    #[serde(flatten)]
    #[schema(value_type = AlertDefinition)]
    pub definition: Value,
    pub can_edit: bool,
    #[schema(required = true)]
    pub created_at: Option<String>,
    /// Whether any subject is firing.
    pub firing: bool,
    pub id: String,
    pub owner: String,
    pub states: Vec<SubjectState>,
    #[schema(required = true)]
    pub updated_at: Option<String>,
}

/// `GET /alerts`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertsAnswer {
    pub alerts: Vec<AlertAnswer>,
}

/// A firing or recovery, as the evaluator recorded it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AlertEvent {
    pub alert_id: String,
    pub alert_name: String,
    /// `fired` or `recovered`.
    pub kind: String,
    /// RFC 3339.
    pub at: String,
    pub measure: String,
    pub condition: String,
    #[schema(required = true)]
    pub value: Option<f64>,
    /// What was compared with the threshold (the value, or its change).
    #[schema(required = true)]
    pub compared: Option<f64>,
    pub threshold: f64,
    pub volume: f64,
    /// The comparison window's value, for `rises_by` / `falls_by`.
    #[schema(required = true)]
    pub base_value: Option<f64>,
    #[schema(required = true)]
    pub agent_id: Option<String>,
    #[schema(required = true)]
    pub team_id: Option<String>,
    #[schema(required = true)]
    pub campaign_id: Option<String>,
    /// The window read: `start` and `end`, RFC 3339.
    #[schema(value_type = std::collections::BTreeMap<String, serde_json::Value>)]
    pub window: Value,
}

/// `GET /alerts/{id}/events`: newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertEventsAnswer {
    #[schema(value_type = Vec<AlertEvent>)]
    pub events: Vec<Value>,
}

/// A coaching rule as an alert to create.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AlertTemplate {
    pub key: String,
    pub name: String,
    pub suggested_action: String,
    pub alert: AlertDefinition,
}

/// `GET /alerts/templates`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertTemplatesAnswer {
    #[schema(value_type = Vec<AlertTemplate>)]
    pub templates: Vec<Value>,
}

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
fn alert_json(principal: &Principal, alert: &Alert, states: &[alerting::AlertState]) -> AlertAnswer {
    let millis = |ms: i64| millis(ms).as_str().map(str::to_string);
    AlertAnswer {
        definition: alert.body["definition"].clone(),
        can_edit: may_change(principal, alert),
        created_at: millis(alert.created_at),
        firing: states.iter().any(|s| s.firing),
        id: alert.id.clone(),
        owner: alert.owner.clone(),
        states: states
            .iter()
            .map(|s| SubjectState {
                firing: s.firing,
                last_fired_at: s.last_fired_at.and_then(millis),
                since: millis(s.changed_at),
                subject: s.subject.clone(),
            })
            .collect(),
        updated_at: millis(alert.updated_at),
    }
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
) -> Result<(StatusCode, Json<AlertAnswer>), ApiError> {
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

pub async fn list(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<AlertsAnswer>, ApiError> {
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
    Ok(Json(AlertsAnswer { alerts: out }))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<AlertAnswer>, ApiError> {
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
) -> Result<Json<AlertAnswer>, ApiError> {
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
) -> Result<Json<AlertEventsAnswer>, ApiError> {
    let alert = visible(&state, &principal, &id).await?;
    let (tenant_id, alert_id) = (principal.tenant_id, alert.id.clone());
    let events = alerting::run(&*state.store, move |db| {
        alerting::alert_events(db, tenant_id, &alert_id, 1000)
    })
    .await?;
    Ok(Json(AlertEventsAnswer { events }))
}

/// The coaching rules as alert templates over each agent of `team` (when given).
pub async fn templates(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AlertTemplatesAnswer>, ApiError> {
    principal.require(Scope::Read)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let team = params.get("team").map(String::as_str);
    Ok(Json(AlertTemplatesAnswer {
        templates: crate::alerts::templates(&tenant.settings.coaching, team),
    }))
}
