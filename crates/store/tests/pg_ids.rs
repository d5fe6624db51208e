//! PostgreSQL's ids behind the writer's filter and in generations (pg/id_filter.rs): an event
//! id is stored once and a call corrected wherever it is, across nodes (whose filters each see
//! the other's ids), restarts, generations and pruned batches; and two ids whose hashes are
//! equal are both stored.

// PostgreSQL-only: `each_store` and `Open` go unused here.
#[allow(dead_code)]
mod common;

use common::{cluster, runtime};
use dialboard_engine::event::{parse_event, ParsedEvent};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::pg::PgStore;
use dialboard_store::{Store, TenantSettings};
use postgres::{Client, NoTls};
use serde_json::{json, Value};

fn events(values: Vec<Value>) -> Vec<ParsedEvent> {
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    values.iter().map(|v| parse_event(v, &taxonomy).unwrap()).collect()
}

fn call(id: &str, call_id: &str, disposition: &str) -> Value {
    json!({"id": id, "type": "call", "call_id": call_id, "agent_id": "a1", "team_id": "t1",
        "disposition": disposition, "started_at": "2026-05-30T10:00:00Z", "talk_seconds": 60,
        "contact_id": format!("p-{call_id}")})
}

/// `(accepted, duplicates)` of one request.
fn ingest(rt: &tokio::runtime::Runtime, node: &PgStore, tenant: i64, values: Vec<Value>) -> (usize, usize) {
    let summary = rt.block_on(node.ingest(tenant, events(values))).unwrap();
    (summary.accepted, summary.duplicates)
}

fn disposition(rt: &tokio::runtime::Runtime, node: &PgStore, tenant: i64, call_id: &str) -> Option<String> {
    rt.block_on(node.call(tenant, call_id))
        .unwrap()
        .map(|c| c["disposition"].as_str().unwrap_or_default().to_string())
}

fn calls_stored(client: &mut Client, tenant: i64) -> i64 {
    client
        .query_one("SELECT count(*) FROM calls WHERE tenant_id = $1", &[&tenant])
        .unwrap()
        .get(0)
}

#[test]
fn ids_are_stored_once_across_nodes_restarts_and_generations() {
    let rt = runtime();
    let url = cluster().create_database().unwrap();
    let a = PgStore::open(&url).unwrap();
    let b = PgStore::open(&url).unwrap();
    let tenant = rt
        .block_on(a.create_tenant("n", TenantSettings::new("UTC")))
        .unwrap()
        .id;
    let mut client = Client::connect(&url, NoTls).unwrap();

    // Node b's filter is made (from nothing) before node a stores e2 …
    assert_eq!(ingest(&rt, &b, tenant, vec![call("e1", "c1", "Busy")]), (1, 0));
    assert_eq!(ingest(&rt, &a, tenant, vec![call("e2", "c2", "Busy")]), (1, 0));
    // … so b learns of e2 and c2 from a's batch of hashes: a repeat is a duplicate, and a new
    // version of c2 replaces a's.
    assert_eq!(ingest(&rt, &b, tenant, vec![call("e2", "c2", "No Answer")]), (0, 1));
    assert_eq!(ingest(&rt, &b, tenant, vec![call("e2b", "c2", "No Answer")]), (1, 0));
    assert_eq!(disposition(&rt, &a, tenant, "c2").as_deref(), Some("No Answer"));

    // Batches pruned before b read them: b rebuilds its filter from the ids stored.
    assert_eq!(ingest(&rt, &a, tenant, vec![call("e3", "c3", "Busy")]), (1, 0));
    client.execute("DELETE FROM id_batches", &[]).unwrap();
    assert_eq!(ingest(&rt, &b, tenant, vec![call("e3", "c3", "Busy")]), (0, 1));
    assert_eq!(
        ingest(&rt, &b, tenant, vec![call("e3b", "c3", "Meeting Booked")]),
        (1, 0)
    );

    // The next rows go to a later generation (as after 2^18 ids); the earlier ones are still
    // found, by a node whose filter is made after a restart.
    client
        .execute(
            "UPDATE id_heads SET ids = ids + 3 * (1 << 18) WHERE tenant_id = $1",
            &[&tenant],
        )
        .unwrap();
    assert_eq!(ingest(&rt, &a, tenant, vec![call("e4", "c4", "Busy")]), (1, 0));
    rt.block_on(a.shutdown());
    drop(a);
    let a = PgStore::open(&url).unwrap();
    let again = vec![
        call("e1", "c1", "Busy"),
        call("e2b", "c2", "No Answer"),
        call("e3b", "c3", "Meeting Booked"),
        call("e4", "c4", "Busy"),
    ];
    assert_eq!(ingest(&rt, &a, tenant, again), (0, 4));
    // A correction of a call of generation 0, after the generation moved on.
    assert_eq!(
        ingest(&rt, &a, tenant, vec![call("e1b", "c1", "Not Interested")]),
        (1, 0)
    );
    assert_eq!(disposition(&rt, &b, tenant, "c1").as_deref(), Some("Not Interested"));
    let generations: Vec<i32> = client
        .query(
            "SELECT DISTINCT gen FROM call_keys WHERE tenant_id = $1 ORDER BY gen",
            &[&tenant],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        generations,
        [0, 3],
        "c2 and c3 stay in generation 0; c4 and c1's new key in 3"
    );
    assert_eq!(calls_stored(&mut client, tenant), 4);
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
}

/// 64-bit hashes of distinct ids collide (rarely): the filter and the index then find a row,
/// and only the text tells it is another id's. Here the stored rows' hashes are forged to equal
/// those of the new ids: a design that trusted the hash would count `e-new` as a duplicate and
/// take `c-new` for a correction of `c-old`.
#[test]
fn ids_whose_hashes_collide_are_both_stored() {
    let rt = runtime();
    let url = cluster().create_database().unwrap();
    let node = PgStore::open(&url).unwrap();
    let tenant = rt
        .block_on(node.create_tenant("h", TenantSettings::new("UTC")))
        .unwrap()
        .id;
    assert_eq!(ingest(&rt, &node, tenant, vec![call("e-old", "c-old", "Busy")]), (1, 0));
    rt.block_on(node.shutdown());
    drop(node);
    // Forged collisions: the old rows' hashes are the new ids'; rows inserted later get their
    // hashes from a trigger (the columns are no longer generated).
    let mut client = Client::connect(&url, NoTls).unwrap();
    client
        .batch_execute(
            "ALTER TABLE event_ids ALTER COLUMN id_hash DROP EXPRESSION; \
             ALTER TABLE call_keys ALTER COLUMN call_hash DROP EXPRESSION; \
             UPDATE event_ids SET id_hash = hashtextextended('e-new', 0) WHERE event_id = 'e-old'; \
             UPDATE call_keys SET call_hash = hashtextextended('c-new', 0) WHERE call_id = 'c-old'; \
             CREATE FUNCTION hash_ids() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF TG_TABLE_NAME = 'event_ids' THEN NEW.id_hash := hashtextextended(NEW.event_id, 0); \
                 ELSE NEW.call_hash := hashtextextended(NEW.call_id, 0); END IF; RETURN NEW; END $$; \
             CREATE TRIGGER hash_ids BEFORE INSERT ON event_ids FOR EACH ROW EXECUTE FUNCTION hash_ids(); \
             CREATE TRIGGER hash_ids BEFORE INSERT ON call_keys FOR EACH ROW EXECUTE FUNCTION hash_ids();",
        )
        .unwrap();
    // The node's filter, rebuilt from the stored hashes, holds the new ids' hashes.
    let node = PgStore::open(&url).unwrap();
    assert_eq!(
        ingest(&rt, &node, tenant, vec![call("e-new", "c-new", "No Answer")]),
        (1, 0)
    );
    assert_eq!(calls_stored(&mut client, tenant), 2);
    // (c-old's key now carries c-new's hash, so only its row is read here.)
    let old: String = client
        .query_one("SELECT disposition FROM calls WHERE call_id = 'c-old'", &[])
        .unwrap()
        .get(0);
    assert_eq!(old, "Busy", "c-new is not a correction of c-old");
    assert_eq!(disposition(&rt, &node, tenant, "c-new").as_deref(), Some("No Answer"));
    rt.block_on(node.shutdown());
}
