//! Credentials and their bookkeeping, shared by the CLI and the API: secrets (API keys,
//! session tokens) are random and stored as SHA-256; passwords as argon2; every change is
//! written to the tenant's audit log. Nothing here ever logs or returns a secret after
//! creating it.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use dialboard_engine::FieldError;
use dialboard_store::access::{key_id, AuditEntry, Role, User};
use dialboard_store::{ApiKey, Store, StoreError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A fresh secret: `prefix` and 64 hex digits of OS randomness.
pub fn generate_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source works");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Appends to the tenant's audit log; a failure is logged, never hidden from the caller.
pub async fn audit(
    store: &Arc<dyn Store>,
    tenant_id: i64,
    actor: &str,
    action: &str,
    target: Option<&str>,
    detail: Value,
) -> Result<(), StoreError> {
    let entry = AuditEntry {
        at: jiff::Timestamp::now().as_second(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.map(String::from),
        detail,
    };
    store.audit(tenant_id, entry).await
}

/// Creates an API key; returns its secret (shown once) and its public id.
pub async fn create_key(store: &Arc<dyn Store>, key: ApiKey, actor: &str) -> Result<(String, String), StoreError> {
    let secret = generate_secret("dbk");
    let hash = hash_secret(&secret);
    let detail = json!({"scopes": key.scopes, "agent_id": key.agent_id, "team_id": key.team_id, "name": key.name});
    let tenant_id = key.tenant_id;
    store.create_key(hash, key).await?;
    // What the SQL endpoint's SCRAM login checks a proof against (the secret is not kept).
    store
        .set_key_scram(hash, crate::sql::scram::verifier(&secret, tenant_id))
        .await?;
    let id = key_id(&hash);
    audit(store, tenant_id, actor, "key_created", Some(&id), detail).await?;
    Ok((secret, id))
}

/// What it takes to add a user (from `dialboard user add` or `POST /api/v1/users`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: String,
    pub agent_id: Option<String>,
    #[serde(default)]
    pub teams: Vec<String>,
}

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer passwords are refused before hashing: argon2 over megabytes costs CPU for nothing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Passwords that head every leaked-password list, lowercased (one a line).
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Why a new password is refused, if it is: too short or long, on the bundled list of common
/// passwords (also with digits appended: `password1`), one character or a few repeated
/// (`aaaaaaaa`, `abababab`), a run of the keyboard or the alphabet (`12345678`), or the
/// user's own e-mail.
pub fn password_problem(password: &str, email: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Some(format!("must have at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Some(format!("must have at most {MAX_PASSWORD_BYTES} bytes"));
    }
    let lower = password.to_lowercase();
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit());
    let common = |p: &str| COMMON_PASSWORDS.lines().any(|c| c == p);
    if common(&lower) || (!stem.is_empty() && common(stem)) {
        return Some("is one of the most common passwords; choose another".into());
    }
    let mut distinct: Vec<char> = lower.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Some("repeats too few different characters".into());
    }
    let chars: Vec<u32> = lower.chars().map(u32::from).collect();
    let step = chars[1].wrapping_sub(chars[0]);
    if (step == 1 || step == u32::MAX) && chars.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step) {
        return Some("is a run of consecutive characters".into());
    }
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || (local.chars().count() >= 4 && lower.contains(local)) {
        return Some("must not contain the e-mail address".into());
    }
    None
}

/// Validates and adds a user. Field errors name the field; an e-mail already used in this
/// tenant is a `Conflict` (other tenants may use it too: they never learn of each other).
pub async fn create_user(
    store: &Arc<dyn Store>,
    tenant_id: i64,
    new: NewUser,
    actor: &str,
) -> Result<Result<User, Vec<FieldError>>, StoreError> {
    let mut errors = Vec::new();
    let email = new.email.trim().to_lowercase();
    if !valid_email(&email) {
        errors.push(FieldError::new(
            "email",
            "must be an e-mail address such as ana@example.com",
        ));
    }
    if let Some(problem) = password_problem(&new.password, &email) {
        errors.push(FieldError::new("password", problem));
    }
    let role = Role::parse(&new.role);
    match role {
        None => errors.push(FieldError::new(
            "role",
            format!("must be one of {}", Role::NAMES.join(", ")),
        )),
        Some(Role::Agent) if new.agent_id.as_deref().is_none_or(str::is_empty) => {
            errors.push(FieldError::new("agent_id", "is required for the agent role"))
        }
        Some(Role::Manager) if new.teams.is_empty() => {
            errors.push(FieldError::new("teams", "a manager needs at least one team"))
        }
        _ => {}
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let user = User {
        id: generate_secret("usr")[..20].to_string(),
        tenant_id,
        email,
        role: role.expect("validated"),
        agent_id: new.agent_id,
        teams: new.teams,
        created_at: jiff::Timestamp::now().as_second(),
    };
    let password = new.password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?;
    store.create_user(user.clone(), hash).await?;
    let detail = json!({"email": user.email, "role": user.role, "agent_id": user.agent_id, "teams": user.teams});
    audit(store, tenant_id, actor, "user_created", Some(&user.id), detail).await?;
    Ok(Ok(user))
}

/// Gives `user` a new password if the policy ([`password_problem`]) accepts it, else the
/// problem under `field` (the request's name for the new password). Every session of the
/// user but `keep_session` ends; the change is audited as `action` by `actor`.
pub async fn set_user_password(
    store: &Arc<dyn Store>,
    user: &User,
    password: String,
    field: &str,
    keep_session: Option<[u8; 32]>,
    (actor, action): (&str, &str),
) -> Result<Result<(), Vec<FieldError>>, StoreError> {
    if let Some(problem) = password_problem(&password, &user.email) {
        return Ok(Err(vec![FieldError::new(field, problem)]));
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?;
    if !store.set_password(user.tenant_id, &user.id, hash, keep_session).await? {
        return Err(StoreError::NotFound);
    }
    let detail = json!({"other_sessions_ended": true});
    audit(store, user.tenant_id, actor, action, Some(&user.id), detail).await?;
    Ok(Ok(()))
}

/// A plausible e-mail address of at most 254 bytes (RFC 5321's limit).
pub fn valid_email(e: &str) -> bool {
    if e.len() > 254 {
        return false;
    }
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let phc = hash_password("correct horse");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsf", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, b) = (generate_secret("dbk"), generate_secret("dbk"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }

    #[test]
    fn weak_passwords_are_refused() {
        for weak in [
            "short",
            "aaaaaaaa",
            "abababab",
            "password1",
            "Password2024",
            "qwertyuiop",
            "12345678",
            "hgfedcba",
            "ana.lopez-42",
        ] {
            assert!(password_problem(weak, "ana.lopez@example.com").is_some(), "{weak}");
        }
        for fine in ["correct horse battery", "password-1", "s3cret-passw0rd"] {
            assert_eq!(password_problem(fine, "ana@example.com"), None, "{fine}");
        }
        assert!(password_problem(&"x1".repeat(600), "ana@example.com").is_some());
    }

    #[test]
    fn emails() {
        assert!(valid_email("ana@example.com"));
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@localhost",
            "a na@example.com",
            "ana@exa\0mple.com",
            format!("{}@example.com", "a".repeat(250)).as_str(),
        ] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }
}
