//! Types the views' answers share.

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use std::collections::BTreeMap;

/// A measure's value as `/query` gives it: an integer for counts, a float otherwise, `null`
/// when it cannot be computed (a zero denominator, a measure hidden from the caller).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Option<f64>)]
pub struct Metric(pub Option<Number>);

impl Metric {
    pub fn as_f64(&self) -> Option<f64> {
        self.0.as_ref().and_then(Number::as_f64)
    }
}

/// Values by measure name (a query's totals, a comparison's change in percent).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Measures(pub BTreeMap<String, Metric>);

impl std::ops::Deref for Measures {
    type Target = BTreeMap<String, Metric>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromIterator<(String, Metric)> for Measures {
    fn from_iter<I: IntoIterator<Item = (String, Metric)>>(iter: I) -> Measures {
        Measures(iter.into_iter().collect())
    }
}

/// A range as resolved: local starts as RFC 3339 with their offsets (or local dates where the
/// view speaks in dates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Range {
    pub start: String,
    pub end: String,
}

/// A range as asked: a preset, or start and end.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RangeAsked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// The resolved range of a view's main query, its zone and totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Period {
    pub range: Range,
    pub timezone: String,
    pub totals: Measures,
}

/// A compared query's comparison, as `/query` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueryComparison {
    pub range: Range,
    pub columns: Vec<String>,
    /// Key columns then measures, in `columns`' order.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub rows: Vec<Vec<Value>>,
    pub totals: Measures,
    pub truncated: bool,
    pub change_percent: Measures,
}

/// Only the range of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComparedRange {
    pub range: Range,
}

pub(crate) fn metric(v: Option<&Value>) -> Metric {
    match v {
        Some(Value::Number(n)) => Metric(Some(n.clone())),
        _ => Metric(None),
    }
}

pub(crate) fn measures(v: &Value) -> Measures {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), metric(Some(v))))
        .collect()
}

pub(crate) fn range_of(v: &Value) -> Range {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Range {
        start: text("start"),
        end: text("end"),
    }
}

pub(crate) fn range_asked(v: Option<&Value>) -> RangeAsked {
    v.cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

pub(crate) fn comparison_of(v: &Value) -> Option<QueryComparison> {
    let c = v.get("comparison")?;
    Some(QueryComparison {
        range: range_of(&c["range"]),
        columns: serde_json::from_value(c["columns"].clone()).unwrap_or_default(),
        rows: serde_json::from_value(c["rows"].clone()).unwrap_or_default(),
        totals: measures(&c["totals"]),
        truncated: c["truncated"].as_bool().unwrap_or(false),
        change_percent: measures(&c["change_percent"]),
    })
}

pub(crate) fn compared_range(v: &Value) -> Option<ComparedRange> {
    v.get("comparison").map(|c| ComparedRange {
        range: range_of(&c["range"]),
    })
}
