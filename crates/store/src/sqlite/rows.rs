//! The SQLite statements of the ingest path (compile-time constants: no formatting per event).

use crate::rows::call_flags;
use crate::{analysis_columns, call_columns, conversation_columns, csat_columns, stage_columns};
use dialboard_engine::event::{CallAnalysis, CallRecord, StageChange};
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
/// A new call's row at its `seq` (`?20`, the `seq` of the event that created it).
pub const INSERT_CALL: &str = concat!(
    "INSERT INTO calls (tenant_id, ",
    call_columns!(),
    ", event_seq, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
);
/// A new version in place of the old, at its row (`?20`): the call's keys still lead there.
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

/// Where a call's version goes: a new row numbered `seq`, or over the row at `seq` of its
/// previous version.
#[derive(Clone, Copy, Debug)]
pub enum Row {
    New(i64),
    At(i64),
}

/// Stores a call by `insert` ([`INSERT_CALL`]) or over its previous version's row; returns its
/// row's `seq`. `event_seq` is the row of its event (`calls.event_seq`), if known.
pub fn put_call(
    tx: &Transaction,
    insert: &mut Statement,
    tenant: i64,
    c: &CallRecord,
    event_seq: Option<i64>,
    row: Row,
) -> rusqlite::Result<i64> {
    let store = |stmt: &mut Statement, seq: i64| {
        bind_call(stmt, tenant, c, event_seq)?;
        stmt.raw_bind_parameter(20, seq)?;
        stmt.raw_execute().map(|_| seq)
    };
    match row {
        Row::At(seq) => store(&mut *tx.prepare_cached(REPLACE_CALL)?, seq),
        Row::New(seq) => store(insert, seq),
    }
}

/// Binds a call's columns to `?1`…`?19` of [`INSERT_CALL`] or [`REPLACE_CALL`], each by its
/// own type: binding them as a slice of `dyn ToSql` (`params!`) went through a virtual call and
/// a match on every kind of value per column, 2.7% of the writer's time at 1M calls
/// (bench/README.md).
fn bind_call(stmt: &mut Statement, tenant: i64, c: &CallRecord, event_seq: Option<i64>) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(1, tenant)?;
    stmt.raw_bind_parameter(2, c.call_id.as_str())?;
    stmt.raw_bind_parameter(3, c.event_id.as_str())?;
    stmt.raw_bind_parameter(4, c.version_ns)?;
    stmt.raw_bind_parameter(5, c.started_ns)?;
    stmt.raw_bind_parameter(6, c.agent_id.as_str())?;
    stmt.raw_bind_parameter(7, c.team_id.as_deref())?;
    stmt.raw_bind_parameter(8, c.campaign_id.as_deref())?;
    stmt.raw_bind_parameter(9, c.list_id.as_deref())?;
    stmt.raw_bind_parameter(10, c.contact_id.as_deref())?;
    stmt.raw_bind_parameter(11, c.lead_source.as_deref())?;
    stmt.raw_bind_parameter(12, c.direction.as_deref())?;
    stmt.raw_bind_parameter(13, c.disposition.as_str())?;
    stmt.raw_bind_parameter(14, c.ended_ns)?;
    stmt.raw_bind_parameter(15, c.talk_seconds)?;
    stmt.raw_bind_parameter(16, c.wait_seconds)?;
    stmt.raw_bind_parameter(17, c.wrap_seconds)?;
    stmt.raw_bind_parameter(18, call_flags(c))?;
    stmt.raw_bind_parameter(19, event_seq)
}

/// Stores a lead stage by `insert` ([`INSERT_STAGE`]), each column bound by its own type.
pub fn put_stage(insert: &mut Statement, tenant: i64, s: &StageChange) -> rusqlite::Result<()> {
    insert.raw_bind_parameter(1, tenant)?;
    insert.raw_bind_parameter(2, s.event_id.as_str())?;
    insert.raw_bind_parameter(3, s.contact_id.as_str())?;
    insert.raw_bind_parameter(4, s.stage.as_str())?;
    insert.raw_bind_parameter(5, s.at_ns)?;
    insert.raw_bind_parameter(6, s.campaign_id.as_deref())?;
    insert.raw_bind_parameter(7, s.lead_source.as_deref())?;
    insert.raw_bind_parameter(8, s.agent_id.as_deref())?;
    insert.raw_bind_parameter(9, s.call_id.as_deref())?;
    insert.raw_bind_parameter(10, s.amount_minor)?;
    insert.raw_bind_parameter(11, s.currency.as_deref())?;
    insert.raw_execute().map(drop)
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
