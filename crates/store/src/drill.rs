//! The drill-down (`GET /calls`, `GET /calls/{id}`), the same on both stores: the request is
//! parsed with the query model's filters, rows come newest first from the store, and a page
//! ends after `limit` matches with a cursor to the next.

use crate::{call_json, CallsPage, CallsRequest, Result, TenantInfo};
use dialboard_engine::cells::call_dim_values;
use dialboard_engine::event::{CallAnalysis, CallRecord};
use dialboard_engine::query::{self, passes_filters, AgentTeams, Query};
use dialboard_engine::FieldError;
use serde_json::{json, Value};

/// A parsed drill-down: the query (filters, range, zone) and the row to continue after
/// (start ns and call id; the first page starts after `(i64::MAX, "")`).
pub struct Drill {
    pub query: Query,
    pub after: (i64, String),
}

pub fn parse(tenant: &TenantInfo, request: &CallsRequest, now: i64) -> Result<Drill, Vec<FieldError>> {
    // A drill-down lists calls, which carry their team: no activity to attribute.
    let no_activity = AgentTeams::new();
    let ctx = tenant.context(now, None, &no_activity);
    let query = query::parse_drilldown(&request.query, &ctx)?;
    let after = match &request.cursor {
        None => (i64::MAX, String::new()),
        Some(c) => {
            decode_cursor(c).ok_or_else(|| vec![FieldError::new("cursor", "is not a cursor this API returned")])?
        }
    };
    Ok(Drill { query, after })
}

/// One page from `rows` (newest first, starting after the cursor): the first `limit` that pass
/// the filters, and a cursor if another one follows.
pub fn page(
    tenant: &TenantInfo,
    drill: &Drill,
    limit: usize,
    rows: impl Iterator<Item = Result<(CallRecord, Option<CallAnalysis>)>>,
) -> Result<CallsPage> {
    let q = &drill.query;
    let mut calls: Vec<(CallRecord, Option<CallAnalysis>)> = Vec::new();
    let mut next_cursor = None;
    for row in rows {
        let (call, analysis) = row?;
        let t = call.started_second();
        let values = call_dim_values(&call, analysis.as_ref());
        if !passes_filters(
            &q.filters,
            &values,
            q.clock.hour_of_day(t),
            q.clock.day_of_week(t),
            &tenant.taxonomy,
        ) {
            continue;
        }
        if calls.len() == limit {
            // Another match exists: the next page starts after the last one returned.
            let (last, _) = calls.last().expect("limit ≥ 1");
            next_cursor = Some(encode_cursor(last.started_ns, &last.call_id));
            break;
        }
        calls.push((call, analysis));
    }
    let calls = calls
        .iter()
        .map(|(c, a)| call_json(c, a.as_ref(), &q.clock, &tenant.taxonomy))
        .collect();
    Ok(CallsPage { calls, next_cursor })
}

/// A version of a call as received: event id, type, arrival (ns) and body.
pub struct Version {
    pub event_id: String,
    pub kind: String,
    pub received_ns: i64,
    pub body: String,
}

/// One call with its analysis and every version received (oldest first).
pub fn detail(
    tenant: &TenantInfo,
    call: &CallRecord,
    analysis: Option<&CallAnalysis>,
    versions: Vec<Version>,
) -> Value {
    let current = [Some(call.event_id.as_str()), analysis.map(|a| a.event_id.as_str())];
    let versions = versions
        .into_iter()
        .map(|v| {
            json!({
                "event_id": v.event_id,
                "type": v.kind,
                "received_at": tenant.clock.format(v.received_ns.div_euclid(1_000_000_000)),
                "current": current.contains(&Some(v.event_id.as_str())),
                "event": serde_json::from_str::<Value>(&v.body).unwrap_or(Value::Null),
            })
        })
        .collect();
    let mut out = call_json(call, analysis, &tenant.clock, &tenant.taxonomy);
    out["versions"] = Value::Array(versions);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Paging cursor: the last row's start and call id, opaque to clients.
fn encode_cursor(started_ns: i64, call_id: &str) -> String {
    hex(format!("{started_ns}:{call_id}").as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(unhex(cursor)?).ok()?;
    let (ns, id) = text.split_once(':')?;
    Some((ns.parse().ok()?, id.to_string()))
}
