//! Two `dialboard serve` nodes (the real binary) on one PostgreSQL database, a throwaway
//! cluster: either node ingests and answers with the same numbers; a live update caused on one
//! reaches a subscriber on the other; a settings change on one is seen by the other; the
//! compaction job is gated by one advisory lock across nodes; an alert or a badge recorded by
//! one node reaches the live subscribers of both, once each.

use crate::process::{cli, free_port, last_line, spawn_server, wait_ready};
use dialboard_store::pg::{cluster::Cluster, Lock};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Node {
    url: String,
    process: std::process::Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn start_node(db: &str) -> Node {
    let port = free_port();
    let node = Node {
        url: format!("http://127.0.0.1:{port}"),
        process: spawn_server(db, port),
    };
    wait_ready(&node.url).await;
    node
}

fn calls_now(prefix: &str, n: usize) -> Value {
    let now = jiff::Timestamp::now().to_string();
    (0..n)
        .map(|i| {
            json!({"id": format!("{prefix}{i}"), "type": "call", "call_id": format!("{prefix}{i}"), "agent_id": "a1",
                "team_id": "t1", "disposition": if i % 2 == 0 { "Connected" } else { "No Answer" },
                "started_at": now, "talk_seconds": 30 + i})
        })
        .collect()
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> Value {
    let r = client.post(url).bearer_auth(key).json(body).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

async fn totals(client: &reqwest::Client, node: &Node, key: &str) -> Value {
    let q = json!({"measures": ["total_calls", "connected_calls", "median_talk_time"], "range": {"preset": "today"}});
    post(client, &format!("{}/api/v1/query", node.url), key, &q).await["totals"].clone()
}

/// Runs `job` on a connection of its own (off the test's runtime: the client runs its own).
fn on_db<T: Send + 'static>(db: &str, job: impl FnOnce(&mut postgres::Client) -> T + Send + 'static) -> T {
    let db = db.to_string();
    std::thread::spawn(move || job(&mut postgres::Client::connect(&db, postgres::NoTls).unwrap()))
        .join()
        .unwrap()
}

fn pending_deltas(db: &str) -> i64 {
    on_db(db, |c| {
        c.query_one("SELECT count(*) FROM cell_deltas", &[]).unwrap().get(0)
    })
}

/// A throwaway cluster (kept alive by the caller), a database on it, and the key of its tenant
/// `acme` in UTC.
async fn cluster_with_tenant() -> (Cluster, String, String) {
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(false).unwrap())
        .await
        .unwrap();
    let db = cluster.create_database().unwrap();
    let key = last_line(&cli(&db, &["tenant", "create", "acme", "--timezone", "UTC"]));
    (cluster, db, key)
}

#[tokio::test]
async fn two_nodes_share_one_postgres_database() {
    let (_cluster, db, key) = cluster_with_tenant().await;
    // Both nodes start together (they take turns to migrate).
    let (a, b) = tokio::join!(start_node(&db), start_node(&db));
    let client = reqwest::Client::new();

    // A subscriber on B hears of events ingested on A.
    let mut request = format!("{}/api/v1/live", b.url.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "subscribe", "scope": "tenant"}).to_string().into(),
    ))
    .await
    .unwrap();
    post(&client, &format!("{}/api/v1/events", a.url), &key, &calls_now("a", 10)).await;
    let update = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("B pushes an update within 10 s")
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let m: Value = serde_json::from_str(&text).unwrap();
        if m["type"] == "metric_update" && m["metrics"]["total_calls"] == 10 {
            break m;
        }
    };
    assert_eq!(update["metrics"]["connected_calls"], 5, "{update}");

    // Events ingested on either node; both answer alike.
    post(&client, &format!("{}/api/v1/events", b.url), &key, &calls_now("b", 7)).await;
    let (on_a, on_b) = (totals(&client, &a, &key).await, totals(&client, &b, &key).await);
    assert_eq!(on_a, on_b);
    assert_eq!(on_a["total_calls"], 17, "{on_a}");
    assert_eq!(on_a["connected_calls"], 9);

    // A settings change on A is what B serves next.
    let settings = client
        .put(format!("{}/api/v1/settings", a.url))
        .bearer_auth(&key)
        .json(&json!({"timezone": "Asia/Kathmandu"}))
        .send()
        .await
        .unwrap();
    assert!(settings.status().is_success());
    let mut seen = Value::Null;
    for _ in 0..100 {
        let r = client
            .get(format!("{}/api/v1/settings", b.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        seen = r.json::<Value>().await.unwrap();
        if seen["timezone"] == "Asia/Kathmandu" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen["timezone"], "Asia/Kathmandu", "{seen}");

    // The compaction job runs under one advisory lock: while someone else holds it, neither
    // node folds deltas; once it is free, one does, and the numbers stay the same.
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&db, postgres::NoTls).unwrap();
            let (space, key) = Lock::Compact.key();
            c.execute("SELECT pg_advisory_lock($1, $2)", &[&space, &key]).unwrap();
            hold_rx.recv().unwrap();
            c.execute("SELECT pg_advisory_unlock($1, $2)", &[&space, &key]).unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    post(&client, &format!("{}/api/v1/events", a.url), &key, &calls_now("c", 3)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        pending_deltas(&db) > 0,
        "nobody compacts while the lock is held elsewhere"
    );
    assert_eq!(totals(&client, &b, &key).await["total_calls"], 20);
    hold_tx.send(()).unwrap();
    holder.join().unwrap();
    for _ in 0..100 {
        if pending_deltas(&db) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending_deltas(&db), 0, "a node folds the deltas once the lock is free");
    let (on_a, on_b) = (totals(&client, &a, &key).await, totals(&client, &b, &key).await);
    assert_eq!(on_a, on_b);
    assert_eq!(on_a["total_calls"], 20, "{on_a}");
}

async fn subscribe_tenant(node: &Node, key: &str) -> Socket {
    let mut request = format!("{}/api/v1/live", node.url.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "subscribe", "scope": "tenant"}).to_string().into(),
    ))
    .await
    .unwrap();
    ws
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The messages of type `kind` a socket receives.
async fn messages_of(ws: &mut Socket, kind: &str) -> Vec<Value> {
    // Up to 30 s for the first: the badge and alert loops run every few seconds, later on a
    // loaded machine. Then until 3 s pass without another, so a duplicate would be heard.
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(text) = msg {
            let m: Value = serde_json::from_str(&text).unwrap();
            if m["type"] == kind {
                out.push(m);
                deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            }
        }
    }
    out
}

#[tokio::test]
async fn two_nodes_record_and_announce_each_badge_change_once() {
    let (_cluster, db, key) = cluster_with_tenant().await;
    let (a, b) = tokio::join!(start_node(&db), start_node(&db));
    let client = reqwest::Client::new();
    let (mut on_a, mut on_b) = (subscribe_tenant(&a, &key).await, subscribe_tenant(&b, &key).await);
    let now = jiff::Timestamp::now();
    let call = |disposition: &str, version: i64| {
        json!([{"id": format!("m-v{version}"), "type": "call", "call_id": "m", "agent_id": "a1", "team_id": "t1",
            "disposition": disposition, "started_at": now.to_string(),
            "updated_at": jiff::Timestamp::from_second(now.as_second() + version).unwrap().to_string()}])
    };
    // Each change is recorded once (by the node that committed the events) and announced to
    // every subscriber once, whichever node it is connected to.
    for (node, disposition, version, change) in [(&a, "Meeting Booked", 1, "awarded"), (&b, "No Answer", 2, "revoked")]
    {
        post(
            &client,
            &format!("{}/api/v1/events", node.url),
            &key,
            &call(disposition, version),
        )
        .await;
        let (x, y) = tokio::join!(messages_of(&mut on_a, "badge"), messages_of(&mut on_b, "badge"));
        for (on, got) in [("a", &x), ("b", &y)] {
            let first: Vec<&Value> = got.iter().filter(|m| m["badge"] == "first_meeting").collect();
            assert_eq!(first.len(), 1, "the subscriber on {on} hears it once: {x:?} {y:?}");
            assert_eq!(first[0]["change"], change);
        }
    }
    assert!(held_awards(&db).is_empty(), "revoked");
}

#[tokio::test]
async fn an_alert_fired_on_one_node_reaches_the_subscribers_of_both_once() {
    let (_cluster, db, key) = cluster_with_tenant().await;
    let (a, b) = tokio::join!(start_node(&db), start_node(&db));
    let client = reqwest::Client::new();
    let alert = json!({"name": "Busy hour", "measure": "total_calls", "scope": "team", "scope_id": "t1",
        "window_minutes": 60, "condition": "above", "threshold": 3, "min_volume": 1});
    let created = post(&client, &format!("{}/api/v1/alerts", a.url), &key, &alert).await;
    let (mut on_a, mut on_b) = (subscribe_tenant(&a, &key).await, subscribe_tenant(&b, &key).await);
    // Both nodes evaluate the commit (B hears of it by NOTIFY); one records the firing.
    post(&client, &format!("{}/api/v1/events", a.url), &key, &calls_now("al", 5)).await;
    let (x, y) = tokio::join!(messages_of(&mut on_a, "alert"), messages_of(&mut on_b, "alert"));
    for (on, got) in [("a", &x), ("b", &y)] {
        assert_eq!(
            got.len(),
            1,
            "the subscriber on {on} hears the firing once: {x:?} {y:?}"
        );
        assert_eq!(got[0]["alert_id"], created["id"]);
        assert_eq!(got[0]["kind"], "fired");
        assert_eq!(got[0]["team_id"], "t1");
    }
    let events = client
        .get(format!(
            "{}/api/v1/alerts/{}/events",
            b.url,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "recorded once: {events}"
    );
}

fn sql(db: &str, statements: &str) {
    let statements = statements.to_string();
    on_db(db, move |c| c.batch_execute(&statements).unwrap());
}

fn held_awards(db: &str) -> Vec<(String, String)> {
    on_db(db, |c| {
        let rows = c
            .query("SELECT badge, agent_id FROM badge_awards ORDER BY agent_id, badge", &[])
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    })
}

#[tokio::test]
async fn an_upgraded_database_records_its_history_badges_silently_and_announces_what_comes_after() {
    let (_cluster, db, key) = cluster_with_tenant().await;
    let client = reqwest::Client::new();
    let meeting = |rep: &str| {
        json!([{"id": format!("{rep}-m"), "type": "call", "call_id": format!("{rep}-m"), "agent_id": rep, "team_id": "t1",
            "disposition": "Meeting Booked", "started_at": jiff::Timestamp::now().to_string()}])
    };
    {
        let old = start_node(&db).await;
        post(&client, &format!("{}/api/v1/events", old.url), &key, &meeting("r1")).await;
    }
    // As a database from before badges: r1's meeting is history, no award is held, and the
    // migration that marks such tenants has not run.
    sql(
        &db,
        &format!(
            "DELETE FROM badge_awards; DROP TABLE badge_baselines; UPDATE schema_version SET version = {};",
            dialboard_store::pg::BADGE_BASELINES_VERSION - 1
        ),
    );
    let node = start_node(&db).await;
    let mut live = subscribe_tenant(&node, &key).await;
    // The node records the history's awards in the background after it starts; r2's meeting is
    // news only once that pass has read the facts (under a loaded test run it can start late).
    let started = std::time::Instant::now();
    while held_awards(&db).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the history's award is never recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    post(&client, &format!("{}/api/v1/events", node.url), &key, &meeting("r2")).await;
    let heard = messages_of(&mut live, "badge").await;
    let news: Vec<(&Value, &Value)> = heard.iter().map(|m| (&m["badge"], &m["agent_id"])).collect();
    assert_eq!(news, [(&json!("first_meeting"), &json!("r2"))], "{heard:?}");
    let first = |rep: &str| ("first_meeting".to_string(), rep.to_string());
    assert_eq!(
        held_awards(&db),
        [first("r1"), first("r2")],
        "the history's award is recorded"
    );
}
