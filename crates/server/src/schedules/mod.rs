//! Scheduled reports (SPEC §7) without HTTP: what a schedule is and its checks, the ticker
//! that turns due occurrences into runs (one per occurrence across nodes), and the job that
//! renders a run for each recipient with that recipient's own reach and e-mails it.
//!
//! A schedule is a saved item (kind `schedule`, so the CRUD, ownership, versions and audit of
//! `api/saved.rs` apply); a run is a row of `schedule_runs` with a job of kind
//! [`JOB_KIND`], so it is claimed once under a lease and retried with backoff.

use crate::api::auth::{Actor, Principal};
use crate::api::AppState;
use crate::jobs::{Handler, JobContext};
use crate::mail::OutgoingEmail;
use crate::reports::run::answer;
use crate::reports::ReportDef;
use dialboard_engine::schedule::Recurrence;
use dialboard_engine::FieldError;
use dialboard_store::access::Role;
use dialboard_store::alerting;
use dialboard_store::jobs::NewJob;
use dialboard_store::saved::{SavedItem, SavedKind};
use dialboard_store::schedules::Delivery;
use dialboard_store::{Scope, Store, StoreError};
use dialboard_views::reach::Reach;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

mod email;

pub const JOB_KIND: &str = "schedule_run";
/// Attempts of a run before it is failed for good (backoff 2 s, 4 s, 8 s …).
const MAX_ATTEMPTS: i64 = 4;
/// An occurrence found due later than this after its time was missed (no server was running):
/// only the latest missed one runs, marked late.
const LATE_AFTER_SECONDS: i64 = 120;
/// How often each node looks for due occurrences.
pub const TICK: Duration = Duration::from_secs(15);
const FORMATS: [&str; 4] = ["pdf", "xlsx", "csv", "html"];

/// Checks a schedule's body as `principal` saves it; returns what is stored (with `run_as`,
/// whose reach renders it for recipients given as addresses).
pub async fn schedule_def(state: &AppState, principal: &Principal, body: &Value) -> Result<Value, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(object) = body.as_object() else {
        return Err(vec![FieldError::new("body", "a schedule is a JSON object")]);
    };
    const FIELDS: [&str; 10] = [
        "name",
        "report_id",
        "view",
        "params",
        "recurrence",
        "recipients",
        "format",
        "paused",
        "webhook_id",
        "description",
    ];
    for key in object.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(FieldError::new(key.clone(), "unknown field"));
    }
    let name = body["name"].as_str().unwrap_or("").trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "a name of 1 to 200 characters"));
    }
    match (&body["report_id"], &body["view"]) {
        (Value::String(id), Value::Null) => {
            let report = state.store.saved_item(principal.tenant_id, SavedKind::Report, id).await;
            if !matches!(report, Ok(Some(ref item)) if crate::reports::may_see(principal, item)) {
                errors.push(FieldError::new("report_id", "no saved report you can see has this id"));
            }
        }
        (Value::Null, Value::String(view)) => {
            let params = body.get("params").cloned().unwrap_or(json!({}));
            match params.as_object() {
                Some(params) => {
                    let mut problems = crate::reports::Problems::default();
                    crate::reports::views::check(view, params, &mut problems);
                    errors.extend(problems.0);
                }
                None => errors.push(FieldError::new("params", "the view's parameters as an object")),
            }
        }
        _ => errors.push(FieldError::new(
            "report_id",
            "name either a saved report (report_id) or a view (view, params)",
        )),
    }
    if let Err(e) = Recurrence::parse(&body["recurrence"], "recurrence.") {
        errors.extend(e);
    }
    let format = body["format"].as_str().unwrap_or("");
    if !FORMATS.contains(&format) {
        errors.push(FieldError::new("format", "one of pdf, xlsx, csv, html"));
    }
    if !matches!(body.get("paused"), None | Some(Value::Bool(_))) {
        errors.push(FieldError::new("paused", "true or false"));
    }
    // The webhook told of each delivery, if any: one of this tenant's.
    match &body["webhook_id"] {
        Value::Null => {}
        Value::String(id) => {
            if !matches!(
                crate::webhooks::exists(&state.store, principal.tenant_id, id).await,
                Ok(true)
            ) {
                errors.push(FieldError::new("webhook_id", "is not a webhook of this tenant"));
            }
        }
        _ => errors.push(FieldError::new("webhook_id", "a webhook's id (a string) or null")),
    }
    let recipients = check_recipients(principal, &body["recipients"], &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let run_as = match &principal.actor {
        Actor::User(user) => json!({"user": user.email}),
        Actor::Key { .. } => json!({"reach": principal.reach}),
    };
    let mut stored = Map::new();
    for key in FIELDS {
        if let Some(v) = body.get(key) {
            stored.insert(key.into(), v.clone());
        }
    }
    stored.insert("name".into(), json!(name));
    stored.insert("recipients".into(), Value::Array(recipients));
    stored.insert("paused".into(), json!(body["paused"].as_bool().unwrap_or(false)));
    stored.insert("run_as".into(), run_as);
    Ok(Value::Object(stored))
}

/// Addresses, or `{"team": id}` for each member of a team. A rep sends only to themselves; a
/// manager names only their own teams.
fn check_recipients(principal: &Principal, recipients: &Value, errors: &mut Vec<FieldError>) -> Vec<Value> {
    let Some(list) = recipients.as_array().filter(|l| !l.is_empty() && l.len() <= 100) else {
        errors.push(FieldError::new("recipients", "1 to 100 addresses or {\"team\": id}"));
        return Vec::new();
    };
    let own_email = match &principal.actor {
        Actor::User(u) => Some(u.email.to_ascii_lowercase()),
        Actor::Key { .. } => None,
    };
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let field = format!("recipients[{i}]");
        match r {
            Value::String(address) => {
                let address = address.trim();
                if address.parse::<lettre::Address>().is_err() {
                    errors.push(FieldError::new(field, "not an e-mail address"));
                } else if matches!(principal.reach, Reach::Agent { .. })
                    && own_email.as_deref() != Some(&address.to_ascii_lowercase())
                {
                    errors.push(FieldError::new(field, "a rep schedules reports only for themselves"));
                } else {
                    out.push(json!(address));
                }
            }
            Value::Object(o) if o.len() == 1 && o.get("team").is_some_and(Value::is_string) => {
                let team = o["team"].as_str().unwrap();
                let allowed = match &principal.reach {
                    Reach::All => true,
                    Reach::Teams(teams) => teams.iter().any(|t| t == team),
                    Reach::Agent { .. } => false,
                };
                if allowed {
                    out.push(r.clone());
                } else {
                    errors.push(FieldError::new(
                        field,
                        format!("you may not schedule for team '{team}'"),
                    ));
                }
            }
            _ => errors.push(FieldError::new(field, "an address or {\"team\": id}")),
        }
    }
    out
}

/// Queues the run of `schedule_id` due at `scheduled_for` (epoch seconds), once.
pub async fn queue_run(
    store: &Arc<dyn Store>,
    tenant_id: i64,
    schedule_id: &str,
    scheduled_for: i64,
    late: bool,
    now_ms: i64,
) -> Result<Option<dialboard_store::jobs::Job>, dialboard_store::StoreError> {
    let job = NewJob {
        kind: JOB_KIND.into(),
        payload: json!({"schedule_id": schedule_id, "scheduled_for": scheduled_for, "late": late}),
        max_attempts: MAX_ATTEMPTS,
    };
    store
        .create_schedule_run(tenant_id, schedule_id, scheduled_for, late, job, now_ms)
        .await
}

/// When a schedule runs next after `now` (epoch seconds), as RFC 3339; null while paused.
pub fn next_run(body: &Value, now: i64) -> Value {
    let next = active_recurrence(body)
        .zip(jiff::Timestamp::from_second(now).ok())
        .and_then(|(recurrence, now)| recurrence.next_after(now));
    next.map_or(Value::Null, |t| json!(t.to_string()))
}

/// A schedule's recurrence, `None` while paused.
fn active_recurrence(body: &Value) -> Option<Recurrence> {
    if body["paused"].as_bool().unwrap_or(false) {
        return None;
    }
    Recurrence::parse(&body["recurrence"], "").ok()
}

/// What a schedule's occurrences are counted from: its last run, or its last edit (an edit
/// does not run past times).
async fn counted_from(store: &Arc<dyn Store>, tenant_id: i64, item: &SavedItem) -> Result<jiff::Timestamp, StoreError> {
    let since = store
        .latest_schedule_run(tenant_id, &item.id)
        .await?
        .unwrap_or(0)
        .max(item.updated_at);
    Ok(jiff::Timestamp::from_second(since).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// When a schedule is next due (epoch seconds): the first occurrence after what it is counted
/// from, or `None` while paused.
async fn first_due(store: &Arc<dyn Store>, tenant_id: i64, item: &SavedItem) -> Result<Option<i64>, StoreError> {
    let Some(recurrence) = active_recurrence(&item.body) else {
        return Ok(None);
    };
    let since = counted_from(store, tenant_id, item).await?;
    Ok(recurrence.next_after(since).map(|t| t.as_second()))
}

/// Stores when a schedule just created, changed, paused or resumed is next due (what the
/// ticker selects by).
pub async fn plan(store: &Arc<dyn Store>, tenant_id: i64, item: &SavedItem) -> Result<(), StoreError> {
    let next = first_due(store, tenant_id, item).await?;
    let id = item.id.clone();
    alerting::run(store.as_ref(), move |db| {
        dialboard_store::schedules::set_next_run(db, tenant_id, &id, next)
    })
    .await
}

/// Forgets a deleted schedule's next run.
pub async fn forget(store: &Arc<dyn Store>, tenant_id: i64, id: &str) -> Result<(), StoreError> {
    let id = id.to_string();
    alerting::run(store.as_ref(), move |db| {
        dialboard_store::schedules::delete_next_run(db, tenant_id, &id)
    })
    .await
}

/// Stores every schedule's next run (at start-up): schedules saved before next runs were
/// stored, or whose next run a crash kept from being stored, are due again; a time missed
/// while no server ran is then in the past, and the first tick runs it, late.
pub async fn plan_all(store: &Arc<dyn Store>) -> Result<(), StoreError> {
    for (tenant_id, item) in store.all_saved_items(SavedKind::Schedule).await? {
        plan(store, tenant_id, &item).await?;
    }
    Ok(())
}

/// One pass of the scheduler at `now` (epoch seconds) over the schedules whose stored next run
/// has come (read through its index, not every schedule): the latest occurrence since the
/// schedule's last run (or its last edit) becomes a run, and the next run moves past `now`.
/// Occurrences missed while no server ran collapse into one run, marked late. Every node may
/// tick; the run's key makes each occurrence run once. Returns how many runs it queued.
pub async fn tick(store: &Arc<dyn Store>, now: i64) -> Result<usize, StoreError> {
    let due = alerting::run(store.as_ref(), move |db| dialboard_store::schedules::due(db, now, 1000)).await?;
    let mut queued = 0;
    for due in due {
        let (tenant_id, id) = (due.tenant_id, due.schedule_id.as_str());
        let next = match store.saved_item(tenant_id, SavedKind::Schedule, id).await? {
            None => {
                forget(store, tenant_id, id).await?;
                continue;
            }
            Some(item) => {
                if queue_due(store, tenant_id, &item, now).await? {
                    queued += 1;
                }
                active_recurrence(&item.body)
                    .zip(jiff::Timestamp::from_second(now).ok())
                    .and_then(|(r, now)| r.next_after(now))
                    .map(|t| t.as_second())
            }
        };
        let (id, seen) = (id.to_string(), due.next_run);
        alerting::run(store.as_ref(), move |db| {
            dialboard_store::schedules::advance_next_run(db, tenant_id, &id, seen, next)
        })
        .await?;
    }
    Ok(queued)
}

/// Queues the latest occurrence of `item` due by `now` since its last run or edit, if any;
/// `true` if this call made the run.
async fn queue_due(store: &Arc<dyn Store>, tenant_id: i64, item: &SavedItem, now: i64) -> Result<bool, StoreError> {
    let (Some(recurrence), Ok(until)) = (active_recurrence(&item.body), jiff::Timestamp::from_second(now)) else {
        return Ok(false);
    };
    let since = counted_from(store, tenant_id, item).await?;
    // The latest due occurrence; those before it were missed and are not run separately.
    let due = recurrence.runs_between(since, until, 10_000);
    let Some(latest) = due.last() else {
        return Ok(false);
    };
    let late = due.len() > 1 || now - latest.as_second() > LATE_AFTER_SECONDS;
    Ok(
        queue_run(store, tenant_id, &item.id, latest.as_second(), late, now * 1000)
            .await?
            .is_some(),
    )
}

/// Ticks every `every` until `stop` (in `serve`; each node runs one).
pub fn spawn_ticker(
    store: Arc<dyn Store>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = plan_all(&store).await {
            tracing::warn!(error = %e, "the scheduler could not store the schedules' next runs");
        }
        while !*stop.borrow() {
            if let Err(e) = tick(&store, jiff::Timestamp::now().as_second()).await {
                tracing::warn!(error = %e, "the scheduler could not reach the store");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
    })
}

/// The principal a recipient's copy is rendered as.
async fn principal_of_user(store: &Arc<dyn Store>, tenant_id: i64, email: &str) -> Result<Option<Principal>, String> {
    let user = store.user_by_email(tenant_id, email).await.map_err(|e| e.to_string())?;
    Ok(user.map(|(user, _)| {
        let mut p = Principal::from_user(user, [0; 32]);
        p.session = None;
        p
    }))
}

/// Who gets a copy, each with the principal it is rendered as: addresses see it as the
/// schedule's owner does; each member of a named team sees it as themselves.
async fn recipients(store: &Arc<dyn Store>, tenant_id: i64, body: &Value) -> Result<Vec<(String, Principal)>, String> {
    let owner = match &body["run_as"] {
        Value::Object(o) if o.contains_key("user") => {
            let email = o["user"].as_str().unwrap_or("");
            principal_of_user(store, tenant_id, email)
                .await?
                .ok_or_else(|| format!("the schedule's owner {email} is no longer a user"))?
        }
        Value::Object(o) => Principal {
            tenant_id,
            scopes: vec![Scope::Read],
            reach: serde_json::from_value(o["reach"].clone()).map_err(|e| e.to_string())?,
            actor: Actor::Key { id: "schedule".into() },
            session: None,
        },
        _ => return Err("the schedule names no owner to run as".into()),
    };
    let mut out: Vec<(String, Principal)> = Vec::new();
    for r in body["recipients"].as_array().into_iter().flatten() {
        if let Some(address) = r.as_str() {
            out.push((address.to_string(), owner.clone()));
        } else if let Some(team) = r["team"].as_str() {
            let users = store.users(tenant_id).await.map_err(|e| e.to_string())?;
            for user in users
                .into_iter()
                .filter(|u| matches!(u.role, Role::Manager | Role::Agent) && u.teams.iter().any(|t| t == team))
            {
                let email = user.email.clone();
                let mut p = Principal::from_user(user, [0; 32]);
                p.session = None;
                out.push((email, p));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
    Ok(out)
}

/// The report a schedule sends: its saved report, or its view with parameters.
async fn report_of(store: &Arc<dyn Store>, tenant_id: i64, body: &Value) -> Result<ReportDef, String> {
    match body["report_id"].as_str() {
        Some(id) => {
            let item = store
                .saved_item(tenant_id, SavedKind::Report, id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the report {id} was deleted"))?;
            Ok(ReportDef::stored(&item.body))
        }
        None => Ok(ReportDef::stored(&json!({
            "name": body["name"],
            "view": body["view"],
            "params": body.get("params").cloned().unwrap_or(json!({})),
            "visualization": "table",
            "sharing": {"kind": "private"},
        }))),
    }
}

/// One rendered copy.
struct Copy {
    to: String,
    email: OutgoingEmail,
}

/// The job of one run: render every recipient's copy first (a rendering that fails or comes
/// out empty fails the run before anyone gets mail), then send them.
pub fn job_handler(state: Arc<AppState>) -> Handler {
    Arc::new(move |ctx: JobContext| {
        let state = state.clone();
        Box::pin(async move { run(&state, &ctx).await })
    })
}

async fn run(state: &Arc<AppState>, ctx: &JobContext) -> Result<Value, String> {
    let started = jiff::Timestamp::now();
    let tenant_id = ctx.job.tenant_id;
    let schedule_id = ctx.job.payload["schedule_id"].as_str().unwrap_or("").to_string();
    let Some(schedule) = state
        .store
        .saved_item(tenant_id, SavedKind::Schedule, &schedule_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Err(format!("the schedule {schedule_id} was deleted"));
    };
    let mailer = state
        .mailer
        .clone()
        .ok_or("no SMTP server is configured (serve --smtp-url, --smtp-from)")?;
    let body = &schedule.body;
    let def = report_of(&state.store, tenant_id, body).await?;
    let format = body["format"].as_str().unwrap_or("pdf");
    let tenant = state.store.tenant(tenant_id).await.map_err(|e| e.to_string())?;
    let link = state
        .security
        .public_origin
        .as_ref()
        .map(|origin| match body["report_id"].as_str() {
            Some(id) => format!("{origin}/reports/{id}"),
            None => format!("{origin}/schedules/{schedule_id}"),
        });
    // Copies an earlier attempt delivered (before a crash, or a failure further down the list)
    // are not sent again.
    let scheduled_for = ctx.job.payload["scheduled_for"].as_i64().unwrap_or(0);
    let delivered = {
        let id = schedule_id.clone();
        alerting::run(state.store.as_ref(), move |db| {
            dialboard_store::schedules::deliveries(db, tenant_id, &id, scheduled_for)
        })
        .await
        .map_err(|e| e.to_string())?
    };
    let was_delivered = |to: &str| delivered.iter().any(|d| d.recipient.eq_ignore_ascii_case(to));
    let mut copies = Vec::new();
    for (to, principal) in recipients(&state.store, tenant_id, body).await? {
        if was_delivered(&to) {
            continue;
        }
        let result = answer(state, &principal, &def.question)
            .await
            .map_err(|e| format!("rendering for {to}: {}", e.message))?;
        let email = email::compose(&tenant, &def, &result, format, link.as_deref(), &to).await?;
        copies.push(Copy { to, email });
    }
    if copies.is_empty() && delivered.is_empty() {
        return Err("the schedule has no recipients (a team without members?)".into());
    }
    let (sent_to, size) = deliver(state, ctx, &mailer, scheduled_for, delivered, copies).await?;
    let outcome = json!({
        "recipients": sent_to,
        "size": size,
        "started": started.to_string(),
        "finished": jiff::Timestamp::now().to_string(),
    });
    // The schedule's webhook hears of the delivery once the mail has left; a failure to queue
    // it must not fail a run whose mail was delivered, so it is logged.
    if let Some(webhook) = body["webhook_id"].as_str() {
        let mut data = outcome.clone();
        data["schedule_id"] = json!(schedule_id);
        data["name"] = json!(def.name);
        data["scheduled_for"] = ctx.job.payload["scheduled_for"].clone();
        data["link"] = json!(link);
        if let Err(e) = crate::webhooks::enqueue(&state.store, tenant_id, webhook, "schedule.delivered", data).await {
            tracing::warn!(%webhook, error = %e, "could not queue a schedule's webhook delivery");
        }
    }
    Ok(outcome)
}

/// Sends `copies` one by one after those `delivered` before, checkpointing each accepted copy
/// before the next leaves (a retry of the run, or another node taking it over, skips it);
/// returns every recipient delivered, sorted, and the bytes sent in all.
async fn deliver(
    state: &Arc<AppState>,
    ctx: &JobContext,
    mailer: &crate::mail::Mailer,
    scheduled_for: i64,
    delivered: Vec<Delivery>,
    copies: Vec<Copy>,
) -> Result<(Vec<String>, i64), String> {
    let tenant_id = ctx.job.tenant_id;
    let schedule_id = ctx.job.payload["schedule_id"].as_str().unwrap_or("").to_string();
    let mut size: i64 = delivered.iter().map(|d| d.size).sum();
    let mut sent_to: Vec<String> = delivered.iter().map(|d| d.recipient.clone()).collect();
    let total = (delivered.len() + copies.len()) as i64;
    for copy in copies {
        // Renews the lease, and stops here if another node took the run over meanwhile.
        ctx.progress(sent_to.len() as i64, Some(total)).await?;
        let bytes = mailer
            .send(&copy.email)
            .await
            .map_err(|e| format!("sending to {}: {e}", copy.to))? as i64;
        let delivery = Delivery {
            recipient: copy.to.clone(),
            size: bytes,
            delivered_at: crate::jobs::now_ms(),
        };
        let id = schedule_id.clone();
        alerting::run(state.store.as_ref(), move |db| {
            dialboard_store::schedules::record_delivery(db, tenant_id, &id, scheduled_for, &delivery)
        })
        .await
        .map_err(|e| format!("recording the delivery to {}: {e}", copy.to))?;
        size += bytes;
        sent_to.push(copy.to);
    }
    sent_to.sort();
    Ok((sent_to, size))
}
