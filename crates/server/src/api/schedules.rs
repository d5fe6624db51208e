//! `/api/v1/schedules/{id}/run` and `/runs` (SPEC §7): run a schedule now, and its run history.
//! Creating, reading, changing and deleting schedules are the saved items' handlers
//! (`saved.rs`, kind `schedule`); what runs them is `crate::schedules`.

use super::auth::Principal;
use super::error::ApiError;
use super::saved::visible;
use super::AppState;
use crate::access::audit;
use crate::reports::may_change;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dialboard_store::jobs::JobState;
use dialboard_store::saved::SavedKind;
use dialboard_store::schedules::ScheduleRun;
use serde_json::{json, Value};
use std::sync::Arc;

/// A run as the API shows it.
pub fn run_json(run: &ScheduleRun) -> Value {
    let job = &run.job;
    let ms = |t: i64| jiff::Timestamp::from_millisecond(t).map_or(Value::Null, |t| json!(t.to_string()));
    let status = match job.state {
        JobState::Queued => "pending",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
    };
    let result = job.result.as_ref();
    json!({
        "id": job.id,
        "scheduled_for": jiff::Timestamp::from_second(run.scheduled_for).map_or(Value::Null, |t| json!(t.to_string())),
        "late": run.late,
        "status": status,
        "attempts": job.attempts,
        "started": result.map(|r| r["started"].clone()).unwrap_or_else(|| if job.attempts > 0 { ms(job.updated_at) } else { Value::Null }),
        "finished": result.map(|r| r["finished"].clone()).unwrap_or_else(|| if job.state == JobState::Failed { ms(job.updated_at) } else { Value::Null }),
        "recipients": result.map(|r| r["recipients"].clone()).unwrap_or(json!([])),
        "size": result.map(|r| r["size"].clone()).unwrap_or(Value::Null),
        "error": job.error,
        "next_attempt": if job.state == JobState::Queued && job.attempts > 0 { ms(job.run_after) } else { Value::Null },
    })
}

/// `POST /schedules/{id}/run`: a run due now, whatever the recurrence (and even if paused).
pub async fn run_now(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let item = visible(&state, &principal, SavedKind::Schedule, &id).await?;
    if !may_change(&principal, &item) {
        return Err(super::auth::forbidden(
            "only the schedule's owner or an admin may run it",
        ));
    }
    let now_ms = crate::jobs::now_ms();
    // Keyed by the millisecond-free second; a second click in the same second is the same run.
    let job = crate::schedules::queue_run(&state.store, principal.tenant_id, &id, now_ms / 1000, false, now_ms)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                super::error::Code::Conflict,
                "this schedule was just started; try again in a second",
            )
        })?;
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        "schedule.run",
        Some(&id),
        json!({"job": job.id}),
    )
    .await?;
    let run = ScheduleRun {
        schedule_id: id,
        scheduled_for: now_ms / 1000,
        late: false,
        job,
    };
    Ok((StatusCode::ACCEPTED, Json(run_json(&run))))
}

/// `GET /schedules/{id}/runs`: the latest 100 runs, newest first.
pub async fn runs(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible(&state, &principal, SavedKind::Schedule, &id).await?;
    let runs = state.store.schedule_runs(principal.tenant_id, &id, 100).await?;
    Ok(Json(json!({"runs": runs.iter().map(run_json).collect::<Vec<_>>()})))
}
