//! `POST /api/v1/query` and the raw drill-down `GET /api/v1/calls`, `GET /api/v1/calls/{id}`.

use super::auth::Principal;
use super::error::{ApiError, Body, Code};
use super::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dialboard_engine::FieldError;
use dialboard_store::{CallsRequest, Scope};
use dialboard_views::{Measures, QueryComparison, Range, Shared};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The general query's answer (SPEC §5; `QueryResult::to_json` in the engine writes it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct QueryAnswer {
    /// The resolved range, RFC 3339 in the query's zone.
    pub range: Range,
    /// Dimension columns then measures.
    pub columns: Vec<String>,
    /// Key values then measure values, in `columns`' order.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub rows: Vec<Vec<Value>>,
    pub totals: Measures,
    /// Rows past `limit` were left out.
    pub truncated: bool,
    pub limit: usize,
    /// With `compare`: the compared period's answer and each total's change in percent.
    #[schema(required = false)]
    pub comparison: Option<QueryComparison>,
}

/// A call's conversation analysis, when one arrived.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallAnalysis {
    pub event_id: String,
    #[schema(required = true)]
    pub score: Option<f64>,
    #[schema(required = true)]
    pub sentiment: Option<f64>,
    #[schema(required = true)]
    pub prospect_sentiment: Option<f64>,
    #[schema(required = true)]
    pub agent_talk_ratio: Option<f64>,
    #[schema(required = true)]
    pub filler_words_per_100: Option<f64>,
    #[schema(required = true)]
    pub intent: Option<String>,
}

/// A raw call record (`dialboard_store::call_json`), times in the tenant's zone.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Call {
    pub call_id: String,
    /// The event that made this version of the call.
    pub event_id: String,
    pub agent_id: String,
    #[schema(required = true)]
    pub team_id: Option<String>,
    #[schema(required = true)]
    pub campaign_id: Option<String>,
    #[schema(required = true)]
    pub list_id: Option<String>,
    #[schema(required = true)]
    pub contact_id: Option<String>,
    #[schema(required = true)]
    pub lead_source: Option<String>,
    /// `inbound` or `outbound`.
    #[schema(required = true)]
    pub direction: Option<String>,
    pub disposition: String,
    /// The disposition's category in the tenant's taxonomy.
    #[schema(required = true)]
    pub disposition_category: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    #[schema(required = true)]
    pub ended_at: Option<String>,
    #[schema(required = true)]
    pub talk_seconds: Option<i64>,
    #[schema(required = true)]
    pub wait_seconds: Option<i64>,
    #[schema(required = true)]
    pub wrap_seconds: Option<i64>,
    pub voicemail_dropped: bool,
    pub is_callback: bool,
    pub abandoned: bool,
    #[schema(required = true)]
    pub analysis: Option<CallAnalysis>,
}

/// One stored event of a call (its versions and analyses), oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallVersion {
    pub event_id: String,
    /// The event's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339.
    pub received_at: String,
    /// Whether it is the call's (or its analysis') current version.
    pub current: bool,
    /// The event as it was sent.
    #[schema(value_type = std::collections::BTreeMap<String, serde_json::Value>)]
    pub event: Value,
}

/// `GET /calls/{call_id}`: the call with every version of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: Call,
    pub versions: Vec<CallVersion>,
}

/// A page of raw calls (`GET /calls`), newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallsPage {
    pub calls: Vec<Call>,
    /// The `cursor` of the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// Set when the range reaches before the retention horizon: calls before this instant
    /// were purged (their numbers remain in the rollups).
    #[schema(required = false)]
    pub purged_before: Option<String>,
}

pub async fn query(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(Json(run_query(&state, &principal, body).await?))
}

/// Runs a general query as `principal`: narrowed to their reach, admitted among their running
/// queries, redacted for their privacy. `/query`, saved reports and the SQL endpoint answer through it.
pub async fn run_query(state: &AppState, principal: &Principal, mut body: Value) -> Result<Value, ApiError> {
    principal.restrict(&mut body, false)?;
    let asked = body.clone();
    let _running = state.admission.admit(principal).await?;
    let started = Instant::now();
    let result = state.store.query(principal.tenant_id, body, state.now()).await?;
    state.metrics.query_latency.observe(started.elapsed());
    let mut json = result
        .map_err(|fields| ApiError::invalid(Code::InvalidRequest, fields))?
        .to_json();
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let opted_out = dialboard_views::directory::opted_out(state.store.as_ref(), tenant.id, &principal.reach).await?;
    let privacy = tenant.settings.leaderboard_privacy;
    principal.reach.redact_opted_out(&mut json, privacy, &opted_out, &asked);
    Ok(json)
}

/// An endpoint's own query-string parameters, by name.
pub type OwnParams = HashMap<String, String>;

/// The query-string form shared by drill-downs and analytics views
/// ([`dialboard_views::Shared`]): `preset` or `start`/`end` (default `default_preset`),
/// `timezone`, and any dimension as a comma-separated filter (`agent=a1,a2`). Returns the
/// query-shaped body and the endpoint's own parameters (`own`); anything else is an error
/// naming the parameter.
pub fn params_body(
    params: &HashMap<String, String>,
    own: &[&str],
    default_preset: &str,
) -> Result<(Map<String, Value>, OwnParams), ApiError> {
    let (shared, rest) = Shared::from_query(params, own).map_err(|e| ApiError::invalid(Code::InvalidRequest, e))?;
    Ok((shared.body(default_preset), rest.0))
}

/// A drill-down's parameters: the shared ones plus `cursor` and `limit` (1–1000, default 100).
fn drilldown_body(params: &HashMap<String, String>) -> Result<(Value, Option<String>, usize), ApiError> {
    let (body, rest) = params_body(params, &["cursor", "limit"], "last_7_days")?;
    Ok((Value::Object(body), rest.get("cursor").cloned(), page_limit(&rest)?))
}

/// A drill-down's `limit` parameter: 1–1000, default 100.
pub fn page_limit(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    let limit = match params.get("limit").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n @ 1..=1000)) => n,
        Some(_) => {
            return Err(ApiError::invalid(
                Code::InvalidRequest,
                vec![FieldError::new("limit", "must be a whole number from 1 to 1000")],
            ))
        }
    };
    Ok(limit)
}

pub async fn calls(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if params.contains_key("format") {
        return super::exports::calls(state, principal, params).await;
    }
    principal.require(Scope::Read)?;
    let (body, cursor, limit) = drilldown_body(&params)?;
    calls_page(&state, &principal, body, cursor, limit).await
}

/// A page of the raw calls a query-shaped body selects, narrowed to the caller's reach
/// (`/calls` and a saved report's drill-down).
pub async fn calls_page(
    state: &AppState,
    principal: &Principal,
    mut body: Value,
    cursor: Option<String>,
    limit: usize,
) -> Result<Response, ApiError> {
    principal.restrict(&mut body, true)?;
    let _running = state.admission.admit(principal).await?;
    let page = state
        .store
        .calls(
            principal.tenant_id,
            CallsRequest {
                query: body,
                cursor,
                limit,
            },
            state.now(),
        )
        .await?;
    match page {
        Ok(p) => Ok(Json(json!(p)).into_response()),
        Err(fields) => Err(ApiError::invalid(Code::InvalidRequest, fields)),
    }
}

pub async fn call(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(call_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let call = state.store.call(principal.tenant_id, &call_id).await?;
    let visible = call.filter(|c| principal.sees_record(c["agent_id"].as_str(), c["team_id"].as_str()));
    visible
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no call '{call_id}'")))
}
