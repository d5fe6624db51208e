//! A deliberately naive computation of query results straight from final raw records — the
//! reference the rollups and the planner are tested against. It shares no aggregation code
//! with [`crate::query`]: it groups records in lists and applies SPEC §4's formulas directly.

use crate::event::{AgentStatus, CallAnalysis, CallRecord, Conversation, CsatScore, StageChange, StatusChange, MICROS};
use crate::measures::Num;
use crate::query::{AgentTeams, Dimension, KeyValue, Query, TimeRange};
use crate::taxonomy::{Category, CompiledTaxonomy};
use std::collections::BTreeMap;

/// The final records: current versions of calls, analyses and conversations, every status,
/// CSAT score and stage event.
pub struct Records<'a> {
    pub calls: &'a [CallRecord],
    pub analyses: &'a BTreeMap<String, CallAnalysis>,
    pub statuses: &'a [StatusChange],
    pub conversations: &'a [Conversation],
    pub csats: &'a [CsatScore],
    pub stages: &'a [StageChange],
    /// The directory's team of each agent, which activity, CSAT, stages, and calls and tickets
    /// without a team count for.
    pub agent_teams: &'a AgentTeams,
}

impl Records<'_> {
    /// The directory's team of `agent`.
    fn team_of(&self, agent: Option<&str>) -> KeyValue {
        text(agent.and_then(|a| self.agent_teams.get(a)).map(String::as_str))
    }
}

#[derive(Default)]
struct Group<'a> {
    calls: Vec<(&'a CallRecord, Option<&'a CallAnalysis>)>,
    active_ns: i64,
    idle_ns: i64,
    tickets: Vec<&'a Conversation>,
    csats: Vec<&'a CsatScore>,
    /// The first event of each (contact, stage).
    stages: Vec<&'a StageChange>,
    /// For each contact's first meeting_booked after a call: nanoseconds since its first call.
    to_meeting_ns: Vec<i64>,
}

/// The dimensions each kind of record has (time dimensions: all of them).
const CALL_DIMS: &[&str] = &[
    "agent",
    "team",
    "campaign",
    "list",
    "lead_source",
    "direction",
    "disposition",
    "disposition_category",
    "score_range",
    "intent",
];
const STATUS_DIMS: &[&str] = &["agent", "team"];
const TICKET_DIMS: &[&str] = &["agent", "team", "channel", "intent"];
const CSAT_DIMS: &[&str] = &["agent", "team", "channel"];
const STAGE_DIMS: &[&str] = &["agent", "team", "campaign", "lead_source", "stage"];

fn text(s: Option<&str>) -> KeyValue {
    match s {
        None | Some("") => KeyValue::Null,
        Some(s) => KeyValue::Text(s.to_string()),
    }
}

fn score_range(score_micros: i64) -> &'static str {
    let score = score_micros as f64 / MICROS;
    if score < 20.0 {
        "0-20"
    } else if score < 40.0 {
        "20-40"
    } else if score < 60.0 {
        "40-60"
    } else if score < 80.0 {
        "60-80"
    } else {
        "80-100"
    }
}

fn dim_value(d: &str, c: &CallRecord, a: Option<&CallAnalysis>, tax: &CompiledTaxonomy) -> KeyValue {
    match d {
        "agent" => text(Some(&c.agent_id)),
        "team" => text(c.team_id.as_deref()),
        "campaign" => text(c.campaign_id.as_deref()),
        "list" => text(c.list_id.as_deref()),
        "lead_source" => text(c.lead_source.as_deref()),
        "direction" => text(c.direction.as_deref()),
        "disposition" => text(Some(&c.disposition)),
        "disposition_category" => text(tax.class(&c.disposition).category.map(|c| c.as_str())),
        "score_range" => text(a.and_then(|a| a.score_micros).map(score_range)),
        "intent" => text(a.and_then(|a| a.intent.as_deref())),
        other => unreachable!("dimension {other}"),
    }
}

fn percentile(values: &mut [i64], p: f64) -> Num {
    if values.is_empty() {
        return Num::Null;
    }
    values.sort();
    let pos = p * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Num::Float(values[lo] as f64 + (pos - lo as f64) * (values[hi] - values[lo]) as f64)
}

fn pct(n: usize, d: usize) -> Num {
    if d == 0 {
        Num::Null
    } else {
        Num::Float(n as f64 * 100.0 / d as f64)
    }
}

fn avg(values: &[i64]) -> Num {
    if values.is_empty() {
        Num::Null
    } else {
        Num::Float(values.iter().sum::<i64>() as f64 / values.len() as f64)
    }
}

fn avg_micros(values: &[i64]) -> Num {
    if values.is_empty() {
        Num::Null
    } else {
        Num::Float(values.iter().sum::<i64>() as f64 / values.len() as f64 / MICROS)
    }
}

fn metric(name: &str, g: &Group, tax: &CompiledTaxonomy) -> Num {
    let calls = &g.calls;
    let connected: Vec<_> = calls
        .iter()
        .filter(|(c, _)| tax.class(&c.disposition).category == Some(Category::Connected))
        .collect();
    let count = |f: &dyn Fn(&CallRecord) -> bool| calls.iter().filter(|(c, _)| f(c)).count();
    let in_category = |cat: Category| count(&|c| tax.class(&c.disposition).category == Some(cat));
    let analysed: Vec<&CallAnalysis> = calls.iter().filter_map(|(_, a)| *a).collect();
    let field = |f: fn(&CallAnalysis) -> Option<i64>| analysed.iter().filter_map(|a| f(a)).collect::<Vec<_>>();
    let hours = g.active_ns as f64 / 3.6e12;
    let logged_in = (g.active_ns + g.idle_ns) as f64 / 3.6e12;
    match name {
        "total_calls" => Num::Int(calls.len() as i64),
        "connected_calls" => Num::Int(connected.len() as i64),
        "connect_rate" => pct(connected.len(), calls.len()),
        "avg_talk_time" => {
            if connected.is_empty() {
                Num::Null
            } else {
                Num::Float(
                    connected.iter().filter_map(|(c, _)| c.talk_seconds).sum::<i64>() as f64 / connected.len() as f64,
                )
            }
        }
        "median_talk_time" | "p90_talk_time" => {
            let mut v: Vec<i64> = connected.iter().filter_map(|(c, _)| c.talk_seconds).collect();
            percentile(&mut v, if name == "median_talk_time" { 0.5 } else { 0.9 })
        }
        "total_talk_time" => Num::Int(calls.iter().filter_map(|(c, _)| c.talk_seconds).sum()),
        "total_handle_time" => Num::Int(
            calls
                .iter()
                .map(|(c, _)| c.talk_seconds.unwrap_or(0) + c.wrap_seconds.unwrap_or(0))
                .sum(),
        ),
        "calls_per_hour" => {
            if g.active_ns == 0 {
                Num::Null
            } else {
                Num::Float(calls.len() as f64 / hours)
            }
        }
        "meetings_booked" => Num::Int(count(&|c| tax.class(&c.disposition).meeting) as i64),
        "meeting_booked_rate" => pct(count(&|c| tax.class(&c.disposition).meeting), connected.len()),
        "positive_disposition_rate" => pct(count(&|c| tax.class(&c.disposition).positive), calls.len()),
        "voicemails" => Num::Int(count(&|c| tax.class(&c.disposition).voicemail) as i64),
        "no_contacts" => Num::Int(in_category(Category::NoContact) as i64),
        "invalid_numbers" => Num::Int(in_category(Category::Invalid) as i64),
        "system_errors" => Num::Int(in_category(Category::System) as i64),
        "voicemail_drop_rate" => pct(count(&|c| c.voicemail_dropped), calls.len()),
        "callback_conversion" => pct(
            connected.iter().filter(|(c, _)| c.is_callback).count(),
            count(&|c| c.is_callback),
        ),
        "abandon_rate" => pct(count(&|c| c.abandoned), connected.len()),
        "avg_wait_time" => avg(&connected.iter().filter_map(|(c, _)| c.wait_seconds).collect::<Vec<_>>()),
        "abandoned_calls" => Num::Int(count(&|c| c.abandoned) as i64),
        "total_wait_time" => Num::Int(calls.iter().filter_map(|(c, _)| c.wait_seconds).sum()),
        "avg_wrapup_time" => avg(&calls.iter().filter_map(|(c, _)| c.wrap_seconds).collect::<Vec<_>>()),
        "analysed_calls" => Num::Int(analysed.len() as i64),
        "scored_calls" => Num::Int(field(|a| a.score_micros).len() as i64),
        "avg_call_score" => avg_micros(&field(|a| a.score_micros)),
        "avg_sentiment" => avg_micros(&field(|a| a.sentiment_micros)),
        "avg_prospect_sentiment" => avg_micros(&field(|a| a.prospect_sentiment_micros)),
        "avg_talk_ratio" => avg_micros(&field(|a| a.talk_ratio_micros)),
        "filler_word_rate" => avg_micros(&field(|a| a.filler_micros)),
        "active_hours" => Num::Float(hours),
        "logged_in_hours" => Num::Float(logged_in),
        "calls_per_logged_in_hour" | "connects_per_logged_in_hour" | "meetings_per_logged_in_hour" => {
            let count = match name {
                "calls_per_logged_in_hour" => calls.len(),
                "connects_per_logged_in_hour" => connected.len(),
                _ => count(&|c| tax.class(&c.disposition).meeting),
            };
            if g.active_ns + g.idle_ns == 0 {
                Num::Null
            } else {
                Num::Float(count as f64 / logged_in)
            }
        }
        "idle_minutes" => Num::Float(g.idle_ns as f64 / 6e10),
        "revenue_per_connect" => match other_metric("revenue", g) {
            Num::Float(revenue) => ratio(revenue, connected.len()),
            _ => Num::Null,
        },
        _ => other_metric(name, g),
    }
}

fn seconds(from: i64, to: i64) -> i64 {
    (to - from).div_euclid(1_000_000_000)
}

fn ratio(n: f64, d: usize) -> Num {
    if d == 0 {
        Num::Null
    } else {
        Num::Float(n / d as f64)
    }
}

/// Ticket, CSAT and pipeline metrics.
fn other_metric(name: &str, g: &Group) -> Num {
    let first_responses: Vec<i64> = g
        .tickets
        .iter()
        .filter_map(|t| t.first_response_ns.map(|f| seconds(t.opened_ns, f)))
        .collect();
    let resolutions: Vec<i64> = g
        .tickets
        .iter()
        .filter_map(|t| t.resolved_ns.map(|r| seconds(t.opened_ns, r)))
        .collect();
    let won: Vec<&&StageChange> = g.stages.iter().filter(|s| s.stage == "closed_won").collect();
    let amounts: Vec<i64> = won.iter().filter_map(|s| s.amount_minor).collect();
    let revenue = amounts.iter().sum::<i64>() as f64 / 100.0;
    match name {
        "ticket_volume" => Num::Int(g.tickets.len() as i64),
        "avg_first_response_time" => avg(&first_responses),
        "median_first_response_time" => percentile(&mut first_responses.clone(), 0.5),
        "avg_resolution_time" => avg(&resolutions),
        "resolution_rate" => pct(resolutions.len(), g.tickets.len()),
        "csat_avg" => avg(&g.csats.iter().map(|c| c.score).collect::<Vec<_>>()),
        "csat_count" => Num::Int(g.csats.len() as i64),
        "csat_positive_rate" => pct(g.csats.iter().filter(|c| c.score >= 4).count(), g.csats.len()),
        "contacts_reached" => Num::Int(g.stages.len() as i64),
        "deals_won" => Num::Int(won.len() as i64),
        "revenue" => Num::Float(revenue),
        "avg_deal_size" => ratio(revenue, amounts.len()),
        "revenue_per_call" => ratio(revenue, g.calls.len()),
        "avg_days_to_meeting" => match avg(&g.to_meeting_ns) {
            Num::Float(ns) => Num::Float(ns / 1e9 / 86_400.0),
            other => other,
        },
        other => unreachable!("measure {other}"),
    }
}

/// The rows (key → measure values) and totals of `q` over `range`, by brute force. Rows whose
/// values are all zero or null are left out, as in the API. A measure is null unless every kind
/// of record it reads has every dimension the query groups or filters by.
pub fn evaluate(
    q: &Query,
    range: TimeRange,
    records: &Records,
    tax: &CompiledTaxonomy,
) -> (BTreeMap<Vec<KeyValue>, Vec<Num>>, Vec<Num>) {
    let clock = &q.clock;
    let used: Vec<&str> = q
        .dimensions
        .iter()
        .chain(q.filters.iter().map(|f| &f.dimension))
        .map(|d| d.name())
        .filter(|n| !matches!(*n, "hour_of_day" | "day_of_week"))
        .collect();
    let has_all = |dims: &[&str]| used.iter().all(|d| dims.contains(d));
    let mut groups: BTreeMap<Vec<KeyValue>, Group> = BTreeMap::new();
    let mut total = Group::default();
    // The key of a record at second `t` with `value` for its dimensions, if it passes the filters.
    let locate = |t: i64, value: &dyn Fn(&str) -> KeyValue| -> Option<Vec<KeyValue>> {
        if t < range.start || t >= range.end {
            return None;
        }
        let value_of = |d: Dimension| match d.name() {
            "hour_of_day" => KeyValue::Int(clock.hour_of_day(t)),
            "day_of_week" => KeyValue::Int(clock.day_of_week(t)),
            name => value(name),
        };
        let passes = q.filters.iter().all(|f| match value_of(f.dimension) {
            KeyValue::Text(s) => f.values.contains(&s),
            KeyValue::Int(i) => f.values.contains(&i.to_string()),
            _ => false,
        });
        let mut key: Vec<KeyValue> = q.dimensions.iter().map(|d| value_of(*d)).collect();
        key.extend(q.granularity.map(|g| KeyValue::Time(clock.bucket_start(g, t))));
        passes.then_some(key)
    };
    let second = |ns: i64| ns.div_euclid(1_000_000_000);
    if has_all(CALL_DIMS) {
        for c in records.calls {
            let a = records.analyses.get(&c.call_id);
            let value = |d: &str| match (d, c.team_id.as_deref()) {
                ("team", None | Some("")) => records.team_of(Some(&c.agent_id)),
                _ => dim_value(d, c, a, tax),
            };
            if let Some(key) = locate(second(c.started_ns), &value) {
                groups.entry(key).or_default().calls.push((c, a));
                total.calls.push((c, a));
            }
        }
    }
    if has_all(TICKET_DIMS) {
        for t in records.conversations {
            let value = |d: &str| match d {
                "agent" => text(t.agent_id.as_deref()),
                "team" => match t.team_id.as_deref() {
                    None | Some("") => records.team_of(t.agent_id.as_deref()),
                    team => text(team),
                },
                "channel" => text(Some(&t.channel)),
                _ => text(t.intent.as_deref()),
            };
            if let Some(key) = locate(second(t.opened_ns), &value) {
                groups.entry(key).or_default().tickets.push(t);
                total.tickets.push(t);
            }
        }
    }
    if has_all(CSAT_DIMS) {
        for c in records.csats {
            let channel = match (&c.conversation_id, &c.call_id) {
                (Some(id), _) => records
                    .conversations
                    .iter()
                    .find(|t| &t.conversation_id == id)
                    .map(|t| t.channel.as_str()),
                (None, Some(_)) => Some("voice"),
                (None, None) => None,
            };
            let value = |d: &str| match d {
                "agent" => text(c.agent_id.as_deref()),
                "team" => records.team_of(c.agent_id.as_deref()),
                _ => text(channel),
            };
            if let Some(key) = locate(second(c.at_ns), &value) {
                groups.entry(key).or_default().csats.push(c);
                total.csats.push(c);
            }
        }
    }
    if has_all(STAGE_DIMS) {
        let mut firsts: BTreeMap<(&str, &str), &StageChange> = BTreeMap::new();
        for s in records.stages {
            let first = firsts.entry((&s.contact_id, &s.stage)).or_insert(s);
            if (s.at_ns, &s.event_id) < (first.at_ns, &first.event_id) {
                *first = s;
            }
        }
        for s in firsts.values() {
            let value = |d: &str| match d {
                "agent" => text(s.agent_id.as_deref()),
                "team" => records.team_of(s.agent_id.as_deref()),
                "campaign" => text(s.campaign_id.as_deref()),
                "lead_source" => text(s.lead_source.as_deref()),
                _ => text(Some(&s.stage)),
            };
            // A meeting's time since the contact's first call (the earliest start among its
            // current calls), if that call came first.
            let to_meeting = records
                .calls
                .iter()
                .filter(|c| s.stage == "meeting_booked" && c.contact_id.as_deref() == Some(&s.contact_id))
                .map(|c| c.started_ns)
                .min()
                .filter(|&first| first <= s.at_ns)
                .map(|first| s.at_ns - first);
            if let Some(key) = locate(second(s.at_ns), &value) {
                for g in [groups.entry(key).or_default(), &mut total] {
                    g.stages.push(s);
                    g.to_meeting_ns.extend(to_meeting);
                }
            }
        }
    }
    if has_all(STATUS_DIMS) {
        // Status intervals: each status lasts until the agent's next one, split at the edges
        // of output buckets, hours and days.
        let mut by_agent: BTreeMap<&str, Vec<&StatusChange>> = BTreeMap::new();
        for s in records.statuses {
            by_agent.entry(&s.agent_id).or_default().push(s);
        }
        for (agent, mut list) in by_agent {
            list.sort_by(|a, b| (a.at_ns, &a.event_id).cmp(&(b.at_ns, &b.event_id)));
            for pair in list.windows(2) {
                let (from, to, status) = (pair[0].at_ns, pair[1].at_ns, pair[0].status);
                if !(status.is_active() || status == AgentStatus::Idle) {
                    continue;
                }
                let mut t = from.max(range.start * 1_000_000_000);
                let stop = to.min(range.end * 1_000_000_000);
                while t < stop {
                    let sec = second(t);
                    let mut next = clock.next_hour_start(sec).min(range.end);
                    if let Some(g) = q.granularity {
                        next = next.min(clock.next_bucket_start(g, sec));
                    }
                    let piece_end = (next * 1_000_000_000).min(stop);
                    let value = |d: &str| match d {
                        "agent" => text(Some(agent)),
                        _ => records.team_of(Some(agent)),
                    };
                    if let Some(key) = locate(sec, &value) {
                        let ns = piece_end - t;
                        for g in [groups.entry(key).or_default(), &mut total] {
                            if status.is_active() {
                                g.active_ns += ns;
                            } else {
                                g.idle_ns += ns;
                            }
                        }
                    }
                    t = piece_end;
                }
            }
        }
    }
    let values = |g: &Group| -> Vec<Num> {
        q.measures
            .iter()
            .map(|m| {
                let readable = match m.name {
                    "calls_per_hour"
                    | "calls_per_logged_in_hour"
                    | "connects_per_logged_in_hour"
                    | "meetings_per_logged_in_hour" => has_all(CALL_DIMS) && has_all(STATUS_DIMS),
                    "active_hours" | "idle_minutes" | "logged_in_hours" => has_all(STATUS_DIMS),
                    "revenue_per_call" | "revenue_per_connect" => has_all(CALL_DIMS) && has_all(STAGE_DIMS),
                    n if n.starts_with("csat") => has_all(CSAT_DIMS),
                    n if TICKET_MEASURES.contains(&n) => has_all(TICKET_DIMS),
                    n if STAGE_MEASURES.contains(&n) => has_all(STAGE_DIMS),
                    _ => has_all(CALL_DIMS),
                };
                if readable {
                    metric(m.name, g, tax)
                } else {
                    Num::Null
                }
            })
            .collect()
    };
    let rows = groups
        .iter()
        .map(|(k, g)| (k.clone(), values(g)))
        .filter(|(_, v)| !v.iter().all(|n| n.is_zero_or_null()))
        .collect();
    (rows, values(&total))
}

const TICKET_MEASURES: &[&str] = &[
    "ticket_volume",
    "avg_first_response_time",
    "median_first_response_time",
    "avg_resolution_time",
    "resolution_rate",
];
const STAGE_MEASURES: &[&str] = &[
    "contacts_reached",
    "deals_won",
    "revenue",
    "avg_deal_size",
    "avg_days_to_meeting",
];
