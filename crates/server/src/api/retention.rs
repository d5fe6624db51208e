//! Retention and erasure over HTTP (admin scope; SPEC §12): the policy is the `retention`
//! field of `/settings`; `GET /retention/dry-run` says what a purge now would delete, by kind;
//! `POST /retention/purge` queues a purge job at once (`202`; otherwise one runs each day);
//! `GET /retention/purges` lists them; `DELETE /contacts/{id}` erases a contact's personal
//! data. Purges and erasures are audited.

use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::access::audit;
use crate::retention::{dry_run as preview, JOB_KIND};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dialboard_store::jobs::NewJob;
use dialboard_store::Scope;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn dry_run(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let now_ms = state.now() * 1000;
    Ok(Json(preview(&state.store, &tenant, now_ms).await?))
}

pub async fn purge(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Admin)?;
    let job = NewJob {
        kind: JOB_KIND.into(),
        payload: json!({"actor": principal.actor_name()}),
        max_attempts: 5,
    };
    let job = state
        .store
        .enqueue_job(principal.tenant_id, job, crate::jobs::now_ms())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!(job))))
}

pub async fn purges(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let jobs = state.store.jobs(principal.tenant_id, JOB_KIND, 50).await?;
    Ok(Json(json!({ "purges": jobs })))
}

pub async fn erase_contact(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let erased = state.store.erase_contact(principal.tenant_id, &id).await?;
    let detail = json!({"events_erased": erased, "fields": dialboard_store::retention::PERSONAL_FIELDS});
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        "contact_erased",
        Some(&id),
        detail.clone(),
    )
    .await?;
    Ok(Json(
        json!({"contact_id": id, "events_erased": erased, "fields": detail["fields"]}),
    ))
}
