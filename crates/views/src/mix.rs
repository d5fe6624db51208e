//! What the work is made of: intents, channels, and one campaign's outcomes and returns.

use crate::params::Shared;
use crate::types::{
    comparison_of, measures, metric, range_asked, range_of, Measures, Metric, QueryComparison, Range, RangeAsked,
};
use crate::view::{by_key, compare, num, percent, records, View};
use crate::{Cx, ViewError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntentsParams {
    #[serde(flatten)]
    pub shared: Shared,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntentEntry {
    pub intent: String,
    pub calls: Metric,
    pub conversations: Metric,
    pub total: i64,
    #[schema(required = true)]
    pub percent: Option<f64>,
}

/// `GET /analytics/intents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntentsView {
    pub range: RangeAsked,
    pub total: i64,
    pub intents: Vec<IntentEntry>,
}

/// Calls (from call analysis) and conversations by intent, most frequent first.
pub async fn intents(cx: &Cx, p: &IntentsParams) -> Result<IntentsView, ViewError> {
    let view = View::new(cx, &p.shared, "last_30_days")?;
    let result = view
        .run(view.body(&["total_calls", "ticket_volume"], &["intent"], json!({})))
        .await?;
    let rows: Vec<Map<String, Value>> = records(&result)
        .into_iter()
        .filter(|r| r["intent"].is_string())
        .collect();
    let count = |r: &Map<String, Value>| num(r.get("total_calls")) + num(r.get("ticket_volume"));
    let total: f64 = rows.iter().map(count).sum();
    let mut out: Vec<IntentEntry> = rows
        .iter()
        .map(|r| IntentEntry {
            intent: r["intent"].as_str().unwrap_or_default().to_string(),
            calls: metric(r.get("total_calls")),
            conversations: metric(r.get("ticket_volume")),
            total: count(r) as i64,
            percent: percent(count(r), total),
        })
        .collect();
    out.sort_by(|a, b| (b.total as f64).total_cmp(&(a.total as f64)));
    Ok(IntentsView {
        range: range_asked(view.base.get("range")),
        total: total as i64,
        intents: out,
    })
}

const CHANNEL_MEASURES: [&str; 8] = [
    "ticket_volume",
    "avg_first_response_time",
    "median_first_response_time",
    "avg_resolution_time",
    "resolution_rate",
    "csat_avg",
    "csat_count",
    "csat_positive_rate",
];

const CHANNELS: [&str; 5] = ["voice", "email", "whatsapp", "chat", "sms"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelsParams {
    #[serde(flatten)]
    pub shared: Shared,
}

/// One channel's volume, response, resolution and CSAT; voice also counts its calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelEntry {
    pub channel: String,
    pub ticket_volume: Metric,
    pub avg_first_response_time: Metric,
    pub median_first_response_time: Metric,
    pub avg_resolution_time: Metric,
    pub resolution_rate: Metric,
    pub csat_avg: Metric,
    pub csat_count: Metric,
    pub csat_positive_rate: Metric,
    /// Voice only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<Metric>,
    /// Voice only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_calls: Option<Metric>,
}

/// `GET /analytics/channels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelsView {
    pub range: RangeAsked,
    pub channels: Vec<ChannelEntry>,
    pub totals: Measures,
}

/// Volume, first response, resolution and CSAT per channel.
pub async fn channels(cx: &Cx, p: &ChannelsParams) -> Result<ChannelsView, ViewError> {
    let view = View::new(cx, &p.shared, "last_30_days")?;
    let result = view.run(view.body(&CHANNEL_MEASURES, &["channel"], json!({}))).await?;
    let calls = view
        .run(view.body(&["total_calls", "connected_calls"], &[], json!({})))
        .await?;
    let rows = by_key(&result, "channel");
    let out = CHANNELS
        .iter()
        .map(|c| {
            let m = |name: &str| metric(rows.get(*c).and_then(|r| r.get(name)));
            let voice = |name: &str| (*c == "voice").then(|| metric(calls["totals"].get(name)));
            ChannelEntry {
                channel: c.to_string(),
                ticket_volume: m("ticket_volume"),
                avg_first_response_time: m("avg_first_response_time"),
                median_first_response_time: m("median_first_response_time"),
                avg_resolution_time: m("avg_resolution_time"),
                resolution_rate: m("resolution_rate"),
                csat_avg: m("csat_avg"),
                csat_count: m("csat_count"),
                csat_positive_rate: m("csat_positive_rate"),
                calls: voice("total_calls"),
                connected_calls: voice("connected_calls"),
            }
        })
        .collect();
    Ok(ChannelsView {
        range: range_asked(view.base.get("range")),
        channels: out,
        totals: measures(&result["totals"]),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignParams {
    pub campaign_id: String,
    #[serde(flatten)]
    pub shared: Shared,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JourneyStage {
    pub stage: String,
    pub contacts: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignIntent {
    pub intent: String,
    pub total_calls: Metric,
}

/// `GET /analytics/campaigns/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignView {
    pub campaign_id: String,
    pub name: String,
    pub range: Range,
    pub metrics: Measures,
    #[schema(required = true)]
    pub comparison: Option<QueryComparison>,
    pub journey: Vec<JourneyStage>,
    pub intents: Vec<CampaignIntent>,
    /// The directory's cost of the whole campaign.
    #[schema(required = true)]
    pub cost: Option<f64>,
    pub leads: i64,
    #[schema(required = true)]
    pub cost_per_lead: Option<f64>,
    /// Why `cost_per_lead` is null.
    #[schema(required = true)]
    pub cost_per_lead_unavailable: Option<String>,
    #[schema(required = true)]
    pub roi_percent: Option<f64>,
    /// Why `roi_percent` is null.
    #[schema(required = true)]
    pub roi_unavailable: Option<String>,
}

const CAMPAIGN_MEASURES: [&str; 10] = [
    "total_calls",
    "connected_calls",
    "connect_rate",
    "meetings_booked",
    "meeting_booked_rate",
    "avg_call_score",
    "revenue",
    "deals_won",
    "avg_deal_size",
    "revenue_per_call",
];

/// A campaign's calls, outcomes, funnel, revenue, intents, cost per lead and ROI (against the
/// directory's campaign cost).
pub async fn campaign(cx: &Cx, p: &CampaignParams) -> Result<CampaignView, ViewError> {
    let id = &p.campaign_id;
    let mut view = View::new(cx, &p.shared, "last_30_days")?;
    view.source("filters.campaign", "id");
    if p.compare.is_some() {
        view.source("compare", "compare");
    }
    let filter = json!({"filters": {"campaign": [id]}, "compare": compare(p.compare.as_deref())?});
    let overview = view.run(view.body(&CAMPAIGN_MEASURES, &[], filter)).await?;
    let campaign_only = json!({"filters": {"campaign": [id]}});
    let stages = view
        .run(view.body(&["contacts_reached"], &["stage"], campaign_only.clone()))
        .await?;
    let intents = view
        .run(view.body(&["total_calls"], &["intent"], campaign_only))
        .await?;
    let directory = view.directory().await?;
    let entry = directory.campaigns.get(id);
    let reached = by_key(&stages, "stage");
    let contacts = |s: &str| num(reached.get(s).and_then(|r| r.get("contacts_reached")));
    let first = cx.tenant.settings.stages.first().cloned().unwrap_or_default();
    let leads = contacts(&first);
    let cost = entry.and_then(|c| c.cost);
    // The directory's cost is the whole campaign's: a narrower scope has no cost of its own.
    let narrowed = !cx.reach.sees_everyone()
        || view.base["filters"]
            .as_object()
            .is_some_and(|f| f.keys().any(|d| d != "campaign"));
    let returns = Returns {
        cost: match cost {
            None => Err("no campaign cost in the directory"),
            Some(_) if narrowed => {
                Err("the directory's cost is the whole campaign's, not this team's, agent's or filter's")
            }
            Some(c) => Ok(c),
        },
        leads,
        revenue: revenue_known(&overview["totals"]),
    };
    Ok(CampaignView {
        campaign_id: id.clone(),
        name: entry.map_or(id.as_str(), |c| c.name.as_str()).to_string(),
        range: range_of(&overview["range"]),
        metrics: measures(&overview["totals"]),
        comparison: comparison_of(&overview),
        journey: cx
            .tenant
            .settings
            .stages
            .iter()
            .map(|s| JourneyStage {
                stage: s.clone(),
                contacts: contacts(s) as i64,
            })
            .collect(),
        intents: records(&intents)
            .into_iter()
            .filter_map(|r| {
                Some(CampaignIntent {
                    intent: r["intent"].as_str()?.to_string(),
                    total_calls: metric(r.get("total_calls")),
                })
            })
            .collect(),
        cost,
        leads: leads as i64,
        cost_per_lead: returns.cost_per_lead().ok(),
        cost_per_lead_unavailable: returns.cost_per_lead().err().map(String::from),
        roi_percent: returns.roi_percent().ok(),
        roi_unavailable: returns.roi_percent().err().map(String::from),
    })
}

/// What a campaign's cost per lead and ROI are computed from, each known or not (and why not):
/// a number that cannot be computed is `null` with its reason, never −100%.
struct Returns {
    cost: Result<f64, &'static str>,
    leads: f64,
    revenue: Result<f64, &'static str>,
}

impl Returns {
    fn cost_per_lead(&self) -> Result<f64, &'static str> {
        let cost = self.cost?;
        if self.leads > 0.0 {
            Ok(cost / self.leads)
        } else {
            Err("no leads in this range")
        }
    }

    fn roi_percent(&self) -> Result<f64, &'static str> {
        let cost = self.cost?;
        let revenue = self.revenue?;
        if cost > 0.0 {
            Ok((revenue - cost) / cost * 100.0)
        } else {
            Err("the campaign cost nothing")
        }
    }
}

/// The revenue of `totals`, if any is known: not for filters the pipeline's stages lack, nor
/// before a deal with an amount is won in the range (a return of −100% would only say that).
fn revenue_known(totals: &Value) -> Result<f64, &'static str> {
    let revenue = totals["revenue"]
        .as_f64()
        .ok_or("no revenue can be computed for these filters")?;
    if totals["avg_deal_size"].is_null() {
        return Err("no deal with an amount was won in this range");
    }
    Ok(revenue)
}
