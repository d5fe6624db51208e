//! The seed's coaching rules over each rep of a team, with the tenant's thresholds.

use crate::params::Shared;
use crate::view::{by_key, days, num, range, records, View};
use crate::{Cx, ViewError};
use dialboard_store::{CallsRequest, CoachingThresholds};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One coaching rule: the measure it watches over which window, and how it triggers.
struct Rule {
    issue: &'static str,
    measure: &'static str,
    suggested_action: &'static str,
    /// Calls behind it: this drill-down filter over the last 7 days.
    related: Option<Value>,
}

fn rules() -> [Rule; 8] {
    let connected = Some(json!({"disposition_category": ["connected"]}));
    [
        Rule {
            issue: "low_connect_rate",
            measure: "connect_rate",
            suggested_action: "Review call timing, check list quality",
            related: Some(json!({"disposition_category": ["no_contact"]})),
        },
        Rule {
            issue: "low_call_score",
            measure: "avg_call_score",
            suggested_action: "Schedule 1:1 coaching, review low-scoring calls",
            related: Some(json!({"score_range": ["0-20", "20-40", "40-60"]})),
        },
        Rule {
            issue: "high_talk_ratio",
            measure: "avg_talk_ratio",
            suggested_action: "Practice active listening exercises",
            related: connected.clone(),
        },
        Rule {
            issue: "low_meeting_rate",
            measure: "meeting_booked_rate",
            suggested_action: "Review closing technique, offer talk track",
            related: connected.clone(),
        },
        Rule {
            issue: "high_filler_words",
            measure: "filler_word_rate",
            suggested_action: "Awareness training, practice pausing",
            related: connected.clone(),
        },
        Rule {
            issue: "declining_sentiment",
            measure: "avg_prospect_sentiment",
            suggested_action: "Review call recordings, identify pattern",
            related: connected,
        },
        Rule {
            issue: "below_call_volume",
            measure: "total_calls",
            suggested_action: "Check for blockers, adjust workload",
            related: None,
        },
        Rule {
            issue: "long_wrap_time",
            measure: "avg_wrapup_time",
            suggested_action: "Streamline disposition workflow, train on CRM",
            related: Some(json!({})),
        },
    ]
}

/// Severity from how far the value is past its target, relative to the target.
fn severity(value: f64, target: f64) -> &'static str {
    let gap = if target == 0.0 {
        1.0
    } else {
        ((value - target) / target).abs()
    };
    if gap >= 0.5 {
        "high"
    } else if gap >= 0.2 {
        "medium"
    } else {
        "low"
    }
}

/// Whether the value moved toward the good side since the previous period.
fn trend(now: Option<f64>, before: Option<f64>, higher_is_better: bool) -> &'static str {
    match (now, before) {
        (Some(n), Some(b)) if (n - b).abs() > 1e-9 * b.abs().max(1.0) => {
            if (n > b) == higher_is_better {
                "improving"
            } else {
                "declining"
            }
        }
        _ => "flat",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CoachingParams {
    pub team_id: String,
    #[serde(flatten)]
    pub shared: Shared,
    /// The day the rules look back from; today by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// One rule triggered for one rep (the seed's CoachingOpportunity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CoachingOpportunity {
    pub agent_id: String,
    pub agent_name: String,
    pub issue: String,
    /// `high`, `medium` or `low`.
    pub severity: String,
    pub metric: String,
    pub current_value: f64,
    pub target_value: f64,
    #[schema(required = true)]
    pub previous_value: Option<f64>,
    /// `improving`, `declining` or `flat`.
    pub trend: String,
    pub suggested_action: String,
    /// Up to five of the rep's latest calls of the last 7 days behind the rule.
    pub related_calls: Vec<String>,
}

/// `GET /analytics/coaching-opportunities/{team_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CoachingView {
    pub team_id: String,
    pub team_name: String,
    #[schema(value_type = Object)]
    pub thresholds: CoachingThresholds,
    /// Most severe first.
    pub opportunities: Vec<CoachingOpportunity>,
}

/// The seed's eight rules over each agent of the team, as of `date` (default today), with the
/// tenant's thresholds.
pub async fn coaching(cx: &Cx, p: &CoachingParams) -> Result<CoachingView, ViewError> {
    let team = &p.team_id;
    let mut view = View::new(cx, &p.shared, "last_7_days")?;
    view.source("filters.team", "team_id");
    view.source("range", "date");
    view.source("compare", "date");
    let today = view.date("date", p.date.as_deref())?;
    let team_only = json!([team]);
    let week_measures = [
        "avg_call_score",
        "avg_talk_ratio",
        "meeting_booked_rate",
        "filler_word_rate",
        "avg_prospect_sentiment",
        "avg_wrapup_time",
        "total_calls",
    ];
    let week = view
        .run(view.body(
            &week_measures,
            &["agent"],
            json!({"filters": {"team": team_only}, "range": range(today - days(6), today + days(1)), "compare": "previous_period"}),
        ))
        .await?;
    let two_days = view
        .run(view.body(
            &["connect_rate", "total_calls"],
            &["agent"],
            json!({"filters": {"team": team_only}, "range": range(today - days(1), today + days(1)), "compare": "previous_period"}),
        ))
        .await?;
    // The last three completed days.
    let volume = view
        .run(view.body(
            &["total_calls"],
            &["agent"],
            json!({"filters": {"team": team_only}, "range": range(today - days(3), today), "granularity": "day"}),
        ))
        .await?;
    let directory = view.directory().await?;
    let c = &cx.tenant.settings.coaching;
    let (week_now, week_before) = (by_key(&week, "agent"), by_key(&week["comparison"], "agent"));
    let (two_now, two_before) = (by_key(&two_days, "agent"), by_key(&two_days["comparison"], "agent"));
    let mut daily_volume: HashMap<String, Vec<f64>> = HashMap::new();
    for r in records(&volume) {
        if let Some(a) = r["agent"].as_str() {
            daily_volume
                .entry(a.to_string())
                .or_default()
                .push(num(r.get("total_calls")));
        }
    }
    let mut agents: BTreeSet<String> = week_now.keys().chain(two_now.keys()).cloned().collect();
    agents.extend(view.named_members(&directory, team).into_iter().map(String::from));
    agents.remove(crate::reach::ANONYMOUS);
    agents.retain(|a| cx.reach.sees_individual(a));
    let mut out: Vec<CoachingOpportunity> = Vec::new();
    // The agents each rule triggered for (with their entry), whose calls are read per rule.
    let mut related: HashMap<&str, Vec<(usize, String)>> = HashMap::new();
    for agent in &agents {
        let get = |rows: &BTreeMap<String, Map<String, Value>>, m: &str| {
            rows.get(agent).and_then(|r| r.get(m)).and_then(Value::as_f64)
        };
        for rule in rules() {
            let (value, before, target, triggered, higher_is_better) = match rule.issue {
                "low_connect_rate" => {
                    let v = get(&two_now, rule.measure);
                    (
                        v,
                        get(&two_before, rule.measure),
                        c.low_connect_rate,
                        v.is_some_and(|v| v < c.low_connect_rate),
                        true,
                    )
                }
                "below_call_volume" => {
                    let goal = directory.daily_goal(agent, &cx.tenant.settings.targets);
                    let target = goal * c.below_volume_percent / 100.0;
                    let days_seen = daily_volume.get(agent).cloned().unwrap_or_default();
                    // Days without calls are below any goal too.
                    let mut per_day = days_seen.clone();
                    per_day.resize(3, 0.0);
                    let total: f64 = days_seen.iter().sum();
                    (
                        Some(total / 3.0),
                        None,
                        target,
                        target > 0.0 && per_day.iter().all(|d| *d < target),
                        true,
                    )
                }
                "declining_sentiment" => {
                    let (v, b) = (get(&week_now, rule.measure), get(&week_before, rule.measure));
                    let target = b.map_or(0.0, |b| b - c.sentiment_decline);
                    (
                        v,
                        b,
                        target,
                        matches!((v, b), (Some(v), Some(b)) if v < b - c.sentiment_decline),
                        true,
                    )
                }
                issue => {
                    let v = get(&week_now, rule.measure);
                    let (target, high_is_bad) = match issue {
                        "low_call_score" => (c.low_call_score, false),
                        "high_talk_ratio" => (c.high_talk_ratio, true),
                        "low_meeting_rate" => (c.low_meeting_rate, false),
                        "high_filler_words" => (c.high_filler_words, true),
                        _ => (c.long_wrap_seconds, true),
                    };
                    let triggered = v.is_some_and(|v| if high_is_bad { v > target } else { v < target });
                    (v, get(&week_before, rule.measure), target, triggered, !high_is_bad)
                }
            };
            let Some(value) = value.filter(|_| triggered) else {
                continue;
            };
            if rule.related.is_some() {
                related.entry(rule.issue).or_default().push((out.len(), agent.clone()));
            }
            out.push(CoachingOpportunity {
                agent_id: agent.clone(),
                agent_name: directory.agent_name(agent).to_string(),
                issue: rule.issue.into(),
                severity: if rule.issue == "declining_sentiment" {
                    severity_of_drop(before.unwrap_or(value) - value, c.sentiment_decline)
                } else {
                    severity(value, target)
                }
                .into(),
                metric: rule.measure.into(),
                current_value: value,
                target_value: target,
                previous_value: before,
                trend: trend(Some(value), before, higher_is_better).into(),
                suggested_action: rule.suggested_action.into(),
                related_calls: vec![],
            });
        }
    }
    for rule in rules() {
        if let (Some(filter), Some(wanted)) = (&rule.related, related.remove(rule.issue)) {
            let agents = wanted.iter().map(|(_, a)| a.clone()).collect();
            for ((at, _), calls) in wanted.iter().zip(related_calls(&view, agents, filter, today).await?) {
                out[*at].related_calls = calls;
            }
        }
    }
    let rank = |s: &str| match s {
        "high" => 0,
        "medium" => 1,
        _ => 2,
    };
    out.sort_by_key(|o| rank(&o.severity));
    Ok(CoachingView {
        team_id: team.clone(),
        team_name: directory.team_name(team).to_string(),
        thresholds: c.clone(),
        opportunities: out,
    })
}

fn severity_of_drop(drop: f64, threshold: f64) -> &'static str {
    if drop >= 3.0 * threshold {
        "high"
    } else if drop >= 2.0 * threshold {
        "medium"
    } else {
        "low"
    }
}

/// Up to five of each agent's latest calls of the last 7 days matching `filter`, in one pass.
async fn related_calls(
    view: &View<'_>,
    agents: Vec<String>,
    filter: &Value,
    today: Date,
) -> Result<Vec<Vec<String>>, ViewError> {
    let cx = view.cx;
    let query = json!({"range": range(today - days(6), today + days(1)), "filters": filter});
    let request = CallsRequest {
        query,
        cursor: None,
        limit: 5,
    };
    let pages = cx
        .store
        .calls_per_agent(cx.tenant.id, request, agents, cx.now)
        .await?
        .map_err(|f| view.refused(f, &[]))?;
    Ok(pages
        .iter()
        .map(|page| {
            page.calls
                .iter()
                .filter_map(|c| c["call_id"].as_str().map(String::from))
                .collect()
        })
        .collect())
}
