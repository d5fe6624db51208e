//! The drill-down (`GET /calls`, `GET /calls/{id}`), the same on both stores: the request is
//! parsed with the query model's filters, rows come newest first from the store, and a page
//! ends after `limit` matches with a cursor to the next.

use crate::{call_json, CallsPage, CallsRequest, ExportCall, ExportPage, Result, TenantInfo};
use dialboard_engine::cells::{call_dim_values, Dim, Fact};
use dialboard_engine::event::{CallAnalysis, CallRecord};
use dialboard_engine::query::{self, directory_team, passes_filters, AgentTeams, Dimension, Query};
use dialboard_engine::FieldError;
use serde_json::{json, Value};
use std::sync::Arc;

/// A parsed drill-down: the query (filters, range, zone) and the row to continue after
/// (start ns and call id; the first page starts after `(i64::MAX, "")`).
pub struct Drill {
    pub query: Query,
    pub after: (i64, String),
    /// The directory's team of each agent: a call without a team is its agent's.
    pub agent_teams: Arc<AgentTeams>,
}

/// `earliest_call_ns` is the start of the tenant's earliest call: where `all_time` begins;
/// `agent_teams` the directory's team of each agent.
pub fn parse(
    tenant: &TenantInfo,
    request: &CallsRequest,
    now: i64,
    earliest_call_ns: Option<i64>,
    agent_teams: Arc<AgentTeams>,
) -> Result<Drill, Vec<FieldError>> {
    let earliest = earliest_call_ns.map(|ns| ns.div_euclid(1_000_000_000));
    let ctx = tenant.context(now, earliest, &agent_teams);
    let query = query::parse_drilldown(&request.query, &ctx)?;
    let after = match &request.cursor {
        None => (i64::MAX, String::new()),
        Some(c) => {
            decode_cursor(c).ok_or_else(|| vec![FieldError::new("cursor", "is not a cursor this API returned")])?
        }
    };
    Ok(Drill {
        query,
        after,
        agent_teams,
    })
}

/// A filter a store applies in SQL: the rows of `calls` whose `column` is one of `values` (or
/// NULL, when `or_null`: a missing value filters as ""). Rows read still pass
/// [`passes_filters`], the one definition of filtering; this only narrows what is read, so
/// that a drill-down reads the calls it shows, not every call of its range.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    pub column: &'static str,
    pub values: Vec<String>,
    pub or_null: bool,
}

impl Pushed {
    /// Whether an index on `(tenant_id, column, started_ns)` can list this filter's rows newest
    /// first: one value, and not NULL.
    pub fn ordered_by_index(&self) -> bool {
        self.values.len() == 1 && !self.or_null
    }
}

/// The call column of a dimension, for the columns the drill-down pushes into SQL.
fn call_column(dim: Dim) -> Option<&'static str> {
    Some(match dim {
        Dim::Agent => "agent_id",
        Dim::Team => "team_id",
        Dim::Campaign => "campaign_id",
        Dim::List => "list_id",
        Dim::LeadSource => "lead_source",
        Dim::Direction => "direction",
        Dim::Disposition => "disposition",
        _ => return None,
    })
}

/// The columns with an index `(tenant_id, column, started_ns)`, in the order a store prefers
/// them to drive a drill-down (the fewest rows per value first).
pub const INDEXED: [&str; 4] = ["agent_id", "campaign_id", "team_id", "disposition"];

impl Drill {
    /// The drill-down's filters as SQL conditions on `calls`: dimensions stored as call columns,
    /// and disposition categories as the taxonomy's dispositions in them.
    pub fn pushed(&self, tenant: &TenantInfo) -> Vec<Pushed> {
        let mut out = Vec::new();
        for f in &self.query.filters {
            let (column, mut values) = match f.dimension {
                Dimension::Key(d) => match call_column(d) {
                    Some(c) => (c, f.values.iter().cloned().collect::<Vec<_>>()),
                    None => continue,
                },
                Dimension::DispositionCategory => {
                    let in_category = |d: &&String| {
                        tenant
                            .taxonomy
                            .class(d)
                            .category
                            .is_some_and(|c| f.values.contains(c.as_str()))
                    };
                    (
                        "disposition",
                        tenant.taxonomy.known().iter().filter(in_category).cloned().collect(),
                    )
                }
                Dimension::HourOfDay | Dimension::DayOfWeek => continue,
            };
            values.sort();
            // A call without a team is its agent's team's in the directory: where the directory
            // puts an agent in one of the teams, calls without a team are read too (and checked
            // on the rows read); otherwise none can match and the team's index still drives.
            let team_from_directory =
                column == "team_id" && self.agent_teams.values().any(|team| values.contains(team));
            out.push(Pushed {
                column,
                or_null: team_from_directory || values.iter().any(String::is_empty),
                values,
            });
        }
        out
    }

    /// The pushed filter a store should read through its index, if any: the first, in
    /// [`INDEXED`] order, that the index lists newest first.
    pub fn driving(pushed: &[Pushed]) -> Option<usize> {
        INDEXED
            .iter()
            .find_map(|col| pushed.iter().position(|p| p.column == *col && p.ordered_by_index()))
    }
}

/// The same drill-down for each of `agents`: its own agent filter (within the drill's own, if
/// it has one; `None` for an agent outside it, which has no calls to show).
pub fn per_agent(drill: &Drill, agents: &[String]) -> Vec<Option<Drill>> {
    let own = drill
        .query
        .filters
        .iter()
        .position(|f| f.dimension == Dimension::Key(Dim::Agent));
    agents
        .iter()
        .map(|agent| {
            let mut one = Drill {
                query: drill.query.clone(),
                after: drill.after.clone(),
                agent_teams: drill.agent_teams.clone(),
            };
            match own {
                Some(i) if !one.query.filters[i].values.contains(agent) => return None,
                Some(i) => one.query.filters[i].values = [agent.clone()].into_iter().collect(),
                None => one.query.filters.push(query::Filter {
                    dimension: Dimension::Key(Dim::Agent),
                    values: [agent.clone()].into_iter().collect(),
                }),
            }
            Some(one)
        })
        .collect()
}

/// How many of `dispositions` (an agent's calls, newest first) are in `run` before the first
/// that is not: a streak.
pub fn leading_run(dispositions: impl Iterator<Item = Result<String>>, run: &[String]) -> Result<i64> {
    let mut n = 0;
    for d in dispositions {
        if !run.contains(&d?) {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// One page from `rows` (newest first, starting after the cursor): the first `limit` that pass
/// the filters, and a cursor if another one follows.
pub fn page<R: CallRow>(tenant: &TenantInfo, drill: &Drill, (calls, next_cursor): Matched<R>) -> CallsPage {
    let q = &drill.query;
    let calls = calls
        .iter()
        .map(|r| call_json(r.call(), r.analysis(), &q.clock, &tenant.taxonomy))
        .collect();
    // Rows before the retention horizon are gone: the answer says so, not just "none".
    let purged_before = crate::retention::purged_before(tenant, q.range.start * 1_000_000_000)
        .map(|ns| q.clock.format(ns.div_euclid(1_000_000_000)));
    CallsPage {
        calls,
        next_cursor,
        purged_before,
    }
}

/// The calls of one page as rows (records with their analyses), and the cursor of the next
/// page.
pub type Matched<R = (CallRecord, Option<CallAnalysis>)> = (Vec<R>, Option<String>);

/// A row a drill-down reads: a call, its analysis, and whatever else the store reads with them
/// (SQLite: the call as an export's row, and the row of its event).
pub trait CallRow {
    fn call(&self) -> &CallRecord;
    fn analysis(&self) -> Option<&CallAnalysis>;
}

impl CallRow for (CallRecord, Option<CallAnalysis>) {
    fn call(&self) -> &CallRecord {
        &self.0
    }
    fn analysis(&self) -> Option<&CallAnalysis> {
        self.1.as_ref()
    }
}

impl<T> CallRow for (ExportCall, T) {
    fn call(&self) -> &CallRecord {
        &self.0.call
    }
    fn analysis(&self) -> Option<&CallAnalysis> {
        self.0.analysis.as_ref()
    }
}

/// `rows`, newest first, in the drill-down's order: calls that start at the same instant by id,
/// descending. For a statement ordered by the start alone (an index without the id lists them
/// in any order): SQLite sorts such "right parts" of an order by passing every row through its
/// sorter, a copy of all its columns each, where only the few ties need it.
pub fn ties_by_id<R: CallRow>(rows: impl Iterator<Item = Result<R>>) -> impl Iterator<Item = Result<R>> {
    ties_by(rows, |r| r.call().started_ns, |r| r.call().call_id.as_str())
}

/// `rows`, newest first by `instant`, with the rows of one instant by `id` descending (see
/// [`ties_by_id`]; also for rows that are not whole calls, as a streak's).
pub fn ties_by<R>(
    rows: impl Iterator<Item = Result<R>>,
    instant: impl Fn(&R) -> i64,
    id: impl Fn(&R) -> &str,
) -> impl Iterator<Item = Result<R>> {
    let mut rows = rows.peekable();
    // The rest of the current instant's rows, by id ascending (the next is the last).
    let mut tied: Vec<R> = Vec::new();
    std::iter::from_fn(move || {
        if let Some(row) = tied.pop() {
            return Some(Ok(row));
        }
        let first = match rows.next()? {
            Ok(row) => row,
            Err(e) => return Some(Err(e)),
        };
        let at = instant(&first);
        if !matches!(rows.peek(), Some(Ok(next)) if instant(next) == at) {
            return Some(Ok(first));
        }
        tied.push(first);
        while let Some(next) = rows.next_if(|r| matches!(r, Ok(r) if instant(r) == at)) {
            tied.push(next.ok()?);
        }
        tied.sort_unstable_by(|a, b| id(a).cmp(id(b)));
        tied.pop().map(Ok)
    })
}

/// The calls of one page, as rows: the first `limit` of `rows` that pass the filters, and the
/// cursor to the next page if another match follows.
pub fn matching<R: CallRow>(
    tenant: &TenantInfo,
    drill: &Drill,
    limit: usize,
    rows: impl Iterator<Item = Result<R>>,
) -> Result<Matched<R>> {
    let q = &drill.query;
    // Sized once: an export's page holds 20,000 calls of ~0.5 KB, grown by doubling it was
    // copied over and over.
    let mut calls: Vec<R> = Vec::with_capacity(limit.min(1 << 16));
    let mut next_cursor = None;
    for row in rows {
        let row = row?;
        let call = row.call();
        let t = call.started_second();
        let mut values = call_dim_values(call, row.analysis());
        directory_team(&mut values, Fact::Calls, &drill.agent_teams);
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
            let last = calls.last().expect("limit ≥ 1").call();
            next_cursor = Some(encode_cursor(last.started_ns, &last.call_id));
            break;
        }
        calls.push(row);
    }
    Ok((calls, next_cursor))
}

/// One page of an export: the calls of [`matching`] with the body of their current event (the
/// fields records do not keep), taken from `bodies` (event id → JSON body).
pub fn export_page(
    calls: Vec<(CallRecord, Option<CallAnalysis>)>,
    next_cursor: Option<String>,
    mut bodies: std::collections::HashMap<String, String>,
) -> ExportPage {
    let rows = calls
        .into_iter()
        .map(|(call, analysis)| ExportCall {
            body: bodies.remove(&call.event_id),
            call,
            analysis,
        })
        .collect();
    ExportPage { rows, next_cursor }
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
pub(crate) fn encode_cursor(started_ns: i64, call_id: &str) -> String {
    hex(format!("{started_ns}:{call_id}").as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(unhex(cursor)?).ok()?;
    let (ns, id) = text.split_once(':')?;
    Some((ns.parse().ok()?, id.to_string()))
}
