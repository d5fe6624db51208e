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
use serde::Serialize;
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

/// A webhook endpoint's settings, as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WebhookSettings {
    /// Where deliveries are POSTed (https; http only to allowed addresses).
    pub url: String,
    #[schema(required = false)]
    pub description: Option<String>,
    /// Consecutive failures that disable the endpoint (1 to 100).
    pub failure_limit: i64,
}

/// A webhook endpoint as the API shows it: its settings and state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    #[serde(flatten)]
    #[schema(value_type = WebhookSettings)]
    pub settings: Value,
    pub consecutive_failures: i64,
    /// RFC 3339.
    #[schema(required = true)]
    pub created_at: Option<String>,
    /// Failures disable it; `"enabled": true` in a PUT re-enables it.
    pub enabled: bool,
    pub id: String,
    pub owner: String,
    /// The signing secret: shown once, in the answer that created the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[schema(required = true)]
    pub updated_at: Option<String>,
}

/// `GET /webhooks`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhooksAnswer {
    pub webhooks: Vec<WebhookAnswer>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryAnswer {
    /// RFC 3339.
    #[schema(required = true)]
    pub at: Option<String>,
    /// 1 for the first try of a delivery.
    pub attempt: i64,
    #[schema(required = true)]
    pub error: Option<String>,
    /// What was sent: `alert.fired`, `alert.recovered`, `ping` …
    pub event: String,
    /// The delivery (the same across its retries).
    pub id: String,
    #[schema(required = true)]
    pub latency_ms: Option<i64>,
    /// `delivered`, `failed`, or `skipped` (the endpoint was disabled or gone).
    pub outcome: String,
    #[schema(required = true)]
    pub status_code: Option<i64>,
}

/// `GET /webhooks/{id}/deliveries`: newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveriesAnswer {
    pub deliveries: Vec<DeliveryAnswer>,
}

/// `POST /webhooks/{id}/ping`: the queued delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PingAnswer {
    pub delivery_id: String,
}

fn webhook_json(hook: &Webhook) -> WebhookAnswer {
    let millis = |ms: i64| millis(ms).as_str().map(str::to_string);
    WebhookAnswer {
        settings: hook.body.clone(),
        consecutive_failures: hook.consecutive_failures,
        created_at: millis(hook.created_at),
        enabled: hook.enabled,
        id: hook.id.clone(),
        owner: hook.owner.clone(),
        secret: None,
        updated_at: millis(hook.updated_at),
    }
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
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
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
    let out = WebhookAnswer {
        secret: Some(hook.secret.clone()),
        ..webhook_json(&hook)
    };
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<WebhooksAnswer>, ApiError> {
    principal.require(Scope::Admin)?;
    let tenant_id = principal.tenant_id;
    let hooks = alerting::run(&*state.store, move |db| alerting::webhooks(db, tenant_id)).await?;
    Ok(Json(WebhooksAnswer {
        webhooks: hooks.iter().map(webhook_json).collect(),
    }))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<WebhookAnswer>, ApiError> {
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
) -> Result<Json<WebhookAnswer>, ApiError> {
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
) -> Result<Json<DeliveriesAnswer>, ApiError> {
    principal.require(Scope::Admin)?;
    existing(&state, principal.tenant_id, &id).await?;
    let (tenant_id, hook_id) = (principal.tenant_id, id.clone());
    let attempts = alerting::run(&*state.store, move |db| {
        alerting::deliveries(db, tenant_id, &hook_id, 500)
    })
    .await?;
    let deliveries = attempts
        .into_iter()
        .map(|a| DeliveryAnswer {
            at: millis(a.at).as_str().map(str::to_string),
            attempt: a.attempt,
            error: a.error,
            event: a.event,
            id: a.id,
            latency_ms: a.latency_ms,
            outcome: a.outcome,
            status_code: a.status_code,
        })
        .collect();
    Ok(Json(DeliveriesAnswer { deliveries }))
}

/// Queues a `ping` delivery, to try an endpoint.
pub async fn ping(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<PingAnswer>), ApiError> {
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
    Ok((StatusCode::ACCEPTED, Json(PingAnswer { delivery_id: delivery })))
}
