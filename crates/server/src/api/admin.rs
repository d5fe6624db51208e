//! Administration of credentials (admin scope): `/api/v1/users`, `/api/v1/keys` and the audit
//! log `/api/v1/audit`. Every change is audited; secrets are shown once, at creation.

use super::auth::Principal;
use super::error::{parse_json, ApiError, Body, Code};
use super::AppState;
use crate::access::{audit, create_key, create_user, set_user_password, NewUser};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use dialboard_engine::FieldError;
use dialboard_store::access::{KeyInfo, RateLimits, User};
use dialboard_store::{ApiKey, Scope};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A user as the API shows it (never with the password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserAnswer {
    pub id: String,
    pub email: String,
    /// `admin`, `manager`, `agent` or `viewer`.
    pub role: String,
    /// The agent whose data an `agent` user sees as their own.
    #[schema(required = true)]
    pub agent_id: Option<String>,
    /// A manager's teams; an agent's own team(s).
    pub teams: Vec<String>,
    /// Epoch seconds.
    pub created_at: i64,
}

impl From<User> for UserAnswer {
    fn from(u: User) -> UserAnswer {
        UserAnswer {
            id: u.id,
            email: u.email,
            role: u.role.as_str().to_string(),
            agent_id: u.agent_id,
            teams: u.teams,
            created_at: u.created_at,
        }
    }
}

/// `GET /users`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsersAnswer {
    pub users: Vec<UserAnswer>,
}

pub async fn list_users(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<UsersAnswer>, ApiError> {
    principal.require(Scope::Admin)?;
    let users = state.store.users(principal.tenant_id).await?;
    Ok(Json(UsersAnswer {
        users: users.into_iter().map(UserAnswer::from).collect(),
    }))
}

pub async fn add_user(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<(StatusCode, Json<UserAnswer>), ApiError> {
    principal.require(Scope::Admin)?;
    let new: NewUser = parse_json(&body)?;
    match create_user(&state.store, principal.tenant_id, new, &principal.actor_name()).await? {
        Ok(user) => Ok((StatusCode::CREATED, Json(UserAnswer::from(user)))),
        Err(fields) => Err(ApiError::invalid(Code::InvalidUser, fields)),
    }
}

pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    if !state.store.delete_user(principal.tenant_id, &id).await? {
        return Err(ApiError::not_found(format!("no user '{id}'")));
    }
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        "user_deleted",
        Some(&id),
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    password: String,
}

/// `PUT /users/{id}/password`: an admin sets a user's password (the policy names `password`);
/// every session of the user ends.
pub async fn reset_password(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    let reset: PasswordReset = parse_json(&body)?;
    let users = state.store.users(principal.tenant_id).await?;
    let user = users
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no user '{id}'")))?;
    let actor = principal.actor_name();
    set_user_password(
        &state.store,
        user,
        reset.password,
        "password",
        None,
        (&actor, "password_reset"),
    )
    .await?
    .map_err(|fields| ApiError::invalid(Code::InvalidPassword, fields))?;
    Ok(StatusCode::NO_CONTENT)
}

/// An API key's metadata, as listed (the secret is shown once, at creation).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyAnswer {
    /// A public handle: the first 16 hex digits of the key's hash.
    pub id: String,
    #[schema(required = true)]
    pub name: Option<String>,
    /// Each of `ingest`, `read`, `admin`.
    pub scopes: Vec<String>,
    #[schema(required = true)]
    pub agent_id: Option<String>,
    #[schema(required = true)]
    pub team_id: Option<String>,
    /// The key's own limits; `null` for the server's defaults.
    #[schema(required = true)]
    pub rate_limits: Option<RateLimitsAnswer>,
    /// Epoch seconds.
    pub created_at: i64,
    #[schema(required = true)]
    pub revoked_at: Option<i64>,
}

/// Requests per second and burst, for ingest and for everything else.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateLimitsAnswer {
    pub ingest: RateAnswer,
    pub other: RateAnswer,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateAnswer {
    pub per_second: f64,
    pub burst: f64,
}

impl From<RateLimits> for RateLimitsAnswer {
    fn from(l: RateLimits) -> RateLimitsAnswer {
        let rate = |r: dialboard_store::access::Rate| RateAnswer {
            per_second: r.per_second,
            burst: r.burst,
        };
        RateLimitsAnswer {
            ingest: rate(l.ingest),
            other: rate(l.other),
        }
    }
}

/// `GET /keys`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeysAnswer {
    pub keys: Vec<KeyAnswer>,
}

/// `POST /keys`: the new key's id and its secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewKeyAnswer {
    pub id: String,
    pub key: String,
}

pub async fn list_keys(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<KeysAnswer>, ApiError> {
    principal.require(Scope::Admin)?;
    let keys = state.store.keys(principal.tenant_id).await?;
    let keys = keys
        .into_iter()
        .map(|k: KeyInfo| KeyAnswer {
            id: k.id,
            name: k.name,
            scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            agent_id: k.agent_id,
            team_id: k.team_id,
            rate_limits: k.rate_limits.map(RateLimitsAnswer::from),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        })
        .collect();
    Ok(Json(KeysAnswer { keys }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    scopes: Vec<String>,
    name: Option<String>,
    agent_id: Option<String>,
    team_id: Option<String>,
    rate_limits: Option<RateLimits>,
}

pub async fn add_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<(StatusCode, Json<NewKeyAnswer>), ApiError> {
    principal.require(Scope::Admin)?;
    let r: KeyRequest = parse_json(&body)?;
    let mut errors = Vec::new();
    let scopes: Vec<Scope> = r.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    if scopes.is_empty() || scopes.len() != r.scopes.len() {
        errors.push(FieldError::new(
            "scopes",
            "must list one or more of ingest, read, admin",
        ));
    }
    if r.agent_id.is_some() && r.team_id.is_some() {
        errors.push(FieldError::new(
            "team_id",
            "a key is bound to an agent or to a team, not both",
        ));
    }
    if let Some(l) = r.rate_limits {
        if [l.ingest, l.other]
            .iter()
            .any(|r| !(r.per_second > 0.0 && r.burst >= 1.0))
        {
            errors.push(FieldError::new(
                "rate_limits",
                "each rate needs per_second > 0 and burst ≥ 1",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(Code::InvalidKey, errors));
    }
    let key = ApiKey {
        tenant_id: principal.tenant_id,
        scopes,
        agent_id: r.agent_id,
        team_id: r.team_id,
        name: r.name,
        rate_limits: r.rate_limits,
    };
    let (secret, id) = create_key(&state.store, key, &principal.actor_name()).await?;
    Ok((StatusCode::CREATED, Json(NewKeyAnswer { id, key: secret })))
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    if !state.store.revoke_key(principal.tenant_id, &id).await? {
        return Err(ApiError::not_found(format!("no live key '{id}'")));
    }
    state.keys.clear();
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        "key_revoked",
        Some(&id),
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One audit record: who did what to what, when.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Its place in the log: `before` of the next page.
    pub seq: i64,
    /// RFC 3339, in the tenant's zone.
    pub at: String,
    pub actor: String,
    pub action: String,
    #[schema(required = true)]
    pub target: Option<String>,
    /// What changed (never a secret).
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// `GET /audit`: newest first; `next_before` pages further back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    #[schema(required = true)]
    pub next_before: Option<i64>,
}

/// `GET /api/v1/audit?limit=&before=`: newest first; `next_before` pages further back.
pub async fn audit_log(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require(Scope::Admin)?;
    let number = |name: &str, range: std::ops::RangeInclusive<i64>| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                    ApiError::invalid(
                        Code::InvalidRequest,
                        vec![FieldError::new(
                            name,
                            format!("must be a whole number from {} to {}", range.start(), range.end()),
                        )],
                    )
                })
            })
            .transpose()
    };
    let limit = number("limit", 1..=1000)?.unwrap_or(100) as usize;
    let before = number("before", 1..=i64::MAX)?;
    let entries = state.store.audit_log(principal.tenant_id, limit, before).await?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let next_before = (entries.len() == limit)
        .then(|| entries.last().map(|(seq, _)| *seq))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|(seq, e)| AuditRecord {
            seq,
            at: tenant.zone.format(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
        })
        .collect();
    Ok(Json(AuditPage { entries, next_before }))
}
