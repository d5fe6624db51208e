//! The built-in views a report or a dashboard widget may ask for, and the one function that
//! runs one by name ([`run_view`]). It is deliberately thin: every view is the same function
//! `/api/v1/analytics/...` serves, called with the viewer's principal, so a report's numbers
//! are the page's numbers. When the views move into their own library, only `run_view`
//! changes.

use super::Problems;
use crate::api::analytics;
use crate::api::auth::Principal;
use crate::api::error::{ApiError, Code};
use crate::api::AppState;
use axum::extract::{Path, Query, State};
use dialboard_engine::query::Dimension;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A view: its name (its path under `/analytics/`), the id its path takes if any, and its own
/// parameters besides the shared ones (range, timezone and dimension filters).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ViewSpec {
    pub name: &'static str,
    pub path_param: Option<&'static str>,
    pub params: &'static [&'static str],
    /// Whether it takes the shared range and filters.
    pub shared: bool,
}

const fn spec(
    name: &'static str,
    path_param: Option<&'static str>,
    params: &'static [&'static str],
    shared: bool,
) -> ViewSpec {
    ViewSpec {
        name,
        path_param,
        params,
        shared,
    }
}

pub const VIEWS: [ViewSpec; 17] = [
    spec("metrics", None, &["compare"], true),
    spec("call-metrics", None, &["compare", "granularity"], true),
    spec("dispositions", None, &[], true),
    spec("agent-scorecard", Some("agent_id"), &["period", "date"], false),
    spec("team-leaderboard", Some("team_id"), &["date", "sort_by", "limit"], true),
    spec("leaderboard", None, &["period", "sort_by", "limit"], true),
    spec("call-time-heatmap", None, &["metric"], true),
    spec("trends", Some("agent_id"), &["days"], false),
    spec("pipeline-funnel", None, &["group_by"], true),
    spec("lead-sources", None, &[], true),
    spec("conversion-funnel", None, &["period"], true),
    spec("lead-volume", None, &["period"], true),
    spec("intents", None, &[], true),
    spec("channels", None, &[], true),
    spec("campaigns", Some("id"), &["compare"], true),
    spec("coaching-opportunities", Some("team_id"), &["date"], false),
    spec("compliance", None, &["date"], true),
];

const SHARED_PARAMS: [&str; 4] = ["preset", "start", "end", "timezone"];

pub fn spec_of(name: &str) -> Option<&'static ViewSpec> {
    VIEWS.iter().find(|v| v.name == name)
}

/// Checks a view's name and parameters (values are strings, as in a URL's query); the view
/// checks their values when it runs.
pub fn check(name: &str, params: &Map<String, Value>, problems: &mut Problems) {
    let Some(spec) = spec_of(name) else {
        let names: Vec<&str> = VIEWS.iter().map(|v| v.name).collect();
        problems.add("view", format!("must be one of {}", names.join(", ")));
        return;
    };
    if let Some(id) = spec.path_param {
        if params.get(id).and_then(Value::as_str).is_none_or(str::is_empty) {
            problems.add(format!("params.{id}"), format!("is required by the '{name}' view"));
        }
    }
    for (key, value) in params {
        let known = spec.path_param == Some(key.as_str())
            || spec.params.contains(&key.as_str())
            || (spec.shared && (SHARED_PARAMS.contains(&key.as_str()) || Dimension::parse(key).is_some()));
        if !known {
            problems.add(
                format!("params.{key}"),
                format!("is not a parameter of the '{name}' view"),
            );
        } else if !value.is_string() {
            problems.add(format!("params.{key}"), "must be a string (as in a URL's query)");
        }
    }
}

/// The view's parameters as its query string, without the path's id.
pub fn query_params(spec: &ViewSpec, params: &Map<String, Value>) -> HashMap<String, String> {
    params
        .iter()
        .filter(|(k, _)| spec.path_param != Some(k.as_str()))
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// Runs a view as `principal` (their reach, their privacy), as its endpoint would.
pub async fn run_view(
    state: Arc<AppState>,
    principal: Principal,
    name: &str,
    params: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let spec = spec_of(name).ok_or_else(|| ApiError::not_found(format!("no view '{name}'")))?;
    let query = Query(query_params(spec, params));
    let id = || {
        let field = spec.path_param.unwrap_or_default();
        Path(
            params
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
    };
    let s = State(state);
    let p = principal;
    let answer = match name {
        "metrics" => analytics::metrics(s, p, query).await,
        "call-metrics" => analytics::call_metrics(s, p, query).await,
        "dispositions" => analytics::dispositions(s, p, query).await,
        "agent-scorecard" => analytics::scorecard(s, p, id(), query).await,
        "team-leaderboard" => analytics::team_leaderboard(s, p, id(), query).await,
        "leaderboard" => analytics::tenant_leaderboard(s, p, query).await,
        "call-time-heatmap" => analytics::heatmap(s, p, query).await,
        "trends" => analytics::trends(s, p, id(), query).await,
        "pipeline-funnel" => analytics::pipeline_funnel(s, p, query).await,
        "lead-sources" => analytics::lead_sources(s, p, query).await,
        "conversion-funnel" => analytics::conversion_funnel(s, p, query).await,
        "lead-volume" => analytics::lead_volume(s, p, query).await,
        "intents" => analytics::intents(s, p, query).await,
        "channels" => analytics::channels(s, p, query).await,
        "campaigns" => analytics::campaign(s, p, id(), query).await,
        "coaching-opportunities" => analytics::coaching(s, p, id(), query).await,
        "compliance" => analytics::compliance(s, p, query).await,
        other => return Err(ApiError::not_found(format!("no view '{other}'"))),
    };
    // The handler's own answer, read back: the same parameter checks and numbers as the page.
    let body = axum::body::to_bytes(answer?.into_body(), usize::MAX)
        .await
        .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::new(Code::Internal, e.to_string()))
}
