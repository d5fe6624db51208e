//! The SQLite statements of the ingest path (compile-time constants: no formatting per event).

use crate::rows::call_flags;
use crate::{analysis_columns, call_columns, conversation_columns, csat_columns, stage_columns};
use dialboard_engine::event::{CallAnalysis, CallRecord};
use rusqlite::{params, Statement, Transaction};

/// The call at row `seq`, if it is the tenant's call of that id (the keys are hashes).
pub const SELECT_CALL_AT: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls WHERE seq = ?1 AND tenant_id = ?2 AND call_id = ?3"
);
pub const SELECT_ANALYSIS: &str = concat!(
    "SELECT ",
    analysis_columns!(),
    " FROM call_analysis WHERE tenant_id = ?1 AND call_id = ?2"
);
pub const INSERT_CALL: &str = concat!(
    "INSERT INTO calls (tenant_id, ",
    call_columns!(),
    ", event_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
);
/// A new version in place of the old, at its row: the call's key still points there.
const REPLACE_CALL: &str = concat!(
    "UPDATE calls SET (tenant_id, ",
    call_columns!(),
    ", event_seq) = (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) WHERE seq = ?20"
);
const UPSERT_ANALYSIS: &str = concat!(
    "INSERT OR REPLACE INTO call_analysis (tenant_id, ",
    analysis_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
);
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
pub const INSERT_STAGE: &str = concat!(
    "INSERT INTO lead_stages (tenant_id, ",
    stage_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
);

/// Stores a call: a new row by `insert` ([`INSERT_CALL`]; returns its `seq`), or over the row
/// `at` of its previous version; `event_seq` is the row of its event (`calls.event_seq`), if
/// known.
pub fn put_call(
    tx: &Transaction,
    insert: &mut Statement,
    tenant: i64,
    c: &CallRecord,
    event_seq: Option<i64>,
    at: Option<i64>,
) -> rusqlite::Result<i64> {
    let values = params![
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
        call_flags(c),
        event_seq,
    ];
    match at {
        Some(seq) => {
            let mut with_seq: Vec<&dyn rusqlite::ToSql> = values.to_vec();
            with_seq.push(&seq);
            tx.prepare_cached(REPLACE_CALL)?.execute(with_seq.as_slice())?;
            Ok(seq)
        }
        None => insert.insert(values),
    }
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
