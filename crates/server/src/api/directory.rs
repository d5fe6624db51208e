//! Tenant settings (`/api/v1/settings`) and the directory (`/api/v1/agents`, `/teams`,
//! `/campaigns`): anyone with `read` lists them, `admin` changes them, and every change is
//! audited.

use super::auth::Principal;
use super::error::{ApiError, Body, Code};
use super::AppState;
use crate::access::audit;
use crate::directory::{apply_settings, validate_entry};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use dialboard_engine::FieldError;
use dialboard_store::{DirectoryKind, Scope, TenantSettings};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The tenant's settings as the API shows them (`GET`/`PUT /settings`); the zone cells are
/// kept in and what purges removed are the store's own. Fields in name order, as the JSON
/// object the API answered before it was typed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsAnswer {
    /// The tenant's badge rules; absent for the defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<std::collections::BTreeMap<String, serde_json::Value>>>)]
    pub badges: Option<Vec<dialboard_engine::gamification::Badge>>,
    /// Rate thresholds of the coaching rules, by name.
    #[schema(value_type = BTreeMap<String, f64>)]
    pub coaching: dialboard_store::CoachingThresholds,
    #[schema(value_type = FairRankingAnswer)]
    pub fair_ranking: dialboard_store::FairRanking,
    /// Local dates (`YYYY-MM-DD`), sorted.
    pub holidays: Vec<String>,
    pub leaderboard_privacy: bool,
    /// Days (or hours) each kind of data is kept; `null` keeps it forever.
    #[schema(value_type = BTreeMap<String, Option<u32>>)]
    pub retention: dialboard_store::retention::RetentionPolicy,
    /// The pipeline stages, in funnel order.
    pub stages: Vec<String>,
    /// Daily activity targets, by name.
    #[schema(value_type = BTreeMap<String, f64>)]
    pub targets: dialboard_store::ActivityTargets,
    #[schema(value_type = TaxonomyAnswer)]
    pub taxonomy: dialboard_engine::taxonomy::Taxonomy,
    /// IANA zone.
    pub timezone: String,
}

/// How leaderboards rank reps on rates (SPEC §14).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FairRankingAnswer {
    /// Reps with fewer calls are ranked as uncertain.
    pub min_calls: u32,
    /// Rank by the shrunk (empirical-Bayes) rate rather than the raw one.
    pub by_shrunk: bool,
}

/// The disposition taxonomy (what `taxonomy` is in settings).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaxonomyAnswer {
    /// `[category, [disposition, …]]`, in display order.
    #[schema(value_type = Vec<(String, Vec<String>)>)]
    pub categories: Vec<(String, Vec<String>)>,
    /// Dispositions that count as meetings booked.
    pub meeting: Vec<String>,
    /// Dispositions that count toward the positive disposition rate.
    pub positive: Vec<String>,
    /// Dispositions that count as voicemails.
    pub voicemail: Vec<String>,
}

impl From<TenantSettings> for SettingsAnswer {
    fn from(s: TenantSettings) -> SettingsAnswer {
        SettingsAnswer {
            badges: s.badges,
            coaching: s.coaching,
            fair_ranking: s.fair_ranking,
            holidays: s.holidays,
            leaderboard_privacy: s.leaderboard_privacy,
            retention: s.retention,
            stages: s.stages,
            targets: s.targets,
            taxonomy: s.taxonomy,
            timezone: s.timezone,
        }
    }
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

pub async fn get_settings(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<SettingsAnswer>, ApiError> {
    principal.require(Scope::Read)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    Ok(Json(tenant.settings.clone().into()))
}

pub async fn put_settings(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<Json<SettingsAnswer>, ApiError> {
    principal.require(Scope::Admin)?;
    let change = json_body(&body)?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let settings =
        apply_settings(&tenant.settings, &change).map_err(|e| ApiError::invalid(Code::InvalidSettings, e))?;
    let updated = state.store.update_settings(tenant.id, settings).await?;
    let fields: Vec<&String> = change.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    audit(
        &state.store,
        tenant.id,
        &principal.actor_name(),
        "settings_changed",
        None,
        json!({"fields": fields}),
    )
    .await?;
    Ok(Json(updated.settings.clone().into()))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(dialboard_engine::is_forbidden_char) {
        return Err(ApiError::invalid(
            Code::InvalidId,
            vec![FieldError::new(
                "id",
                "must be 1 to 256 characters without control or bidirectional formatting characters",
            )],
        ));
    }
    Ok(())
}

/// An agent of the directory, as `validate_entry` accepts it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentEntry {
    pub id: String,
    pub name: String,
    pub team_id: Option<String>,
    pub avatar_url: Option<String>,
    /// Meetings a day the rep aims at.
    pub daily_goal: Option<u32>,
    /// Out of public leaderboards: colleagues do not see them.
    pub leaderboard_opt_out: Option<bool>,
}

/// A team of the directory, as `validate_entry` accepts it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamEntry {
    pub id: String,
    pub name: String,
    /// The team's own daily activity targets (else the tenant's), by name.
    pub targets: Option<BTreeMap<String, f64>>,
}

/// A campaign of the directory, as `validate_entry` accepts it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignEntry {
    pub id: String,
    pub name: String,
    /// What the campaign cost (for cost per lead and ROI).
    pub cost: Option<f64>,
    pub currency: Option<String>,
}

/// `GET /agents`. Each entry is its stored body (as validated) with its `id`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentsAnswer {
    #[schema(value_type = Vec<AgentEntry>)]
    pub agents: Vec<Value>,
}

/// `GET /teams`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamsAnswer {
    #[schema(value_type = Vec<TeamEntry>)]
    pub teams: Vec<Value>,
}

/// `GET /campaigns`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignsAnswer {
    #[schema(value_type = Vec<CampaignEntry>)]
    pub campaigns: Vec<Value>,
}

/// `GET /agents|teams|campaigns`. Under leaderboard privacy an agent sees only its own entry
/// among agents.
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Extension(kind): Extension<DirectoryKind>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let entries = entries(&state, &principal, kind).await?;
    Ok(match kind {
        DirectoryKind::Agent => Json(AgentsAnswer { agents: entries }).into_response(),
        DirectoryKind::Team => Json(TeamsAnswer { teams: entries }).into_response(),
        DirectoryKind::Campaign => Json(CampaignsAnswer { campaigns: entries }).into_response(),
    })
}

fn opts_out(agent: &Value) -> bool {
    agent["leaderboard_opt_out"].as_bool() == Some(true)
}

/// The directory entries of a kind that `principal` sees, each with its `id` (also the SQL
/// endpoint's `agents`, `teams` and `campaigns`).
pub async fn entries(state: &AppState, principal: &Principal, kind: DirectoryKind) -> Result<Vec<Value>, ApiError> {
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let privacy = tenant.settings.leaderboard_privacy;
    let private_to = principal.only_named(privacy).filter(|_| kind == DirectoryKind::Agent);
    // A rep does not see colleagues who opted out of public leaderboards either.
    let opted_out = |id: &str, body: &Value| {
        kind == DirectoryKind::Agent && principal.only_named(true).is_some_and(|own| own != id) && opts_out(body)
    };
    Ok(state
        .store
        .directory(tenant.id, kind)
        .await?
        .into_iter()
        .filter(|(id, body)| private_to.is_none_or(|own| own == id) && !opted_out(id, body))
        .map(|(id, mut body)| {
            body["id"] = json!(id);
            body
        })
        .collect())
}

/// `PUT /agents|teams|campaigns/{id}` creates or replaces the entry.
pub async fn put(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Extension(kind): Extension<DirectoryKind>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    check_id(&id)?;
    let body = validate_entry(kind, &json_body(&body)?).map_err(|e| ApiError::invalid(Code::InvalidEntry, e))?;
    state
        .store
        .put_directory(principal.tenant_id, kind, &id, body.clone())
        .await?;
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        &format!("{}_saved", kind.as_str()),
        Some(&id),
        json!({}),
    )
    .await?;
    let mut out = body;
    out["id"] = json!(id);
    Ok(Json(out))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Extension(kind): Extension<DirectoryKind>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    if !state.store.delete_directory(principal.tenant_id, kind, &id).await? {
        return Err(ApiError::not_found(format!("no {} '{id}'", kind.as_str())));
    }
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        &format!("{}_deleted", kind.as_str()),
        Some(&id),
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
