//! Operations: liveness, readiness and Prometheus metrics.

use super::error::ApiError;
use super::guard::MetricsAccess;
use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use dialboard_store::LatencyHistogram;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Default)]
pub struct ServerMetrics {
    pub events_accepted: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub events_rejected: AtomicU64,
    pub query_latency: LatencyHistogram,
    /// The SQL endpoint's counters (`serve --sql-listen`).
    pub sql: Arc<crate::sql::SqlMetrics>,
    /// The `[[sources]]` consumers' counters and lag.
    pub sources: crate::sources::Registry,
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.store.ready().await?;
    Ok("ready")
}

pub async fn metrics(State(state): State<Arc<AppState>>, _: MetricsAccess) -> impl IntoResponse {
    let m = &state.metrics;
    let mut out = String::new();
    for (name, help, v) in [
        (
            "dialboard_events_accepted_total",
            "Events accepted and stored.",
            &m.events_accepted,
        ),
        (
            "dialboard_events_duplicate_total",
            "Events ignored as duplicates of a known id.",
            &m.events_duplicate,
        ),
        (
            "dialboard_events_rejected_total",
            "Events rejected by validation.",
            &m.events_rejected,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Relaxed)
        );
    }
    let store = state.store.metrics();
    store.commit_latency.render(
        "dialboard_commit_duration_seconds",
        "Time of one ingest transaction (group commit).",
        &mut out,
    );
    let batches = store.batches_per_commit.load(Relaxed);
    let _ = writeln!(
        out,
        "# HELP dialboard_committed_batches_total Ingest requests committed.\n# TYPE dialboard_committed_batches_total counter\ndialboard_committed_batches_total {batches}"
    );
    m.query_latency
        .render("dialboard_query_duration_seconds", "Time to answer a query.", &mut out);
    let _ = writeln!(
        out,
        "# HELP dialboard_live_subscribers Open live connections.\n# TYPE dialboard_live_subscribers gauge\ndialboard_live_subscribers {}\n\
         # HELP dialboard_live_dropped_total Live connections dropped for not reading their updates.\n# TYPE dialboard_live_dropped_total counter\ndialboard_live_dropped_total {}",
        state.hub.subscribers(),
        state.hub.dropped()
    );
    m.sql.render(&mut out);
    m.sources.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
