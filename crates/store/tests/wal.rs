//! Under ingest that never pauses, the write-ahead log still starts over from its beginning
//! (instead of growing for as long as the ingest lasts).

use dialboard_engine::event::{parse_event, ParsedEvent};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{Store, TenantSettings};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The WAL header's checkpoint sequence number: SQLite adds one each time the log starts over.
fn wal_restarts(path: &std::path::Path) -> u32 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let header = std::fs::read(wal).unwrap_or_default();
    header
        .get(12..16)
        .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_starts_over_while_ingest_never_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let options = Options {
        wal_restart_frames: 64,
        ..Options::not_durable()
    };
    let store = Arc::new(SqliteStore::open(&path, options).unwrap());
    let tenant = store.create_tenant("t", TenantSettings::new("UTC")).await.unwrap().id;
    let taxonomy = Arc::new(CompiledTaxonomy::new(&Taxonomy::default()));
    let started = Instant::now();
    // Four clients, each sending its next batch as soon as the last is committed, so the writer
    // always has a batch waiting.
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (store, taxonomy) = (store.clone(), taxonomy.clone());
            tokio::spawn(async move {
                let mut batch = 0;
                while started.elapsed() < Duration::from_secs(3) {
                    let events: Vec<ParsedEvent> = (0..200)
                        .map(|i| {
                            let id = format!("{client}-{batch}-{i}");
                            let call = json!({"id": id, "type": "call", "call_id": id, "agent_id": format!("a{i}"),
                                "contact_id": format!("p{i}"), "disposition": "Connected",
                                "started_at": "2026-03-02T10:00:00Z", "talk_seconds": i});
                            parse_event(&call, &taxonomy).unwrap()
                        })
                        .collect();
                    store.ingest(tenant, events).await.unwrap();
                    batch += 1;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let restarts = wal_restarts(&path);
    store.shutdown().await;
    assert!(restarts >= 3, "the log started over {restarts} times in 3 s of ingest");
}
