//! One rep's views: the scorecard (the seed's RepScorecard) and trends.

use crate::params::Shared;
use crate::types::{compared_range, measures, metric, range_of, ComparedRange, Measures, Metric, Range};
use crate::view::{add_missing_agents, choice, days, from_record, invalid, num, range, records, shifted, View};
use crate::{Cx, ViewError};
use jiff::civil::Date;
use jiff::ToSpan;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const SCORECARD: [&str; 15] = [
    "total_calls",
    "connected_calls",
    "connect_rate",
    "calls_per_hour",
    "total_talk_time",
    "avg_talk_time",
    "meetings_booked",
    "avg_call_score",
    "avg_sentiment",
    "filler_word_rate",
    "avg_talk_ratio",
    "meeting_booked_rate",
    "positive_disposition_rate",
    "callback_conversion",
    "analysed_calls",
];

/// How agents are ranked within a team: meetings, then connects, then calls.
pub(crate) const RANKING: [&str; 3] = ["meetings_booked", "connected_calls", "total_calls"];

pub(crate) fn rank_order(a: &Map<String, Value>, b: &Map<String, Value>) -> std::cmp::Ordering {
    RANKING
        .iter()
        .map(|m| num(b.get(*m)).total_cmp(&num(a.get(*m))))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScorecardParams {
    pub agent_id: String,
    #[serde(flatten)]
    pub shared: Shared,
    /// `daily` (default), `weekly` or `monthly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// A local date inside the period; today by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// `GET /analytics/agent-scorecard/{agent_id}`: the seed's RepScorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepScorecard {
    pub agent_id: String,
    pub agent_name: String,
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub range: Range,
    #[schema(required = true)]
    pub comparison: Option<ComparedRange>,
    pub total_calls: Metric,
    pub connected_calls: Metric,
    pub connect_rate: Metric,
    pub calls_per_hour: Metric,
    #[schema(required = true)]
    pub total_talk_time_minutes: Option<f64>,
    pub avg_talk_time_seconds: Metric,
    pub meetings_booked: Metric,
    pub avg_call_score: Metric,
    /// The call score's change in points since the previous period.
    #[schema(required = true)]
    pub call_score_trend: Option<f64>,
    pub avg_sentiment_score: Metric,
    pub filler_word_rate: Metric,
    pub avg_talk_ratio: Metric,
    pub meeting_booked_rate: Metric,
    pub positive_disposition_rate: Metric,
    pub callback_conversion_rate: Metric,
    #[schema(required = true)]
    pub team_id: Option<String>,
    #[schema(required = true)]
    pub team_rank: Option<usize>,
    #[schema(required = true)]
    pub team_size: Option<usize>,
    #[schema(required = true)]
    pub percentile: Option<f64>,
    /// The previous period's numbers, by measure.
    #[schema(required = true)]
    pub previous: Option<Measures>,
    #[schema(required = true)]
    pub change_percent: Option<Measures>,
}

/// A rep's activity, quality and outcomes for a day, week or month, with the trend against
/// the previous period and their rank in the team.
pub async fn scorecard(cx: &Cx, p: &ScorecardParams) -> Result<RepScorecard, ViewError> {
    let agent = p.agent_id.clone();
    let mut view = View::new(cx, &p.shared, "today")?;
    view.source("filters.agent", "agent_id");
    let period = choice("period", p.period.as_deref(), &["daily", "weekly", "monthly"])?;
    let date = view.date("date", p.date.as_deref())?;
    let (start, end) = match period {
        "daily" => (date, shifted(date, days(1), "date")?),
        "weekly" => {
            let monday = shifted(date, days(-(date.weekday().to_monday_zero_offset() as i64)), "date")?;
            (monday, shifted(monday, days(7), "date")?)
        }
        _ => (
            date.first_of_month(),
            shifted(date.first_of_month(), 1.month(), "date")?,
        ),
    };
    view.set_range(range(start, end), "date");
    let directory = view.directory().await?;
    // The agent's team: the directory's, else the team most of its calls were made for.
    let team = match directory.agents.get(&agent).and_then(|a| a.team_id.clone()) {
        Some(t) => Some(t),
        None => {
            let teams = view
                .run(view.body(&["total_calls"], &["team"], json!({"filters": {"agent": [agent]}})))
                .await?;
            records(&teams)
                .into_iter()
                .filter(|r| r["team"].is_string())
                .max_by(|a, b| num(a.get("total_calls")).total_cmp(&num(b.get("total_calls"))))
                .and_then(|r| r["team"].as_str().map(String::from))
        }
    };
    // The agent's numbers and the team's ranking, read side by side.
    let agent_filter = json!({"filters": {"agent": [agent]}, "compare": "previous_period"});
    let ranking = async {
        match &team {
            Some(team) => view
                .run(view.body(&RANKING, &["agent"], json!({"filters": {"team": [team]}})))
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (own, board) = tokio::try_join!(view.run(view.body(&SCORECARD, &[], agent_filter)), ranking)?;
    let (mut rank, mut size, mut percentile) = (None, None, None);
    if let (Some(team), Some(board)) = (&team, board) {
        let mut rows = records(&board);
        add_missing_agents(&mut rows, view.named_members(&directory, team));
        rows.sort_by(rank_order);
        if let Some(i) = rows.iter().position(|r| r["agent"].as_str() == Some(&agent)) {
            let n = rows.len();
            rank = Some(i + 1);
            size = Some(n);
            percentile = Some(if n > 1 {
                (n - 1 - i) as f64 * 100.0 / (n - 1) as f64
            } else {
                100.0
            });
        }
    }
    let t = &own["totals"];
    let previous = &own["comparison"]["totals"];
    let total = |m: &str| metric(t.get(m));
    let score_trend = match (t["avg_call_score"].as_f64(), previous["avg_call_score"].as_f64()) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let per_measure = |v: &Value| v.is_object().then(|| measures(v));
    Ok(RepScorecard {
        agent_name: directory.agent_name(&agent).to_string(),
        period: period.into(),
        period_start: start.to_string(),
        period_end: end.to_string(),
        range: range_of(&own["range"]),
        comparison: compared_range(&own),
        total_calls: total("total_calls"),
        connected_calls: total("connected_calls"),
        connect_rate: total("connect_rate"),
        calls_per_hour: total("calls_per_hour"),
        total_talk_time_minutes: t["total_talk_time"].as_f64().map(|s| s / 60.0),
        avg_talk_time_seconds: total("avg_talk_time"),
        meetings_booked: total("meetings_booked"),
        avg_call_score: total("avg_call_score"),
        call_score_trend: score_trend,
        avg_sentiment_score: total("avg_sentiment"),
        filler_word_rate: total("filler_word_rate"),
        avg_talk_ratio: total("avg_talk_ratio"),
        meeting_booked_rate: total("meeting_booked_rate"),
        positive_disposition_rate: total("positive_disposition_rate"),
        callback_conversion_rate: total("callback_conversion"),
        team_id: team,
        team_rank: rank,
        team_size: size,
        percentile,
        previous: per_measure(previous),
        change_percent: per_measure(&own["comparison"]["change_percent"]),
        agent_id: agent,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrendsParams {
    pub agent_id: String,
    #[serde(flatten)]
    pub shared: Shared,
    /// How many days, ending today (1–366, default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
}

/// A day of talk ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TalkRatioPoint {
    pub time: String,
    pub avg_talk_ratio: Metric,
    pub analysed_calls: Metric,
}

/// A week of sentiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SentimentPoint {
    pub time: String,
    pub avg_sentiment: Metric,
    pub avg_prospect_sentiment: Metric,
    pub analysed_calls: Metric,
}

/// A day's call score and its rolling 7-day average (the 7 days ending that day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScorePoint {
    pub date: String,
    #[schema(required = true)]
    pub avg_call_score: Option<f64>,
    pub scored_calls: i64,
    #[schema(required = true)]
    pub rolling_7day_avg: Option<f64>,
}

/// `GET /analytics/trends/{agent_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrendsView {
    pub agent_id: String,
    pub range: Range,
    pub talk_ratio: Vec<TalkRatioPoint>,
    pub sentiment: Vec<SentimentPoint>,
    pub score: Vec<ScorePoint>,
}

/// Daily talk ratio, weekly sentiment, and the daily call score with its rolling 7-day average.
pub async fn trends(cx: &Cx, p: &TrendsParams) -> Result<TrendsView, ViewError> {
    let mut view = View::new(cx, &p.shared, "last_30_days")?;
    view.source("filters.agent", "agent_id");
    view.source("range", "days");
    let n: i64 = match p.days {
        None => 30,
        Some(n @ 1..=366) => n,
        Some(_) => return Err(invalid("days", "must be a whole number from 1 to 366")),
    };
    let agent = &p.agent_id;
    let end = view.today() + days(1);
    let start = end - days(n);
    let agent_only = json!([agent]);
    let talk = view
        .run(view.body(
            &["avg_talk_ratio", "analysed_calls"],
            &[],
            json!({"filters": {"agent": agent_only}, "range": range(start, end), "granularity": "day"}),
        ))
        .await?;
    let sentiment = view
        .run(view.body(
            &["avg_sentiment", "avg_prospect_sentiment", "analysed_calls"],
            &[],
            json!({"filters": {"agent": agent_only}, "range": range(start, end), "granularity": "week"}),
        ))
        .await?;
    // Six days before the range feed the first days' rolling averages.
    let scores = view
        .run(view.body(
            &["avg_call_score", "scored_calls"],
            &[],
            json!({"filters": {"agent": agent_only}, "range": range(start - days(6), end), "granularity": "day"}),
        ))
        .await?;
    let daily: BTreeMap<Date, (f64, f64)> = records(&scores)
        .into_iter()
        .filter_map(|r| {
            let date = view
                .zone
                .date_of(r["time"].as_str()?.parse::<jiff::Timestamp>().ok()?.as_second());
            Some((date, (num(r.get("avg_call_score")), num(r.get("scored_calls")))))
        })
        .collect();
    let mut score = Vec::new();
    let mut d = start;
    while d < end {
        let window: Vec<&(f64, f64)> = daily.range(d - days(6)..=d).map(|(_, v)| v).collect();
        let (sum, count) = window.iter().fold((0.0, 0.0), |(s, c), (avg, n)| (s + avg * n, c + n));
        let today = daily.get(&d);
        score.push(ScorePoint {
            date: d.to_string(),
            avg_call_score: today.map(|t| t.0),
            scored_calls: today.map_or(0.0, |t| t.1) as i64,
            rolling_7day_avg: (count > 0.0).then(|| sum / count),
        });
        d += days(1);
    }
    Ok(TrendsView {
        agent_id: agent.clone(),
        range: Range {
            start: start.to_string(),
            end: end.to_string(),
        },
        talk_ratio: records(&talk).into_iter().map(from_record).collect(),
        sentiment: records(&sentiment).into_iter().map(from_record).collect(),
        score,
    })
}
