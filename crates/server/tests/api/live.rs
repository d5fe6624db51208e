//! Live updates (SPEC §6) through a real WebSocket client and a real SSE stream.

use crate::helpers::{add_key, TestApp};
use dialboard_store::Scope;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn live_request(app: &TestApp, key: Option<&str>) -> Request {
    let mut req = format!("{}/api/v1/live", app.url.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    if let Some(key) = key {
        req.headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    req
}

pub async fn connect(app: &TestApp, key: &str) -> Ws {
    tokio_tungstenite::connect_async(live_request(app, Some(key)))
        .await
        .unwrap()
        .0
}

pub async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into())).await.unwrap();
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a live message within 10 s")
            .expect("the stream is open")
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Reads until a message matches; returns it and every message before it.
pub async fn wait_for(ws: &mut Ws, matches: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let m = next_json(ws).await;
        if matches(&m) {
            return (m, before);
        }
        before.push(m);
    }
}

fn update_of<'a>(m: &'a Value, scope: &str, id: &str) -> Option<&'a Value> {
    (m["type"] == "metric_update" && m["scope"] == scope && m["scope_id"] == id).then(|| &m["metrics"])
}

/// A call that started a moment ago, so it counts for today.
fn call_now(id: &str, agent: &str, disposition: &str, talk: i64) -> Value {
    json!({"id": id, "type": "call", "call_id": id, "agent_id": agent, "team_id": "t1", "campaign_id": "spring",
        "disposition": disposition, "started_at": jiff::Timestamp::now().to_string(), "talk_seconds": talk})
}

#[tokio::test]
async fn websocket_updates_carry_todays_totals_and_unsubscribe_stops_them() {
    let app = TestApp::spawn("UTC").await;
    let mut ws = connect(&app, &app.key).await;
    send(&mut ws, json!({"type": "subscribe", "scope": "tenant"})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "subscribed", "scope": "tenant", "scope_id": "acme"})
    );
    let initial = next_json(&mut ws).await;
    assert_eq!(
        update_of(&initial, "tenant", "acme").unwrap()["total_calls"],
        0,
        "{initial}"
    );
    send(
        &mut ws,
        json!({"type": "subscribe", "scope": "agent", "scope_id": "a1"}),
    )
    .await;
    let (agent_initial, _) = wait_for(&mut ws, |m| update_of(m, "agent", "a1").is_some()).await;
    assert_eq!(agent_initial["metrics"]["connect_rate"], Value::Null);

    app.events(json!([
        call_now("c1", "a1", "Connected", 100),
        call_now("c2", "a1", "No Answer", 0),
        call_now("c3", "a2", "Meeting Booked", 300),
    ]))
    .await;
    let a1_moved = |m: &Value| update_of(m, "agent", "a1").is_some_and(|x| x["total_calls"] == 2);
    let (tenant, before) = wait_for(&mut ws, |m| {
        update_of(m, "tenant", "acme").is_some_and(|x| x["total_calls"] == 3)
    })
    .await;
    let metrics = &tenant["metrics"];
    assert_eq!(metrics["connected_calls"], 2);
    assert_eq!(metrics["meetings_booked"], 1);
    assert_eq!(metrics["median_talk_time"], 200.0);
    assert!(tenant["timestamp"].as_str().unwrap().ends_with("+00:00"));
    // The same numbers as the query model gives for today.
    let (_, q) = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls", "connect_rate"], "range": {"preset": "today"}}),
        )
        .await;
    assert_eq!(metrics["connect_rate"], q["totals"]["connect_rate"]);
    // The scopes of one round arrive in any order.
    let agent = match before.into_iter().find(a1_moved) {
        Some(m) => m,
        None => wait_for(&mut ws, a1_moved).await.0,
    };
    assert_eq!(agent["metrics"]["connect_rate"], 50.0);

    send(&mut ws, json!({"type": "unsubscribe", "scope": "tenant"})).await;
    wait_for(&mut ws, |m| m["type"] == "unsubscribed").await;
    // a2's call moves the tenant's numbers only; a1's next call is the first thing we hear of.
    app.events(json!([call_now("c4", "a2", "Busy", 0)])).await;
    app.events(json!([call_now("c5", "a1", "Interested", 40)])).await;
    let (agent, before) = wait_for(&mut ws, |m| {
        update_of(m, "agent", "a1").is_some_and(|x| x["total_calls"] == 3)
    })
    .await;
    assert_eq!(agent["metrics"]["connected_calls"], 2);
    assert!(
        before.iter().all(|m| m["scope"] != "tenant"),
        "updates after unsubscribe: {before:?}"
    );
}

#[tokio::test]
async fn activity_feed_reports_calls_meetings_and_statuses() {
    let app = TestApp::spawn("UTC").await;
    let mut ws = connect(&app, &app.key).await;
    send(&mut ws, json!({"type": "subscribe", "scope": "team", "scope_id": "t1"})).await;
    app.events(json!([
        call_now("c1", "a1", "Meeting Booked", 200),
        call_now("c2", "a1", "Voicemail", 0),
        {"id": "s1", "type": "agent_status", "agent_id": "a1", "status": "on_call", "at": jiff::Timestamp::now().to_string()},
    ]))
    .await;
    let (feed, _) = wait_for(&mut ws, |m| m["type"] == "activity").await;
    let kinds: Vec<&str> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["meeting_booked", "call_ended"],
        "a status change carries no team: {feed}"
    );
    assert_eq!(feed["items"][0]["detail"]["disposition"], "Meeting Booked");

    send(
        &mut ws,
        json!({"type": "subscribe", "scope": "agent", "scope_id": "a1"}),
    )
    .await;
    app.events(json!([
        {"id": "s2", "type": "agent_status", "agent_id": "a1", "status": "wrap_up", "at": jiff::Timestamp::now().to_string()}
    ]))
    .await;
    let (feed, _) = wait_for(&mut ws, |m| m["type"] == "activity" && m["scope"] == "agent").await;
    assert_eq!(feed["items"][0]["kind"], "status_changed");
    assert_eq!(feed["items"][0]["detail"]["status"], "wrap_up");

    // Once the directory puts a1 in t1, their statuses and pipeline steps are t1's feed too.
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/agents/a1",
            &app.key,
            Some(&json!({"name": "A", "team_id": "t1"})),
        )
        .await;
    assert_eq!(status, 200);
    let now = jiff::Timestamp::now().to_string();
    app.events(json!([
        {"id": "s3", "type": "agent_status", "agent_id": "a1", "status": "idle", "at": now},
        {"id": "p1", "type": "lead_stage", "contact_id": "p1", "stage": "meeting_booked", "agent_id": "a1", "at": now},
    ]))
    .await;
    let (feed, _) = wait_for(&mut ws, |m| m["type"] == "activity" && m["scope"] == "team").await;
    let kinds: Vec<&str> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["status_changed", "stage_changed"], "{feed}");
    assert_eq!(feed["items"][0]["team_id"], "t1");
}

#[tokio::test]
async fn server_sent_events_stream_the_same_messages() {
    let app = TestApp::spawn("UTC").await;
    let mut response = app
        .client
        .get(format!(
            "{}/api/v1/live/sse?scope=campaign&scope_id=spring&access_token={}",
            app.url, app.key
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    app.events(json!([
        call_now("c1", "a1", "Connected", 60),
        call_now("c2", "a2", "Busy", 0)
    ]))
    .await;
    let mut text = String::new();
    let update = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an SSE event within 10 s")
            .unwrap()
            .expect("the stream is open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        let found = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .find(|m| update_of(m, "campaign", "spring").is_some_and(|x| x["total_calls"] == 2));
        if let Some(m) = found {
            break m;
        }
    };
    assert_eq!(update["metrics"]["connect_rate"], 50.0);
}

#[tokio::test]
async fn upgrades_need_a_key_and_scopes_follow_the_credential() {
    let app = TestApp::spawn("UTC").await;
    // No key, an unknown key, a key without `read`: refused before the upgrade.
    for (key, status) in [(None, 401), (Some("dbk_nope"), 401)] {
        match tokio_tungstenite::connect_async(live_request(&app, key)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), status),
            other => panic!("expected HTTP {status}, got {:?}", other.map(|_| ())),
        }
    }
    let ingest_only = add_key(&app.store, app.tenant_id, vec![Scope::Ingest], None).await;
    match tokio_tungstenite::connect_async(live_request(&app, Some(&ingest_only))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
    }
    let sse = app
        .client
        .get(format!("{}/api/v1/live/sse", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 401);

    // An agent-bound key watches itself and the tenant's aggregate, not another agent.
    let a1 = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    let mut ws = connect(&app, &a1).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "scope": "agent", "scope_id": "a2"}),
    )
    .await;
    let refused = next_json(&mut ws).await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    send(
        &mut ws,
        json!({"type": "subscribe", "scope": "campaign", "scope_id": "spring"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["code"], "forbidden");
    send(
        &mut ws,
        json!({"type": "subscribe", "scope": "tenant", "scope_id": "other"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["code"], "forbidden");
    send(&mut ws, json!({"type": "subscribe", "scope": "galaxy"})).await;
    let invalid = next_json(&mut ws).await;
    assert!(invalid["message"].as_str().unwrap().starts_with("scope:"), "{invalid}");
    send(&mut ws, json!({"type": "subscribe", "scope": "tenant"})).await;
    wait_for(&mut ws, |m| update_of(m, "tenant", "acme").is_some()).await;
    // Feed items about other agents are withheld from it; its own come through.
    app.events(json!([call_now("c1", "a2", "Connected", 30)])).await;
    app.events(json!([call_now("c2", "a1", "Busy", 0)])).await;
    let (feed, _) = wait_for(&mut ws, |m| m["type"] == "activity").await;
    let agents: Vec<&Value> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["agent_id"])
        .collect();
    assert_eq!(agents, [&json!("a1")], "{feed}");
}

#[tokio::test]
async fn another_tenants_events_never_reach_a_subscriber() {
    let app = TestApp::spawn("UTC").await;
    let (_, other_key) = app.other_tenant("globex", false).await;
    let mut ws = connect(&app, &other_key).await;
    send(&mut ws, json!({"type": "subscribe", "scope": "tenant"})).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "scope": "agent", "scope_id": "a1"}),
    )
    .await;
    app.events(json!([
        call_now("c1", "a1", "Connected", 30),
        call_now("c2", "a1", "Busy", 0)
    ]))
    .await;
    let (status, _) = app
        .post("/api/v1/events", &other_key, &json!([call_now("g1", "a9", "Busy", 0)]))
        .await;
    assert_eq!(status, 200);
    let (update, before) = wait_for(&mut ws, |m| {
        update_of(m, "tenant", "globex").is_some_and(|x| x["total_calls"] != 0)
    })
    .await;
    assert_eq!(update["metrics"]["total_calls"], 1, "only globex's own call");
    for m in &before {
        for item in m["items"].as_array().into_iter().flatten() {
            assert_eq!(item["detail"]["call_id"], "g1", "no feed item of acme: {m}");
        }
        if let Some(x) = update_of(m, "agent", "a1") {
            assert_eq!(x["total_calls"], 0, "acme's a1 is not globex's a1");
        }
    }
}

#[tokio::test]
async fn a_stalled_client_is_dropped_while_others_keep_receiving() {
    let app = TestApp::spawn_with_live_queue("UTC", 64).await;
    // A client with a tiny receive window that subscribes and then never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = app.url.trim_start_matches("http://").parse().unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut stalled, _) =
        tokio_tungstenite::client_async(live_request(&app, Some(&app.key)), MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    // It watches many agents, so every round owes it many messages.
    for agent in 0..200 {
        send(
            &mut stalled,
            json!({"type": "subscribe", "scope": "agent", "scope_id": format!("a{agent}")}),
        )
        .await;
    }

    let mut healthy = connect(&app, &app.key).await;
    send(&mut healthy, json!({"type": "subscribe", "scope": "tenant"})).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let m = next_json(&mut healthy).await;
            if let Some(x) = update_of(&m, "tenant", "acme") {
                let _ = seen_tx.send(x["total_calls"].as_i64().unwrap());
            }
        }
    });

    let dropped = || async {
        let text = app
            .client
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().any(|l| l == "dialboard_live_dropped_total 1")
    };
    let mut sent = 0;
    for batch in 0..1000 {
        let calls: Vec<Value> = (0..200)
            .map(|i| call_now(&format!("b{batch}-{i}"), &format!("a{i}"), "Busy", 0))
            .collect();
        app.events(Value::Array(calls)).await;
        sent += 200;
        if batch % 10 == 9 && dropped().await {
            break;
        }
    }
    assert!(dropped().await, "the stalled client was not dropped after {sent} calls");
    app.events(json!([call_now("last", "a2", "Connected", 10)])).await;
    sent += 1;
    loop {
        let total = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("healthy client updated")
            .unwrap();
        if total == sent {
            break;
        }
    }
    // Once it reads again, the stalled client finds its connection ended.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stalled.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.reason.to_string()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled connection was not closed");
}
