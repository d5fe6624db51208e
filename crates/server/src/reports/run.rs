//! Answering a report's question as its viewer: a query through the same path as `/query`
//! (the viewer's reach and privacy), a view through [`super::views::run_view`] (the views
//! library, typed); the raw calls behind it (its drill-down) as a `/calls` body; and the
//! answer rendered as CSV, XLSX or PDF — a view's exactly as its own export renders it.
//! A report stores its question, never an answer, so whoever opens it sees only what their
//! own role allows.

use super::tables::{query_chart, query_tables};
use super::views::{query_params, spec_of, view_request};
use super::{Question, ReportDef};
use crate::api::auth::Principal;
use crate::api::error::{ApiError, Code};
use crate::api::query::{params_body, run_query};
use crate::api::AppState;
use crate::exports::Format;
use dialboard_engine::query::Dimension;
use dialboard_engine::FieldError;
use dialboard_export::PdfHeader;
use dialboard_store::TenantInfo;
use dialboard_views::{ViewAnswer, ViewFile};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The answer to `question` as `principal` sees it, as the API answers it (a view's typed
/// answer as its endpoint's JSON).
pub async fn answer(state: &Arc<AppState>, principal: &Principal, question: &Question) -> Result<Value, ApiError> {
    match question {
        Question::Query(query) => run_query(state, principal, query.clone()).await,
        Question::View { view, params } => {
            let (_, answer) = super::views::run_view(state, principal, view, params).await?;
            serde_json::to_value(&answer).map_err(|e| ApiError::new(Code::Internal, e.to_string()))
        }
    }
}

/// Parameters that narrow or move a saved question when it is opened (a dashboard's filters):
/// the range, the zone, and dimension filters, as the views' query strings take them.
pub const FILTER_PARAMS: [&str; 4] = ["preset", "start", "end", "timezone"];

fn is_filter_param(name: &str) -> bool {
    FILTER_PARAMS.contains(&name) || Dimension::parse(name).is_some()
}

/// The question with `filters` applied: a given range (`preset`, or `start` and `end`)
/// replaces the question's, a zone its zone, a dimension's values its filter on that
/// dimension. The viewer's reach still narrows the result. A view that takes no shared
/// filters (a scorecard, trends, coaching) refuses them, naming the parameter.
pub fn with_filters(question: &Question, filters: &HashMap<String, String>) -> Result<Question, ApiError> {
    let filters: Vec<(&String, &String)> = filters.iter().filter(|(k, _)| is_filter_param(k)).collect();
    if filters.is_empty() {
        return Ok(question.clone());
    }
    let moves_range = filters
        .iter()
        .any(|(k, _)| ["preset", "start", "end"].contains(&k.as_str()));
    match question {
        Question::Query(query) => {
            let mut query = query.clone();
            if moves_range {
                query["range"] = json!({});
            }
            for (k, v) in filters {
                match k.as_str() {
                    "preset" | "start" | "end" => query["range"][k] = json!(v),
                    "timezone" => query["timezone"] = json!(v),
                    dim => {
                        if !query["filters"].is_object() {
                            query["filters"] = json!({});
                        }
                        query["filters"][dim] = json!(v.split(',').collect::<Vec<_>>());
                    }
                }
            }
            Ok(Question::Query(query))
        }
        Question::View { view, params } => {
            let spec = spec_of(view).ok_or_else(|| ApiError::not_found(format!("no view '{view}'")))?;
            if !spec.shared {
                let (name, _) = filters[0];
                let message = format!("the '{view}' view takes no shared filters");
                return Err(ApiError::invalid(
                    Code::InvalidRequest,
                    vec![FieldError::new(name.as_str(), message)],
                ));
            }
            let mut params = params.clone();
            if moves_range {
                for key in ["preset", "start", "end"] {
                    params.remove(key);
                }
            }
            for (k, v) in filters {
                params.insert(k.clone(), json!(v));
            }
            Ok(Question::View {
                view: view.clone(),
                params,
            })
        }
    }
}

/// The drill-down body (filters, range, timezone, as `/calls` takes them) of the calls behind a
/// question: a query's own; a view's shared filters, plus the agent, team or campaign its path
/// names, over the range its answer states (a view's own parameters — a date, a period —
/// decide its range, each in its own way).
pub fn drilldown_body(question: &Question, view_answer: Option<&Value>) -> Result<Value, ApiError> {
    match question {
        Question::Query(query) => {
            let mut body = json!({"filters": query.get("filters").cloned().unwrap_or(json!({}))});
            body["range"] = query.get("range").cloned().unwrap_or(json!({"preset": "last_7_days"}));
            if let Some(tz) = query.get("timezone") {
                body["timezone"] = tz.clone();
            }
            Ok(body)
        }
        Question::View { view, params } => {
            let spec = spec_of(view).ok_or_else(|| ApiError::not_found(format!("no view '{view}'")))?;
            let mut shared = query_params(spec, params);
            shared.retain(|k, _| !spec.params.contains(&k.as_str()));
            let (mut body, _) = params_body(&shared, &[], "last_7_days")?;
            let id = spec.path_param.and_then(|p| params.get(p)).and_then(Value::as_str);
            let dimension = match spec.path_param {
                Some("agent_id") => Some("agent"),
                Some("team_id") => Some("team"),
                Some("id") => Some("campaign"),
                _ => None,
            };
            if let (Some(id), Some(dimension)) = (id, dimension) {
                body["filters"][dimension] = json!([id]);
            }
            if let Some(range) = view_answer.and_then(stated_range) {
                body.insert("range".into(), range);
            }
            Ok(Value::Object(body))
        }
    }
}

/// The range a view's answer says it covers: `range` or `period.range`, with a start and an end.
fn stated_range(answer: &Value) -> Option<Value> {
    [&answer["range"], &answer["period"]["range"]]
        .into_iter()
        .find(|r| r["start"].is_string() && r["end"].is_string())
        .map(|r| json!({"start": r["start"], "end": r["end"]}))
}

/// The answer as typed tables and charts, before it becomes a file (see [`render`]).
pub fn file(tenant: &TenantInfo, def: &ReportDef, result: &Value) -> Result<ViewFile, ApiError> {
    Ok(match &def.question {
        Question::View { view, params } => {
            let request = view_request(view, params)?;
            let answer = ViewAnswer::from_json(&request, result.clone())
                .map_err(|e| ApiError::new(Code::Internal, format!("the '{view}' view's answer: {e}")))?;
            let mut file = answer.file(&request, tenant);
            file.header.title = def.name.clone();
            file
        }
        Question::Query(_) => ViewFile {
            header: query_header(tenant, def, result),
            charts: query_chart(&def.name, &def.visualization, result).into_iter().collect(),
            tables: query_tables(&def.name, result),
        },
    })
}

/// The answer (as [`answer`] gives it) as a file in `format`; returns the bytes and the rows
/// of its main table. A view's answer is rendered by the views library as the view's own
/// export is (its charts and tables), under the report's name; a query's as its rows, totals
/// and the chart of its visualization.
pub async fn render(
    tenant: &TenantInfo,
    def: &ReportDef,
    result: &Value,
    format: Format,
) -> Result<(Vec<u8>, usize), ApiError> {
    let file = file(tenant, def, result)?;
    let rows = file.tables.first().map_or(0, |t| t.rows.len());
    let bytes = tokio::task::spawn_blocking(move || match format {
        Format::Csv => file.csv(),
        Format::Xlsx => file.xlsx(),
        Format::Pdf => file.pdf(),
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?
    .map_err(|e| {
        tracing::error!(error = %e, "rendering a report failed");
        ApiError::new(Code::Internal, "rendering the report failed")
    })?;
    Ok((bytes, rows))
}

/// A query report's PDF header: its name, the tenant, the range the answer states and its zone.
fn query_header(tenant: &TenantInfo, def: &ReportDef, result: &Value) -> PdfHeader {
    let question_zone = match &def.question {
        Question::Query(q) => q["timezone"].as_str().map(String::from),
        Question::View { .. } => None,
    };
    let zone_name = question_zone
        .or_else(|| result["timezone"].as_str().map(String::from))
        .unwrap_or_else(|| tenant.settings.timezone.clone());
    let range = match (result["range"]["start"].as_str(), result["range"]["end"].as_str()) {
        (Some(start), Some(end)) => format!("{start} – {end}"),
        _ => String::new(),
    };
    PdfHeader {
        title: def.name.clone(),
        tenant: tenant.name.clone(),
        range,
        zone: jiff::tz::TimeZone::get(&zone_name).unwrap_or(jiff::tz::TimeZone::UTC),
    }
}
