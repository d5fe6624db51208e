//! `cargo run --release -p dialboard-bench --bin floor -- [--calls N]`
//!
//! The storage floor of SQLite ingest: how many calls per second SQLite alone takes when it only
//! writes the rows a call needs — no HTTP, no JSON parsing, no rollups — in transactions of
//! 4,000 calls (what group commit makes of 4 clients' batches of 1,000), each durable, with the
//! server's connection settings and its copying of the log. It runs the same generated calls
//! through several layouts, from what dialboard stored per call before session 8 down to the
//! call record alone, to show what the ingest target (SPEC §10: ≥ 100,000 calls/s) leaves for
//! everything else.

use dialboard_bench::{shaped_batches, Shape, BATCH};
use dialboard_store::sqlite::keys::{self, Keys, Kind};
use dialboard_store::sqlite::wal::{CatchUp, WalCheckpointer};
use dialboard_store::sqlite::{configure, Options};
use rusqlite::{params, Connection};
use serde_json::Value;
use std::time::Instant;

/// A call as the writer stores it (parsed beforehand: parsing is not storage).
struct Call {
    event_id: String,
    call_id: String,
    body: String,
    started_ns: i64,
    agent_id: String,
    team_id: String,
    contact_id: String,
    campaign_id: String,
    disposition: String,
    talk_seconds: i64,
}

struct Layout {
    name: &'static str,
    /// Each call's event with its body, keyed by id (the idempotency key and the raw log).
    event_bodies: bool,
    /// Each call's event id only, with one row per transaction holding the bodies.
    event_keys_only: bool,
    record_index: bool,
    contact_index: bool,
    /// The drill-down's indexes of calls by agent, campaign, team and disposition.
    drill_indexes: bool,
    /// Events and calls appended in arrival order, found by hashed keys in sorted runs
    /// (`dialboard_store::sqlite::keys`), as `dialboard serve` stores them since issue 24.
    appended: bool,
}

const LAYOUTS: [Layout; 7] = [
    Layout {
        name: "as stored since issue 24: events and calls appended, hashed keys (also by contact) in sorted runs, the drill-down's four indexes",
        event_bodies: true,
        event_keys_only: false,
        record_index: false,
        contact_index: false,
        drill_indexes: true,
        appended: true,
    },
    Layout {
        name: "as stored before session 8: raw events by id + record index, calls + start and contact indexes",
        event_bodies: true,
        event_keys_only: false,
        record_index: true,
        contact_index: true,
        drill_indexes: false,
        appended: false,
    },
    Layout {
        name: "as stored now: without the contact index, with the drill-down's four indexes",
        event_bodies: true,
        event_keys_only: false,
        record_index: true,
        contact_index: false,
        drill_indexes: true,
        appended: false,
    },
    Layout {
        name: "without the contact index (as stored before the drill-down's indexes)",
        event_bodies: true,
        event_keys_only: false,
        record_index: true,
        contact_index: false,
        drill_indexes: false,
        appended: false,
    },
    Layout {
        name: "without the contact and record indexes",
        event_bodies: true,
        event_keys_only: false,
        record_index: false,
        contact_index: false,
        drill_indexes: false,
        appended: false,
    },
    Layout {
        name: "event ids only, the bodies as one row per transaction; calls + start index",
        event_bodies: false,
        event_keys_only: true,
        record_index: false,
        contact_index: false,
        drill_indexes: false,
        appended: false,
    },
    Layout {
        name: "the call record alone (calls + start index)",
        event_bodies: false,
        event_keys_only: false,
        record_index: false,
        contact_index: false,
        drill_indexes: false,
        appended: false,
    },
];

const CALLS_PER_TRANSACTION: usize = 4 * BATCH;

fn calls(total: usize, shape: &Shape) -> Vec<Call> {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    shaped_batches(0, total, total, 7, shape)
        .iter()
        .flat_map(|b| serde_json::from_slice::<Vec<Value>>(b).expect("generated JSON"))
        .filter(|e| e["type"] == "call")
        .map(|e| Call {
            event_id: text(&e, "id"),
            call_id: text(&e, "call_id"),
            body: e.to_string(),
            started_ns: instant_ns(&text(&e, "started_at")),
            agent_id: text(&e, "agent_id"),
            team_id: text(&e, "team_id"),
            contact_id: text(&e, "contact_id"),
            campaign_id: text(&e, "campaign_id"),
            disposition: text(&e, "disposition"),
            talk_seconds: e["talk_seconds"].as_i64().unwrap_or_default(),
        })
        .collect()
}

fn instant_ns(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().expect("RFC 3339").as_nanosecond() as i64
}

fn open(path: &std::path::Path, layout: &Layout) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    configure(&conn, &Options::default())?;
    if layout.appended {
        conn.execute_batch(concat!(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, event_id TEXT NOT NULL,
                 type TEXT NOT NULL, record_key TEXT, received_at INTEGER NOT NULL, body TEXT NOT NULL);
             CREATE TABLE calls (seq INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, call_id TEXT NOT NULL,
                 event_id TEXT NOT NULL, version_ns INTEGER NOT NULL, started_ns INTEGER NOT NULL, agent_id TEXT NOT NULL,
                 team_id TEXT, campaign_id TEXT, contact_id TEXT, disposition TEXT NOT NULL, talk_seconds INTEGER);
             CREATE INDEX calls_by_start ON calls (tenant_id, started_ns, call_id);
             CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_ns, call_id);
             CREATE INDEX calls_by_campaign ON calls (tenant_id, campaign_id, started_ns, call_id);
             CREATE INDEX calls_by_team ON calls (tenant_id, team_id, started_ns, call_id);
             CREATE INDEX calls_by_disposition ON calls (tenant_id, disposition, started_ns, call_id);",
            dialboard_store::key_tables!()
        ))?;
        return Ok(conn);
    }
    conn.execute_batch(
        "CREATE TABLE events (tenant_id INTEGER NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
             record_key TEXT, received_at INTEGER NOT NULL, body TEXT, PRIMARY KEY (tenant_id, event_id)) WITHOUT ROWID;
         CREATE TABLE raw_batches (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         CREATE TABLE calls (tenant_id INTEGER NOT NULL, call_id TEXT NOT NULL, event_id TEXT NOT NULL,
             version_ns INTEGER NOT NULL, started_ns INTEGER NOT NULL, agent_id TEXT NOT NULL, team_id TEXT,
             campaign_id TEXT, contact_id TEXT, disposition TEXT NOT NULL, talk_seconds INTEGER,
             PRIMARY KEY (tenant_id, call_id)) WITHOUT ROWID;
         CREATE INDEX calls_by_start ON calls (tenant_id, started_ns, call_id);",
    )?;
    if layout.record_index {
        conn.execute_batch(
            "CREATE INDEX events_by_record ON events (tenant_id, record_key) WHERE record_key IS NOT NULL",
        )?;
    }
    if layout.drill_indexes {
        conn.execute_batch(
            "CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_ns);
             CREATE INDEX calls_by_campaign ON calls (tenant_id, campaign_id, started_ns);
             CREATE INDEX calls_by_team ON calls (tenant_id, team_id, started_ns);
             CREATE INDEX calls_by_disposition ON calls (tenant_id, disposition, started_ns);",
        )?;
    }
    if layout.contact_index {
        conn.execute_batch(
            "CREATE INDEX calls_by_contact ON calls (tenant_id, contact_id, started_ns) WHERE contact_id IS NOT NULL",
        )?;
    }
    Ok(conn)
}

/// The appended layout: the writer's own key lookups (`Keys`) before each insert.
fn ingest_appended(conn: &mut Connection, calls: &[Call], catch_up: &CatchUp) -> rusqlite::Result<()> {
    let mut keys = Keys::load(conn)?;
    for (n, chunk) in calls.chunks(CALLS_PER_TRANSACTION).enumerate() {
        catch_up.between_transactions(conn);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut known =
                tx.prepare_cached("SELECT 1 FROM events WHERE seq = ?1 AND tenant_id = 1 AND event_id = ?2")?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events (tenant_id, event_id, type, record_key, received_at, body) VALUES (1, ?1, 'call', ?2, ?3, ?4)",
            )?;
            let mut lookup =
                tx.prepare_cached("SELECT version_ns FROM calls WHERE seq = ?1 AND tenant_id = 1 AND call_id = ?2")?;
            let mut call = tx.prepare_cached(
                "INSERT INTO calls (tenant_id, call_id, event_id, version_ns, started_ns, agent_id, team_id, \
                 campaign_id, contact_id, disposition, talk_seconds) VALUES (1, ?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for c in chunk {
                let hash = keys::hash(1, &c.event_id);
                let mut duplicate = false;
                for seq in keys.candidates(&tx, Kind::Event, hash)? {
                    duplicate |= known.exists(params![seq, c.event_id])?;
                }
                if duplicate {
                    continue;
                }
                event.execute(params![c.event_id, c.call_id, n as i64, c.body])?;
                keys.add(Kind::Event, hash, tx.last_insert_rowid());
                keys.add(Kind::Record, keys::hash(1, &c.call_id), tx.last_insert_rowid());
                let call_hash = keys::hash(1, &c.call_id);
                let mut current: Option<i64> = None;
                for seq in keys.candidates(&tx, Kind::Call, call_hash)? {
                    current = current.or(lookup.query_row(params![seq, c.call_id], |r| r.get(0)).ok());
                }
                if current.is_some() {
                    continue;
                }
                call.execute(params![
                    c.call_id,
                    c.event_id,
                    c.started_ns,
                    c.agent_id,
                    c.team_id,
                    c.campaign_id,
                    c.contact_id,
                    c.disposition,
                    c.talk_seconds
                ])?;
                keys.add(Kind::Call, call_hash, tx.last_insert_rowid());
                keys.add(Kind::Contact, keys::hash(1, &c.contact_id), tx.last_insert_rowid());
            }
        }
        keys.write(&tx)?;
        tx.commit()?;
        keys.committed(conn)?;
        keys::compact(conn, None)?;
    }
    Ok(())
}

fn ingest(conn: &mut Connection, layout: &Layout, calls: &[Call], catch_up: &CatchUp) -> rusqlite::Result<()> {
    if layout.appended {
        return ingest_appended(conn, calls, catch_up);
    }
    for (n, chunk) in calls.chunks(CALLS_PER_TRANSACTION).enumerate() {
        catch_up.between_transactions(conn);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut event = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (tenant_id, event_id, type, record_key, received_at, body) \
                 VALUES (1, ?1, 'call', ?2, ?3, ?4)",
            )?;
            let mut lookup = tx.prepare_cached("SELECT version_ns FROM calls WHERE tenant_id = 1 AND call_id = ?1")?;
            let mut call = tx.prepare_cached(
                "INSERT OR REPLACE INTO calls (tenant_id, call_id, event_id, version_ns, started_ns, agent_id, team_id, \
                 campaign_id, contact_id, disposition, talk_seconds) VALUES (1, ?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for c in chunk {
                if layout.event_bodies || layout.event_keys_only {
                    let body = layout.event_bodies.then_some(c.body.as_str());
                    let new = event.execute(params![c.event_id, c.call_id, n as i64, body])? > 0;
                    if !new {
                        continue;
                    }
                }
                let current: Option<i64> = lookup.query_row([&c.call_id], |r| r.get(0)).ok();
                if current.is_some_and(|v| v >= c.started_ns) {
                    continue;
                }
                call.execute(params![
                    c.call_id,
                    c.event_id,
                    c.started_ns,
                    c.agent_id,
                    c.team_id,
                    c.campaign_id,
                    c.contact_id,
                    c.disposition,
                    c.talk_seconds
                ])?;
            }
            if layout.event_keys_only {
                let bodies: Vec<&str> = chunk.iter().map(|c| c.body.as_str()).collect();
                tx.execute("INSERT INTO raw_batches (body) VALUES (?1)", [bodies.join("\n")])?;
            }
        }
        tx.commit()?;
    }
    Ok(())
}

/// The storage floor of SQLite ingest (see the crate's bench/README.md).
#[derive(clap::Parser)]
#[command(about, long_about = None)]
struct Flags {
    /// Calls written through each layout
    #[arg(long, default_value_t = 1_000_000)]
    calls: usize,
    /// Agents the calls are spread over
    #[arg(long, default_value_t = dialboard_bench::AGENTS)]
    agents: usize,
    /// Random UUIDv4 ids instead of ids that count up
    #[arg(long)]
    uuid_ids: bool,
    /// Only these layouts (numbers from 1, in the order of the table; default: all)
    #[arg(long, value_delimiter = ',')]
    layouts: Vec<usize>,
}

fn main() -> anyhow::Result<()> {
    let flags = <Flags as clap::Parser>::parse();
    let shape = Shape {
        agents: flags.agents.max(1),
        uuid_ids: flags.uuid_ids,
        ..Shape::default()
    };
    let calls = calls(flags.calls, &shape);
    println!(
        "# SQLite storage floor: {} calls of {} agents, {} ids, transactions of {CALLS_PER_TRANSACTION}, synchronous=FULL, WAL\n",
        calls.len(),
        shape.agents,
        if shape.uuid_ids { "UUIDv4" } else { "counting" }
    );
    println!("| layout | calls/s | file + log, MB |\n|---|---|---|");
    for (number, layout) in LAYOUTS.iter().enumerate() {
        if !flags.layouts.is_empty() && !flags.layouts.contains(&(number + 1)) {
            continue;
        }
        let dir = std::env::temp_dir().join(format!("dialboard-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("floor.db");
        let mut conn = open(&path, layout)?;
        // The log is copied as `dialboard serve` copies it: beside the writer.
        let catch_up = CatchUp::default();
        let checkpointer = WalCheckpointer::spawn(&conn, &path, &Options::default(), catch_up.clone())?;
        let started = Instant::now();
        ingest(&mut conn, layout, &calls, &catch_up)?;
        let rate = calls.len() as f64 / started.elapsed().as_secs_f64();
        checkpointer.stop().join().expect("WAL checkpointer");
        let size: u64 = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        drop(conn);
        std::fs::remove_dir_all(&dir)?;
        println!("| {} | {rate:.0} | {} |", layout.name, size / 1_000_000);
        dialboard_bench::settle()?;
    }
    Ok(())
}
