//! Retention's purge job (SPEC §12) on the one job mechanism: every node queues, once an hour,
//! each tenant's purge of the day under the same job id (`retention-YYYY-MM-DD`), so it runs
//! once across nodes. The deleting itself is the store's (`dialboard_store::retention`).
//!
//! A new policy (one the tenant's admins were not told of) is first announced — a notice in
//! the audit log, and [`notify_admins_of_new_policy`] — and purged by only after its
//! `notice_hours`.

use crate::access::audit;
use crate::jobs::{Handler, JobContext};
use crate::mail::{Mailer, OutgoingEmail};
use dialboard_store::access::Role;
use dialboard_store::jobs::NewJob;
use dialboard_store::retention::{Counts, Cutoffs, PurgeState};
use dialboard_store::{Store, StoreError, TenantInfo};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const JOB_KIND: &str = "retention";
/// Who the audit log names for the scheduled purge.
const ACTOR: &str = "retention";
const HOUR_MS: i64 = 3_600_000;

/// What a purge would delete (`GET /retention/dry-run`). Fields in name order, as the JSON
/// object it was before it was typed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DryRun {
    /// Per kind (`raw`, `quarter_cells`, …, `export_files`), the instant (RFC 3339) before
    /// which it would be deleted; `null` for what is kept forever.
    #[schema(value_type = std::collections::BTreeMap<String, Option<String>>)]
    pub before: Value,
    /// Rows (or files) it would delete, per table.
    pub deletes: Counts,
    /// The tenant's retention policy (days, or hours for `notice_hours`).
    #[schema(value_type = std::collections::BTreeMap<String, Option<u32>>)]
    pub policy: dialboard_store::retention::RetentionPolicy,
    /// What earlier purges already removed: `raw` and `pipeline` before these instants.
    #[schema(value_type = std::collections::BTreeMap<String, Option<String>>)]
    pub purged_before: Value,
}

/// What a purge at `now_ms` would delete, per kind, and from when on — without deleting.
pub async fn dry_run(store: &Arc<dyn Store>, tenant: &TenantInfo, now_ms: i64) -> Result<DryRun, StoreError> {
    let cutoffs = Cutoffs::at(
        &tenant.settings.retention,
        &tenant.settings.purged,
        &tenant.clock,
        now_ms,
    );
    let counts = store.purge(tenant.id, cutoffs.clone(), true).await?;
    Ok(DryRun {
        before: cutoffs_json(tenant, &cutoffs),
        deletes: counts,
        policy: tenant.settings.retention.clone(),
        purged_before: horizons_json(tenant, &tenant.settings.purged),
    })
}

/// One purge of the tenant at `now_ms`, announcing a new policy first; audited.
pub async fn run(
    store: &Arc<dyn Store>,
    mailer: Option<&Mailer>,
    tenant_id: i64,
    actor: &str,
    now_ms: i64,
) -> Result<Value, StoreError> {
    let tenant = store.tenant(tenant_id).await?;
    let policy = tenant.settings.retention.clone();
    let mut state = tenant.settings.purged.clone();
    if state.noticed_policy.as_ref() != Some(&policy) {
        let due_ms = now_ms + i64::from(policy.notice_hours) * HOUR_MS;
        let preview = dry_run(store, &tenant, due_ms).await?;
        state.noticed_policy = Some(policy.clone());
        state.noticed_at_ms = Some(now_ms);
        store.set_purge_state(tenant_id, state.clone()).await?;
        let notice =
            json!({"policy": policy, "first_purge_after": ms_rfc3339(due_ms), "would_delete": preview.deletes});
        audit(store, tenant_id, actor, "retention_notice", None, notice.clone()).await?;
        notify_admins_of_new_policy(store, mailer, &tenant, &notice).await;
    }
    let due_ms = state.noticed_at_ms.unwrap_or(now_ms) + i64::from(policy.notice_hours) * HOUR_MS;
    if now_ms < due_ms {
        return Ok(json!({"status": "waiting_for_notice", "purge_after": ms_rfc3339(due_ms)}));
    }
    let tenant = store.tenant(tenant_id).await?;
    let cutoffs = Cutoffs::at(&policy, &tenant.settings.purged, &tenant.clock, now_ms);
    let deleted: Counts = store.purge(tenant_id, cutoffs.clone(), false).await?;
    let detail = json!({"deleted": deleted, "before": cutoffs_json(&tenant, &cutoffs)});
    audit(store, tenant_id, actor, "retention_purge", None, detail.clone()).await?;
    Ok(json!({"status": "purged", "deleted": detail["deleted"], "before": detail["before"]}))
}

/// Tells the tenant's admins by e-mail, before the first purge of a new policy, what it will
/// delete and when (the same notice is in the audit log as `retention_notice`). Without a
/// mailer, or when the send fails, the audit entry is the notice and the failure is logged:
/// the purge still waits its `notice_hours`.
pub async fn notify_admins_of_new_policy(
    store: &Arc<dyn Store>,
    mailer: Option<&Mailer>,
    tenant: &TenantInfo,
    notice: &Value,
) {
    let admins: Vec<String> = match store.users(tenant.id).await {
        Ok(users) => users
            .into_iter()
            .filter(|u| u.role == Role::Admin)
            .map(|u| u.email)
            .collect(),
        Err(e) => {
            tracing::warn!(tenant = %tenant.name, error = %e, "retention notice: could not list the admins");
            return;
        }
    };
    if admins.is_empty() {
        return;
    }
    let email = OutgoingEmail {
        to: admins,
        subject: format!("Data retention: the first purge for {} is due", tenant.name),
        text: notice_text(notice),
        ..Default::default()
    };
    Mailer::notify(mailer, &email, "retention notice").await;
}

/// The notice for people: the policy, when the first purge may run and what it would delete.
fn notice_text(notice: &Value) -> String {
    let mut text = format!(
        "A data retention policy takes effect. The first purge runs after {}.\n\nIt would delete:\n",
        notice["first_purge_after"].as_str().unwrap_or("its notice period")
    );
    if let Some(kinds) = notice["would_delete"].as_object() {
        for (kind, count) in kinds {
            text.push_str(&format!("  {kind}: {count}\n"));
        }
    }
    text.push_str(&format!("\nThe policy (days kept per kind): {}\n", notice["policy"]));
    text
}

/// The job: one purge of its tenant.
pub fn job_handler(mailer: Option<Mailer>) -> Handler {
    Arc::new(move |cx: JobContext| {
        let mailer = mailer.clone();
        Box::pin(async move {
            let actor = cx.job.payload["actor"].as_str().unwrap_or(ACTOR).to_string();
            run(
                &cx.store,
                mailer.as_ref(),
                cx.job.tenant_id,
                &actor,
                crate::jobs::now_ms(),
            )
            .await
            .map_err(|e| e.to_string())
        })
    })
}

/// The job of the day for every tenant, queued under one id so nodes queue it once.
pub async fn queue_daily(store: &Arc<dyn Store>, now_ms: i64) -> Result<usize, StoreError> {
    let day = ms_rfc3339(now_ms)[..10].to_string();
    let mut queued = 0;
    for tenant in store.tenant_ids().await? {
        let job = NewJob {
            kind: JOB_KIND.into(),
            payload: json!({"actor": ACTOR}),
            max_attempts: 5,
        };
        queued += usize::from(
            store
                .enqueue_job_once(tenant, &format!("retention-{day}"), job, now_ms)
                .await?
                .is_some(),
        );
    }
    Ok(queued)
}

/// Queues each day's purges, looking once an hour, until `stop` is set.
pub fn spawn(store: Arc<dyn Store>, stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stop = stop;
        while !*stop.borrow() {
            if let Err(e) = queue_daily(&store, crate::jobs::now_ms()).await {
                tracing::warn!(error = %e, "could not queue the retention purges");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = stop.changed() => {}
            }
        }
    })
}

fn ms_rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn cutoffs_json(tenant: &TenantInfo, c: &Cutoffs) -> Value {
    let at = |s: Option<i64>| s.map(|s| tenant.clock.format(s));
    json!({
        "raw": at(c.raw_ns.map(|ns| ns.div_euclid(1_000_000_000))),
        "quarter_cells": at(c.quarter),
        "hour_cells": at(c.hour),
        "day_cells": at(c.day),
        "pipeline": at(c.pipeline_ns.map(|ns| ns.div_euclid(1_000_000_000))),
        "audit": at(c.audit_s),
        "export_files": c.export_ms.map(ms_rfc3339),
    })
}

fn horizons_json(tenant: &TenantInfo, s: &PurgeState) -> Value {
    let at = |ns: Option<i64>| ns.map(|ns| tenant.clock.format(ns.div_euclid(1_000_000_000)));
    json!({"raw": at(s.raw_before_ns), "pipeline": at(s.pipeline_before_ns)})
}
