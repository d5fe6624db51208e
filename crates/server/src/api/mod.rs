//! The HTTP API (SPEC §5). [`app`] builds the router, so tests drive the real thing.

pub mod admin;
pub mod analytics;
pub mod auth;
pub mod directory;
pub mod error;
pub mod events;
pub mod live;
pub mod ops;
pub mod query;
pub mod session;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
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
        .route("/analytics/metrics", get(analytics::metrics))
        .route("/analytics/call-metrics", get(analytics::call_metrics))
        .route("/analytics/dispositions", get(analytics::dispositions))
        .route("/analytics/agent-scorecard/{agent_id}", get(analytics::scorecard))
        .route(
            "/analytics/team-leaderboard/{team_id}",
            get(analytics::team_leaderboard),
        )
        .route("/analytics/leaderboard", get(analytics::tenant_leaderboard))
        .route("/analytics/call-time-heatmap", get(analytics::heatmap))
        .route("/analytics/trends/{agent_id}", get(analytics::trends))
        .route("/analytics/pipeline-funnel", get(analytics::pipeline_funnel))
        .route("/analytics/lead-sources", get(analytics::lead_sources))
        .route("/analytics/conversion-funnel", get(analytics::conversion_funnel))
        .route("/analytics/lead-volume", get(analytics::lead_volume))
        .route("/analytics/intents", get(analytics::intents))
        .route("/analytics/channels", get(analytics::channels))
        .route("/analytics/campaigns/{id}", get(analytics::campaign))
        .route("/analytics/coaching-opportunities/{team_id}", get(analytics::coaching))
        .route("/analytics/compliance", get(analytics::compliance))
        .route("/settings", get(directory::get_settings).put(directory::put_settings))
        // agents, teams, campaigns (anything else is a 404)
        .route("/{collection}", get(directory::list))
        .route("/{collection}/{id}", put(directory::put).delete(directory::remove))
        .fallback(|| async { error::ApiError::not_found("no such endpoint") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}
