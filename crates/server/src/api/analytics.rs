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
use dialboard_engine::FieldError;
use dialboard_store::Scope;
use dialboard_views::params::Own;
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

/// Reads the query string (`own`: the view's own parameters) into a request with `request`,
/// runs it for the caller and answers it as JSON or as the asked `format`.
async fn answer(
    state: Arc<AppState>,
    principal: Principal,
    mut params: HashMap<String, String>,
    own: &[&str],
    request: impl FnOnce(Shared, &mut Own) -> Result<ViewRequest, FieldError>,
) -> Answer {
    principal.require(Scope::Read)?;
    let format = params
        .remove("format")
        .map(|f| super::exports::parse_format(&f))
        .transpose()?;
    let (shared, mut own) = Shared::from_query(&params, own).map_err(|f| ApiError::invalid(Code::InvalidRequest, f))?;
    let request = request(shared, &mut own).map_err(|f| ApiError::invalid(Code::InvalidRequest, vec![f]))?;
    let (cx, _running) = context(&state, &principal).await?;
    let answer = run(&cx, &request).await?;
    match format {
        // Through a JSON value, whose keys are sorted, as the views have always answered.
        None => Ok(
            Json(serde_json::to_value(&answer).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?)
                .into_response(),
        ),
        Some(format) => super::exports::view(&state, &principal, &cx, &request, &answer, format).await,
    }
}

/// `GET /analytics/metrics`: today's KPIs with their change against the previous period.
pub async fn metrics(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &["compare"], |shared, own| {
        Ok(ViewRequest::Metrics(MetricsParams {
            shared,
            compare: own.text("compare"),
        }))
    })
    .await
}

/// `GET /analytics/call-metrics`: volume, connects, meetings and connect rate over time.
pub async fn call_metrics(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &["compare", "granularity"], |shared, own| {
        Ok(ViewRequest::CallMetrics(CallMetricsParams {
            shared,
            compare: own.text("compare"),
            granularity: own.text("granularity"),
        }))
    })
    .await
}

/// `GET /analytics/dispositions`: calls by category and disposition, with shares.
pub async fn dispositions(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &[], |shared, _| {
        Ok(ViewRequest::Dispositions(DispositionsParams { shared }))
    })
    .await
}

/// `GET /analytics/call-time-heatmap?metric=connect_rate|calls`: day of week × hour of day.
pub async fn heatmap(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &["metric"], |shared, own| {
        Ok(ViewRequest::CallTimeHeatmap(HeatmapParams {
            shared,
            metric: own.text("metric"),
        }))
    })
    .await
}

/// `GET /analytics/agent-scorecard/{agent_id}?period=daily|weekly|monthly&date=`: the seed's
/// RepScorecard.
pub async fn scorecard(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(agent_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, p, &["period", "date"], |shared, own| {
        Ok(ViewRequest::AgentScorecard(ScorecardParams {
            agent_id,
            shared,
            period: own.text("period"),
            date: own.text("date"),
        }))
    })
    .await
}

/// `GET /analytics/team-leaderboard/{team_id}?date=&sort_by=calls|connects|meetings|score`.
pub async fn team_leaderboard(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(team_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, p, &["date", "sort_by", "limit"], |shared, own| {
        Ok(ViewRequest::TeamLeaderboard(TeamLeaderboardParams {
            team_id,
            shared,
            date: own.text("date"),
            sort_by: own.text("sort_by"),
            limit: own.whole("limit")?,
        }))
    })
    .await
}

/// `GET /analytics/leaderboard?period=today|week|month|all_time&sort_by=`.
pub async fn tenant_leaderboard(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &["period", "sort_by", "limit"], |shared, own| {
        Ok(ViewRequest::Leaderboard(TenantLeaderboardParams {
            shared,
            period: own.text("period"),
            sort_by: own.text("sort_by"),
            limit: own.whole("limit")?,
        }))
    })
    .await
}

/// `GET /analytics/trends/{agent_id}?days=30`.
pub async fn trends(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(agent_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, p, &["days"], |shared, own| {
        Ok(ViewRequest::Trends(TrendsParams {
            agent_id,
            shared,
            days: own.whole("days")?,
        }))
    })
    .await
}

/// `GET /analytics/pipeline-funnel?group_by=campaign|lead_source|agent`.
pub async fn pipeline_funnel(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &["group_by"], |shared, own| {
        Ok(ViewRequest::PipelineFunnel(PipelineParams {
            shared,
            group_by: own.text("group_by"),
        }))
    })
    .await
}

/// `GET /analytics/lead-sources`: the funnel by lead source, best revenue first.
pub async fn lead_sources(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &[], |shared, _| {
        Ok(ViewRequest::LeadSources(LeadSourcesParams { shared }))
    })
    .await
}

/// `GET /analytics/conversion-funnel?period=today|week|month|quarter`.
pub async fn conversion_funnel(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &["period"], |shared, own| {
        Ok(ViewRequest::ConversionFunnel(ConversionParams {
            shared,
            period: own.text("period"),
        }))
    })
    .await
}

/// `GET /analytics/lead-volume?period=24h|7d|30d`.
pub async fn lead_volume(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &["period"], |shared, own| {
        Ok(ViewRequest::LeadVolume(LeadVolumeParams {
            shared,
            period: own.text("period"),
        }))
    })
    .await
}

/// `GET /analytics/intents`: calls and conversations by intent.
pub async fn intents(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &[], |shared, _| {
        Ok(ViewRequest::Intents(IntentsParams { shared }))
    })
    .await
}

/// `GET /analytics/channels`: volume, response, resolution and CSAT per channel.
pub async fn channels(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &[], |shared, _| {
        Ok(ViewRequest::Channels(ChannelsParams { shared }))
    })
    .await
}

/// `GET /analytics/campaigns/{id}`: one campaign's outcomes, journey, intents and returns.
pub async fn campaign(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(campaign_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, p, &["compare"], |shared, own| {
        Ok(ViewRequest::Campaigns(CampaignParams {
            campaign_id,
            shared,
            compare: own.text("compare"),
        }))
    })
    .await
}

/// `GET /analytics/coaching-opportunities/{team_id}?date=`: the seed's eight rules.
pub async fn coaching(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(team_id): Path<String>,
    Query(p): Params,
) -> Answer {
    answer(state, principal, p, &["date"], |shared, own| {
        Ok(ViewRequest::CoachingOpportunities(CoachingParams {
            team_id,
            shared,
            date: own.text("date"),
        }))
    })
    .await
}

/// `GET /analytics/compliance?date=`: each agent's day against its activity targets.
pub async fn compliance(State(state): State<Arc<AppState>>, principal: Principal, Query(p): Params) -> Answer {
    answer(state, principal, p, &["date"], |shared, own| {
        Ok(ViewRequest::Compliance(ComplianceParams {
            shared,
            date: own.text("date"),
        }))
    })
    .await
}
