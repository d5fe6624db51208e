//! The pipeline's views: the seed's FunnelMetrics by group, the lead source report, the
//! conversion funnel through the tenant's stages and lead volume over time.

use crate::params::Shared;
use crate::types::{metric, range_asked, Metric, RangeAsked};
use crate::view::{by_key, choice, num, percent, records, View};
use crate::{Cx, ViewError};
use dialboard_store::TenantInfo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The funnel steps: calls, connects, then the tenant's stages (a lost deal is an outcome, not
/// a step).
fn steps(tenant: &TenantInfo) -> Vec<String> {
    ["calls", "connects"]
        .into_iter()
        .map(String::from)
        .chain(tenant.settings.stages.iter().filter(|s| *s != "closed_lost").cloned())
        .collect()
}

fn conversions(steps: &[String], counts: &Map<String, Value>) -> BTreeMap<String, Option<f64>> {
    let mut out = BTreeMap::new();
    for pair in steps.windows(2) {
        out.insert(
            format!("{}_to_{}", pair[0], pair[1]),
            percent(num(counts.get(&pair[1])), num(counts.get(&pair[0]))),
        );
    }
    if let Some(last) = steps.last() {
        out.insert(
            format!("calls_to_{last}"),
            percent(num(counts.get(last)), num(counts.get("calls"))),
        );
    }
    out
}

/// Calls and revenue per group, in one query (both facts have every grouping). Contacts keep a
/// group without calls or revenue in the rows, so its revenue reads 0 rather than missing.
const CALLS_AND_REVENUE: [&str; 9] = [
    "total_calls",
    "connected_calls",
    "revenue",
    "deals_won",
    "avg_deal_size",
    "revenue_per_call",
    "revenue_per_connect",
    "contacts_reached",
    "avg_days_to_meeting",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunnelRevenue {
    pub total_closed_won: Metric,
    pub deals_won: Metric,
    pub avg_deal_size: Metric,
    pub revenue_per_call: Metric,
    pub revenue_per_connect: Metric,
}

/// The seed's FunnelMetrics for one group (or overall, `group` null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunnelMetrics {
    #[schema(required = true)]
    pub group: Option<String>,
    /// Calls, connects, then contacts reaching each stage (and `closed_lost`).
    pub stages: BTreeMap<String, i64>,
    /// `<step>_to_<next step>` and `calls_to_<last step>`, in percent.
    pub conversion_rates: BTreeMap<String, Option<f64>>,
    pub avg_days_first_call_to_meeting: Metric,
    pub revenue: FunnelRevenue,
}

/// The funnel per group (campaign, lead source or agent) and overall.
async fn funnel(view: &View<'_>, group: &str) -> Result<(Vec<FunnelMetrics>, FunnelMetrics), ViewError> {
    let (stages, revenue) = tokio::try_join!(
        view.run(view.body(&["contacts_reached"], &[group, "stage"], json!({}))),
        view.run(view.body(&CALLS_AND_REVENUE, &[group], json!({}))),
    )?;
    let steps = steps(&view.cx.tenant);
    let mut groups: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut overall = Map::new();
    let key = |r: &Map<String, Value>| r[group].as_str().unwrap_or("(none)").to_string();
    for r in records(&revenue) {
        let g = groups.entry(key(&r)).or_default();
        g.insert("calls".into(), r["total_calls"].clone());
        g.insert("connects".into(), r["connected_calls"].clone());
    }
    overall.insert("calls".into(), revenue["totals"]["total_calls"].clone());
    overall.insert("connects".into(), revenue["totals"]["connected_calls"].clone());
    for r in records(&stages) {
        let stage = r["stage"].as_str().unwrap_or_default().to_string();
        let n = num(r.get("contacts_reached"));
        groups
            .entry(key(&r))
            .or_default()
            .insert(stage.clone(), json!(n as i64));
        let total = num(overall.get(&stage)) + n;
        overall.insert(stage, json!(total as i64));
    }
    let revenue_rows = by_key(&revenue, group);
    let shape = |name: Option<String>, counts: &Map<String, Value>, money: &Value| FunnelMetrics {
        group: name,
        stages: steps
            .iter()
            .chain(std::iter::once(&"closed_lost".to_string()))
            .map(|s| (s.clone(), num(counts.get(s)) as i64))
            .collect(),
        conversion_rates: conversions(&steps, counts),
        avg_days_first_call_to_meeting: metric(money.get("avg_days_to_meeting")),
        revenue: FunnelRevenue {
            total_closed_won: metric(money.get("revenue")),
            deals_won: metric(money.get("deals_won")),
            avg_deal_size: metric(money.get("avg_deal_size")),
            revenue_per_call: metric(money.get("revenue_per_call")),
            revenue_per_connect: metric(money.get("revenue_per_connect")),
        },
    };
    let entries = groups
        .iter()
        .map(|(g, counts)| {
            // A group without a revenue row reads null in every field.
            let money = revenue_rows.get(g).map_or(Value::Null, |r| Value::Object(r.clone()));
            shape((g != "(none)").then(|| g.clone()), counts, &money)
        })
        .collect();
    Ok((entries, shape(None, &overall, &revenue["totals"])))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineParams {
    #[serde(flatten)]
    pub shared: Shared,
    /// `campaign` (default), `lead_source` or `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
}

/// `GET /analytics/pipeline-funnel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineFunnelView {
    pub group_by: String,
    pub range: RangeAsked,
    pub steps: Vec<String>,
    pub overall: FunnelMetrics,
    pub groups: Vec<FunnelMetrics>,
}

/// Calls to closed-won by campaign, lead source or agent.
pub async fn pipeline_funnel(cx: &Cx, p: &PipelineParams) -> Result<PipelineFunnelView, ViewError> {
    let view = View::new(cx, &p.shared, "last_30_days")?;
    let group = choice("group_by", p.group_by.as_deref(), &["campaign", "lead_source", "agent"])?;
    let (groups, overall) = funnel(&view, group).await?;
    Ok(PipelineFunnelView {
        group_by: group.into(),
        range: range_asked(view.base.get("range")),
        steps: steps(&cx.tenant),
        overall,
        groups,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadSourcesParams {
    #[serde(flatten)]
    pub shared: Shared,
}

/// One lead source: its funnel, leads (contacts reaching the first stage) and the share of
/// them won.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadSource {
    #[serde(flatten)]
    pub funnel: FunnelMetrics,
    pub total_leads: i64,
    #[schema(required = true)]
    pub conversion_rate: Option<f64>,
}

/// `GET /analytics/lead-sources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadSourcesView {
    pub range: RangeAsked,
    pub lead_stage: String,
    pub overall: FunnelMetrics,
    pub lead_sources: Vec<LeadSource>,
}

/// The funnel by lead source, best revenue first.
pub async fn lead_sources(cx: &Cx, p: &LeadSourcesParams) -> Result<LeadSourcesView, ViewError> {
    let view = View::new(cx, &p.shared, "last_30_days")?;
    let (groups, overall) = funnel(&view, "lead_source").await?;
    let first = cx.tenant.settings.stages.first().cloned().unwrap_or_default();
    let mut sources: Vec<LeadSource> = groups
        .into_iter()
        .map(|funnel| {
            let leads = funnel.stages.get(&first).copied().unwrap_or(0);
            let won = funnel.revenue.deals_won.as_f64().unwrap_or(0.0);
            LeadSource {
                total_leads: leads,
                conversion_rate: percent(won, leads as f64),
                funnel,
            }
        })
        .collect();
    let revenue = |s: &LeadSource| s.funnel.revenue.total_closed_won.as_f64().unwrap_or(0.0);
    sources.sort_by(|a, b| revenue(b).total_cmp(&revenue(a)));
    Ok(LeadSourcesView {
        range: range_asked(view.base.get("range")),
        lead_stage: first,
        overall,
        lead_sources: sources,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversionParams {
    #[serde(flatten)]
    pub shared: Shared,
    /// `month` (default), `week`, `today` or `quarter`; overrides the shared range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversionStage {
    pub stage: String,
    pub contacts: i64,
    #[schema(required = true)]
    pub conversion_from_previous: Option<f64>,
    #[schema(required = true)]
    pub conversion_from_first: Option<f64>,
}

/// `GET /analytics/conversion-funnel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversionFunnelView {
    pub range: RangeAsked,
    pub stages: Vec<ConversionStage>,
}

/// Contacts reaching each of the tenant's stages, and the conversion from one to the next.
pub async fn conversion_funnel(cx: &Cx, p: &ConversionParams) -> Result<ConversionFunnelView, ViewError> {
    let mut view = View::new(cx, &p.shared, "this_month")?;
    if p.period.is_some() {
        let preset = match choice("period", p.period.as_deref(), &["month", "week", "today", "quarter"])? {
            "month" => "this_month",
            "week" => "this_week",
            "quarter" => "this_quarter",
            p => p,
        };
        view.set_range(json!({ "preset": preset }), "period");
    }
    let result = view
        .run(view.body(&["contacts_reached"], &["stage"], json!({})))
        .await?;
    let counts = by_key(&result, "stage");
    let stages = &cx.tenant.settings.stages;
    let reached = |s: &str| num(counts.get(s).and_then(|r| r.get("contacts_reached")));
    let out = stages
        .iter()
        .enumerate()
        .map(|(i, s)| ConversionStage {
            stage: s.clone(),
            contacts: reached(s) as i64,
            conversion_from_previous: (i > 0).then(|| percent(reached(s), reached(&stages[i - 1]))).flatten(),
            conversion_from_first: percent(reached(s), reached(&stages[0])),
        })
        .collect();
    Ok(ConversionFunnelView {
        range: range_asked(view.base.get("range")),
        stages: out,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadVolumeParams {
    #[serde(flatten)]
    pub shared: Shared,
    /// `30d` (default), `7d` or `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadVolumePoint {
    pub time: String,
    pub new_leads: i64,
    pub conversions: i64,
}

/// `GET /analytics/lead-volume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadVolumeView {
    pub period: String,
    pub granularity: String,
    pub range: RangeAsked,
    pub lead_stage: String,
    pub series: Vec<LeadVolumePoint>,
}

/// New leads (contacts reaching the first stage) and conversions (deals won), hourly over 24
/// hours, else daily.
pub async fn lead_volume(cx: &Cx, p: &LeadVolumeParams) -> Result<LeadVolumeView, ViewError> {
    let mut view = View::new(cx, &p.shared, "last_30_days")?;
    let period = choice("period", p.period.as_deref(), &["30d", "7d", "24h"])?;
    let granularity = match period {
        "24h" => {
            let end = view.zone.next_hour_start(cx.now);
            let fmt = |t: i64| {
                view.zone
                    .checked_zoned(t)
                    .map(|z| z.timestamp().to_string())
                    .unwrap_or_default()
            };
            let last_day = json!({"start": fmt(end - 86_400), "end": fmt(end)});
            view.set_range(last_day, "period");
            "hour"
        }
        "7d" => {
            view.set_range(json!({"preset": "last_7_days"}), "period");
            "day"
        }
        _ => {
            if p.period.is_some() {
                view.set_range(json!({"preset": "last_30_days"}), "period");
            }
            "day"
        }
    };
    let result = view
        .run(view.body(
            &["contacts_reached", "deals_won"],
            &["stage"],
            json!({ "granularity": granularity }),
        ))
        .await?;
    let first = cx.tenant.settings.stages.first().cloned().unwrap_or_default();
    let mut series: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in records(&result) {
        let Some(t) = r["time"].as_str() else { continue };
        let point = series.entry(t.to_string()).or_default();
        if r["stage"].as_str() == Some(first.as_str()) {
            point.0 += num(r.get("contacts_reached")) as i64;
        }
        point.1 += num(r.get("deals_won")) as i64;
    }
    Ok(LeadVolumeView {
        period: period.into(),
        granularity: granularity.into(),
        range: range_asked(view.base.get("range")),
        lead_stage: first,
        series: series
            .into_iter()
            .map(|(time, (new_leads, conversions))| LeadVolumePoint {
                time,
                new_leads,
                conversions,
            })
            .collect(),
    })
}
