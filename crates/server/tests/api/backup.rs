//! `dialboard backup` (SPEC §12): a copy taken while the real binary ingests restores to a
//! database that answers exactly like the original for every batch acknowledged before the
//! backup began.

use super::process::{cli, free_port, last_line, post_json, spawn_server, wait_ready};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const BATCH: usize = 500;

/// A server on `db`'s answer to a query.
async fn answer(db: &str, key: &str, query: Value) -> Value {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server(db, port);
    wait_ready(&url).await;
    let body = post_json(&url, "/api/v1/query", key, &query).await;
    server.kill().unwrap();
    server.wait().unwrap();
    body
}

/// Calls per agent.
async fn per_agent(db: &str, key: &str) -> BTreeMap<String, u64> {
    let query = json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"preset": "all_time"}});
    let body = answer(db, key, query).await;
    body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_backup_taken_during_ingest_restores_what_was_acknowledged_before_it_began() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("live.db").display());
    let key = last_line(&cli(&db, &["tenant", "create", "acme"]));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server(&db, port);
    wait_ready(&url).await;

    // Each batch is one agent's calls; the log records when each was sent and acknowledged.
    #[derive(Clone, Copy)]
    struct Sent {
        sent: Instant,
        acked: Instant,
    }
    let log: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let ingest = {
        let (log, url, key) = (log.clone(), url.clone(), key.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for batch in 0.. {
                if *stopped.borrow_and_update() {
                    break;
                }
                let events: Vec<Value> = (0..BATCH)
                    .map(|i| json!({"id": format!("e{batch}-{i}"), "type": "call", "call_id": format!("c{batch}-{i}"),
                        "agent_id": format!("b{batch:04}"), "disposition": if i % 3 == 0 { "Connected" } else { "No Answer" },
                        "started_at": "2026-03-02T10:00:00Z", "talk_seconds": (i * 7) % 300}))
                    .collect();
                let sent = Instant::now();
                let r = client
                    .post(format!("{url}/api/v1/events"))
                    .bearer_auth(&key)
                    .json(&events)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                log.lock().unwrap().push(Sent {
                    sent,
                    acked: Instant::now(),
                });
            }
        })
    };
    while log.lock().unwrap().len() < 8 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let copy = dir.path().join("copy.db");
    let began = Instant::now();
    let out = tokio::task::spawn_blocking({
        let (db, copy) = (db.clone(), copy.clone());
        move || cli(&db, &["backup", "--to", copy.to_str().unwrap()])
    })
    .await
    .unwrap();
    let ended = Instant::now();
    assert_eq!(last_line(&out), copy.display().to_string());
    while log.lock().unwrap().iter().filter(|s| s.sent > ended).count() < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    ingest.await.unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    // A second backup to the same file is refused rather than overwriting it.
    let again = cli(&db, &["backup", "--to", copy.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // Restore: the copy in place of a database, opened by a server.
    let restored = format!("sqlite://{}", dir.path().join("restored.db").display());
    std::fs::copy(&copy, dir.path().join("restored.db")).unwrap();
    let restored_counts = per_agent(&restored, &key).await;
    let original_counts = per_agent(&db, &key).await;
    let log = log.lock().unwrap().clone();
    let agent = |batch: usize| format!("b{batch:04}");
    let before: Vec<usize> = (0..log.len()).filter(|&b| log[b].acked < began).collect();
    assert!(before.len() >= 8);
    for (batch, s) in log.iter().enumerate() {
        let restored = restored_counts.get(&agent(batch)).copied().unwrap_or(0);
        assert_eq!(original_counts[&agent(batch)], BATCH as u64);
        if s.acked < began {
            assert_eq!(
                restored, BATCH as u64,
                "batch {batch} was acknowledged before the backup began"
            );
        } else if s.sent > ended {
            assert_eq!(restored, 0, "batch {batch} was sent after the backup ended");
        } else {
            assert!(restored == 0 || restored == BATCH as u64, "a batch is all or nothing");
        }
    }
    // For those batches, every number is the original's.
    let only = |counts: &BTreeMap<String, u64>| -> Vec<(String, u64)> {
        before.iter().map(|&b| (agent(b), counts[&agent(b)])).collect()
    };
    assert_eq!(only(&restored_counts), only(&original_counts));
    let agents: Vec<String> = before.iter().map(|&b| agent(b)).collect();
    let measures = json!({"measures": ["total_calls", "connected_calls", "total_talk_time", "median_talk_time",
        "p90_talk_time"], "dimensions": ["agent", "disposition"], "filters": {"agent": agents},
        "range": {"preset": "all_time"}, "timezone": "UTC"});
    let restored_answer = answer(&restored, &key, measures.clone()).await;
    assert!(
        restored_answer["rows"].as_array().is_some_and(|r| !r.is_empty()),
        "{restored_answer}"
    );
    assert_eq!(restored_answer, answer(&db, &key, measures).await);
}
