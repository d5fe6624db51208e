//! The drill-downs of conversations and stage changes (SPEC §13's `conversations` and
//! `lead_stages` tables), the same on both stores: a `/calls`-shaped request (the query
//! model's filters, range and zone, a cursor and a page size) answers the records of its range
//! that pass its filters, newest first, a page at a time. Statements go through the shared SQL
//! surface ([`crate::sql`]), read in bounded chunks along each table's time order.

use crate::drill::{self, Drill};
use crate::rows::{conversation_from_row, stage_from_row, Columns, CONVERSATION_COLUMNS, STAGE_COLUMNS};
use crate::sql::{Row, Sql, Val};
use crate::{CallsRequest, Result, StoreError, TenantInfo};
use dialboard_engine::cells::{stage_dim_values, ticket_dim_values, Dim, DimValues, Fact};
use dialboard_engine::clock::Clock;
use dialboard_engine::event::{Conversation, StageChange};
use dialboard_engine::query::{directory_team, passes_filters, AgentTeams, Dimension};
use dialboard_engine::FieldError;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The record tables listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Tickets and chats, their current versions, by `opened_at`.
    Conversations,
    /// Pipeline stage changes, each one received, by `at`.
    LeadStages,
}

/// One page of records, newest first, as JSON objects.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecordsPage {
    pub records: Vec<Value>,
    pub next_cursor: Option<String>,
    /// Set when the range reaches before the retention horizon of the kind: its records
    /// before this instant were purged (their numbers remain in the rollups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged_before: Option<String>,
}

/// What differs between the tables: names, columns, the dimensions stored as columns.
struct Table {
    name: &'static str,
    columns: &'static str,
    /// The time column (ns) the listing is ordered by, then the id column breaking ties.
    time: &'static str,
    id: &'static str,
    /// Dimensions stored as a column of the table, which a filter can narrow the read by.
    stored: &'static [(Dim, &'static str)],
}

impl RecordKind {
    fn table(self) -> Table {
        match self {
            RecordKind::Conversations => Table {
                name: "conversations",
                columns: CONVERSATION_COLUMNS,
                time: "opened_ns",
                id: "conversation_id",
                // A ticket without a team is its agent's: team filters are checked on the rows.
                stored: &[
                    (Dim::Agent, "agent_id"),
                    (Dim::Channel, "channel"),
                    (Dim::Intent, "intent"),
                ],
            },
            RecordKind::LeadStages => Table {
                name: "lead_stages",
                columns: STAGE_COLUMNS,
                time: "at_ns",
                id: "event_id",
                stored: &[
                    (Dim::Agent, "agent_id"),
                    (Dim::Campaign, "campaign_id"),
                    (Dim::LeadSource, "lead_source"),
                    (Dim::Stage, "stage"),
                ],
            },
        }
    }
}

/// A record read back, with what the page needs of it.
enum Listed {
    Conversation(Conversation),
    Stage(StageChange),
}

impl Listed {
    fn read(kind: RecordKind, row: &Row) -> Result<Listed> {
        Ok(match kind {
            RecordKind::Conversations => Listed::Conversation(conversation_from_row(row)?),
            RecordKind::LeadStages => Listed::Stage(stage_from_row(row)?),
        })
    }

    fn position(&self) -> (i64, &str) {
        match self {
            Listed::Conversation(c) => (c.opened_ns, &c.conversation_id),
            Listed::Stage(s) => (s.at_ns, &s.event_id),
        }
    }

    fn values<'a>(&'a self, agent_teams: &'a AgentTeams) -> DimValues<'a> {
        let (mut values, fact) = match self {
            Listed::Conversation(c) => (ticket_dim_values(c), Fact::Tickets),
            Listed::Stage(s) => (stage_dim_values(s), Fact::Stages),
        };
        directory_team(&mut values, fact, agent_teams);
        values
    }

    /// The API's JSON form (times in `clock`'s zone).
    fn json(&self, clock: &Clock) -> Value {
        let time = |ns: i64| json!(clock.format(ns.div_euclid(1_000_000_000)));
        match self {
            Listed::Conversation(c) => json!({
                "conversation_id": c.conversation_id,
                "event_id": c.event_id,
                "channel": c.channel,
                "opened_at": time(c.opened_ns),
                "agent_id": c.agent_id,
                "team_id": c.team_id,
                "first_response_at": c.first_response_ns.map(time),
                "resolved_at": c.resolved_ns.map(time),
                "status": c.status,
                "intent": c.intent,
            }),
            Listed::Stage(s) => json!({
                "event_id": s.event_id,
                "contact_id": s.contact_id,
                "stage": s.stage,
                "at": time(s.at_ns),
                "campaign_id": s.campaign_id,
                "lead_source": s.lead_source,
                "agent_id": s.agent_id,
                "call_id": s.call_id,
                "amount": s.amount_minor.map(|m| m as f64 / 100.0),
                "currency": s.currency,
            }),
        }
    }
}

impl Columns for Row {
    type Error = StoreError;
    fn int(&self, i: usize) -> Result<i64> {
        Row::int(self, i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Row::opt_int(self, i)
    }
    fn text(&self, i: usize) -> Result<String> {
        Row::text(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Row::opt_text(self, i)
    }
}

/// Rows read per statement: a page and one more, at least this many.
const CHUNK: usize = 256;

/// One page of `kind`'s drill-down for `request` (parsed as `/calls` parses its own), with
/// `agent_teams` the directory's team of each agent. Run it in one read transaction.
pub fn page(
    db: &mut impl Sql,
    tenant: &TenantInfo,
    kind: RecordKind,
    request: &CallsRequest,
    now: i64,
    agent_teams: Arc<AgentTeams>,
) -> Result<std::result::Result<RecordsPage, Vec<FieldError>>> {
    let table = kind.table();
    let earliest = db
        .query_opt(
            &format!("SELECT min({}) FROM {} WHERE tenant_id = $1", table.time, table.name),
            &[tenant.id.into()],
        )?
        .and_then(|r| r.opt_int(0).transpose())
        .transpose()?;
    let drill = match drill::parse(tenant, request, now, earliest, agent_teams) {
        Ok(d) => d,
        Err(errors) => return Ok(Err(errors)),
    };
    let limit = request.limit.max(1);
    let (sql, pushed) = statement(&table, &drill);
    let range = drill.query.range;
    let mut after = drill.after.clone();
    let mut records: Vec<Listed> = Vec::new();
    let mut more = false;
    let chunk = (limit + 1).max(CHUNK);
    'read: loop {
        let mut params: Vec<Val> = vec![
            tenant.id.into(),
            (range.start * 1_000_000_000).into(),
            // The row to continue after also bounds the range: an index range is not bounded by
            // the row value, and each chunk would read every row of the chunks before it.
            (range.end * 1_000_000_000).min(after.0.saturating_add(1)).into(),
            after.0.into(),
            after.1.clone().into(),
            (chunk as i64).into(),
        ];
        params.extend(pushed.iter().cloned());
        let rows = db.query(&sql, &params)?;
        let last_chunk = rows.len() < chunk;
        for row in &rows {
            let record = Listed::read(kind, row)?;
            let (ns, id) = record.position();
            after = (ns, id.to_string());
            let t = ns.div_euclid(1_000_000_000);
            let q = &drill.query;
            if !passes_filters(
                &q.filters,
                &record.values(&drill.agent_teams),
                q.clock.hour_of_day(t),
                q.clock.day_of_week(t),
                &tenant.taxonomy,
            ) {
                continue;
            }
            if records.len() == limit {
                more = true;
                break 'read;
            }
            records.push(record);
        }
        if last_chunk {
            break;
        }
    }
    let next_cursor = match records.last() {
        Some(last) if more => {
            let (ns, id) = last.position();
            Some(drill::encode_cursor(ns, id))
        }
        _ => None,
    };
    let purged = &tenant.settings.purged;
    let horizon = match kind {
        RecordKind::Conversations => purged.raw_before_ns,
        RecordKind::LeadStages => purged.pipeline_before_ns,
    };
    let purged_before = horizon
        .filter(|h| range.start * 1_000_000_000 < *h)
        .map(|ns| drill.query.clock.format(ns.div_euclid(1_000_000_000)));
    Ok(Ok(RecordsPage {
        records: records.iter().map(|r| r.json(&drill.query.clock)).collect(),
        next_cursor,
        purged_before,
    }))
}

/// The statement of one chunk (`$1` tenant, `$2`..`$3` the range in ns, `$4`/`$5` the row to
/// continue after, `$6` the chunk's size) and the values of the filters it pushes (from `$7`):
/// those on stored columns without an empty value (a missing one), checked again on the rows.
fn statement(table: &Table, drill: &Drill) -> (String, Vec<Val>) {
    let (time, id) = (table.time, table.id);
    let mut sql = format!(
        "SELECT {} FROM {} WHERE tenant_id = $1 AND {time} >= $2 AND {time} < $3 AND ({time}, {id}) < ($4, $5)",
        table.columns, table.name
    );
    let mut values = Vec::new();
    for f in &drill.query.filters {
        let Dimension::Key(dim) = f.dimension else {
            continue;
        };
        let Some((_, column)) = table.stored.iter().find(|(d, _)| *d == dim) else {
            continue;
        };
        if f.values.iter().any(String::is_empty) {
            continue;
        }
        let mut wanted: Vec<&String> = f.values.iter().collect();
        // In order: one statement text for the same filter, whatever the set's order.
        wanted.sort();
        let first = 7 + values.len();
        let list: Vec<String> = (first..first + wanted.len()).map(|n| format!("${n}")).collect();
        sql += &format!(" AND {column} IN ({})", list.join(", "));
        values.extend(wanted.into_iter().map(|v| Val::from(v.as_str())));
    }
    sql += &format!(" ORDER BY {time} DESC, {id} DESC LIMIT $6");
    (sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_on_stored_columns_narrow_the_read_and_the_others_are_checked_on_rows() {
        let tenant = TenantInfo::new(1, "t".into(), crate::TenantSettings::new("UTC")).unwrap();
        let request = CallsRequest {
            query: json!({"range": {"start": "2026-03-01", "end": "2026-03-02"},
                "filters": {"agent": ["a1", "a2"], "team": ["t1"], "channel": ["", "chat"]}}),
            cursor: None,
            limit: 10,
        };
        let drill = drill::parse(&tenant, &request, 1_780_000_000, None, Arc::default()).unwrap();
        let (sql, values) = statement(&RecordKind::Conversations.table(), &drill);
        assert!(sql.contains("AND agent_id IN ($7, $8)"), "{sql}");
        assert!(!sql.contains("team_id IN") && !sql.contains("channel IN"), "{sql}");
        assert_eq!(values, vec![Val::from("a1"), Val::from("a2")]);
    }
}
