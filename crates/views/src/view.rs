//! What every view is built from: the caller's base query (range, filters, zone), queries run
//! exactly as `/query` runs them for this caller, and the parameters each part of those
//! queries came from, so a query the engine refuses is reported in the caller's own words.

use crate::directory::Directory;
use crate::params::Shared;
use crate::{Cx, ViewError};
use dialboard_engine::clock::Clock;
use dialboard_engine::FieldError;
use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) struct View<'a> {
    pub cx: &'a Cx,
    /// The query-shaped base: `range`, `filters`, `timezone`.
    pub base: Map<String, Value>,
    /// The zone of the view's dates (the request's `timezone`, else the tenant's).
    pub zone: Clock,
    /// Query fields (a prefix: `range`, `filters.agent`) and the caller's parameter each came
    /// from; the first match wins.
    sources: Vec<(String, String)>,
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ViewError {
    ViewError::invalid(field, message)
}

impl<'a> View<'a> {
    pub fn new(cx: &'a Cx, shared: &Shared, default_preset: &str) -> Result<View<'a>, ViewError> {
        let base = shared.body(default_preset);
        let zone = match &shared.timezone {
            Some(tz) => Clock::new(tz).map_err(|m| invalid("timezone", m))?,
            None => cx.tenant.zone.clone(),
        };
        let whole_range = shared.range_param();
        let mut sources: Vec<(String, String)> = [
            ("timezone", "timezone"),
            ("range.start", "start"),
            ("range.end", "end"),
            ("range.preset", "preset"),
            ("range", whole_range),
            // A compared period out of the calendar comes from the range compared, and too
            // many buckets of the view's own granularity from a range too long for it.
            ("compare", whole_range),
            ("granularity", whole_range),
        ]
        .into_iter()
        .map(|(f, p)| (f.to_string(), p.to_string()))
        .collect();
        for name in shared.filters.keys() {
            sources.push((format!("filters.{name}"), name.clone()));
        }
        Ok(View {
            cx,
            base,
            zone,
            sources,
        })
    }

    /// Records that the query field `field` (and what is under it) comes from the caller's
    /// parameter `param`, ahead of what was recorded before.
    pub fn source(&mut self, field: &str, param: &str) {
        self.sources.insert(0, (field.to_string(), param.to_string()));
    }

    /// Replaces the base range with one the view derived from `param` (a `date`, a `period`).
    pub fn set_range(&mut self, range: Value, param: &str) {
        self.base.insert("range".into(), range);
        self.source("range", param);
        self.source("compare", param);
    }

    /// The caller's parameter behind a query field, if the caller sent anything behind it.
    fn client_field(&self, field: &str, extra: &[(&str, &str)]) -> Option<String> {
        let covers = |prefix: &str| {
            field == prefix
                || field
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        extra
            .iter()
            .map(|(f, p)| (*f, *p))
            .chain(self.sources.iter().map(|(f, p)| (f.as_str(), p.as_str())))
            .find(|(f, _)| covers(f))
            .map(|(_, p)| p.to_string())
    }

    /// The engine's objections to a query this view built, named as the caller named what
    /// caused them; one the caller had no part in is the view's own bug.
    pub fn refused(&self, errors: Vec<FieldError>, extra: &[(&str, &str)]) -> ViewError {
        let mut named = Vec::new();
        for e in errors {
            match self.client_field(&e.field, extra) {
                Some(param) => named.push(FieldError::new(param, e.message)),
                None => return ViewError::Internal(format!("{}: {}", e.field, e.message)),
            }
        }
        ViewError::Invalid(named)
    }

    /// The base query plus `measures`, `dimensions` and `extra` fields; `extra.filters` are
    /// added to the base filters.
    pub fn body(&self, measures: &[&str], dimensions: &[&str], extra: Value) -> Value {
        let mut body = self.base.clone();
        body.insert("measures".into(), json!(measures));
        body.insert("dimensions".into(), json!(dimensions));
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                match (k.as_str(), v) {
                    ("filters", Value::Object(f)) => {
                        let filters = body.entry("filters").or_insert_with(|| json!({}));
                        for (d, values) in f {
                            filters[d] = values;
                        }
                    }
                    (_, Value::Null) => {}
                    (k, v) => {
                        body.insert(k.to_string(), v);
                    }
                }
            }
        }
        Value::Object(body)
    }

    /// Runs one query as `/query` would for this caller.
    pub async fn run(&self, body: Value) -> Result<Value, ViewError> {
        self.run_from(body, &[]).await
    }

    /// [`View::run`] for a query some of whose fields come from other parameters than the
    /// view's base (`extra`: query field → the caller's parameter).
    pub async fn run_from(&self, mut body: Value, extra: &[(&str, &str)]) -> Result<Value, ViewError> {
        let cx = self.cx;
        cx.reach.restrict(&mut body, false).map_err(ViewError::Forbidden)?;
        let asked = body.clone();
        let result = cx.store.query(cx.tenant.id, body, cx.now).await?;
        let mut json = result.map_err(|f| self.refused(f, extra))?.to_json();
        let opted_out = crate::directory::opted_out(cx.store.as_ref(), cx.tenant.id, &cx.reach).await?;
        let privacy = cx.tenant.settings.leaderboard_privacy;
        cx.reach.redact_opted_out(&mut json, privacy, &opted_out, &asked);
        Ok(json)
    }

    pub async fn directory(&self) -> Result<Directory, ViewError> {
        Ok(Directory::load(self.cx.store.as_ref(), self.cx.tenant.id).await?)
    }

    /// The directory's members of `team` that this caller sees by name. Under leaderboard
    /// privacy an agent sees colleagues only as `anonymous` rows: adding their names would
    /// reveal them and count them twice.
    pub fn named_members<'d>(&self, directory: &'d Directory, team: &str) -> Vec<&'d str> {
        match self.cx.reach.only_named(self.cx.tenant.settings.leaderboard_privacy) {
            Some(_) => vec![],
            // Nor those who opted out of public leaderboards, to a colleague.
            None => {
                let own = self.cx.reach.own_agent();
                let out =
                    |a: &str| own.is_some_and(|own| own != a) && directory.agents[a].leaderboard_opt_out == Some(true);
                directory.members(team).into_iter().filter(|a| !out(a)).collect()
            }
        }
    }

    /// A local date parameter, today by default.
    pub fn date(&self, name: &str, value: Option<&str>) -> Result<Date, ViewError> {
        match value {
            None => Ok(self.today()),
            Some(d) => dialboard_engine::clock::parse_date(d).map_err(|message| invalid(name, message)),
        }
    }

    /// The view's zone as asked, else the tenant's.
    pub fn zone_name(&self) -> String {
        self.base
            .get("timezone")
            .and_then(Value::as_str)
            .map_or_else(|| self.cx.tenant.settings.timezone.clone(), String::from)
    }

    pub fn today(&self) -> Date {
        self.zone.date_of(self.cx.now)
    }
}

/// A parameter that must be one of `allowed` (the first is the default).
pub(crate) fn choice(name: &str, value: Option<&str>, allowed: &[&'static str]) -> Result<&'static str, ViewError> {
    match value {
        None => Ok(allowed[0]),
        Some(v) => allowed
            .iter()
            .find(|a| **a == v)
            .copied()
            .ok_or_else(|| invalid(name, format!("must be one of: {}", allowed.join(", ")))),
    }
}

/// `compare` for views with a comparison: `previous_period` unless asked otherwise.
pub(crate) fn compare(value: Option<&str>) -> Result<Value, ViewError> {
    Ok(
        match choice("compare", value, &["previous_period", "same_period_last_year", "none"])? {
            "none" => Value::Null,
            c => json!(c),
        },
    )
}

pub(crate) fn range(start: Date, end: Date) -> Value {
    json!({"start": start.to_string(), "end": end.to_string()})
}

pub(crate) fn days(n: i64) -> jiff::Span {
    n.days()
}

/// `date` moved by `span`, or an error naming `field` (the parameter the date came from) when
/// that leaves the calendar: no unchecked date arithmetic on what a request sent.
pub(crate) fn shifted(date: Date, span: jiff::Span, field: &str) -> Result<Date, ViewError> {
    date.checked_add(span)
        .map_err(|_| invalid(field, dialboard_engine::clock::out_of_range_message()))
}

/// A result's rows as objects keyed by column name.
pub(crate) fn records(result: &Value) -> Vec<Map<String, Value>> {
    let columns: Vec<&str> = result["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    result["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .map(|row| columns.iter().map(|c| c.to_string()).zip(row.iter().cloned()).collect())
        .collect()
}

/// Adds an empty row for each of `agents` that has none (a rep without calls still ranks).
pub(crate) fn add_missing_agents(rows: &mut Vec<Map<String, Value>>, agents: Vec<&str>) {
    let seen: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r["agent"].as_str().map(String::from))
        .collect();
    for agent in agents.into_iter().filter(|a| !seen.contains(*a)) {
        rows.push(Map::from_iter([("agent".to_string(), json!(agent))]));
    }
}

/// Rows keyed by the text value of one column.
pub(crate) fn by_key(result: &Value, column: &str) -> BTreeMap<String, Map<String, Value>> {
    records(result)
        .into_iter()
        .filter_map(|r| Some((r.get(column)?.as_str()?.to_string(), r)))
        .collect()
}

pub(crate) fn num(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(0.0)
}

pub(crate) fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole != 0.0).then(|| part * 100.0 / whole)
}

/// A typed row read back from a query's record (its columns by name).
pub(crate) fn from_record<T: serde::de::DeserializeOwned>(record: Map<String, Value>) -> T {
    serde_json::from_value(Value::Object(record)).expect("a query's record has the row's columns")
}
