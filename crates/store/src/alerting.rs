//! Webhook endpoints with their delivery log, and alerts with their state and history (SPEC §7).
//! The same statements on both databases (see `sql.rs`), run through [`crate::Store::transact`]
//! (one transaction each; see [`run`]).
//!
//! An alert's state per subject carries a `revision`: a change is a compare-and-set on it, so
//! when two nodes evaluate the same crossing, exactly one records (and notifies) it.
//!
//! Times are epoch milliseconds passed in by the caller.

use crate::sql::{Row, Sql, Val};
use crate::{Result, Store, StoreError};
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Runs `work` in one transaction of `store` and returns what it returned.
pub async fn run<T: Send + 'static>(
    store: &dyn Store,
    work: impl FnOnce(&mut dyn Sql) -> Result<T> + Send + 'static,
) -> Result<T> {
    let slot: Arc<Mutex<Option<T>>> = Arc::default();
    let out = slot.clone();
    store
        .transact(Box::new(move |db| {
            let value = work(db)?;
            *out.lock().expect("result slot") = Some(value);
            Ok(())
        }))
        .await?;
    let value = slot.lock().expect("result slot").take();
    value.ok_or_else(|| StoreError::Database("a transaction returned nothing".into()))
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(format!("stored JSON: {e}")))
}

/// A webhook endpoint. `body` holds what the API validated (url, description, failure limit).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub id: String,
    pub owner: String,
    pub body: Value,
    /// The signing key; shown once, at creation.
    #[serde(skip)]
    pub secret: String,
    pub enabled: bool,
    pub consecutive_failures: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const WEBHOOK_COLUMNS: &str = "id, owner, body, secret, enabled, consecutive_failures, created_at, updated_at";

fn webhook_from_row(r: &Row) -> Result<Webhook> {
    Ok(Webhook {
        id: r.text(0)?,
        owner: r.text(1)?,
        body: json(&r.text(2)?)?,
        secret: r.text(3)?,
        enabled: r.int(4)? != 0,
        consecutive_failures: r.int(5)?,
        created_at: r.int(6)?,
        updated_at: r.int(7)?,
    })
}

pub fn insert_webhook(db: &mut dyn Sql, tenant_id: i64, hook: &Webhook) -> Result<()> {
    db.execute(
        &format!("INSERT INTO webhooks (tenant_id, {WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
        &[
            tenant_id.into(),
            hook.id.as_str().into(),
            hook.owner.as_str().into(),
            hook.body.to_string().into(),
            hook.secret.as_str().into(),
            i64::from(hook.enabled).into(),
            hook.consecutive_failures.into(),
            hook.created_at.into(),
            hook.updated_at.into(),
        ],
    )?;
    Ok(())
}

/// Replaces an endpoint's settings; `enabled: Some(true)` re-enables it and forgets its
/// failures. `false` if there is no such endpoint.
pub fn update_webhook(
    db: &mut dyn Sql,
    tenant_id: i64,
    id: &str,
    body: &Value,
    enabled: Option<bool>,
    now: i64,
) -> Result<bool> {
    let n = db.execute(
        "UPDATE webhooks SET body = $3, updated_at = $4, enabled = COALESCE($5, enabled), \
         consecutive_failures = CASE WHEN $5 = 1 THEN 0 ELSE consecutive_failures END \
         WHERE tenant_id = $1 AND id = $2",
        &[
            tenant_id.into(),
            id.into(),
            body.to_string().into(),
            now.into(),
            enabled.map(i64::from).into(),
        ],
    )?;
    Ok(n > 0)
}

pub fn webhook(db: &mut dyn Sql, tenant_id: i64, id: &str) -> Result<Option<Webhook>> {
    db.query_opt(
        &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2"),
        &[tenant_id.into(), id.into()],
    )?
    .as_ref()
    .map(webhook_from_row)
    .transpose()
}

/// The tenant's endpoints, newest first.
pub fn webhooks(db: &mut dyn Sql, tenant_id: i64) -> Result<Vec<Webhook>> {
    db.query(
        &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY created_at DESC, id"),
        &[tenant_id.into()],
    )?
    .iter()
    .map(webhook_from_row)
    .collect()
}

/// Deletes an endpoint and its delivery log; `false` if there was none.
pub fn delete_webhook(db: &mut dyn Sql, tenant_id: i64, id: &str) -> Result<bool> {
    db.execute(
        "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2",
        &[tenant_id.into(), id.into()],
    )?;
    let n = db.execute(
        "DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2",
        &[tenant_id.into(), id.into()],
    )?;
    Ok(n > 0)
}

/// One attempt at delivering one payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryAttempt {
    /// The delivery (the same across its retries).
    pub id: String,
    pub attempt: i64,
    /// What was sent: `alert.fired`, `alert.recovered`, `ping` …
    pub event: String,
    pub at: i64,
    /// `delivered`, `failed`, or `skipped` (the endpoint was disabled or gone).
    pub outcome: String,
    pub status_code: Option<i64>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
}

/// Logs an attempt and keeps the endpoint's count of consecutive failures: a success resets it,
/// a failure adds one and disables the endpoint once it reaches `failure_limit`. Returns the
/// endpoint as it now is (`None` if it was deleted meanwhile).
pub fn record_attempt(
    db: &mut dyn Sql,
    tenant_id: i64,
    webhook_id: &str,
    attempt: &DeliveryAttempt,
    failure_limit: i64,
) -> Result<Option<Webhook>> {
    db.execute(
        "INSERT INTO webhook_deliveries (tenant_id, webhook_id, id, attempt, event, at, outcome, status_code, \
         latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            tenant_id.into(),
            webhook_id.into(),
            attempt.id.as_str().into(),
            attempt.attempt.into(),
            attempt.event.as_str().into(),
            attempt.at.into(),
            attempt.outcome.as_str().into(),
            attempt.status_code.into(),
            attempt.latency_ms.into(),
            attempt.error.clone().into(),
        ],
    )?;
    let key: [Val; 2] = [tenant_id.into(), webhook_id.into()];
    match attempt.outcome.as_str() {
        "delivered" => {
            db.execute(
                "UPDATE webhooks SET consecutive_failures = 0 WHERE tenant_id = $1 AND id = $2",
                &key,
            )?;
        }
        "failed" => {
            db.execute(
                "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, \
                 enabled = CASE WHEN consecutive_failures + 1 >= $3 THEN 0 ELSE enabled END \
                 WHERE tenant_id = $1 AND id = $2",
                &[&key[..], &[failure_limit.into()]].concat(),
            )?;
        }
        _ => {}
    }
    webhook(db, tenant_id, webhook_id)
}

/// An endpoint's attempts, newest first.
pub fn deliveries(db: &mut dyn Sql, tenant_id: i64, webhook_id: &str, limit: i64) -> Result<Vec<DeliveryAttempt>> {
    db.query(
        "SELECT id, attempt, event, at, outcome, status_code, latency_ms, error FROM webhook_deliveries \
         WHERE tenant_id = $1 AND webhook_id = $2 ORDER BY at DESC, id, attempt DESC LIMIT $3",
        &[tenant_id.into(), webhook_id.into(), limit.into()],
    )?
    .iter()
    .map(|r| {
        Ok(DeliveryAttempt {
            id: r.text(0)?,
            attempt: r.int(1)?,
            event: r.text(2)?,
            at: r.int(3)?,
            outcome: r.text(4)?,
            status_code: r.opt_int(5)?,
            latency_ms: r.opt_int(6)?,
            error: r.opt_text(7)?,
        })
    })
    .collect()
}

/// An alert: `body` is its definition as the API validated it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: String,
    pub owner: String,
    pub body: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

fn alert_from_row(r: &Row) -> Result<Alert> {
    Ok(Alert {
        id: r.text(0)?,
        owner: r.text(1)?,
        body: json(&r.text(2)?)?,
        created_at: r.int(3)?,
        updated_at: r.int(4)?,
    })
}

pub fn insert_alert(db: &mut dyn Sql, tenant_id: i64, alert: &Alert) -> Result<()> {
    db.execute(
        "INSERT INTO alerts (tenant_id, id, owner, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            tenant_id.into(),
            alert.id.as_str().into(),
            alert.owner.as_str().into(),
            alert.body.to_string().into(),
            alert.created_at.into(),
            alert.updated_at.into(),
        ],
    )?;
    Ok(())
}

/// Replaces an alert's definition; its state starts over (a changed condition is a new
/// question). `false` if there is no such alert.
pub fn update_alert(db: &mut dyn Sql, tenant_id: i64, id: &str, body: &Value, now: i64) -> Result<bool> {
    let n = db.execute(
        "UPDATE alerts SET body = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
        &[tenant_id.into(), id.into(), body.to_string().into(), now.into()],
    )?;
    db.execute(
        "DELETE FROM alert_states WHERE tenant_id = $1 AND alert_id = $2",
        &[tenant_id.into(), id.into()],
    )?;
    Ok(n > 0)
}

pub fn alert(db: &mut dyn Sql, tenant_id: i64, id: &str) -> Result<Option<Alert>> {
    db.query_opt(
        "SELECT id, owner, body, created_at, updated_at FROM alerts WHERE tenant_id = $1 AND id = $2",
        &[tenant_id.into(), id.into()],
    )?
    .as_ref()
    .map(alert_from_row)
    .transpose()
}

/// The tenant's alerts, newest first.
pub fn alerts(db: &mut dyn Sql, tenant_id: i64) -> Result<Vec<Alert>> {
    db.query(
        "SELECT id, owner, body, created_at, updated_at FROM alerts WHERE tenant_id = $1 ORDER BY created_at DESC, id",
        &[tenant_id.into()],
    )?
    .iter()
    .map(alert_from_row)
    .collect()
}

/// Every tenant that has alerts (the timer evaluates them as their windows slide).
pub fn tenants_with_alerts(db: &mut dyn Sql) -> Result<Vec<i64>> {
    db.query("SELECT DISTINCT tenant_id FROM alerts", &[])?
        .iter()
        .map(|r| r.int(0))
        .collect()
}

/// Deletes an alert with its state and history; `false` if there was none.
pub fn delete_alert(db: &mut dyn Sql, tenant_id: i64, id: &str) -> Result<bool> {
    for table in ["alert_states", "alert_events"] {
        db.execute(
            &format!("DELETE FROM {table} WHERE tenant_id = $1 AND alert_id = $2"),
            &[tenant_id.into(), id.into()],
        )?;
    }
    let n = db.execute(
        "DELETE FROM alerts WHERE tenant_id = $1 AND id = $2",
        &[tenant_id.into(), id.into()],
    )?;
    Ok(n > 0)
}

/// An alert's state for one subject. A subject never evaluated has revision 0 (no row).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertState {
    pub subject: String,
    pub firing: bool,
    pub last_fired_at: Option<i64>,
    pub changed_at: i64,
    pub revision: i64,
}

pub fn alert_states(db: &mut dyn Sql, tenant_id: i64, alert_id: &str) -> Result<Vec<AlertState>> {
    db.query(
        "SELECT subject, firing, last_fired_at, changed_at, revision FROM alert_states \
         WHERE tenant_id = $1 AND alert_id = $2 ORDER BY subject",
        &[tenant_id.into(), alert_id.into()],
    )?
    .iter()
    .map(|r| {
        Ok(AlertState {
            subject: r.text(0)?,
            firing: r.int(1)? != 0,
            last_fired_at: r.opt_int(2)?,
            changed_at: r.int(3)?,
            revision: r.int(4)?,
        })
    })
    .collect()
}

/// A subject's move to firing or quiet, as an evaluation decided it from the state it read.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub subject: String,
    /// The revision the evaluation read (0: no state yet).
    pub expected_revision: i64,
    pub firing: bool,
    /// What is kept in the alert's history.
    pub event: Value,
    pub at: i64,
}

/// Applies `change` and records its event — only if nobody changed the subject's state since
/// it was read. `false` if somebody did (another node recorded this change first), in which
/// case nothing is written.
pub fn transition(db: &mut dyn Sql, tenant_id: i64, alert_id: &str, change: &StateChange) -> Result<bool> {
    let StateChange {
        subject,
        expected_revision,
        firing,
        event,
        at: now,
    } = change;
    let (expected_revision, firing, now) = (*expected_revision, *firing, *now);
    let subject = subject.as_str();
    let fired_at: Option<i64> = firing.then_some(now);
    let params: Vec<Val> = vec![
        tenant_id.into(),
        alert_id.into(),
        subject.into(),
        i64::from(firing).into(),
        fired_at.into(),
        now.into(),
        expected_revision.into(),
    ];
    let n = if expected_revision == 0 {
        db.execute(
            "INSERT INTO alert_states (tenant_id, alert_id, subject, firing, last_fired_at, changed_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7 + 1) ON CONFLICT DO NOTHING",
            &params,
        )?
    } else {
        db.execute(
            "UPDATE alert_states SET firing = $4, last_fired_at = COALESCE($5, last_fired_at), changed_at = $6, \
             revision = revision + 1 WHERE tenant_id = $1 AND alert_id = $2 AND subject = $3 AND revision = $7",
            &params,
        )?
    };
    if n == 0 {
        return Ok(false);
    }
    db.execute(
        "INSERT INTO alert_events (tenant_id, alert_id, id, at, body) VALUES ($1, $2, $3, $4, $5)",
        &[
            tenant_id.into(),
            alert_id.into(),
            format!("{now:015}-{subject}-{}", expected_revision + 1).into(),
            now.into(),
            event.to_string().into(),
        ],
    )?;
    Ok(true)
}

/// An alert's recorded firings and recoveries (their JSON), newest first.
pub fn alert_events(db: &mut dyn Sql, tenant_id: i64, alert_id: &str, limit: i64) -> Result<Vec<Value>> {
    db.query(
        "SELECT body FROM alert_events WHERE tenant_id = $1 AND alert_id = $2 ORDER BY at DESC, id DESC LIMIT $3",
        &[tenant_id.into(), alert_id.into(), limit.into()],
    )?
    .iter()
    .map(|r| json(&r.text(0)?))
    .collect()
}
