//! Tenant settings (`/api/v1/settings`) and the directory (`/api/v1/agents`, `/teams`,
//! `/campaigns`): anyone with `read` lists them, `admin` changes them, and every change is
//! audited.

use super::auth::Principal;
use super::error::{ApiError, Body, Code};
use super::AppState;
use crate::access::audit;
use crate::directory::{apply_settings, settings_json, validate_entry};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use dialboard_engine::FieldError;
use dialboard_store::{DirectoryKind, Scope};
use serde_json::{json, Value};
use std::sync::Arc;

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

pub async fn get_settings(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    Ok(Json(settings_json(&tenant.settings)))
}

pub async fn put_settings(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let change = json_body(&body)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let settings =
        apply_settings(&tenant.settings, &change).map_err(|e| ApiError::invalid(Code::InvalidSettings, e))?;
    let updated = state.store.update_settings(tenant.id, settings).await?;
    let fields: Vec<&String> = change.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    audit(
        &state.store,
        tenant.id,
        &principal.actor_name(),
        "settings_changed",
        None,
        json!({"fields": fields}),
    )
    .await?;
    Ok(Json(settings_json(&updated.settings)))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(dialboard_engine::is_forbidden_char) {
        return Err(ApiError::invalid(
            Code::InvalidId,
            vec![FieldError::new(
                "id",
                "must be 1 to 256 characters without control or bidirectional formatting characters",
            )],
        ));
    }
    Ok(())
}

/// `GET /agents|teams|campaigns`. Under leaderboard privacy an agent sees only its own entry
/// among agents.
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Extension(kind): Extension<DirectoryKind>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let entries = entries(&state, &principal, kind).await?;
    let collection = format!("{}s", kind.as_str());
    Ok(Json(json!({ collection: entries })))
}

fn opts_out(agent: &Value) -> bool {
    agent["leaderboard_opt_out"].as_bool() == Some(true)
}

/// The directory entries of a kind that `principal` sees, each with its `id` (also the SQL
/// endpoint's `agents`, `teams` and `campaigns`).
pub async fn entries(state: &AppState, principal: &Principal, kind: DirectoryKind) -> Result<Vec<Value>, ApiError> {
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let privacy = tenant.settings.leaderboard_privacy;
    let private_to = principal.only_named(privacy).filter(|_| kind == DirectoryKind::Agent);
    // A rep does not see colleagues who opted out of public leaderboards either.
    let opted_out = |id: &str, body: &Value| {
        kind == DirectoryKind::Agent && principal.only_named(true).is_some_and(|own| own != id) && opts_out(body)
    };
    Ok(state
        .store
        .directory(tenant.id, kind)
        .await?
        .into_iter()
        .filter(|(id, body)| private_to.is_none_or(|own| own == id) && !opted_out(id, body))
        .map(|(id, mut body)| {
            body["id"] = json!(id);
            body
        })
        .collect())
}

/// `PUT /agents|teams|campaigns/{id}` creates or replaces the entry.
pub async fn put(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Extension(kind): Extension<DirectoryKind>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    check_id(&id)?;
    let body = validate_entry(kind, &json_body(&body)?).map_err(|e| ApiError::invalid(Code::InvalidEntry, e))?;
    state
        .store
        .put_directory(principal.tenant_id, kind, &id, body.clone())
        .await?;
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        &format!("{}_saved", kind.as_str()),
        Some(&id),
        json!({}),
    )
    .await?;
    let mut out = body;
    out["id"] = json!(id);
    Ok(Json(out))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Extension(kind): Extension<DirectoryKind>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    if !state.store.delete_directory(principal.tenant_id, kind, &id).await? {
        return Err(ApiError::not_found(format!("no {} '{id}'", kind.as_str())));
    }
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        &format!("{}_deleted", kind.as_str()),
        Some(&id),
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
