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
