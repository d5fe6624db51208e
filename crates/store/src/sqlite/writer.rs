//! The single writer: one thread owns the write connection. Concurrent ingest requests queue
//! on a channel and are applied in one transaction (group commit: one fsync for all), each
//! replied to after the commit. Rollup deltas of a transaction are stored as one row and merged
//! into the in-memory overlay; a checkpoint folds them into the cells table.

use super::rows::{
    analysis_from_row, call_from_row, conversation_from_row, csat_from_row, stage_from_row, upsert_analysis,
    upsert_call, CONVERSATION_COLUMNS, CSAT_COLUMNS, INSERT_CSAT, INSERT_STAGE, SELECT_ANALYSIS, SELECT_CALL,
    SELECT_CONVERSATION, SELECT_CSAT_OF_CONVERSATION, SELECT_FIRST_CALL, SELECT_FIRST_STAGE, STAGE_COLUMNS,
    UPSERT_CONVERSATION,
};
use super::schema::{MEETING_DAYS_VERSION, OTHER_FACTS_VERSION, STAGE_SUMMARY_VERSION};
use super::Shared;
use crate::overlay::DeltaMap;
use crate::{Change, IngestSummary, Result, StoreError, TenantInfo};
use dialboard_engine::cells::{
    for_each_activity_cell, for_each_call_cell, for_each_csat_cell, for_each_stage_cell, for_each_ticket_cell, CellRef,
    Stats, MEETING_STAGE,
};
use dialboard_engine::event::{
    AgentStatus, CallAnalysis, CallRecord, Conversation, CsatScore, Event, ParsedEvent, StageChange, StatusChange,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub type AdminJob = Box<dyn FnOnce(&mut Connection) + Send>;

pub enum WriteCommand {
    Ingest {
        tenant: Arc<TenantInfo>,
        events: Vec<ParsedEvent>,
        reply: oneshot::Sender<Result<IngestSummary>>,
    },
    Admin(AdminJob),
    Checkpoint(oneshot::Sender<Result<usize>>),
    Shutdown(oneshot::Sender<()>),
}

/// Most events one transaction takes, so one commit never grows without bound.
const MAX_GROUP_EVENTS: usize = 50_000;
/// Fold deltas into cells when the overlay holds this many cells, or after this long.
const CHECKPOINT_CELLS: usize = 200_000;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

pub fn run(mut conn: Connection, rx: Receiver<WriteCommand>, shared: Arc<Shared>) {
    let mut last_checkpoint = Instant::now();
    let mut carried: Option<WriteCommand> = None;
    loop {
        let command = match carried.take() {
            Some(c) => c,
            None => match rx.recv_timeout(CHECKPOINT_EVERY) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    checkpoint_logged(&mut conn, &shared, &mut last_checkpoint);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match command {
            WriteCommand::Ingest { tenant, events, reply } => {
                let mut group = vec![(tenant, events, reply)];
                let mut size = group[0].1.len();
                while size < MAX_GROUP_EVENTS {
                    match rx.try_recv() {
                        Ok(WriteCommand::Ingest { tenant, events, reply }) => {
                            size += events.len();
                            group.push((tenant, events, reply));
                        }
                        Ok(other) => {
                            carried = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&mut conn, &shared, group);
            }
            WriteCommand::Admin(job) => job(&mut conn),
            WriteCommand::Checkpoint(reply) => {
                last_checkpoint = Instant::now();
                let _ = reply.send(checkpoint(&mut conn, &shared));
            }
            WriteCommand::Shutdown(done) => {
                // Everything queued before the shutdown is committed first, in one transaction;
                // other commands are dropped, so their callers hear the store is closed.
                let queued: Group = rx
                    .try_iter()
                    .filter_map(|c| match c {
                        WriteCommand::Ingest { tenant, events, reply } => Some((tenant, events, reply)),
                        _ => None,
                    })
                    .collect();
                if !queued.is_empty() {
                    commit_group(&mut conn, &shared, queued);
                }
                checkpoint_logged(&mut conn, &shared, &mut last_checkpoint);
                let _ = done.send(());
                return;
            }
        }
        let due = last_checkpoint.elapsed() >= CHECKPOINT_EVERY;
        if shared.overlay_len() >= CHECKPOINT_CELLS || due {
            checkpoint_logged(&mut conn, &shared, &mut last_checkpoint);
        }
    }
}

type Group = Vec<(
    Arc<TenantInfo>,
    Vec<ParsedEvent>,
    oneshot::Sender<Result<IngestSummary>>,
)>;

fn commit_group(conn: &mut Connection, shared: &Shared, group: Group) {
    let started = Instant::now();
    let mut deltas = DeltaMap::default();
    let outcome = (|| -> Result<Vec<(IngestSummary, Vec<bool>)>> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut summaries = Vec::with_capacity(group.len());
        for (tenant, events, _) in &group {
            let mut stored = Vec::with_capacity(events.len());
            let summary = apply_batch(&tx, tenant, events, &mut deltas, &mut stored)?;
            summaries.push((summary, stored));
        }
        if !deltas.is_empty() {
            tx.prepare_cached("INSERT INTO pending_deltas (data) VALUES (?1)")?
                .execute([deltas.encode()])?;
        }
        tx.commit()?;
        Ok(summaries)
    })();
    match outcome {
        Ok(summaries) => {
            shared.merge_overlay(deltas);
            shared.metrics.record_commit(started.elapsed(), group.len());
            for ((tenant, events, reply), (summary, stored)) in group.into_iter().zip(summaries) {
                let _ = reply.send(Ok(summary));
                if summary.accepted > 0 {
                    let events = events.into_iter().zip(stored).filter_map(|(e, new)| new.then_some(e));
                    shared.changes.publish(Change {
                        tenant_id: tenant.id,
                        events: events.collect(),
                    });
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, batches = group.len(), "ingest transaction failed");
            for (_, _, reply) in group {
                let _ = reply.send(Err(StoreError::Database(e.to_string())));
            }
        }
    }
}

fn apply_batch(
    tx: &Transaction,
    tenant: &TenantInfo,
    events: &[ParsedEvent],
    deltas: &mut DeltaMap,
    stored: &mut Vec<bool>,
) -> Result<IngestSummary> {
    let mut summary = IngestSummary::default();
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let mut log = tx.prepare_cached(
        "INSERT OR IGNORE INTO events (tenant_id, event_id, type, record_key, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in events {
        let inserted = log.execute(params![
            tenant.id,
            e.id,
            e.event.type_name(),
            e.event.record_key(),
            now,
            e.raw
        ])?;
        stored.push(inserted > 0);
        if inserted == 0 {
            summary.duplicates += 1;
            continue;
        }
        summary.accepted += 1;
        match &e.event {
            Event::Call(c) => apply_call(tx, tenant, c, deltas)?,
            Event::Analysis(a) => apply_analysis(tx, tenant, a, deltas)?,
            Event::Status(s) => apply_status(tx, tenant, s, deltas)?,
            Event::Stage(s) => apply_stage(tx, tenant, s, deltas)?,
            Event::Conversation(c) => apply_conversation(tx, tenant, c, deltas)?,
            Event::Csat(s) => apply_csat(tx, tenant, s, deltas)?,
        }
    }
    Ok(summary)
}

fn current_call(tx: &Transaction, tenant: i64, call_id: &str) -> Result<Option<CallRecord>> {
    Ok(tx
        .prepare_cached(SELECT_CALL)?
        .query_row(params![tenant, call_id], |r| call_from_row(r, 0))
        .optional()?)
}

fn current_analysis(tx: &Transaction, tenant: i64, call_id: &str) -> Result<Option<CallAnalysis>> {
    Ok(tx
        .prepare_cached(SELECT_ANALYSIS)?
        .query_row(params![tenant, call_id], |r| analysis_from_row(r, 0))
        .optional()?
        .flatten())
}

fn add_call(tenant: &TenantInfo, call: &CallRecord, analysis: Option<&CallAnalysis>, sign: i64, deltas: &mut DeltaMap) {
    for_each_call_cell(&tenant.clock, call, analysis, |id, stats: &Stats| {
        deltas.add(tenant.id, id, stats, sign)
    });
}

/// A newer version retracts the current one's contribution and adds its own; an older one
/// (a late or stale version) changes nothing but the raw log.
fn apply_call(tx: &Transaction, tenant: &TenantInfo, call: &CallRecord, deltas: &mut DeltaMap) -> Result<()> {
    let current = current_call(tx, tenant.id, &call.call_id)?;
    if current.as_ref().is_some_and(|c| c.version() >= call.version()) {
        return Ok(());
    }
    let analysis = current_analysis(tx, tenant.id, &call.call_id)?;
    if let Some(old) = &current {
        add_call(tenant, old, analysis.as_ref(), -1, deltas);
    }
    // The contacts whose first call this version may change: the old one's and the new one's.
    let mut contacts: Vec<&str> = current
        .iter()
        .chain([call])
        .filter_map(|c| c.contact_id.as_deref())
        .collect();
    contacts.dedup();
    let mut meetings = Vec::new();
    for contact in contacts {
        if let Some(meeting) = first_arrival(tx, tenant.id, contact, MEETING_STAGE)? {
            meetings.push((meeting, first_call(tx, tenant.id, contact)?));
        }
    }
    upsert_call(tx, tenant.id, call)?;
    add_call(tenant, call, analysis.as_ref(), 1, deltas);
    // A meeting counts the days since its contact's first call: when that moves, so does it.
    for (meeting, before) in meetings {
        let after = first_call(tx, tenant.id, &meeting.contact_id)?;
        if after != before {
            let mut add = |first, sign| {
                for_each_stage_cell(&tenant.clock, &meeting, first, |id, stats| {
                    deltas.add(tenant.id, id, stats, sign)
                })
            };
            add(before, -1);
            add(after, 1);
        }
    }
    Ok(())
}

/// The event by which a contact first reached `stage`.
fn first_arrival(tx: &Transaction, tenant: i64, contact: &str, stage: &str) -> Result<Option<StageChange>> {
    Ok(tx
        .prepare_cached(SELECT_FIRST_STAGE)?
        .query_row(params![tenant, contact, stage], stage_from_row)
        .optional()?)
}

/// The earliest start of a contact's current calls.
fn first_call(tx: &Transaction, tenant: i64, contact: &str) -> Result<Option<i64>> {
    Ok(tx
        .prepare_cached(SELECT_FIRST_CALL)?
        .query_row(params![tenant, contact], |r| r.get(0))?)
}

fn apply_analysis(tx: &Transaction, tenant: &TenantInfo, analysis: &CallAnalysis, deltas: &mut DeltaMap) -> Result<()> {
    let current = current_analysis(tx, tenant.id, &analysis.call_id)?;
    if current.as_ref().is_some_and(|a| a.version() >= analysis.version()) {
        return Ok(());
    }
    if let Some(call) = current_call(tx, tenant.id, &analysis.call_id)? {
        add_call(tenant, &call, current.as_ref(), -1, deltas);
        add_call(tenant, &call, Some(analysis), 1, deltas);
    }
    upsert_analysis(tx, tenant.id, analysis)?;
    Ok(())
}

/// A newer version retracts the current one's contribution and adds its own. When the channel
/// changes (or the conversation arrives after its CSAT scores), the scores move channel too.
fn apply_conversation(tx: &Transaction, tenant: &TenantInfo, c: &Conversation, deltas: &mut DeltaMap) -> Result<()> {
    let current: Option<Conversation> = tx
        .prepare_cached(SELECT_CONVERSATION)?
        .query_row(params![tenant.id, c.conversation_id], conversation_from_row)
        .optional()?;
    if current.as_ref().is_some_and(|old| old.version() >= c.version()) {
        return Ok(());
    }
    let mut add = |id: CellRef, stats: &Stats, sign| deltas.add(tenant.id, id, stats, sign);
    if let Some(old) = &current {
        for_each_ticket_cell(&tenant.clock, old, |id, stats| add(id, stats, -1));
    }
    tx.prepare_cached(UPSERT_CONVERSATION)?.execute(params![
        tenant.id,
        c.conversation_id,
        c.event_id,
        c.version_ns,
        c.channel,
        c.opened_ns,
        c.agent_id,
        c.team_id,
        c.first_response_ns,
        c.resolved_ns,
        c.status,
        c.intent
    ])?;
    for_each_ticket_cell(&tenant.clock, c, |id, stats| add(id, stats, 1));
    let old_channel = current.as_ref().map(|o| o.channel.as_str());
    if old_channel != Some(c.channel.as_str()) {
        let mut scores = tx.prepare_cached(SELECT_CSAT_OF_CONVERSATION)?;
        for score in scores.query_map(params![tenant.id, c.conversation_id], csat_from_row)? {
            let score = score?;
            for_each_csat_cell(&tenant.clock, &score, old_channel, |id, stats| add(id, stats, -1));
            for_each_csat_cell(&tenant.clock, &score, Some(&c.channel), |id, stats| add(id, stats, 1));
        }
    }
    Ok(())
}

/// A score counts in its conversation's channel, as far as that is known yet.
fn apply_csat(tx: &Transaction, tenant: &TenantInfo, s: &CsatScore, deltas: &mut DeltaMap) -> Result<()> {
    tx.prepare_cached(INSERT_CSAT)?.execute(params![
        tenant.id,
        s.event_id,
        s.score,
        s.at_ns,
        s.call_id,
        s.conversation_id,
        s.agent_id
    ])?;
    let channel: Option<String> = match &s.conversation_id {
        Some(id) => tx
            .prepare_cached("SELECT channel FROM conversations WHERE tenant_id = ?1 AND conversation_id = ?2")?
            .query_row(params![tenant.id, id], |r| r.get(0))
            .optional()?,
        None => None,
    };
    for_each_csat_cell(&tenant.clock, s, channel.as_deref(), |id, stats| {
        deltas.add(tenant.id, id, stats, 1)
    });
    Ok(())
}

/// Only a contact's first arrival at a stage counts: an earlier event arriving late retracts
/// the one that counted so far.
fn apply_stage(tx: &Transaction, tenant: &TenantInfo, s: &StageChange, deltas: &mut DeltaMap) -> Result<()> {
    let first = first_arrival(tx, tenant.id, &s.contact_id, &s.stage)?;
    tx.prepare_cached(INSERT_STAGE)?.execute(params![
        tenant.id,
        s.event_id,
        s.contact_id,
        s.stage,
        s.at_ns,
        s.campaign_id,
        s.lead_source,
        s.agent_id,
        s.call_id,
        s.amount_minor,
        s.currency
    ])?;
    if first
        .as_ref()
        .is_some_and(|f| (f.at_ns, f.event_id.as_str()) < (s.at_ns, s.event_id.as_str()))
    {
        return Ok(());
    }
    let first_call = match s.stage.as_str() {
        MEETING_STAGE => first_call(tx, tenant.id, &s.contact_id)?,
        _ => None,
    };
    let mut add = |stage: &StageChange, sign| {
        for_each_stage_cell(&tenant.clock, stage, first_call, |id, stats| {
            deltas.add(tenant.id, id, stats, sign)
        })
    };
    if let Some(f) = &first {
        add(f, -1);
    }
    add(s, 1);
    Ok(())
}

/// Computes, as one pending delta row (folded by the next checkpoint), the rollups a database
/// written by schema `version` lacks: before `OTHER_FACTS_VERSION`, those of conversations,
/// CSAT scores and stages; before `MEETING_DAYS_VERSION`, the time from each meeting's first
/// call; before `STAGE_SUMMARY_VERSION`, the stage cells without the agent.
pub fn backfill(conn: &mut Connection, version: usize) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut deltas = DeltaMap::default();
    let tenants: Vec<(i64, String, String)> = tx
        .prepare("SELECT id, name, settings FROM tenants")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let without_other_facts = version < OTHER_FACTS_VERSION;
    for (id, name, settings) in tenants {
        let settings = serde_json::from_str(&settings).map_err(|e| StoreError::Database(e.to_string()))?;
        let tenant = TenantInfo::new(id, name, settings)?;
        let mut add = |cell: CellRef, stats: &Stats, sign| deltas.add(id, cell, stats, sign);
        if without_other_facts {
            let conversations: Vec<Conversation> = tx
                .prepare(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = ?1"
                ))?
                .query_map([id], conversation_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            for c in &conversations {
                for_each_ticket_cell(&tenant.clock, c, |cell, stats| add(cell, stats, 1));
            }
            let mut scores = tx.prepare(&format!(
                "SELECT {CSAT_COLUMNS}, (SELECT channel FROM conversations v WHERE v.tenant_id = s.tenant_id \
                 AND v.conversation_id = s.conversation_id) FROM csat s WHERE tenant_id = ?1"
            ))?;
            for row in scores.query_map([id], |r| Ok((csat_from_row(r)?, r.get::<_, Option<String>>(6)?)))? {
                let (score, channel) = row?;
                for_each_csat_cell(&tenant.clock, &score, channel.as_deref(), |cell, stats| {
                    add(cell, stats, 1)
                });
            }
        }
        // The first event of each (contact, stage), with the contact's first call.
        let mut firsts = tx.prepare(&format!(
            "SELECT {STAGE_COLUMNS}, (SELECT min(c.started_ns) FROM calls c WHERE c.tenant_id = s.tenant_id \
             AND c.contact_id = s.contact_id) FROM lead_stages s WHERE tenant_id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM lead_stages e WHERE e.tenant_id = s.tenant_id AND e.contact_id = s.contact_id \
             AND e.stage = s.stage AND (e.at_ns, e.event_id) < (s.at_ns, s.event_id))"
        ))?;
        // Which stage cells the database kept, and whether with the time from the first call.
        let kept = |cuboid: u8| !without_other_facts && (cuboid != 8 || version >= STAGE_SUMMARY_VERSION);
        let with_days = version >= MEETING_DAYS_VERSION;
        for row in firsts.query_map([id], |r| Ok((stage_from_row(r)?, r.get::<_, Option<i64>>(10)?)))? {
            let (stage, first_call) = row?;
            let clock = &tenant.clock;
            for_each_stage_cell(clock, &stage, first_call, |cell, stats| {
                if !(kept(cell.cuboid) && with_days) {
                    add(cell, stats, 1);
                }
            });
            // Where the stage was counted without the days, only the days are new.
            for_each_stage_cell(clock, &stage, None, |cell, stats| {
                if kept(cell.cuboid) && !with_days {
                    add(cell, stats, -1);
                }
            });
        }
    }
    if !deltas.is_empty() {
        tx.execute("INSERT INTO pending_deltas (data) VALUES (?1)", [deltas.encode()])?;
    }
    tx.commit()?;
    Ok(())
}

/// A status lasts until the agent's next one. A status arriving between two others splits
/// their interval: the old interval is retracted and the two new ones added.
fn apply_status(tx: &Transaction, tenant: &TenantInfo, s: &StatusChange, deltas: &mut DeltaMap) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO agent_status (tenant_id, agent_id, at_ns, event_id, status) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![tenant.id, s.agent_id, s.at_ns, s.event_id, s.status.as_str()])?;
    let neighbour = |sql: &str| -> Result<Option<(i64, AgentStatus)>> {
        Ok(tx
            .prepare_cached(sql)?
            .query_row(params![tenant.id, s.agent_id, s.at_ns, s.event_id], |r| {
                let status: String = r.get(1)?;
                Ok((r.get(0)?, AgentStatus::parse(&status).unwrap_or(AgentStatus::Offline)))
            })
            .optional()?)
    };
    let previous = neighbour(
        "SELECT at_ns, status FROM agent_status WHERE tenant_id = ?1 AND agent_id = ?2 AND (at_ns, event_id) < (?3, ?4) \
         ORDER BY at_ns DESC, event_id DESC LIMIT 1",
    )?;
    let next = neighbour(
        "SELECT at_ns, status FROM agent_status WHERE tenant_id = ?1 AND agent_id = ?2 AND (at_ns, event_id) > (?3, ?4) \
         ORDER BY at_ns, event_id LIMIT 1",
    )?;
    let mut interval = |status, from, to, sign| {
        for_each_activity_cell(&tenant.clock, &s.agent_id, status, from, to, |id, stats| {
            deltas.add(tenant.id, id, stats, sign)
        });
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

fn checkpoint_logged(conn: &mut Connection, shared: &Shared, last: &mut Instant) {
    *last = Instant::now();
    if shared.overlay_len() == 0 {
        return;
    }
    let started = Instant::now();
    match checkpoint(conn, shared) {
        Ok(cells) => tracing::debug!(cells, elapsed_ms = started.elapsed().as_millis() as u64, "checkpoint"),
        Err(e) => tracing::error!(error = %e, "checkpoint failed; deltas stay pending"),
    }
}

/// Folds the overlay into the cells table and drops the folded delta rows, in one
/// transaction: each touched block is read, merged with its deltas and written back. Readers
/// hold the overlay's read lock for their whole snapshot, so the commit and the clearing of the
/// overlay happen together for them.
pub fn checkpoint(conn: &mut Connection, shared: &Shared) -> Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let overlay = shared.overlay_for_checkpoint();
    let folded = overlay.len();
    {
        let mut read = tx.prepare_cached(
            "SELECT block FROM cells WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND bucket = ?4",
        )?;
        let mut write = tx.prepare_cached(
            "INSERT OR REPLACE INTO cells (tenant_id, cuboid, grain, bucket, block) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut delete =
            tx.prepare_cached("DELETE FROM cells WHERE tenant_id = ?1 AND cuboid = ?2 AND grain = ?3 AND bucket = ?4")?;
        for ((tenant, cuboid, grain, bucket), deltas) in overlay.blocks() {
            let pk = params![tenant, cuboid, grain as i64, bucket];
            let stored: Option<Vec<u8>> = read.query_row(pk, |r| r.get(0)).optional()?;
            let merged = crate::block::merge(stored.as_deref().unwrap_or_default(), deltas)
                .ok_or_else(|| StoreError::Database("corrupt cell block".into()))?;
            if merged.is_empty() {
                delete.execute(pk)?;
            } else {
                write.execute(params![tenant, cuboid, grain as i64, bucket, merged])?;
            }
        }
    }
    tx.execute("DELETE FROM pending_deltas", [])?;
    drop(overlay);
    shared.commit_checkpoint(tx)?;
    Ok(folded)
}
