//! Browser sessions: `POST /api/v1/auth/login`, `POST /api/v1/auth/logout`, `GET /api/v1/auth/me`.
//! The session token lives only in an HttpOnly, SameSite=Strict cookie and as a hash in the
//! store; it expires after [`SESSION_HOURS`] and is revoked at logout.

use super::admin::UserAnswer;
use super::auth::{session_cookie, too_many_requests, Actor, Principal, Reach};
use super::error::{parse_json, ApiError, Body, Code};
use super::guard::{ClientIp, SameOriginJson, Security};
use super::AppState;
use crate::access::{audit, generate_secret, hash_secret, valid_email, verify_password, MAX_PASSWORD_BYTES};
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dialboard_engine::FieldError;
use dialboard_store::access::{Rate, User};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

pub const SESSION_HOURS: i64 = 12;

/// A login body is an e-mail, a password and a tenant's name: a few hundred bytes.
pub const MAX_LOGIN_BODY_BYTES: usize = 16 * 1024;

/// Login attempts from one client address, whatever the e-mail: a flood of guesses or of
/// made-up e-mails is slowed per address.
const LOGIN_PER_ADDRESS: Rate = Rate {
    per_second: 2.0,
    burst: 50.0,
};

/// Failed logins for one e-mail from one address: a password cannot be guessed quickly, and a
/// stranger's wrong attempts from elsewhere never lock the real user out of their own address.
/// (A successful login gives its token back.)
const LOGIN_PER_IDENTITY: Rate = Rate {
    per_second: 0.2,
    burst: 10.0,
};

#[derive(Deserialize)]
pub struct Login {
    email: String,
    password: String,
    /// The tenant (workspace) to log in to; needed only when the e-mail has users in several.
    tenant: Option<String>,
}

fn cookie(security: &Security, value: &str, max_age: i64) -> HeaderValue {
    let secure = if security.secure_cookies() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
        security.session_cookie_name()
    ))
    .expect("cookie is ASCII")
}

/// What the logs say of an e-mail that failed to log in: a short hash (the same e-mail gives
/// the same tag, so repeated attempts show) rather than whatever a client sent.
fn identity_tag(email: &str) -> String {
    hash_secret(email)[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The part of an address one client controls: IPv6 clients get a whole /64.
fn address_key(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets()[..8].to_vec(),
        },
    }
}

/// The argon2 hash a login checks when the e-mail is unknown, so that the answer takes as
/// long as for a known e-mail with a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| crate::access::hash_password(&generate_secret("dummy")))
}

fn invalid_login() -> ApiError {
    ApiError::new(
        Code::InvalidLogin,
        "invalid e-mail or password (an e-mail used in several workspaces also needs the tenant)",
    )
}

/// Checks the shape of a login before anything is looked up, charged or logged.
fn validate(login: &Login) -> Result<String, ApiError> {
    let email = login.email.trim().to_lowercase();
    let mut errors = Vec::new();
    if !valid_email(&email) {
        errors.push(FieldError::new(
            "email",
            "must be an e-mail address of at most 254 characters",
        ));
    }
    if login.password.len() > MAX_PASSWORD_BYTES {
        errors.push(FieldError::new(
            "password",
            format!("must have at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if login.tenant.as_ref().is_some_and(|t| t.len() > 200) {
        errors.push(FieldError::new("tenant", "must have at most 200 bytes"));
    }
    if errors.is_empty() {
        Ok(email)
    } else {
        Err(ApiError::invalid(Code::InvalidLoginRequest, errors))
    }
}

/// The user an e-mail (and tenant, if given) names: `None` when unknown, or when the e-mail
/// has users in several tenants and the login names none of them.
async fn find_user(state: &AppState, tenant: Option<&str>, email: &str) -> Result<Option<(User, String)>, ApiError> {
    Ok(match tenant.map(str::trim).filter(|t| !t.is_empty()) {
        Some(name) => match state.store.tenant_by_name(name).await? {
            Some(t) => state.store.user_by_email(t.id, email).await?,
            None => None,
        },
        None => {
            let mut found = state.store.users_by_email(email, 2).await?;
            if found.len() == 1 {
                found.pop()
            } else {
                None
            }
        }
    })
}

/// `POST /auth/login`: who signed in, and when the session ends (the cookie carries it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    /// RFC 3339, in the tenant's zone.
    pub expires_at: String,
    /// The tenant's name.
    pub tenant: String,
    pub user: UserAnswer,
}

/// Whose data a caller sees: all (`all`), some teams' (`teams`), or one agent's
/// (`agent_id`, with the agent's teams).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ReachAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teams: Option<Vec<String>>,
}

/// Who a caller is: a signed-in user, or an API key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Identity {
    User(UserAnswer),
    Key { key_id: String },
}

/// `GET /auth/me` for a caller with a credential. Fields in name order, as the JSON object it
/// was before it was typed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Caller {
    /// `user` or `key`.
    pub kind: &'static str,
    pub reach: ReachAnswer,
    /// Each of `ingest`, `read`, `admin`.
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<dialboard_store::Scope>,
    pub tenant: String,
    /// The tenant's IANA zone.
    pub timezone: String,
    pub user: Identity,
}

/// `GET /auth/me` without a credential: `{"user": null}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedOut {
    #[schema(value_type = Option<Object>, required = true)]
    pub user: (),
}

/// `GET /auth/me`: the caller, or that no one is signed in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum MeAnswer {
    Caller(Box<Caller>),
    SignedOut(SignedOut),
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    _: SameOriginJson,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let login: Login = parse_json(&body)?;
    let email = validate(&login)?;
    let address = address_key(ip);
    state
        .limiter
        .take(&address, "login_address", LOGIN_PER_ADDRESS)
        .map_err(too_many_requests)?;
    let identity = [email.as_bytes(), b"\0", &address].concat();
    state
        .limiter
        .take(&identity, "login_identity", LOGIN_PER_IDENTITY)
        .map_err(too_many_requests)?;
    let found = find_user(&state, login.tenant.as_deref(), &email).await?;
    let phc = found
        .as_ref()
        .map_or_else(|| dummy_hash().to_string(), |(_, phc)| phc.clone());
    let password = login.password;
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let user = match found {
        Some((user, _)) if verified => {
            state.limiter.give_back(&identity, "login_identity", LOGIN_PER_IDENTITY);
            user
        }
        found => {
            tracing::info!(identity = %identity_tag(&email), client = %ip, "failed login");
            if let Some((user, _)) = found {
                // Not awaited: the answer must not take longer for a known e-mail.
                let store = state.store.clone();
                tokio::spawn(async move {
                    let written = audit(
                        &store,
                        user.tenant_id,
                        &user.email,
                        "login_failed",
                        Some(&user.id),
                        json!({}),
                    )
                    .await;
                    if let Err(e) = written {
                        tracing::warn!(error = %e, "failed login not audited");
                    }
                });
            }
            return Err(invalid_login());
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
    let body = LoginAnswer {
        expires_at: tenant.zone.format(expires_at),
        tenant: tenant.name.clone(),
        user: user.into(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        cookie(&state.security, &token, SESSION_HOURS * 3600),
    );
    Ok((headers, Json(body)).into_response())
}

/// Wrong current passwords for one user: a stolen session cannot guess its way to the
/// password (a successful change gives its token back).
const PASSWORD_CHANGE_PER_USER: Rate = LOGIN_PER_IDENTITY;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /auth/password`: the signed-in user changes their own password. The current one is
/// checked, the new one passes the policy (`new_password` names the problem), and every other
/// session of the user ends; this one stays signed in. As every cookie write, it must come
/// from this server's pages as JSON (see `guard`).
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    let Actor::User(user) = &principal.actor else {
        return Err(ApiError::bad_request(
            "an API key has no password: sign in as the user to change theirs",
        ));
    };
    let change: PasswordChange = parse_json(&body)?;
    if change.current_password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            Code::InvalidPassword,
            vec![FieldError::new("current_password", "is not the current password")],
        ));
    }
    let attempt = [b"password\0".as_slice(), user.id.as_bytes()].concat();
    state
        .limiter
        .take(&attempt, "password_change", PASSWORD_CHANGE_PER_USER)
        .map_err(too_many_requests)?;
    let phc = state
        .store
        .user_by_email(user.tenant_id, &user.email)
        .await?
        .filter(|(found, _)| found.id == user.id)
        .map(|(_, phc)| phc)
        .unwrap_or_else(|| dummy_hash().to_string());
    let current = change.current_password;
    let verified = tokio::task::spawn_blocking(move || verify_password(&current, &phc))
        .await
        .unwrap_or(false);
    if !verified {
        return Err(ApiError::invalid(
            Code::InvalidPassword,
            vec![FieldError::new("current_password", "is not the current password")],
        ));
    }
    let actor = principal.actor_name();
    crate::access::set_user_password(
        &state.store,
        user,
        change.new_password,
        "new_password",
        principal.session,
        (&actor, "password_changed"),
    )
    .await?
    .map_err(|fields| ApiError::invalid(Code::InvalidPassword, fields))?;
    state
        .limiter
        .give_back(&attempt, "password_change", PASSWORD_CHANGE_PER_USER);
    Ok(StatusCode::NO_CONTENT)
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
    headers.insert(header::SET_COOKIE, cookie(&state.security, "", 0));
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// Who is calling. A request with no credential at all is answered `{"user": null}`: being signed
/// out is an answer, not an error (the web app asks on every first visit, and browsers log each
/// 401 as an error). An unknown key or an ended session is still a 401.
pub async fn me(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    principal: Result<Principal, ApiError>,
) -> Result<Json<MeAnswer>, ApiError> {
    if parts.headers.get(header::AUTHORIZATION).is_none()
        && session_cookie(&parts, state.security.session_cookie_name()).is_none()
    {
        return Ok(Json(MeAnswer::SignedOut(SignedOut { user: () })));
    }
    let principal = principal?;
    let tenant = state.store.tenant(principal.tenant_id).await?;
    let (kind, user) = match &principal.actor {
        Actor::Key { id } => ("key", Identity::Key { key_id: id.clone() }),
        Actor::User(u) => ("user", Identity::User(u.clone().into())),
    };
    let reach = match &principal.reach {
        Reach::All => ReachAnswer {
            all: Some(true),
            ..ReachAnswer::default()
        },
        Reach::Teams(teams) => ReachAnswer {
            teams: Some(teams.clone()),
            ..ReachAnswer::default()
        },
        Reach::Agent { id, teams } => ReachAnswer {
            agent_id: Some(id.clone()),
            teams: Some(teams.clone()),
            ..ReachAnswer::default()
        },
    };
    Ok(Json(MeAnswer::Caller(Box::new(Caller {
        kind,
        reach,
        scopes: principal.scopes.clone(),
        tenant: tenant.name.clone(),
        timezone: tenant.settings.timezone.clone(),
        user,
    }))))
}
