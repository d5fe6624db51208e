//! One error type for every handler: it knows its status and stable code; internal details
//! are logged, never sent. Every code the API answers with is in [`Code`]'s table, with its
//! status, so the same failure has the same code on every endpoint.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dialboard_engine::FieldError;
use dialboard_store::StoreError;
use dialboard_views::ViewError;
use serde_json::json;

/// Declares [`Code`]: each variant with its HTTP status and its code on the wire.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $status:ident, $code:literal;)*) => {
        /// Every error code of the API, with its status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// The whole table, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// A body or parameter that cannot be read at all.
    BadRequest => BAD_REQUEST, "bad_request";
    /// Fields or parameters with a wrong value, each named (queries, views, drill-downs,
    /// exports: whatever the endpoint).
    InvalidRequest => BAD_REQUEST, "invalid_request";
    InvalidSettings => BAD_REQUEST, "invalid_settings";
    InvalidReport => BAD_REQUEST, "invalid_report";
    InvalidDashboard => BAD_REQUEST, "invalid_dashboard";
    InvalidSchedule => BAD_REQUEST, "invalid_schedule";
    InvalidEntry => BAD_REQUEST, "invalid_entry";
    InvalidId => BAD_REQUEST, "invalid_id";
    InvalidUser => BAD_REQUEST, "invalid_user";
    InvalidKey => BAD_REQUEST, "invalid_key";
    InvalidPassword => BAD_REQUEST, "invalid_password";
    InvalidLoginRequest => BAD_REQUEST, "invalid_login_request";
    InvalidScope => BAD_REQUEST, "invalid_scope";
    InvalidWebhook => BAD_REQUEST, "invalid_webhook";
    InvalidAlert => BAD_REQUEST, "invalid_alert";
    Unauthorized => UNAUTHORIZED, "unauthorized";
    InvalidLogin => UNAUTHORIZED, "invalid_login";
    Forbidden => FORBIDDEN, "forbidden";
    NotFound => NOT_FOUND, "not_found";
    Conflict => CONFLICT, "conflict";
    /// An export asked for before it has succeeded.
    NotReady => CONFLICT, "not_ready";
    /// An export's file past its expiry.
    Expired => GONE, "expired";
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "payload_too_large";
    TooManyEvents => PAYLOAD_TOO_LARGE, "too_many_events";
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type";
    /// A query past its budget: narrow it.
    QueryTooLarge => UNPROCESSABLE_ENTITY, "query_too_large";
    RateLimited => TOO_MANY_REQUESTS, "rate_limited";
    TooManyQueries => TOO_MANY_REQUESTS, "too_many_queries";
    Internal => INTERNAL_SERVER_ERROR, "internal";
    ShuttingDown => SERVICE_UNAVAILABLE, "shutting_down";
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub fields: Vec<FieldError>,
    /// Seconds for a `Retry-After` header (429s).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
        }
    }

    /// Fields with wrong values, each named, under `code` (a 400).
    pub fn invalid(code: Code, fields: Vec<FieldError>) -> Self {
        let message = fields.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ");
        ApiError {
            fields,
            ..ApiError::new(code, message)
        }
    }

    /// One parameter with a wrong value.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(Code::InvalidRequest, vec![FieldError::new(field, message)])
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::Invalid(fields) => ApiError::invalid(Code::InvalidRequest, fields),
            ViewError::Forbidden(message) => ApiError::new(Code::Forbidden, message),
            ViewError::Store(e) => e.into(),
            ViewError::Internal(detail) => {
                tracing::error!(%detail, "view error");
                ApiError::new(Code::Internal, "internal error")
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("not found"),
            StoreError::Conflict(m) => ApiError::new(Code::Conflict, m),
            StoreError::Invalid(m) => ApiError::bad_request(m),
            StoreError::TooLarge(m) => ApiError::new(Code::QueryTooLarge, m),
            StoreError::Closed => ApiError::new(Code::ShuttingDown, "the server is shutting down"),
            StoreError::Database(detail) => {
                tracing::error!(%detail, "store error");
                ApiError::new(Code::Internal, "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if !self.fields.is_empty() {
            error["fields"] = json!(self.fields);
        }
        let mut response = (self.status(), Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// A request body, read with the rejections (too large, unreadable) answered in the API's
/// error shape rather than axum's plain text.
pub struct Body(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        Code::PayloadTooLarge,
                        "the body is too large: events take at most 10 MiB, a login 16 KiB, other requests 2 MiB",
                    )
                } else {
                    ApiError::bad_request(e.body_text())
                }
            })
    }
}

/// Parses a JSON body into `T`; a body that does not fit is a 400 saying why.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not a valid request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_listed_once_with_an_error_status() {
        let names: HashSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len(), "a code's name is used once");
        for code in Code::ALL {
            let status = code.status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code:?}: {status}"
            );
        }
        // The failures every endpoint shares answer alike wherever they happen.
        assert_eq!(ApiError::invalid_field("date", "x").code, Code::InvalidRequest);
        let view: ApiError = ViewError::invalid("date", "x").into();
        assert_eq!(
            (view.code, view.status()),
            (Code::InvalidRequest, StatusCode::BAD_REQUEST)
        );
        let forbidden: ApiError = ViewError::Forbidden("filters.team".into()).into();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        let bug: ApiError = ViewError::Internal("measures: unknown".into()).into();
        assert_eq!(
            (bug.status(), bug.message.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        );
    }
}

/// A problem with one field of a request (a `FieldError` as the API shows it).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FieldProblem {
    /// The field's path (`talk_seconds`, `range.start`, `sharing.users[1]`).
    pub field: String,
    pub message: String,
}
