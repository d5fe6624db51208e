//! The badges a tenant's reps hold (SPEC §14): the stored side of
//! `dialboard_engine::gamification`'s awards, run through [`crate::alerting::run`].
//!
//! Awarding inserts a row only if it is absent, revoking deletes it only if present, and each
//! says whether its statement changed the row: when several nodes reconcile the same facts at
//! once, exactly one of them records (and announces) each award and each revocation.
//!
//! Times are epoch milliseconds passed in by the caller.

use crate::sql::{Row, Sql, Val};
use crate::Result;
use dialboard_engine::gamification::Award;
use serde::Serialize;

/// An award as stored, with when it was (last) awarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldAward {
    #[serde(flatten)]
    pub award: Award,
    pub awarded_at: i64,
}

/// Records `award` unless it is already held; `true` if this call recorded it.
pub fn award(db: &mut dyn Sql, tenant_id: i64, award: &Award, at: i64) -> Result<bool> {
    let n = db.execute(
        "INSERT INTO badge_awards (tenant_id, badge, agent_id, period, awarded_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING",
        &[
            tenant_id.into(),
            award.badge.as_str().into(),
            award.agent.as_str().into(),
            award.period.as_str().into(),
            at.into(),
        ],
    )?;
    Ok(n > 0)
}

/// Takes `award` away if it is held; `true` if this call took it.
pub fn revoke(db: &mut dyn Sql, tenant_id: i64, award: &Award) -> Result<bool> {
    let n = db.execute(
        "DELETE FROM badge_awards WHERE tenant_id = $1 AND badge = $2 AND agent_id = $3 AND period = $4",
        &[
            tenant_id.into(),
            award.badge.as_str().into(),
            award.agent.as_str().into(),
            award.period.as_str().into(),
        ],
    )?;
    Ok(n > 0)
}

const COLUMNS: &str = "SELECT badge, agent_id, period, awarded_at FROM badge_awards WHERE tenant_id = $1";
const ORDER: &str = "ORDER BY badge, agent_id, period";

/// The awards held in a tenant (one rep's if `agent` is given), by badge, rep and period.
pub fn held(db: &mut dyn Sql, tenant_id: i64, agent: Option<&str>) -> Result<Vec<HeldAward>> {
    let rows = match agent {
        Some(agent) => db.query(
            &format!("{COLUMNS} AND agent_id = $2 {ORDER}"),
            &[tenant_id.into(), agent.into()],
        )?,
        None => db.query(&format!("{COLUMNS} {ORDER}"), &[tenant_id.into()])?,
    };
    awards(&rows)
}

/// The awards held by any of `agents` or for any of `periods`, by badge, rep and period: what
/// a reconciliation of some reps (and of the periods they share with the others) compares.
pub fn held_by(db: &mut dyn Sql, tenant_id: i64, agents: &[String], periods: &[String]) -> Result<Vec<HeldAward>> {
    let mut params: Vec<Val> = vec![tenant_id.into()];
    let mut list = |values: &[String]| {
        let marks: Vec<String> = values
            .iter()
            .map(|v| {
                params.push(v.as_str().into());
                format!("${}", params.len())
            })
            .collect();
        // `IN ()` is not SQL: an empty list matches nothing.
        if marks.is_empty() {
            "NULL".to_string()
        } else {
            marks.join(", ")
        }
    };
    let (agents, periods) = (list(agents), list(periods));
    let rows = db.query(
        &format!("{COLUMNS} AND (agent_id IN ({agents}) OR period IN ({periods})) {ORDER}"),
        &params,
    )?;
    awards(&rows)
}

fn awards(rows: &[Row]) -> Result<Vec<HeldAward>> {
    rows.iter()
        .map(|r| {
            Ok(HeldAward {
                award: Award {
                    badge: r.text(0)?,
                    agent: r.text(1)?,
                    period: r.text(2)?,
                },
                awarded_at: r.int(3)?,
            })
        })
        .collect()
}

/// The tenants whose history predates badges (marked by the migration that brought
/// `badge_baselines`): their first reconciliation records awards without announcing them.
pub fn baselines(db: &mut dyn Sql) -> Result<Vec<i64>> {
    db.query("SELECT tenant_id FROM badge_baselines ORDER BY tenant_id", &[])?
        .iter()
        .map(|r| r.int(0))
        .collect()
}

/// The tenant's history is reconciled: what it earns from now on is news.
pub fn baseline_done(db: &mut dyn Sql, tenant_id: i64) -> Result<()> {
    db.execute("DELETE FROM badge_baselines WHERE tenant_id = $1", &[tenant_id.into()])?;
    Ok(())
}
