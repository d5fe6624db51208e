//! A saved report's answer over HTTP: `GET /reports/{id}/result[?format=csv|xlsx|pdf]`, its raw
//! calls `GET /reports/{id}/calls[?format=]`, and `POST /reports/preview` (an unsaved report's
//! answer, for the builder). Always with the caller's own reach: a report shares a question,
//! never an answer. The work is `crate::reports`.

use super::auth::Principal;
use super::error::{ApiError, Body, Code};
use super::exports::{drilldown, file_response, parse_format};
use super::query::{calls_page, page_limit};
use super::saved::{item_json, visible};
use super::AppState;
use crate::access::audit;
use crate::reports::run::{answer, drilldown_body, render, with_filters, FILTER_PARAMS};
use crate::reports::{report_def, Question, ReportDef};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dialboard_engine::query::Dimension;
use dialboard_engine::FieldError;
use dialboard_store::saved::SavedKind;
use dialboard_store::Scope;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

fn unknown_params(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    let unknown: Vec<FieldError> = params
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| FieldError::new(k.as_str(), "unknown parameter"))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(Code::InvalidRequest, unknown))
    }
}

/// A saved report's own parameters, and the filters a dashboard may apply to it.
fn unknown_report_params(params: &HashMap<String, String>, own: &[&str]) -> Result<(), ApiError> {
    let allowed: Vec<&str> = own
        .iter()
        .copied()
        .chain(FILTER_PARAMS)
        .chain(Dimension::names())
        .collect();
    unknown_params(params, &allowed)
}

/// A report's answer: its query's (as `/query` answers) or its view's (as the view's
/// endpoint answers).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ReportResult {
    Query(Box<super::query::QueryAnswer>),
    View(Box<dialboard_views::ViewAnswer>),
}

/// `GET /reports/{id}/result`: the report and its answer with the caller's reach.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReportResultAnswer {
    #[schema(value_type = super::saved::Report)]
    pub report: Value,
    #[schema(value_type = ReportResult)]
    pub result: Value,
}

/// `POST /reports/preview`: an unsaved report's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PreviewAnswer {
    #[schema(value_type = ReportResult)]
    pub result: Value,
}

/// `GET /reports/{id}/result`: `{"report", "result"}`, or the answer as a file with `format`;
/// with filters (a dashboard's range, zone, dimensions) applied to its question.
pub async fn result(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    unknown_report_params(&params, &["format"])?;
    let item = visible(&state, &principal, SavedKind::Report, &id).await?;
    let mut def = ReportDef::stored(&item.body);
    def.question = with_filters(&def.question, &params)?;
    let result = answer(&state, &principal, &def.question).await?;
    let Some(format) = params.get("format") else {
        let report = item_json(&principal, &item);
        return Ok(Json(ReportResultAnswer { report, result }).into_response());
    };
    exported(&state, &principal, &def, &result, format, Some(&id)).await
}

/// The answer as a file in `format`, audited (who, which report, how many rows).
async fn exported(
    state: &AppState,
    principal: &Principal,
    def: &ReportDef,
    result: &Value,
    format: &str,
    report: Option<&str>,
) -> Result<Response, ApiError> {
    let format = parse_format(format)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    // A query's answer is bounded by the query budget (100,000 groups, the synchronous
    // export limit), so a report's result is always rendered at once; its raw calls, which
    // are not bounded, go through `/reports/{id}/calls?format=` and become a job when large.
    let (bytes, rows) = render(&tenant, def, result, format).await?;
    let source = if report.is_some() { "report" } else { "report_preview" };
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        "export",
        report,
        json!({"source": source, "format": format, "rows": rows, "question": def.to_json()}),
    )
    .await?;
    Ok(file_response(
        format,
        &file_name(&def.name),
        axum::body::Body::from(bytes),
    ))
}

/// A file name from a report's name: letters, digits and dashes.
fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "report".into()
    } else {
        trimmed.chars().take(60).collect()
    }
}

/// `GET /reports/{id}/calls`: the raw calls behind the report (as `/calls`: pages with
/// `cursor` and `limit`, or every row with `format`), narrowed to the caller's own reach.
pub async fn calls(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    unknown_report_params(&params, &["format", "cursor", "limit"])?;
    let item = visible(&state, &principal, SavedKind::Report, &id).await?;
    let mut def = ReportDef::stored(&item.body);
    def.question = with_filters(&def.question, &params)?;
    let view_answer = match def.question {
        Question::View { .. } => Some(answer(&state, &principal, &def.question).await?),
        Question::Query(_) => None,
    };
    let body = drilldown_body(&def.question, view_answer.as_ref())?;
    if let Some(format) = params.get("format") {
        let format = parse_format(format)?;
        return drilldown(state, principal, body, format, "report_calls").await;
    }
    let limit = page_limit(&params)?;
    calls_page(&state, &principal, body, params.get("cursor").cloned(), limit).await
}

/// `POST /reports/preview[?format=]`: an unsaved report's answer (the builder's live preview,
/// a page's export buttons), checked as a save would be; the name may be left out.
pub async fn preview(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(params): Query<HashMap<String, String>>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    unknown_params(&params, &["format"])?;
    let mut body: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    if let Some(obj) = body.as_object_mut() {
        obj.entry("name").or_insert_with(|| json!("preview"));
    }
    let def = report_def(&state.store, principal.tenant_id, state.now(), &body)
        .await
        .map_err(|fields| ApiError::invalid(Code::InvalidReport, fields))?;
    let result = answer(&state, &principal, &def.question).await?;
    match params.get("format") {
        Some(format) => exported(&state, &principal, &def, &result, format, None).await,
        None => Ok(Json(PreviewAnswer { result }).into_response()),
    }
}
