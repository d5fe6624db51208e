//! Retention (SPEC §12): how long each kind of a tenant's data is kept, and the purge that
//! enforces it — the same statements on both stores (`Sql`), so a dry run counts with exactly
//! the conditions the purge deletes with.
//!
//! What a purge keeps so that numbers stay right:
//! - Coarser cells outlive finer ones (the policy is refused otherwise), and the planner reads
//!   the coarsest cells a range allows, so a daily query over purged raw rows answers as before.
//! - Horizons are whole local days of the tenant's cell zone and only move forward: what was
//!   purged stays purged when a policy is lengthened. Events dated before a horizon are then
//!   refused (`refusal`): they would change cells whose raw rows are gone — a re-sent purged
//!   event or a correction of a purged call would count twice, or take back what it cannot see.
//! - Each agent's last status before the raw horizon stays (a later status splits its interval),
//!   and each contact's first arrival at a stage stays (funnels count first arrivals).

use crate::sql::{Sql, Val};
use crate::{Result, TenantInfo};
use dialboard_engine::clock::{Clock, Grain};
use dialboard_engine::event::{Event, ParsedEvent};
use dialboard_engine::FieldError;
use serde::{Deserialize, Serialize};

const DAY_SECONDS: i64 = 86_400;
const NANOS: i64 = 1_000_000_000;

/// Days each kind is kept; `None` keeps it forever. The seed's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// Raw events and the records built from them (calls, analyses, statuses, tickets, CSAT).
    pub raw_days: Option<u32>,
    pub quarter_cells_days: Option<u32>,
    pub hour_cells_days: Option<u32>,
    pub day_cells_days: Option<u32>,
    /// Pipeline stage changes.
    pub pipeline_days: Option<u32>,
    pub audit_days: Option<u32>,
    /// Export jobs' files (downloads end after 7 days anyway).
    pub export_files_days: Option<u32>,
    /// How long after the tenant's admins are told of a new policy its first purge waits.
    pub notice_hours: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            raw_days: Some(90),
            quarter_cells_days: Some(7),
            hour_cells_days: Some(90),
            day_cells_days: Some(730),
            pipeline_days: Some(1095),
            audit_days: None,
            export_files_days: Some(7),
            notice_hours: 24,
        }
    }
}

impl RetentionPolicy {
    /// Problems by field: days of at least 1, and each summary kept at least as long as what it
    /// summarizes (so a purge never leaves a range without an answer).
    pub fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let kinds = [
            ("raw_days", self.raw_days),
            ("quarter_cells_days", self.quarter_cells_days),
            ("hour_cells_days", self.hour_cells_days),
            ("day_cells_days", self.day_cells_days),
            ("pipeline_days", self.pipeline_days),
            ("audit_days", self.audit_days),
            ("export_files_days", self.export_files_days),
        ];
        for (field, days) in kinds {
            if days == Some(0) {
                errors.push(FieldError::new(
                    format!("retention.{field}"),
                    "must be at least 1 day, or null to keep forever",
                ));
            }
        }
        let forever = |d: Option<u32>| d.unwrap_or(u32::MAX);
        let outlives = [
            (
                "hour_cells_days",
                self.hour_cells_days,
                "quarter_cells_days",
                self.quarter_cells_days,
            ),
            (
                "day_cells_days",
                self.day_cells_days,
                "hour_cells_days",
                self.hour_cells_days,
            ),
            ("day_cells_days", self.day_cells_days, "raw_days", self.raw_days),
        ];
        for (coarse, c, fine, f) in outlives {
            if forever(c) < forever(f) {
                errors.push(FieldError::new(
                    format!("retention.{coarse}"),
                    format!("must be at least {fine} (coarser rollups answer for what is purged)"),
                ));
            }
        }
        errors
    }
}

/// What purges did so far (kept in the tenant's settings, not settable through the API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PurgeState {
    /// Raw rows dated before this instant (epoch ns) are gone.
    pub raw_before_ns: Option<i64>,
    /// Pipeline stage changes dated before this instant (epoch ns) are gone.
    pub pipeline_before_ns: Option<i64>,
    /// The policy the admins were last told of, and when (epoch ms).
    pub noticed_policy: Option<RetentionPolicy>,
    pub noticed_at_ms: Option<i64>,
}

impl PurgeState {
    pub fn is_empty(&self) -> bool {
        *self == PurgeState::default()
    }
}

/// A kind of data a purge deletes, as reported (dry run and purge) and audited.
pub const KINDS: [&str; 8] = [
    "raw_events",
    "raw_records",
    "quarter_cells",
    "hour_cells",
    "day_cells",
    "pipeline",
    "audit",
    "export_files",
];

/// The instants before which each kind goes (`None`: kept). Raw and pipeline in ns, cells as
/// bucket seconds, audit in seconds, export jobs in ms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cutoffs {
    pub raw_ns: Option<i64>,
    pub quarter: Option<i64>,
    pub hour: Option<i64>,
    pub day: Option<i64>,
    pub pipeline_ns: Option<i64>,
    pub audit_s: Option<i64>,
    pub export_ms: Option<i64>,
}

impl Cutoffs {
    /// The policy's cutoffs at `now_ms`: each a local midnight of `clock` (the zone cells are
    /// kept in), never earlier than what `state` says was purged already.
    pub fn at(policy: &RetentionPolicy, state: &PurgeState, clock: &Clock, now_ms: i64) -> Cutoffs {
        let now = now_ms.div_euclid(1000);
        let midnight = |days: Option<u32>| days.map(|d| clock.day_start(now - i64::from(d) * DAY_SECONDS));
        let at_least = |cut: Option<i64>, done: Option<i64>| match (cut, done) {
            (Some(c), Some(d)) => Some(c.max(d)),
            (c, d) => c.or(d),
        };
        Cutoffs {
            raw_ns: at_least(midnight(policy.raw_days).map(|s| s * NANOS), state.raw_before_ns),
            quarter: midnight(policy.quarter_cells_days),
            hour: midnight(policy.hour_cells_days),
            day: midnight(policy.day_cells_days),
            pipeline_ns: at_least(
                midnight(policy.pipeline_days).map(|s| s * NANOS),
                state.pipeline_before_ns,
            ),
            audit_s: policy.audit_days.map(|d| now - i64::from(d) * DAY_SECONDS),
            export_ms: policy
                .export_files_days
                .map(|d| now_ms - i64::from(d) * DAY_SECONDS * 1000),
        }
    }
}

/// Rows (raw, audit) or blocks (cells) or chunks (files) per kind.
pub type Counts = std::collections::BTreeMap<String, i64>;

/// How the two databases name what differs.
#[derive(Debug, Clone, Copy)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// One kind's rows: the table and the condition (`$1` the tenant, `$2` the cutoff).
struct Target {
    kind: &'static str,
    table: &'static str,
    condition: String,
    /// What a row counts for (a column), if not one.
    weight: Option<&'static str>,
}

fn targets(dialect: Dialect, cutoffs: &Cutoffs) -> Vec<(Target, i64)> {
    let mut out = Vec::new();
    let mut add_weighted = |kind, table, condition: String, weight, cutoff: Option<i64>| {
        if let Some(cutoff) = cutoff {
            let target = Target {
                kind,
                table,
                condition,
                weight,
            };
            out.push((target, cutoff));
        }
    };
    // The blocks of events (pg/bodies.rs, sqlite/bodies.rs), each counting for the events it
    // holds without a row; `events` below holds the rows (SQLite's blocks of bodies only count
    // for none: their events have rows).
    let raw = match dialect {
        Dialect::Sqlite => "received_at < $2",
        Dialect::Postgres => "received_ns < $2",
    };
    add_weighted("raw_events", "event_blocks", raw.into(), Some("events"), cutoffs.raw_ns);
    let mut add =
        |kind, table, condition: String, cutoff: Option<i64>| add_weighted(kind, table, condition, None, cutoff);
    let received = match dialect {
        Dialect::Sqlite => "received_at",
        Dialect::Postgres => "received_ns",
    };
    add("raw_events", "events", format!("{received} < $2"), cutoffs.raw_ns);
    // Analyses first: they are found through their calls.
    add(
        "raw_records",
        "call_analysis",
        "call_id IN (SELECT call_id FROM calls WHERE tenant_id = $1 AND started_ns < $2)".into(),
        cutoffs.raw_ns,
    );
    add("raw_records", "calls", "started_ns < $2".into(), cutoffs.raw_ns);
    add(
        "raw_records",
        "agent_status",
        "at_ns < $2 AND EXISTS (SELECT 1 FROM agent_status later WHERE later.tenant_id = $1 \
         AND later.agent_id = agent_status.agent_id AND later.at_ns < $2 \
         AND (later.at_ns, later.event_id) > (agent_status.at_ns, agent_status.event_id))"
            .into(),
        cutoffs.raw_ns,
    );
    add("raw_records", "conversations", "opened_ns < $2".into(), cutoffs.raw_ns);
    add("raw_records", "csat", "at_ns < $2".into(), cutoffs.raw_ns);
    // PostgreSQL's `call_keys` of purged calls stay, as SQLite's hashed keys do: an id whose
    // key is found but whose row is gone was purged (`purged_call_refusal`).
    // Weeks and months go with the day cells, once the cutoff has passed their whole span (at
    // most a week or 31 days and a DST hour): until then they still hold days that are kept.
    const HOUR: i64 = 3600;
    for (kind, grain, cutoff, longest) in [
        ("quarter_cells", Grain::Quarter, cutoffs.quarter, 0),
        ("hour_cells", Grain::Hour, cutoffs.hour, 0),
        ("day_cells", Grain::Day, cutoffs.day, 0),
        ("day_cells", Grain::Week, cutoffs.day, 7 * DAY_SECONDS + HOUR),
        ("day_cells", Grain::Month, cutoffs.day, 31 * DAY_SECONDS + HOUR),
    ] {
        let condition = match longest {
            0 => format!("grain = {} AND bucket < $2", grain as i64),
            span => format!("grain = {} AND bucket <= $2 - {span}", grain as i64),
        };
        add(kind, "cells", condition.clone(), cutoff);
        if matches!(dialect, Dialect::Postgres) {
            add(kind, "cell_deltas", condition, cutoff);
        }
    }
    add(
        "pipeline",
        "lead_stages",
        "at_ns < $2 AND EXISTS (SELECT 1 FROM lead_stages earlier WHERE earlier.tenant_id = $1 \
         AND earlier.contact_id = lead_stages.contact_id AND earlier.stage = lead_stages.stage \
         AND (earlier.at_ns, earlier.event_id) < (lead_stages.at_ns, lead_stages.event_id))"
            .into(),
        cutoffs.pipeline_ns,
    );
    add("audit", "audit", "at < $2".into(), cutoffs.audit_s);
    add(
        "export_files",
        "job_files",
        "job_id IN (SELECT id FROM jobs WHERE tenant_id = $1 AND kind = 'export' AND created_at < $2)".into(),
        cutoffs.export_ms,
    );
    out
}

/// Counts (`dry_run`) or deletes what `cutoffs` purge, per kind. Run it in one transaction,
/// holding whatever keeps the tenant's ingest out meanwhile.
pub fn purge(db: &mut impl Sql, dialect: Dialect, tenant_id: i64, cutoffs: &Cutoffs, dry_run: bool) -> Result<Counts> {
    let mut counts: Counts = KINDS.iter().map(|k| (k.to_string(), 0)).collect();
    for (t, cutoff) in targets(dialect, cutoffs) {
        let params: [Val; 2] = [tenant_id.into(), cutoff.into()];
        let found = format!("FROM {} WHERE tenant_id = $1 AND {}", t.table, t.condition);
        let n = match (dry_run, t.weight, dialect) {
            (true, None, _) => db
                .query_opt(&format!("SELECT count(*) {found}"), &params)?
                .map_or(Ok(0), |r| r.int(0))?,
            (false, None, _) => db.execute(&format!("DELETE {found}"), &params)? as i64,
            (false, Some(w), Dialect::Postgres) => {
                let sum = sum(dialect, w);
                let sql = format!("WITH gone AS (DELETE {found} RETURNING {w}) SELECT {sum} FROM gone");
                db.query_opt(&sql, &params)?.map_or(Ok(0), |r| r.int(0))?
            }
            // Counted; on SQLite, which has no DELETE in a WITH, then deleted in the transaction.
            (_, Some(w), _) => {
                let sql = format!("SELECT {} {found}", sum(dialect, w));
                let n = db.query_opt(&sql, &params)?.map_or(Ok(0), |r| r.int(0))?;
                if !dry_run {
                    db.execute(&format!("DELETE {found}"), &params)?;
                }
                n
            }
        };
        if let Some(count) = counts.get_mut(t.kind) {
            *count += n;
        }
    }
    Ok(counts)
}

/// The sum of the column `weight` of the rows found, 0 if none.
fn sum(dialect: Dialect, weight: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("coalesce(sum({weight}), 0)"),
        Dialect::Postgres => format!("coalesce(sum({weight}), 0)::bigint"),
    }
}

/// The state after a purge at `cutoffs`.
pub fn purged(state: &PurgeState, cutoffs: &Cutoffs) -> PurgeState {
    PurgeState {
        raw_before_ns: cutoffs.raw_ns.or(state.raw_before_ns),
        pipeline_before_ns: cutoffs.pipeline_ns.or(state.pipeline_before_ns),
        ..state.clone()
    }
}

/// Why an event cannot be applied after a purge: it is dated before the horizon of its kind,
/// whose raw rows are gone (a late event, a re-sent purged event, a correction of a purged
/// record). Named by the event's time field.
pub fn refusal(tenant: &TenantInfo, e: &ParsedEvent) -> Option<FieldError> {
    let state = &tenant.settings.purged;
    let (field, at, horizon) = match &e.event {
        Event::Call(c) => ("started_at", c.started_ns, state.raw_before_ns),
        Event::Status(s) => ("at", s.at_ns, state.raw_before_ns),
        Event::Conversation(c) => ("opened_at", c.opened_ns, state.raw_before_ns),
        Event::Csat(s) => ("at", s.at_ns, state.raw_before_ns),
        Event::Stage(s) => ("at", s.at_ns, state.pipeline_before_ns),
        Event::Analysis(_) => return None,
    };
    let horizon = horizon.filter(|h| at < *h)?;
    Some(FieldError::new(
        field,
        format!(
            "is before {}, up to which this tenant's records were purged by its retention policy; \
             a purged record cannot be sent again or corrected",
            tenant.clock.format(horizon.div_euclid(NANOS))
        ),
    ))
}

/// Why an event naming a purged call (a correction dated after the horizon, an analysis) is
/// refused.
pub fn purged_call_refusal() -> FieldError {
    FieldError::new(
        "call_id",
        "names a call purged by this tenant's retention policy; a purged record cannot be corrected",
    )
}

/// Whether a drill-down from `start_ns` reaches into purged rows: the horizon, if so.
pub fn purged_before(tenant: &TenantInfo, start_ns: i64) -> Option<i64> {
    tenant.settings.purged.raw_before_ns.filter(|h| start_ns < *h)
}

/// The fields of an event that carry a contact's personal data (SPEC §12's erasure).
pub const PERSONAL_FIELDS: [&str; 3] = ["prospect", "notes", "recording_url"];

/// `body` without the personal fields if it is an event of the contact that has any (SQLite's
/// compressed blocks of bodies are rewritten with it too).
pub fn erased_body(body: &str, contact_id: &str) -> Option<String> {
    // The id as JSON text narrows the search; the parsed body decides.
    let needle = serde_json::to_string(contact_id).expect("a string serializes");
    if !body.contains(&needle) {
        return None;
    }
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str(body) else {
        return None;
    };
    if obj.get("contact_id").and_then(|v| v.as_str()) != Some(contact_id) {
        return None;
    }
    let before = obj.len();
    obj.retain(|k, _| !PERSONAL_FIELDS.contains(&k.as_str()));
    (obj.len() != before).then(|| serde_json::Value::Object(obj).to_string())
}

/// Erases a contact's personal data from every stored event of theirs (every version of each
/// of their calls): the fields go, ids and numbers stay, so no record or cell changes. Run it
/// in a transaction; returns how many events were rewritten.
pub fn erase_contact(db: &mut impl Sql, dialect: Dialect, tenant_id: i64, contact_id: &str) -> Result<i64> {
    let (received, contains) = match dialect {
        Dialect::Sqlite => ("received_at", "instr(body, $2) > 0"),
        Dialect::Postgres => ("received_ns", "strpos(body, $2) > 0"),
    };
    // The id as JSON text narrows the scan; the parsed body decides.
    let needle = serde_json::to_string(contact_id).expect("a string serializes");
    let rows = db.query(
        &format!("SELECT {received}, seq, body FROM events WHERE tenant_id = $1 AND {contains}"),
        &[tenant_id.into(), needle.into()],
    )?;
    let mut erased = 0;
    for row in rows {
        let (at, seq, body) = (row.int(0)?, row.int(1)?, row.text(2)?);
        let Some(body) = erased_body(&body, contact_id) else {
            continue;
        };
        db.execute(
            &format!("UPDATE events SET body = $4 WHERE tenant_id = $1 AND {received} = $2 AND seq = $3"),
            &[tenant_id.into(), at.into(), seq.into(), body.into()],
        )?;
        erased += 1;
    }
    Ok(erased)
}
