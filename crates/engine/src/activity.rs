//! The live activity feed (SPEC §6): what a newly stored event means to the people watching —
//! a call ended, a meeting booked, a status change, a pipeline step, a ticket resolved.
//! Events that only refine numbers (call analyses, CSAT scores) have no feed item.

use crate::clock::Clock;
use crate::event::Event;
use crate::query::AgentTeams;
use crate::taxonomy::CompiledTaxonomy;
use serde_json::{json, Value};

/// Pipeline stages that count as a conversion in the feed.
const CONVERSION_STAGES: [&str; 2] = ["closed_won", "opportunity_created"];

#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// `call_ended`, `meeting_booked`, `status_changed`, `stage_changed`, `conversion`,
    /// `ticket_resolved`.
    pub kind: &'static str,
    /// When it happened (nanoseconds since the epoch).
    pub at_ns: i64,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub campaign_id: Option<String>,
    /// Kind-specific fields (disposition, status, stage, …).
    pub detail: Value,
}

impl Activity {
    /// The feed item of one event, if it has one. Its team is the event's, else its agent's in
    /// the directory (`agent_teams`), as the event counts in the numbers.
    pub fn of(event: &Event, taxonomy: &CompiledTaxonomy, agent_teams: &AgentTeams) -> Option<Activity> {
        let mut item = Activity::of_event(event, taxonomy)?;
        if item.team_id.as_deref().is_none_or(str::is_empty) {
            item.team_id = item.agent_id.as_ref().and_then(|a| agent_teams.get(a)).cloned();
        }
        Some(item)
    }

    fn of_event(event: &Event, taxonomy: &CompiledTaxonomy) -> Option<Activity> {
        Some(match event {
            Event::Call(c) => {
                let class = taxonomy.class(&c.disposition);
                Activity {
                    kind: if class.meeting { "meeting_booked" } else { "call_ended" },
                    at_ns: c.ended_ns.unwrap_or(c.started_ns),
                    agent_id: Some(c.agent_id.clone()),
                    team_id: c.team_id.clone(),
                    campaign_id: c.campaign_id.clone(),
                    detail: json!({
                        "call_id": c.call_id,
                        "disposition": c.disposition,
                        "disposition_category": class.category.map(|c| c.as_str()),
                        "talk_seconds": c.talk_seconds,
                    }),
                }
            }
            Event::Status(s) => Activity {
                kind: "status_changed",
                at_ns: s.at_ns,
                agent_id: Some(s.agent_id.clone()),
                team_id: None,
                campaign_id: None,
                detail: json!({"status": s.status.as_str()}),
            },
            Event::Stage(s) => Activity {
                kind: if CONVERSION_STAGES.contains(&s.stage.as_str()) {
                    "conversion"
                } else {
                    "stage_changed"
                },
                at_ns: s.at_ns,
                agent_id: s.agent_id.clone(),
                team_id: None,
                campaign_id: s.campaign_id.clone(),
                detail: json!({
                    "contact_id": s.contact_id,
                    "stage": s.stage,
                    "lead_source": s.lead_source,
                    "amount": s.amount_minor.map(|m| m as f64 / 100.0),
                    "currency": s.currency,
                }),
            },
            Event::Conversation(c) => Activity {
                kind: "ticket_resolved",
                at_ns: c.resolved_ns?,
                agent_id: c.agent_id.clone(),
                team_id: c.team_id.clone(),
                campaign_id: None,
                detail: json!({"conversation_id": c.conversation_id, "channel": c.channel}),
            },
            Event::Analysis(_) | Event::Csat(_) => return None,
        })
    }

    /// The SPEC §6 `activity` message, times in `clock`'s zone.
    pub fn to_json(&self, clock: &Clock) -> Value {
        json!({
            "type": "activity",
            "kind": self.kind,
            "at": clock.format(self.at_ns.div_euclid(1_000_000_000)),
            "agent_id": self.agent_id,
            "team_id": self.team_id,
            "campaign_id": self.campaign_id,
            "detail": self.detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event_text;
    use crate::taxonomy::Taxonomy;

    fn activity(text: &str) -> Option<Activity> {
        let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
        let e = parse_event_text(text, &taxonomy).expect("valid event");
        let teams: AgentTeams = [("a".to_string(), "t-directory".to_string())].into_iter().collect();
        Activity::of(&e.event, &taxonomy, &teams)
    }

    #[test]
    fn calls_stages_statuses_and_tickets_have_feed_items() {
        let call = |d: &str| {
            activity(&format!(
                r#"{{"id":"e","type":"call","call_id":"c","agent_id":"a","team_id":"t","started_at":"2026-03-01T10:00:00Z","ended_at":"2026-03-01T10:02:00Z","disposition":"{d}"}}"#
            ))
            .unwrap()
        };
        assert_eq!(call("No Answer").kind, "call_ended");
        let meeting = call("meeting booked");
        assert_eq!(meeting.kind, "meeting_booked");
        assert_eq!(meeting.team_id.as_deref(), Some("t"), "the event's team comes first");
        assert_eq!(meeting.detail["disposition_category"], "connected");
        let won = activity(r#"{"id":"s","type":"lead_stage","contact_id":"p","stage":"closed_won","at":"2026-03-01T10:00:00Z","amount":1200.5}"#).unwrap();
        assert_eq!((won.kind, won.detail["amount"].as_f64()), ("conversion", Some(1200.5)));
        let status = activity(
            r#"{"id":"x","type":"agent_status","agent_id":"a","status":"on_call","at":"2026-03-01T10:00:00Z"}"#,
        );
        let status = status.unwrap();
        assert_eq!(status.detail["status"], "on_call");
        assert_eq!(
            status.team_id.as_deref(),
            Some("t-directory"),
            "a status counts for the agent's team"
        );
        let open = r#"{"id":"o","type":"conversation","conversation_id":"k","channel":"email","opened_at":"2026-03-01T10:00:00Z"}"#;
        assert!(activity(open).is_none(), "an open ticket is not resolved yet");
        let analysis = r#"{"id":"n","type":"call_analysis","call_id":"c","score":80}"#;
        assert!(activity(analysis).is_none());
    }
}
