//! The parameters every view shares — the range (`preset` or `start`/`end`), `timezone`, and
//! filters by any dimension — and how a query string becomes them.

use dialboard_engine::query::Dimension;
use dialboard_engine::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// The shared parameters of a view (and of a drill-down): what the query string calls
/// `preset`, `start`, `end`, `timezone` and `<dimension>=a,b`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shared {
    /// A range preset (`today`, `last_7_days`, …); the view's own default without a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// A local date or RFC 3339 instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// An IANA zone; the tenant's by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Dimension → the values kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, Vec<String>>,
}

/// An endpoint's own query-string parameters, by name, taken one by one.
#[derive(Debug, Default)]
pub struct Own(pub HashMap<String, String>);

impl Own {
    pub fn text(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// A whole number, or an error naming the parameter.
    pub fn whole(&mut self, name: &str) -> Result<Option<i64>, FieldError> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| FieldError::new(name, format!("must be a whole number, not {v:?}"))),
        }
    }
}

impl Shared {
    /// Splits a query string into the shared parameters and the endpoint's `own` ones;
    /// anything else is an error naming the parameter.
    pub fn from_query(params: &HashMap<String, String>, own: &[&str]) -> Result<(Shared, Own), Vec<FieldError>> {
        let mut shared = Shared::default();
        let mut rest = HashMap::new();
        let mut errors = Vec::new();
        for (name, value) in params {
            match name.as_str() {
                "preset" => shared.preset = Some(value.clone()),
                "start" => shared.start = Some(value.clone()),
                "end" => shared.end = Some(value.clone()),
                "timezone" => shared.timezone = Some(value.clone()),
                n if own.contains(&n) => {
                    rest.insert(name.clone(), value.clone());
                }
                dim if Dimension::parse(dim).is_some() => {
                    shared
                        .filters
                        .insert(name.clone(), value.split(',').map(String::from).collect());
                }
                other => errors.push(FieldError::new(other, "unknown parameter")),
            }
        }
        if errors.is_empty() {
            Ok((shared, Own(rest)))
        } else {
            Err(errors)
        }
    }

    /// The query-shaped body (`range`, `filters`, `timezone`) these parameters ask for, with
    /// `default_preset` when they name no range.
    pub fn body(&self, default_preset: &str) -> Map<String, Value> {
        let mut range = Map::new();
        for (name, value) in [("preset", &self.preset), ("start", &self.start), ("end", &self.end)] {
            if let Some(v) = value {
                range.insert(name.into(), json!(v));
            }
        }
        if range.is_empty() {
            range.insert("preset".into(), json!(default_preset));
        }
        let mut body = Map::new();
        if let Some(tz) = &self.timezone {
            body.insert("timezone".into(), json!(tz));
        }
        body.insert("range".into(), Value::Object(range));
        body.insert("filters".into(), json!(self.filters));
        body
    }

    /// The parameter a problem with the range as a whole is the caller's: `start`/`end` when
    /// they gave them, else `preset`.
    pub(crate) fn range_param(&self) -> &'static str {
        if self.start.is_some() || self.end.is_some() {
            "start"
        } else {
            "preset"
        }
    }
}
