//! `/api/v1/webhooks` (SPEC §7): endpoints an admin registers, their delivery log, re-enabling
//! one that failures disabled, and a test delivery. The secret is shown once, at creation.
//! Deliveries themselves are `crate::webhooks`.

use super::auth::Principal;
use super::error::{ApiError, Body, Code};
use super::AppState;
use crate::access::audit;
use crate::webhooks::{check_url, AddressPolicy, DEFAULT_FAILURE_LIMIT};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dialboard_engine::FieldError;
use dialboard_store::alerting::{self, Webhook};
use dialboard_store::Scope;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(Code::InvalidWebhook, vec![FieldError::new(field, message)])
}

/// Checks a webhook body; returns what is stored and `enabled` when given.
fn checked(body: &[u8], policy: AddressPolicy) -> Result<(Value, Option<bool>), ApiError> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let Value::Object(fields) = body else {
        return Err(invalid("body", "must be a JSON object"));
    };
    let mut errors = Vec::new();
    let mut stored = Map::new();
    for (key, value) in &fields {
        match key.as_str() {
            "url" => match value.as_str().map(|u| check_url(u, policy)) {
                Some(Ok(_)) => {
                    stored.insert("url".into(), value.clone());
                }
                Some(Err(e)) => errors.push(FieldError::new("url", e)),
                None => errors.push(FieldError::new("url", "must be a URL")),
            },
            "description" => match value.as_str() {
                Some(d) if d.chars().count() <= 500 => {
                    stored.insert("description".into(), value.clone());
                }
                _ => errors.push(FieldError::new("description", "must be text of at most 500 characters")),
            },
            "failure_limit" => match value.as_i64() {
                Some(n @ 1..=100) => {
                    stored.insert("failure_limit".into(), json!(n));
                }
                _ => errors.push(FieldError::new("failure_limit", "must be a whole number from 1 to 100")),
            },
            "enabled" if value.is_boolean() => {}
            "enabled" => errors.push(FieldError::new("enabled", "must be true or false")),
            other => errors.push(FieldError::new(other, "is not a field of a webhook")),
        }
    }
    if !stored.contains_key("url") && !errors.iter().any(|e| e.field == "url") {
        errors.push(FieldError::new("url", "is required"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(Code::InvalidWebhook, errors));
    }
    stored.entry("failure_limit").or_insert(json!(DEFAULT_FAILURE_LIMIT));
    Ok((Value::Object(stored), fields.get("enabled").and_then(Value::as_bool)))
}

fn policy(state: &AppState) -> AddressPolicy {
    AddressPolicy {
        allow_private: state.security.webhook_allow_private,
    }
}

fn millis(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms).map_or(Value::Null, |t| json!(t.to_string()))
}

fn webhook_json(hook: &Webhook) -> Value {
    let mut out = hook.body.clone();
    out["id"] = json!(hook.id);
    out["owner"] = json!(hook.owner);
    out["enabled"] = json!(hook.enabled);
    out["consecutive_failures"] = json!(hook.consecutive_failures);
    out["created_at"] = millis(hook.created_at);
    out["updated_at"] = millis(hook.updated_at);
    out
}

async fn existing(state: &AppState, tenant_id: i64, id: &str) -> Result<Webhook, ApiError> {
    let id_owned = id.to_string();
    alerting::run(&*state.store, move |db| alerting::webhook(db, tenant_id, &id_owned))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no webhook '{id}'")))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Admin)?;
    let (body, enabled) = checked(&body, policy(&state))?;
    let now = crate::jobs::now_ms();
    let hook = Webhook {
        id: dialboard_store::jobs::new_id(),
        owner: principal.actor_name(),
        body,
        secret: crate::access::generate_secret("whsec_"),
        enabled: enabled.unwrap_or(true),
        consecutive_failures: 0,
        created_at: now,
        updated_at: now,
    };
    let (tenant_id, stored) = (principal.tenant_id, hook.clone());
    alerting::run(&*state.store, move |db| {
        alerting::insert_webhook(db, tenant_id, &stored)
    })
    .await?;
    audit(
        &state.store,
        tenant_id,
        &principal.actor_name(),
        "webhook.create",
        Some(&hook.id),
        json!({"url": hook.body["url"]}),
    )
    .await?;
    let mut out = webhook_json(&hook);
    out["secret"] = json!(hook.secret);
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let tenant_id = principal.tenant_id;
    let hooks = alerting::run(&*state.store, move |db| alerting::webhooks(db, tenant_id)).await?;
    Ok(Json(
        json!({"webhooks": hooks.iter().map(webhook_json).collect::<Vec<_>>()}),
    ))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(Json(webhook_json(&existing(&state, principal.tenant_id, &id).await?)))
}

/// Replaces an endpoint's settings; `"enabled": true` re-enables one that failures disabled
/// (and forgets its failures).
pub async fn replace(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    existing(&state, principal.tenant_id, &id).await?;
    let (body, enabled) = checked(&body, policy(&state))?;
    let (tenant_id, hook_id, stored) = (principal.tenant_id, id.clone(), body.clone());
    let now = crate::jobs::now_ms();
    alerting::run(&*state.store, move |db| {
        alerting::update_webhook(db, tenant_id, &hook_id, &stored, enabled, now)
    })
    .await?;
    audit(
        &state.store,
        tenant_id,
        &principal.actor_name(),
        "webhook.update",
        Some(&id),
        json!({"url": body["url"], "enabled": enabled}),
    )
    .await?;
    Ok(Json(webhook_json(&existing(&state, tenant_id, &id).await?)))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    let (tenant_id, hook_id) = (principal.tenant_id, id.clone());
    let gone = alerting::run(&*state.store, move |db| {
        alerting::delete_webhook(db, tenant_id, &hook_id)
    })
    .await?;
    if !gone {
        return Err(ApiError::not_found(format!("no webhook '{id}'")));
    }
    audit(
        &state.store,
        tenant_id,
        &principal.actor_name(),
        "webhook.delete",
        Some(&id),
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every attempt, newest first: when, what, the outcome, status code, latency and error.
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    existing(&state, principal.tenant_id, &id).await?;
    let (tenant_id, hook_id) = (principal.tenant_id, id.clone());
    let attempts = alerting::run(&*state.store, move |db| {
        alerting::deliveries(db, tenant_id, &hook_id, 500)
    })
    .await?;
    let rows: Vec<Value> = attempts
        .iter()
        .map(|a| {
            let mut row = json!(a);
            row["at"] = millis(a.at);
            row
        })
        .collect();
    Ok(Json(json!({"deliveries": rows})))
}

/// Queues a `ping` delivery, to try an endpoint.
pub async fn ping(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Admin)?;
    existing(&state, principal.tenant_id, &id).await?;
    let delivery = crate::webhooks::enqueue(
        &state.store,
        principal.tenant_id,
        &id,
        "ping",
        json!({"webhook_id": id}),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"delivery_id": delivery}))))
}
