//! The SQLite schema. Every table's key starts with `tenant_id` (api_keys and sessions are
//! looked up by a secret's hash and name their tenant; users are also found by e-mail).
//! Event instants are epoch nanoseconds; cell buckets and administrative times are seconds.

use super::Options;
use rusqlite::Connection;

/// The tables of the runs (in the SQLite schema's migrations, and in benchmarks).
#[macro_export]
macro_rules! key_tables {
    () => {
        "
-- Sorted runs of hashed keys (sqlite/keys.rs): (hash, seq) pairs, 16 bytes each, in chunks led
-- by their first hash (its top bit flipped, so that signed order is the hash's order).
CREATE TABLE key_runs (
    run INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    level INTEGER NOT NULL,
    keys INTEGER NOT NULL
);
CREATE INDEX key_runs_by_level ON key_runs (kind, level);
CREATE TABLE key_chunks (
    run INTEGER NOT NULL,
    first_hash INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run, first_hash)
) WITHOUT ROWID;
"
    };
}

/// Each entry migrates from version `i` to `i + 1` (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
    key_hash BLOB PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    scopes TEXT NOT NULL,
    agent_id TEXT,
    team_id TEXT,
    created_at INTEGER NOT NULL
);
-- Every accepted event, as received: the idempotency keys and the raw log.
CREATE TABLE events (
    tenant_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    record_key TEXT,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
) WITHOUT ROWID;
CREATE INDEX events_by_record ON events (tenant_id, record_key) WHERE record_key IS NOT NULL;
-- The current version of each call.
CREATE TABLE calls (
    tenant_id INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    version_ns INTEGER NOT NULL,
    started_ns INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    team_id TEXT,
    campaign_id TEXT,
    list_id TEXT,
    contact_id TEXT,
    lead_source TEXT,
    direction TEXT,
    disposition TEXT NOT NULL,
    ended_ns INTEGER,
    talk_seconds INTEGER,
    wait_seconds INTEGER,
    wrap_seconds INTEGER,
    flags INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
) WITHOUT ROWID;
CREATE INDEX calls_by_start ON calls (tenant_id, started_ns, call_id);
CREATE TABLE call_analysis (
    tenant_id INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    version_ns INTEGER NOT NULL,
    score INTEGER,
    sentiment INTEGER,
    prospect_sentiment INTEGER,
    talk_ratio INTEGER,
    filler INTEGER,
    intent TEXT,
    PRIMARY KEY (tenant_id, call_id)
) WITHOUT ROWID;
CREATE TABLE agent_status (
    tenant_id INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, at_ns, event_id)
) WITHOUT ROWID;
CREATE TABLE lead_stages (
    tenant_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    campaign_id TEXT,
    lead_source TEXT,
    agent_id TEXT,
    call_id TEXT,
    amount_minor INTEGER,
    currency TEXT,
    PRIMARY KEY (tenant_id, event_id)
) WITHOUT ROWID;
CREATE INDEX lead_stages_by_time ON lead_stages (tenant_id, at_ns);
CREATE TABLE conversations (
    tenant_id INTEGER NOT NULL,
    conversation_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    version_ns INTEGER NOT NULL,
    channel TEXT NOT NULL,
    opened_ns INTEGER NOT NULL,
    agent_id TEXT,
    team_id TEXT,
    first_response_ns INTEGER,
    resolved_ns INTEGER,
    status TEXT,
    intent TEXT,
    PRIMARY KEY (tenant_id, conversation_id)
) WITHOUT ROWID;
CREATE INDEX conversations_by_time ON conversations (tenant_id, opened_ns);
CREATE TABLE csat (
    tenant_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    score INTEGER NOT NULL,
    at_ns INTEGER NOT NULL,
    call_id TEXT,
    conversation_id TEXT,
    agent_id TEXT,
    PRIMARY KEY (tenant_id, event_id)
) WITHOUT ROWID;
CREATE INDEX csat_by_time ON csat (tenant_id, at_ns);
-- Rollup cells (see engine::cells), one row per bucket: a block of (key, stats) pairs sorted by
-- key (see store::block). A checkpoint rewrites a few blocks rather than a row per cell.
CREATE TABLE cells (
    tenant_id INTEGER NOT NULL,
    cuboid INTEGER NOT NULL,
    grain INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    block BLOB NOT NULL,
    PRIMARY KEY (tenant_id, cuboid, grain, bucket)
);
-- Cell deltas not yet in `cells`: since version 7 only the backfill's (writer::backfill).
CREATE TABLE pending_deltas (
    seq INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
"#,
    r#"
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN rate_limits TEXT;
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
CREATE TABLE users (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    agent_id TEXT,
    teams TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
-- Login names no tenant, so e-mails are unique across tenants.
CREATE UNIQUE INDEX users_by_email ON users (email);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
CREATE TABLE audit (
    tenant_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
"#,
    r#"
-- A contact's first arrival at a stage is what counts (see engine::cells::stage_stats).
CREATE INDEX lead_stages_by_contact ON lead_stages (tenant_id, contact_id, stage, at_ns, event_id);
-- CSAT scores move with their conversation's channel.
CREATE INDEX csat_by_conversation ON csat (tenant_id, conversation_id) WHERE conversation_id IS NOT NULL;
-- Agents, teams and campaigns: names, membership, goals, cost (a JSON document each).
CREATE TABLE directory (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind, id)
) WITHOUT ROWID;
"#,
    // Was the index of calls by contact, which the writer's first-call map replaced (see
    // `first_calls`): dropped by the next version.
    "",
    // Stage cells without the agent: computed by `writer::backfill`.
    "",
    "DROP INDEX IF EXISTS calls_by_contact;",
    r#"
-- One row per ingest transaction: its rollup contributions (store::contribution), folded into
-- `cells` by the next checkpoint; turned into cell deltas again on start-up until then.
CREATE TABLE pending_contributions (
    seq INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
"#,
    r#"
-- E-mails are unique per tenant, not across tenants: one tenant's users can neither see nor
-- squat another's addresses; login names the tenant when an e-mail has several.
DROP INDEX IF EXISTS users_by_email;
CREATE UNIQUE INDEX IF NOT EXISTS users_by_tenant_email ON users (tenant_id, email);
CREATE INDEX IF NOT EXISTS users_by_email ON users (email);
"#,
    r#"
-- A drill-down filtered by an agent, a campaign, a team or a disposition reads that value's
-- calls newest first (the primary key's call_id follows started_ns in each entry); the writer
-- appends to as many places in each as the batch has values.
CREATE INDEX IF NOT EXISTS calls_by_agent ON calls (tenant_id, agent_id, started_ns);
CREATE INDEX IF NOT EXISTS calls_by_campaign ON calls (tenant_id, campaign_id, started_ns);
CREATE INDEX IF NOT EXISTS calls_by_team ON calls (tenant_id, team_id, started_ns);
CREATE INDEX IF NOT EXISTS calls_by_disposition ON calls (tenant_id, disposition, started_ns);
"#,
    r#"
-- The job mechanism (store::jobs). Times are epoch milliseconds. `jobs_due` is the one index
-- not led by the tenant: workers claim the next due job of any tenant.
CREATE TABLE IF NOT EXISTS jobs (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    progress_done INTEGER NOT NULL,
    progress_total INTEGER,
    result TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    claimed_by TEXT,
    lease_until INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, run_after);
CREATE INDEX IF NOT EXISTS jobs_by_kind ON jobs (tenant_id, kind, created_at);
-- A job's output file (an export), in chunks, so any node serves it and memory stays flat.
CREATE TABLE IF NOT EXISTS job_files (
    tenant_id INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tenant_id, job_id, seq)
) WITHOUT ROWID;
"#,
    // Call cells by campaign and intent (cuboid 9): computed by `writer::backfill`.
    "",
    r#"
-- Saved reports and dashboards (store::saved): the current version of each, and every version
-- (an edit adds one; a restore adds a copy of an older one). `body` is the item's JSON.
CREATE TABLE IF NOT EXISTS saved_items (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS saved_item_versions (
    tenant_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind, id, version)
) WITHOUT ROWID;
"#,
    concat!(
        r#"
-- Events and calls are appended in arrival order (`seq`), no longer kept in B-trees keyed by
-- their ids: random ids (UUIDs) made every new id a random insert there, and ingest slowed as
-- history grew. Their ids are hashed keys in sorted runs (see sqlite/keys.rs), computed by
-- `keys::rebuild` for the rows already stored. Re-runnable: columns are copied by name.
DROP INDEX IF EXISTS events_by_record;
CREATE TABLE events_appended (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    record_key TEXT,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
INSERT INTO events_appended (tenant_id, event_id, type, record_key, received_at, body)
    SELECT tenant_id, event_id, type, record_key, received_at, body FROM events ORDER BY received_at, event_id;
DROP TABLE events;
ALTER TABLE events_appended RENAME TO events;
DROP INDEX IF EXISTS calls_by_start;
DROP INDEX IF EXISTS calls_by_agent;
DROP INDEX IF EXISTS calls_by_campaign;
DROP INDEX IF EXISTS calls_by_team;
DROP INDEX IF EXISTS calls_by_disposition;
CREATE TABLE calls_appended (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    version_ns INTEGER NOT NULL,
    started_ns INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    team_id TEXT,
    campaign_id TEXT,
    list_id TEXT,
    contact_id TEXT,
    lead_source TEXT,
    direction TEXT,
    disposition TEXT NOT NULL,
    ended_ns INTEGER,
    talk_seconds INTEGER,
    wait_seconds INTEGER,
    wrap_seconds INTEGER,
    flags INTEGER NOT NULL
);
INSERT INTO calls_appended (tenant_id, call_id, event_id, version_ns, started_ns, agent_id, team_id, campaign_id,
    list_id, contact_id, lead_source, direction, disposition, ended_ns, talk_seconds, wait_seconds, wrap_seconds, flags)
    SELECT tenant_id, call_id, event_id, version_ns, started_ns, agent_id, team_id, campaign_id, list_id, contact_id,
    lead_source, direction, disposition, ended_ns, talk_seconds, wait_seconds, wrap_seconds, flags
    FROM calls ORDER BY tenant_id, started_ns, call_id;
DROP TABLE calls;
ALTER TABLE calls_appended RENAME TO calls;
-- Calls in time order (queries of raw calls, drill-downs without a filter) and by a value of
-- each drill-down filter, newest first, call_id breaking ties: appended to at the batch's
-- values when calls come in time order.
CREATE INDEX calls_by_start ON calls (tenant_id, started_ns, call_id);
CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_ns, call_id);
CREATE INDEX calls_by_campaign ON calls (tenant_id, campaign_id, started_ns, call_id);
CREATE INDEX calls_by_team ON calls (tenant_id, team_id, started_ns, call_id);
CREATE INDEX calls_by_disposition ON calls (tenant_id, disposition, started_ns, call_id);
DROP TABLE IF EXISTS key_chunks;
DROP TABLE IF EXISTS key_runs;
"#,
        crate::key_tables!()
    ),
    r#"
-- Stage changes and CSAT scores appended too: their primary keys on the event id took each
-- random id at a random place (the `events` runs already make ids unique). Re-runnable.
DROP INDEX IF EXISTS lead_stages_by_time;
DROP INDEX IF EXISTS lead_stages_by_contact;
CREATE TABLE lead_stages_appended (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    campaign_id TEXT,
    lead_source TEXT,
    agent_id TEXT,
    call_id TEXT,
    amount_minor INTEGER,
    currency TEXT
);
INSERT INTO lead_stages_appended (tenant_id, event_id, contact_id, stage, at_ns, campaign_id, lead_source, agent_id,
    call_id, amount_minor, currency)
    SELECT tenant_id, event_id, contact_id, stage, at_ns, campaign_id, lead_source, agent_id, call_id, amount_minor,
    currency FROM lead_stages ORDER BY tenant_id, at_ns, event_id;
DROP TABLE lead_stages;
ALTER TABLE lead_stages_appended RENAME TO lead_stages;
CREATE INDEX lead_stages_by_time ON lead_stages (tenant_id, at_ns);
CREATE INDEX lead_stages_by_contact ON lead_stages (tenant_id, contact_id, stage, at_ns, event_id);
DROP INDEX IF EXISTS csat_by_time;
DROP INDEX IF EXISTS csat_by_conversation;
CREATE TABLE csat_appended (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    score INTEGER NOT NULL,
    at_ns INTEGER NOT NULL,
    call_id TEXT,
    conversation_id TEXT,
    agent_id TEXT
);
INSERT INTO csat_appended (tenant_id, event_id, score, at_ns, call_id, conversation_id, agent_id)
    SELECT tenant_id, event_id, score, at_ns, call_id, conversation_id, agent_id FROM csat ORDER BY tenant_id, at_ns, event_id;
DROP TABLE csat;
ALTER TABLE csat_appended RENAME TO csat;
CREATE INDEX csat_by_time ON csat (tenant_id, at_ns);
CREATE INDEX csat_by_conversation ON csat (tenant_id, conversation_id) WHERE conversation_id IS NOT NULL;
"#,
    r#"
-- Webhook endpoints, their delivery log, alerts, each alert's state per subject and its
-- firings and recoveries (store::alerting). Times are epoch milliseconds; `body` is JSON.
CREATE TABLE IF NOT EXISTS webhooks (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    body TEXT NOT NULL,
    secret TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
-- One row per attempt: a delivery retried three times has three rows.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    tenant_id INTEGER NOT NULL,
    webhook_id TEXT NOT NULL,
    id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    event TEXT NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER,
    error TEXT,
    PRIMARY KEY (tenant_id, webhook_id, id, attempt)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_time ON webhook_deliveries (tenant_id, webhook_id, at);
CREATE TABLE IF NOT EXISTS alerts (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
-- `subject` is the agent an "each agent of a team" alert watches, '' for the scope itself.
-- `revision` makes every change a compare-and-set: of two nodes that see the same crossing,
-- one records it.
CREATE TABLE IF NOT EXISTS alert_states (
    tenant_id INTEGER NOT NULL,
    alert_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    firing INTEGER NOT NULL,
    last_fired_at INTEGER,
    changed_at INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, alert_id, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_events (
    tenant_id INTEGER NOT NULL,
    alert_id TEXT NOT NULL,
    id TEXT NOT NULL,
    at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, alert_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_events_by_time ON alert_events (tenant_id, alert_id, at);
"#,
    // The SCRAM-SHA-256 verifier of each key created since (the SQL endpoint's SCRAM login);
    // a table of its own, so the migration can run again (SQLite has no ADD COLUMN IF NOT EXISTS).
    "CREATE TABLE IF NOT EXISTS api_key_scram (key_hash BLOB PRIMARY KEY, verifier TEXT NOT NULL);",
    // Calls by team and campaign are kept in cuboid 10 (`cells::TEAM_CAMPAIGNS`), computed by
    // `writer::backfill`: cuboid 2 counted calls without a team under none.
    "DELETE FROM cells WHERE cuboid = 2;",
    r#"
-- Schedule runs (store::schedules): one row per occurrence of a schedule, keyed by the time it
-- was due, so two nodes that both see it due create it once; its job carries the work.
CREATE TABLE IF NOT EXISTS schedule_runs (
    tenant_id INTEGER NOT NULL,
    schedule_id TEXT NOT NULL,
    scheduled_for INTEGER NOT NULL,
    late INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, schedule_id, scheduled_for)
);
"#,
    r#"
-- Badges held (store::badges): one row per badge, rep and period ('' for once-ever badges).
-- Awarding inserts the row and revoking deletes it, each only if it was not already so: the
-- node whose statement changed the row announces it, so an award is announced once.
CREATE TABLE IF NOT EXISTS badge_awards (
    tenant_id INTEGER NOT NULL,
    badge TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    period TEXT NOT NULL,
    awarded_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, badge, agent_id, period)
);
"#,
    r#"
-- Each recipient's copy of a schedule run that the SMTP server accepted (store::schedules):
-- written before the next copy is sent, so a retry or another node's takeover of the run
-- sends only the copies not yet delivered.
CREATE TABLE IF NOT EXISTS schedule_deliveries (
    tenant_id INTEGER NOT NULL,
    schedule_id TEXT NOT NULL,
    scheduled_for INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    size INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, schedule_id, scheduled_for, recipient)
);
"#,
    r#"
-- When each schedule is next due (store::schedules), NULL while paused: the ticker reads only
-- the due ones through the index instead of every schedule of every tenant.
CREATE TABLE IF NOT EXISTS schedule_next_runs (
    tenant_id INTEGER NOT NULL,
    schedule_id TEXT NOT NULL,
    next_run INTEGER,
    PRIMARY KEY (tenant_id, schedule_id)
);
CREATE INDEX IF NOT EXISTS schedule_next_runs_due ON schedule_next_runs (next_run) WHERE next_run IS NOT NULL;
"#,
    r#"
-- Tenants whose history predates badges (store::badges::baselines): their first reconciliation
-- records what that history earned without announcing it. Marked once, on upgrade: every
-- tenant that holds no award yet; a tenant created later is never marked.
CREATE TABLE IF NOT EXISTS badge_baselines (tenant_id INTEGER PRIMARY KEY);
INSERT INTO badge_baselines (tenant_id)
    SELECT id FROM tenants WHERE id NOT IN (SELECT tenant_id FROM badge_awards)
    ON CONFLICT DO NOTHING;
"#,
    r#"
-- The five time-ordered indexes of calls without the call id: each entry was the id's text (36
-- bytes for a UUID) longer, which made them twice the size, split twice as often under
-- ingest and put ~180 bytes a call on disk. The order among calls that start at the same
-- nanosecond (by call id) is sorted per tie on read (SQLite's "right part of ORDER BY"): the
-- entry's rowid (`seq`) is the row, and a page of a drill-down still stops after its limit.
DROP INDEX IF EXISTS calls_by_start;
DROP INDEX IF EXISTS calls_by_agent;
DROP INDEX IF EXISTS calls_by_campaign;
DROP INDEX IF EXISTS calls_by_team;
DROP INDEX IF EXISTS calls_by_disposition;
CREATE INDEX calls_by_start ON calls (tenant_id, started_ns);
CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_ns);
CREATE INDEX calls_by_campaign ON calls (tenant_id, campaign_id, started_ns);
CREATE INDEX calls_by_team ON calls (tenant_id, team_id, started_ns);
CREATE INDEX calls_by_disposition ON calls (tenant_id, disposition, started_ns);
"#,
    r#"
-- Raw event bodies compressed in blocks (sqlite/bodies.rs): one row per tenant and ingest
-- transaction, keyed by the `seq` of its first event, so appended; the events it holds keep an
-- empty `body`. A rowid table: a block is ~100 KB, too large a row for a WITHOUT ROWID one.
CREATE TABLE IF NOT EXISTS event_blocks (
    first_seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    data BLOB NOT NULL
);
"#,
    // Week and month cells of calls per agent (`cells::AGENT_WEEKS`): summed from its day
    // cells by `writer::backfill_coarse`. Only a comment, which `AGENT_WEEKS_VERSION`'s test finds.
    "-- AGENT_WEEKS: the agent cuboid's week and month cells",
    r#"
-- The calls of each agent, team, campaign and disposition in sorted runs (sqlite/value_runs.rs)
-- instead of four B-tree indexes that took a random insert each per call: a run per ingest
-- transaction, merged up to a top level; chunks of (started_ns, seq) entries, newest first,
-- found by their run first (appended) and their oldest start. A rowid table: appended rows fill
-- their pages (an index B-tree, as WITHOUT ROWID is, leaves appended pages about half full),
-- and a ~4 KB chunk fits its page. Built from the calls at the first open
-- (`value_runs::rebuild`, VALUE_RUNS_VERSION).
DROP INDEX IF EXISTS calls_by_agent;
DROP INDEX IF EXISTS calls_by_campaign;
DROP INDEX IF EXISTS calls_by_team;
DROP INDEX IF EXISTS calls_by_disposition;
CREATE TABLE IF NOT EXISTS value_runs (
    run INTEGER PRIMARY KEY,
    level INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    oldest_ns INTEGER NOT NULL,
    newest_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS value_runs_by_level ON value_runs (level);
CREATE TABLE IF NOT EXISTS value_chunks (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    tenant_id INTEGER NOT NULL,
    field INTEGER NOT NULL,
    value TEXT NOT NULL,
    oldest_ns INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS value_chunks_by_value ON value_chunks (run, tenant_id, field, value, oldest_ns);
"#,
    r#"
-- The row (`seq`) of the event of each call's current version, set by the writer with the call:
-- an export reads its page's bodies by it, block by block (sqlite/bodies.rs), instead of
-- probing every run of the event keys for each event id. NULL for calls written before it,
-- whose event is found by its id.
ALTER TABLE calls ADD COLUMN event_seq INTEGER;
"#,
    // CONTACT_KEYS: each call's row under its contact in the key runs (`keys::Kind::Contact`),
    // for a meeting's first call (`first_calls`); `migrate` writes those of the stored calls.
    "-- CONTACT_KEYS: the calls by contact in the key runs",
    r#"
-- Rollup blocks in parts (sqlite/parts.rs): part 0 is a block's base, parts 1, 2, … the deltas
-- later checkpoints wrote, merged size-tiered, so that a checkpoint costs what it folds and not
-- what the blocks it touches hold (a backfill in random time order touches nearly all of them).
-- Readers add a block's parts up. The rows of `cells` become the bases (numbered in row order,
-- so that a run of this migration over a table already in parts keeps every row).
CREATE TABLE cells_in_parts (
    tenant_id INTEGER NOT NULL,
    cuboid INTEGER NOT NULL,
    grain INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    part INTEGER NOT NULL DEFAULT 0,
    block BLOB NOT NULL,
    PRIMARY KEY (tenant_id, cuboid, grain, bucket, part)
);
INSERT INTO cells_in_parts (tenant_id, cuboid, grain, bucket, part, block)
    SELECT tenant_id, cuboid, grain, bucket,
        row_number() OVER (PARTITION BY tenant_id, cuboid, grain, bucket ORDER BY rowid) - 1, block
    FROM cells ORDER BY tenant_id, cuboid, grain, bucket;
DROP TABLE cells;
ALTER TABLE cells_in_parts RENAME TO cells;
"#,
    r#"
-- Checkpoint deltas of sparse blocks, one row per chunk of 96 buckets and checkpoint
-- (sqlite/spans.rs), until a chunk's spans are folded into its blocks. `data`: (bucket, block)
-- pairs in bucket order; `first_bucket` the first of them. Readers add them to the blocks.
CREATE TABLE IF NOT EXISTS cell_spans (
    tenant_id INTEGER NOT NULL,
    cuboid INTEGER NOT NULL,
    grain INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    span INTEGER NOT NULL,
    first_bucket INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tenant_id, cuboid, grain, chunk, span)
);
"#,
    r#"
-- START_RUNS: calls by start in the value runs (`value_runs::Field::Start`; migration 35 writes
-- the entries of the stored calls) instead of this index: in a backfill in random time order
-- each call was a random insert into it, a leaf dirtied and copied to the log (~4 KB) a call.
DROP INDEX IF EXISTS calls_by_start;
"#,
    r#"
-- Events without a row (sqlite/bodies.rs): from this version on, a block holds each of its
-- events' seq, id, type, record key and body, and the event has no row in `events` (which keeps
-- the rows written before). `events` counts a block's events (what a purge counts as raw
-- events); 0 marks a block written before, which holds bodies only, its events having rows.
ALTER TABLE event_blocks ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Key chunks in a table with rowids, found through a narrow index: as a WITHOUT ROWID table
-- each chunk (4 KB of keys) was its own index entry, spilling onto overflow pages, and SQLite
-- compares such an entry with a search key only after copying it whole into a buffer it
-- allocates: every step of every probe and merge read 4 KB and took SQLite's memory mutex
-- (10% of the writer's time at 3-5M calls, and most of its waits beside the other threads).
CREATE TABLE key_chunks_by_rowid (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    first_hash INTEGER NOT NULL,
    data BLOB NOT NULL
);
INSERT INTO key_chunks_by_rowid (run, first_hash, data)
    SELECT run, first_hash, data FROM key_chunks ORDER BY run, first_hash;
DROP TABLE key_chunks;
ALTER TABLE key_chunks_by_rowid RENAME TO key_chunks;
CREATE UNIQUE INDEX key_chunks_by_run ON key_chunks (run, first_hash);
"#,
    // Nothing to convert: rows and keys written before keep their meaning, which the readers
    // still take (sqlite/keys.rs, `Kind::Call`). The version marks files whose newer calls
    // are found by their events' keys, which an older build would not list as versions.
    r#"
-- CALL_KEYS_BY_EVENT: a new call's row takes the `seq` of the event that created it, and each
-- event of a call is listed under the call's key (`keys::Kind::Call`), which leads both to the
-- row and to the versions, in place of a record key for each event and a call key for the row.
"#,
    // `migrate` rebuilds the runs from the calls in the migration's transaction.
    r#"
-- COMPACT_VALUE_CHUNKS: a value chunk's entries as varint distances from the one before
-- (`value_runs::Encoded`, ~3–6 bytes an entry) instead of two fixed 8-byte integers.
"#,
];

/// The versions that first keep rollups of conversations, CSAT and stages, the time from each
/// meeting's first call, and stage cells without the agent: databases written by an older one
/// get what they lack computed once (`writer::backfill`).
pub const OTHER_FACTS_VERSION: usize = 3;
pub const MEETING_DAYS_VERSION: usize = 4;
/// The version that first keeps stage cells without the agent (cuboid 8).
pub const STAGE_SUMMARY_VERSION: usize = 5;
/// The version that first keeps call cells by campaign and intent (`cells::CALL_INTENTS`): the
/// empty migration that marks it is the 11th.
pub const CALL_INTENTS_VERSION: usize = 11;

/// The version that first keeps week and month cells of calls per agent (`cells::AGENT_WEEKS`).
pub const AGENT_WEEKS_VERSION: usize = 25;
/// The version that first keeps calls by team and campaign in `cells::TEAM_CAMPAIGNS`.
pub const TEAM_CAMPAIGNS_VERSION: usize = 16;

/// The version that first appends events and calls and finds them by hashed keys in sorted
/// runs (`keys`): the runs of older rows are built at open (`keys::rebuild`).
pub const KEYED_VERSION: usize = 13;

/// The version whose value chunks hold their entries as varint distances
/// (`value_runs::Encoded`): the runs of an older file are built again from its calls by its
/// migration (which also builds them for a file from before the runs, the 26th).
pub const COMPACT_VALUE_CHUNKS_VERSION: usize = 35;

/// The version that first lists calls by contact in the key runs (`keys::Kind::Contact`), in
/// place of a map of every contact's first call in memory.
pub const CONTACT_KEYS_VERSION: usize = 28;

/// The version from which new events have no `events` row, their blocks holding them whole
/// (`bodies`).
pub const ROWLESS_EVENTS_VERSION: usize = 32;

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists([table, column])
}

/// Migrates to the latest version; returns the version the database had.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<usize> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        // Re-runnable, as the others: a file marked older that has the column already keeps
        // it, and with it the format of its blocks.
        let done = i + 1 == ROWLESS_EVENTS_VERSION && has_column(&tx, "event_blocks", "events")?;
        if !done {
            tx.execute_batch(sql)?;
        }
        if i + 1 == CONTACT_KEYS_VERSION {
            // In the migration's transaction: a version without its runs is never committed.
            super::keys::rebuild(&tx, &[super::keys::Kind::Contact])?;
        }
        if i + 1 == COMPACT_VALUE_CHUNKS_VERSION {
            // Every value run of the calls (a file from before the runs has none), in this
            // format: a version whose runs are of the earlier one is never committed.
            super::value_runs::rebuild(&tx)?;
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(version)
}

/// What SQLite may keep in memory in the whole process, its page caches above all (bytes). Each
/// connection's cache is capped (64 MB for the writer, 32 MB for each of up to 8 pooled readers),
/// but together they grew with history: at 4M calls of a backfill in random order SQLite held
/// 175 MiB, most of the process's growth towards SPEC §10's 500 MB. Past this limit a cache
/// reuses its least recently used pages instead of allocating more. The limit is the process's:
/// set with the writer's settings, it holds for the readers too. 96 MiB leaves the writer its
/// whole cache and the readers 32 MiB between them, and keeps a 10M-call backfill in random
/// order ~30 MiB under SPEC §10's bound (128 MiB: 504 MB at 10M calls, bench/README.md).
pub const SQLITE_HEAP_LIMIT: i64 = 96 << 20;

/// Connection settings: WAL so readers never block the writer; `synchronous=FULL` so a
/// committed batch survives power loss, not only a crash of the process.
pub fn configure(conn: &Connection, options: &Options) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let synchronous = if options.synchronous_full { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "busy_timeout", 10_000)?;
    // When the log starts over, what it grew beyond its restart size is given back (frames of
    // SQLite's default 4 KB pages).
    conn.pragma_update(None, "journal_size_limit", options.wal_restart_frames * 4096)?;
    // A limit, filled only as pages are read (64 MB).
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "soft_heap_limit", SQLITE_HEAP_LIMIT)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

#[cfg(test)]
mod agent_weeks_tests {
    use super::*;

    /// The versions the week and month cells and the contacts' keys are built for are their
    /// migrations': one too low skipped the backfill for databases of the version just before.
    #[test]
    fn marked_versions_are_the_versions_their_migrations_make() {
        assert!(
            MIGRATIONS[AGENT_WEEKS_VERSION - 1].contains("AGENT_WEEKS"),
            "{} migrations",
            MIGRATIONS.len()
        );
        assert!(MIGRATIONS[CONTACT_KEYS_VERSION - 1].contains("CONTACT_KEYS"));
        assert!(MIGRATIONS[ROWLESS_EVENTS_VERSION - 1].contains("event_blocks ADD COLUMN events"));
        assert!(MIGRATIONS[COMPACT_VALUE_CHUNKS_VERSION - 1].contains("COMPACT_VALUE_CHUNKS"));
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    /// The heap limit is the process's: set by one connection's settings, another connection,
    /// opened without them (as the readers are), sees it.
    #[test]
    fn the_writers_settings_bound_sqlites_memory_in_the_whole_process() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Connection::open(dir.path().join("a.db")).unwrap();
        configure(&writer, &Options::default()).unwrap();
        let reader = Connection::open_in_memory().unwrap();
        let limit: i64 = reader.query_row("PRAGMA soft_heap_limit", [], |r| r.get(0)).unwrap();
        assert_eq!(limit, SQLITE_HEAP_LIMIT);
    }
}
