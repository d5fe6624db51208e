//! The analytics views of SPEC §5 (`/api/v1/analytics/...`) over HTTP. The views themselves
//! are `dialboard_views` (no HTTP): each handler here only reads its parameters into the
//! view's request, runs it for the caller, and answers the typed result as JSON — or, with
//! `format=csv|xlsx|pdf`, as a file of the result's tables (api/exports.rs).

use super::admission::Permit;
use super::auth::Principal;
use super::error::{ApiError, Code};
use super::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dialboard_store::Scope;
use dialboard_views::*;
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;
type Answer = Result<Response, ApiError>;

/// A view's context for `principal`, once it has its place among the caller's running
/// queries (held while the view runs).
pub async fn context(state: &AppState, principal: &Principal) -> Result<(Cx, Permit), ApiError> {
    let running = state.admission.admit(principal).await?;
    let cx = Cx::load(
        state.store.clone(),
        principal.tenant_id,
        principal.reach.clone(),
        state.now(),
    )
    .await?;
    Ok((cx, running))
}

/// Reads the query string into the request for the view `name` (`id`: the agent, team or
/// campaign its path names), runs it for the caller and answers it as JSON or as the asked
/// `format`.
async fn answer(
    state: Arc<AppState>,
    principal: Principal,
    name: &str,
    id: Option<&str>,
    mut params: HashMap<String, String>,
) -> Answer {
    principal.require(Scope::Read)?;
    let format = params
        .remove("format")
        .map(|f| super::exports::parse_format(&f))
        .transpose()?;
    let request = ViewRequest::from_query(name, id, &params).map_err(|f| ApiError::invalid(Code::InvalidRequest, f))?;
    let (cx, _running) = context(&state, &principal).await?;
    let answer = run(&cx, &request).await?;
    match format {
        // Written straight from the typed answer: a `serde_json::Value` in between (to sort
        // the keys) was a third of the time of a 5,000-agent leaderboard (bench/README.md).
        None => Ok(Json(answer).into_response()),
        Some(format) => super::exports::view(&state, &principal, &cx, &request, &answer, format).await,
    }
}

/// `GET /analytics/metrics`: today's KPIs with their change against the previous period.
pub async fn metrics(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "metrics", None, p).await
}

/// `GET /analytics/call-metrics`: volume, connects, meetings and connect rate over time.
pub async fn call_metrics(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "call-metrics", None, p).await
}

/// `GET /analytics/dispositions`: calls by category and disposition, with shares.
pub async fn dispositions(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "dispositions", None, p).await
}

/// `GET /analytics/call-time-heatmap?metric=connect_rate|calls`: day of week × hour of day.
pub async fn heatmap(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "call-time-heatmap", None, p).await
}

/// `GET /analytics/agent-scorecard/{agent_id}?period=daily|weekly|monthly&date=`: the seed's
/// RepScorecard.
pub async fn scorecard(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(agent_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, "agent-scorecard", Some(&agent_id), p).await
}

/// `GET /analytics/team-leaderboard/{team_id}?date=&sort_by=calls|connects|meetings|score`.
pub async fn team_leaderboard(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(team_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, "team-leaderboard", Some(&team_id), p).await
}

/// `GET /analytics/leaderboard?period=today|week|month|all_time&sort_by=`.
pub async fn tenant_leaderboard(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "leaderboard", None, p).await
}

/// `GET /analytics/trends/{agent_id}?days=30`.
pub async fn trends(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(agent_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, "trends", Some(&agent_id), p).await
}

/// `GET /analytics/pipeline-funnel?group_by=campaign|lead_source|agent`.
pub async fn pipeline_funnel(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "pipeline-funnel", None, p).await
}

/// `GET /analytics/lead-sources`: the funnel by lead source, best revenue first.
pub async fn lead_sources(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "lead-sources", None, p).await
}

/// `GET /analytics/conversion-funnel?period=today|week|month|quarter`.
pub async fn conversion_funnel(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "conversion-funnel", None, p).await
}

/// `GET /analytics/lead-volume?period=24h|7d|30d`.
pub async fn lead_volume(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "lead-volume", None, p).await
}

/// `GET /analytics/intents`: calls and conversations by intent.
pub async fn intents(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "intents", None, p).await
}

/// `GET /analytics/channels`: volume, response, resolution and CSAT per channel.
pub async fn channels(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "channels", None, p).await
}

/// `GET /analytics/campaigns/{id}`: one campaign's outcomes, journey, intents and returns.
pub async fn campaign(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(campaign_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, "campaigns", Some(&campaign_id), p).await
}

/// `GET /analytics/coaching-opportunities/{team_id}?date=`: the seed's eight rules.
pub async fn coaching(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(team_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, "coaching-opportunities", Some(&team_id), p).await
}

/// `GET /analytics/compliance?date=`: each agent's day against its activity targets.
pub async fn compliance(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, "compliance", None, p).await
}
