//! The event schema of SPEC §3: parsing a JSON object into a typed event, with every problem
//! reported against the field it concerns.

use crate::clock::{nanos_to_seconds, parse_rfc3339_nanos};
use crate::taxonomy::CompiledTaxonomy;
use crate::FieldError;
use serde_json::Value;
use slots::{Field, Slot, Slots, PROSPECT_FIELDS};
use std::sync::{Arc, OnceLock};

mod slots;

/// The longest id or label accepted; anything longer is almost certainly a client bug.
const MAX_TEXT: usize = 256;

/// One call record, the state after this version. Instants are epoch nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub call_id: String,
    pub event_id: String,
    /// Ordering of versions: `updated_at`, or the record's latest timestamp.
    pub version_ns: i64,
    pub agent_id: String,
    pub team_id: Option<String>,
    pub campaign_id: Option<String>,
    pub list_id: Option<String>,
    pub contact_id: Option<String>,
    pub lead_source: Option<String>,
    pub direction: Option<String>,
    /// The taxonomy's spelling.
    pub disposition: String,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
    pub talk_seconds: Option<i64>,
    pub wait_seconds: Option<i64>,
    pub wrap_seconds: Option<i64>,
    pub voicemail_dropped: bool,
    pub is_callback: bool,
    pub abandoned: bool,
}

impl CallRecord {
    pub fn started_second(&self) -> i64 {
        nanos_to_seconds(self.started_ns)
    }

    pub fn version(&self) -> Version<'_> {
        Version {
            at_ns: self.version_ns,
            event_id: &self.event_id,
        }
    }
}

/// The AI pipeline's analysis of a call. Fractional values are kept in millionths so that sums
/// (and therefore averages) are exact whatever the order of additions and retractions.
#[derive(Debug, Clone, PartialEq)]
pub struct CallAnalysis {
    pub call_id: String,
    pub event_id: String,
    pub version_ns: i64,
    pub score_micros: Option<i64>,
    pub sentiment_micros: Option<i64>,
    pub prospect_sentiment_micros: Option<i64>,
    pub talk_ratio_micros: Option<i64>,
    pub filler_micros: Option<i64>,
    pub intent: Option<String>,
}

impl CallAnalysis {
    pub fn version(&self) -> Version<'_> {
        Version {
            at_ns: self.version_ns,
            event_id: &self.event_id,
        }
    }
}

pub const MICROS: f64 = 1_000_000.0;

#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub event_id: String,
    pub agent_id: String,
    pub status: AgentStatus,
    pub at_ns: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    Idle,
    Dialing,
    OnCall,
    WrapUp,
    Offline,
}

impl AgentStatus {
    pub const NAMES: [&'static str; 5] = ["idle", "dialing", "on_call", "wrap_up", "offline"];

    pub fn parse(s: &str) -> Option<AgentStatus> {
        Some(match s {
            "idle" => AgentStatus::Idle,
            "dialing" => AgentStatus::Dialing,
            "on_call" => AgentStatus::OnCall,
            "wrap_up" => AgentStatus::WrapUp,
            "offline" => AgentStatus::Offline,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Active dialing time is dialing + on a call + wrap-up.
    pub fn is_active(self) -> bool {
        matches!(self, AgentStatus::Dialing | AgentStatus::OnCall | AgentStatus::WrapUp)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageChange {
    pub event_id: String,
    pub contact_id: String,
    pub stage: String,
    pub at_ns: i64,
    pub campaign_id: Option<String>,
    pub lead_source: Option<String>,
    pub agent_id: Option<String>,
    pub call_id: Option<String>,
    /// In the currency's minor units (cents), exact.
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub conversation_id: String,
    pub event_id: String,
    pub version_ns: i64,
    pub channel: String,
    pub opened_ns: i64,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub first_response_ns: Option<i64>,
    pub resolved_ns: Option<i64>,
    pub status: Option<String>,
    pub intent: Option<String>,
}

impl Conversation {
    pub fn version(&self) -> Version<'_> {
        Version {
            at_ns: self.version_ns,
            event_id: &self.event_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CsatScore {
    pub event_id: String,
    pub score: i64,
    pub at_ns: i64,
    pub call_id: Option<String>,
    pub conversation_id: Option<String>,
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Shared: the writer counts the call's version in the rollups (a contribution) while the
    /// request still holds its event; a clone of its ten strings was 4% of the writer's time.
    Call(Arc<CallRecord>),
    Analysis(CallAnalysis),
    Status(StatusChange),
    Stage(StageChange),
    Conversation(Conversation),
    Csat(CsatScore),
}

impl Event {
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Call(_) => "call",
            Event::Analysis(_) => "call_analysis",
            Event::Status(_) => "agent_status",
            Event::Stage(_) => "lead_stage",
            Event::Conversation(_) => "conversation",
            Event::Csat(_) => "csat",
        }
    }

    /// The record a version replaces (`call_id`, `conversation_id`), if this type has versions.
    pub fn record_key(&self) -> Option<&str> {
        match self {
            Event::Call(c) => Some(&c.call_id),
            Event::Analysis(a) => Some(&a.call_id),
            Event::Conversation(c) => Some(&c.conversation_id),
            _ => None,
        }
    }
}

/// How versions of one record are ordered: by time, then by the greater event id, so the
/// outcome never depends on arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version<'a> {
    pub at_ns: i64,
    pub event_id: &'a str,
}

/// Why an event was rejected: its id when it had one, and every problem with its fields.
pub type Rejection = (Option<String>, Vec<FieldError>);

/// A validated event with its id and its original JSON text (kept as the raw log).
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    pub id: String,
    pub event: Event,
    pub raw: String,
    /// Whose records it may replace, when it came through a key bound to an agent or a team;
    /// `None` (an unbound key, an import) for anyone's — and the store then checks nothing.
    pub owner: Option<std::sync::Arc<Owner>>,
}

/// The agent or teams a bound key writes for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Agent(String),
    Teams(Vec<String>),
}

impl Owner {
    /// Whether a stored record of `agent` in `team` is this owner's. A team-bound key owns
    /// records of its teams (by the record's `team_id`).
    pub fn owns(&self, agent: Option<&str>, team: Option<&str>) -> bool {
        match self {
            Owner::Agent(id) => agent == Some(id.as_str()),
            Owner::Teams(teams) => team.is_some_and(|t| teams.iter().any(|x| x == t)),
        }
    }

    /// The field a refused record is named by, and why.
    pub fn refusal(&self, field: &str) -> FieldError {
        let whose = match self {
            Owner::Agent(id) => format!("agent '{id}'"),
            Owner::Teams(teams) => format!("team {}", teams.join(", ")),
        };
        FieldError::new(
            field,
            format!("names a record of another agent; a key bound to {whose} cannot replace it"),
        )
    }
}

/// Validates one event given as JSON text, keeping the text as received — or, when it carries
/// fields SPEC §3 does not define, without them (see [`known_fields`]).
pub fn parse_event_text(text: &str, taxonomy: &CompiledTaxonomy) -> Result<ParsedEvent, Rejection> {
    // The common case in one pass over the text; anything else (not JSON, not an object, keys
    // to drop) through a `Value`, which words the errors and rewrites the raw text.
    let mut slots = Slots::new();
    if slots.read_text(text).is_err() || slots.unknown_keys {
        return parse_event_value_text(text, taxonomy);
    }
    let mut parsed = validate(&slots, taxonomy)?;
    if slots.carries_other_than(known_mask(parsed.event.type_name())) {
        return parse_event_value_text(text, taxonomy);
    }
    parsed.raw = text.to_string();
    Ok(parsed)
}

/// [`parse_event_text`] through a `serde_json::Value`.
fn parse_event_value_text(text: &str, taxonomy: &CompiledTaxonomy) -> Result<ParsedEvent, Rejection> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| (None, vec![FieldError::new("", format!("not valid JSON: {e}"))]))?;
    let mut parsed = validate_value(&value, taxonomy)?;
    parsed.raw = match drop_unknown_fields(&mut value, parsed.event.type_name()) {
        true => value.to_string(),
        false => text.to_string(),
    };
    Ok(parsed)
}

/// The fields of each event type (SPEC §3), besides `id` and `type`.
pub fn known_fields(type_name: &str) -> &'static [&'static str] {
    match type_name {
        "call" => &[
            "call_id",
            "agent_id",
            "started_at",
            "disposition",
            "team_id",
            "campaign_id",
            "list_id",
            "contact_id",
            "direction",
            "answered_at",
            "agent_connected_at",
            "ended_at",
            "wrap_ended_at",
            "talk_seconds",
            "wait_seconds",
            "wrap_seconds",
            "voicemail_dropped",
            "is_callback",
            "abandoned",
            "amd",
            "lead_source",
            "prospect",
            "recording_url",
            "notes",
            // Not an event field of SPEC §3, but a column of the call export (§7): kept when a
            // source sends it.
            "crm_synced",
            "updated_at",
        ],
        "call_analysis" => &[
            "call_id",
            "score",
            "sentiment",
            "prospect_sentiment",
            "agent_talk_ratio",
            "filler_words_per_100",
            "intent",
            "updated_at",
        ],
        "agent_status" => &["agent_id", "status", "at"],
        "lead_stage" => &[
            "contact_id",
            "stage",
            "at",
            "campaign_id",
            "lead_source",
            "agent_id",
            "call_id",
            "amount",
            "currency",
        ],
        "conversation" => &[
            "conversation_id",
            "channel",
            "opened_at",
            "agent_id",
            "team_id",
            "first_response_at",
            "resolved_at",
            "status",
            "intent",
            "labels",
            "updated_at",
        ],
        "csat" => &["score", "at", "call_id", "conversation_id", "agent_id"],
        _ => &[],
    }
}

/// [`known_fields`] of the type, with `id` and `type`, as a set of slots.
fn known_mask(type_name: &str) -> u64 {
    static MASKS: OnceLock<[u64; EVENT_TYPES.len()]> = OnceLock::new();
    let masks = MASKS.get_or_init(|| EVENT_TYPES.map(|t| Slots::mask(known_fields(t)) | Slots::mask(&["id", "type"])));
    EVENT_TYPES.iter().position(|t| *t == type_name).map_or(0, |i| masks[i])
}

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

pub const EVENT_TYPES: [&str; 6] = [
    "call",
    "call_analysis",
    "agent_status",
    "lead_stage",
    "conversation",
    "csat",
];

/// Reads fields off one event object, collecting every problem instead of stopping at the first.
struct Fields<'s, 'a> {
    slots: &'s Slots<'a>,
    errors: Vec<FieldError>,
}

impl<'s, 'a> Fields<'s, 'a> {
    fn error(&mut self, field: Field, message: impl Into<String>) {
        self.errors.push(FieldError::new(field.name(), message));
    }

    /// The field's value unless it is absent or `null`.
    fn present(&self, field: Field) -> Option<&'s Slot<'a>> {
        match self.slots.get(field) {
            Slot::Absent | Slot::Null => None,
            slot => Some(slot),
        }
    }

    fn text(&mut self, field: Field, required: bool) -> Option<String> {
        match self.present(field) {
            None => {
                if required {
                    self.error(field, "is required");
                }
                None
            }
            Some(Slot::Str(s)) if s.is_empty() => {
                self.error(field, "must not be empty");
                None
            }
            Some(Slot::Str(s)) if s.len() > MAX_TEXT => {
                self.error(field, format!("must be at most {MAX_TEXT} bytes"));
                None
            }
            Some(Slot::Str(s)) if crate::has_forbidden_char(s) => {
                let message = crate::forbidden_char_message(s).expect("has one");
                self.error(field, message);
                None
            }
            Some(Slot::Str(s)) => Some(s.to_string()),
            // Integrations often send numeric ids; accept them as their decimal text.
            Some(Slot::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            Some(_) => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    fn required_text(&mut self, field: Field) -> String {
        self.text(field, true).unwrap_or_default()
    }

    fn one_of(&mut self, field: Field, allowed: &[&str]) -> Option<String> {
        let v = self.text(field, false)?;
        if allowed.contains(&v.as_str()) {
            Some(v)
        } else {
            self.error(field, format!("must be one of: {}", allowed.join(", ")));
            None
        }
    }

    fn timestamp(&mut self, field: Field, required: bool) -> Option<i64> {
        match self.present(field) {
            None => {
                if required {
                    self.error(field, "is required");
                }
                None
            }
            Some(Slot::Str(s)) => match parse_rfc3339_nanos(s) {
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

    fn duration(&mut self, field: Field) -> Option<i64> {
        let v = self.present(field)?;
        match v.as_i64() {
            Some(n) if n >= 0 => Some(n),
            _ => {
                self.error(field, "must be a whole number of seconds ≥ 0");
                None
            }
        }
    }

    fn flag(&mut self, field: Field) -> bool {
        match self.present(field) {
            None => false,
            Some(Slot::Bool(b)) => *b,
            Some(_) => {
                self.error(field, "must be true or false");
                false
            }
        }
    }

    fn number(&mut self, field: Field, min: f64, max: f64) -> Option<f64> {
        let v = self.present(field)?;
        match v.as_f64() {
            Some(x) if x.is_finite() && x >= min && x <= max => Some(x),
            _ => {
                self.error(field, format!("must be a number between {min} and {max}"));
                None
            }
        }
    }

    fn micros(&mut self, field: Field, min: f64, max: f64) -> Option<i64> {
        self.number(field, min, max)
            .map(|x| (x * crate::event::MICROS).round() as i64)
    }

    /// A duration given directly, or derived from two timestamps and truncated to seconds.
    fn duration_or_derived(
        &mut self,
        field: Field,
        from: (Field, Option<i64>),
        to: (Field, Option<i64>),
    ) -> Option<i64> {
        if self.present(field).is_some() {
            return self.duration(field);
        }
        let (Some(a), Some(b)) = (from.1, to.1) else {
            return None;
        };
        if b < a {
            self.error(to.0, format!("must not be before {}", from.0.name()));
            return None;
        }
        Some((b - a) / 1_000_000_000)
    }
}

/// Validates one event. `taxonomy` decides which dispositions exist.
pub fn parse_event(value: &Value, taxonomy: &CompiledTaxonomy) -> Result<ParsedEvent, Rejection> {
    let mut parsed = validate_value(value, taxonomy)?;
    let mut value = value.clone();
    drop_unknown_fields(&mut value, parsed.event.type_name());
    parsed.raw = value.to_string();
    Ok(parsed)
}

/// [`validate`] of an event given as a `Value`.
fn validate_value(value: &Value, taxonomy: &CompiledTaxonomy) -> Result<ParsedEvent, Rejection> {
    let Some(slots) = Slots::of_value(value) else {
        return Err((None, vec![FieldError::new("", "each event must be a JSON object")]));
    };
    validate(&slots, taxonomy)
}

/// The validation itself; the caller fills in the raw text.
fn validate(slots: &Slots, taxonomy: &CompiledTaxonomy) -> Result<ParsedEvent, Rejection> {
    let mut f = Fields {
        slots,
        errors: Vec::new(),
    };
    let id = f.required_text(Field::Id);
    let type_name = f.text(Field::Type, true);
    let event = match type_name.as_deref() {
        Some("call") => Some(Event::Call(Arc::new(parse_call(&mut f, &id, taxonomy)))),
        Some("call_analysis") => Some(Event::Analysis(parse_analysis(&mut f, &id))),
        Some("agent_status") => Some(Event::Status(parse_status(&mut f, &id))),
        Some("lead_stage") => Some(Event::Stage(parse_stage(&mut f, &id))),
        Some("conversation") => Some(Event::Conversation(parse_conversation(&mut f, &id))),
        Some("csat") => Some(Event::Csat(parse_csat(&mut f, &id))),
        Some(_) => {
            f.error(
                Field::Type,
                format!("unknown event type; known: {}", EVENT_TYPES.join(", ")),
            );
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
    let call_id = f.required_text(Field::CallId);
    let agent_id = f.required_text(Field::AgentId);
    let started = f.timestamp(Field::StartedAt, true);
    let answered = f.timestamp(Field::AnsweredAt, false);
    let connected = f.timestamp(Field::AgentConnectedAt, false);
    let ended = f.timestamp(Field::EndedAt, false);
    let wrap_ended = f.timestamp(Field::WrapEndedAt, false);
    let updated = f.timestamp(Field::UpdatedAt, false);
    let disposition = match f.text(Field::Disposition, true) {
        Some(d) => match taxonomy.canonical(&d) {
            Some(c) => c.to_string(),
            None => {
                f.error(
                    Field::Disposition,
                    format!("unknown disposition '{d}'; known: {}", taxonomy.known().join(", ")),
                );
                String::new()
            }
        },
        None => String::new(),
    };
    let talk = f.duration_or_derived(
        Field::TalkSeconds,
        (Field::AgentConnectedAt, connected),
        (Field::EndedAt, ended),
    );
    let wait = f.duration_or_derived(
        Field::WaitSeconds,
        (Field::AnsweredAt, answered),
        (Field::AgentConnectedAt, connected),
    );
    let wrap = f.duration_or_derived(
        Field::WrapSeconds,
        (Field::EndedAt, ended),
        (Field::WrapEndedAt, wrap_ended),
    );
    if let (Some(s), Some(e)) = (started, ended) {
        if e < s {
            f.error(Field::EndedAt, "must not be before started_at");
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
        team_id: f.text(Field::TeamId, false),
        campaign_id: f.text(Field::CampaignId, false),
        list_id: f.text(Field::ListId, false),
        contact_id: f.text(Field::ContactId, false),
        lead_source: f.text(Field::LeadSource, false),
        direction: f.one_of(Field::Direction, &["outbound", "inbound"]),
        disposition,
        started_ns: started.unwrap_or_default(),
        ended_ns: ended,
        talk_seconds: talk,
        wait_seconds: wait,
        wrap_seconds: wrap,
        voicemail_dropped: f.flag(Field::VoicemailDropped),
        is_callback: f.flag(Field::IsCallback),
        abandoned: f.flag(Field::Abandoned),
    };
    f.one_of(Field::Amd, &["human", "machine", "unknown"]);
    // Kept in the raw event for the call export's `crm_synced` column (SPEC §7).
    f.flag(Field::CrmSynced);
    for field in [Field::RecordingUrl, Field::Notes] {
        if f.present(field).is_some_and(|v| !v.is_string()) {
            f.error(field, "must be a string");
        }
    }
    if f.present(Field::Prospect)
        .is_some_and(|v| !v.as_value().is_some_and(Value::is_object))
    {
        f.error(Field::Prospect, "must be an object {name, phone, company, timezone}");
    }
    call
}

fn parse_analysis(f: &mut Fields, id: &str) -> CallAnalysis {
    CallAnalysis {
        call_id: f.required_text(Field::CallId),
        event_id: id.to_string(),
        version_ns: f.timestamp(Field::UpdatedAt, false).unwrap_or_default(),
        score_micros: f.micros(Field::Score, 0.0, 100.0),
        sentiment_micros: f.micros(Field::Sentiment, -1.0, 1.0),
        prospect_sentiment_micros: f.micros(Field::ProspectSentiment, -1.0, 1.0),
        talk_ratio_micros: f.micros(Field::AgentTalkRatio, 0.0, 1.0),
        filler_micros: f.micros(Field::FillerWordsPer100, 0.0, 100.0),
        intent: f.text(Field::Intent, false),
    }
}

fn parse_status(f: &mut Fields, id: &str) -> StatusChange {
    let agent_id = f.required_text(Field::AgentId);
    let status = match f.text(Field::Status, true) {
        Some(s) => AgentStatus::parse(&s).unwrap_or_else(|| {
            f.error(
                Field::Status,
                format!("must be one of: {}", AgentStatus::NAMES.join(", ")),
            );
            AgentStatus::Offline
        }),
        None => AgentStatus::Offline,
    };
    let at_ns = f.timestamp(Field::At, true).unwrap_or_default();
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
        contact_id: f.required_text(Field::ContactId),
        stage: f.required_text(Field::Stage),
        at_ns: f.timestamp(Field::At, true).unwrap_or_default(),
        campaign_id: f.text(Field::CampaignId, false),
        lead_source: f.text(Field::LeadSource, false),
        agent_id: f.text(Field::AgentId, false),
        call_id: f.text(Field::CallId, false),
        amount_minor: f.number(Field::Amount, 0.0, 1e13).map(|x| (x * 100.0).round() as i64),
        currency: f.text(Field::Currency, false),
    }
}

fn parse_conversation(f: &mut Fields, id: &str) -> Conversation {
    let opened = f.timestamp(Field::OpenedAt, true);
    let first_response = f.timestamp(Field::FirstResponseAt, false);
    let resolved = f.timestamp(Field::ResolvedAt, false);
    let updated = f.timestamp(Field::UpdatedAt, false);
    for (field, t) in [(Field::FirstResponseAt, first_response), (Field::ResolvedAt, resolved)] {
        if let (Some(o), Some(t)) = (opened, t) {
            if t < o {
                f.error(field, "must not be before opened_at");
            }
        }
    }
    if let Some(labels) = f.present(Field::Labels) {
        if !labels
            .as_value()
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().all(Value::is_string))
        {
            f.error(Field::Labels, "must be an array of strings");
        }
    }
    let latest = [opened, first_response, resolved].into_iter().flatten().max();
    Conversation {
        conversation_id: f.required_text(Field::ConversationId),
        event_id: id.to_string(),
        version_ns: updated.or(latest).unwrap_or_default(),
        channel: f
            .one_of(Field::Channel, &["email", "whatsapp", "chat", "sms", "voice"])
            .unwrap_or_else(|| {
                if f.present(Field::Channel).is_none() {
                    f.error(Field::Channel, "is required");
                }
                String::new()
            }),
        opened_ns: opened.unwrap_or_default(),
        agent_id: f.text(Field::AgentId, false),
        team_id: f.text(Field::TeamId, false),
        first_response_ns: first_response,
        resolved_ns: resolved,
        status: f.text(Field::Status, false),
        intent: f.text(Field::Intent, false),
    }
}

fn parse_csat(f: &mut Fields, id: &str) -> CsatScore {
    let score = match f.present(Field::Score) {
        None => {
            f.error(Field::Score, "is required");
            0
        }
        Some(v) => match v.as_i64() {
            Some(s @ 1..=5) => s,
            _ => {
                f.error(Field::Score, "must be a whole number from 1 to 5");
                0
            }
        },
    };
    CsatScore {
        event_id: id.to_string(),
        score,
        at_ns: f.timestamp(Field::At, true).unwrap_or_default(),
        call_id: f.text(Field::CallId, false),
        conversation_id: f.text(Field::ConversationId, false),
        agent_id: f.text(Field::AgentId, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::Taxonomy;
    use serde_json::json;

    fn parse(v: Value) -> Result<ParsedEvent, Rejection> {
        parse_event(&v, &CompiledTaxonomy::new(&Taxonomy::default()))
    }

    fn fields(v: Value) -> Vec<String> {
        parse(v).unwrap_err().1.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn call_durations_are_derived_and_truncated() {
        let e = parse(json!({"id": "e1", "type": "call", "call_id": "c1", "agent_id": "a1",
            "disposition": "meeting booked", "started_at": "2026-03-01T10:00:00Z",
            "answered_at": "2026-03-01T10:00:05.900Z", "agent_connected_at": "2026-03-01T10:00:07.200Z",
            "ended_at": "2026-03-01T10:02:07.100Z", "wrap_ended_at": "2026-03-01T10:02:37.100Z"}))
        .unwrap();
        let Event::Call(c) = e.event else { panic!() };
        assert_eq!(c.disposition, "Meeting Booked");
        assert_eq!(c.talk_seconds, Some(119)); // 119.9 s truncated
        assert_eq!(c.wait_seconds, Some(1)); // 1.3 s
        assert_eq!(c.wrap_seconds, Some(30));
        assert_eq!(c.version_ns, parse_rfc3339_nanos("2026-03-01T10:02:37.100Z").unwrap());
    }

    #[test]
    fn bidirectional_and_control_characters_are_refused_in_ids() {
        for bad in ["e\u{202E}1", "e\u{2066}1", "e\u{200F}", "e\u{0007}"] {
            let call = json!({"id": bad, "type": "call", "call_id": bad, "agent_id": bad, "team_id": bad,
                "started_at": "2026-03-01T10:00:00Z", "disposition": "Busy"});
            assert_eq!(fields(call), vec!["id", "call_id", "agent_id", "team_id"], "{bad:?}");
        }
        assert!(parse(
            json!({"id": "é-1", "type": "agent_status", "agent_id": "a", "status": "idle",
            "at": "2026-03-01T10:00:00Z"})
        )
        .is_ok());
    }

    #[test]
    fn unknown_fields_are_left_out_of_the_raw_log() {
        let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
        let known = r#"{"id":"e1","type":"agent_status","agent_id":"a","status":"idle","at":"2026-03-01T10:00:00Z"}"#;
        assert_eq!(parse_event_text(known, &taxonomy).unwrap().raw, known, "kept verbatim");
        let padded = format!(
            r#"{{"id":"e1","type":"call","call_id":"c","agent_id":"a","disposition":"Busy","started_at":"2026-03-01T10:00:00Z","junk":"{}","prospect":{{"name":"Ana","blob":"{}"}}}}"#,
            "x".repeat(100_000),
            "y".repeat(100_000)
        );
        let raw: Value = serde_json::from_str(&parse_event_text(&padded, &taxonomy).unwrap().raw).unwrap();
        assert_eq!(raw.get("junk"), None);
        assert_eq!(raw["prospect"], json!({"name": "Ana"}));
        assert_eq!(raw["call_id"], "c");
    }

    #[test]
    fn a_calls_crm_synced_flag_is_kept_for_exports_and_must_be_a_boolean() {
        let call = |synced: Value| {
            parse(
                json!({"id": "e1", "type": "call", "call_id": "c", "agent_id": "a", "disposition": "Busy",
                "started_at": "2026-03-01T10:00:00Z", "crm_synced": synced}),
            )
        };
        let raw: Value = serde_json::from_str(&call(json!(true)).unwrap().raw).unwrap();
        assert_eq!(raw["crm_synced"], true);
        let e = call(json!("yes")).unwrap_err();
        assert_eq!(
            (e.1[0].field.as_str(), e.1[0].message.as_str()),
            ("crm_synced", "must be true or false")
        );
    }

    #[test]
    fn timestamps_outside_the_supported_years_are_refused() {
        for at in ["1969-12-31T23:59:59Z", "2201-01-01T00:00:00Z", "2500-12-31T00:00:00Z"] {
            let e = parse(json!({"id": "e", "type": "agent_status", "agent_id": "a", "status": "idle", "at": at}))
                .unwrap_err();
            assert_eq!(e.1[0].field, "at");
            assert!(
                e.1[0].message.contains("1970-01-01 and 2200-12-31"),
                "{at}: {}",
                e.1[0].message
            );
        }
    }

    #[test]
    fn errors_name_each_field() {
        assert_eq!(
            fields(
                json!({"id": "e1", "type": "call", "call_id": "c1", "disposition": "Maybe",
                "started_at": "yesterday", "talk_seconds": -3})
            ),
            vec!["agent_id", "started_at", "disposition", "talk_seconds"]
        );
        let err = parse(json!({"id": "e1", "type": "call", "call_id": "c", "agent_id": "a",
            "started_at": "2026-03-01T10:00:00Z", "disposition": "Maybe"}))
        .unwrap_err();
        assert!(
            err.1[0].message.contains("Meeting Booked"),
            "lists the known dispositions"
        );
        assert_eq!(fields(json!({"id": "e", "type": "fax"})), vec!["type"]);
        assert_eq!(
            fields(json!({"type": "csat", "score": 9, "at": "2026-03-01T10:00:00Z"})),
            vec!["id", "score"]
        );
        assert_eq!(
            fields(json!({"id": "e", "type": "call", "call_id": "c", "agent_id": "a",
            "started_at": "2026-03-01T10:00:00Z", "disposition": "Busy", "talk_seconds": 1.5})),
            vec!["talk_seconds"]
        );
        assert!(parse(json!([1])).is_err());
    }
}
