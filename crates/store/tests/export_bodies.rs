//! A raw-call export gives each call the body of its current event. On SQLite the writer keeps
//! that event's row with the call (`calls.event_seq`) and the export reads the bodies by it,
//! block by block; calls written before that column are found by their event's id.

use dialboard_engine::event::parse_event;
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{CallsRequest, Store, TenantSettings};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Every call of the tenant's export (pages of 3) → the notes of the body it came with.
fn exported_notes(rt: &tokio::runtime::Runtime, store: &dyn Store, tenant: i64) -> BTreeMap<String, Option<String>> {
    let mut notes = BTreeMap::new();
    let mut cursor = None;
    loop {
        let request = CallsRequest {
            query: json!({"range": {"start": "2026-03-01", "end": "2026-03-08"}}),
            cursor,
            limit: 3,
        };
        let page = rt
            .block_on(store.export_calls(tenant, request, 1_773_000_000))
            .unwrap()
            .unwrap();
        for row in page.rows {
            let body = row.body.map(|b| serde_json::from_str::<Value>(&b).unwrap());
            let note = body.map(|b| b["notes"].as_str().unwrap().to_string());
            assert!(notes.insert(row.call.call_id, note).is_none(), "a call exported twice");
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            return notes;
        }
    }
}

fn call(id: &str, call_id: &str, version: &str, notes: &str) -> Value {
    json!({"id": id, "type": "call", "call_id": call_id, "agent_id": "a1", "disposition": "Connected",
           "started_at": "2026-03-02T10:00:00Z", "updated_at": version, "notes": notes})
}

#[test]
fn an_export_reads_each_calls_current_body_by_the_row_its_call_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let parsed = |events: Vec<Value>| -> Vec<_> { events.iter().map(|e| parse_event(e, &taxonomy).unwrap()).collect() };
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    let other = rt
        .block_on(store.create_tenant("o", TenantSettings::new("UTC")))
        .unwrap();
    // Blocks of both tenants interleave; a call is corrected in a later block, and a stale
    // version of it arrives after the correction (and changes nothing).
    for round in 0..4 {
        for (t, name) in [(tenant.id, "t"), (other.id, "o")] {
            let events = (0..5)
                .map(|i| {
                    let n = round * 5 + i;
                    call(
                        &format!("{name}e{n}"),
                        &format!("c{n:02}"),
                        "2026-03-02T11:00:00Z",
                        &format!("{name} {n}"),
                    )
                })
                .collect();
            rt.block_on(store.ingest(t, parsed(events))).unwrap();
        }
    }
    let corrections = vec![
        call("fix", "c03", "2026-03-02T12:00:00Z", "corrected"),
        call("stale", "c03", "2026-03-02T10:30:00Z", "stale"),
    ];
    rt.block_on(store.ingest(tenant.id, parsed(corrections))).unwrap();
    let expected: BTreeMap<String, Option<String>> = (0..20)
        .map(|n| {
            let note = if n == 3 {
                "corrected".to_string()
            } else {
                format!("t {n}")
            };
            (format!("c{n:02}"), Some(note))
        })
        .collect();
    assert_eq!(exported_notes(&rt, &store, tenant.id), expected);
    rt.block_on(store.shutdown());
    drop(store);

    // Without the runs of event keys, only the rows the calls keep lead to the bodies.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let keyed_event_runs = "run IN (SELECT run FROM key_runs WHERE kind = 0)";
    let saved: Vec<(i64, i64, Vec<u8>)> = conn
        .prepare(&format!(
            "SELECT run, first_hash, data FROM key_chunks WHERE {keyed_event_runs}"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(!saved.is_empty());
    conn.execute(&format!("DELETE FROM key_chunks WHERE {keyed_event_runs}"), [])
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    assert_eq!(exported_notes(&rt, &store, tenant.id), expected);
    rt.block_on(store.shutdown());
    drop(store);

    // Calls written before `calls.event_seq` existed find their events by id.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut insert = conn
        .prepare("INSERT INTO key_chunks (run, first_hash, data) VALUES (?1, ?2, ?3)")
        .unwrap();
    for (run, first_hash, data) in &saved {
        insert.execute(rusqlite::params![run, first_hash, data]).unwrap();
    }
    drop(insert);
    conn.execute(
        "UPDATE calls SET event_seq = NULL WHERE call_id IN ('c01', 'c03', 'c07')",
        [],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    assert_eq!(exported_notes(&rt, &store, tenant.id), expected);
    rt.block_on(store.shutdown());
}
