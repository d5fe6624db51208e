//! The overview's views: today's KPIs, volume over time, dispositions and the call-time heatmap.

use crate::params::Shared;
use crate::types::{compared_range, measures, metric, range_of, ComparedRange, Measures, Metric, Period, Range};
use crate::view::{choice, compare, from_record, num, percent, records, View};
use crate::{Cx, ViewError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The resolved range of a query's answer, its zone and totals.
pub(crate) fn period(view: &View, result: &Value) -> Period {
    Period {
        range: range_of(&result["range"]),
        timezone: view.zone_name(),
        totals: measures(&result["totals"]),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricsParams {
    #[serde(flatten)]
    pub shared: Shared,
    /// `previous_period` (default), `same_period_last_year` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
}

/// One KPI with its value in the compared period and the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Kpi {
    pub metric: String,
    pub value: Metric,
    pub previous: Metric,
    pub change_percent: Metric,
}

/// `GET /analytics/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricsView {
    pub range: Range,
    #[schema(required = true)]
    pub comparison: Option<ComparedRange>,
    pub timezone: String,
    pub kpis: Vec<Kpi>,
}

const KPIS: [&str; 10] = [
    "total_calls",
    "connected_calls",
    "connect_rate",
    "meetings_booked",
    "meeting_booked_rate",
    "total_talk_time",
    "ticket_volume",
    "avg_first_response_time",
    "resolution_rate",
    "deals_won",
];

/// Today's KPIs (by default) with their change against the previous period, and the agents
/// active (with calls or logged-in time).
pub async fn metrics(cx: &Cx, p: &MetricsParams) -> Result<MetricsView, ViewError> {
    let mut view = View::new(cx, &p.shared, "today")?;
    if p.compare.is_some() {
        view.source("compare", "compare");
    }
    let compare = compare(p.compare.as_deref())?;
    let kpis = view.run(view.body(&KPIS, &[], json!({"compare": compare}))).await?;
    let agents = view
        .run(view.body(
            &["total_calls", "active_hours"],
            &["agent"],
            json!({"compare": compare}),
        ))
        .await?;
    let active = |rows: &Value| {
        rows.as_array().map_or(0, |r| {
            r.iter().filter(|r| num(r.get(1)) > 0.0 || num(r.get(2)) > 0.0).count()
        })
    };
    let mut out: Vec<Kpi> = KPIS
        .iter()
        .map(|m| Kpi {
            metric: m.to_string(),
            value: metric(kpis["totals"].get(m)),
            previous: metric(kpis["comparison"]["totals"].get(m)),
            change_percent: metric(kpis["comparison"]["change_percent"].get(m)),
        })
        .collect();
    let (now_active, before_active) = (active(&agents["rows"]), active(&agents["comparison"]["rows"]));
    let compared = agents.get("comparison").is_some();
    out.push(Kpi {
        metric: "active_agents".into(),
        value: Metric(Some(now_active.into())),
        previous: Metric(compared.then(|| before_active.into())),
        change_percent: Metric(
            compared
                .then(|| change(now_active as f64, before_active as f64))
                .flatten()
                .and_then(serde_json::Number::from_f64),
        ),
    });
    Ok(MetricsView {
        range: range_of(&kpis["range"]),
        comparison: compared_range(&kpis),
        timezone: view.zone_name(),
        kpis: out,
    })
}

fn change(now: f64, before: f64) -> Option<f64> {
    (before != 0.0).then(|| (now - before) / before.abs() * 100.0)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallMetricsParams {
    #[serde(flatten)]
    pub shared: Shared,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
    /// `15m|hour|day|week|month|quarter`; hourly for today or yesterday, else daily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
}

/// One time bucket of call volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallPoint {
    /// The bucket's local start (RFC 3339 with its offset).
    pub time: String,
    pub total_calls: Metric,
    pub connected_calls: Metric,
    pub meetings_booked: Metric,
    pub connect_rate: Metric,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallMetricsComparison {
    pub range: Range,
    pub series: Vec<CallPoint>,
    pub totals: Measures,
    pub change_percent: Measures,
}

/// `GET /analytics/call-metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallMetricsView {
    pub granularity: String,
    pub period: Period,
    pub series: Vec<CallPoint>,
    #[schema(required = true)]
    pub comparison: Option<CallMetricsComparison>,
}

/// Volume, connects, meetings and connect rate over time (hourly for a day, daily for
/// longer), with the comparison period's series.
pub async fn call_metrics(cx: &Cx, p: &CallMetricsParams) -> Result<CallMetricsView, ViewError> {
    let mut view = View::new(cx, &p.shared, "today")?;
    if p.compare.is_some() {
        view.source("compare", "compare");
    }
    if p.granularity.is_some() {
        view.source("granularity", "granularity");
    }
    let one_day = matches!(view.base["range"]["preset"].as_str(), Some("today" | "yesterday"));
    let granularity = match &p.granularity {
        Some(g) => g.clone(),
        None if one_day => "hour".into(),
        None => "day".into(),
    };
    let measures_asked = ["total_calls", "connected_calls", "meetings_booked", "connect_rate"];
    let result = view
        .run(view.body(
            &measures_asked,
            &[],
            json!({"granularity": granularity, "compare": compare(p.compare.as_deref())?}),
        ))
        .await?;
    let series = |r: &Value| records(r).into_iter().map(from_record).collect();
    Ok(CallMetricsView {
        period: period(&view, &result),
        series: series(&result),
        comparison: result.get("comparison").map(|c| CallMetricsComparison {
            range: range_of(&c["range"]),
            series: series(c),
            totals: measures(&c["totals"]),
            change_percent: measures(&c["change_percent"]),
        }),
        granularity,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DispositionsParams {
    #[serde(flatten)]
    pub shared: Shared,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DispositionShare {
    #[schema(required = true)]
    pub disposition: Option<String>,
    pub total_calls: i64,
    #[schema(required = true)]
    pub percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DispositionCategory {
    pub category: String,
    pub total_calls: i64,
    #[schema(required = true)]
    pub percent: Option<f64>,
    pub dispositions: Vec<DispositionShare>,
}

/// `GET /analytics/dispositions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DispositionsView {
    pub period: Period,
    pub total_calls: i64,
    pub categories: Vec<DispositionCategory>,
}

/// Calls by category and disposition, with shares.
pub async fn dispositions(cx: &Cx, p: &DispositionsParams) -> Result<DispositionsView, ViewError> {
    let view = View::new(cx, &p.shared, "today")?;
    let result = view
        .run(view.body(&["total_calls"], &["disposition_category", "disposition"], json!({})))
        .await?;
    let total = num(result["totals"].get("total_calls"));
    let mut categories: BTreeMap<String, (f64, Vec<DispositionShare>)> = BTreeMap::new();
    for r in records(&result) {
        let category = r["disposition_category"]
            .as_str()
            .unwrap_or("uncategorized")
            .to_string();
        let calls = num(r.get("total_calls"));
        let entry = categories.entry(category).or_default();
        entry.0 += calls;
        entry.1.push(DispositionShare {
            disposition: r["disposition"].as_str().map(String::from),
            total_calls: calls as i64,
            percent: percent(calls, total),
        });
    }
    Ok(DispositionsView {
        period: period(&view, &result),
        total_calls: total as i64,
        categories: categories
            .into_iter()
            .map(|(category, (calls, dispositions))| DispositionCategory {
                category,
                total_calls: calls as i64,
                percent: percent(calls, total),
                dispositions,
            })
            .collect(),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeatmapParams {
    #[serde(flatten)]
    pub shared: Shared,
    /// `connect_rate` (default) or `calls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeatmapCell {
    /// 1–7, Monday = 1.
    pub day_of_week: usize,
    pub hour_of_day: usize,
    pub value: Metric,
    pub total_calls: Metric,
    pub connect_rate: Metric,
}

/// `GET /analytics/call-time-heatmap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeatmapView {
    /// The measure in `matrix` and `value`.
    pub metric: String,
    pub period: Period,
    pub days: Vec<String>,
    /// Day of week (Monday first) × hour of day.
    pub matrix: Vec<Vec<Metric>>,
    pub cells: Vec<HeatmapCell>,
}

/// Day of week × hour of day.
pub async fn heatmap(cx: &Cx, p: &HeatmapParams) -> Result<HeatmapView, ViewError> {
    let view = View::new(cx, &p.shared, "last_30_days")?;
    let metric_name = match choice("metric", p.metric.as_deref(), &["connect_rate", "calls"])? {
        "calls" => "total_calls",
        m => m,
    };
    let result = view
        .run(view.body(
            &["total_calls", "connect_rate"],
            &["day_of_week", "hour_of_day"],
            json!({}),
        ))
        .await?;
    let mut matrix: Vec<Vec<Metric>> = vec![vec![Metric::default(); 24]; 7];
    let cells = records(&result)
        .into_iter()
        .map(|r| {
            let (day, hour) = (num(r.get("day_of_week")) as usize, num(r.get("hour_of_day")) as usize);
            if (1..=7).contains(&day) && hour < 24 {
                matrix[day - 1][hour] = metric(r.get(metric_name));
            }
            HeatmapCell {
                day_of_week: day,
                hour_of_day: hour,
                value: metric(r.get(metric_name)),
                total_calls: metric(r.get("total_calls")),
                connect_rate: metric(r.get("connect_rate")),
            }
        })
        .collect();
    Ok(HeatmapView {
        metric: metric_name.into(),
        period: period(&view, &result),
        days: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .map(String::from)
            .to_vec(),
        matrix,
        cells,
    })
}
