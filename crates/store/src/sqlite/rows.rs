//! Reading and writing records as SQLite rows.

use dialboard_engine::event::{CallAnalysis, CallRecord, Conversation, CsatScore, StageChange};
use rusqlite::{params, Row, Transaction};

macro_rules! call_columns {
    () => {
        "call_id, event_id, version_ns, started_ns, agent_id, team_id, campaign_id, list_id, contact_id, lead_source, \
         direction, disposition, ended_ns, talk_seconds, wait_seconds, wrap_seconds, flags"
    };
}
macro_rules! analysis_columns {
    () => {
        "call_id, event_id, version_ns, score, sentiment, prospect_sentiment, talk_ratio, filler, intent"
    };
}
const CALL_COLUMNS: &str = call_columns!();
const ANALYSIS_COLUMNS: &str = analysis_columns!();
pub const SELECT_CALL: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls WHERE tenant_id = ?1 AND call_id = ?2"
);
pub const SELECT_ANALYSIS: &str = concat!(
    "SELECT ",
    analysis_columns!(),
    " FROM call_analysis WHERE tenant_id = ?1 AND call_id = ?2"
);
const UPSERT_CALL: &str = concat!(
    "INSERT OR REPLACE INTO calls (tenant_id, ",
    call_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
);
const UPSERT_ANALYSIS: &str = concat!(
    "INSERT OR REPLACE INTO call_analysis (tenant_id, ",
    analysis_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
);

/// How many columns a comma-separated list names.
const fn column_count(list: &str) -> usize {
    let bytes = list.as_bytes();
    let (mut n, mut i) = (1, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// Where a joined row's analysis columns start.
const ANALYSIS_AT: usize = column_count(CALL_COLUMNS);

/// Current calls (`c`) with their analysis (`a`, if any), filtered and ordered by `rest`.
pub fn select_calls_with_analysis(rest: &str) -> String {
    let prefixed = |cols: &str, p: &str| {
        cols.split(", ")
            .map(|c| format!("{p}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT {}, {} FROM calls c LEFT JOIN call_analysis a ON a.tenant_id = c.tenant_id AND a.call_id = c.call_id {rest}",
        prefixed(CALL_COLUMNS, "c"),
        prefixed(ANALYSIS_COLUMNS, "a")
    )
}

/// Reads a row of [`select_calls_with_analysis`].
pub fn call_with_analysis(r: &Row) -> rusqlite::Result<(CallRecord, Option<CallAnalysis>)> {
    Ok((call_from_row(r, 0)?, analysis_from_row(r, ANALYSIS_AT)?))
}

const VOICEMAIL_DROPPED: i64 = 1;
const CALLBACK: i64 = 2;
const ABANDONED: i64 = 4;

/// Reads a call from the columns of [`CALL_COLUMNS`] starting at `at`.
pub fn call_from_row(r: &Row, at: usize) -> rusqlite::Result<CallRecord> {
    let flags: i64 = r.get(at + 16)?;
    Ok(CallRecord {
        call_id: r.get(at)?,
        event_id: r.get(at + 1)?,
        version_ns: r.get(at + 2)?,
        started_ns: r.get(at + 3)?,
        agent_id: r.get(at + 4)?,
        team_id: r.get(at + 5)?,
        campaign_id: r.get(at + 6)?,
        list_id: r.get(at + 7)?,
        contact_id: r.get(at + 8)?,
        lead_source: r.get(at + 9)?,
        direction: r.get(at + 10)?,
        disposition: r.get(at + 11)?,
        ended_ns: r.get(at + 12)?,
        talk_seconds: r.get(at + 13)?,
        wait_seconds: r.get(at + 14)?,
        wrap_seconds: r.get(at + 15)?,
        voicemail_dropped: flags & VOICEMAIL_DROPPED != 0,
        is_callback: flags & CALLBACK != 0,
        abandoned: flags & ABANDONED != 0,
    })
}

/// Reads an analysis from the columns of [`ANALYSIS_COLUMNS`] starting at `at`; `None` when
/// the (left-joined) row is absent.
pub fn analysis_from_row(r: &Row, at: usize) -> rusqlite::Result<Option<CallAnalysis>> {
    let Some(call_id) = r.get::<_, Option<String>>(at)? else {
        return Ok(None);
    };
    Ok(Some(CallAnalysis {
        call_id,
        event_id: r.get(at + 1)?,
        version_ns: r.get(at + 2)?,
        score_micros: r.get(at + 3)?,
        sentiment_micros: r.get(at + 4)?,
        prospect_sentiment_micros: r.get(at + 5)?,
        talk_ratio_micros: r.get(at + 6)?,
        filler_micros: r.get(at + 7)?,
        intent: r.get(at + 8)?,
    }))
}

pub fn upsert_call(tx: &Transaction, tenant: i64, c: &CallRecord) -> rusqlite::Result<()> {
    let flags = (c.voicemail_dropped as i64 * VOICEMAIL_DROPPED)
        | (c.is_callback as i64 * CALLBACK)
        | (c.abandoned as i64 * ABANDONED);
    tx.prepare_cached(UPSERT_CALL)?.execute(params![
        tenant,
        c.call_id,
        c.event_id,
        c.version_ns,
        c.started_ns,
        c.agent_id,
        c.team_id,
        c.campaign_id,
        c.list_id,
        c.contact_id,
        c.lead_source,
        c.direction,
        c.disposition,
        c.ended_ns,
        c.talk_seconds,
        c.wait_seconds,
        c.wrap_seconds,
        flags
    ])?;
    Ok(())
}

pub fn upsert_analysis(tx: &Transaction, tenant: i64, a: &CallAnalysis) -> rusqlite::Result<()> {
    tx.prepare_cached(UPSERT_ANALYSIS)?.execute(params![
        tenant,
        a.call_id,
        a.event_id,
        a.version_ns,
        a.score_micros,
        a.sentiment_micros,
        a.prospect_sentiment_micros,
        a.talk_ratio_micros,
        a.filler_micros,
        a.intent
    ])?;
    Ok(())
}

// Statements of the ingest path are compile-time constants (no formatting per event).
macro_rules! conversation_columns {
    () => {
        "conversation_id, event_id, version_ns, channel, opened_ns, agent_id, team_id, first_response_ns, resolved_ns, \
         status, intent"
    };
}
macro_rules! stage_columns {
    () => {
        "event_id, contact_id, stage, at_ns, campaign_id, lead_source, agent_id, call_id, amount_minor, currency"
    };
}
macro_rules! csat_columns {
    () => {
        "event_id, score, at_ns, call_id, conversation_id, agent_id"
    };
}
pub const CONVERSATION_COLUMNS: &str = conversation_columns!();
pub const STAGE_COLUMNS: &str = stage_columns!();
pub const CSAT_COLUMNS: &str = csat_columns!();
pub const SELECT_CONVERSATION: &str = concat!(
    "SELECT ",
    conversation_columns!(),
    " FROM conversations WHERE tenant_id = ?1 AND conversation_id = ?2"
);
pub const UPSERT_CONVERSATION: &str = concat!(
    "INSERT OR REPLACE INTO conversations (tenant_id, ",
    conversation_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
);
pub const SELECT_CSAT_OF_CONVERSATION: &str = concat!(
    "SELECT ",
    csat_columns!(),
    " FROM csat WHERE tenant_id = ?1 AND conversation_id = ?2"
);
pub const INSERT_CSAT: &str = concat!(
    "INSERT INTO csat (tenant_id, ",
    csat_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
);
/// The event by which a contact first reached a stage.
pub const SELECT_FIRST_STAGE: &str = concat!(
    "SELECT ",
    stage_columns!(),
    " FROM lead_stages WHERE tenant_id = ?1 AND contact_id = ?2 AND stage = ?3 ORDER BY at_ns, event_id LIMIT 1"
);
/// The earliest start of a contact's current calls.
pub const SELECT_FIRST_CALL: &str = "SELECT min(started_ns) FROM calls WHERE tenant_id = ?1 AND contact_id = ?2";
pub const INSERT_STAGE: &str = concat!(
    "INSERT INTO lead_stages (tenant_id, ",
    stage_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
);

pub fn conversation_from_row(r: &Row) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        conversation_id: r.get(0)?,
        event_id: r.get(1)?,
        version_ns: r.get(2)?,
        channel: r.get(3)?,
        opened_ns: r.get(4)?,
        agent_id: r.get(5)?,
        team_id: r.get(6)?,
        first_response_ns: r.get(7)?,
        resolved_ns: r.get(8)?,
        status: r.get(9)?,
        intent: r.get(10)?,
    })
}

pub fn stage_from_row(r: &Row) -> rusqlite::Result<StageChange> {
    Ok(StageChange {
        event_id: r.get(0)?,
        contact_id: r.get(1)?,
        stage: r.get(2)?,
        at_ns: r.get(3)?,
        campaign_id: r.get(4)?,
        lead_source: r.get(5)?,
        agent_id: r.get(6)?,
        call_id: r.get(7)?,
        amount_minor: r.get(8)?,
        currency: r.get(9)?,
    })
}

pub fn csat_from_row(r: &Row) -> rusqlite::Result<CsatScore> {
    Ok(CsatScore {
        event_id: r.get(0)?,
        score: r.get(1)?,
        at_ns: r.get(2)?,
        call_id: r.get(3)?,
        conversation_id: r.get(4)?,
        agent_id: r.get(5)?,
    })
}
