//! Imports over HTTP (SPEC §11): `POST /imports?format=…` with the file as the body (the same
//! options as `dialboard import`, as query parameters) stores the upload as it arrives and
//! queues an import job (`202 Accepted`, `Location: /api/v1/imports/{id}`);
//! `GET /imports/{id}` shows its progress and summary, `GET /imports/{id}/rejects` the rejected
//! rows. The import itself is `crate::import`.

use super::auth::{Principal, Reach};
use super::error::{ApiError, Code};
use super::exports::{may_see, rfc3339_ms};
use super::AppState;
use crate::import::job::{upload_id, ImportRequest, CHUNK, JOB_KIND};
use crate::import::ImportSpec;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dialboard_engine::FieldError;
use dialboard_store::jobs::{Job, JobState, NewJob};
use dialboard_store::Scope;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Attempts an import job gets (a retry re-reads the upload; ids make it count nothing twice).
const MAX_ATTEMPTS: i64 = 3;

/// The options from the query string; unknown ones are a 400 naming them.
fn spec_of(params: &HashMap<String, String>) -> Result<(ImportSpec, Option<String>), ApiError> {
    let mut params = params.clone();
    let name = params.remove("name");
    let mut object = serde_json::Map::new();
    for (k, v) in params {
        let value = match k.as_str() {
            "utc" => match v.as_str() {
                "true" | "1" | "" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => return Err(invalid("utc", "must be true or false")),
            },
            _ => Value::String(v),
        };
        object.insert(k, value);
    }
    if !object.contains_key("format") {
        return Err(invalid(
            "format",
            &format!("required: one of {}", crate::import::FORMATS.join(", ")),
        ));
    }
    let spec = serde_json::from_value(Value::Object(object)).map_err(|e| {
        let text = e.to_string();
        let field = text.split('`').nth(1).unwrap_or("").to_string();
        invalid(&field, "unknown parameter")
    })?;
    Ok((spec, name))
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::invalid(Code::InvalidRequest, vec![FieldError::new(field, message)])
}

/// `POST /imports`: the body is the file.
pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    principal.require(Scope::Ingest)?;
    if !matches!(principal.reach, Reach::All) {
        return Err(ApiError::new(
            Code::Forbidden,
            "an import writes any agent's records: a key bound to an agent or a team cannot run one",
        ));
    }
    let (spec, name) = spec_of(&params)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    // Checked now, so bad options are a 400 rather than a failed job.
    spec.converter(&tenant.settings.timezone)
        .map_err(|e| ApiError::invalid(Code::InvalidRequest, vec![e]))?;
    let upload = upload_id();
    let mut body = request.into_body().into_data_stream();
    let (mut pending, mut seq, mut bytes) = (Vec::with_capacity(CHUNK), 0i64, 0i64);
    while let Some(data) = body.next().await {
        let data = data.map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?;
        bytes += data.len() as i64;
        pending.extend_from_slice(&data);
        if pending.len() >= CHUNK {
            let chunk = std::mem::replace(&mut pending, Vec::with_capacity(CHUNK));
            state.store.put_job_file_chunk(tenant.id, &upload, seq, chunk).await?;
            seq += 1;
        }
    }
    if !pending.is_empty() || seq == 0 {
        state.store.put_job_file_chunk(tenant.id, &upload, seq, pending).await?;
    }
    let request = ImportRequest {
        spec,
        upload,
        bytes,
        name,
        owner: principal.actor_name(),
    };
    let job = NewJob {
        kind: JOB_KIND.into(),
        payload: serde_json::to_value(&request).expect("a request serializes"),
        max_attempts: MAX_ATTEMPTS,
    };
    let job = state
        .store
        .enqueue_job(principal.tenant_id, job, crate::jobs::now_ms())
        .await?;
    let location = format!("/api/v1/imports/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job_json(&job)),
    )
        .into_response())
}

/// An import job as the API shows it (`GET /imports[/{id}]`, and the `202` of an upload):
/// progress in bytes of the upload, and the summary once done.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportJob {
    pub id: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// The name given to the upload.
    #[schema(required = true)]
    pub name: Option<String>,
    /// The file's format (`asterisk`, `csv`, …).
    #[schema(required = true)]
    pub format: Option<String>,
    /// Bytes of the upload read of its size.
    pub progress: super::exports::JobProgress,
    pub attempts: i64,
    #[schema(required = true)]
    pub created_at: Option<String>,
    #[schema(required = true)]
    pub updated_at: Option<String>,
    /// What the import did, once it has succeeded.
    #[schema(required = true)]
    pub summary: Option<ImportSummary>,
    /// Where the rejected rows are, when some were.
    #[schema(required = true)]
    pub rejects_url: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A finished import's summary: what `dialboard import` prints, and the size of its rejects.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImportSummary {
    #[serde(flatten)]
    pub summary: crate::import::Summary,
    /// Bytes of the rejected rows' CSV.
    #[serde(default)]
    pub rejects_bytes: u64,
}

/// `GET /imports`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportJobs {
    pub imports: Vec<ImportJob>,
}

fn job_json(job: &Job) -> ImportJob {
    let result = job.result.clone().unwrap_or(Value::Null);
    let rejects = result["rejected"].as_u64().is_some_and(|n| n > 0);
    let text = |v: &Value| v.as_str().map(String::from);
    let instant = |ms: i64| text(&rfc3339_ms(ms));
    ImportJob {
        id: job.id.clone(),
        status: job.state.as_str().to_string(),
        name: text(&job.payload["name"]),
        format: text(&job.payload["spec"]["format"]),
        progress: super::exports::JobProgress {
            done: job.progress_done,
            total: job.payload["bytes"].as_i64(),
        },
        attempts: job.attempts,
        created_at: instant(job.created_at),
        updated_at: instant(job.updated_at),
        summary: (job.state == JobState::Succeeded)
            .then(|| serde_json::from_value(result).ok())
            .flatten(),
        rejects_url: rejects.then(|| format!("/api/v1/imports/{}/rejects", job.id)),
        error: job.error.clone(),
    }
}

async fn visible_job(state: &AppState, principal: &Principal, id: &str) -> Result<Job, ApiError> {
    principal.require(Scope::Ingest)?;
    let job = state.store.job(principal.tenant_id, id).await?;
    job.filter(|j| j.kind == JOB_KIND && may_see(principal, j))
        .ok_or_else(|| ApiError::not_found(format!("no import '{id}'")))
}

pub async fn list(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<ImportJobs>, ApiError> {
    principal.require(Scope::Ingest)?;
    let jobs = state.store.jobs(principal.tenant_id, JOB_KIND, 200).await?;
    let imports = jobs.iter().filter(|j| may_see(&principal, j)).map(job_json).collect();
    Ok(Json(ImportJobs { imports }))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ImportJob>, ApiError> {
    Ok(Json(job_json(&visible_job(&state, &principal, &id).await?)))
}

/// `GET /imports/{id}/rejects`: the rejected rows as CSV (`line,reason,text`).
pub async fn rejects(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = visible_job(&state, &principal, &id).await?;
    if job.state != JobState::Succeeded {
        return Err(ApiError::new(
            Code::NotReady,
            format!(
                "import '{id}' is {}; its rejects are there once it has succeeded",
                job.state.as_str()
            ),
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"rejects-{}.csv\"", job.id),
            ),
        ],
        stored_file(state.store.clone(), principal.tenant_id, id),
    )
        .into_response())
}

/// A job's file as a response body, read from the store chunk by chunk as it is sent.
pub fn stored_file(store: Arc<dyn dialboard_store::Store>, tenant_id: i64, id: String) -> axum::body::Body {
    let stream = futures_util::stream::unfold(0i64, move |seq| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            match store.job_file_chunk(tenant_id, &id, seq).await {
                Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), seq + 1)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), i64::MAX)),
            }
        }
    });
    axum::body::Body::from_stream(stream)
}
