//! Schedule runs (SPEC §7): a schedule itself is a saved item (`saved`, kind `schedule`); each
//! occurrence that came due is a row of `schedule_runs` keyed by (schedule, due time) with the
//! job (`jobs`) that renders and delivers it. Creating a run and its job is one transaction
//! that does nothing when the row exists, so nodes that all see an occurrence due make it once.
//! The same statements on both databases (see `sql.rs`).

use crate::jobs::{self, Job, NewJob};
use crate::sql::Sql;
use crate::{Result, StoreError};
use serde::Serialize;

/// One occurrence of a schedule and the job that carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleRun {
    pub schedule_id: String,
    /// Epoch seconds the occurrence was due.
    pub scheduled_for: i64,
    /// Due while no server was running; run once at start-up.
    pub late: bool,
    pub job: Job,
}

/// Creates the run of `schedule_id` due at `scheduled_for` with its job; `None` if that
/// occurrence already has a run (another node, or an earlier tick, made it). Run it in a
/// transaction.
pub fn create_run(
    db: &mut impl Sql,
    tenant_id: i64,
    schedule_id: &str,
    scheduled_for: i64,
    late: bool,
    job: &NewJob,
    now_ms: i64,
) -> Result<Option<Job>> {
    let inserted = db.execute(
        "INSERT INTO schedule_runs (tenant_id, schedule_id, scheduled_for, late, job_id) VALUES ($1, $2, $3, $4, '') \
         ON CONFLICT (tenant_id, schedule_id, scheduled_for) DO NOTHING",
        &[
            tenant_id.into(),
            schedule_id.into(),
            scheduled_for.into(),
            i64::from(late).into(),
        ],
    )?;
    if inserted == 0 {
        return Ok(None);
    }
    let job = jobs::enqueue(db, tenant_id, job, now_ms)?;
    db.execute(
        "UPDATE schedule_runs SET job_id = $4 WHERE tenant_id = $1 AND schedule_id = $2 AND scheduled_for = $3",
        &[
            tenant_id.into(),
            schedule_id.into(),
            scheduled_for.into(),
            job.id.as_str().into(),
        ],
    )?;
    Ok(Some(job))
}

/// The latest due time a run exists for (what the next occurrences are counted from).
pub fn latest_run(db: &mut impl Sql, tenant_id: i64, schedule_id: &str) -> Result<Option<i64>> {
    db.query_opt(
        "SELECT MAX(scheduled_for) FROM schedule_runs WHERE tenant_id = $1 AND schedule_id = $2",
        &[tenant_id.into(), schedule_id.into()],
    )?
    .map(|r| r.opt_int(0))
    .transpose()
    .map(Option::flatten)
}

/// A schedule's runs, newest first.
pub fn runs(db: &mut impl Sql, tenant_id: i64, schedule_id: &str, limit: usize) -> Result<Vec<ScheduleRun>> {
    let rows = db.query(
        "SELECT scheduled_for, late, job_id FROM schedule_runs WHERE tenant_id = $1 AND schedule_id = $2 \
         ORDER BY scheduled_for DESC LIMIT $3",
        &[tenant_id.into(), schedule_id.into(), (limit as i64).into()],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let job_id = r.text(2)?;
        let job = jobs::get(db, tenant_id, &job_id)?
            .ok_or_else(|| StoreError::Database(format!("schedule run without its job {job_id}")))?;
        out.push(ScheduleRun {
            schedule_id: schedule_id.to_string(),
            scheduled_for: r.int(0)?,
            late: r.int(1)? != 0,
            job,
        });
    }
    Ok(out)
}

/// One recipient's copy of a run, accepted by the SMTP server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub recipient: String,
    /// The message's size in bytes.
    pub size: i64,
    /// Epoch milliseconds.
    pub delivered_at: i64,
}

/// Records that `recipient`'s copy of the run due at `scheduled_for` was delivered (once; a
/// second record of the same copy is ignored). Written right after the SMTP server accepted
/// it and before the next copy leaves, so a retry of the run skips it.
pub fn record_delivery(
    db: &mut dyn Sql,
    tenant_id: i64,
    schedule_id: &str,
    scheduled_for: i64,
    delivery: &Delivery,
) -> Result<()> {
    db.execute(
        "INSERT INTO schedule_deliveries (tenant_id, schedule_id, scheduled_for, recipient, size, delivered_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, schedule_id, scheduled_for, recipient) DO NOTHING",
        &[
            tenant_id.into(),
            schedule_id.into(),
            scheduled_for.into(),
            delivery.recipient.as_str().into(),
            delivery.size.into(),
            delivery.delivered_at.into(),
        ],
    )?;
    Ok(())
}

/// The copies of the run due at `scheduled_for` delivered so far.
pub fn deliveries(db: &mut dyn Sql, tenant_id: i64, schedule_id: &str, scheduled_for: i64) -> Result<Vec<Delivery>> {
    db.query(
        "SELECT recipient, size, delivered_at FROM schedule_deliveries \
         WHERE tenant_id = $1 AND schedule_id = $2 AND scheduled_for = $3 ORDER BY recipient",
        &[tenant_id.into(), schedule_id.into(), scheduled_for.into()],
    )?
    .into_iter()
    .map(|r| {
        Ok(Delivery {
            recipient: r.text(0)?,
            size: r.int(1)?,
            delivered_at: r.int(2)?,
        })
    })
    .collect()
}

/// A schedule whose stored next run has come.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedule {
    pub tenant_id: i64,
    pub schedule_id: String,
    /// Epoch seconds.
    pub next_run: i64,
}

/// Stores when a schedule is next due (epoch seconds; `None` while paused), whatever was stored.
pub fn set_next_run(db: &mut dyn Sql, tenant_id: i64, schedule_id: &str, next_run: Option<i64>) -> Result<()> {
    db.execute(
        "INSERT INTO schedule_next_runs (tenant_id, schedule_id, next_run) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, schedule_id) DO UPDATE SET next_run = excluded.next_run",
        &[tenant_id.into(), schedule_id.into(), next_run.into()],
    )?;
    Ok(())
}

/// Moves a schedule's next run from `seen` (what the ticker read) to `next`; `false` if it
/// changed meanwhile (the schedule was edited, or another node moved it), which then stands.
pub fn advance_next_run(
    db: &mut dyn Sql,
    tenant_id: i64,
    schedule_id: &str,
    seen: i64,
    next: Option<i64>,
) -> Result<bool> {
    let moved = db.execute(
        "UPDATE schedule_next_runs SET next_run = $4 WHERE tenant_id = $1 AND schedule_id = $2 AND next_run = $3",
        &[tenant_id.into(), schedule_id.into(), seen.into(), next.into()],
    )?;
    Ok(moved > 0)
}

/// Forgets a deleted schedule's next run.
pub fn delete_next_run(db: &mut dyn Sql, tenant_id: i64, schedule_id: &str) -> Result<()> {
    db.execute(
        "DELETE FROM schedule_next_runs WHERE tenant_id = $1 AND schedule_id = $2",
        &[tenant_id.into(), schedule_id.into()],
    )?;
    Ok(())
}

/// Up to `limit` schedules due at `now` (epoch seconds), the longest overdue first: read
/// through the index on `next_run`, whatever the number of schedules.
pub fn due(db: &mut dyn Sql, now: i64, limit: usize) -> Result<Vec<DueSchedule>> {
    db.query(
        "SELECT tenant_id, schedule_id, next_run FROM schedule_next_runs \
         WHERE next_run IS NOT NULL AND next_run <= $1 ORDER BY next_run LIMIT $2",
        &[now.into(), (limit as i64).into()],
    )?
    .into_iter()
    .map(|r| {
        Ok(DueSchedule {
            tenant_id: r.int(0)?,
            schedule_id: r.text(1)?,
            next_run: r.int(2)?,
        })
    })
    .collect()
}
