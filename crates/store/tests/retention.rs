//! Retention and erasure on both stores (the PostgreSQL one as two nodes): a purge deletes
//! what its dry run counted, leaves daily answers (calls, activity, CSAT, funnels) unchanged,
//! keeps what later events need (each agent's last status, each contact's first arrival at a
//! stage), refuses records dated before its horizon on every node, and an erasure removes a
//! contact's personal data from every version while the numbers stay.

mod common;

use common::{each_store, runtime, Open};
use dialboard_engine::event::{parse_event, ParsedEvent};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::retention::{Cutoffs, RetentionPolicy};
use dialboard_store::{CallsRequest, Store, TenantInfo, TenantSettings};
use serde_json::{json, Value};
use std::sync::Arc;

/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000;

fn events(values: Vec<Value>) -> Vec<ParsedEvent> {
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    values.iter().map(|v| parse_event(v, &taxonomy).unwrap()).collect()
}

fn call(id: &str, call_id: &str, agent: &str, disposition: &str, at: &str) -> Value {
    json!({"id": id, "type": "call", "call_id": call_id, "agent_id": agent, "team_id": "t1", "disposition": disposition,
        "started_at": at, "talk_seconds": 60, "contact_id": format!("p-{call_id}"),
        "prospect": {"name": format!("Person {call_id}"), "phone": "+15550123"}, "notes": format!("note {call_id}")})
}

fn history() -> Vec<Value> {
    let mut v = Vec::new();
    for (day, prefix) in [("2026-01-10", "old"), ("2026-01-11", "old2"), ("2026-05-30", "new")] {
        for i in 0..4 {
            let disposition = ["Meeting Booked", "No Answer", "Busy", "Not Interested"][i];
            v.push(call(
                &format!("{prefix}-{i}"),
                &format!("{prefix}{i}"),
                &format!("a{}", i % 2),
                disposition,
                &format!("{day}T1{i}:00:00Z"),
            ));
        }
        for (n, (status, hour)) in [("dialing", 9), ("on_call", 10), ("wrap_up", 11), ("idle", 12)]
            .iter()
            .enumerate()
        {
            v.push(
                json!({"id": format!("{prefix}-s{n}"), "type": "agent_status", "agent_id": "a0", "status": status,
                "at": format!("{day}T{hour:02}:00:00Z")}),
            );
        }
        v.push(json!({"id": format!("{prefix}-csat"), "type": "csat", "score": 5, "agent_id": "a0", "at": format!("{day}T13:00:00Z")}));
        // The same contact reaches the same stage on each day: only the first arrival counts.
        v.push(
            json!({"id": format!("{prefix}-stage"), "type": "lead_stage", "contact_id": "lead-1", "stage": "connected",
            "campaign_id": "k", "agent_id": "a0", "at": format!("{day}T14:00:00Z")}),
        );
    }
    v
}

fn daily(store: &dyn Store, tenant: i64, rt: &tokio::runtime::Runtime) -> Value {
    let body = json!({"measures": ["total_calls", "connected_calls", "avg_talk_time", "meetings_booked", "active_hours",
        "csat_positive_rate", "contacts_reached"], "granularity": "day",
        "range": {"start": "2026-01-01", "end": "2026-06-01"}});
    rt.block_on(store.query(tenant, body, NOW)).unwrap().unwrap().to_json()
}

fn policy() -> RetentionPolicy {
    RetentionPolicy {
        raw_days: Some(90),
        pipeline_days: Some(90),
        notice_hours: 0,
        ..RetentionPolicy::default()
    }
}

fn purge_keeps_answers(open: Open) {
    let rt = runtime();
    let (a, b) = (open(), open());
    let settings = TenantSettings {
        retention: policy(),
        ..TenantSettings::new("UTC")
    };
    let tenant = rt.block_on(a.create_tenant("t", settings)).unwrap();
    let summary = rt.block_on(a.ingest(tenant.id, events(history()))).unwrap();
    assert_eq!(summary.accepted, history().len());
    let before = daily(&*a, tenant.id, &rt);

    let cutoffs = Cutoffs::at(&policy(), &tenant.settings.purged, &tenant.clock, NOW * 1000);
    let counted = rt.block_on(a.purge(tenant.id, cutoffs.clone(), true)).unwrap();
    // 8 calls; statuses but each agent's last; CSAT; repeated stage arrivals (not the first).
    assert_eq!(counted["raw_records"], 8 + 7 + 2, "{counted:?}");
    assert_eq!(counted["pipeline"], 1, "{counted:?}");
    assert_eq!(counted["day_cells"], 0, "{counted:?}");
    assert!(counted["hour_cells"] > 0 && counted["quarter_cells"] > 0, "{counted:?}");
    let deleted = rt.block_on(a.purge(tenant.id, cutoffs.clone(), false)).unwrap();
    assert_eq!(deleted, counted, "the dry run counts what the purge deletes");
    assert!(rt
        .block_on(a.purge(tenant.id, cutoffs, true))
        .unwrap()
        .values()
        .all(|n| *n == 0));

    for store in [&a, &b] {
        assert_eq!(
            daily(&**store, tenant.id, &rt),
            before,
            "daily answers from the cells that remain"
        );
        let request = CallsRequest {
            query: json!({"range": {"start": "2026-01-01", "end": "2026-02-01"}}),
            cursor: None,
            limit: 50,
        };
        // Another node hears of the purge by a notice (its ingest reads the horizon committed,
        // `pg::writer::current_horizons`; its drill-downs follow within moments).
        let mut page = rt
            .block_on(store.calls(tenant.id, request.clone(), NOW))
            .unwrap()
            .unwrap();
        for _ in 0..100 {
            if page.purged_before.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            page = rt
                .block_on(store.calls(tenant.id, request.clone(), NOW))
                .unwrap()
                .unwrap();
        }
        assert!(page.calls.is_empty());
        assert_eq!(page.purged_before.as_deref(), Some("2026-03-03T00:00:00+00:00"));
        // Read by one agent (through the runs of calls by value, whose purged starts went
        // with the calls): the agent's calls kept, newest first.
        let by_agent = CallsRequest {
            query: json!({"range": {"start": "2026-01-01", "end": "2026-06-01"}, "filters": {"agent": ["a0"]}}),
            cursor: None,
            limit: 50,
        };
        let page = rt.block_on(store.calls(tenant.id, by_agent, NOW)).unwrap().unwrap();
        let ids: Vec<&str> = page.calls.iter().map(|c| c["call_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["new2", "new0"]);
    }
    // On every node: a purged call re-sent or corrected, a late status, is refused by field;
    // a status and a stage arrival after the horizon count as usual.
    let mut correction = call("old-0-fix", "old0", "a0", "Busy", "2026-01-10T10:00:00Z");
    correction["talk_seconds"] = json!(5);
    let late = json!({"id": "late-s", "type": "agent_status", "agent_id": "a0", "status": "on_call", "at": "2026-01-10T09:30:00Z"});
    let again = json!({"id": "again-stage", "type": "lead_stage", "contact_id": "lead-1", "stage": "connected",
        "campaign_id": "k", "agent_id": "a0", "at": "2026-05-31T14:00:00Z"});
    // A correction moving a purged call past the horizon, and an analysis of it, name the call.
    let moved = call("old-1-moved", "old1", "a1", "Meeting Booked", "2026-05-31T10:00:00Z");
    let analysis = json!({"id": "old-1-analysis", "type": "call_analysis", "call_id": "old1", "score": 80,
        "updated_at": "2026-05-31T10:00:00Z"});
    let summary = rt
        .block_on(b.ingest(
            tenant.id,
            events(vec![history()[0].clone(), correction, late, moved, analysis, again]),
        ))
        .unwrap();
    let fields: Vec<&str> = summary.refused.iter().map(|(_, e)| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["started_at", "started_at", "at", "call_id", "call_id"],
        "{summary:?}"
    );
    assert_eq!(summary.accepted, 1);
    let after = daily(&*a, tenant.id, &rt);
    assert_eq!(after["totals"]["total_calls"], before["totals"]["total_calls"]);
    assert_eq!(
        after["totals"]["contacts_reached"], before["totals"]["contacts_reached"],
        "a first arrival stays first"
    );
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
}

fn erasure_keeps_numbers(open: Open) {
    let rt = runtime();
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("e", TenantSettings::new("UTC")))
        .unwrap();
    let mut first = call("v1", "c1", "a0", "No Answer", "2026-05-30T10:00:00Z");
    first["contact_id"] = json!("ct-9");
    first["recording_url"] = json!("https://rec.example/zq.wav");
    let mut second = first.clone();
    second["id"] = json!("v2");
    second["disposition"] = json!("Meeting Booked");
    let other = call("v3", "c2", "a1", "Busy", "2026-05-30T11:00:00Z");
    rt.block_on(store.ingest(tenant.id, events(vec![first, second, other])))
        .unwrap();
    let before = daily(&*store, tenant.id, &rt);
    assert_eq!(rt.block_on(store.erase_contact(tenant.id, "ct-9")).unwrap(), 2);
    assert_eq!(daily(&*store, tenant.id, &rt), before);
    let detail = rt.block_on(store.call(tenant.id, "c1")).unwrap().unwrap().to_string();
    for gone in ["Person c1", "+15550123", "note c1", "zq.wav"] {
        assert!(!detail.contains(gone), "{gone} in {detail}");
    }
    assert!(detail.contains("ct-9"), "ids stay: {detail}");
    let other = rt.block_on(store.call(tenant.id, "c2")).unwrap().unwrap().to_string();
    assert!(other.contains("Person c2"), "{other}");
    rt.block_on(store.shutdown());
}

#[test]
fn a_purge_keeps_daily_answers_on_every_node() {
    each_store(purge_keeps_answers);
}

#[test]
fn erasure_keeps_every_number() {
    each_store(erasure_keeps_numbers);
}

/// `n` calls of `day` with bulky notes that do not compress (pseudo-random hex).
fn bulk(from: usize, n: usize, day: &str) -> Vec<ParsedEvent> {
    events(
        (from..from + n)
            .map(|i| {
                let mut c = call(
                    &format!("b{i}"),
                    &format!("bc{i}"),
                    &format!("a{}", i % 7),
                    "No Answer",
                    &format!("{day}T{:02}:{:02}:{:02}Z", 8 + i % 10, i % 60, (i / 60) % 60),
                );
                let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let notes: String = (0..1200)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        char::from_digit((x % 16) as u32, 16).unwrap()
                    })
                    .collect();
                c["notes"] = json!(notes);
                c
            })
            .collect(),
    )
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// On SQLite, a purge of most of the data gives the space back to the file system while the
/// store keeps serving: the file shrinks to a fraction without a restart, and queries asked
/// all along the purge answer, the same numbers after as before.
#[test]
fn a_purge_shrinks_the_sqlite_file_while_queries_answer() {
    use dialboard_store::sqlite::{Options, SqliteStore};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, Options::not_durable()).unwrap());
    let settings = TenantSettings {
        retention: policy(),
        ..TenantSettings::new("UTC")
    };
    let tenant = rt.block_on(store.create_tenant("t", settings)).unwrap();
    for (i, day) in (0..24).map(|i| (i, format!("2026-01-{:02}", 2 + i))) {
        rt.block_on(store.ingest(tenant.id, bulk(i * 1000, 1000, &day)))
            .unwrap();
    }
    rt.block_on(store.ingest(tenant.id, bulk(100_000, 500, "2026-05-30")))
        .unwrap();
    rt.block_on(store.checkpoint()).unwrap();
    let before = daily(&*store, tenant.id, &rt);
    // The checkpointer copies the log into the file within a quarter second.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let full = file_size(&path);
    assert!(full > 15_000_000, "the file holds the calls: {full} bytes");

    let stop = Arc::new(AtomicBool::new(false));
    let asking = {
        let (store, stop, tenant) = (store.clone(), stop.clone(), tenant.id);
        rt.spawn(async move {
            let mut answered = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"measures": ["total_calls"], "range": {"start": "2026-01-01", "end": "2026-06-01"}});
                store.query(tenant, body, NOW).await.unwrap().unwrap();
                answered += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            answered
        })
    };
    // Every raw event and record goes (events by their arrival, which is now); cells stay.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let cutoffs = Cutoffs {
        raw_ns: Some(now_ns + 1_000_000_000),
        ..Cutoffs::default()
    };
    let deleted = rt.block_on(store.purge(tenant.id, cutoffs, false)).unwrap();
    assert_eq!(deleted["raw_events"], 24_500, "{deleted:?}");
    assert_eq!(deleted["raw_records"], 24_500, "{deleted:?}");
    // The checkpointer's next complete pass cuts the file to what the vacuum left.
    let shrunk = (0..200)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            file_size(&path)
        })
        .find(|size| *size < full / 3);
    stop.store(true, Ordering::Relaxed);
    let answered = rt.block_on(asking).unwrap();
    assert!(answered > 0, "queries answered during the purge");
    assert!(
        shrunk.is_some(),
        "the file shrank from {full} bytes: now {}",
        file_size(&path)
    );
    assert_eq!(daily(&*store, tenant.id, &rt), before, "numbers unchanged");
    rt.block_on(store.shutdown());
}

/// A database made before incremental vacuum (`auto_vacuum=NONE`) is rewritten once when it
/// is opened, and its purges then give space back too.
#[test]
fn an_older_sqlite_file_is_converted_to_incremental_vacuum_at_open() {
    use dialboard_store::sqlite::{Options, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let mode = |path: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap()
    };
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE older (x)")
            .unwrap();
    }
    assert_eq!(mode(&path), 0, "made without auto_vacuum");
    let rt = runtime();
    let store = SqliteStore::open(&path, Options::not_durable()).unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    assert_eq!(mode(&path), 2, "INCREMENTAL after the first open");
    let fresh = dir.path().join("new.db");
    let store = SqliteStore::open(&fresh, Options::not_durable()).unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    assert_eq!(mode(&fresh), 2, "a new database is INCREMENTAL from its first table");
}

/// A store on a fresh PostgreSQL database (its URL for a client of the test's own) with a tenant
/// named `name` in UTC.
fn pg_tenant(rt: &tokio::runtime::Runtime, name: &str) -> (String, dialboard_store::pg::PgStore, Arc<TenantInfo>) {
    let url = common::cluster().create_database().unwrap();
    let store = dialboard_store::pg::PgStore::open(&url).unwrap();
    let tenant = rt
        .block_on(store.create_tenant(name, TenantSettings::new("UTC")))
        .unwrap();
    (url, store, tenant)
}

/// On PostgreSQL an erasure's UPDATE leaves the old row versions, personal data included, in
/// the table until a vacuum: the erasure vacuums what it touched (the events' blocks, and the
/// rows of events stored before blocks), so no dead version is left.
#[test]
fn an_erasure_on_postgresql_leaves_no_dead_row_versions() {
    let rt = runtime();
    let (url, store, tenant) = pg_tenant(&rt, "e");
    let mut first = call("v1", "c1", "a0", "No Answer", "2026-05-30T10:00:00Z");
    first["contact_id"] = json!("ct-9");
    let others = (0..50).map(|i| {
        call(
            &format!("o{i}"),
            &format!("oc{i}"),
            "a1",
            "Busy",
            "2026-05-30T11:00:00Z",
        )
    });
    rt.block_on(store.ingest(tenant.id, events(std::iter::once(first).chain(others).collect())))
        .unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // Dead versions as the table's pages hold them (not the statistics, which lag).
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .unwrap();
    let dead = |client: &mut postgres::Client| -> i64 {
        client
            .query_one(
                "SELECT (coalesce(sum((pgstattuple(i.inhrelid::regclass)).dead_tuple_count), 0) \
                 + (pgstattuple('event_blocks')).dead_tuple_count)::bigint \
                 FROM pg_inherits i WHERE i.inhparent = 'events'::regclass",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(dead(&mut client), 0);
    assert_eq!(rt.block_on(store.erase_contact(tenant.id, "ct-9")).unwrap(), 1);
    assert_eq!(dead(&mut client), 0, "the erased version was vacuumed away");
    rt.block_on(store.shutdown());
}

/// A dry run only counts: on PostgreSQL it takes neither the tenant's ingest lock nor the
/// compaction's, so it answers while a compaction holds its lock, and ingest meanwhile goes on.
/// (Once it waited for the compaction while holding the ingest lock: a node's first daily
/// retention job then stalled every ingest of the tenant behind a long compaction.)
#[test]
fn a_dry_run_on_postgresql_waits_for_no_compaction_and_stalls_no_ingest() {
    use dialboard_store::pg::Lock;
    let rt = runtime();
    let (url, store, tenant) = pg_tenant(&rt, "d");
    rt.block_on(store.ingest(tenant.id, events(history()))).unwrap();
    // A compaction elsewhere holds its lock for the whole test.
    let mut holder = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let (space, key) = Lock::Compact.key();
    holder
        .execute("SELECT pg_advisory_lock($1, $2)", &[&space, &key])
        .unwrap();
    let cutoffs = Cutoffs::at(&policy(), &tenant.settings.purged, &tenant.clock, NOW * 1000);
    let (counts, ingested) = rt.block_on(async {
        let dry = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            store.purge(tenant.id, cutoffs, true),
        );
        let late = events(vec![call("late", "late1", "a0", "Busy", "2026-05-31T10:00:00Z")]);
        let ingest = tokio::time::timeout(std::time::Duration::from_secs(20), store.ingest(tenant.id, late));
        tokio::join!(dry, ingest)
    });
    let counts = counts
        .expect("the dry run answers while the compaction lock is held")
        .unwrap();
    assert!(
        counts.values().any(|n| *n > 0),
        "it counted what a purge would delete: {counts:?}"
    );
    ingested.expect("ingest goes on meanwhile").unwrap();
    rt.block_on(store.shutdown());
}

/// A node takes the purge horizon its ingest checks from the database, under the tenant's
/// ingest lock, not from what it last heard: a record dated before a horizon that another node
/// committed is refused even before this node hears of that purge.
#[test]
fn a_node_refuses_records_before_a_horizon_it_has_not_heard_of() {
    let rt = runtime();
    let (url, node, tenant) = pg_tenant(&rt, "h");
    rt.block_on(node.ingest(tenant.id, events(history()))).unwrap();
    // Another node's purge, committed without a notice reaching this one.
    let mut settings = tenant.settings.clone();
    settings.purged.raw_before_ns = Some(1_772_496_000 * 1_000_000_000); // 2026-03-03
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .execute(
            "UPDATE tenants SET settings = $1 WHERE id = $2",
            &[&serde_json::to_string(&settings).unwrap(), &tenant.id],
        )
        .unwrap();
    let old = call("pre-horizon", "pre1", "a0", "Busy", "2026-01-12T10:00:00Z");
    let summary = rt.block_on(node.ingest(tenant.id, events(vec![old]))).unwrap();
    let fields: Vec<&str> = summary.refused.iter().map(|(_, e)| e.field.as_str()).collect();
    assert_eq!(fields, ["started_at"], "{summary:?}");
    assert_eq!(summary.accepted, 0);
    rt.block_on(node.shutdown());
}
