//! `GET /api/v1/live` (WebSocket) and `GET /api/v1/live/sse` (Server-Sent Events): SPEC §6.
//! Both are thin transports over a [`crate::live::Connection`]; the hub decides what is sent.

use super::auth::LivePrincipal;
use super::error::ApiError;
use super::AppState;
use crate::live::{Connection, LiveScope};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use dialboard_store::Scope;
use futures_util::{SinkExt, Stream};
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// WebSocket close code "policy violation", sent with the reason when a client is dropped.
const CLOSE_TOO_SLOW: u16 = 1008;

/// A live feed item: a status change, a pipeline step, a call … (`kind`), when, whose.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ActivityItem {
    pub kind: String,
    /// RFC 3339.
    pub at: String,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub campaign_id: Option<String>,
    /// The event's own fields.
    #[schema(value_type = std::collections::BTreeMap<String, serde_json::Value>)]
    pub detail: serde_json::Value,
}

/// A message of the live stream (SPEC §6), by `type`. Messages about a scope name it
/// (`scope`: tenant, team, agent or campaign, and `scope_id`). The client sends
/// `{"type": "subscribe" | "unsubscribe", "scope", "scope_id"}` over the WebSocket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)]
pub enum LiveMessage {
    /// Today's numbers of a scope moved.
    MetricUpdate {
        scope: String,
        scope_id: Option<String>,
        metrics: dialboard_views::Measures,
        /// RFC 3339.
        timestamp: String,
    },
    /// New feed items, newest first; `omitted` more were left out.
    Activity {
        scope: String,
        scope_id: Option<String>,
        items: Vec<ActivityItem>,
        omitted: usize,
    },
    /// A badge awarded to or revoked from a rep.
    Badge {
        scope: String,
        scope_id: Option<String>,
        /// `awarded` or `revoked`.
        change: String,
        badge: String,
        name: String,
        agent_id: String,
        agent_name: String,
        period: String,
        at: String,
    },
    /// An alert fired or recovered (the event `/alerts/{id}/events` lists).
    Alert {
        scope: String,
        scope_id: Option<String>,
        alert_id: String,
        alert_name: String,
        /// `fired` or `recovered`.
        kind: String,
        at: String,
        measure: String,
        #[schema(required = true)]
        value: Option<f64>,
        threshold: f64,
    },
    /// A subscription is in place.
    Subscribed { scope: String, scope_id: Option<String> },
    Unsubscribed {
        scope: String,
        scope_id: Option<String>,
        was_subscribed: bool,
    },
    /// A client message was refused.
    Error { code: String, message: String },
    /// The server ends the stream (a full queue, shutting down).
    Close { reason: String },
}

pub async fn websocket(
    State(state): State<Arc<AppState>>,
    LivePrincipal(principal): LivePrincipal,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let connection = state.hub.connect(principal);
    Ok(upgrade.on_upgrade(move |socket| serve_socket(socket, connection)))
}

async fn serve_socket(mut socket: WebSocket, mut conn: Connection) {
    loop {
        tokio::select! {
            reason = &mut conn.kicked => {
                let frame = CloseFrame { code: CLOSE_TOO_SLOW, reason: reason.unwrap_or("closed").into() };
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(frame)))).await;
                return;
            }
            outgoing = conn.rx.recv() => {
                let Some(first) = outgoing else { return };
                // Whatever else is queued goes out in the same write.
                let mut batch = vec![first];
                while let Ok(next) = conn.rx.try_recv() {
                    batch.push(next);
                }
                // A stalled socket must not keep this task alive: the hub's kick ends it.
                tokio::select! {
                    sent = write_all(&mut socket, batch) => if sent.is_err() { return },
                    _ = &mut conn.kicked => return,
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => command(&conn, &text).await,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {} // pings are answered by the library; binary frames are ignored
            },
        }
    }
}

async fn write_all(socket: &mut WebSocket, batch: Vec<Utf8Bytes>) -> Result<(), axum::Error> {
    for text in batch {
        socket.feed(Message::Text(text)).await?;
    }
    socket.flush().await
}

#[derive(Deserialize)]
struct Command {
    #[serde(rename = "type")]
    kind: String,
    scope: String,
    scope_id: Option<String>,
}

/// A client message: `{"type": "subscribe" | "unsubscribe", "scope": ..., "scope_id": ...}`.
async fn command(conn: &Connection, text: &str) {
    let error = |code: &str, message: String| json!({"type": "error", "code": code, "message": message});
    let cmd: Command = match serde_json::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            let message = format!("expected {{\"type\": \"subscribe\"|\"unsubscribe\", \"scope\", \"scope_id\"}}: {e}");
            return conn.reply(error("invalid", message));
        }
    };
    let scope = match conn.resolve(&cmd.scope, cmd.scope_id.as_deref()).await {
        Ok(s) => s,
        Err(e) => return conn.reply(error(e.code.as_str(), e.message)),
    };
    match cmd.kind.as_str() {
        "subscribe" => conn.subscribe(scope).await,
        "unsubscribe" => {
            let was = conn.unsubscribe(&scope);
            conn.reply(json!({"type": "unsubscribed", "scope": scope.kind.as_str(), "scope_id": scope.id, "was_subscribed": was}));
        }
        other => conn.reply(error(
            "invalid",
            format!("type: unknown command '{other}' (subscribe, unsubscribe)"),
        )),
    }
}

/// `GET /api/v1/live/sse?scope=..&scope_id=..`: one scope per stream (the tenant's by default).
/// Every event's data is one message of the WebSocket protocol; a dropped stream ends with
/// `{"type": "close", "reason": ...}`.
pub async fn sse(
    State(state): State<Arc<AppState>>,
    LivePrincipal(principal): LivePrincipal,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal.require(Scope::Read)?;
    let conn = state.hub.connect(principal);
    let kind = params.get("scope").map_or("tenant", String::as_str);
    let scope: LiveScope = conn.resolve(kind, params.get("scope_id").map(String::as_str)).await?;
    conn.subscribe(scope).await;
    let stream = futures_util::stream::unfold(Some(conn), |conn| async move {
        let mut conn = conn?;
        tokio::select! {
            reason = &mut conn.kicked => {
                let reason = reason.unwrap_or("closed");
                Some((Ok(Event::default().data(json!({"type": "close", "reason": reason}).to_string())), None))
            }
            next = conn.rx.recv() => {
                let text = next?;
                Some((Ok(Event::default().data(text.as_str())), Some(conn)))
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
