//! Errors of the SQL endpoint as PostgreSQL reports them: a SQLSTATE code and a message that
//! says what to change. Internal details never reach the client (as in the HTTP API).

use crate::api::error::ApiError;
use axum::http::StatusCode;
use pgwire::error::{ErrorInfo, PgWireError};

#[derive(Debug, Clone, PartialEq)]
pub struct SqlError {
    pub code: &'static str,
    pub message: String,
}

/// SQLSTATE codes the endpoint answers with.
pub mod state {
    pub const SYNTAX: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const GROUPING: &str = "42803";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const INVALID_PARAMETER: &str = "22023";
    pub const INVALID_DATETIME: &str = "22007";
    pub const NOT_SUPPORTED: &str = "0A000";
    pub const READ_ONLY: &str = "25006";
    pub const PRIVILEGE: &str = "42501";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const QUERY_CANCELED: &str = "57014";
    pub const RATE_LIMITED: &str = "53400";
    pub const INTERNAL: &str = "XX000";
}

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> SqlError {
        SqlError {
            code,
            message: message.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> SqlError {
        SqlError::new(state::NOT_SUPPORTED, message)
    }

    pub fn read_only() -> SqlError {
        SqlError::new(
            state::READ_ONLY,
            "dialboard's SQL endpoint is read-only: send events and directory changes through the HTTP API",
        )
    }
}

impl From<ApiError> for SqlError {
    fn from(e: ApiError) -> SqlError {
        let code = match e.status() {
            StatusCode::FORBIDDEN => state::PRIVILEGE,
            StatusCode::UNAUTHORIZED => state::INVALID_PASSWORD,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => state::RATE_LIMITED,
            s if s.is_client_error() => state::INVALID_PARAMETER,
            _ => state::INTERNAL,
        };
        SqlError::new(code, e.message)
    }
}

impl From<SqlError> for PgWireError {
    fn from(e: SqlError) -> PgWireError {
        // A message is a C string on the wire: a NUL (from a client's bytes) would cut it short.
        let message = e.message.replace('\0', "\\0");
        PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), e.code.into(), message)))
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}
