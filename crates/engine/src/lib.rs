//! dialboard's engine: everything that decides a number, without IO.
//!
//! - [`event`]: the event schema of SPEC §3, parsing and validation with per-field errors.
//! - [`taxonomy`]: a tenant's dispositions and their categories.
//! - [`clock`]: time buckets (15-minute UTC cells, tenant-local hours and days) and ranges.
//! - [`histogram`]: exact integer-second histograms giving PostgreSQL's `PERCENTILE_CONT`.
//! - [`cells`]: rollup cells — cuboids, grains, per-record contributions and their encoding.
//! - [`measures`]: the metric catalogue; every metric's definition lives there, once.
//! - [`query`]: the one query model — validation, planning over cells, aggregation.
//! - [`activity`]: the live feed's items (a call ended, a meeting booked, …).
//! - [`fxhash`]: a fast hasher for maps keyed by cell keys.
//! - [`oracle`]: a brute-force computation over raw records, the reference tests compare with.

pub mod activity;
pub mod alerting;
pub mod cells;
pub mod clock;
pub mod event;
pub mod fairness;
pub mod forecast;
pub mod fxhash;
pub mod gamification;
pub mod histogram;
pub mod measures;
pub mod oracle;
pub mod query;
pub mod schedule;
pub mod staffing;
pub mod taxonomy;

/// A problem with one field of a request or an event; `field` is a JSON path such as
/// `talk_seconds` or `range.start`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Characters refused in ids and names: control characters, and the invisible bidirectional
/// formatting marks (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069) that make a name or
/// an id display as something else ("Trojan Source") in the dashboard, exports and logs.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `s` holds a character of [`is_forbidden_char`]; printable ASCII (most ids) is
/// checked a byte at a time, without decoding characters.
pub fn has_forbidden_char(s: &str) -> bool {
    !s.bytes().all(|b| (b' '..=b'~').contains(&b)) && s.chars().any(is_forbidden_char)
}

/// The message for a text holding a character of [`is_forbidden_char`], if it does.
pub fn forbidden_char_message(s: &str) -> Option<String> {
    let c = s.chars().find(|c| is_forbidden_char(*c))?;
    Some(format!(
        "must not contain control or bidirectional formatting characters (found U+{:04X})",
        c as u32
    ))
}
