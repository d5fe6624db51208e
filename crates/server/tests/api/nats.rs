//! NATS JetStream ingestion (SPEC §11) against a real `nats-server` the tests start (Debian's
//! `nats-server`; `.ci/run` installs it) and the real binary configured with `[[sources]]`:
//! every event counts once through a `kill -9` in the middle of consuming, the lag shows in
//! `/metrics`, and invalid messages land in the dead-letter subject with their reasons.

use super::process::{cli, free_port, last_line, post_json, wait_ready, BIN};
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Nats {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JetStream-enabled nats-server on a free port, storing in a temporary directory.
async fn start_nats() -> Nats {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server is installed (apt-get install nats-server)");
    // Owned at once, so the server is stopped (and waited for) however the test ends.
    let nats = Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    };
    for _ in 0..200 {
        if async_nats::connect(&nats.url).await.is_ok() {
            return nats;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nats-server did not start on {}", nats.url);
}

/// The streams: the tenants' events and the dead letters.
async fn streams(url: &str) -> jetstream::Context {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    for (name, subject) in [("EVENTS", "events.>"), ("DEAD", "dead.>")] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    js
}

fn spawn_configured(db: &str, port: u16, config: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(config)
        .env("DIALBOARD_DATABASE", db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `/metrics`' value of a source series.
async fn metric(url: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

async fn total_calls(url: &str, key: &str) -> Value {
    let query =
        json!({"measures": ["total_calls", "connected_calls", "total_talk_time"], "range": {"preset": "all_time"}});
    let body = post_json(url, "/api/v1/query", key, &query).await;
    body["totals"].clone()
}

fn event(m: usize, i: usize) -> Value {
    json!({"id": format!("e{m}-{i}"), "type": "call", "call_id": format!("c{m}-{i}"), "agent_id": format!("a{}", m % 7),
        "disposition": if i.is_multiple_of(4) { "Connected" } else { "No Answer" }, "started_at": "2026-03-02T10:00:00Z",
        "talk_seconds": (m + i) % 200})
}

struct Setup {
    nats: Nats,
    js: jetstream::Context,
    db: String,
    key: String,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(batch: usize) -> Setup {
    let nats = start_nats().await;
    let js = streams(&nats.url).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("nats.db").display());
    let key = last_line(&cli(&db, &["tenant", "create", "acme"]));
    let config = dir.path().join("dialboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nurl = \"{}\"\nstream = \"EVENTS\"\nsubject = \"events.acme\"\ntenant = \"acme\"\n\
             dead_letter = \"dead.acme\"\nbatch = {batch}\nack_wait_seconds = 2\n",
            nats.url
        ),
    )
    .unwrap();
    Setup {
        nats,
        js,
        db,
        key,
        config,
        _dir: dir,
    }
}

#[tokio::test]
async fn each_event_counts_once_through_a_kill_nine_mid_consume_and_the_lag_shows() {
    let s = setup(20).await;
    let (messages, per_message) = (3_000, 10);
    let mut acks = Vec::new();
    for m in 0..messages {
        let body: Vec<Value> = (0..per_message).map(|i| event(m, i)).collect();
        acks.push(
            s.js.publish("events.acme", serde_json::to_vec(&body).unwrap().into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_configured(&s.db, port, &s.config);
    wait_ready(&url).await;
    // Kill -9 once some batches are committed and acknowledged, the rest still queued.
    let mut max_lag = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        max_lag = max_lag.max(metric(&url, "dialboard_source_lag_messages").await);
        if metric(&url, "dialboard_source_messages_total").await >= 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the consumer did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(max_lag > 0, "the lag showed in /metrics while consuming");
    let stream = s.js.get_stream("EVENTS").await.unwrap();
    let durable: consumer::PullConsumer = stream.get_consumer("dialboard-acme").await.unwrap();
    let info = durable.get_info().await.unwrap();
    assert!(
        info.num_pending + info.num_ack_pending as u64 > 0,
        "killed in the middle: messages were left ({info:?})"
    );

    // Restarted, the server consumes the rest; what was committed but not acknowledged
    // comes again and counts nothing.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_configured(&s.db, port, &s.config);
    wait_ready(&url).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let info = durable.get_info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not consumed: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The lag gauge is refreshed after each pull.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(metric(&url, "dialboard_source_lag_messages").await, 0);
    let totals = total_calls(&url, &s.key).await;
    let expected_talk: usize = (0..messages)
        .flat_map(|m| (0..per_message).map(move |i| (m + i) % 200))
        .sum();
    assert_eq!(
        totals,
        json!({"total_calls": messages * per_message,
            "connected_calls": messages * (0..per_message).filter(|i| i.is_multiple_of(4)).count(),
            "total_talk_time": expected_talk})
    );
    server.kill().unwrap();
    server.wait().unwrap();
    drop(s.nats);
}

#[tokio::test]
async fn invalid_messages_go_to_the_dead_letter_subject_with_the_reasons() {
    let s = setup(50).await;
    let payloads: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&event(1, 0)).unwrap(),
        b"this is not json".to_vec(),
        serde_json::to_vec(
            &json!([event(2, 0), {"id": "bad-1", "type": "call", "call_id": "x", "agent_id": "a1",
            "disposition": "Maybe", "started_at": "2026-03-02T10:00:00Z"}]),
        )
        .unwrap(),
        format!("{}\n{}", event(3, 0), event(3, 1)).into_bytes(),
    ];
    for p in payloads {
        s.js.publish("events.acme", p.into()).await.unwrap().await.unwrap();
    }
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_configured(&s.db, port, &s.config);
    wait_ready(&url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&url, "dialboard_source_messages_total").await < 4 {
        assert!(Instant::now() < deadline, "not consumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&url, "dialboard_source_dead_letters_total").await, 2);
    assert_eq!(metric(&url, "dialboard_source_events_accepted_total").await, 4);
    assert_eq!(total_calls(&url, &s.key).await["total_calls"], 4);
    server.kill().unwrap();
    server.wait().unwrap();

    let dead = s.js.get_stream("DEAD").await.unwrap();
    let reader: consumer::PullConsumer = dead
        .create_consumer(consumer::pull::Config {
            durable_name: Some("test".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = reader.fetch().max_messages(10).messages().await.unwrap();
    let mut letters = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        let reason = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Dialboard-Reason"))
            .map(|v| v.to_string());
        letters.push((
            m.subject.to_string(),
            reason,
            serde_json::from_slice::<Value>(&m.payload).unwrap(),
        ));
    }
    assert_eq!(letters.len(), 2, "{letters:?}");
    let (subject, reason, body) = &letters[0];
    assert_eq!(subject, "dead.acme");
    assert_eq!(body["payload"], "this is not json");
    assert_eq!(body["subject"], "events.acme");
    assert_eq!(body["stream_sequence"], 2);
    assert!(
        reason.as_deref().unwrap().starts_with("the message is not JSON"),
        "{reason:?}"
    );
    let (_, reason, body) = &letters[1];
    assert_eq!(body["rejected"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["id"], "bad-1");
    assert_eq!(body["rejected"][0]["errors"][0]["field"], "disposition");
    assert!(reason.as_deref().unwrap().starts_with("disposition: "), "{reason:?}");
}
