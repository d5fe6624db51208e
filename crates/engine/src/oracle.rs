//! A deliberately naive computation of query results straight from final raw records — the
//! reference the rollups and the planner are tested against. It shares no aggregation code
//! with [`crate::query`]: it groups records in lists and applies SPEC §4's formulas directly.

use crate::clock::Clock;
use crate::event::{AgentStatus, CallAnalysis, CallRecord, StatusChange, MICROS};
use crate::measures::Num;
use crate::query::{Dimension, KeyValue, Query, TimeRange};
use crate::taxonomy::{Category, CompiledTaxonomy};
use std::collections::BTreeMap;

pub struct Records<'a> {
    pub calls: &'a [CallRecord],
    pub analyses: &'a BTreeMap<String, CallAnalysis>,
    pub statuses: &'a [StatusChange],
}

#[derive(Default)]
struct Group<'a> {
    calls: Vec<(&'a CallRecord, Option<&'a CallAnalysis>)>,
    active_ns: i64,
    idle_ns: i64,
}

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

fn dim_value(
    d: Dimension,
    c: &CallRecord,
    a: Option<&CallAnalysis>,
    tax: &CompiledTaxonomy,
    clock: &Clock,
) -> KeyValue {
    let t = c.started_ns.div_euclid(1_000_000_000);
    match d.name() {
        "agent" => text(Some(&c.agent_id)),
        "team" => text(c.team_id.as_deref()),
        "campaign" => text(c.campaign_id.as_deref()),
        "list" => text(c.list_id.as_deref()),
        "lead_source" => text(c.lead_source.as_deref()),
        "direction" => text(c.direction.as_deref()),
        "disposition" => text(Some(&c.disposition)),
        "disposition_category" => text(tax.class(&c.disposition).category.map(|c| c.as_str())),
        "hour_of_day" => KeyValue::Int(clock.hour_of_day(t)),
        "day_of_week" => KeyValue::Int(clock.day_of_week(t)),
        "score_range" => text(a.and_then(|a| a.score_micros).map(score_range)),
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
        "avg_wrapup_time" => avg(&calls.iter().filter_map(|(c, _)| c.wrap_seconds).collect::<Vec<_>>()),
        "analysed_calls" => Num::Int(analysed.len() as i64),
        "avg_call_score" => avg_micros(&field(|a| a.score_micros)),
        "avg_sentiment" => avg_micros(&field(|a| a.sentiment_micros)),
        "avg_prospect_sentiment" => avg_micros(&field(|a| a.prospect_sentiment_micros)),
        "avg_talk_ratio" => avg_micros(&field(|a| a.talk_ratio_micros)),
        "filler_word_rate" => avg_micros(&field(|a| a.filler_micros)),
        "active_hours" => Num::Float(hours),
        "idle_minutes" => Num::Float(g.idle_ns as f64 / 6e10),
        other => unreachable!("measure {other}"),
    }
}

/// The rows (key → measure values) and totals of `q` over `range`, by brute force. Rows whose
/// values are all zero or null are left out, as in the API.
pub fn evaluate(
    q: &Query,
    range: TimeRange,
    records: &Records,
    tax: &CompiledTaxonomy,
) -> (BTreeMap<Vec<KeyValue>, Vec<Num>>, Vec<Num>) {
    let clock = &q.clock;
    let agent_only = q
        .dimensions
        .iter()
        .chain(q.filters.iter().map(|f| &f.dimension))
        .all(|d| matches!(d.name(), "agent" | "hour_of_day" | "day_of_week"));
    let time_key = |t: i64| q.granularity.map(|g| KeyValue::Time(clock.bucket_start(g, t)));
    let mut groups: BTreeMap<Vec<KeyValue>, Group> = BTreeMap::new();
    let mut total = Group::default();
    for c in records.calls {
        let t = c.started_ns.div_euclid(1_000_000_000);
        if t < range.start || t >= range.end {
            continue;
        }
        let a = records.analyses.get(&c.call_id);
        let passes = q
            .filters
            .iter()
            .all(|f| match dim_value(f.dimension, c, a, tax, clock) {
                KeyValue::Text(s) => f.values.contains(&s),
                KeyValue::Int(i) => f.values.contains(&i.to_string()),
                _ => false,
            });
        if !passes {
            continue;
        }
        let mut key: Vec<KeyValue> = q.dimensions.iter().map(|d| dim_value(*d, c, a, tax, clock)).collect();
        key.extend(time_key(t));
        groups.entry(key).or_default().calls.push((c, a));
        total.calls.push((c, a));
    }
    if agent_only {
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
                    let sec = t.div_euclid(1_000_000_000);
                    let mut next = clock.next_hour_start(sec).min(range.end);
                    if let Some(g) = q.granularity {
                        next = next.min(clock.next_bucket_start(g, sec));
                    }
                    let piece_end = (next * 1_000_000_000).min(stop);
                    let hour = clock.hour_of_day(sec);
                    let weekday = clock.day_of_week(sec);
                    let key_ok = q.filters.iter().all(|f| match f.dimension.name() {
                        "agent" => f.values.contains(agent),
                        "hour_of_day" => f.values.contains(&hour.to_string()),
                        _ => f.values.contains(&weekday.to_string()),
                    });
                    if key_ok {
                        let mut key: Vec<KeyValue> = q
                            .dimensions
                            .iter()
                            .map(|d| match d.name() {
                                "agent" => KeyValue::Text(agent.to_string()),
                                "hour_of_day" => KeyValue::Int(hour),
                                _ => KeyValue::Int(weekday),
                            })
                            .collect();
                        key.extend(time_key(sec));
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
                let needs_status = matches!(m.name, "calls_per_hour" | "active_hours" | "idle_minutes");
                if needs_status && !agent_only {
                    Num::Null
                } else {
                    metric(m.name, g, tax)
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
