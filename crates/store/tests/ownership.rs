//! Events of a bound key (marked with an `Owner`) cannot replace another agent's records, on
//! SQLite and on PostgreSQL: the check is in the writer's transaction, in the shared apply path.

use dialboard_engine::event::{parse_event, Owner, ParsedEvent};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::pg::{cluster::Cluster, PgStore};
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{Store, TenantSettings};
use serde_json::{json, Value};
use std::sync::Arc;

fn event(v: Value, owner: Option<&Owner>) -> ParsedEvent {
    let mut e = parse_event(&v, &CompiledTaxonomy::new(&Taxonomy::default())).unwrap();
    e.owner = owner.map(|o| Arc::new(o.clone()));
    e
}

async fn check(store: Arc<dyn Store>) {
    let tenant = store.create_tenant("t", TenantSettings::new("UTC")).await.unwrap().id;
    let call = |id: &str, agent: &str, updated: &str| {
        json!({"id": id, "type": "call", "call_id": "c1", "agent_id": agent, "team_id": "t2", "disposition": "Connected",
            "started_at": "2026-03-02T10:00:00Z", "updated_at": updated})
    };
    let conversation = |id: &str, agent: &str, updated: &str| {
        json!({"id": id, "type": "conversation", "conversation_id": "v1", "agent_id": agent, "channel": "chat",
            "opened_at": "2026-03-02T10:00:00Z", "updated_at": updated})
    };
    let summary = store
        .ingest(
            tenant,
            vec![
                event(call("e1", "a2", "2026-03-02T10:05:00Z"), None),
                event(conversation("e2", "a2", "2026-03-02T10:05:00Z"), None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(summary.accepted, 2);
    let a1 = Owner::Agent("a1".into());
    let summary = store
        .ingest(
            tenant,
            vec![
                event(call("b1", "a1", "2026-03-02T11:00:00Z"), Some(&a1)),
                event(
                    json!({"id": "b2", "type": "call_analysis", "call_id": "c1", "score": 1}),
                    Some(&a1),
                ),
                event(conversation("b3", "a1", "2026-03-02T11:00:00Z"), Some(&a1)),
                event(
                    json!({"id": "b4", "type": "call_analysis", "call_id": "mine", "score": 1}),
                    Some(&a1),
                ),
            ],
        )
        .await
        .unwrap();
    let refused: Vec<(usize, &str)> = summary.refused.iter().map(|(i, e)| (*i, e.field.as_str())).collect();
    assert_eq!(refused, vec![(0, "call_id"), (1, "call_id"), (2, "conversation_id")]);
    assert_eq!((summary.accepted, summary.duplicates), (1, 0));
    let stored = store.call(tenant, "c1").await.unwrap().unwrap();
    assert_eq!(stored["agent_id"], "a2", "{stored}");
    // A refused event was not logged: the owner's own later version is new, not a duplicate.
    let summary = store
        .ingest(tenant, vec![event(call("b1", "a2", "2026-03-02T11:00:00Z"), None)])
        .await
        .unwrap();
    assert_eq!(summary.accepted, 1);
    // A team-bound key owns its teams' records, by their team_id.
    let t2 = Owner::Teams(vec!["t2".into()]);
    let summary = store
        .ingest(tenant, vec![event(call("b5", "a9", "2026-03-02T12:00:00Z"), Some(&t2))])
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.refused.len()), (1, 0));
    store.shutdown().await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sqlite_refuses_foreign_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db"), Options::not_durable()).unwrap();
    runtime().block_on(check(Arc::new(store)));
}

#[test]
fn postgres_refuses_foreign_records() {
    let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
    let url = cluster.create_database().unwrap();
    let store = PgStore::open(&url).unwrap();
    runtime().block_on(check(Arc::new(store)));
}
