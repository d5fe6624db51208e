//! A request for a view as plain data (what a saved report, a schedule or an alert stores) and
//! its typed answer.

use crate::*;
use serde::{Deserialize, Serialize};

/// Which view, with its parameters: `{"view": "team-leaderboard", "params": {...}}`. The
/// names are the views' paths under `/api/v1/analytics/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "view", content = "params", rename_all = "kebab-case")]
pub enum ViewRequest {
    Metrics(MetricsParams),
    CallMetrics(CallMetricsParams),
    Dispositions(DispositionsParams),
    AgentScorecard(ScorecardParams),
    TeamLeaderboard(TeamLeaderboardParams),
    Leaderboard(TenantLeaderboardParams),
    CallTimeHeatmap(HeatmapParams),
    Trends(TrendsParams),
    PipelineFunnel(PipelineParams),
    LeadSources(LeadSourcesParams),
    ConversionFunnel(ConversionParams),
    LeadVolume(LeadVolumeParams),
    Intents(IntentsParams),
    Channels(ChannelsParams),
    Campaigns(CampaignParams),
    CoachingOpportunities(CoachingParams),
    Compliance(ComplianceParams),
}

/// A view's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ViewAnswer {
    Metrics(MetricsView),
    CallMetrics(CallMetricsView),
    Dispositions(DispositionsView),
    AgentScorecard(RepScorecard),
    Leaderboard(LeaderboardView),
    CallTimeHeatmap(HeatmapView),
    Trends(TrendsView),
    PipelineFunnel(PipelineFunnelView),
    LeadSources(LeadSourcesView),
    ConversionFunnel(ConversionFunnelView),
    LeadVolume(LeadVolumeView),
    Intents(IntentsView),
    Channels(ChannelsView),
    Campaigns(CampaignView),
    CoachingOpportunities(CoachingView),
    Compliance(ComplianceView),
}

impl ViewRequest {
    /// The view's name (its path under `/api/v1/analytics/`).
    pub fn name(&self) -> &'static str {
        match self {
            ViewRequest::Metrics(_) => "metrics",
            ViewRequest::CallMetrics(_) => "call-metrics",
            ViewRequest::Dispositions(_) => "dispositions",
            ViewRequest::AgentScorecard(_) => "agent-scorecard",
            ViewRequest::TeamLeaderboard(_) => "team-leaderboard",
            ViewRequest::Leaderboard(_) => "leaderboard",
            ViewRequest::CallTimeHeatmap(_) => "call-time-heatmap",
            ViewRequest::Trends(_) => "trends",
            ViewRequest::PipelineFunnel(_) => "pipeline-funnel",
            ViewRequest::LeadSources(_) => "lead-sources",
            ViewRequest::ConversionFunnel(_) => "conversion-funnel",
            ViewRequest::LeadVolume(_) => "lead-volume",
            ViewRequest::Intents(_) => "intents",
            ViewRequest::Channels(_) => "channels",
            ViewRequest::Campaigns(_) => "campaigns",
            ViewRequest::CoachingOpportunities(_) => "coaching-opportunities",
            ViewRequest::Compliance(_) => "compliance",
        }
    }

    /// The shared parameters (range, zone, filters) the request carries.
    pub fn shared(&self) -> &Shared {
        match self {
            ViewRequest::Metrics(p) => &p.shared,
            ViewRequest::CallMetrics(p) => &p.shared,
            ViewRequest::Dispositions(p) => &p.shared,
            ViewRequest::AgentScorecard(p) => &p.shared,
            ViewRequest::TeamLeaderboard(p) => &p.shared,
            ViewRequest::Leaderboard(p) => &p.shared,
            ViewRequest::CallTimeHeatmap(p) => &p.shared,
            ViewRequest::Trends(p) => &p.shared,
            ViewRequest::PipelineFunnel(p) => &p.shared,
            ViewRequest::LeadSources(p) => &p.shared,
            ViewRequest::ConversionFunnel(p) => &p.shared,
            ViewRequest::LeadVolume(p) => &p.shared,
            ViewRequest::Intents(p) => &p.shared,
            ViewRequest::Channels(p) => &p.shared,
            ViewRequest::Campaigns(p) => &p.shared,
            ViewRequest::CoachingOpportunities(p) => &p.shared,
            ViewRequest::Compliance(p) => &p.shared,
        }
    }
}

/// Runs the view a request names, for the caller of `cx`.
pub async fn run(cx: &Cx, request: &ViewRequest) -> Result<ViewAnswer, ViewError> {
    Ok(match request {
        ViewRequest::Metrics(p) => ViewAnswer::Metrics(metrics(cx, p).await?),
        ViewRequest::CallMetrics(p) => ViewAnswer::CallMetrics(call_metrics(cx, p).await?),
        ViewRequest::Dispositions(p) => ViewAnswer::Dispositions(dispositions(cx, p).await?),
        ViewRequest::AgentScorecard(p) => ViewAnswer::AgentScorecard(scorecard(cx, p).await?),
        ViewRequest::TeamLeaderboard(p) => ViewAnswer::Leaderboard(team_leaderboard(cx, p).await?),
        ViewRequest::Leaderboard(p) => ViewAnswer::Leaderboard(tenant_leaderboard(cx, p).await?),
        ViewRequest::CallTimeHeatmap(p) => ViewAnswer::CallTimeHeatmap(heatmap(cx, p).await?),
        ViewRequest::Trends(p) => ViewAnswer::Trends(trends(cx, p).await?),
        ViewRequest::PipelineFunnel(p) => ViewAnswer::PipelineFunnel(pipeline_funnel(cx, p).await?),
        ViewRequest::LeadSources(p) => ViewAnswer::LeadSources(lead_sources(cx, p).await?),
        ViewRequest::ConversionFunnel(p) => ViewAnswer::ConversionFunnel(conversion_funnel(cx, p).await?),
        ViewRequest::LeadVolume(p) => ViewAnswer::LeadVolume(lead_volume(cx, p).await?),
        ViewRequest::Intents(p) => ViewAnswer::Intents(intents(cx, p).await?),
        ViewRequest::Channels(p) => ViewAnswer::Channels(channels(cx, p).await?),
        ViewRequest::Campaigns(p) => ViewAnswer::Campaigns(campaign(cx, p).await?),
        ViewRequest::CoachingOpportunities(p) => ViewAnswer::CoachingOpportunities(coaching(cx, p).await?),
        ViewRequest::Compliance(p) => ViewAnswer::Compliance(compliance(cx, p).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_is_plain_data_named_like_its_path() {
        let stored = json!({"view": "team-leaderboard", "params": {
            "team_id": "t1", "preset": "last_7_days", "filters": {"campaign": ["spring"]}, "sort_by": "meetings", "limit": 10}});
        let request: ViewRequest = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(request.name(), "team-leaderboard");
        let ViewRequest::TeamLeaderboard(p) = &request else {
            panic!("{request:?}")
        };
        assert_eq!(
            (p.team_id.as_str(), p.limit, p.sort_by.as_deref()),
            ("t1", Some(10), Some("meetings"))
        );
        assert_eq!(request.shared().filters["campaign"], vec!["spring".to_string()]);
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            stored,
            "what is stored reads back the same"
        );
        let bare: ViewRequest = serde_json::from_value(json!({"view": "metrics", "params": {}})).unwrap();
        assert_eq!(bare, ViewRequest::Metrics(MetricsParams::default()));
        assert!(serde_json::from_value::<ViewRequest>(json!({"view": "nope", "params": {}})).is_err());
    }
}
