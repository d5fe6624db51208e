//! `POST /api/v1/events`: validate each event, store the valid ones durably, report the rest.

use super::auth::Principal;
use super::error::{ApiError, Body};
use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use dialboard_engine::event::parse_event_text;
use dialboard_store::Scope;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub const MAX_EVENTS: usize = 10_000;
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The events of a body, as JSON texts: a JSON array, or NDJSON (one object per line). A line
/// that is not JSON rejects that event only; a body with no JSON at all is a 400.
fn split_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Vec<&'a str>, ApiError> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-ndjson") || ct.starts_with("application/ndjson"));
    if ndjson {
        let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if !lines.iter().any(|l| serde_json::from_str::<IgnoredAny>(l).is_ok()) {
            return Err(ApiError::bad_request("the body is not NDJSON: no line is a JSON value"));
        }
        return Ok(lines);
    }
    match serde_json::from_slice::<Vec<&RawValue>>(body) {
        Ok(items) => Ok(items.into_iter().map(RawValue::get).collect()),
        Err(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => Err(ApiError::bad_request(
            "the body must be a JSON array of events (or NDJSON with Content-Type: application/x-ndjson)",
        )),
        Err(e) => Err(ApiError::bad_request(format!("the body is not valid JSON: {e}"))),
    }
}

pub async fn ingest(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Ingest)?;
    let items = split_body(&headers, &body)?;
    if items.len() > MAX_EVENTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!(
                "a request carries at most {MAX_EVENTS} events; this one has {}",
                items.len()
            ),
        ));
    }
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let mut valid = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, text) in items.into_iter().enumerate() {
        match parse_event_text(text, &tenant.taxonomy) {
            Ok(event) => valid.push(event),
            Err((id, errors)) => rejected.push(json!({"index": index, "id": id, "errors": errors})),
        }
    }
    let summary = state.store.ingest(tenant.id, valid).await?;
    let m = &state.metrics;
    m.events_accepted.fetch_add(summary.accepted as u64, Relaxed);
    m.events_duplicate.fetch_add(summary.duplicates as u64, Relaxed);
    m.events_rejected.fetch_add(rejected.len() as u64, Relaxed);
    Ok(Json(
        json!({"accepted": summary.accepted, "duplicates": summary.duplicates, "rejected": rejected}),
    ))
}
