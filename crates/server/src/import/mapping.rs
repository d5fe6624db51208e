//! What every CDR format shares: how a source's outcome becomes a disposition of the tenant's
//! taxonomy, a peer an agent id, a dialplan context a direction, and how one call is written as
//! a SPEC §3 `call` event. No IO.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Asterisk's dispositions (and `VOICEMAIL`, a call answered by the `VoiceMail` application)
/// and FreeSWITCH's hangup causes (`ANSWERED` for an answered call), mapped to the default
/// taxonomy of SPEC §3. `--map-disposition` overrides any of them.
const DEFAULT_DISPOSITIONS: &[(&str, &str)] = &[
    ("ANSWERED", "Connected"),
    ("VOICEMAIL", "Voicemail"),
    ("NO ANSWER", "No Answer"),
    ("BUSY", "Busy"),
    ("FAILED", "Call Error"),
    ("CONGESTION", "Call Error"),
    ("NO_ANSWER", "No Answer"),
    ("NO_USER_RESPONSE", "No Answer"),
    ("ORIGINATOR_CANCEL", "No Answer"),
    ("ALLOTTED_TIMEOUT", "No Answer"),
    ("NORMAL_CLEARING", "No Answer"),
    ("USER_BUSY", "Busy"),
    ("CALL_REJECTED", "Busy"),
    ("UNALLOCATED_NUMBER", "Bad Number"),
    ("INVALID_NUMBER_FORMAT", "Bad Number"),
    ("NO_ROUTE_DESTINATION", "Bad Number"),
    ("NUMBER_CHANGED", "Bad Number"),
    ("NORMAL_TEMPORARY_FAILURE", "Call Error"),
    ("NETWORK_OUT_OF_ORDER", "Call Error"),
    ("DESTINATION_OUT_OF_ORDER", "Call Error"),
    ("RECOVERY_ON_TIMER_EXPIRE", "Call Error"),
    ("NORMAL_CIRCUIT_CONGESTION", "Call Error"),
    ("SWITCH_CONGESTION", "Call Error"),
    ("MEDIA_TIMEOUT", "Dropped"),
    ("LOSE_RACE", "Dropped"),
];

/// Contexts whose calls come in / go out, unless `--inbound-context` / `--outbound-context`
/// say otherwise: Asterisk's (FreePBX's) and FreeSWITCH's stock dialplans.
const INBOUND_CONTEXTS: &[&str] = &["from-pstn", "from-trunk", "public"];
const OUTBOUND_CONTEXTS: &[&str] = &["from-internal", "default"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// How source values become the tenant's: built from the import's options.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The zone of local times in the file (UTC with `--utc`).
    pub zone: TimeZone,
    /// Source outcome (upper case) → disposition.
    dispositions: HashMap<String, String>,
    /// Source agent (peer, extension) → agent id.
    agents: HashMap<String, String>,
    inbound: Vec<String>,
    outbound: Vec<String>,
}

impl Mapping {
    pub fn new(
        zone: TimeZone,
        dispositions: &[(String, String)],
        agents: &[(String, String)],
        inbound: &[String],
        outbound: &[String],
    ) -> Mapping {
        let mut table: HashMap<String, String> = DEFAULT_DISPOSITIONS
            .iter()
            .map(|(s, d)| (s.to_string(), d.to_string()))
            .collect();
        table.extend(
            dispositions
                .iter()
                .map(|(s, d)| (s.trim().to_uppercase(), d.trim().to_string())),
        );
        let or_default = |given: &[String], default: &[&str]| -> Vec<String> {
            match given.is_empty() {
                true => default.iter().map(|c| c.to_string()).collect(),
                false => given.iter().map(|c| c.trim().to_string()).collect(),
            }
        };
        Mapping {
            zone,
            dispositions: table,
            agents: agents
                .iter()
                .map(|(s, a)| (s.trim().to_string(), a.trim().to_string()))
                .collect(),
            inbound: or_default(inbound, INBOUND_CONTEXTS),
            outbound: or_default(outbound, OUTBOUND_CONTEXTS),
        }
    }

    /// The disposition a source outcome maps to; an unmapped one is kept as written, so the
    /// event's validation names it with the taxonomy's dispositions.
    pub fn disposition(&self, source: &str) -> String {
        let key = source.trim().to_uppercase();
        self.dispositions
            .get(&key)
            .cloned()
            .unwrap_or_else(|| source.trim().to_string())
    }

    pub fn agent(&self, source: &str) -> String {
        self.agents.get(source).cloned().unwrap_or_else(|| source.to_string())
    }

    pub fn direction(&self, context: &str) -> Option<Direction> {
        if self.inbound.iter().any(|c| c == context) {
            Some(Direction::Inbound)
        } else if self.outbound.iter().any(|c| c == context) {
            Some(Direction::Outbound)
        } else {
            None
        }
    }

    /// Why a context gave no direction.
    pub fn unknown_context(&self, contexts: &str) -> String {
        format!(
            "context '{contexts}' is neither inbound ({}) nor outbound ({}); name it with --inbound-context or --outbound-context",
            self.inbound.join(", "),
            self.outbound.join(", ")
        )
    }
}

/// One call as a CDR describes it, before it is written as a `call` event.
#[derive(Debug, Clone, Default)]
pub struct CallDraft {
    pub id: String,
    pub call_id: String,
    pub agent_id: String,
    pub disposition: String,
    pub direction: Option<Direction>,
    pub started: Option<Timestamp>,
    pub answered: Option<Timestamp>,
    pub agent_connected: Option<Timestamp>,
    pub ended: Option<Timestamp>,
    pub talk_seconds: Option<i64>,
    pub contact: Option<String>,
    pub prospect_name: Option<String>,
    pub abandoned: bool,
}

impl CallDraft {
    /// The SPEC §3 event.
    pub fn to_event(&self) -> Value {
        let mut e = Map::new();
        let text = |v: &str| Value::String(v.to_string());
        e.insert("id".into(), text(&self.id));
        e.insert("type".into(), text("call"));
        e.insert("call_id".into(), text(&self.call_id));
        e.insert("agent_id".into(), text(&self.agent_id));
        e.insert("disposition".into(), text(&self.disposition));
        if let Some(d) = self.direction {
            e.insert("direction".into(), text(d.as_str()));
        }
        for (field, at) in [
            ("started_at", self.started),
            ("answered_at", self.answered),
            ("agent_connected_at", self.agent_connected),
            ("ended_at", self.ended),
        ] {
            if let Some(at) = at {
                e.insert(field.into(), Value::String(at.to_string()));
            }
        }
        if let Some(talk) = self.talk_seconds {
            e.insert("talk_seconds".into(), talk.into());
        }
        if let Some(contact) = &self.contact {
            e.insert("contact_id".into(), text(contact));
            let mut prospect = Map::new();
            prospect.insert("phone".into(), text(contact));
            if let Some(name) = &self.prospect_name {
                prospect.insert("name".into(), text(name));
            }
            e.insert("prospect".into(), Value::Object(prospect));
        }
        if self.abandoned {
            e.insert("abandoned".into(), true.into());
        }
        Value::Object(e)
    }
}

/// A short, stable id for a record that has none of its own (the hash of its text).
pub fn content_id(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_is_overridden_case_insensitively() {
        let m = Mapping::new(
            TimeZone::UTC,
            &[("answered".into(), "Interested".into())],
            &[],
            &[],
            &["sales-out".into()],
        );
        assert_eq!(m.disposition("ANSWERED"), "Interested");
        assert_eq!(m.disposition("NO ANSWER"), "No Answer");
        assert_eq!(m.disposition("SOMETHING_ELSE"), "SOMETHING_ELSE");
        assert_eq!(m.direction("from-pstn"), Some(Direction::Inbound));
        assert_eq!(m.direction("sales-out"), Some(Direction::Outbound));
        assert_eq!(m.direction("from-internal"), None);
    }
}
