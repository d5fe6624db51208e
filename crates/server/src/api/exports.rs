//! Exports over HTTP (SPEC §7): `GET /calls?format=csv|xlsx|pdf` answers up to
//! [`crate::exports::SYNC_LIMIT`] rows at once (CSV streamed as it is read) and queues a job past that
//! (`202 Accepted`, `Location: /api/v1/exports/{id}`); `POST/GET /exports`,
//! `GET /exports/{id}` and `GET /exports/{id}/file` are the jobs. The rendering is
//! `crate::exports`; the job runs on the job mechanism (`crate::jobs`).

use super::auth::Principal;
use super::error::{parse_json, ApiError, Body, Code};
use super::query::params_body;
use super::AppState;
use crate::exports::{export_calls, CallRows, ExportFailure, ExportRequest, Format, Sink, JOB_KIND};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dialboard_store::jobs::{Job, JobState, NewJob};
use dialboard_store::Scope;
use dialboard_views::{Cx, ViewAnswer, ViewRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Attempts an export job gets before it is failed for good.
const MAX_ATTEMPTS: i64 = 3;

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::invalid_field(field, message)
}

fn failure(f: ExportFailure) -> ApiError {
    match f {
        ExportFailure::Invalid(fields) => ApiError::invalid(Code::InvalidRequest, fields),
        ExportFailure::Failed(m) => {
            tracing::error!(error = %m, "export failed");
            ApiError::new(Code::Internal, "the export failed")
        }
    }
}

pub fn parse_format(value: &str) -> Result<Format, ApiError> {
    Format::parse(value).ok_or_else(|| invalid("format", "must be one of csv, xlsx, pdf"))
}

/// `GET /calls?format=…`: every matching call (no paging), with the caller's reach.
pub async fn calls(
    state: Arc<AppState>,
    principal: Principal,
    mut params: HashMap<String, String>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let format = parse_format(&params.remove("format").unwrap_or_default())?;
    let (body, _) = params_body(&params, &[], "last_7_days")?;
    drilldown(state, principal, Value::Object(body), format, "calls").await
}

/// Exports the raw calls behind a query-shaped body (filters, range, timezone) with the
/// caller's reach: `/calls?format=` and a saved report's drill-down. `source` names the file
/// and the audit entry.
pub async fn drilldown(
    state: Arc<AppState>,
    principal: Principal,
    query: Value,
    format: Format,
    source: &str,
) -> Result<Response, ApiError> {
    let (request, rows, count) = counted(&state, &principal, query, format, source.into()).await?;
    if count > state.export_sync_limit {
        return queue(&state, &principal, request, count).await;
    }
    crate::access::audit(
        &state.store,
        principal.tenant_id,
        &request.owner,
        "export",
        None,
        json!({"source": request.source, "format": format, "rows": count, "query": request.query}),
    )
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut sink = Sink::Body(tx.clone());
        if let Err(e) = export_calls(rows, format, &mut sink, |_| async { Ok(()) }).await {
            // The status is sent already: cut the body short so the client sees it failed.
            let message = match e {
                ExportFailure::Invalid(fields) => format!("{fields:?}"),
                ExportFailure::Failed(m) => m,
            };
            tracing::warn!(error = %message, "streamed export failed");
            let _ = tx.send(Err(std::io::Error::other(message))).await;
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(file_response(format, "calls", axum::body::Body::from_stream(stream)))
}

/// A view's answer as a file: its tables (one sheet each in XLSX, one after another in the
/// PDF; CSV, one table by nature, holds the first), rendered at once (a view's tables are
/// bounded), audited like every export.
pub async fn view(
    state: &AppState,
    principal: &Principal,
    cx: &Cx,
    request: &ViewRequest,
    answer: &ViewAnswer,
    format: Format,
) -> Result<Response, ApiError> {
    let file = answer.file(request, &cx.tenant);
    let rows: usize = file.tables.iter().map(|t| t.rows.len()).sum();
    crate::access::audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        "export",
        None,
        json!({"source": format!("view:{}", request.name()), "format": format, "rows": rows, "request": request}),
    )
    .await?;
    let bytes = match format {
        Format::Csv => file.csv(),
        Format::Xlsx => file.xlsx(),
        Format::Pdf => file.pdf(),
    }
    .map_err(|e| failure(ExportFailure::Failed(e.to_string())))?;
    Ok(file_response(format, request.name(), axum::body::Body::from(bytes)))
}

pub fn file_response(format: Format, name: &str, body: axum::body::Body) -> Response {
    let disposition = format!("attachment; filename=\"{name}.{}\"", format.extension());
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// Queues an export job and answers `202 Accepted` with its `Location`.
async fn queue(
    state: &AppState,
    principal: &Principal,
    request: ExportRequest,
    rows: i64,
) -> Result<Response, ApiError> {
    let job = NewJob {
        kind: JOB_KIND.into(),
        payload: serde_json::to_value(&request).expect("a request serializes"),
        max_attempts: MAX_ATTEMPTS,
    };
    let job = state
        .store
        .enqueue_job(principal.tenant_id, job, crate::jobs::now_ms())
        .await?;
    crate::access::audit(
        &state.store,
        principal.tenant_id,
        &request.owner,
        "export_queued",
        Some(&job.id),
        json!({"source": request.source, "format": request.format, "rows": rows, "query": request.query}),
    )
    .await?;
    let location = format!("/api/v1/exports/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job_json(&job, state.now())),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateExport {
    source: String,
    format: String,
    #[serde(default)]
    query: Option<Value>,
}

/// `POST /exports`: an export as a job, whatever its size.
pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let create: CreateExport = parse_json(&body)?;
    if create.source != "calls" {
        return Err(invalid("source", "must be 'calls' (views and reports come later)"));
    }
    let format = parse_format(&create.format)?;
    let query = create
        .query
        .unwrap_or_else(|| json!({"range": {"preset": "last_7_days"}}));
    if !query.is_object() {
        return Err(invalid(
            "query",
            "must be an object: filters, range and timezone as /query takes them",
        ));
    }
    // Counted now, so a bad query is a 400 rather than a failed job.
    let (request, _, count) = counted(&state, &principal, query, format, create.source).await?;
    queue(&state, &principal, request, count).await
}

/// A raw-call export narrowed to the caller's reach, its rows and how many match.
async fn counted(
    state: &AppState,
    principal: &Principal,
    mut query: Value,
    format: Format,
    source: String,
) -> Result<(ExportRequest, CallRows, i64), ApiError> {
    principal.restrict(&mut query, true)?;
    let request = ExportRequest {
        source,
        format,
        query,
        owner: principal.actor_name(),
        now: state.now(),
    };
    let rows = CallRows::new(
        state.store.clone(),
        principal.tenant_id,
        request.query.clone(),
        request.now,
    )
    .await
    .map_err(failure)?;
    let count = rows.count().await.map_err(failure)?;
    Ok((request, rows, count))
}

/// The job, if this caller may see it: their own, or any of the tenant's for an admin.
async fn visible_job(state: &AppState, principal: &Principal, id: &str) -> Result<Job, ApiError> {
    principal.require(Scope::Read)?;
    let job = state.store.job(principal.tenant_id, id).await?;
    job.filter(|j| j.kind == JOB_KIND && may_see(principal, j))
        .ok_or_else(|| ApiError::not_found(format!("no export '{id}'")))
}

pub(super) fn may_see(principal: &Principal, job: &Job) -> bool {
    principal.scopes.contains(&Scope::Admin) || job.payload["owner"].as_str() == Some(principal.actor_name().as_str())
}

pub(super) fn rfc3339_ms(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms).map_or(Value::Null, |t| json!(t.to_string()))
}

fn expired(job: &Job, now: i64) -> bool {
    let expires = job.result.as_ref().and_then(|r| r["expires_at"].as_i64());
    expires.is_some_and(|at| at <= now)
}

/// What `GET /exports/{id}` shows.
/// An export job as the API shows it (`GET /exports[/{id}]`, and the `202` of an export too
/// large to answer at once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportJob {
    pub id: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// What was exported: `calls`, `report_calls`, …
    #[schema(required = true)]
    pub source: Option<String>,
    /// `csv`, `xlsx` or `pdf`.
    #[schema(required = true)]
    pub format: Option<String>,
    /// The drill-down body (filters, range, zone) the rows match.
    #[schema(value_type = Object)]
    pub query: Value,
    pub progress: JobProgress,
    pub attempts: i64,
    #[schema(required = true)]
    pub created_at: Option<String>,
    #[schema(required = true)]
    pub updated_at: Option<String>,
    /// Rows and bytes written, once it has succeeded.
    #[schema(required = true)]
    pub rows: Option<i64>,
    #[schema(required = true)]
    pub bytes: Option<i64>,
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// Where to download the file, while it is there.
    #[schema(required = true)]
    pub file_url: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A job's progress: rows done of the total expected.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobProgress {
    pub done: i64,
    #[schema(required = true)]
    pub total: Option<i64>,
}

/// `GET /exports`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportJobs {
    pub exports: Vec<ExportJob>,
}

fn job_json(job: &Job, now: i64) -> ExportJob {
    let result = job.result.clone().unwrap_or(Value::Null);
    let file_url =
        (job.state == JobState::Succeeded && !expired(job, now)).then(|| format!("/api/v1/exports/{}/file", job.id));
    let text = |v: &Value| v.as_str().map(String::from);
    let instant = |ms: i64| text(&rfc3339_ms(ms));
    ExportJob {
        id: job.id.clone(),
        status: job.state.as_str().to_string(),
        source: text(&job.payload["source"]),
        format: text(&job.payload["format"]),
        query: job.payload["query"].clone(),
        progress: JobProgress {
            done: job.progress_done,
            total: job.progress_total,
        },
        attempts: job.attempts,
        created_at: instant(job.created_at),
        updated_at: instant(job.updated_at),
        rows: result["rows"].as_i64(),
        bytes: result["bytes"].as_i64(),
        expires_at: result["expires_at"]
            .as_i64()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(|t| t.to_string()),
        file_url,
        error: job.error.clone(),
    }
}

pub async fn list(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<ExportJobs>, ApiError> {
    principal.require(Scope::Read)?;
    let jobs = state.store.jobs(principal.tenant_id, JOB_KIND, 200).await?;
    let exports = jobs
        .iter()
        .filter(|j| may_see(&principal, j))
        .map(|j| job_json(j, state.now()))
        .collect();
    Ok(Json(ExportJobs { exports }))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ExportJob>, ApiError> {
    Ok(Json(job_json(
        &visible_job(&state, &principal, &id).await?,
        state.now(),
    )))
}
/// `GET /exports/{id}/file`: the file, read from the store chunk by chunk as it is sent.
pub async fn file(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(name) = params.keys().next() {
        return Err(invalid(name, "unknown parameter"));
    }
    let job = visible_job(&state, &principal, &id).await?;
    if job.state != JobState::Succeeded {
        return Err(ApiError::new(
            Code::NotReady,
            format!(
                "export '{id}' is {}; its file is there once it has succeeded",
                job.state.as_str()
            ),
        ));
    }
    if expired(&job, state.now()) {
        return Err(ApiError::new(Code::Expired, format!("export '{id}' has expired")));
    }
    let format = job.payload["format"]
        .as_str()
        .and_then(Format::parse)
        .ok_or_else(|| ApiError::new(Code::Internal, "the export's format"))?;
    Ok(file_response(
        format,
        &format!("calls-{}", job.id),
        super::imports::stored_file(state.store.clone(), principal.tenant_id, id),
    ))
}
