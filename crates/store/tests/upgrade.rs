//! A database written before rollups of conversations, CSAT and stages existed gets them
//! computed when it is opened by this version.

use dialboard_engine::event::{parse_event, ParsedEvent};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::pg::{cluster::Cluster, PgStore};
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{CallsRequest, DirectoryKind, Store, TenantInfo, TenantSettings};
use serde_json::json;
use std::sync::Arc;

#[test]
fn rollups_of_older_databases_are_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = parse(&[
        json!({"id": "1", "type": "conversation", "conversation_id": "v1", "channel": "email",
               "opened_at": "2026-03-02T10:00:00Z", "first_response_at": "2026-03-02T10:05:00Z"}),
        json!({"id": "2", "type": "csat", "conversation_id": "v1", "score": 5, "at": "2026-03-02T11:00:00Z"}),
        json!({"id": "3", "type": "lead_stage", "contact_id": "p1", "stage": "closed_won", "amount": 1200.5,
               "at": "2026-03-03T10:00:00Z"}),
        json!({"id": "4", "type": "lead_stage", "contact_id": "p1", "stage": "closed_won", "amount": 99,
               "at": "2026-03-04T10:00:00Z"}),
    ]);
    let query = json!({"measures": ["ticket_volume", "median_first_response_time", "csat_avg", "deals_won", "revenue"],
                       "range": {"start": "2026-03-01", "end": "2026-03-08"}});
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let settings = TenantSettings::new("UTC");
    let tenant = rt.block_on(store.create_tenant("t", settings)).unwrap();
    rt.block_on(store.ingest(tenant.id, events)).unwrap();
    let before = rt
        .block_on(store.query(tenant.id, query.clone(), 0))
        .unwrap()
        .unwrap()
        .to_json();
    assert_eq!(before["totals"]["revenue"], json!(1200.5));
    rt.block_on(store.shutdown());

    // What an older version left behind: the records, no rollups of them.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DELETE FROM cells; DELETE FROM pending_deltas; DROP INDEX lead_stages_by_contact; DROP INDEX csat_by_conversation;
         DROP TABLE directory; DROP TABLE pending_contributions; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let after = rt
        .block_on(store.query(tenant.id, query, 0))
        .unwrap()
        .unwrap()
        .to_json();
    assert_eq!(after, before);
    rt.block_on(store.shutdown());
}

/// A database of schema 3 kept stage rollups without the time from each meeting's first call,
/// and without the stage cells that leave out the agent; opened by this version it gains both,
/// and nothing is counted twice. The index of calls by contact that versions 4 and 5 kept is
/// dropped: the first calls come from the writer's map.
#[test]
fn meetings_of_older_databases_gain_their_days_from_the_first_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = parse(&[
        json!({"id": "1", "type": "call", "call_id": "c1", "agent_id": "a1", "disposition": "Connected",
               "started_at": "2026-03-02T10:00:00Z"}),
        json!({"id": "2", "type": "lead_stage", "contact_id": "p1", "stage": "meeting_booked",
               "at": "2026-03-04T22:00:00Z"}),
    ]);
    let query = json!({"measures": ["contacts_reached", "avg_days_to_meeting"],
                       "range": {"start": "2026-03-01", "end": "2026-03-08"}});
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    rt.block_on(store.ingest(tenant.id, events)).unwrap();
    rt.block_on(store.checkpoint()).unwrap();
    rt.block_on(store.shutdown());
    // The call's contact, as schema 3 kept it: its stage cells know nothing of the call.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE calls SET contact_id = 'p1'; DELETE FROM cells WHERE cuboid = 8;
         CREATE INDEX calls_by_contact ON calls (tenant_id, contact_id, started_ns);
         DELETE FROM pending_deltas; DROP TABLE pending_contributions; PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let totals = rt
        .block_on(store.query(tenant.id, query, 0))
        .unwrap()
        .unwrap()
        .to_json()["totals"]
        .clone();
    assert_eq!(totals, json!({"contacts_reached": 1, "avg_days_to_meeting": 2.5}));
    rt.block_on(store.shutdown());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'calls_by_contact'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0);
}

/// A database written before calls had cells by campaign and intent gets them computed when it
/// is opened: the intents, tenant-wide and per campaign, are what they were, an analysis that
/// moved a call to another intent included. `downgrade` leaves what the previous version would
/// have: the calls and analyses, no intent cells.
/// Each query's rows as `store` answers them for the tenant.
fn rows_of(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    tenant_id: i64,
    queries: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    queries
        .iter()
        .map(|q| {
            rt.block_on(store.query(tenant_id, q.clone(), 0))
                .unwrap()
                .unwrap()
                .to_json()["rows"]
                .clone()
        })
        .collect()
}

fn calls_gain_their_intent_cells(open: &dyn Fn() -> Arc<dyn Store>, downgrade: &mut dyn FnMut()) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = parse(&[
        json!({"id": "1", "type": "call_analysis", "call_id": "c1", "intent": "pricing", "score": 80,
               "updated_at": "2026-03-02T10:10:00Z"}),
        json!({"id": "2", "type": "call", "call_id": "c1", "agent_id": "a1", "campaign_id": "k1",
               "disposition": "Connected", "started_at": "2026-03-02T10:00:00Z"}),
        json!({"id": "3", "type": "call", "call_id": "c2", "agent_id": "a1", "campaign_id": "k2",
               "disposition": "No Answer", "started_at": "2026-03-03T10:00:00Z"}),
        json!({"id": "4", "type": "call_analysis", "call_id": "c2", "intent": "pricing",
               "updated_at": "2026-03-03T10:10:00Z"}),
        json!({"id": "5", "type": "call_analysis", "call_id": "c2", "intent": "support",
               "updated_at": "2026-03-03T11:00:00Z"}),
        json!({"id": "6", "type": "call", "call_id": "c3", "agent_id": "a2", "campaign_id": "k1",
               "disposition": "Connected", "started_at": "2026-03-04T10:00:00Z"}),
    ]);
    let range = json!({"start": "2026-03-01", "end": "2026-03-08"});
    let queries = [
        json!({"measures": ["total_calls", "connected_calls"], "dimensions": ["intent"], "range": range}),
        json!({"measures": ["total_calls"], "dimensions": ["intent"], "filters": {"campaign": ["k1"]}, "range": range}),
    ];
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    rt.block_on(store.ingest(tenant.id, events)).unwrap();
    let answers = |store: &dyn Store| rows_of(&rt, store, tenant.id, &queries);
    let before = answers(&*store);
    assert_eq!(before[0].as_array().unwrap().len(), 3, "{before:?}");
    assert_eq!(before[1].as_array().unwrap().len(), 2, "{before:?}");
    rt.block_on(store.checkpoint()).unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    downgrade();
    let store = open();
    assert_eq!(answers(&*store), before);
    rt.block_on(store.shutdown());
}

/// The columns migrations after the calls' rebuild (the 13th) added, which a database of an
/// older version lacks (adding a column cannot be run twice).
const LATER_COLUMNS: &str = "ALTER TABLE calls DROP COLUMN event_seq;";

/// A check with `open` and `downgrade` on SQLite: `downgrade` leaves the database as schema
/// `version` would have, with no cells of `cuboid` (whatever migrations came after).
type UpgradeCheck = fn(&dyn Fn() -> Arc<dyn Store>, &mut dyn FnMut());

fn on_older_sqlite(cuboid: u8, version: usize, check: UpgradeCheck) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("older.db");
    let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, Options::default()).unwrap()) };
    check(&open, &mut || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "DELETE FROM cells WHERE cuboid = {cuboid}; DELETE FROM pending_deltas; {LATER_COLUMNS} \
             PRAGMA user_version = {version};"
        ))
        .unwrap();
    });
}

/// The same on PostgreSQL.
fn on_older_postgresql(cuboid: u8, version: usize, check: UpgradeCheck) {
    let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
    let url = cluster.create_database().unwrap();
    let open = || -> Arc<dyn Store> { Arc::new(PgStore::open(&url).unwrap()) };
    check(&open, &mut || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DELETE FROM cells WHERE cuboid = {cuboid}; DELETE FROM cell_deltas WHERE cuboid = {cuboid};
                 UPDATE schema_version SET version = {version};"
            ))
            .unwrap();
    });
}

#[test]
fn calls_of_older_sqlite_databases_gain_their_intent_cells() {
    on_older_sqlite(
        9,
        dialboard_store::sqlite::CALL_INTENTS_VERSION - 1,
        calls_gain_their_intent_cells,
    );
}

#[test]
fn calls_of_older_postgresql_databases_gain_their_intent_cells() {
    on_older_postgresql(
        9,
        dialboard_store::pg::CALL_INTENTS_VERSION - 1,
        calls_gain_their_intent_cells,
    );
}

/// A database written before calls by team and campaign lived in `cells::TEAM_CAMPAIGNS` gets
/// those cells computed when it is opened: a call without a team counts under its agent's team
/// in the directory, by campaign, and follows the agent when the directory moves it.
/// `downgrade` leaves what the previous version would have: no cells of that cuboid.
fn calls_gain_their_team_campaign_cells(open: &dyn Fn() -> Arc<dyn Store>, downgrade: &mut dyn FnMut()) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = parse(&[
        json!({"id": "1", "type": "call", "call_id": "c1", "agent_id": "a1", "campaign_id": "k1",
               "disposition": "Connected", "started_at": "2026-03-02T10:00:00Z"}),
        json!({"id": "2", "type": "call", "call_id": "c2", "agent_id": "a1", "campaign_id": "k1", "team_id": "t2",
               "disposition": "No Answer", "started_at": "2026-03-03T10:00:00Z"}),
        json!({"id": "3", "type": "call", "call_id": "c3", "agent_id": "a2", "campaign_id": "k2",
               "disposition": "Connected", "started_at": "2026-03-04T10:00:00Z"}),
    ]);
    let query = json!({"measures": ["total_calls"], "dimensions": ["team", "campaign"],
                       "range": {"start": "2026-03-01", "end": "2026-03-08"}});
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    let put_agent = |store: &dyn Store, id: &str, team: &str| {
        rt.block_on(store.put_directory(
            tenant.id,
            DirectoryKind::Agent,
            id,
            json!({"name": id, "team_id": team}),
        ))
        .unwrap()
    };
    put_agent(&*store, "a1", "t1");
    rt.block_on(store.ingest(tenant.id, events)).unwrap();
    let rows = |store: &dyn Store| {
        rt.block_on(store.query(tenant.id, query.clone(), 0))
            .unwrap()
            .unwrap()
            .to_json()["rows"]
            .clone()
    };
    // c1 has no team: a1's in the directory; a2 is in none.
    let expected = json!([[null, "k2", 1], ["t1", "k1", 1], ["t2", "k1", 1]]);
    assert_eq!(rows(&*store), expected);
    rt.block_on(store.checkpoint()).unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    downgrade();
    let store = open();
    assert_eq!(rows(&*store), expected);
    put_agent(&*store, "a2", "t2");
    assert_eq!(
        rows(&*store),
        json!([["t1", "k1", 1], ["t2", "k1", 1], ["t2", "k2", 1]])
    );
    rt.block_on(store.shutdown());
}

#[test]
fn calls_of_older_sqlite_databases_gain_their_team_campaign_cells() {
    let version = dialboard_store::sqlite::TEAM_CAMPAIGNS_VERSION - 1;
    on_older_sqlite(10, version, calls_gain_their_team_campaign_cells);
}

#[test]
fn calls_of_older_postgresql_databases_gain_their_team_campaign_cells() {
    let version = dialboard_store::pg::TEAM_CAMPAIGNS_VERSION - 1;
    on_older_postgresql(10, version, calls_gain_their_team_campaign_cells);
}

/// Before issue 24 ids were kept as their text: on SQLite `events` and `calls` were keyed by
/// them, on PostgreSQL `event_ids`, `call_keys` and the events' record index were B-trees on the
/// text. In this version they are found through hashed keys (SQLite's key runs,
/// `sqlite::keys`; PostgreSQL's indexes on a hash of the id): every event already stored is
/// still a duplicate when sent again, a correction still finds the call it replaces, and a
/// call's detail still lists its versions. `downgrade` leaves the old layout.
fn ids_stay_known(open: &dyn Fn() -> Arc<dyn Store>, downgrade: &mut dyn FnMut()) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let call = |id: &str, call: &str, disposition: &str, updated: &str| {
        json!({"id": id, "type": "call", "call_id": call, "agent_id": "a1", "disposition": disposition,
               "started_at": "2026-03-02T10:00:00Z", "updated_at": updated})
    };
    let first = [
        call("e1", "c1", "No Answer", "2026-03-02T10:01:00Z"),
        call("e2", "c2", "Connected", "2026-03-02T10:01:00Z"),
    ];
    let query =
        json!({"measures": ["total_calls", "connected_calls"], "range": {"start": "2026-03-01", "end": "2026-03-08"}});
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    rt.block_on(store.ingest(tenant.id, parse(&first))).unwrap();
    rt.block_on(store.checkpoint()).unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    downgrade();
    let store = open();
    let totals = |store: &dyn Store| {
        rt.block_on(store.query(tenant.id, query.clone(), 0))
            .unwrap()
            .unwrap()
            .to_json()["totals"]
            .clone()
    };
    assert_eq!(totals(&*store), json!({"total_calls": 2, "connected_calls": 1}));
    // The old events again (one with other content): duplicates; c1 corrected: replaced.
    let mut again = first.to_vec();
    again[0]["disposition"] = json!("Connected");
    again.push(call("e3", "c1", "Connected", "2026-03-02T10:05:00Z"));
    let summary = rt.block_on(store.ingest(tenant.id, parse(&again))).unwrap();
    assert_eq!((summary.accepted, summary.duplicates), (1, 2));
    assert_eq!(totals(&*store), json!({"total_calls": 2, "connected_calls": 2}));
    let detail = rt.block_on(store.call(tenant.id, "c1")).unwrap().unwrap();
    let versions: Vec<&str> = detail["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["e1", "e3"]);
    rt.block_on(store.shutdown());
}

#[test]
fn ids_of_older_sqlite_databases_stay_known() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v11.db");
    let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, Options::default()).unwrap()) };
    ids_stay_known(&open, &mut || {
        // Version 11's layout: events and calls keyed by their ids, no key runs.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SQLITE_V11_IDS).unwrap();
    });
}

#[test]
fn ids_of_older_postgresql_databases_stay_known() {
    let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
    let url = cluster.create_database().unwrap();
    let open = || -> Arc<dyn Store> { Arc::new(PgStore::open(&url).unwrap()) };
    ids_stay_known(&open, &mut || {
        // The layout before hashed keys: B-trees on the ids' text.
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DROP INDEX events_by_record; ALTER TABLE events DROP COLUMN record_hash;
                 CREATE INDEX events_by_record ON events (tenant_id, record_key) WHERE record_key IS NOT NULL;
                 DROP INDEX event_ids_by_hash; ALTER TABLE event_ids DROP COLUMN id_hash;
                 ALTER TABLE event_ids ADD PRIMARY KEY (tenant_id, event_id);
                 DROP INDEX call_keys_by_hash; DROP INDEX call_keys_by_contact;
                 ALTER TABLE call_keys DROP COLUMN call_hash, DROP COLUMN contact_hash;
                 ALTER TABLE call_keys ADD PRIMARY KEY (tenant_id, call_id);
                 CREATE INDEX call_keys_by_contact ON call_keys (tenant_id, contact_id, started_ns) WHERE contact_id IS NOT NULL;
                 UPDATE schema_version SET version = {};",
                dialboard_store::pg::HASHED_KEYS_VERSION - 1
            ))
            .unwrap();
    });
}

/// SQLite's version 11: events and calls keyed by their ids, no key runs, each event a row with
/// its body (here the rows of `ids_stay_known`'s two events, with a stand-in for their bodies,
/// which this version keeps in a compressed block only).
const SQLITE_V11_IDS: &str = "INSERT INTO events (tenant_id, event_id, type, record_key, received_at, body)
             SELECT tenant_id, 'e' || n, 'call', 'c' || n, received_at, json_object('id', 'e' || n, 'type', 'call')
             FROM event_blocks, (SELECT 1 AS n UNION ALL SELECT 2);
         DROP TABLE event_blocks;
         CREATE TABLE old_events (tenant_id INTEGER NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
             record_key TEXT, received_at INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, event_id)) WITHOUT ROWID;
         INSERT INTO old_events SELECT tenant_id, event_id, type, record_key, received_at, body FROM events;
         DROP TABLE events; ALTER TABLE old_events RENAME TO events;
         CREATE INDEX events_by_record ON events (tenant_id, record_key) WHERE record_key IS NOT NULL;
         CREATE TABLE old_calls AS SELECT * FROM calls; DROP TABLE calls;
         CREATE TABLE calls (tenant_id INTEGER NOT NULL, call_id TEXT NOT NULL, event_id TEXT NOT NULL,
             version_ns INTEGER NOT NULL, started_ns INTEGER NOT NULL, agent_id TEXT NOT NULL, team_id TEXT,
             campaign_id TEXT, list_id TEXT, contact_id TEXT, lead_source TEXT, direction TEXT,
             disposition TEXT NOT NULL, ended_ns INTEGER, talk_seconds INTEGER, wait_seconds INTEGER,
             wrap_seconds INTEGER, flags INTEGER NOT NULL, PRIMARY KEY (tenant_id, call_id)) WITHOUT ROWID;
         INSERT INTO calls SELECT tenant_id, call_id, event_id, version_ns, started_ns, agent_id, team_id, campaign_id,
             list_id, contact_id, lead_source, direction, disposition, ended_ns, talk_seconds, wait_seconds,
             wrap_seconds, flags FROM old_calls;
         DROP TABLE old_calls;
         CREATE INDEX calls_by_start ON calls (tenant_id, started_ns, call_id);
         CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_ns);
         DROP TABLE key_chunks; DROP TABLE key_runs;
         PRAGMA user_version = 11;";

/// A database written before the agent cuboid kept weeks and months (`cells::AGENT_WEEKS`)
/// gets them summed from its day cells when it is opened: boards of every agent over whole
/// weeks and a whole month (which read those cells) answer as before, across a DST change.
/// `downgrade` leaves what the previous version would have: no week or month cells.
fn agents_gain_their_week_and_month_cells(open: &dyn Fn() -> Arc<dyn Store>, downgrade: &mut dyn FnMut()) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let events: Vec<ParsedEvent> = (0..40)
        .map(|i| {
            let disposition = ["Connected", "No Answer", "Meeting Booked"][i % 3];
            let started = format!(
                "2026-{}T{:02}:30:00Z",
                ["02-25", "03-01", "03-07", "03-08", "03-09", "03-31"][i % 6],
                3 + i % 20
            );
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": format!("a{}", i % 4),
                   "disposition": disposition, "started_at": started, "talk_seconds": 30 + i})
        })
        .map(|e| parse_event(&e, &taxonomy).unwrap())
        .collect();
    let queries = [
        json!({"measures": ["total_calls", "connected_calls", "meetings_booked", "total_talk_time"],
               "dimensions": ["agent"], "range": {"start": "2026-02-23", "end": "2026-04-06"}}),
        json!({"measures": ["total_calls", "connected_calls", "meetings_booked", "total_talk_time"],
               "dimensions": ["agent"], "range": {"start": "2026-03-01", "end": "2026-04-01"}}),
    ];
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("America/New_York")))
        .unwrap();
    rt.block_on(store.ingest(tenant.id, events)).unwrap();
    let answers = |store: &dyn Store| rows_of(&rt, store, tenant.id, &queries);
    let before = answers(&*store);
    assert_eq!(before[0].as_array().unwrap().len(), 4, "{before:?}");
    assert_eq!(
        (&before[0][0][0], &before[0][0][1]),
        (&json!("a0"), &json!(10)),
        "{before:?}"
    );
    rt.block_on(store.checkpoint()).unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    downgrade();
    let store = open();
    assert_eq!(answers(&*store), before);
    rt.block_on(store.shutdown());
}

#[test]
fn agents_of_older_sqlite_databases_gain_their_week_and_month_cells() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("older.db");
    let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, Options::default()).unwrap()) };
    agents_gain_their_week_and_month_cells(&open, &mut || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "DELETE FROM cells WHERE cuboid = 1 AND grain IN (3, 4); {LATER_COLUMNS} PRAGMA user_version = {};",
            dialboard_store::sqlite::AGENT_WEEKS_VERSION - 1
        ))
        .unwrap();
    });
}

#[test]
fn agents_of_older_postgresql_databases_gain_their_week_and_month_cells() {
    let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
    let url = cluster.create_database().unwrap();
    let open = || -> Arc<dyn Store> { Arc::new(PgStore::open(&url).unwrap()) };
    agents_gain_their_week_and_month_cells(&open, &mut || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DELETE FROM cells WHERE cuboid = 1 AND grain IN (3, 4);
                 DELETE FROM cell_deltas WHERE cuboid = 1 AND grain IN (3, 4);
                 UPDATE schema_version SET version = {};",
                dialboard_store::pg::AGENT_WEEKS_VERSION - 1
            ))
            .unwrap();
    });
}

/// A SQLite database written when four B-tree indexes listed calls by agent, team, campaign
/// and disposition gets its runs (`value_runs`) built from the calls when it is opened: the
/// drill-downs by each of them page through the same calls, newest first, as before; and calls
/// ingested after the upgrade join them.
#[test]
fn drill_downs_of_older_sqlite_databases_read_the_same_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let call = |i: usize| {
        let disposition = ["Connected", "No Answer"][i % 2];
        let e = json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"),
            "agent_id": format!("a{}", i % 3), "team_id": format!("t{}", i % 2), "campaign_id": format!("k{}", i % 4),
            "disposition": disposition,
            "started_at": format!("2026-03-0{}T{:02}:{:02}:00Z", 1 + i % 5, i % 24, i % 7)});
        parse_event(&e, &taxonomy).unwrap()
    };
    let filters = [
        json!({"agent": ["a1"]}),
        json!({"team": ["t0"]}),
        json!({"campaign": ["k3"]}),
        json!({"disposition": ["No Answer"]}),
    ];
    let pages = |store: &dyn Store, tenant: i64| -> Vec<Vec<String>> {
        filters
            .iter()
            .map(|filter| {
                let mut ids = Vec::new();
                let mut cursor = None;
                loop {
                    let request = dialboard_store::CallsRequest {
                        query: json!({"range": {"start": "2026-03-01", "end": "2026-03-08"}, "filters": filter}),
                        cursor: cursor.take(),
                        limit: 3,
                    };
                    let page = rt.block_on(store.calls(tenant, request, 0)).unwrap().unwrap();
                    ids.extend(page.calls.iter().map(|c| c["call_id"].as_str().unwrap().to_string()));
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break ids,
                    }
                }
            })
            .collect()
    };
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    rt.block_on(store.ingest(tenant.id, (0..60).map(call).collect()))
        .unwrap();
    let before = pages(&store, tenant.id);
    assert_eq!(before[0].len(), 20, "{before:?}");
    rt.block_on(store.shutdown());
    drop(store);

    // What the previous version left behind: the indexes, no runs.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "DROP TABLE value_chunks; DROP TABLE value_runs;
         CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_ns);
         CREATE INDEX calls_by_campaign ON calls (tenant_id, campaign_id, started_ns);
         CREATE INDEX calls_by_team ON calls (tenant_id, team_id, started_ns);
         CREATE INDEX calls_by_disposition ON calls (tenant_id, disposition, started_ns);
         {LATER_COLUMNS} PRAGMA user_version = 25;"
    ))
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    assert_eq!(pages(&store, tenant.id), before);
    rt.block_on(store.ingest(tenant.id, (60..66).map(call).collect()))
        .unwrap();
    let after = pages(&store, tenant.id);
    assert_eq!(after[0].len(), 22, "{after:?}");
    rt.block_on(store.shutdown());
}

/// A SQLite database written while the writer held every contact's first call in memory has no
/// calls listed by contact in its key runs: opening it lists the stored calls (migration 28), so
/// a meeting booked after the upgrade counts the days from a call stored before it, and a
/// correction that moves that call later is followed to the contact's next call.
#[test]
fn meetings_after_an_upgrade_find_their_first_call_among_older_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v27.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let call = |id: &str, call: &str, started: &str, updated: &str| {
        json!({"id": id, "type": "call", "call_id": call, "agent_id": "a1", "disposition": "Connected",
               "contact_id": "p1", "started_at": started, "updated_at": updated})
    };
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    let calls = [
        call("e1", "c1", "2026-03-02T10:00:00Z", "2026-03-02T10:10:00Z"),
        call("e2", "c2", "2026-03-03T10:00:00Z", "2026-03-03T10:10:00Z"),
    ];
    rt.block_on(store.ingest(tenant.id, parse(&calls))).unwrap();
    rt.block_on(store.shutdown());
    drop(store);

    // What version 27 left behind: no runs of calls by contact.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DELETE FROM key_chunks WHERE run IN (SELECT run FROM key_runs WHERE kind = 3);
         DELETE FROM key_runs WHERE kind = 3; PRAGMA user_version = 27;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let days = |store: &SqliteStore| {
        let query = json!({"measures": ["avg_days_to_meeting"], "range": {"start": "2026-03-01", "end": "2026-03-08"}});
        rt.block_on(store.query(tenant.id, query, 0))
            .unwrap()
            .unwrap()
            .to_json()["totals"]["avg_days_to_meeting"]
            .clone()
    };
    let meeting = json!({"id": "e3", "type": "lead_stage", "contact_id": "p1", "stage": "meeting_booked",
                         "at": "2026-03-04T22:00:00Z"});
    rt.block_on(store.ingest(tenant.id, parse(&[meeting]))).unwrap();
    assert_eq!(days(&store), json!(2.5));
    // c1 moved after c2: the first call is now c2's.
    let moved = call("e4", "c1", "2026-03-03T22:00:00Z", "2026-03-04T10:10:00Z");
    rt.block_on(store.ingest(tenant.id, parse(&[moved]))).unwrap();
    assert_eq!(days(&store), json!(1.5));
    rt.block_on(store.shutdown());
}

/// Events stored in an older layout stay readable: a call's versions, an export's bodies (by
/// the call's event and by id), duplicates (also after an erasure, which keeps ids), an erasure
/// and a purge take them as well as the events stored since. `downgrade` is given the first
/// event's body and the tenant, and leaves that event in the old layout.
fn old_events_stay_readable(open: &dyn Fn() -> Arc<dyn Store>, downgrade: &mut dyn FnMut(&str, i64)) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let call = |id: &str, disposition: &str, updated: &str| {
        json!({"id": id, "type": "call", "call_id": "c1", "agent_id": "a1", "disposition": disposition,
               "contact_id": "ct-1", "notes": format!("notes of {id}"),
               "started_at": "2026-03-02T10:00:00Z", "updated_at": updated})
    };
    let first = call("e1", "No Answer", "2026-03-02T10:01:00Z");
    let body = parse(std::slice::from_ref(&first))[0].raw.clone();
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    rt.block_on(store.ingest(tenant.id, parse(std::slice::from_ref(&first))))
        .unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    downgrade(&body, tenant.id);
    let store = open();
    let request = CallsRequest {
        query: json!({"range": {"start": "2026-03-01", "end": "2026-03-08"}}),
        cursor: None,
        limit: 10,
    };
    let page = rt
        .block_on(store.export_calls(tenant.id, request, 1_773_000_000))
        .unwrap()
        .unwrap();
    let exported: serde_json::Value = serde_json::from_str(page.rows[0].body.as_ref().unwrap()).unwrap();
    assert_eq!(exported["notes"], "notes of e1");
    let by_id = rt
        .block_on(store.event_bodies(tenant.id, vec![("c1".into(), "e1".into())]))
        .unwrap();
    assert_eq!(by_id["e1"], body);
    // A duplicate of the old event, and a correction (in this version's layout).
    let second = call("e2", "Connected", "2026-03-02T10:05:00Z");
    let summary = rt
        .block_on(store.ingest(tenant.id, parse(&[first.clone(), second.clone()])))
        .unwrap();
    assert_eq!((summary.accepted, summary.duplicates), (1, 1));
    let notes = |store: &dyn Store| -> Vec<(String, Option<String>)> {
        let detail = rt.block_on(store.call(tenant.id, "c1")).unwrap().unwrap();
        detail["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let notes = v["event"].get("notes").map(|n| n.as_str().unwrap().to_string());
                (v["event_id"].as_str().unwrap().to_string(), notes)
            })
            .collect()
    };
    let with_notes = |id: &str| (id.to_string(), Some(format!("notes of {id}")));
    assert_eq!(notes(&*store), [with_notes("e1"), with_notes("e2")]);
    // Both events held the contact's notes: both lose them, and keep their ids.
    assert_eq!(rt.block_on(store.erase_contact(tenant.id, "ct-1")).unwrap(), 2);
    assert_eq!(notes(&*store), [("e1".into(), None), ("e2".into(), None)]);
    let summary = rt.block_on(store.ingest(tenant.id, parse(&[first, second]))).unwrap();
    assert_eq!(
        (summary.accepted, summary.duplicates),
        (0, 2),
        "still known after the erasure"
    );
    let cutoffs = dialboard_store::retention::Cutoffs {
        raw_ns: Some(i64::MAX),
        ..Default::default()
    };
    let counted = rt.block_on(store.purge(tenant.id, cutoffs.clone(), true)).unwrap();
    let deleted = rt.block_on(store.purge(tenant.id, cutoffs, false)).unwrap();
    assert_eq!(counted["raw_events"], 2, "the old event and the new one: {counted:?}");
    assert_eq!(deleted, counted);
    rt.block_on(store.shutdown());
}

/// Before event blocks (PostgreSQL's version 19) each event was an `events` row with its body,
/// and `event_ids` held only the id. Those rows stay where they are.
#[test]
fn events_of_older_postgresql_databases_stay_readable() {
    let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
    let url = cluster.create_database().unwrap();
    let open = || -> Arc<dyn Store> { Arc::new(PgStore::open(&url).unwrap()) };
    old_events_stay_readable(&open, &mut |body, _| {
        // Version 18's layout: the event in an `events` row, its id alone in `event_ids`.
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE events_old PARTITION OF events DEFAULT;
                 INSERT INTO events (tenant_id, received_ns, event_id, type, record_key, body)
                     SELECT tenant_id, received_ns, event_id, 'call', record_key, {body} FROM event_ids;
                 UPDATE event_ids SET received_ns = NULL, record_key = NULL;
                 DELETE FROM event_blocks;
                 UPDATE schema_version SET version = {};",
                dialboard_store::pg::EVENT_BLOCKS_VERSION - 1,
                body = postgres_text(body),
            ))
            .unwrap();
    });
}

/// Before migration 32 (SQLite) each event had an `events` row (id, type, record key, the time
/// received, an empty body) and its block held only its `seq` and body; since, a block holds
/// the whole event and there is no row. Those rows stay; events are numbered on after them.
#[test]
fn events_of_older_sqlite_databases_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v30.db");
    let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, Options::default()).unwrap()) };
    old_events_stay_readable(&open, &mut |body, tenant| {
        // Version 30's layout: the event's row, and a block of its `seq` (8 bytes), its body's
        // length (4 bytes) and its body, LZ4-compressed.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let (seq, received): (i64, i64) = conn
            .query_row("SELECT first_seq, received_at FROM event_blocks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let mut block = seq.to_le_bytes().to_vec();
        block.extend_from_slice(&(body.len() as u32).to_le_bytes());
        block.extend_from_slice(body.as_bytes());
        conn.execute_batch("DELETE FROM event_blocks; ALTER TABLE event_blocks DROP COLUMN events;")
            .unwrap();
        conn.execute(
            "INSERT INTO event_blocks (first_seq, tenant_id, received_at, data) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![seq, tenant, received, lz4_flex::block::compress_prepend_size(&block)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (seq, tenant_id, event_id, type, record_key, received_at, body) \
             VALUES (?1, ?2, 'e1', 'call', 'c1', ?3, '')",
            rusqlite::params![seq, tenant, received],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 30).unwrap();
    });
}

/// Events as the server parses them, under the default taxonomy.
fn parse(events: &[serde_json::Value]) -> Vec<ParsedEvent> {
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    events.iter().map(|e| parse_event(e, &taxonomy).unwrap()).collect()
}

/// A store on a throwaway PostgreSQL cluster (kept running while the first value lives), its
/// database's URL (to downgrade it), a runtime, and a tenant in UTC.
fn postgres_tenant() -> (Cluster, String, tokio::runtime::Runtime, PgStore, Arc<TenantInfo>) {
    let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
    let url = cluster.create_database().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = PgStore::open(&url).unwrap();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    (cluster, url, rt, store, tenant)
}

/// `text` as an SQL string literal.
fn postgres_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Before `staged_contacts` (PostgreSQL's version 20) the writer looked up every contact's
/// stages; now only those of the contacts it lists. Opening an older database lists the
/// contacts its stages name, so a call stored after the upgrade still finds the meeting its
/// contact booked before it (the days to the meeting count from that call).
#[test]
fn stages_of_older_postgresql_databases_stay_found() {
    let (_cluster, url, rt, store, tenant) = postgres_tenant();
    let meeting = json!({"id": "e1", "type": "lead_stage", "contact_id": "p1", "stage": "meeting_booked",
                         "at": "2026-03-04T22:00:00Z"});
    rt.block_on(store.ingest(tenant.id, parse(&[meeting]))).unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE staged_contacts; UPDATE schema_version SET version = {};",
            dialboard_store::pg::STAGED_CONTACTS_VERSION - 1
        ))
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    let calls = [
        json!({"id": "e2", "type": "call", "call_id": "c1", "agent_id": "a1", "disposition": "Connected",
               "contact_id": "p1", "started_at": "2026-03-02T10:00:00Z"}),
        json!({"id": "e3", "type": "call", "call_id": "c2", "agent_id": "a1", "disposition": "Connected",
               "contact_id": "p2", "started_at": "2026-03-02T11:00:00Z"}),
    ];
    rt.block_on(store.ingest(tenant.id, parse(&calls))).unwrap();
    let query = json!({"measures": ["avg_days_to_meeting"],
                       "range": {"start": "2026-03-01", "end": "2026-03-08"}});
    let totals = rt
        .block_on(store.query(tenant.id, query, 0))
        .unwrap()
        .unwrap()
        .to_json()["totals"]
        .clone();
    assert_eq!(totals, json!({"avg_days_to_meeting": 2.5}));
    rt.block_on(store.shutdown());
}

/// Before sorted runs (PostgreSQL's version 21) calls by agent, campaign, team and disposition
/// were found through B-tree indexes. Opening an older database lists its calls in runs and
/// drops the indexes: drill-downs by one value and the streaks find the calls stored before the
/// upgrade, beside a new call and a correction that moved an old call to another agent.
#[test]
fn calls_of_older_postgresql_databases_stay_found_by_value() {
    let (_cluster, url, rt, store, tenant) = postgres_tenant();
    let call = |id: &str, call: &str, agent: &str, disposition: &str, at: &str| {
        json!({"id": id, "type": "call", "call_id": call, "agent_id": agent, "disposition": disposition,
               "campaign_id": "k1", "started_at": at})
    };
    let old = [
        call("e1", "c1", "a1", "Connected", "2026-03-02T10:00:00Z"),
        call("e2", "c2", "a1", "No Answer", "2026-03-02T11:00:00Z"),
        call("e3", "c3", "a2", "Connected", "2026-03-03T10:00:00Z"),
        call("e4", "c4", "a1", "Connected", "2026-04-02T10:00:00Z"),
    ];
    rt.block_on(store.ingest(tenant.id, parse(&old))).unwrap();
    rt.block_on(store.shutdown());
    drop(store);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE call_run_chunks; DROP TABLE call_runs; DROP SEQUENCE call_run_seq; \
             CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_ns); \
             CREATE INDEX calls_by_campaign ON calls (tenant_id, campaign_id, started_ns); \
             CREATE INDEX calls_by_team ON calls (tenant_id, team_id, started_ns); \
             CREATE INDEX calls_by_disposition ON calls (tenant_id, disposition, started_ns); \
             UPDATE schema_version SET version = {};",
            dialboard_store::pg::VALUE_RUNS_VERSION - 1
        ))
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    let indexes: i64 = client
        .query_one("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'calls_by_%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(indexes, 0, "the indexes by value are dropped");
    let new = [
        call("e5", "c5", "a1", "Connected", "2026-03-04T10:00:00Z"),
        call("e6", "c1", "a2", "Connected", "2026-03-02T10:00:00Z"),
    ];
    rt.block_on(store.ingest(tenant.id, parse(&new))).unwrap();
    let drill = |filters: serde_json::Value| -> Vec<String> {
        let request = CallsRequest {
            query: json!({"range": {"start": "2026-03-01", "end": "2026-05-01"}, "filters": filters}),
            cursor: None,
            limit: 10,
        };
        let page = rt
            .block_on(store.calls(tenant.id, request, 1_780_000_000))
            .unwrap()
            .unwrap();
        page.calls
            .iter()
            .map(|c| c["call_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(drill(json!({"agent": ["a1"]})), ["c4", "c5", "c2"]);
    assert_eq!(drill(json!({"agent": ["a2"]})), ["c3", "c1"]);
    assert_eq!(drill(json!({"disposition": ["Connected"]})), ["c4", "c5", "c3", "c1"]);
    assert_eq!(drill(json!({"campaign": ["k1"]})), ["c4", "c5", "c3", "c2", "c1"]);
    let day = 1_000_000_000 * 86_400;
    let march = 1_772_323_200 * 1_000_000_000; // 2026-03-01
    let streaks = rt
        .block_on(store.disposition_streaks(
            tenant.id,
            vec!["a1".into(), "a2".into()],
            march,
            march + 31 * day,
            vec!["Connected".into()],
        ))
        .unwrap();
    assert_eq!(streaks, [1, 2]);
    rt.block_on(store.shutdown());
}
