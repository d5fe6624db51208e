//! The built-in views a report or a dashboard widget may ask for, and the one function that
//! runs one by name ([`run_view`]). A saved view question is read into the views library's
//! [`ViewRequest`] exactly as the view's URL is, and run by [`dialboard_views::run`] with the
//! viewer's principal — the code `/api/v1/analytics/...` runs — so a report's numbers are the
//! page's numbers.

use super::Problems;
use crate::api::analytics;
use crate::api::auth::Principal;
use crate::api::error::{ApiError, Code};
use crate::api::AppState;
use dialboard_engine::query::Dimension;
use dialboard_store::Scope;
pub use dialboard_views::{spec_of, ViewSpec, VIEWS};
use dialboard_views::{ViewAnswer, ViewRequest};
use serde_json::{Map, Value};
use std::collections::HashMap;

const SHARED_PARAMS: [&str; 4] = ["preset", "start", "end", "timezone"];

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

/// The request a saved view question asks for (its params are a URL's query, with the id its
/// path takes among them); errors name the parameter as the view's endpoint would.
pub fn view_request(name: &str, params: &Map<String, Value>) -> Result<ViewRequest, ApiError> {
    let spec = spec_of(name).ok_or_else(|| ApiError::not_found(format!("no view '{name}'")))?;
    let id = spec.path_param.and_then(|p| params.get(p)).and_then(Value::as_str);
    ViewRequest::from_query(name, id, &query_params(spec, params))
        .map_err(|f| ApiError::invalid(Code::InvalidRequest, f))
}

/// Runs a view as `principal` (their reach, their privacy, their place among running queries),
/// exactly as its endpoint does, and returns the request it ran with its typed answer.
pub async fn run_view(
    state: &AppState,
    principal: &Principal,
    name: &str,
    params: &Map<String, Value>,
) -> Result<(ViewRequest, ViewAnswer), ApiError> {
    principal.require(Scope::Read)?;
    let request = view_request(name, params)?;
    let (cx, _running) = analytics::context(state, principal).await?;
    let answer = dialboard_views::run(&cx, &request).await?;
    Ok((request, answer))
}
