//! One event object read into a fixed array of slots, one per field SPEC §3 defines: a single
//! pass over the object's keys, each value kept as it came (a string borrowed from the request
//! text when it has no escapes). Validation then reads a field by its index instead of building a
//! `serde_json::Value` tree and walking a string-keyed map for each lookup — on the ingest path,
//! that tree and those lookups were most of the HTTP workers' CPU per event.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

macro_rules! fields {
    ($($field:ident = $name:literal,)*) => {
        /// Every field of every event type (SPEC §3), `id` and `type` included.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Field {
            $($field,)*
        }

        impl Field {
            const COUNT: usize = [$($name,)*].len();

            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Field::$field => $name,)*
                }
            }

            pub(crate) fn from_name(name: &str) -> Option<Field> {
                match name {
                    $($name => Some(Field::$field),)*
                    _ => None,
                }
            }
        }
    };
}

fields! {
    Id = "id",
    Type = "type",
    CallId = "call_id",
    AgentId = "agent_id",
    StartedAt = "started_at",
    Disposition = "disposition",
    TeamId = "team_id",
    CampaignId = "campaign_id",
    ListId = "list_id",
    ContactId = "contact_id",
    Direction = "direction",
    AnsweredAt = "answered_at",
    AgentConnectedAt = "agent_connected_at",
    EndedAt = "ended_at",
    WrapEndedAt = "wrap_ended_at",
    TalkSeconds = "talk_seconds",
    WaitSeconds = "wait_seconds",
    WrapSeconds = "wrap_seconds",
    VoicemailDropped = "voicemail_dropped",
    IsCallback = "is_callback",
    Abandoned = "abandoned",
    Amd = "amd",
    LeadSource = "lead_source",
    Prospect = "prospect",
    RecordingUrl = "recording_url",
    Notes = "notes",
    CrmSynced = "crm_synced",
    UpdatedAt = "updated_at",
    Score = "score",
    Sentiment = "sentiment",
    ProspectSentiment = "prospect_sentiment",
    AgentTalkRatio = "agent_talk_ratio",
    FillerWordsPer100 = "filler_words_per_100",
    Intent = "intent",
    Status = "status",
    At = "at",
    Stage = "stage",
    Amount = "amount",
    Currency = "currency",
    ConversationId = "conversation_id",
    Channel = "channel",
    OpenedAt = "opened_at",
    FirstResponseAt = "first_response_at",
    ResolvedAt = "resolved_at",
    Labels = "labels",
}

// A set of fields is a bit mask.
const _: () = assert!(Field::COUNT <= 64);

impl Field {
    fn bit(self) -> u64 {
        1 << self as u32
    }
}

/// A field's value as the event gave it; arrays and objects (a call's `prospect`, a
/// conversation's `labels`) as `Value`s, being rare and only checked for shape.
#[derive(Debug, Clone)]
pub(crate) enum Slot<'a> {
    Absent,
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Other(Cow<'a, Value>),
}

impl Slot<'_> {
    /// As `Value::as_i64`.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Slot::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// As `Value::as_f64`.
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Slot::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub(crate) fn is_string(&self) -> bool {
        matches!(self, Slot::Str(_))
    }

    pub(crate) fn as_value(&self) -> Option<&Value> {
        match self {
            Slot::Other(v) => Some(v),
            _ => None,
        }
    }

    fn of_value(value: &Value) -> Slot<'_> {
        match value {
            Value::Null => Slot::Null,
            Value::Bool(b) => Slot::Bool(*b),
            Value::Number(n) => Slot::Number(n.clone()),
            Value::String(s) => Slot::Str(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Slot::Other(Cow::Borrowed(value)),
        }
    }
}

/// The fields a prospect object may carry; the raw log keeps no others.
pub(crate) const PROSPECT_FIELDS: [&str; 4] = ["name", "phone", "company", "timezone"];

/// One event object's fields.
pub(crate) struct Slots<'a> {
    values: [Slot<'a>; Field::COUNT],
    /// The fields the object carries (a `null` included).
    present: u64,
    /// Whether it carries a key no event type defines, or a prospect key outside
    /// [`PROSPECT_FIELDS`].
    pub(crate) unknown_keys: bool,
}

impl<'a> Slots<'a> {
    pub(crate) fn new() -> Self {
        Slots {
            values: [const { Slot::Absent }; Field::COUNT],
            present: 0,
            unknown_keys: false,
        }
    }

    /// The field's slot; a later duplicate key replaces an earlier one, as in `serde_json::Map`.
    fn set(&mut self, field: Field, slot: Slot<'a>) {
        if let (Field::Prospect, Slot::Other(v)) = (field, &slot) {
            if let Value::Object(prospect) = v.as_ref() {
                self.unknown_keys |= prospect.keys().any(|k| !PROSPECT_FIELDS.contains(&k.as_str()));
            }
        }
        self.present |= field.bit();
        self.values[field as usize] = slot;
    }

    pub(crate) fn get(&self, field: Field) -> &Slot<'a> {
        &self.values[field as usize]
    }

    /// Whether it carries any field outside `allowed` (a set of [`Field::bit`]s).
    pub(crate) fn carries_other_than(&self, allowed: u64) -> bool {
        self.present & !allowed != 0
    }

    /// The slots of a JSON object; `None` for any other value.
    pub(crate) fn of_value(value: &'a Value) -> Option<Slots<'a>> {
        let mut slots = Slots::new();
        for (key, value) in value.as_object()? {
            match Field::from_name(key) {
                Some(field) => slots.set(field, Slot::of_value(value)),
                None => slots.unknown_keys = true,
            }
        }
        Some(slots)
    }

    /// Reads an event given as JSON text into these (empty) slots, in one pass; in place, as
    /// they are a few kilobytes to copy. An error for text that is not JSON or not an object:
    /// the caller then takes the `Value` path, whose messages it keeps.
    pub(crate) fn read_text(&mut self, text: &'a str) -> serde_json::Result<()> {
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(ObjectVisitor(self))?;
        de.end()
    }

    /// The set of fields `names` as [`Field::bit`]s (each name must be a [`Field`]).
    pub(crate) fn mask(names: &[&str]) -> u64 {
        names
            .iter()
            .map(|n| Field::from_name(n).expect("a field of SPEC §3").bit())
            .fold(0, |a, b| a | b)
    }
}

struct ObjectVisitor<'s, 'de>(&'s mut Slots<'de>);

impl<'de> Visitor<'de> for ObjectVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let slots = self.0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Some(field) => {
                    let slot = map.next_value_seed(SlotSeed)?;
                    slots.set(field, slot);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    slots.unknown_keys = true;
                }
            }
        }
        Ok(())
    }
}

/// A key as its [`Field`], without allocating (`None`: no event type defines it).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<Field>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Field>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<Field>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<Field>, E> {
        Ok(Field::from_name(key))
    }
}

/// A value as its [`Slot`], the way `serde_json::Value` would have read it.
struct SlotSeed;

impl<'de> DeserializeSeed<'de> for SlotSeed {
    type Value = Slot<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Slot<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SlotSeed {
    type Value = Slot<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Slot<'de>, E> {
        Ok(Slot::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Slot<'de>, E> {
        Ok(Slot::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Slot<'de>, E> {
        Ok(Slot::Number(n.into()))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Slot<'de>, E> {
        Ok(Number::from_f64(x).map_or(Slot::Null, Slot::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Null)
    }

    fn visit_none<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Null)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Slot<'de>, S::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Slot::Other(Cow::Owned(Value::Array(items))))
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Slot<'de>, M::Error> {
        let mut object = Map::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(Slot::Other(Cow::Owned(Value::Object(object))))
    }
}
