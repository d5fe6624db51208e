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
use dialboard_store::jobs::{Job, JobState, NewJob};
use dialboard_store::Scope;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// A job as the store keeps it (a purge's): its state, attempts, progress and result.
/// Fields in name order, as the JSON object it was before it was typed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobAnswer {
    pub attempts: i64,
    /// The worker holding the lease, while running.
    #[schema(required = true)]
    pub claimed_by: Option<String>,
    /// Epoch ms.
    pub created_at: i64,
    #[schema(required = true)]
    pub error: Option<String>,
    pub id: String,
    pub kind: String,
    #[schema(required = true)]
    pub lease_until: Option<i64>,
    pub max_attempts: i64,
    /// What the job was queued with.
    #[schema(value_type = std::collections::BTreeMap<String, serde_json::Value>)]
    pub payload: Value,
    pub progress_done: i64,
    #[schema(required = true)]
    pub progress_total: Option<i64>,
    /// What it did, when it succeeded.
    #[schema(value_type = Option<std::collections::BTreeMap<String, serde_json::Value>>, required = true)]
    pub result: Option<Value>,
    /// Epoch ms before which a queued job is not claimed (the backoff after a failure).
    pub run_after: i64,
    /// `queued`, `running`, `succeeded` or `failed`.
    #[schema(value_type = String)]
    pub state: JobState,
    pub updated_at: i64,
}

impl From<Job> for JobAnswer {
    fn from(j: Job) -> JobAnswer {
        JobAnswer {
            id: j.id,
            kind: j.kind,
            payload: j.payload,
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_after: j.run_after,
            progress_done: j.progress_done,
            progress_total: j.progress_total,
            result: j.result,
            error: j.error,
            created_at: j.created_at,
            updated_at: j.updated_at,
            claimed_by: j.claimed_by,
            lease_until: j.lease_until,
        }
    }
}

/// `GET /retention/purges`: newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurgesAnswer {
    pub purges: Vec<JobAnswer>,
}

/// `DELETE /contacts/{id}`: how many stored events had the contact's personal fields erased.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasedAnswer {
    pub contact_id: String,
    pub events_erased: i64,
    /// The personal fields erased from each event.
    pub fields: Vec<&'static str>,
}

pub async fn dry_run(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<crate::retention::DryRun>, ApiError> {
    principal.require(Scope::Admin)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let now_ms = state.now() * 1000;
    Ok(Json(preview(&state.store, &tenant, now_ms).await?))
}

pub async fn purge(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<(StatusCode, Json<JobAnswer>), ApiError> {
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
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

pub async fn purges(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<PurgesAnswer>, ApiError> {
    principal.require(Scope::Admin)?;
    let jobs = state.store.jobs(principal.tenant_id, JOB_KIND, 50).await?;
    Ok(Json(PurgesAnswer {
        purges: jobs.into_iter().map(JobAnswer::from).collect(),
    }))
}

pub async fn erase_contact(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ErasedAnswer>, ApiError> {
    principal.require(Scope::Admin)?;
    let erased = state.store.erase_contact(principal.tenant_id, &id).await?;
    let fields = dialboard_store::retention::PERSONAL_FIELDS;
    let detail = json!({"events_erased": erased, "fields": fields});
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        "contact_erased",
        Some(&id),
        detail.clone(),
    )
    .await?;
    Ok(Json(ErasedAnswer {
        contact_id: id,
        events_erased: erased,
        fields: fields.to_vec(),
    }))
}
