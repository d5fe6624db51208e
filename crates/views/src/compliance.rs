//! Activity compliance: each rep's day against its activity targets.

use crate::params::Shared;
use crate::view::{days, range, records, shifted, View};
use crate::{Cx, ViewError};
use dialboard_store::ActivityTargets;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComplianceParams {
    #[serde(flatten)]
    pub shared: Shared,
    /// The local day; today by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actuals {
    pub calls: i64,
    pub connects: i64,
    pub talk_minutes: f64,
    #[schema(required = true)]
    pub idle_minutes: Option<f64>,
    #[schema(required = true)]
    pub dialing_hours: Option<f64>,
}

/// Each target's compliance in percent (100 = met).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComplianceParts {
    pub calls: f64,
    pub connects: f64,
    pub talk_time: f64,
    #[schema(required = true)]
    pub idle: Option<f64>,
    #[schema(required = true)]
    pub dialing_time: Option<f64>,
}

/// One rep's day (the seed's ActivityCompliance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentCompliance {
    pub agent_id: String,
    pub agent_name: String,
    pub date: String,
    #[schema(value_type = Object)]
    pub targets: ActivityTargets,
    pub actuals: Actuals,
    pub compliance: ComplianceParts,
    /// The mean of the known parts, each capped at 100.
    pub overall_compliance: f64,
    pub is_compliant: bool,
}

/// `GET /analytics/compliance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComplianceView {
    pub date: String,
    pub agents: Vec<AgentCompliance>,
}

/// Each agent's day against its activity targets.
pub async fn compliance(cx: &Cx, p: &ComplianceParams) -> Result<ComplianceView, ViewError> {
    let mut view = View::new(cx, &p.shared, "today")?;
    let date = view.date("date", p.date.as_deref())?;
    view.set_range(range(date, shifted(date, days(1), "date")?), "date");
    let result = view
        .run(view.body(
            &[
                "total_calls",
                "connected_calls",
                "total_talk_time",
                "idle_minutes",
                "active_hours",
            ],
            &["agent"],
            json!({}),
        ))
        .await?;
    let directory = view.directory().await?;
    let mut entries = Vec::new();
    for r in records(&result) {
        let Some(agent) = r["agent"].as_str().filter(|a| cx.reach.sees_individual(a)) else {
            continue;
        };
        let t = directory.targets(agent, &cx.tenant.settings.targets);
        let actual = |m: &str| r.get(m).and_then(Value::as_f64);
        let calls = actual("total_calls").unwrap_or(0.0);
        let connects = actual("connected_calls").unwrap_or(0.0);
        let talk_minutes = actual("total_talk_time").unwrap_or(0.0) / 60.0;
        let (idle, dialing) = (actual("idle_minutes"), actual("active_hours"));
        let at_least = |a: f64, target: f64| if target == 0.0 { 100.0 } else { a * 100.0 / target };
        let parts = ComplianceParts {
            calls: at_least(calls, t.min_calls),
            connects: at_least(connects, t.min_connects),
            talk_time: at_least(talk_minutes, t.min_talk_minutes),
            idle: idle.map(|i| {
                if i <= t.max_idle_minutes {
                    100.0
                } else {
                    t.max_idle_minutes * 100.0 / i
                }
            }),
            dialing_time: dialing.map(|d| at_least(d, t.min_dialing_hours)),
        };
        // Summed in the parts' names' order, as they were always summed (floating sums
        // depend on order).
        let known: Vec<f64> = [
            Some(parts.calls),
            Some(parts.connects),
            parts.dialing_time,
            parts.idle,
            Some(parts.talk_time),
        ]
        .into_iter()
        .flatten()
        .filter(|p| p.is_finite())
        .collect();
        let overall = known.iter().map(|p| p.min(100.0)).sum::<f64>() / known.len() as f64;
        entries.push(AgentCompliance {
            agent_id: agent.to_string(),
            agent_name: directory.agent_name(agent).to_string(),
            date: date.to_string(),
            targets: t.clone(),
            actuals: Actuals {
                calls: calls as i64,
                connects: connects as i64,
                talk_minutes,
                idle_minutes: idle,
                dialing_hours: dialing,
            },
            is_compliant: known.len() == 5 && known.iter().all(|p| *p >= 100.0),
            overall_compliance: overall,
            compliance: parts,
        });
    }
    Ok(ComplianceView {
        date: date.to_string(),
        agents: entries,
    })
}
