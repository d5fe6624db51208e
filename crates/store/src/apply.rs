//! How accepted events change the current records and the rollups — the same on every store.
//! A store supplies [`Records`]: SQLite answers each read with a query in its open transaction;
//! PostgreSQL from a working set loaded for the whole batch (one round trip per kind of read,
//! not per event). Events are applied one after another, each seeing the ones before it. What
//! changes in the rollups comes out as [`Contribution`]s, turned into cell deltas by the caller.

use crate::contribution::{Contribution, Counted};
use crate::{IngestSummary, Result, TenantInfo};
use dialboard_engine::cells::MEETING_STAGE;
use dialboard_engine::event::{
    AgentStatus, CallAnalysis, CallRecord, Conversation, CsatScore, Event, Owner, ParsedEvent, StageChange,
    StatusChange,
};
use dialboard_engine::FieldError;
use std::sync::Arc;

/// A status's neighbour: when it began, and which it was.
pub type Neighbour = Option<(i64, AgentStatus)>;

/// The current records, as the ingest logic reads and changes them (of one tenant at a time).
pub trait Records {
    /// Logs an event as received; `false` if its id was logged before (a duplicate).
    fn log_event(&mut self, tenant: i64, event: &ParsedEvent, received_ns: i64) -> Result<bool>;
    fn call(&mut self, tenant: i64, call_id: &str) -> Result<Option<CallRecord>>;
    /// Whether the call was stored once and its row purged by retention (its id is still
    /// known, its record gone): a correction or an analysis of it cannot be applied.
    fn purged_call(&mut self, tenant: i64, call_id: &str) -> Result<bool>;
    /// Makes `call` the current version; `previous` is the one it replaces.
    fn put_call(&mut self, tenant: i64, call: &CallRecord, previous: Option<&CallRecord>) -> Result<()>;
    fn analysis(&mut self, tenant: i64, call_id: &str) -> Result<Option<CallAnalysis>>;
    fn put_analysis(&mut self, tenant: i64, analysis: &CallAnalysis) -> Result<()>;
    /// The earliest start of a contact's current calls.
    fn first_call(&mut self, tenant: i64, contact: &str) -> Result<Option<i64>>;
    /// The event by which a contact first reached `stage` (earliest `(at, event id)`).
    fn first_arrival(&mut self, tenant: i64, contact: &str, stage: &str) -> Result<Option<StageChange>>;
    /// Whether the contact may have reached the meeting stage: `false` only if it has not. A
    /// store that can answer this without reading the meeting spares each call that lookup.
    fn may_have_meeting(&mut self, tenant: i64, contact: &str) -> Result<bool> {
        Ok(self.first_arrival(tenant, contact, MEETING_STAGE)?.is_some())
    }
    fn put_stage(&mut self, tenant: i64, stage: &StageChange) -> Result<()>;
    fn conversation(&mut self, tenant: i64, id: &str) -> Result<Option<Conversation>>;
    fn put_conversation(&mut self, tenant: i64, conversation: &Conversation) -> Result<()>;
    fn csat_of_conversation(&mut self, tenant: i64, id: &str) -> Result<Vec<CsatScore>>;
    fn put_csat(&mut self, tenant: i64, score: &CsatScore) -> Result<()>;
    /// Stores a status change; returns the agent's statuses just before and just after it
    /// (ordered by `(at, event id)`).
    fn put_status(&mut self, tenant: i64, status: &StatusChange) -> Result<(Neighbour, Neighbour)>;
}

/// Applies one request's events in order; `stored` gets, per event, whether it was new.
pub fn apply_batch(
    records: &mut impl Records,
    tenant: &TenantInfo,
    events: &[ParsedEvent],
    received_ns: i64,
    out: &mut Vec<Contribution>,
    stored: &mut Vec<bool>,
) -> Result<IngestSummary> {
    let mut summary = IngestSummary::default();
    for (index, e) in events.iter().enumerate() {
        if let Some(owner) = &e.owner {
            if let Some(refusal) = foreign_record(records, tenant, e, owner)? {
                summary.refused.push((index, refusal));
                stored.push(false);
                continue;
            }
        }
        if let Some(refusal) =
            crate::retention::refusal(tenant, e).map_or_else(|| purged_record(records, tenant, e), |r| Ok(Some(r)))?
        {
            summary.refused.push((index, refusal));
            stored.push(false);
            continue;
        }
        let new = records.log_event(tenant.id, e, received_ns)?;
        stored.push(new);
        if !new {
            summary.duplicates += 1;
            continue;
        }
        summary.accepted += 1;
        match &e.event {
            Event::Call(c) => apply_call(records, tenant, c, out)?,
            Event::Analysis(a) => apply_analysis(records, tenant, a, out)?,
            Event::Status(s) => apply_status(records, tenant, s, out)?,
            Event::Stage(s) => apply_stage(records, tenant, s, out)?,
            Event::Conversation(c) => apply_conversation(records, tenant, c, out)?,
            Event::Csat(s) => apply_csat(records, tenant, s, out)?,
        }
    }
    Ok(summary)
}

/// Whether a bound key's event would replace a record its owner does not own: a call or a
/// conversation of another agent (or team), or the analysis of another agent's call. Read in
/// the writer's transaction, so no other request can change the answer before it applies;
/// events of unbound keys never get here.
fn foreign_record(
    records: &mut impl Records,
    tenant: &TenantInfo,
    e: &ParsedEvent,
    owner: &Owner,
) -> Result<Option<FieldError>> {
    let owned_call = |records: &mut _, call_id: &str| -> Result<bool> {
        let call: Option<CallRecord> = Records::call(records, tenant.id, call_id)?;
        Ok(call.is_none_or(|c| owner.owns(Some(&c.agent_id), c.team_id.as_deref())))
    };
    let foreign = match &e.event {
        Event::Call(c) => !owned_call(records, &c.call_id)?,
        Event::Analysis(a) => !owned_call(records, &a.call_id)?,
        Event::Conversation(c) => records
            .conversation(tenant.id, &c.conversation_id)?
            .is_some_and(|old| !owner.owns(old.agent_id.as_deref(), old.team_id.as_deref())),
        Event::Status(_) | Event::Stage(_) | Event::Csat(_) => false,
    };
    let field = match &e.event {
        Event::Conversation(_) => "conversation_id",
        _ => "call_id",
    };
    Ok(foreign.then(|| owner.refusal(field)))
}

/// A correction (moved past the horizon) or an analysis of a call whose row was purged.
fn purged_record(records: &mut impl Records, tenant: &TenantInfo, e: &ParsedEvent) -> Result<Option<FieldError>> {
    let call_id = match &e.event {
        Event::Call(c) => &c.call_id,
        Event::Analysis(a) => &a.call_id,
        _ => return Ok(None),
    };
    Ok(records
        .purged_call(tenant.id, call_id)?
        .then(crate::retention::purged_call_refusal))
}

/// `new` is counted instead of `old` (if anything was counted before).
fn replace(out: &mut Vec<Contribution>, old: Option<Counted>, new: Counted) {
    out.extend(old.map(Contribution::take_back));
    out.push(Contribution::add(new));
}

/// A newer version retracts the current one's contribution and adds its own; an older one
/// (a late or stale version) changes nothing but the raw log.
fn apply_call(
    records: &mut impl Records,
    tenant: &TenantInfo,
    call: &Arc<CallRecord>,
    out: &mut Vec<Contribution>,
) -> Result<()> {
    let current = records.call(tenant.id, &call.call_id)?;
    if current.as_ref().is_some_and(|c| c.version() >= call.version()) {
        return Ok(());
    }
    let analysis = records.analysis(tenant.id, &call.call_id)?;
    // The contacts whose first call this version may change: the old one's and the new one's
    // (once each; without a `Vec`, an allocation a call).
    let new_contact = call.contact_id.as_deref();
    let old_contact = current
        .as_ref()
        .and_then(|c| c.contact_id.as_deref())
        .filter(|old| Some(*old) != new_contact);
    // The first calls of those that may have a meeting; the meeting itself is read only if the
    // first call moves (rare: a call earlier than the contact's first, or a correction of it).
    let mut firsts = Vec::new();
    for contact in old_contact.into_iter().chain(new_contact) {
        if records.may_have_meeting(tenant.id, contact)? {
            firsts.push((contact, records.first_call(tenant.id, contact)?));
        }
    }
    records.put_call(tenant.id, call, current.as_ref())?;
    let mut meetings = Vec::new();
    for (contact, before) in firsts {
        let after = records.first_call(tenant.id, contact)?;
        if after != before {
            if let Some(meeting) = records.first_arrival(tenant.id, contact, MEETING_STAGE)? {
                meetings.push((meeting, before, after));
            }
        }
    }
    let old = current.map(|call| Counted::Call {
        call: Arc::new(call),
        analysis: analysis.clone(),
    });
    let new = Counted::Call {
        call: Arc::clone(call),
        analysis,
    };
    replace(out, old, new);
    // A meeting counts the days since its contact's first call: when that moves, so does it.
    for (meeting, before, after) in meetings {
        let old = Counted::Stage {
            stage: meeting.clone(),
            first_call_ns: before,
        };
        let new = Counted::Stage {
            stage: meeting,
            first_call_ns: after,
        };
        replace(out, Some(old), new);
    }
    Ok(())
}

fn apply_analysis(
    records: &mut impl Records,
    tenant: &TenantInfo,
    analysis: &CallAnalysis,
    out: &mut Vec<Contribution>,
) -> Result<()> {
    let current = records.analysis(tenant.id, &analysis.call_id)?;
    if current.as_ref().is_some_and(|a| a.version() >= analysis.version()) {
        return Ok(());
    }
    if let Some(call) = records.call(tenant.id, &analysis.call_id)? {
        let call = Arc::new(call);
        let old = Counted::Call {
            call: call.clone(),
            analysis: current,
        };
        let new = Counted::Call {
            call,
            analysis: Some(analysis.clone()),
        };
        replace(out, Some(old), new);
    }
    records.put_analysis(tenant.id, analysis)
}

/// A newer version retracts the current one's contribution and adds its own. When the channel
/// changes (or the conversation arrives after its CSAT scores), the scores move channel too.
fn apply_conversation(
    records: &mut impl Records,
    tenant: &TenantInfo,
    c: &Conversation,
    out: &mut Vec<Contribution>,
) -> Result<()> {
    let current = records.conversation(tenant.id, &c.conversation_id)?;
    if current.as_ref().is_some_and(|old| old.version() >= c.version()) {
        return Ok(());
    }
    records.put_conversation(tenant.id, c)?;
    let old_channel = current.as_ref().map(|o| o.channel.clone());
    replace(out, current.map(Counted::Ticket), Counted::Ticket(c.clone()));
    if old_channel.as_deref() != Some(c.channel.as_str()) {
        for score in records.csat_of_conversation(tenant.id, &c.conversation_id)? {
            let old = Counted::Csat {
                score: score.clone(),
                channel: old_channel.clone(),
            };
            let new = Counted::Csat {
                score,
                channel: Some(c.channel.clone()),
            };
            replace(out, Some(old), new);
        }
    }
    Ok(())
}

/// A score counts in its conversation's channel, as far as that is known yet.
fn apply_csat(
    records: &mut impl Records,
    tenant: &TenantInfo,
    s: &CsatScore,
    out: &mut Vec<Contribution>,
) -> Result<()> {
    records.put_csat(tenant.id, s)?;
    let channel = match &s.conversation_id {
        Some(id) => records.conversation(tenant.id, id)?.map(|c| c.channel),
        None => None,
    };
    out.push(Contribution::add(Counted::Csat {
        score: s.clone(),
        channel,
    }));
    Ok(())
}

/// Only a contact's first arrival at a stage counts: an earlier event arriving late retracts
/// the one that counted so far.
fn apply_stage(
    records: &mut impl Records,
    tenant: &TenantInfo,
    s: &StageChange,
    out: &mut Vec<Contribution>,
) -> Result<()> {
    let first = records.first_arrival(tenant.id, &s.contact_id, &s.stage)?;
    records.put_stage(tenant.id, s)?;
    if first
        .as_ref()
        .is_some_and(|f| (f.at_ns, f.event_id.as_str()) < (s.at_ns, s.event_id.as_str()))
    {
        return Ok(());
    }
    let first_call = match s.stage.as_str() {
        MEETING_STAGE => records.first_call(tenant.id, &s.contact_id)?,
        _ => None,
    };
    let counted = |stage| Counted::Stage {
        stage,
        first_call_ns: first_call,
    };
    replace(out, first.map(counted), counted(s.clone()));
    Ok(())
}

/// A status lasts until the agent's next one. A status arriving between two others splits
/// their interval: the old interval is retracted and the two new ones added.
fn apply_status(
    records: &mut impl Records,
    tenant: &TenantInfo,
    s: &StatusChange,
    out: &mut Vec<Contribution>,
) -> Result<()> {
    let (previous, next) = records.put_status(tenant.id, s)?;
    let mut interval = |status, from_ns, to_ns, sign| {
        let counted = Counted::Activity {
            agent_id: s.agent_id.clone(),
            status,
            from_ns,
            to_ns,
        };
        out.push(Contribution { sign, counted })
    };
    if let (Some((p_at, p_status)), Some((n_at, _))) = (previous, next) {
        interval(p_status, p_at, n_at, -1);
    }
    if let Some((p_at, p_status)) = previous {
        interval(p_status, p_at, s.at_ns, 1);
    }
    if let Some((n_at, _)) = next {
        interval(s.status, s.at_ns, n_at, 1);
    }
    Ok(())
}
