//! Alerts (SPEC §7) without IO: a definition checked field by field, the queries that read its
//! numbers (run by the server through the one query path), the readings taken from their
//! answers, and the decision — fire, recover or stay — with hysteresis: a separate recovery
//! threshold, a minimum volume below which nothing is decided, and a re-arm interval.

use crate::measures::measure;
use crate::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    Tenant,
    Team,
    Agent,
    Campaign,
    /// Every agent of a team, each on their own (one state per agent).
    EachAgentOfTeam,
}

impl ScopeKind {
    pub const NAMES: [&'static str; 5] = ["tenant", "team", "agent", "campaign", "each_agent_of_team"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The value goes above the threshold.
    Above,
    /// The value goes below the threshold.
    Below,
    /// The value rises by at least the threshold against the comparison window.
    RisesBy,
    /// The value falls by at least the threshold against the comparison window.
    FallsBy,
}

impl Condition {
    pub const NAMES: [&'static str; 4] = ["above", "below", "rises_by", "falls_by"];

    fn is_change(self) -> bool {
        matches!(self, Condition::RisesBy | Condition::FallsBy)
    }
}

/// The window a change is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareTo {
    /// The window just before.
    PreviousWindow,
    /// The same window a week earlier.
    WeekBefore,
}

/// How a change is counted: in percent of the earlier value, or in the measure's own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChangeUnit {
    #[default]
    Percent,
    Points,
}

/// An alert's definition, as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDef {
    pub name: String,
    pub measure: String,
    pub scope: ScopeKind,
    /// The team, agent or campaign (none for the tenant).
    #[serde(default)]
    pub scope_id: Option<String>,
    /// The window: the last `window_minutes`, ending now.
    pub window_minutes: i64,
    pub condition: Condition,
    pub threshold: f64,
    /// Where it recovers: at or past this value back on the quiet side (default: the
    /// threshold). Above/rises: at or below it; below/falls: at or above it.
    #[serde(default)]
    pub recovery_threshold: Option<f64>,
    /// For `rises_by` / `falls_by`.
    #[serde(default)]
    pub compare_to: Option<CompareTo>,
    #[serde(default)]
    pub change_unit: ChangeUnit,
    /// Below this volume in the window (of `volume_measure`), nothing is decided.
    #[serde(default)]
    pub min_volume: f64,
    #[serde(default = "default_volume_measure")]
    pub volume_measure: String,
    /// After firing, it does not fire again for this long, even if it recovered meanwhile.
    #[serde(default)]
    pub rearm_minutes: i64,
    /// Who is e-mailed when it fires or recovers.
    #[serde(default)]
    pub emails: Vec<String>,
    /// The webhook endpoints notified (ids).
    #[serde(default)]
    pub webhook_ids: Vec<String>,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_volume_measure() -> String {
    "total_calls".into()
}

fn default_enabled() -> bool {
    true
}

/// The longest window: a quarter.
pub const MAX_WINDOW_MINUTES: i64 = 92 * 24 * 60;

impl AlertDef {
    /// Parses and checks a definition; every problem names its field.
    pub fn parse(body: &Value) -> Result<AlertDef, Vec<FieldError>> {
        let def: AlertDef = serde_json::from_value(body.clone()).map_err(|e| vec![serde_field_error(body, &e)])?;
        let errors = def.problems();
        if errors.is_empty() {
            Ok(def)
        } else {
            Err(errors)
        }
    }

    fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: &str| errors.push(FieldError::new(field, message));
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            bad("name", "must be 1 to 200 characters");
        }
        for (field, name) in [("measure", &self.measure), ("volume_measure", &self.volume_measure)] {
            if measure(name).is_none() {
                bad(field, "must be a measure of the catalogue (GET /api/v1/catalogue)");
            }
        }
        match (self.scope, self.scope_id.as_deref()) {
            (ScopeKind::Tenant, Some(_)) => bad("scope_id", "must be absent for the tenant scope"),
            (ScopeKind::Tenant, None) => {}
            (_, None) | (_, Some("")) => bad("scope_id", "is required for this scope"),
            (_, Some(_)) => {}
        }
        if !(1..=MAX_WINDOW_MINUTES).contains(&self.window_minutes) {
            bad("window_minutes", "must be from 1 to 132480 (92 days)");
        }
        if !self.threshold.is_finite() {
            bad("threshold", "must be a number");
        }
        if let Some(r) = self.recovery_threshold {
            let quiet_side = match self.condition {
                Condition::Above | Condition::RisesBy | Condition::FallsBy => r <= self.threshold,
                Condition::Below => r >= self.threshold,
            };
            if !r.is_finite() || !quiet_side {
                bad(
                    "recovery_threshold",
                    match self.condition {
                        Condition::Below => "must be at or above the threshold",
                        _ => "must be at or below the threshold",
                    },
                );
            }
        }
        match (self.condition.is_change(), self.compare_to) {
            (true, None) => bad(
                "compare_to",
                "is required for rises_by and falls_by: previous_window or week_before",
            ),
            (false, Some(_)) => bad("compare_to", "is only for rises_by and falls_by"),
            _ => {}
        }
        if self.condition.is_change() && self.threshold < 0.0 {
            bad("threshold", "must be a change of at least 0");
        }
        if !(self.min_volume.is_finite() && self.min_volume >= 0.0) {
            bad("min_volume", "must be a number at least 0");
        }
        if !(0..=MAX_WINDOW_MINUTES).contains(&self.rearm_minutes) {
            bad("rearm_minutes", "must be from 0 to 132480 (92 days)");
        }
        if self.emails.len() > 50 {
            bad("emails", "at most 50 addresses");
        }
        for (i, e) in self.emails.iter().enumerate() {
            if !plausible_email(e) {
                bad(&format!("emails[{i}]"), "must be an e-mail address");
            }
        }
        if self.webhook_ids.len() > 20 {
            bad("webhook_ids", "at most 20 endpoints");
        }
        errors
    }

    /// The recovery threshold in effect.
    pub fn recovery(&self) -> f64 {
        self.recovery_threshold.unwrap_or(self.threshold)
    }

    /// The queries (SPEC §5 bodies) that read this alert's numbers at `now` (epoch seconds):
    /// the current window, and the comparison window for a change. Windows end at the next
    /// quarter hour after `now`, so they are made of whole 15-minute cells.
    pub fn queries(&self, now: i64) -> (Value, Option<Value>) {
        let window = self.window_minutes * 60;
        let end = (now.div_euclid(900) + 1) * 900;
        let base_end = match self.compare_to {
            Some(CompareTo::PreviousWindow) => Some(end - window),
            Some(CompareTo::WeekBefore) => Some(end - 7 * 86_400),
            None => None,
        };
        let body = |start: i64, end: i64| {
            let mut b = json!({
                "measures": [self.measure, self.volume_measure],
                "range": {"start": rfc3339(start), "end": rfc3339(end)},
                "timezone": "UTC",
            });
            let (dim, id) = match self.scope {
                ScopeKind::Tenant => (None, None),
                ScopeKind::Team => (Some("team"), None),
                ScopeKind::Agent => (Some("agent"), None),
                ScopeKind::Campaign => (Some("campaign"), None),
                ScopeKind::EachAgentOfTeam => (Some("team"), Some("agent")),
            };
            if let (Some(dim), Some(scope_id)) = (dim, &self.scope_id) {
                b["filters"] = json!({ dim: [scope_id] });
            }
            if let Some(by) = id {
                b["dimensions"] = json!([by]);
            }
            b
        };
        (body(end - window, end), base_end.map(|e| body(e - window, e)))
    }

    /// Each subject's reading from the answers of [`AlertDef::queries`]: one subject (`""`)
    /// for a scope, one per agent for each agent of a team.
    pub fn readings(&self, current: &Value, base: Option<&Value>) -> BTreeMap<String, Reading> {
        let current = subjects(current, self.scope);
        let base = base.map(|b| subjects(b, self.scope)).unwrap_or_default();
        current
            .into_iter()
            .map(|(subject, (value, volume))| {
                let (base_value, base_volume) = base.get(&subject).copied().unwrap_or((None, 0.0));
                let reading = Reading {
                    value,
                    volume,
                    base_value: self.compare_to.and(base_value),
                    base_volume: self.compare_to.map(|_| base_volume),
                };
                (subject, reading)
            })
            .collect()
    }

    /// The number the condition compares with its thresholds: the value, or its change.
    pub fn signal(&self, reading: &Reading) -> Option<f64> {
        let value = reading.value?;
        if !self.condition.is_change() {
            return Some(value);
        }
        let base = reading.base_value?;
        let change = match self.change_unit {
            ChangeUnit::Points => value - base,
            ChangeUnit::Percent if base == 0.0 => return None,
            ChangeUnit::Percent => (value - base) / base.abs() * 100.0,
        };
        Some(match self.condition {
            Condition::FallsBy => -change,
            _ => change,
        })
    }

    /// Whether this subject now fires, recovers, or stays as it is.
    pub fn decide(&self, state: &SubjectState, reading: &Reading, now_ms: i64) -> Decision {
        let enough = |volume: f64| volume >= self.min_volume;
        if !enough(reading.volume) || !reading.base_volume.is_none_or(enough) {
            return Decision::Stay;
        }
        let Some(signal) = self.signal(reading) else {
            return Decision::Stay;
        };
        let (crossed, recovered) = match self.condition {
            Condition::Below => (signal < self.threshold, signal >= self.recovery()),
            _ => (signal > self.threshold, signal <= self.recovery()),
        };
        if state.firing {
            return if recovered {
                Decision::Recover(signal)
            } else {
                Decision::Stay
            };
        }
        let rearmed = state
            .last_fired_at
            .is_none_or(|at| now_ms >= at + self.rearm_minutes * 60_000);
        if crossed && rearmed {
            Decision::Fire(signal)
        } else {
            Decision::Stay
        }
    }
}

/// Per subject: the measure's value and the volume, from the answer's rows or totals.
fn subjects(answer: &Value, scope: ScopeKind) -> BTreeMap<String, (Option<f64>, f64)> {
    let mut out = BTreeMap::new();
    if scope == ScopeKind::EachAgentOfTeam {
        for row in answer["rows"].as_array().into_iter().flatten() {
            if let Some(agent) = row[0].as_str() {
                out.insert(agent.to_string(), (row[1].as_f64(), row[2].as_f64().unwrap_or(0.0)));
            }
        }
    } else {
        let totals = &answer["totals"];
        let columns: Vec<&str> = answer["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let value = |i: usize| columns.get(i).and_then(|c| totals[*c].as_f64());
        out.insert(String::new(), (value(0), value(1).unwrap_or(0.0)));
    }
    out
}

/// What a subject's numbers are now.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    /// The measure over the window (`None`: a rate with nothing to divide by).
    pub value: Option<f64>,
    pub volume: f64,
    /// For a change: the measure and the volume over the comparison window.
    pub base_value: Option<f64>,
    pub base_volume: Option<f64>,
}

/// A subject's state between evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SubjectState {
    pub firing: bool,
    /// Epoch ms of the last firing.
    pub last_fired_at: Option<i64>,
}

/// What an evaluation decides for a subject, with the signal it compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Stay,
    Fire(f64),
    Recover(f64),
}

fn rfc3339(epoch_seconds: i64) -> String {
    jiff::Timestamp::from_second(epoch_seconds)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn plausible_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '<' || c == '>')
}

/// Names the field a serde error is about: `unknown field `x``, `missing field `x``, or the
/// field whose value has the wrong type.
fn serde_field_error(body: &Value, e: &serde_json::Error) -> FieldError {
    let text = e.to_string();
    let quoted = text.split('`').nth(1).unwrap_or("");
    if text.starts_with("unknown field") {
        return FieldError::new(quoted, "is not a field of an alert");
    }
    if text.starts_with("missing field") {
        return FieldError::new(quoted, "is required");
    }
    if text.starts_with("unknown variant") {
        let field = body
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(_, v)| v.as_str() == Some(quoted))
                    .map(|(k, _)| k.clone())
            })
            .unwrap_or_default();
        let allowed = match field.as_str() {
            "scope" => ScopeKind::NAMES.join(", "),
            "condition" => Condition::NAMES.join(", "),
            "compare_to" => "previous_window, week_before".into(),
            "change_unit" => "percent, points".into(),
            _ => String::new(),
        };
        return FieldError::new(field, format!("must be one of {allowed}"));
    }
    if !body.is_object() {
        return FieldError::new("body", "must be a JSON object");
    }
    FieldError::new("body", text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn def(condition: Condition, threshold: f64, recovery: Option<f64>) -> AlertDef {
        AlertDef::parse(&json!({
            "name": "t", "measure": "connect_rate", "scope": "tenant", "window_minutes": 60,
            "condition": condition, "threshold": threshold, "recovery_threshold": recovery,
            "compare_to": condition.is_change().then_some("previous_window"),
            "min_volume": 10, "rearm_minutes": 30,
        }))
        .unwrap()
    }

    fn reading(value: f64, volume: f64) -> Reading {
        Reading {
            value: Some(value),
            volume,
            ..Reading::default()
        }
    }

    #[test]
    fn fires_once_recovers_at_the_recovery_threshold_and_rearms() {
        let d = def(Condition::Below, 20.0, Some(30.0));
        let mut s = SubjectState::default();
        assert_eq!(d.decide(&s, &reading(25.0, 50.0), 0), Decision::Stay);
        assert_eq!(d.decide(&s, &reading(10.0, 50.0), 0), Decision::Fire(10.0));
        s = SubjectState {
            firing: true,
            last_fired_at: Some(0),
        };
        // Back over the threshold but under the recovery threshold: still firing.
        assert_eq!(d.decide(&s, &reading(25.0, 50.0), 1), Decision::Stay);
        assert_eq!(d.decide(&s, &reading(30.0, 50.0), 1), Decision::Recover(30.0));
        s.firing = false;
        // Crossed again within the re-arm interval: quiet; after it, fires.
        assert_eq!(d.decide(&s, &reading(5.0, 50.0), 29 * 60_000), Decision::Stay);
        assert_eq!(d.decide(&s, &reading(5.0, 50.0), 30 * 60_000), Decision::Fire(5.0));
        // Low volume decides nothing.
        assert_eq!(
            d.decide(&SubjectState::default(), &reading(0.0, 9.0), 0),
            Decision::Stay
        );
    }

    #[test]
    fn a_change_against_the_comparison_window() {
        let d = def(Condition::FallsBy, 20.0, Some(5.0));
        let r = Reading {
            value: Some(30.0),
            volume: 20.0,
            base_value: Some(40.0),
            base_volume: Some(20.0),
        };
        assert_eq!(d.decide(&SubjectState::default(), &r, 0), Decision::Fire(25.0));
        // The earlier window without volume: nothing decided.
        let thin = Reading {
            base_volume: Some(3.0),
            ..r
        };
        assert_eq!(d.decide(&SubjectState::default(), &thin, 0), Decision::Stay);
        let no_base = Reading { base_value: None, ..r };
        assert_eq!(d.decide(&SubjectState::default(), &no_base, 0), Decision::Stay);
    }

    #[test]
    fn errors_name_the_field() {
        let fields = |body: Value| -> Vec<String> {
            AlertDef::parse(&body)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        let ok = json!({"name": "n", "measure": "connect_rate", "scope": "team", "scope_id": "t1",
            "window_minutes": 60, "condition": "above", "threshold": 5});
        assert!(AlertDef::parse(&ok).is_ok());
        let with = |k: &str, v: Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        assert_eq!(fields(with("measure", json!("nope"))), ["measure"]);
        assert_eq!(fields(with("scope", json!("planet"))), ["scope"]);
        assert_eq!(fields(with("recovery_threshold", json!(9))), ["recovery_threshold"]);
        assert_eq!(fields(with("compare_to", json!("week_before"))), ["compare_to"]);
        assert_eq!(fields(with("window_minutes", json!(0))), ["window_minutes"]);
        assert_eq!(fields(with("emails", json!(["x"]))), ["emails[0]"]);
        assert_eq!(fields(with("colour", json!(1))), ["colour"]);
        let mut no_id = ok.clone();
        no_id.as_object_mut().unwrap().remove("scope_id");
        assert_eq!(fields(no_id), ["scope_id"]);
    }

    #[test]
    fn windows_are_whole_quarters_ending_after_now() {
        let mut d = def(Condition::RisesBy, 10.0, None);
        d.compare_to = Some(CompareTo::WeekBefore);
        let now = 1_772_000_123;
        let (cur, base) = d.queries(now);
        let start = cur["range"]["start"].as_str().unwrap();
        let end = cur["range"]["end"].as_str().unwrap();
        let end_s = end.parse::<jiff::Timestamp>().unwrap().as_second();
        assert!(end_s > now && end_s - now <= 900 && end_s % 900 == 0, "{start} {end}");
        let base_end = base.unwrap()["range"]["end"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
        assert_eq!(base_end.as_second(), end_s - 7 * 86_400);
    }

    proptest! {
        /// Whatever the sequence of readings, firings and recoveries alternate (never two
        /// firings without a recovery between), a firing happens only past the threshold with
        /// enough volume and after the re-arm interval, and a recovery only at the recovery
        /// threshold: no flapping between the two thresholds.
        #[test]
        fn no_flapping(values in proptest::collection::vec((0.0f64..100.0, 0.0f64..40.0), 1..60),
                       threshold in 10.0f64..60.0, gap in 0.0f64..20.0, rearm in 0i64..5) {
            let mut d = def(Condition::Above, threshold, Some(threshold - gap));
            d.rearm_minutes = rearm;
            let mut state = SubjectState::default();
            for (i, (value, volume)) in values.into_iter().enumerate() {
                let now = i as i64 * 60_000;
                match d.decide(&state, &reading(value, volume), now) {
                    Decision::Fire(v) => {
                        prop_assert!(!state.firing && v > threshold && volume >= 10.0);
                        prop_assert!(state.last_fired_at.is_none_or(|at| now - at >= rearm * 60_000));
                        state = SubjectState { firing: true, last_fired_at: Some(now) };
                    }
                    Decision::Recover(v) => {
                        prop_assert!(state.firing && v <= threshold - gap);
                        state.firing = false;
                    }
                    Decision::Stay => {
                        if state.firing && volume >= 10.0 {
                            prop_assert!(value > threshold - gap);
                        }
                    }
                }
            }
        }
    }
}
