//! SQLite keeps each event only in its transaction's compressed block (`sqlite::bodies`): no
//! `events` row. Exactly-once still holds against every stored event: one of an earlier
//! transaction (another block, also after the store reopens and numbers events on from the
//! blocks) and one earlier in the same transaction (not yet in a block).

use dialboard_engine::event::{parse_event, ParsedEvent};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{Store, TenantSettings};
use serde_json::{json, Value};

fn parse(events: &[Value]) -> Vec<ParsedEvent> {
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    events.iter().map(|e| parse_event(e, &taxonomy).unwrap()).collect()
}

fn call(id: &str, call_id: &str, disposition: &str, updated: &str) -> Value {
    json!({"id": id, "type": "call", "call_id": call_id, "agent_id": "a1", "disposition": disposition,
           "started_at": "2026-03-02T10:00:00Z", "updated_at": updated})
}

#[test]
fn duplicates_of_other_blocks_and_of_the_same_transaction_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    let e1 = call("e1", "c1", "No Answer", "2026-03-02T10:01:00Z");
    let e2 = call("e2", "c2", "No Answer", "2026-03-02T10:01:00Z");
    for e in [&e1, &e2] {
        rt.block_on(store.ingest(tenant.id, parse(std::slice::from_ref(e))))
            .unwrap();
    }
    rt.block_on(store.shutdown());
    drop(store);

    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let mut e1_again = e1.clone();
    e1_again["disposition"] = json!("Connected");
    let e3 = call("e3", "c1", "Connected", "2026-03-02T10:05:00Z");
    let mut e3_again = e3.clone();
    e3_again["disposition"] = json!("Voicemail");
    let e4 = call("e4", "c3", "Connected", "2026-03-02T10:05:00Z");
    let batch = [e3, e1_again, e3_again, e2, e4];
    let summary = rt.block_on(store.ingest(tenant.id, parse(&batch))).unwrap();
    assert_eq!(
        (summary.accepted, summary.duplicates),
        (2, 3),
        "e1 and e2 of earlier blocks, e3 of this transaction"
    );
    let versions = |call_id: &str| -> Vec<(String, String)> {
        let detail = rt.block_on(store.call(tenant.id, call_id)).unwrap().unwrap();
        detail["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let id = v["event_id"].as_str().unwrap().to_string();
                (id, v["event"]["disposition"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let version = |id: &str, disposition: &str| (id.to_string(), disposition.to_string());
    assert_eq!(versions("c1"), [version("e1", "No Answer"), version("e3", "Connected")]);
    assert_eq!(versions("c2"), [version("e2", "No Answer")]);
    assert_eq!(versions("c3"), [version("e4", "Connected")]);
    rt.block_on(store.shutdown());
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    let (blocks, events): (i64, i64) = conn
        .query_row("SELECT count(*), sum(events) FROM event_blocks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((rows, blocks, events), (0, 3, 4), "no rows; a block per transaction");
}
