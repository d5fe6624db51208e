//! Records as table rows, the same on both databases: the column lists and the reading of a
//! row (through [`Columns`], which each database's row type implements).

use dialboard_engine::event::{CallAnalysis, CallRecord, Conversation, CsatScore, StageChange};

/// A result row of either database, read by column position.
pub trait Columns {
    type Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
}

impl Columns for postgres::Row {
    type Error = postgres::Error;
    fn int(&self, i: usize) -> Result<i64, postgres::Error> {
        self.try_get(i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, postgres::Error> {
        self.try_get(i)
    }
    fn text(&self, i: usize) -> Result<String, postgres::Error> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, postgres::Error> {
        self.try_get(i)
    }
}

// Column lists are macros so statements can be built with `concat!` at compile time.
#[macro_export]
#[doc(hidden)]
macro_rules! call_columns {
    () => {
        "call_id, event_id, version_ns, started_ns, agent_id, team_id, campaign_id, list_id, contact_id, lead_source, \
         direction, disposition, ended_ns, talk_seconds, wait_seconds, wrap_seconds, flags"
    };
}
#[macro_export]
#[doc(hidden)]
macro_rules! analysis_columns {
    () => {
        "call_id, event_id, version_ns, score, sentiment, prospect_sentiment, talk_ratio, filler, intent"
    };
}
#[macro_export]
#[doc(hidden)]
macro_rules! conversation_columns {
    () => {
        "conversation_id, event_id, version_ns, channel, opened_ns, agent_id, team_id, first_response_ns, resolved_ns, \
         status, intent"
    };
}
#[macro_export]
#[doc(hidden)]
macro_rules! stage_columns {
    () => {
        "event_id, contact_id, stage, at_ns, campaign_id, lead_source, agent_id, call_id, amount_minor, currency"
    };
}
#[macro_export]
#[doc(hidden)]
macro_rules! csat_columns {
    () => {
        "event_id, score, at_ns, call_id, conversation_id, agent_id"
    };
}
pub const CALL_COLUMNS: &str = call_columns!();
pub const ANALYSIS_COLUMNS: &str = analysis_columns!();
pub const CONVERSATION_COLUMNS: &str = conversation_columns!();
pub const STAGE_COLUMNS: &str = stage_columns!();
pub const CSAT_COLUMNS: &str = csat_columns!();

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
pub const ANALYSIS_AT: usize = column_count(CALL_COLUMNS);

/// `cols` with each column prefixed by a table alias.
pub fn prefixed(cols: &str, alias: &str) -> String {
    cols.split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the columns a statement selects after a joined row's analysis start.
pub const AFTER_ANALYSIS: usize = ANALYSIS_AT + column_count(ANALYSIS_COLUMNS);

/// Current calls (`c`, from `calls`) with their analysis (`a`, if any), filtered and ordered by `rest`.
pub fn select_calls_with_analysis(calls: &str, rest: &str) -> String {
    select_calls_with_analysis_and("", calls, rest)
}

/// [`select_calls_with_analysis`] with the columns `also` (", c.x, …") after the analysis's
/// (from [`AFTER_ANALYSIS`]).
pub fn select_calls_with_analysis_and(also: &str, calls: &str, rest: &str) -> String {
    format!(
        "SELECT {}, {}{also} FROM {calls} LEFT JOIN call_analysis a ON a.tenant_id = c.tenant_id AND a.call_id = c.call_id {rest}",
        prefixed(CALL_COLUMNS, "c"),
        prefixed(ANALYSIS_COLUMNS, "a")
    )
}

/// Reads a row of [`select_calls_with_analysis`].
pub fn call_with_analysis<R: Columns>(r: &R) -> Result<(CallRecord, Option<CallAnalysis>), R::Error> {
    Ok((call_from_row(r, 0)?, analysis_from_row(r, ANALYSIS_AT)?))
}

const VOICEMAIL_DROPPED: i64 = 1;
const CALLBACK: i64 = 2;
const ABANDONED: i64 = 4;

/// The `flags` column of a call.
pub fn call_flags(c: &CallRecord) -> i64 {
    (c.voicemail_dropped as i64 * VOICEMAIL_DROPPED)
        | (c.is_callback as i64 * CALLBACK)
        | (c.abandoned as i64 * ABANDONED)
}

/// Reads a call from the columns of [`CALL_COLUMNS`] starting at `at`.
pub fn call_from_row<R: Columns>(r: &R, at: usize) -> Result<CallRecord, R::Error> {
    let flags = r.int(at + 16)?;
    Ok(CallRecord {
        call_id: r.text(at)?,
        event_id: r.text(at + 1)?,
        version_ns: r.int(at + 2)?,
        started_ns: r.int(at + 3)?,
        agent_id: r.text(at + 4)?,
        team_id: r.opt_text(at + 5)?,
        campaign_id: r.opt_text(at + 6)?,
        list_id: r.opt_text(at + 7)?,
        contact_id: r.opt_text(at + 8)?,
        lead_source: r.opt_text(at + 9)?,
        direction: r.opt_text(at + 10)?,
        disposition: r.text(at + 11)?,
        ended_ns: r.opt_int(at + 12)?,
        talk_seconds: r.opt_int(at + 13)?,
        wait_seconds: r.opt_int(at + 14)?,
        wrap_seconds: r.opt_int(at + 15)?,
        voicemail_dropped: flags & VOICEMAIL_DROPPED != 0,
        is_callback: flags & CALLBACK != 0,
        abandoned: flags & ABANDONED != 0,
    })
}

/// Reads an analysis from the columns of [`ANALYSIS_COLUMNS`] starting at `at`; `None` when
/// the (left-joined) row is absent.
pub fn analysis_from_row<R: Columns>(r: &R, at: usize) -> Result<Option<CallAnalysis>, R::Error> {
    let Some(call_id) = r.opt_text(at)? else {
        return Ok(None);
    };
    Ok(Some(CallAnalysis {
        call_id,
        event_id: r.text(at + 1)?,
        version_ns: r.int(at + 2)?,
        score_micros: r.opt_int(at + 3)?,
        sentiment_micros: r.opt_int(at + 4)?,
        prospect_sentiment_micros: r.opt_int(at + 5)?,
        talk_ratio_micros: r.opt_int(at + 6)?,
        filler_micros: r.opt_int(at + 7)?,
        intent: r.opt_text(at + 8)?,
    }))
}

pub fn conversation_from_row<R: Columns>(r: &R) -> Result<Conversation, R::Error> {
    Ok(Conversation {
        conversation_id: r.text(0)?,
        event_id: r.text(1)?,
        version_ns: r.int(2)?,
        channel: r.text(3)?,
        opened_ns: r.int(4)?,
        agent_id: r.opt_text(5)?,
        team_id: r.opt_text(6)?,
        first_response_ns: r.opt_int(7)?,
        resolved_ns: r.opt_int(8)?,
        status: r.opt_text(9)?,
        intent: r.opt_text(10)?,
    })
}

pub fn stage_from_row<R: Columns>(r: &R) -> Result<StageChange, R::Error> {
    Ok(StageChange {
        event_id: r.text(0)?,
        contact_id: r.text(1)?,
        stage: r.text(2)?,
        at_ns: r.int(3)?,
        campaign_id: r.opt_text(4)?,
        lead_source: r.opt_text(5)?,
        agent_id: r.opt_text(6)?,
        call_id: r.opt_text(7)?,
        amount_minor: r.opt_int(8)?,
        currency: r.opt_text(9)?,
    })
}

pub fn csat_from_row<R: Columns>(r: &R) -> Result<CsatScore, R::Error> {
    Ok(CsatScore {
        event_id: r.text(0)?,
        score: r.int(1)?,
        at_ns: r.int(2)?,
        call_id: r.opt_text(3)?,
        conversation_id: r.opt_text(4)?,
        agent_id: r.opt_text(5)?,
    })
}
