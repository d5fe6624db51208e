//! Browser sessions: `POST /api/v1/auth/login`, `POST /api/v1/auth/logout`, `GET /api/v1/auth/me`.
//! The session token lives only in an HttpOnly, SameSite=Strict cookie and as a hash in the
//! store; it expires after [`SESSION_HOURS`] and is revoked at logout.

use super::auth::{session_cookie, too_many_requests, Actor, Principal, Reach, SESSION_COOKIE};
use super::error::{parse_json, ApiError, Body};
use super::AppState;
use crate::access::{audit, generate_secret, hash_secret, verify_password};
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dialboard_store::access::Rate;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub const SESSION_HOURS: i64 = 12;

/// Login attempts per e-mail: a few per second, so passwords cannot be guessed quickly.
const LOGIN_RATE: Rate = Rate {
    per_second: 1.0,
    burst: 10.0,
};

#[derive(Deserialize)]
pub struct Login {
    email: String,
    password: String,
}

fn cookie(value: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"
    ))
    .expect("cookie is ASCII")
}

pub async fn login(State(state): State<Arc<AppState>>, Body(body): Body) -> Result<Response, ApiError> {
    let login: Login = parse_json(&body)?;
    let email = login.email.trim().to_lowercase();
    state
        .limiter
        .take(&email, "login", LOGIN_RATE)
        .map_err(too_many_requests)?;
    let found = state.store.user_by_email(&email).await?;
    let password = login.password;
    let (user, ok) = match found {
        Some((user, phc)) => {
            let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
                .await
                .unwrap_or(false);
            (Some(user), ok)
        }
        None => (None, false),
    };
    let user = match (user, ok) {
        (Some(user), true) => user,
        (user, _) => {
            if let Some(user) = &user {
                audit(
                    &state.store,
                    user.tenant_id,
                    &email,
                    "login_failed",
                    Some(&user.id),
                    json!({}),
                )
                .await?;
            }
            tracing::info!(%email, "failed login");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_login",
                "invalid e-mail or password",
            ));
        }
    };
    let token = generate_secret("dbs");
    let now = jiff::Timestamp::now().as_second();
    let expires_at = now + SESSION_HOURS * 3600;
    state
        .store
        .create_session(hash_secret(&token), &user, expires_at)
        .await?;
    audit(
        &state.store,
        user.tenant_id,
        &user.email,
        "login",
        Some(&user.id),
        json!({}),
    )
    .await?;
    let tenant = state.store.tenant(user.tenant_id).await?;
    let body = json!({
        "user": user,
        "tenant": tenant.name,
        "expires_at": tenant.zone.format(expires_at),
    });
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, cookie(&token, SESSION_HOURS * 3600));
    Ok((headers, Json(body)).into_response())
}

pub async fn logout(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Response, ApiError> {
    if let Some(hash) = principal.session {
        state.store.revoke_session(hash).await?;
        audit(
            &state.store,
            principal.tenant_id,
            &principal.actor_name(),
            "logout",
            None,
            json!({}),
        )
        .await?;
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, cookie("", 0));
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// Who is calling. A request with no credential at all is answered `{"user": null}`: being signed
/// out is an answer, not an error (the web app asks on every first visit, and browsers log each
/// 401 as an error). An unknown key or an ended session is still a 401.
pub async fn me(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    principal: Result<Principal, ApiError>,
) -> Result<Json<Value>, ApiError> {
    if parts.headers.get(header::AUTHORIZATION).is_none() && session_cookie(&parts).is_none() {
        return Ok(Json(json!({"user": null})));
    }
    let principal = principal?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let (kind, user) = match &principal.actor {
        Actor::Key { id } => ("key", json!({"key_id": id})),
        Actor::User(u) => ("user", json!(u)),
    };
    let reach = match &principal.reach {
        Reach::All => json!({"all": true}),
        Reach::Teams(teams) => json!({"teams": teams}),
        Reach::Agent { id, teams } => json!({"agent_id": id, "teams": teams}),
    };
    Ok(Json(json!({
        "kind": kind,
        "user": user,
        "tenant": tenant.name,
        "timezone": tenant.settings.timezone,
        "scopes": principal.scopes,
        "reach": reach,
    })))
}
