//! Who is calling. An API key (`Authorization: Bearer KEY`) or a browser session cookie
//! becomes a [`Principal`]: its tenant scopes every store call, its [`Reach`] narrows what it
//! reads, and its rate limits are charged here, once, before any handler runs. The tenant
//! never comes from the request.

use super::error::{ApiError, Code};
use super::guard::check_json_body;
use super::AppState;
use crate::access::hash_secret;
use crate::live::{LiveScope, ScopeKind};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use dialboard_store::access::{key_id, Rate, RateLimits, Role, User};
use dialboard_store::{ApiKey, Scope};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use super::guard::SESSION_COOKIE;

/// Whose records a credential reads: the views' type, so they narrow reads without HTTP.
pub use dialboard_views::Reach;

#[derive(Debug, Clone)]
pub enum Actor {
    Key { id: String },
    User(User),
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: i64,
    pub scopes: Vec<Scope>,
    pub reach: Reach,
    pub actor: Actor,
    /// The session's token hash, when the credential is a browser session (for logout).
    pub session: Option<[u8; 32]>,
}

pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::Forbidden, message)
}

impl Principal {
    fn from_key(key: ApiKey, hash: &[u8; 32]) -> Principal {
        let reach = match (key.agent_id, key.team_id) {
            (Some(id), team) => Reach::Agent {
                id,
                teams: team.into_iter().collect(),
            },
            (None, Some(team)) => Reach::Teams(vec![team]),
            (None, None) => Reach::All,
        };
        Principal {
            tenant_id: key.tenant_id,
            scopes: key.scopes,
            reach,
            actor: Actor::Key { id: key_id(hash) },
            session: None,
        }
    }

    pub fn from_user(user: User, session: [u8; 32]) -> Principal {
        let (scopes, reach) = match user.role {
            Role::Admin => (vec![Scope::Ingest, Scope::Read, Scope::Admin], Reach::All),
            Role::Viewer => (vec![Scope::Read], Reach::All),
            Role::Manager => (vec![Scope::Read], Reach::Teams(user.teams.clone())),
            Role::Agent => (
                vec![Scope::Read],
                Reach::Agent {
                    id: user.agent_id.clone().unwrap_or_default(),
                    teams: user.teams.clone(),
                },
            ),
        };
        Principal {
            tenant_id: user.tenant_id,
            scopes,
            reach,
            actor: Actor::User(user),
            session: Some(session),
        }
    }

    /// How the audit log names this caller: a user's e-mail or `key:<id>`.
    pub fn actor_name(&self) -> String {
        match &self.actor {
            Actor::Key { id } => format!("key:{id}"),
            Actor::User(u) => u.email.clone(),
        }
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "this credential lacks the '{}' scope",
                scope.as_str()
            )))
        }
    }

    /// Whether this credential sees every agent's and team's records.
    pub fn sees_everyone(&self) -> bool {
        self.reach.sees_everyone()
    }

    /// Whether a record of `agent` in `team` is visible to this credential.
    pub fn sees_record(&self, agent: Option<&str>, team: Option<&str>) -> bool {
        self.reach.sees_record(agent, team)
    }

    /// Which live scopes this credential may watch: whatever it reads. Agents also watch the
    /// tenant's and their teams' aggregates.
    pub fn may_watch(&self, scope: &LiveScope) -> bool {
        let listed = |list: &[String]| list.contains(&scope.id);
        match (&self.reach, scope.kind) {
            (Reach::All, _) => true,
            (Reach::Teams(teams), ScopeKind::Team) => listed(teams),
            (Reach::Teams(_), _) => false,
            (Reach::Agent { .. }, ScopeKind::Tenant) => true,
            (Reach::Agent { id, .. }, ScopeKind::Agent) => *id == scope.id,
            (Reach::Agent { teams, .. }, ScopeKind::Team) => listed(teams),
            (Reach::Agent { .. }, ScopeKind::Campaign) => false,
        }
    }

    /// Narrows a query-shaped body to what this credential may read ([`Reach::restrict`]);
    /// asking for more is a 403 naming the filter.
    pub fn restrict(&self, body: &mut Value, records: bool) -> Result<(), ApiError> {
        self.reach.restrict(body, records).map_err(forbidden)
    }

    /// Hides what a rep may not see of colleagues in a `/query`-shaped result
    /// ([`Reach::redact`]).
    pub fn redact(&self, result: &mut Value, leaderboard_privacy: bool, query: &Value) {
        self.reach.redact(result, leaderboard_privacy, query)
    }

    /// See [`Reach::only_named`].
    pub fn only_named(&self, leaderboard_privacy: bool) -> Option<&str> {
        self.reach.only_named(leaderboard_privacy)
    }
}

/// Keys are looked up at most every 30 s (a key revoked elsewhere stops working within that
/// time; one revoked through this server stops at once).
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

    pub fn clear(&self) {
        self.entries.write().expect("key cache").clear();
    }
}

/// Who a bucket limits (a credential, an address, an e-mail: hashed, so that a key of any
/// length costs the same few bytes) and the kind of request (`ingest`, `other`, `login`, …).
type BucketKey = ([u8; 32], &'static str);

/// One token bucket: its tokens, when they were counted, and when it will be full again (an
/// idle bucket past that instant is the same as no bucket, so it is forgotten).
struct Bucket {
    tokens: f64,
    at: Instant,
    full_at: Instant,
}

/// How often full buckets are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Token buckets per credential and kind of request (SPEC §8), and per address and identity
/// for logins. Memory is bounded by the buckets that are not full: each expires once refilled.
pub struct RateLimiter {
    buckets: Mutex<(HashMap<BucketKey, Bucket>, Instant)>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            buckets: Mutex::new((HashMap::new(), Instant::now())),
        }
    }
}

impl RateLimiter {
    /// Takes one token from `who`'s bucket of a kind of request (`kind` names the bucket);
    /// `Err(seconds)` until one is available.
    pub fn take(&self, who: &[u8], kind: &'static str, rate: Rate) -> Result<(), u64> {
        let key = (<sha2::Sha256 as sha2::Digest>::digest(who).into(), kind);
        let now = Instant::now();
        let mut guard = self.buckets.lock().expect("rate limiter");
        let (buckets, swept) = &mut *guard;
        if now.duration_since(*swept) >= SWEEP_EVERY {
            buckets.retain(|_, b| b.full_at > now);
            *swept = now;
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
            full_at: now,
        });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate.per_second).min(rate.burst);
        bucket.at = now;
        let outcome = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate.per_second).ceil().max(1.0) as u64)
        };
        let refill = (rate.burst - bucket.tokens).max(0.0) / rate.per_second;
        bucket.full_at = now + Duration::from_secs_f64(refill.min(86_400.0));
        outcome
    }

    /// Puts back the token a request took (a login that succeeded: only failures count).
    pub fn give_back(&self, who: &[u8], kind: &'static str, rate: Rate) {
        let key = (<sha2::Sha256 as sha2::Digest>::digest(who).into(), kind);
        if let Some(bucket) = self.buckets.lock().expect("rate limiter").0.get_mut(&key) {
            bucket.tokens = (bucket.tokens + 1.0).min(rate.burst);
        }
    }

    /// Buckets held (for tests of the bound).
    pub fn len(&self) -> usize {
        self.buckets.lock().expect("rate limiter").0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn too_many_requests(retry_after: u64) -> ApiError {
    let mut e = ApiError::new(
        Code::RateLimited,
        format!("too many requests; retry after {retry_after} s"),
    );
    e.retry_after = Some(retry_after);
    e
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(Code::Unauthorized, message)
}

/// The value of the session cookie named `name`, if the request carries one.
pub fn session_cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Resolves a credential: the `Authorization` header, else the session cookie, else (for the
/// live endpoints) `?access_token=`.
async fn authenticate(parts: &Parts, state: &AppState, token_param: bool) -> Result<(Principal, RateLimits), ApiError> {
    let key_secret = match parts.headers.get(header::AUTHORIZATION) {
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer KEY'"))?,
        ),
        None => None,
    };
    let from_query = || {
        parts
            .uri
            .query()?
            .split('&')
            .find_map(|kv| kv.strip_prefix("access_token="))
    };
    let key_secret = key_secret.or_else(|| if token_param { from_query() } else { None });
    if let Some(secret) = key_secret {
        let hash = hash_secret(secret);
        let key = state
            .keys
            .lookup(state, hash)
            .await?
            .ok_or_else(|| unauthorized("unknown or revoked API key"))?;
        let limits = key.rate_limits.unwrap_or(state.rate_limits);
        return Ok((Principal::from_key(key, &hash), limits));
    }
    if let Some(token) = session_cookie(parts, state.security.session_cookie_name()) {
        // The browser attaches the cookie to requests from any page of the same site: only
        // this server's own pages may use it (and send JSON, not what a form can send).
        state.security.check_same_origin(parts, token_param)?;
        check_json_body(parts)?;
        let hash = hash_secret(token);
        let user = state
            .store
            .session(hash, jiff::Timestamp::now().as_second())
            .await?
            .ok_or_else(|| unauthorized("the session has expired or was ended; log in again"))?;
        return Ok((Principal::from_user(user, hash), state.rate_limits));
    }
    Err(unauthorized(
        "a credential is required: Authorization: Bearer KEY, or log in (POST /api/v1/auth/login)",
    ))
}

/// The principal of an API key given as a secret (the SQL endpoint's password), with its rate
/// limits; `None` for an unknown or revoked key.
pub async fn key_principal(state: &AppState, secret: &str) -> Result<Option<(Principal, RateLimits)>, ApiError> {
    key_principal_by_hash(state, hash_secret(secret.trim())).await
}

/// The principal of the API key with this hash (the SQL endpoint's SCRAM login finds the
/// key by its verifier, never seeing the secret).
pub async fn key_principal_by_hash(
    state: &AppState,
    hash: [u8; 32],
) -> Result<Option<(Principal, RateLimits)>, ApiError> {
    let key = state.keys.lookup(state, hash).await?;
    Ok(key.map(|key| {
        let limits = key.rate_limits.unwrap_or(state.rate_limits);
        (Principal::from_key(key, &hash), limits)
    }))
}

async fn authenticate_and_charge(parts: &Parts, state: &AppState, token_param: bool) -> Result<Principal, ApiError> {
    let (principal, limits) = authenticate(parts, state, token_param).await?;
    let (kind, rate) = if parts.uri.path().ends_with("/events") {
        ("ingest", limits.ingest)
    } else {
        ("other", limits.other)
    };
    state
        .limiter
        .take(principal.actor_name().as_bytes(), kind, rate)
        .map_err(too_many_requests)?;
    Ok(principal)
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        authenticate_and_charge(parts, state, false).await
    }
}

/// The credential of a live stream. Browsers cannot set headers on a WebSocket or an
/// EventSource, so these two endpoints also take a key as `?access_token=` (or the cookie).
pub struct LivePrincipal(pub Principal);

impl FromRequestParts<Arc<AppState>> for LivePrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        authenticate_and_charge(parts, state, true).await.map(LivePrincipal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn buckets_allow_bursts_then_refill_at_the_rate() {
        let limiter = RateLimiter::default();
        let limits = RateLimits {
            other: Rate {
                per_second: 1.0,
                burst: 3.0,
            },
            ..RateLimits::default()
        };
        for _ in 0..3 {
            assert!(limiter.take(b"k", "other", limits.other).is_ok());
        }
        assert_eq!(limiter.take(b"k", "other", limits.other), Err(1));
        assert!(
            limiter.take(b"k", "ingest", limits.ingest).is_ok(),
            "ingest has its own bucket"
        );
        assert!(
            limiter.take(b"other", "other", limits.other).is_ok(),
            "each credential has its own"
        );
    }

    #[test]
    fn buckets_are_forgotten_once_full_again() {
        let limiter = RateLimiter::default();
        let fast = Rate {
            per_second: 1000.0,
            burst: 2.0,
        };
        for i in 0..1000u32 {
            limiter.take(&i.to_le_bytes(), "login", fast).unwrap();
        }
        assert_eq!(limiter.len(), 1000);
        // Pretend the last sweep was long ago: the next take sweeps every full bucket.
        limiter.buckets.lock().unwrap().1 -= SWEEP_EVERY;
        std::thread::sleep(Duration::from_millis(10));
        limiter.take(b"new", "login", fast).unwrap();
        assert_eq!(limiter.len(), 1, "only the bucket just used is left");
    }

    fn agent() -> Principal {
        Principal {
            tenant_id: 1,
            scopes: vec![Scope::Read],
            reach: Reach::Agent {
                id: "a1".into(),
                teams: vec!["t1".into()],
            },
            actor: Actor::Key { id: "k".into() },
            session: None,
        }
    }

    #[test]
    fn agents_read_aggregates_but_only_their_own_breakdown_and_records() {
        let p = agent();
        let mut aggregate = json!({"measures": ["total_calls"], "filters": {"team": ["t2"]}});
        p.restrict(&mut aggregate, false).unwrap();
        assert_eq!(aggregate["filters"], json!({"team": ["t2"]}));
        let mut by_agent = json!({"measures": ["total_calls"], "dimensions": ["agent"]});
        p.restrict(&mut by_agent, false).unwrap();
        assert_eq!(by_agent["filters"].get("agent"), None, "a leaderboard is an aggregate");
        let mut result =
            json!({"columns": ["agent", "total_calls"], "rows": [["a1", 3], ["a2", 5]], "totals": {"total_calls": 8}});
        p.redact(&mut result, false, &Value::Null);
        assert_eq!(result["rows"][1][0], "a2");
        p.redact(&mut result, true, &Value::Null);
        assert_eq!(result["rows"], json!([["a1", 3], ["anonymous", 5]]));
        let mut records = json!({"filters": {}});
        p.restrict(&mut records, true).unwrap();
        assert_eq!(records["filters"]["agent"], json!(["a1"]));
        let mut other = json!({"filters": {"agent": ["a1", "a2"]}});
        let e = p.restrict(&mut other, false).unwrap_err();
        assert_eq!(
            (e.status().as_u16(), e.message.as_str()),
            (403, "filters.agent: \"a2\" is not visible to this credential")
        );
    }

    #[test]
    fn managers_read_their_teams() {
        let p = Principal {
            reach: Reach::Teams(vec!["t1".into(), "t2".into()]),
            ..agent()
        };
        let mut q = json!({"measures": ["total_calls"]});
        p.restrict(&mut q, false).unwrap();
        assert_eq!(q["filters"]["team"], json!(["t1", "t2"]));
        let mut q = json!({"filters": {"team": ["t3"]}});
        assert_eq!(p.restrict(&mut q, false).unwrap_err().status(), 403);
        assert!(p.sees_record(Some("x"), Some("t2")) && !p.sees_record(Some("x"), None));
    }
}
