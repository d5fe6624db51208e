//! The event validation as it was before events were parsed into slots (main at 89f7d18): a
//! `serde_json::Value` tree per event and a `BTreeMap` lookup per field. Kept verbatim as the
//! oracle of `event_parsing.rs`, which checks the slot parser accepts, rejects and stores
//! exactly what this did.
#![allow(dead_code)]

use dialboard_engine::clock::parse_rfc3339_nanos;
use dialboard_engine::event::*;
use dialboard_engine::taxonomy::CompiledTaxonomy;
use dialboard_engine::FieldError;
use serde_json::{Map, Value};

const MAX_TEXT: usize = 256;

/// Validates one event given as JSON text, keeping the text as received — or, when it carries
/// fields SPEC §3 does not define, without them (see [`known_fields`]).
pub fn parse_event_text(text: &str, taxonomy: &CompiledTaxonomy) -> Result<ParsedEvent, Rejection> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| (None, vec![FieldError::new("", format!("not valid JSON: {e}"))]))?;
    let mut parsed = validate(&value, taxonomy)?;
    parsed.raw = match drop_unknown_fields(&mut value, parsed.event.type_name()) {
        true => value.to_string(),
        false => text.to_string(),
    };
    Ok(parsed)
}

const PROSPECT_FIELDS: [&str; 4] = ["name", "phone", "company", "timezone"];

/// Removes the fields an event's type does not define (and a prospect's unknown fields):
/// the raw log keeps what dialboard understands, never an unbounded payload it does not.
/// Returns whether anything was removed; an event without unknown fields is kept verbatim.
fn drop_unknown_fields(value: &mut Value, type_name: &str) -> bool {
    let Some(obj) = value.as_object_mut() else {
        return false;
    };
    let known = known_fields(type_name);
    let before = obj.len();
    obj.retain(|k, _| k == "id" || k == "type" || known.contains(&k.as_str()));
    let mut removed = obj.len() != before;
    if let Some(Value::Object(prospect)) = obj.get_mut("prospect") {
        let before = prospect.len();
        prospect.retain(|k, _| PROSPECT_FIELDS.contains(&k.as_str()));
        removed |= prospect.len() != before;
    }
    removed
}

/// Reads fields off one event object, collecting every problem instead of stopping at the first.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    fn present(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn text(&mut self, field: &str, required: bool) -> Option<String> {
        match self.present(field) {
            None => {
                if required {
                    self.error(field, "is required");
                }
                None
            }
            Some(Value::String(s)) if s.is_empty() => {
                self.error(field, "must not be empty");
                None
            }
            Some(Value::String(s)) if s.len() > MAX_TEXT => {
                self.error(field, format!("must be at most {MAX_TEXT} bytes"));
                None
            }
            Some(Value::String(s)) if s.chars().any(dialboard_engine::is_forbidden_char) => {
                let message = dialboard_engine::forbidden_char_message(s).expect("has one");
                self.error(field, message);
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            // Integrations often send numeric ids; accept them as their decimal text.
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            Some(_) => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    fn required_text(&mut self, field: &str) -> String {
        self.text(field, true).unwrap_or_default()
    }

    fn one_of(&mut self, field: &str, allowed: &[&str]) -> Option<String> {
        let v = self.text(field, false)?;
        if allowed.contains(&v.as_str()) {
            Some(v)
        } else {
            self.error(field, format!("must be one of: {}", allowed.join(", ")));
            None
        }
    }

    fn timestamp(&mut self, field: &str, required: bool) -> Option<i64> {
        match self.present(field) {
            None => {
                if required {
                    self.error(field, "is required");
                }
                None
            }
            Some(Value::String(s)) => match parse_rfc3339_nanos(s) {
                Ok(ns) => Some(ns),
                Err(message) => {
                    self.error(field, message);
                    None
                }
            },
            Some(_) => {
                self.error(field, "must be an RFC 3339 timestamp string");
                None
            }
        }
    }

    fn duration(&mut self, field: &str) -> Option<i64> {
        let v = self.present(field)?;
        match v.as_i64() {
            Some(n) if n >= 0 => Some(n),
            _ => {
                self.error(field, "must be a whole number of seconds ≥ 0");
                None
            }
        }
    }

    fn flag(&mut self, field: &str) -> bool {
        match self.present(field) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.error(field, "must be true or false");
                false
            }
        }
    }

    fn number(&mut self, field: &str, min: f64, max: f64) -> Option<f64> {
        let v = self.present(field)?;
        match v.as_f64() {
            Some(x) if x.is_finite() && x >= min && x <= max => Some(x),
            _ => {
                self.error(field, format!("must be a number between {min} and {max}"));
                None
            }
        }
    }

    fn micros(&mut self, field: &str, min: f64, max: f64) -> Option<i64> {
        self.number(field, min, max).map(|x| (x * MICROS).round() as i64)
    }

    /// A duration given directly, or derived from two timestamps and truncated to seconds.
    fn duration_or_derived(&mut self, field: &str, from: (&str, Option<i64>), to: (&str, Option<i64>)) -> Option<i64> {
        if self.present(field).is_some() {
            return self.duration(field);
        }
        let (Some(a), Some(b)) = (from.1, to.1) else {
            return None;
        };
        if b < a {
            self.error(to.0, format!("must not be before {}", from.0));
            return None;
        }
        Some((b - a) / 1_000_000_000)
    }
}

/// Validates one event. `taxonomy` decides which dispositions exist.
pub fn parse_event(value: &Value, taxonomy: &CompiledTaxonomy) -> Result<ParsedEvent, Rejection> {
    let mut parsed = validate(value, taxonomy)?;
    let mut value = value.clone();
    drop_unknown_fields(&mut value, parsed.event.type_name());
    parsed.raw = value.to_string();
    Ok(parsed)
}

/// The validation itself; the caller fills in the raw text.
fn validate(value: &Value, taxonomy: &CompiledTaxonomy) -> Result<ParsedEvent, Rejection> {
    let Some(obj) = value.as_object() else {
        return Err((None, vec![FieldError::new("", "each event must be a JSON object")]));
    };
    let mut f = Fields {
        obj,
        errors: Vec::new(),
    };
    let id = f.required_text("id");
    let type_name = f.text("type", true);
    let event = match type_name.as_deref() {
        Some("call") => Some(Event::Call(std::sync::Arc::new(parse_call(&mut f, &id, taxonomy)))),
        Some("call_analysis") => Some(Event::Analysis(parse_analysis(&mut f, &id))),
        Some("agent_status") => Some(Event::Status(parse_status(&mut f, &id))),
        Some("lead_stage") => Some(Event::Stage(parse_stage(&mut f, &id))),
        Some("conversation") => Some(Event::Conversation(parse_conversation(&mut f, &id))),
        Some("csat") => Some(Event::Csat(parse_csat(&mut f, &id))),
        Some(_) => {
            f.error("type", format!("unknown event type; known: {}", EVENT_TYPES.join(", ")));
            None
        }
        None => None,
    };
    let known_id = (!id.is_empty()).then(|| id.clone());
    match event {
        Some(event) if f.errors.is_empty() => Ok(ParsedEvent {
            id,
            event,
            raw: String::new(),
            owner: None,
        }),
        _ => Err((known_id, f.errors)),
    }
}

fn parse_call(f: &mut Fields, id: &str, taxonomy: &CompiledTaxonomy) -> CallRecord {
    let call_id = f.required_text("call_id");
    let agent_id = f.required_text("agent_id");
    let started = f.timestamp("started_at", true);
    let answered = f.timestamp("answered_at", false);
    let connected = f.timestamp("agent_connected_at", false);
    let ended = f.timestamp("ended_at", false);
    let wrap_ended = f.timestamp("wrap_ended_at", false);
    let updated = f.timestamp("updated_at", false);
    let disposition = match f.text("disposition", true) {
        Some(d) => match taxonomy.canonical(&d) {
            Some(c) => c.to_string(),
            None => {
                f.error(
                    "disposition",
                    format!("unknown disposition '{d}'; known: {}", taxonomy.known().join(", ")),
                );
                String::new()
            }
        },
        None => String::new(),
    };
    let talk = f.duration_or_derived("talk_seconds", ("agent_connected_at", connected), ("ended_at", ended));
    let wait = f.duration_or_derived(
        "wait_seconds",
        ("answered_at", answered),
        ("agent_connected_at", connected),
    );
    let wrap = f.duration_or_derived("wrap_seconds", ("ended_at", ended), ("wrap_ended_at", wrap_ended));
    if let (Some(s), Some(e)) = (started, ended) {
        if e < s {
            f.error("ended_at", "must not be before started_at");
        }
    }
    let latest = [started, answered, connected, ended, wrap_ended]
        .into_iter()
        .flatten()
        .max();
    let call = CallRecord {
        call_id,
        event_id: id.to_string(),
        version_ns: updated.or(latest).unwrap_or_default(),
        agent_id,
        team_id: f.text("team_id", false),
        campaign_id: f.text("campaign_id", false),
        list_id: f.text("list_id", false),
        contact_id: f.text("contact_id", false),
        lead_source: f.text("lead_source", false),
        direction: f.one_of("direction", &["outbound", "inbound"]),
        disposition,
        started_ns: started.unwrap_or_default(),
        ended_ns: ended,
        talk_seconds: talk,
        wait_seconds: wait,
        wrap_seconds: wrap,
        voicemail_dropped: f.flag("voicemail_dropped"),
        is_callback: f.flag("is_callback"),
        abandoned: f.flag("abandoned"),
    };
    f.one_of("amd", &["human", "machine", "unknown"]);
    // Kept in the raw event for the call export's `crm_synced` column (SPEC §7).
    f.flag("crm_synced");
    for field in ["recording_url", "notes"] {
        if f.present(field).is_some_and(|v| !v.is_string()) {
            f.error(field, "must be a string");
        }
    }
    if f.present("prospect").is_some_and(|v| !v.is_object()) {
        f.error("prospect", "must be an object {name, phone, company, timezone}");
    }
    call
}

fn parse_analysis(f: &mut Fields, id: &str) -> CallAnalysis {
    CallAnalysis {
        call_id: f.required_text("call_id"),
        event_id: id.to_string(),
        version_ns: f.timestamp("updated_at", false).unwrap_or_default(),
        score_micros: f.micros("score", 0.0, 100.0),
        sentiment_micros: f.micros("sentiment", -1.0, 1.0),
        prospect_sentiment_micros: f.micros("prospect_sentiment", -1.0, 1.0),
        talk_ratio_micros: f.micros("agent_talk_ratio", 0.0, 1.0),
        filler_micros: f.micros("filler_words_per_100", 0.0, 100.0),
        intent: f.text("intent", false),
    }
}

fn parse_status(f: &mut Fields, id: &str) -> StatusChange {
    let agent_id = f.required_text("agent_id");
    let status = match f.text("status", true) {
        Some(s) => AgentStatus::parse(&s).unwrap_or_else(|| {
            f.error("status", format!("must be one of: {}", AgentStatus::NAMES.join(", ")));
            AgentStatus::Offline
        }),
        None => AgentStatus::Offline,
    };
    let at_ns = f.timestamp("at", true).unwrap_or_default();
    StatusChange {
        event_id: id.to_string(),
        agent_id,
        status,
        at_ns,
    }
}

fn parse_stage(f: &mut Fields, id: &str) -> StageChange {
    StageChange {
        event_id: id.to_string(),
        contact_id: f.required_text("contact_id"),
        stage: f.required_text("stage"),
        at_ns: f.timestamp("at", true).unwrap_or_default(),
        campaign_id: f.text("campaign_id", false),
        lead_source: f.text("lead_source", false),
        agent_id: f.text("agent_id", false),
        call_id: f.text("call_id", false),
        amount_minor: f.number("amount", 0.0, 1e13).map(|x| (x * 100.0).round() as i64),
        currency: f.text("currency", false),
    }
}

fn parse_conversation(f: &mut Fields, id: &str) -> Conversation {
    let opened = f.timestamp("opened_at", true);
    let first_response = f.timestamp("first_response_at", false);
    let resolved = f.timestamp("resolved_at", false);
    let updated = f.timestamp("updated_at", false);
    for (field, t) in [("first_response_at", first_response), ("resolved_at", resolved)] {
        if let (Some(o), Some(t)) = (opened, t) {
            if t < o {
                f.error(field, "must not be before opened_at");
            }
        }
    }
    if let Some(labels) = f.present("labels") {
        if !labels.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            f.error("labels", "must be an array of strings");
        }
    }
    let latest = [opened, first_response, resolved].into_iter().flatten().max();
    Conversation {
        conversation_id: f.required_text("conversation_id"),
        event_id: id.to_string(),
        version_ns: updated.or(latest).unwrap_or_default(),
        channel: f
            .one_of("channel", &["email", "whatsapp", "chat", "sms", "voice"])
            .unwrap_or_else(|| {
                if f.present("channel").is_none() {
                    f.error("channel", "is required");
                }
                String::new()
            }),
        opened_ns: opened.unwrap_or_default(),
        agent_id: f.text("agent_id", false),
        team_id: f.text("team_id", false),
        first_response_ns: first_response,
        resolved_ns: resolved,
        status: f.text("status", false),
        intent: f.text("intent", false),
    }
}

fn parse_csat(f: &mut Fields, id: &str) -> CsatScore {
    let score = match f.present("score") {
        None => {
            f.error("score", "is required");
            0
        }
        Some(v) => match v.as_i64() {
            Some(s @ 1..=5) => s,
            _ => {
                f.error("score", "must be a whole number from 1 to 5");
                0
            }
        },
    };
    CsatScore {
        event_id: id.to_string(),
        score,
        at_ns: f.timestamp("at", true).unwrap_or_default(),
        call_id: f.text("call_id", false),
        conversation_id: f.text("conversation_id", false),
        agent_id: f.text("agent_id", false),
    }
}
