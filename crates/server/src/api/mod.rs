//! The HTTP API (SPEC §5). [`app`] builds the router, so tests drive the real thing.

pub mod auth;
pub mod error;
pub mod events;
pub mod ops;
pub mod query;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use dialboard_store::Store;
use std::sync::Arc;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: auth::KeyCache,
    pub metrics: ops::ServerMetrics,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            keys: auth::KeyCache::default(),
            metrics: ops::ServerMetrics::default(),
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
        .fallback(|| async { error::ApiError::not_found("no such endpoint") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}
