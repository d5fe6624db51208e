//! Tenants, API keys, users, sessions, the audit log and the directory: the same statements on
//! both databases (see `sql.rs`). Each store runs them on its own connections.

use crate::access::{key_id, AuditEntry, KeyInfo, RateLimits, Role, User};
use crate::sql::{Row, Sql};
use crate::{ApiKey, DirectoryKind, Result, Scope, StoreError, TenantSettings};
use dialboard_engine::query::AgentTeams;
use serde_json::Value;
use std::collections::HashMap;

fn json_column<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn invalid_json(e: serde_json::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn scopes(text: &str) -> Vec<Scope> {
    text.split(',').filter_map(Scope::parse).collect()
}

/// A tenant's row: id, name and settings.
pub type TenantRow = (i64, String, TenantSettings);

fn tenant_from_row(r: &Row) -> Result<TenantRow> {
    Ok((
        r.int(0)?,
        r.text(1)?,
        serde_json::from_str(&r.text(2)?).map_err(invalid_json)?,
    ))
}

/// Creates a tenant; `Conflict` if the name is taken. Returns its id.
pub fn create_tenant(db: &mut impl Sql, name: &str, settings: &TenantSettings, now: i64) -> Result<i64> {
    if db
        .query_opt("SELECT id FROM tenants WHERE name = $1", &[name.into()])?
        .is_some()
    {
        return Err(StoreError::Conflict(format!("tenant '{name}' already exists")));
    }
    let json = serde_json::to_string(settings).expect("settings serialize");
    db.query(
        "INSERT INTO tenants (name, settings, created_at) VALUES ($1, $2, $3) RETURNING id",
        &[name.into(), json.into(), now.into()],
    )?
    .first()
    .ok_or_else(|| StoreError::Database("no id returned".into()))?
    .int(0)
}

pub fn tenant_by_name(db: &mut impl Sql, name: &str) -> Result<Option<TenantRow>> {
    db.query_opt("SELECT id, name, settings FROM tenants WHERE name = $1", &[name.into()])?
        .as_ref()
        .map(tenant_from_row)
        .transpose()
}

pub fn tenant_by_id(db: &mut impl Sql, id: i64) -> Result<Option<TenantRow>> {
    db.query_opt("SELECT id, name, settings FROM tenants WHERE id = $1", &[id.into()])?
        .as_ref()
        .map(tenant_from_row)
        .transpose()
}

pub fn tenant_ids(db: &mut impl Sql) -> Result<Vec<i64>> {
    db.query("SELECT id FROM tenants ORDER BY id", &[])?
        .iter()
        .map(|r| r.int(0))
        .collect()
}

pub fn update_settings(db: &mut impl Sql, tenant_id: i64, settings: &TenantSettings) -> Result<()> {
    let json = serde_json::to_string(settings).expect("settings serialize");
    db.execute(
        "UPDATE tenants SET settings = $1 WHERE id = $2",
        &[json.into(), tenant_id.into()],
    )?;
    Ok(())
}

pub fn put_directory(
    db: &mut impl Sql,
    tenant_id: i64,
    kind: DirectoryKind,
    id: &str,
    body: &Value,
    now: i64,
) -> Result<()> {
    db.execute(
        "INSERT INTO directory (tenant_id, kind, id, body, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        &[
            tenant_id.into(),
            kind.as_str().into(),
            id.into(),
            body.to_string().into(),
            now.into(),
        ],
    )?;
    Ok(())
}

pub fn delete_directory(db: &mut impl Sql, tenant_id: i64, kind: DirectoryKind, id: &str) -> Result<bool> {
    let n = db.execute(
        "DELETE FROM directory WHERE tenant_id = $1 AND kind = $2 AND id = $3",
        &[tenant_id.into(), kind.as_str().into(), id.into()],
    )?;
    Ok(n > 0)
}

pub fn directory(db: &mut impl Sql, tenant_id: i64, kind: DirectoryKind) -> Result<Vec<(String, Value)>> {
    db.query(
        "SELECT id, body FROM directory WHERE tenant_id = $1 AND kind = $2 ORDER BY id",
        &[tenant_id.into(), kind.as_str().into()],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, serde_json::from_str(&r.text(1)?).map_err(invalid_json)?)))
    .collect()
}

/// The `team_id` of each agent in the directory, per tenant: of one tenant, or of all.
pub fn agent_teams(db: &mut impl Sql, tenant_id: Option<i64>) -> Result<HashMap<i64, AgentTeams>> {
    let rows = match tenant_id {
        Some(t) => db.query(
            "SELECT tenant_id, id, body FROM directory WHERE tenant_id = $1 AND kind = 'agent'",
            &[t.into()],
        )?,
        None => db.query("SELECT tenant_id, id, body FROM directory WHERE kind = 'agent'", &[])?,
    };
    let mut maps: HashMap<i64, AgentTeams> = HashMap::new();
    for r in rows {
        let body: Value = serde_json::from_str(&r.text(2)?).map_err(invalid_json)?;
        if let Some(team) = body.get("team_id").and_then(Value::as_str) {
            maps.entry(r.int(0)?).or_default().insert(r.text(1)?, team.to_string());
        }
    }
    Ok(maps)
}

pub fn insert_key(db: &mut impl Sql, hash: &[u8; 32], key: &ApiKey, now: i64) -> Result<()> {
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let limits = key
        .rate_limits
        .map(|l| serde_json::to_string(&l).expect("limits serialize"));
    db.execute(
        "INSERT INTO api_keys (key_hash, tenant_id, scopes, agent_id, team_id, created_at, name, rate_limits) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            hash.as_slice().into(),
            key.tenant_id.into(),
            scopes.join(",").into(),
            key.agent_id.clone().into(),
            key.team_id.clone().into(),
            now.into(),
            key.name.clone().into(),
            limits.into(),
        ],
    )?;
    Ok(())
}

pub fn key(db: &mut impl Sql, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
    let row = db.query_opt(
        "SELECT tenant_id, scopes, agent_id, team_id, name, rate_limits FROM api_keys \
         WHERE key_hash = $1 AND revoked_at IS NULL",
        &[hash.as_slice().into()],
    )?;
    row.map(|r| {
        Ok(ApiKey {
            tenant_id: r.int(0)?,
            scopes: scopes(&r.text(1)?),
            agent_id: r.opt_text(2)?,
            team_id: r.opt_text(3)?,
            name: r.opt_text(4)?,
            rate_limits: json_column::<RateLimits>(r.opt_text(5)?),
        })
    })
    .transpose()
}

/// Sets a key's SCRAM-SHA-256 verifier (`SCRAM-SHA-256$iterations:salt:StoredKey:ServerKey`).
pub fn set_key_scram(db: &mut impl Sql, hash: &[u8; 32], verifier: &str) -> Result<()> {
    db.execute(
        "INSERT INTO api_key_scram (key_hash, verifier) VALUES ($1, $2) \
         ON CONFLICT (key_hash) DO UPDATE SET verifier = excluded.verifier",
        &[hash.as_slice().into(), verifier.into()],
    )?;
    Ok(())
}

/// A tenant's live keys, each key's hash with its SCRAM verifier if it has one.
pub fn key_verifiers(db: &mut impl Sql, tenant_id: i64) -> Result<Vec<([u8; 32], Option<String>)>> {
    db.query(
        "SELECT k.key_hash, s.verifier FROM api_keys k LEFT JOIN api_key_scram s ON s.key_hash = k.key_hash \
         WHERE k.tenant_id = $1 AND k.revoked_at IS NULL",
        &[tenant_id.into()],
    )?
    .iter()
    .map(|r| Ok((r.bytes(0)?.as_slice().try_into().expect("32-byte hash"), r.opt_text(1)?)))
    .collect()
}

pub fn keys(db: &mut impl Sql, tenant_id: i64) -> Result<Vec<KeyInfo>> {
    db.query(
        "SELECT key_hash, name, scopes, agent_id, team_id, rate_limits, created_at, revoked_at FROM api_keys \
         WHERE tenant_id = $1 ORDER BY created_at, key_hash",
        &[tenant_id.into()],
    )?
    .iter()
    .map(|r| {
        let hash = r.bytes(0)?;
        Ok(KeyInfo {
            id: key_id(hash.as_slice().try_into().expect("32-byte hash")),
            name: r.opt_text(1)?,
            scopes: scopes(&r.text(2)?),
            agent_id: r.opt_text(3)?,
            team_id: r.opt_text(4)?,
            rate_limits: json_column(r.opt_text(5)?),
            created_at: r.int(6)?,
            revoked_at: r.opt_int(7)?,
        })
    })
    .collect()
}

pub fn revoke_key(db: &mut impl Sql, tenant_id: i64, id: &str, now: i64) -> Result<bool> {
    // The id is the hash's first 8 bytes in hex; compare on the stored hash's prefix.
    let prefix: Vec<u8> = match (0..id.len())
        .step_by(2)
        .map(|i| id.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    {
        Some(p) if p.len() == 8 => p,
        _ => return Ok(false),
    };
    let n = db.execute(
        "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND substr(key_hash, 1, 8) = $2 AND revoked_at IS NULL",
        &[tenant_id.into(), prefix.as_slice().into(), now.into()],
    )?;
    Ok(n > 0)
}

const USER_COLUMNS: &str = "tenant_id, id, email, role, agent_id, teams, created_at";

fn user_from_row(r: &Row) -> Result<User> {
    Ok(User {
        tenant_id: r.int(0)?,
        id: r.text(1)?,
        email: r.text(2)?,
        role: Role::parse(&r.text(3)?).unwrap_or(Role::Viewer),
        agent_id: r.opt_text(4)?,
        teams: json_column(r.opt_text(5)?).unwrap_or_default(),
        created_at: r.int(6)?,
    })
}

pub fn create_user(db: &mut impl Sql, u: &User, password_hash: &str) -> Result<()> {
    if db
        .query_opt(
            "SELECT 1 FROM users WHERE tenant_id = $1 AND email = $2",
            &[u.tenant_id.into(), u.email.as_str().into()],
        )?
        .is_some()
    {
        return Err(StoreError::Conflict(format!(
            "email: '{}' is already a user of this tenant",
            u.email
        )));
    }
    db.execute(
        &format!("INSERT INTO users ({USER_COLUMNS}, password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
        &[
            u.tenant_id.into(),
            u.id.as_str().into(),
            u.email.as_str().into(),
            u.role.as_str().into(),
            u.agent_id.clone().into(),
            serde_json::to_string(&u.teams).expect("teams serialize").into(),
            u.created_at.into(),
            password_hash.into(),
        ],
    )?;
    Ok(())
}

pub fn user_by_email(db: &mut impl Sql, tenant_id: i64, email: &str) -> Result<Option<(User, String)>> {
    db.query_opt(
        &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE tenant_id = $1 AND email = $2"),
        &[tenant_id.into(), email.into()],
    )?
    .map(|r| Ok((user_from_row(&r)?, r.text(7)?)))
    .transpose()
}

/// The users of any tenant with this e-mail, at most `limit`, by tenant.
pub fn users_by_email(db: &mut impl Sql, email: &str, limit: i64) -> Result<Vec<(User, String)>> {
    db.query(
        &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1 ORDER BY tenant_id LIMIT $2"),
        &[email.into(), limit.into()],
    )?
    .iter()
    .map(|r| Ok((user_from_row(r)?, r.text(7)?)))
    .collect()
}

pub fn users(db: &mut impl Sql, tenant_id: i64) -> Result<Vec<User>> {
    db.query(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email"),
        &[tenant_id.into()],
    )?
    .iter()
    .map(user_from_row)
    .collect()
}

/// Deletes a user and revokes their sessions (call it in a transaction).
pub fn delete_user(db: &mut impl Sql, tenant_id: i64, user_id: &str, now: i64) -> Result<bool> {
    let n = db.execute(
        "DELETE FROM users WHERE tenant_id = $1 AND id = $2",
        &[tenant_id.into(), user_id.into()],
    )?;
    db.execute(
        "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        &[tenant_id.into(), user_id.into(), now.into()],
    )?;
    Ok(n > 0)
}

/// Replaces a user's password hash and revokes their sessions but `keep` (the one changing its
/// own password stays signed in); `false` if the tenant has no such user. Call it in a
/// transaction.
pub fn set_password(
    db: &mut impl Sql,
    tenant_id: i64,
    user_id: &str,
    password_hash: &str,
    keep: Option<&[u8; 32]>,
    now: i64,
) -> Result<bool> {
    let n = db.execute(
        "UPDATE users SET password_hash = $3 WHERE tenant_id = $1 AND id = $2",
        &[tenant_id.into(), user_id.into(), password_hash.into()],
    )?;
    // No session hash is empty, so an empty `keep` keeps none.
    let keep = keep.map_or(&[][..], |k| k.as_slice());
    db.execute(
        "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL \
         AND token_hash <> $4",
        &[tenant_id.into(), user_id.into(), now.into(), keep.into()],
    )?;
    Ok(n > 0)
}

pub fn create_session(db: &mut impl Sql, hash: &[u8; 32], user: &User, now: i64, expires_at: i64) -> Result<()> {
    db.execute(
        "INSERT INTO sessions (token_hash, tenant_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            hash.as_slice().into(),
            user.tenant_id.into(),
            user.id.as_str().into(),
            now.into(),
            expires_at.into(),
        ],
    )?;
    Ok(())
}

pub fn session(db: &mut impl Sql, hash: &[u8; 32], now: i64) -> Result<Option<User>> {
    let columns = USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    db.query_opt(
        &format!(
            "SELECT {columns} FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2"
        ),
        &[hash.as_slice().into(), now.into()],
    )?
    .as_ref()
    .map(user_from_row)
    .transpose()
}

pub fn revoke_session(db: &mut impl Sql, hash: &[u8; 32], now: i64) -> Result<()> {
    db.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        &[hash.as_slice().into(), now.into()],
    )?;
    Ok(())
}

/// Appends to the tenant's audit log (call it in a transaction: the sequence is the next one).
pub fn audit(db: &mut impl Sql, tenant_id: i64, e: &AuditEntry) -> Result<()> {
    db.execute(
        "INSERT INTO audit (tenant_id, seq, at, actor, action, target, detail) \
         VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM audit WHERE tenant_id = $1), $2, $3, $4, $5, $6)",
        &[
            tenant_id.into(),
            e.at.into(),
            e.actor.as_str().into(),
            e.action.as_str().into(),
            e.target.clone().into(),
            e.detail.to_string().into(),
        ],
    )?;
    Ok(())
}

pub fn audit_log(
    db: &mut impl Sql,
    tenant_id: i64,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<(i64, AuditEntry)>> {
    db.query(
        "SELECT seq, at, actor, action, target, detail FROM audit WHERE tenant_id = $1 AND seq < $2 \
         ORDER BY seq DESC LIMIT $3",
        &[
            tenant_id.into(),
            before.unwrap_or(i64::MAX).into(),
            (limit as i64).into(),
        ],
    )?
    .iter()
    .map(|r| {
        Ok((
            r.int(0)?,
            AuditEntry {
                at: r.int(1)?,
                actor: r.text(2)?,
                action: r.text(3)?,
                target: r.opt_text(4)?,
                detail: json_column(r.opt_text(5)?).unwrap_or_default(),
            },
        ))
    })
    .collect()
}
