//! Who is calling: an API key (`Authorization: Bearer KEY`) becomes a [`Principal`], whose
//! tenant scopes every store call. The tenant never comes from the request body.

use super::error::ApiError;
use super::AppState;
use crate::live::{LiveScope, ScopeKind};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use dialboard_store::{ApiKey, Scope};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: i64,
    pub scopes: Vec<Scope>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
}

impl Principal {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this key lacks the '{}' scope", scope.as_str()),
            ))
        }
    }

    /// Whether this credential sees every agent's and team's records (not bound to one).
    pub fn sees_everyone(&self) -> bool {
        self.agent_id.is_none() && self.team_id.is_none()
    }

    /// Whether a record of `agent` in `team` is visible to this credential.
    pub fn sees_record(&self, agent: Option<&str>, team: Option<&str>) -> bool {
        let bound_ok = |bound: &Option<String>, value: Option<&str>| bound.as_deref().is_none_or(|b| value == Some(b));
        bound_ok(&self.agent_id, agent) && bound_ok(&self.team_id, team)
    }

    /// Which live scopes this credential may watch: the tenant's aggregate always; an agent,
    /// team or campaign when it sees everyone, or when the scope is the one it is bound to.
    pub fn may_watch(&self, scope: &LiveScope) -> bool {
        let own = |bound: &Option<String>| bound.as_deref() == Some(scope.id.as_str());
        match scope.kind {
            ScopeKind::Tenant => true,
            _ if self.sees_everyone() => true,
            ScopeKind::Agent => own(&self.agent_id),
            ScopeKind::Team => own(&self.team_id),
            ScopeKind::Campaign => false,
        }
    }

    /// Narrows a query-shaped body to what the key may see: a key bound to an agent or a team
    /// reads only that agent's or team's records, whatever filters the body asks for.
    pub fn restrict(&self, body: &mut Value) {
        let Some(obj) = body.as_object_mut() else {
            return;
        };
        let filters = obj.entry("filters").or_insert_with(|| json!({}));
        if !filters.is_object() {
            return; // the query's own validation reports it
        }
        if let Some(agent) = &self.agent_id {
            filters["agent"] = json!([agent]);
        }
        if let Some(team) = &self.team_id {
            filters["team"] = json!([team]);
        }
    }
}

/// Keys are looked up at most every 30 s (a revoked key stops working within that time).
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// Known keys and when they were looked up. Unknown keys are never cached, so a flood of
/// random keys costs lookups but cannot grow the cache.
#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<[u8; 32], (ApiKey, Instant)>>,
}

impl KeyCache {
    async fn lookup(&self, state: &AppState, hash: [u8; 32]) -> Result<Option<ApiKey>, ApiError> {
        if let Some((key, at)) = self.entries.read().expect("key cache").get(&hash) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(Some(key.clone()));
            }
        }
        let key = state.store.key(hash).await?;
        let mut entries = self.entries.write().expect("key cache");
        match &key {
            Some(k) => {
                entries.insert(hash, (k.clone(), Instant::now()));
            }
            None => {
                entries.remove(&hash);
            }
        }
        Ok(key)
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl Principal {
    async fn from_key(state: &AppState, secret: &str) -> Result<Principal, ApiError> {
        let key = state
            .keys
            .lookup(state, crate::keys::hash(secret))
            .await?
            .ok_or_else(|| unauthorized("unknown API key"))?;
        Ok(Principal {
            tenant_id: key.tenant_id,
            scopes: key.scopes,
            agent_id: key.agent_id,
            team_id: key.team_id,
        })
    }

    /// The credential of the `Authorization` header, if the request has one.
    async fn from_header(parts: &Parts, state: &AppState) -> Option<Result<Principal, ApiError>> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION)?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        Some(match secret {
            Some(secret) => Principal::from_key(state, secret).await,
            None => Err(unauthorized("the Authorization header must be 'Bearer KEY'")),
        })
    }
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        Principal::from_header(parts, state)
            .await
            .unwrap_or_else(|| Err(unauthorized("an API key is required: Authorization: Bearer KEY")))
    }
}

/// The credential of a live stream. Browsers cannot set headers on a WebSocket or an
/// EventSource, so these two endpoints also take the key as `?access_token=`.
pub struct LivePrincipal(pub Principal);

impl FromRequestParts<Arc<AppState>> for LivePrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if let Some(p) = Principal::from_header(parts, state).await {
            return p.map(LivePrincipal);
        }
        let token = parts
            .uri
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")))
            .ok_or_else(|| unauthorized("a key is required: Authorization: Bearer KEY or ?access_token=KEY"))?;
        Principal::from_key(state, token).await.map(LivePrincipal)
    }
}
