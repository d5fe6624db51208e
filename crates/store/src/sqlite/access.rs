//! Users, sessions, key metadata and the audit log on SQLite (see `crate::access`).

use crate::access::{key_id, AuditEntry, KeyInfo, RateLimits, Role, User};
use crate::{ApiKey, Result, Scope, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

fn json_column<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn scopes(text: &str) -> Vec<Scope> {
    text.split(',').filter_map(Scope::parse).collect()
}

pub fn insert_key(conn: &Connection, hash: &[u8; 32], key: &ApiKey, now: i64) -> Result<()> {
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let limits = key
        .rate_limits
        .map(|l| serde_json::to_string(&l).expect("limits serialize"));
    conn.execute(
        "INSERT INTO api_keys (key_hash, tenant_id, scopes, agent_id, team_id, created_at, name, rate_limits) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            hash.as_slice(),
            key.tenant_id,
            scopes.join(","),
            key.agent_id,
            key.team_id,
            now,
            key.name,
            limits
        ],
    )?;
    Ok(())
}

pub fn key(conn: &Connection, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
    Ok(conn
        .prepare_cached(
            "SELECT tenant_id, scopes, agent_id, team_id, name, rate_limits FROM api_keys \
             WHERE key_hash = ?1 AND revoked_at IS NULL",
        )?
        .query_row([hash.as_slice()], |r| {
            Ok(ApiKey {
                tenant_id: r.get(0)?,
                scopes: scopes(&r.get::<_, String>(1)?),
                agent_id: r.get(2)?,
                team_id: r.get(3)?,
                name: r.get(4)?,
                rate_limits: json_column::<RateLimits>(r.get(5)?),
            })
        })
        .optional()?)
}

pub fn keys(conn: &Connection, tenant_id: i64) -> Result<Vec<KeyInfo>> {
    let mut stmt = conn.prepare(
        "SELECT key_hash, name, scopes, agent_id, team_id, rate_limits, created_at, revoked_at FROM api_keys \
         WHERE tenant_id = ?1 ORDER BY created_at, key_hash",
    )?;
    let rows = stmt.query_map([tenant_id], |r| {
        let hash: Vec<u8> = r.get(0)?;
        Ok(KeyInfo {
            id: key_id(hash.as_slice().try_into().expect("32-byte hash")),
            name: r.get(1)?,
            scopes: scopes(&r.get::<_, String>(2)?),
            agent_id: r.get(3)?,
            team_id: r.get(4)?,
            rate_limits: json_column(r.get(5)?),
            created_at: r.get(6)?,
            revoked_at: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn revoke_key(conn: &Connection, tenant_id: i64, id: &str, now: i64) -> Result<bool> {
    // The id is the hash's first 8 bytes in hex; compare on the stored hash's prefix.
    let prefix: Vec<u8> = match (0..id.len())
        .step_by(2)
        .map(|i| id.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    {
        Some(p) if p.len() == 8 => p,
        _ => return Ok(false),
    };
    let n = conn.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE tenant_id = ?1 AND substr(key_hash, 1, 8) = ?2 AND revoked_at IS NULL",
        params![tenant_id, prefix, now],
    )?;
    Ok(n > 0)
}

const USER_COLUMNS: &str = "tenant_id, id, email, role, agent_id, teams, created_at";

fn user_from_row(r: &Row) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        tenant_id: r.get(0)?,
        id: r.get(1)?,
        email: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        agent_id: r.get(4)?,
        teams: json_column(r.get(5)?).unwrap_or_default(),
        created_at: r.get(6)?,
    })
}

pub fn create_user(conn: &Connection, u: &User, password_hash: &str) -> Result<()> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE email = ?1)",
        [&u.email],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "email: '{}' is already registered",
            u.email
        )));
    }
    conn.execute(
        &format!("INSERT INTO users ({USER_COLUMNS}, password_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            u.tenant_id,
            u.id,
            u.email,
            u.role.as_str(),
            u.agent_id,
            serde_json::to_string(&u.teams).expect("teams serialize"),
            u.created_at,
            password_hash
        ],
    )?;
    Ok(())
}

pub fn user_by_email(conn: &Connection, email: &str) -> Result<Option<(User, String)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?1"
        ))?
        .query_row([email], |r| Ok((user_from_row(r)?, r.get(7)?)))
        .optional()?)
}

pub fn users(conn: &Connection, tenant_id: i64) -> Result<Vec<User>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = ?1 ORDER BY email"
    ))?;
    let rows = stmt.query_map([tenant_id], user_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_user(conn: &mut Connection, tenant_id: i64, user_id: &str, now: i64) -> Result<bool> {
    let tx = conn.transaction()?;
    let n = tx.execute(
        "DELETE FROM users WHERE tenant_id = ?1 AND id = ?2",
        params![tenant_id, user_id],
    )?;
    tx.execute(
        "UPDATE sessions SET revoked_at = ?3 WHERE tenant_id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![tenant_id, user_id, now],
    )?;
    tx.commit()?;
    Ok(n > 0)
}

pub fn create_session(conn: &Connection, hash: &[u8; 32], user: &User, now: i64, expires_at: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO sessions (token_hash, tenant_id, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![hash.as_slice(), user.tenant_id, user.id, now, expires_at],
    )?;
    Ok(())
}

pub fn session(conn: &Connection, hash: &[u8; 32], now: i64) -> Result<Option<User>> {
    let columns = USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {columns} FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id \
             WHERE s.token_hash = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2"
        ))?
        .query_row(params![hash.as_slice(), now], user_from_row)
        .optional()?)
}

pub fn revoke_session(conn: &Connection, hash: &[u8; 32], now: i64) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL",
        params![hash.as_slice(), now],
    )?;
    Ok(())
}

pub fn audit(conn: &Connection, tenant_id: i64, e: &AuditEntry) -> Result<()> {
    conn.execute(
        "INSERT INTO audit (tenant_id, seq, at, actor, action, target, detail) \
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM audit WHERE tenant_id = ?1), ?2, ?3, ?4, ?5, ?6)",
        params![tenant_id, e.at, e.actor, e.action, e.target, e.detail.to_string()],
    )?;
    Ok(())
}

pub fn audit_log(
    conn: &Connection,
    tenant_id: i64,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<(i64, AuditEntry)>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, target, detail FROM audit WHERE tenant_id = ?1 AND seq < ?2 \
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![tenant_id, before.unwrap_or(i64::MAX), limit as i64], |r| {
        Ok((
            r.get(0)?,
            AuditEntry {
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: json_column(r.get(5)?).unwrap_or_default(),
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
