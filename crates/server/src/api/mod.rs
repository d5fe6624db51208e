//! The HTTP API (SPEC §5). [`app`] builds the router, so tests drive the real thing.

pub mod admin;
pub mod auth;
pub mod error;
pub mod events;
pub mod live;
pub mod ops;
pub mod query;
pub mod session;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use dialboard_store::access::RateLimits;
use dialboard_store::Store;
use std::sync::Arc;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: auth::KeyCache,
    pub metrics: ops::ServerMetrics,
    pub hub: Arc<crate::live::Hub>,
    pub limiter: auth::RateLimiter,
    /// Rate limits of credentials that set none of their own.
    pub rate_limits: RateLimits,
}

impl AppState {
    /// The state of a running server; starts the live hub on the current runtime.
    pub fn new(store: Arc<dyn Store>) -> Arc<AppState> {
        Self::with_live_queue(store, crate::live::QUEUE_CAPACITY)
    }

    /// A server whose live subscribers may have `queue` messages waiting (tests use few).
    pub fn with_live_queue(store: Arc<dyn Store>, queue: usize) -> Arc<AppState> {
        Arc::new(AppState {
            store: store.clone(),
            keys: auth::KeyCache::default(),
            metrics: ops::ServerMetrics::default(),
            hub: crate::live::Hub::start(store.clone(), queue),
            limiter: auth::RateLimiter::default(),
            rate_limits: RateLimits::default(),
        })
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(
            "/events",
            post(events::ingest).layer(DefaultBodyLimit::max(events::MAX_BODY_BYTES)),
        )
        .route("/query", post(query::query))
        .route("/calls", get(query::calls))
        .route("/calls/{call_id}", get(query::call))
        .route("/live", get(live::websocket))
        .route("/live/sse", get(live::sse))
        .route("/auth/login", post(session::login))
        .route("/auth/logout", post(session::logout))
        .route("/auth/me", get(session::me))
        .route("/users", get(admin::list_users).post(admin::add_user))
        .route("/users/{id}", delete(admin::delete_user))
        .route("/keys", get(admin::list_keys).post(admin::add_key))
        .route("/keys/{id}", delete(admin::revoke_key))
        .route("/audit", get(admin::audit_log))
        .fallback(|| async { error::ApiError::not_found("no such endpoint") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}
