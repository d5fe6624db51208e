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
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// A schedule's run as the API shows it. Fields in name order, as the JSON object it was
/// before it was typed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunAnswer {
    /// Failed attempts so far, and the running one.
    pub attempts: i64,
    #[schema(required = true)]
    pub error: Option<String>,
    /// RFC 3339 instants.
    #[schema(value_type = Option<String>, required = true)]
    pub finished: Value,
    /// The run's job.
    pub id: String,
    /// Due while no server was running; run once at start-up.
    pub late: bool,
    /// When a failed run is tried again.
    #[schema(required = true)]
    pub next_attempt: Option<String>,
    /// Who received a copy.
    #[schema(value_type = Vec<String>)]
    pub recipients: Value,
    #[schema(required = true)]
    pub scheduled_for: Option<String>,
    /// Bytes of the file sent.
    #[schema(value_type = Option<i64>, required = true)]
    pub size: Value,
    #[schema(value_type = Option<String>, required = true)]
    pub started: Value,
    /// `pending`, `running`, `succeeded` or `failed`.
    pub status: &'static str,
}

/// `GET /schedules/{id}/runs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunsAnswer {
    pub runs: Vec<RunAnswer>,
}

/// A run as the API shows it.
pub fn run_answer(run: &ScheduleRun) -> RunAnswer {
    let job = &run.job;
    let ms = |t: i64| jiff::Timestamp::from_millisecond(t).ok().map(|t| t.to_string());
    let status = match job.state {
        JobState::Queued => "pending",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
    };
    let result = job.result.as_ref();
    let at = |t: Option<String>| t.map_or(Value::Null, Value::String);
    RunAnswer {
        attempts: job.attempts,
        error: job.error.clone(),
        finished: result
            .map(|r| r["finished"].clone())
            .unwrap_or_else(|| at((job.state == JobState::Failed).then(|| ms(job.updated_at)).flatten())),
        id: job.id.clone(),
        late: run.late,
        next_attempt: (job.state == JobState::Queued && job.attempts > 0)
            .then(|| ms(job.run_after))
            .flatten(),
        recipients: result.map(|r| r["recipients"].clone()).unwrap_or(json!([])),
        scheduled_for: jiff::Timestamp::from_second(run.scheduled_for)
            .ok()
            .map(|t| t.to_string()),
        size: result.map(|r| r["size"].clone()).unwrap_or(Value::Null),
        started: result
            .map(|r| r["started"].clone())
            .unwrap_or_else(|| at((job.attempts > 0).then(|| ms(job.updated_at)).flatten())),
        status,
    }
}

/// `POST /schedules/{id}/run`: a run due now, whatever the recurrence (and even if paused).
pub async fn run_now(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RunAnswer>), ApiError> {
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
    Ok((StatusCode::ACCEPTED, Json(run_answer(&run))))
}

/// `GET /schedules/{id}/runs`: the latest 100 runs, newest first.
pub async fn runs(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<RunsAnswer>, ApiError> {
    visible(&state, &principal, SavedKind::Schedule, &id).await?;
    let runs = state.store.schedule_runs(principal.tenant_id, &id, 100).await?;
    Ok(Json(RunsAnswer {
        runs: runs.iter().map(run_answer).collect(),
    }))
}
