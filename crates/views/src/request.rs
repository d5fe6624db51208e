//! A request for a view as plain data (what a saved report, a schedule or an alert stores) and
//! its typed answer.

use crate::*;
use dialboard_engine::FieldError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A view as the outside names it: its name (its path under `/analytics/`), the id its path
/// takes if any, and its own parameters besides the shared ones (range, timezone and
/// dimension filters).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct ViewSpec {
    pub name: &'static str,
    #[schema(required = true)]
    pub path_param: Option<&'static str>,
    #[schema(value_type = Vec<String>)]
    pub params: &'static [&'static str],
    /// Whether a saved question may move its range and filters (a scorecard, trends and
    /// coaching decide their own range from their own parameters).
    pub shared: bool,
}

const fn spec(
    name: &'static str,
    path_param: Option<&'static str>,
    params: &'static [&'static str],
    shared: bool,
) -> ViewSpec {
    ViewSpec {
        name,
        path_param,
        params,
        shared,
    }
}

/// Every view, in the order the catalogue lists them.
pub const VIEWS: [ViewSpec; 17] = [
    spec("metrics", None, &["compare"], true),
    spec("call-metrics", None, &["compare", "granularity"], true),
    spec("dispositions", None, &[], true),
    spec("agent-scorecard", Some("agent_id"), &["period", "date"], false),
    spec("team-leaderboard", Some("team_id"), &["date", "sort_by", "limit"], true),
    spec("leaderboard", None, &["period", "sort_by", "limit"], true),
    spec("call-time-heatmap", None, &["metric"], true),
    spec("trends", Some("agent_id"), &["days"], false),
    spec("pipeline-funnel", None, &["group_by"], true),
    spec("lead-sources", None, &[], true),
    spec("conversion-funnel", None, &["period"], true),
    spec("lead-volume", None, &["period"], true),
    spec("intents", None, &[], true),
    spec("channels", None, &[], true),
    spec("campaigns", Some("id"), &["compare"], true),
    spec("coaching-opportunities", Some("team_id"), &["date"], false),
    spec("compliance", None, &["date"], true),
];

pub fn spec_of(name: &str) -> Option<&'static ViewSpec> {
    VIEWS.iter().find(|v| v.name == name)
}

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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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

impl ViewRequest {
    /// The request a view's URL asks for: its name, the id in its path (an agent, a team, a
    /// campaign) and its query string, whose values are all text. Unknown parameters and
    /// malformed numbers are errors naming the parameter; the view checks the rest.
    pub fn from_query(
        name: &str,
        id: Option<&str>,
        query: &HashMap<String, String>,
    ) -> Result<ViewRequest, Vec<FieldError>> {
        let Some(spec) = spec_of(name) else {
            let names: Vec<&str> = VIEWS.iter().map(|v| v.name).collect();
            return Err(vec![FieldError::new(
                "view",
                format!("must be one of {}", names.join(", ")),
            )]);
        };
        let (shared, mut own) = Shared::from_query(query, spec.params)?;
        let id = id.unwrap_or_default().to_string();
        let own = &mut own;
        let whole = |own: &mut crate::params::Own, name: &str| own.whole(name).map_err(|e| vec![e]);
        use ViewRequest as R;
        Ok(match spec.name {
            "metrics" => R::Metrics(MetricsParams {
                shared,
                compare: own.text("compare"),
            }),
            "call-metrics" => R::CallMetrics(CallMetricsParams {
                shared,
                compare: own.text("compare"),
                granularity: own.text("granularity"),
            }),
            "dispositions" => R::Dispositions(DispositionsParams { shared }),
            "agent-scorecard" => R::AgentScorecard(ScorecardParams {
                agent_id: id,
                shared,
                period: own.text("period"),
                date: own.text("date"),
            }),
            "team-leaderboard" => R::TeamLeaderboard(TeamLeaderboardParams {
                team_id: id,
                shared,
                date: own.text("date"),
                sort_by: own.text("sort_by"),
                limit: whole(own, "limit")?,
            }),
            "leaderboard" => R::Leaderboard(TenantLeaderboardParams {
                shared,
                period: own.text("period"),
                sort_by: own.text("sort_by"),
                limit: whole(own, "limit")?,
            }),
            "call-time-heatmap" => R::CallTimeHeatmap(HeatmapParams {
                shared,
                metric: own.text("metric"),
            }),
            "trends" => R::Trends(TrendsParams {
                agent_id: id,
                shared,
                days: whole(own, "days")?,
            }),
            "pipeline-funnel" => R::PipelineFunnel(PipelineParams {
                shared,
                group_by: own.text("group_by"),
            }),
            "lead-sources" => R::LeadSources(LeadSourcesParams { shared }),
            "conversion-funnel" => R::ConversionFunnel(ConversionParams {
                shared,
                period: own.text("period"),
            }),
            "lead-volume" => R::LeadVolume(LeadVolumeParams {
                shared,
                period: own.text("period"),
            }),
            "intents" => R::Intents(IntentsParams { shared }),
            "channels" => R::Channels(ChannelsParams { shared }),
            "campaigns" => R::Campaigns(CampaignParams {
                campaign_id: id,
                shared,
                compare: own.text("compare"),
            }),
            "coaching-opportunities" => R::CoachingOpportunities(CoachingParams {
                team_id: id,
                shared,
                date: own.text("date"),
            }),
            "compliance" => R::Compliance(ComplianceParams {
                shared,
                date: own.text("date"),
            }),
            other => unreachable!("'{other}' is in VIEWS without a request"),
        })
    }
}

impl ViewAnswer {
    /// Reads back the JSON of an answer to `request` (a report's result as the API gave it):
    /// the view decides the shape, so the untagged answer needs no guessing.
    pub fn from_json(request: &ViewRequest, json: serde_json::Value) -> Result<ViewAnswer, serde_json::Error> {
        use serde_json::from_value as read;
        use ViewAnswer as A;
        Ok(match request {
            ViewRequest::Metrics(_) => A::Metrics(read(json)?),
            ViewRequest::CallMetrics(_) => A::CallMetrics(read(json)?),
            ViewRequest::Dispositions(_) => A::Dispositions(read(json)?),
            ViewRequest::AgentScorecard(_) => A::AgentScorecard(read(json)?),
            ViewRequest::TeamLeaderboard(_) | ViewRequest::Leaderboard(_) => A::Leaderboard(read(json)?),
            ViewRequest::CallTimeHeatmap(_) => A::CallTimeHeatmap(read(json)?),
            ViewRequest::Trends(_) => A::Trends(read(json)?),
            ViewRequest::PipelineFunnel(_) => A::PipelineFunnel(read(json)?),
            ViewRequest::LeadSources(_) => A::LeadSources(read(json)?),
            ViewRequest::ConversionFunnel(_) => A::ConversionFunnel(read(json)?),
            ViewRequest::LeadVolume(_) => A::LeadVolume(read(json)?),
            ViewRequest::Intents(_) => A::Intents(read(json)?),
            ViewRequest::Channels(_) => A::Channels(read(json)?),
            ViewRequest::Campaigns(_) => A::Campaigns(read(json)?),
            ViewRequest::CoachingOpportunities(_) => A::CoachingOpportunities(read(json)?),
            ViewRequest::Compliance(_) => A::Compliance(read(json)?),
        })
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

    #[test]
    fn every_view_reads_its_query_string_and_refuses_what_is_not_its_own() {
        let query = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        for spec in VIEWS {
            let request = ViewRequest::from_query(spec.name, Some("x"), &query(&[("preset", "today")])).unwrap();
            assert_eq!(request.name(), spec.name);
            assert_eq!(request.shared().preset.as_deref(), Some("today"));
            let stored = serde_json::to_value(&request).unwrap();
            if let Some(id) = spec.path_param {
                let field = if id == "id" { "campaign_id" } else { id };
                assert_eq!(stored["params"][field], "x", "{stored}");
            }
            let errors = ViewRequest::from_query(spec.name, None, &query(&[("colour", "red")])).unwrap_err();
            assert_eq!(errors[0].field, "colour");
        }
        let request = ViewRequest::from_query(
            "leaderboard",
            None,
            &query(&[("limit", "5"), ("period", "week"), ("campaign", "a,b")]),
        )
        .unwrap();
        let ViewRequest::Leaderboard(p) = &request else {
            panic!("{request:?}")
        };
        assert_eq!((p.limit, p.period.as_deref()), (Some(5), Some("week")));
        assert_eq!(p.shared.filters["campaign"], vec!["a", "b"]);
        let errors = ViewRequest::from_query("trends", Some("a1"), &query(&[("days", "many")])).unwrap_err();
        assert_eq!(errors[0].field, "days");
        let errors = ViewRequest::from_query("nope", None, &query(&[])).unwrap_err();
        assert_eq!(errors[0].field, "view");
    }
}
