//! Who may do what: users, sessions, API key metadata, rate limits and the audit log, as the
//! stores keep them. Secrets are never stored: keys and session tokens as SHA-256, passwords
//! as argon2 hashes (made by the server).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    Agent,
    Viewer,
}

impl Role {
    pub const NAMES: [&'static str; 4] = ["admin", "manager", "agent", "viewer"];

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "manager" => Role::Manager,
            "agent" => Role::Agent,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A user as the API shows it (never with the password hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: i64,
    pub email: String,
    pub role: Role,
    /// The agent whose data an `agent` user sees as their own.
    pub agent_id: Option<String>,
    /// A manager's teams; an agent's own team(s).
    pub teams: Vec<String>,
    pub created_at: i64,
}

/// Requests per second and burst of one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// A credential's rate limits (SPEC §8 defaults: ingest 1,000/s with bursts of 2,000;
/// everything else 50/s with bursts of 100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimits {
    pub ingest: Rate,
    pub other: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            ingest: Rate {
                per_second: 1000.0,
                burst: 2000.0,
            },
            other: Rate {
                per_second: 50.0,
                burst: 100.0,
            },
        }
    }
}

/// An API key's metadata, as listed (the secret is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyInfo {
    /// A public handle: the first 16 hex digits of the key's hash.
    pub id: String,
    pub name: Option<String>,
    pub scopes: Vec<crate::Scope>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub rate_limits: Option<RateLimits>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The public id of a key hash.
pub fn key_id(hash: &[u8; 32]) -> String {
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One audit record: who did what to what, when (seconds), with details that never include a
/// secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}
