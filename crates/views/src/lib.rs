//! Every dashboard view of SPEC §5 as a typed function of (context, parameters), with no HTTP:
//! the API, exports, schedules, alerts and the SQL interface all call these, so a number is
//! the same wherever it is read.
//!
//! A view composes general queries (the one query model, narrowed by the caller's [`Reach`]
//! exactly as `/query` is), so every number in it is what `/query` gives for the same scope
//! and range; views only arrange, rank and compare those numbers, and add names, goals and
//! costs from the directory. A request for a view ([`ViewRequest`]) is plain data — a saved
//! report stores it — and its answer ([`ViewAnswer`]) is typed: the API serializes it, an
//! export renders its tables ([`ViewAnswer::tables`]).

pub mod directory;
pub mod params;
pub mod reach;
mod request;
mod tables;
mod types;
mod view;

mod agents;
mod coaching;
mod compliance;
pub mod fair;
mod funnels;
mod kpis;
mod leaderboard;
mod mix;

pub use agents::{scorecard, trends, RepScorecard, ScorePoint, ScorecardParams, TrendsParams, TrendsView};
pub use coaching::{coaching, CoachingOpportunity, CoachingParams, CoachingView};
pub use compliance::{compliance, Actuals, AgentCompliance, ComplianceParams, ComplianceParts, ComplianceView};
pub use funnels::{
    conversion_funnel, lead_sources, lead_volume, pipeline_funnel, ConversionFunnelView, ConversionParams,
    ConversionStage, FunnelMetrics, FunnelRevenue, LeadSource, LeadSourcesParams, LeadSourcesView, LeadVolumeParams,
    LeadVolumePoint, LeadVolumeView, PipelineFunnelView, PipelineParams,
};
pub use kpis::{
    call_metrics, dispositions, heatmap, metrics, CallMetricsComparison, CallMetricsParams, CallMetricsView, CallPoint,
    DispositionCategory, DispositionShare, DispositionsParams, DispositionsView, HeatmapCell, HeatmapParams,
    HeatmapView, Kpi, MetricsParams, MetricsView,
};
pub use leaderboard::{
    team_leaderboard, tenant_leaderboard, LeaderboardEntry, LeaderboardView, TeamLeaderboardParams,
    TenantLeaderboardParams,
};
pub use mix::{
    campaign, channels, intents, CampaignIntent, CampaignParams, CampaignView, ChannelEntry, ChannelsParams,
    ChannelsView, IntentEntry, IntentsParams, IntentsView, JourneyStage,
};
pub use params::Shared;
pub use reach::Reach;
pub use request::{run, spec_of, ViewAnswer, ViewRequest, ViewSpec, VIEWS};
pub use tables::ViewFile;
pub use types::{Measures, Metric, Period, QueryComparison, Range, RangeAsked};

use dialboard_engine::FieldError;
use dialboard_store::{Store, StoreError, TenantInfo};
use std::sync::Arc;

/// What every view runs with: the store, the caller's tenant and reach, and "now".
#[derive(Clone)]
pub struct Cx {
    pub store: Arc<dyn Store>,
    pub tenant: Arc<TenantInfo>,
    pub reach: Reach,
    /// The instant presets, "today" and comparisons resolve against (epoch seconds).
    pub now: i64,
}

impl Cx {
    /// The context of a caller of `tenant_id` with `reach`, at `now`.
    pub async fn load(store: Arc<dyn Store>, tenant_id: i64, reach: Reach, now: i64) -> Result<Cx, ViewError> {
        let tenant = store.tenant(tenant_id).await?;
        Ok(Cx {
            store,
            tenant,
            reach,
            now,
        })
    }
}

/// Why a view has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Parameters the caller sent (named as the caller named them) and why each is wrong.
    #[error("invalid parameters: {0:?}")]
    Invalid(Vec<FieldError>),
    /// The caller's reach does not cover what was asked (the message names the filter).
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The view built a query the engine refused from parameters it had accepted: a bug in
    /// the view, never the caller's fault.
    #[error("the view built an invalid query: {0}")]
    Internal(String),
}

impl ViewError {
    /// One bad parameter.
    pub fn invalid(field: &str, message: impl Into<String>) -> ViewError {
        ViewError::Invalid(vec![FieldError::new(field, message)])
    }
}
