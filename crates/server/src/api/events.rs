//! `POST /api/v1/events`: validate each event, store the valid ones durably, report the rest.

use super::auth::Principal;
use super::auth::Reach;
use super::error::{ApiError, Body, Code};
use super::AppState;
use crate::directory::Directory;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use dialboard_engine::event::{parse_event_text, Event, Owner, ParsedEvent, Rejection};
use dialboard_engine::FieldError;
use dialboard_store::Scope;
use serde::de::IgnoredAny;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
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

/// An event the request carried that was not stored, with why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RejectedEvent {
    /// Each problem, naming its field.
    #[schema(value_type = Vec<super::error::FieldProblem>)]
    pub errors: Vec<FieldError>,
    /// The event's `id`, when it had one.
    pub id: Option<String>,
    /// Its place in the request, from 0.
    pub index: usize,
}

/// `POST /events`: how many events were stored, how many were already stored (by id), and
/// the others with their problems, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestAnswer {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<RejectedEvent>,
}

pub async fn ingest(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<IngestAnswer>, ApiError> {
    principal.require(Scope::Ingest)?;
    let items = split_body(&headers, &body)?;
    if items.len() > MAX_EVENTS {
        return Err(ApiError::new(
            Code::TooManyEvents,
            format!(
                "a request carries at most {MAX_EVENTS} events; this one has {}",
                items.len()
            ),
        ));
    }
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let binding = Binding::of(&state, &principal).await?;
    let mut valid = Vec::with_capacity(items.len());
    // The request index of each valid event, to report what the store refuses.
    let mut indexes = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, text) in items.into_iter().enumerate() {
        let checked = parse_event_text(text, &tenant.taxonomy).and_then(|event| match &binding {
            None => Ok(event),
            Some(b) => b.admit(event),
        });
        match checked {
            Ok(event) => {
                valid.push(event);
                indexes.push(index);
            }
            Err((id, errors)) => rejected.push(RejectedEvent { errors, id, index }),
        }
    }
    // The store may refuse events of any key (a bound key's foreign record, a purged record).
    let ids: Vec<String> = valid.iter().map(|e| e.id.clone()).collect();
    let summary = state.store.ingest(tenant.id, valid).await?;
    for (i, error) in &summary.refused {
        rejected.push(RejectedEvent {
            errors: vec![error.clone()],
            id: Some(ids[*i].clone()),
            index: indexes[*i],
        });
    }
    rejected.sort_by_key(|r| r.index);
    let m = &state.metrics;
    m.events_accepted.fetch_add(summary.accepted as u64, Relaxed);
    m.events_duplicate.fetch_add(summary.duplicates as u64, Relaxed);
    m.events_rejected.fetch_add(rejected.len() as u64, Relaxed);
    Ok(Json(IngestAnswer {
        accepted: summary.accepted,
        duplicates: summary.duplicates,
        rejected,
    }))
}

/// What a key bound to an agent or a team may send: events of its agent (a team-bound key:
/// of its teams' agents, by the directory and the event's `team_id`). The store then refuses
/// to let them replace a record of anyone else (see `Owner`). Unbound keys skip all of it.
struct Binding {
    owner: Arc<Owner>,
    /// A team-bound key's view of the directory: agent → team.
    agent_teams: HashMap<String, Option<String>>,
}

impl Binding {
    async fn of(state: &AppState, principal: &Principal) -> Result<Option<Binding>, ApiError> {
        let owner = match &principal.reach {
            Reach::All => return Ok(None),
            Reach::Agent { id, .. } => Owner::Agent(id.clone()),
            Reach::Teams(teams) => Owner::Teams(teams.clone()),
        };
        let agent_teams = match owner {
            Owner::Teams(_) => Directory::load(state.store.as_ref(), principal.tenant_id)
                .await?
                .agents
                .into_iter()
                .map(|(id, a)| (id, a.team_id))
                .collect(),
            Owner::Agent(_) => HashMap::new(),
        };
        Ok(Some(Binding {
            owner: Arc::new(owner),
            agent_teams,
        }))
    }

    /// The event, marked with its owner, if it is the key's to send; else the field that is not.
    fn admit(&self, mut event: ParsedEvent) -> Result<ParsedEvent, Rejection> {
        let (agent, team) = match &event.event {
            Event::Call(c) => (Some(c.agent_id.as_str()), c.team_id.as_deref()),
            Event::Status(s) => (Some(s.agent_id.as_str()), None),
            Event::Conversation(c) => (c.agent_id.as_deref(), c.team_id.as_deref()),
            Event::Stage(s) => (s.agent_id.as_deref(), None),
            Event::Csat(s) => (s.agent_id.as_deref(), None),
            // An analysis names no agent: the store checks its call's.
            Event::Analysis(_) => (None, None),
        };
        let analysis = matches!(event.event, Event::Analysis(_));
        let refuse =
            |field: &str, message: String| Err((Some(event.id.clone()), vec![FieldError::new(field, message)]));
        match &*self.owner {
            Owner::Agent(id) if !analysis && agent != Some(id.as_str()) => {
                return refuse("agent_id", format!("must be '{id}': this key is bound to that agent"));
            }
            Owner::Teams(teams) if !analysis => {
                let of_teams = |t: Option<&str>| t.is_some_and(|t| teams.iter().any(|x| x == t));
                let listed =
                    |field: &str| format!("{field} must be of team {}: this key is bound to it", teams.join(", "));
                if team.is_some() && !of_teams(team) {
                    return refuse("team_id", listed("team_id"));
                }
                let directory_team = agent.and_then(|a| self.agent_teams.get(a)).and_then(|t| t.as_deref());
                if !of_teams(directory_team) {
                    return refuse(
                        "agent_id",
                        format!(
                            "must be an agent of team {} in the directory: this key is bound to it",
                            teams.join(", ")
                        ),
                    );
                }
            }
            _ => {}
        }
        event.owner = Some(self.owner.clone());
        Ok(event)
    }
}
