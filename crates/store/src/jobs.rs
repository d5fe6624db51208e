//! The one job mechanism (exports now; schedules, alerts, retention and imports later): a job is
//! a row of `jobs`, queued, claimed by one node at a time under a lease, retried with
//! exponential backoff, its progress and result stored. The same statements on both databases
//! (see `sql.rs`); only the claim differs: PostgreSQL skips rows another node has locked
//! (`FOR UPDATE SKIP LOCKED`), SQLite runs it in an IMMEDIATE transaction (one writer at a time,
//! across processes too).
//!
//! Times are epoch milliseconds passed in by the caller, so tests move the clock instead of
//! sleeping through backoffs and leases.

use crate::sql::{Row, Sql, Val};
use crate::{Result, StoreError};
use serde::Serialize;
use serde_json::Value;

/// A job's state. `Queued` jobs whose `run_after` has passed, and `Running` jobs whose lease
/// has expired (their node died), can be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<JobState> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            other => return Err(StoreError::Database(format!("unknown job state '{other}'"))),
        })
    }
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: Value,
    /// Attempts before the job is `Failed` for good (at least 1).
    pub max_attempts: i64,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    #[serde(skip)]
    pub tenant_id: i64,
    pub id: String,
    pub kind: String,
    pub payload: Value,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Epoch ms before which a queued job is not claimed (the backoff after a failure).
    pub run_after: i64,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The worker holding the lease, while running.
    pub claimed_by: Option<String>,
    pub lease_until: Option<i64>,
}

/// What a worker asks for: a job of one kind (or any), leased to it for `lease_ms`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub worker: String,
    pub kind: Option<String>,
    pub lease_ms: i64,
}

/// A change the worker holding a job's lease makes to it.
#[derive(Debug, Clone)]
pub enum JobUpdate {
    /// Progress so far; also renews the lease for another `lease_ms`.
    Progress {
        done: i64,
        total: Option<i64>,
        lease_ms: i64,
    },
    Succeeded(Value),
    /// Queued again after a backoff while attempts remain; `Failed` for good after that.
    Failed(String),
}

/// The wait before attempt `attempts + 1`: 2 s, 4 s, 8 s … capped at 10 minutes.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exponent = attempts.clamp(1, 20) - 1;
    (2_000i64 << exponent).min(600_000)
}

const COLUMNS: &str = "tenant_id, id, kind, payload, state, attempts, max_attempts, run_after, progress_done, \
                       progress_total, result, error, created_at, updated_at, claimed_by, lease_until";

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(format!("a job's JSON: {e}")))
}

fn job_from_row(r: &Row) -> Result<Job> {
    Ok(Job {
        tenant_id: r.int(0)?,
        id: r.text(1)?,
        kind: r.text(2)?,
        payload: json(&r.text(3)?)?,
        state: JobState::parse(&r.text(4)?)?,
        attempts: r.int(5)?,
        max_attempts: r.int(6)?,
        run_after: r.int(7)?,
        progress_done: r.int(8)?,
        progress_total: r.opt_int(9)?,
        result: r.opt_text(10)?.as_deref().map(json).transpose()?,
        error: r.opt_text(11)?,
        created_at: r.int(12)?,
        updated_at: r.int(13)?,
        claimed_by: r.opt_text(14)?,
        lease_until: r.opt_int(15)?,
    })
}

/// A random job id (16 hex digits): not guessable, so ids do not reveal how many jobs exist.
pub fn new_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn enqueue(db: &mut impl Sql, tenant_id: i64, job: &NewJob, now: i64) -> Result<Job> {
    let id = new_id();
    insert(db, tenant_id, &id, job, now, "")?;
    get(db, tenant_id, &id)?.ok_or_else(|| StoreError::Database("a queued job vanished".into()))
}

/// Queues a job under a chosen id unless the tenant already has one with that id (`None`):
/// periodic work that nodes queue independently (a day's retention purge) is queued once.
pub fn enqueue_once(db: &mut impl Sql, tenant_id: i64, id: &str, job: &NewJob, now: i64) -> Result<Option<Job>> {
    if insert(db, tenant_id, id, job, now, " ON CONFLICT (tenant_id, id) DO NOTHING")? == 0 {
        return Ok(None);
    }
    get(db, tenant_id, id)
}

fn insert(db: &mut impl Sql, tenant_id: i64, id: &str, job: &NewJob, now: i64, on_conflict: &str) -> Result<u64> {
    if job.max_attempts < 1 {
        return Err(StoreError::Invalid("max_attempts must be at least 1".into()));
    }
    db.execute(
        &format!(
            "INSERT INTO jobs (tenant_id, id, kind, payload, state, attempts, max_attempts, run_after, progress_done, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, 0, $6, $6){on_conflict}"
        ),
        &[
            tenant_id.into(),
            id.into(),
            job.kind.as_str().into(),
            job.payload.to_string().into(),
            job.max_attempts.into(),
            now.into(),
        ],
    )
}

/// Claims the oldest due job. Run it in a transaction; `skip_locked` on PostgreSQL, where
/// concurrent claimers skip the row another one is taking instead of waiting for it.
pub fn claim(db: &mut impl Sql, claim: &Claim, now: i64, skip_locked: bool) -> Result<Option<Job>> {
    let mut params: Vec<Val> = vec![now.into(), claim.worker.as_str().into(), (now + claim.lease_ms).into()];
    let kind = match &claim.kind {
        Some(k) => {
            params.push(k.as_str().into());
            " AND kind = $4"
        }
        None => "",
    };
    let lock = if skip_locked { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, claimed_by = $2, lease_until = $3, \
         updated_at = $1 WHERE (tenant_id, id) = (SELECT tenant_id, id FROM jobs WHERE \
         ((state = 'queued' AND run_after <= $1) OR (state = 'running' AND lease_until < $1)){kind} \
         ORDER BY run_after, created_at, id LIMIT 1{lock}) RETURNING {COLUMNS}"
    );
    db.query(&sql, &params)?.first().map(job_from_row).transpose()
}

/// Applies a worker's update (run it in a transaction); `false` if the worker no longer holds the job (its lease expired
/// and another node claimed it, or the job is finished), in which case nothing changes.
pub fn update(db: &mut impl Sql, tenant_id: i64, id: &str, worker: &str, update: &JobUpdate, now: i64) -> Result<bool> {
    let held = "WHERE tenant_id = $1 AND id = $2 AND claimed_by = $3 AND state = 'running'";
    let key: [Val; 4] = [tenant_id.into(), id.into(), worker.into(), now.into()];
    let n = match update {
        JobUpdate::Progress { done, total, lease_ms } => db.execute(
            &format!(
                "UPDATE jobs SET progress_done = $5, progress_total = $6, lease_until = $7, updated_at = $4 {held}"
            ),
            &[&key[..], &[(*done).into(), (*total).into(), (now + lease_ms).into()]].concat(),
        )?,
        JobUpdate::Succeeded(result) => db.execute(
            &format!(
                "UPDATE jobs SET state = 'succeeded', result = $5, error = NULL, claimed_by = NULL, \
                 lease_until = NULL, progress_done = COALESCE(progress_total, progress_done), updated_at = $4 {held}"
            ),
            &[&key[..], &[result.to_string().into()]].concat(),
        )?,
        JobUpdate::Failed(error) => {
            let Some(row) = db.query_opt(&format!("SELECT attempts, max_attempts FROM jobs {held}"), &key[..3])? else {
                return Ok(false);
            };
            let (attempts, max_attempts) = (row.int(0)?, row.int(1)?);
            let state = if attempts < max_attempts { "queued" } else { "failed" };
            db.execute(
                &format!(
                    "UPDATE jobs SET state = $5, run_after = $6, error = $7, claimed_by = NULL, lease_until = NULL, \
                     updated_at = $4 {held}"
                ),
                &[
                    &key[..],
                    &[state.into(), (now + backoff_ms(attempts)).into(), error.as_str().into()],
                ]
                .concat(),
            )?
        }
    };
    Ok(n > 0)
}

pub fn get(db: &mut impl Sql, tenant_id: i64, id: &str) -> Result<Option<Job>> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2"),
        &[tenant_id.into(), id.into()],
    )?
    .as_ref()
    .map(job_from_row)
    .transpose()
}

/// The tenant's jobs of a kind, newest first.
pub fn list(db: &mut impl Sql, tenant_id: i64, kind: &str, limit: usize) -> Result<Vec<Job>> {
    db.query(
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND kind = $2 ORDER BY created_at DESC, id DESC LIMIT $3"
        ),
        &[tenant_id.into(), kind.into(), (limit as i64).into()],
    )?
    .iter()
    .map(job_from_row)
    .collect()
}

/// Appends chunk `seq` of a job's file (chunks are written in order, from 0).
pub fn put_file_chunk(db: &mut impl Sql, tenant_id: i64, id: &str, seq: i64, data: &[u8]) -> Result<()> {
    db.execute(
        "INSERT INTO job_files (tenant_id, job_id, seq, data) VALUES ($1, $2, $3, $4)",
        &[tenant_id.into(), id.into(), seq.into(), data.into()],
    )?;
    Ok(())
}

pub fn file_chunk(db: &mut impl Sql, tenant_id: i64, id: &str, seq: i64) -> Result<Option<Vec<u8>>> {
    db.query_opt(
        "SELECT data FROM job_files WHERE tenant_id = $1 AND job_id = $2 AND seq = $3",
        &[tenant_id.into(), id.into(), seq.into()],
    )?
    .map(|r| r.bytes(0))
    .transpose()
}

/// Drops a job's file (before an attempt writes it again, or once it expired).
pub fn delete_file(db: &mut impl Sql, tenant_id: i64, id: &str) -> Result<()> {
    db.execute(
        "DELETE FROM job_files WHERE tenant_id = $1 AND job_id = $2",
        &[tenant_id.into(), id.into()],
    )?;
    Ok(())
}
