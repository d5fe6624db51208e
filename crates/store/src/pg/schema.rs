//! The PostgreSQL schema. Every table of a tenant's data is keyed by `tenant_id` first, so a
//! tenant-sharded cluster (Citus) can distribute it; `tenants`, `api_keys` and `sessions` are
//! looked up by name or by a secret's hash and would be reference tables.
//!
//! Raw records with a time of their own are partitioned by month of that time (the event log by
//! arrival, calls by start, statuses, stages and CSAT scores by their instant); partitions are
//! made on demand ([`Partitions`]). Idempotency needs a key across all months, so ids live in
//! `event_ids`, and a call's current start (its partition) in `call_keys`; both are indexed by
//! a 64-bit hash of the id ([`same_id`]).
//!
//! Text compares byte by byte (`COLLATE "C"`), as on SQLite, so ties between equal instants
//! (ordered by event id) and paging by call id come out the same on both stores.

use super::working::write_deltas;
use crate::overlay::DeltaMap;
use crate::rows::{call_with_analysis, select_calls_with_analysis};
use crate::{Result, StoreError, TenantInfo};
use dialboard_engine::cells::{for_each_call_cell, Grains, AGENT_WEEKS, CALL_INTENTS, TEAM_CAMPAIGNS};
use dialboard_engine::clock::Grain;
use postgres::Client;
use std::collections::HashSet;

/// Each entry migrates from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    settings TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_keys (
    key_hash BYTEA PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    scopes TEXT COLLATE "C" NOT NULL,
    agent_id TEXT COLLATE "C",
    team_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    name TEXT COLLATE "C",
    rate_limits TEXT COLLATE "C",
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
CREATE TABLE users (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT COLLATE "C" NOT NULL,
    email TEXT COLLATE "C" NOT NULL,
    password_hash TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL,
    agent_id TEXT COLLATE "C",
    teams TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_by_email ON users (email);
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
CREATE TABLE audit (
    tenant_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C",
    detail TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE TABLE directory (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    kind TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    body TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, id)
);
-- Every event id ever accepted: idempotency across all months of the log.
CREATE TABLE event_ids (
    tenant_id BIGINT NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
-- Every accepted event as received, by arrival. `seq` orders a commit's events.
CREATE SEQUENCE event_seq;
CREATE TABLE events (
    tenant_id BIGINT NOT NULL,
    received_ns BIGINT NOT NULL,
    seq BIGINT NOT NULL DEFAULT nextval('event_seq'),
    event_id TEXT COLLATE "C" NOT NULL,
    type TEXT COLLATE "C" NOT NULL,
    record_key TEXT COLLATE "C",
    body TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, received_ns, seq)
) PARTITION BY RANGE (received_ns);
CREATE INDEX events_by_record ON events (tenant_id, record_key) WHERE record_key IS NOT NULL;
-- Where each call's current version is (its start), and its contact's calls by start.
CREATE TABLE call_keys (
    tenant_id BIGINT NOT NULL,
    call_id TEXT COLLATE "C" NOT NULL,
    started_ns BIGINT NOT NULL,
    contact_id TEXT COLLATE "C",
    PRIMARY KEY (tenant_id, call_id)
);
CREATE INDEX call_keys_by_contact ON call_keys (tenant_id, contact_id, started_ns) WHERE contact_id IS NOT NULL;
-- The current version of each call.
CREATE TABLE calls (
    tenant_id BIGINT NOT NULL,
    call_id TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    version_ns BIGINT NOT NULL,
    started_ns BIGINT NOT NULL,
    agent_id TEXT COLLATE "C" NOT NULL,
    team_id TEXT COLLATE "C",
    campaign_id TEXT COLLATE "C",
    list_id TEXT COLLATE "C",
    contact_id TEXT COLLATE "C",
    lead_source TEXT COLLATE "C",
    direction TEXT COLLATE "C",
    disposition TEXT COLLATE "C" NOT NULL,
    ended_ns BIGINT,
    talk_seconds BIGINT,
    wait_seconds BIGINT,
    wrap_seconds BIGINT,
    flags BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, started_ns, call_id)
) PARTITION BY RANGE (started_ns);
CREATE TABLE call_analysis (
    tenant_id BIGINT NOT NULL,
    call_id TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    version_ns BIGINT NOT NULL,
    score BIGINT,
    sentiment BIGINT,
    prospect_sentiment BIGINT,
    talk_ratio BIGINT,
    filler BIGINT,
    intent TEXT COLLATE "C",
    PRIMARY KEY (tenant_id, call_id)
);
CREATE TABLE agent_status (
    tenant_id BIGINT NOT NULL,
    agent_id TEXT COLLATE "C" NOT NULL,
    at_ns BIGINT NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, at_ns, event_id)
) PARTITION BY RANGE (at_ns);
CREATE TABLE lead_stages (
    tenant_id BIGINT NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    contact_id TEXT COLLATE "C" NOT NULL,
    stage TEXT COLLATE "C" NOT NULL,
    at_ns BIGINT NOT NULL,
    campaign_id TEXT COLLATE "C",
    lead_source TEXT COLLATE "C",
    agent_id TEXT COLLATE "C",
    call_id TEXT COLLATE "C",
    amount_minor BIGINT,
    currency TEXT COLLATE "C",
    PRIMARY KEY (tenant_id, at_ns, event_id)
) PARTITION BY RANGE (at_ns);
CREATE INDEX lead_stages_by_contact ON lead_stages (tenant_id, contact_id, stage, at_ns, event_id);
CREATE TABLE conversations (
    tenant_id BIGINT NOT NULL,
    conversation_id TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    version_ns BIGINT NOT NULL,
    channel TEXT COLLATE "C" NOT NULL,
    opened_ns BIGINT NOT NULL,
    agent_id TEXT COLLATE "C",
    team_id TEXT COLLATE "C",
    first_response_ns BIGINT,
    resolved_ns BIGINT,
    status TEXT COLLATE "C",
    intent TEXT COLLATE "C",
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE TABLE csat (
    tenant_id BIGINT NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    score BIGINT NOT NULL,
    at_ns BIGINT NOT NULL,
    call_id TEXT COLLATE "C",
    conversation_id TEXT COLLATE "C",
    agent_id TEXT COLLATE "C",
    PRIMARY KEY (tenant_id, at_ns, event_id)
) PARTITION BY RANGE (at_ns);
CREATE INDEX csat_by_conversation ON csat (tenant_id, conversation_id) WHERE conversation_id IS NOT NULL;
-- Rollup cells, one row per block (see store::block), as on SQLite.
CREATE TABLE cells (
    tenant_id BIGINT NOT NULL,
    cuboid SMALLINT NOT NULL,
    grain SMALLINT NOT NULL,
    bucket BIGINT NOT NULL,
    block BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, cuboid, grain, bucket)
);
-- Each ingest transaction's deltas, one row per block it touched. Queries add them to the
-- cells; the compaction job folds them in (one node at a time).
CREATE TABLE cell_deltas (
    tenant_id BIGINT NOT NULL,
    cuboid SMALLINT NOT NULL,
    grain SMALLINT NOT NULL,
    bucket BIGINT NOT NULL,
    block BYTEA NOT NULL
);
CREATE INDEX cell_deltas_by_block ON cell_deltas (tenant_id, cuboid, grain, bucket);
"#,
    r#"
-- Rollup blocks are rewritten whole at every compaction: lz4 compresses them several times
-- faster than pglz (pglz was 11% of PostgreSQL's time while ingesting at 10M calls), where the
-- server was built with it.
DO $$ BEGIN
    ALTER TABLE cells ALTER COLUMN block SET COMPRESSION lz4;
    ALTER TABLE cell_deltas ALTER COLUMN block SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
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
-- calls newest first.
CREATE INDEX IF NOT EXISTS calls_by_agent ON calls (tenant_id, agent_id, started_ns, call_id);
CREATE INDEX IF NOT EXISTS calls_by_campaign ON calls (tenant_id, campaign_id, started_ns, call_id);
CREATE INDEX IF NOT EXISTS calls_by_team ON calls (tenant_id, team_id, started_ns, call_id);
CREATE INDEX IF NOT EXISTS calls_by_disposition ON calls (tenant_id, disposition, started_ns, call_id);
"#,
    r#"
-- The job mechanism (store::jobs). Times are epoch milliseconds. `jobs_due` is the one index
-- not led by the tenant: workers claim the next due job of any tenant.
CREATE TABLE IF NOT EXISTS jobs (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    progress_done BIGINT NOT NULL,
    progress_total BIGINT,
    result TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    claimed_by TEXT,
    lease_until BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, run_after);
CREATE INDEX IF NOT EXISTS jobs_by_kind ON jobs (tenant_id, kind, created_at);
-- A job's output file (an export), in chunks, so any node serves it and memory stays flat.
CREATE TABLE IF NOT EXISTS job_files (
    tenant_id BIGINT NOT NULL,
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, job_id, seq)
);
"#,
    // Call cells by campaign and intent (cuboid 9): computed by `backfill_call_intents`.
    "",
    r#"
-- Saved reports and dashboards (store::saved): the current version of each, and every version
-- (an edit adds one; a restore adds a copy of an older one). `body` is the item's JSON.
CREATE TABLE IF NOT EXISTS saved_items (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, id)
);
CREATE TABLE IF NOT EXISTS saved_item_versions (
    tenant_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, id, version)
);
"#,
    r#"
-- Webhook endpoints, their delivery log, alerts, each alert's state per subject and its
-- firings and recoveries (store::alerting). Times are epoch milliseconds; `body` is JSON.
CREATE TABLE IF NOT EXISTS webhooks (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    body TEXT NOT NULL,
    secret TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    consecutive_failures BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- One row per attempt: a delivery retried three times has three rows.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    tenant_id BIGINT NOT NULL,
    webhook_id TEXT NOT NULL,
    id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    event TEXT NOT NULL,
    at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT,
    error TEXT,
    PRIMARY KEY (tenant_id, webhook_id, id, attempt)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_time ON webhook_deliveries (tenant_id, webhook_id, at);
CREATE TABLE IF NOT EXISTS alerts (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- `subject` is the agent an "each agent of a team" alert watches, '' for the scope itself.
-- `revision` makes every change a compare-and-set: of two nodes that see the same crossing,
-- one records it.
CREATE TABLE IF NOT EXISTS alert_states (
    tenant_id BIGINT NOT NULL,
    alert_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    firing BIGINT NOT NULL,
    last_fired_at BIGINT,
    changed_at BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, alert_id, subject)
);
CREATE TABLE IF NOT EXISTS alert_events (
    tenant_id BIGINT NOT NULL,
    alert_id TEXT NOT NULL,
    id TEXT NOT NULL,
    at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, alert_id, id)
);
CREATE INDEX IF NOT EXISTS alert_events_by_time ON alert_events (tenant_id, alert_id, at);
"#,
    // The SCRAM-SHA-256 verifier of each key created since (the SQL endpoint's SCRAM login).
    "CREATE TABLE IF NOT EXISTS api_key_scram (key_hash BYTEA PRIMARY KEY, verifier TEXT NOT NULL);",
    // Calls by team and campaign are kept in cuboid 10 (`cells::TEAM_CAMPAIGNS`), computed by
    // `backfill_call_cuboids`: cuboid 2 counted calls without a team under none.
    "DELETE FROM cells WHERE cuboid = 2; DELETE FROM cell_deltas WHERE cuboid = 2;",
    r#"
-- Schedule runs (store::schedules): one row per occurrence of a schedule, keyed by the time it
-- was due, so two nodes that both see it due create it once; its job carries the work.
CREATE TABLE IF NOT EXISTS schedule_runs (
    tenant_id BIGINT NOT NULL,
    schedule_id TEXT NOT NULL,
    scheduled_for BIGINT NOT NULL,
    late BIGINT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, schedule_id, scheduled_for)
);
"#,
    r#"
-- Ids as fixed-width hashed keys (issue 24). Sources send random ids (UUIDs, Twilio SIDs), and
-- a B-tree on their text takes each new id on a random leaf of an index of ~60 bytes an entry.
-- The indexes of ids are now on a 64-bit hash of the text (PostgreSQL's own `hashtextextended`,
-- the function its hash partitioning relies on, so it is stable across versions): ~28 bytes an
-- entry, integer compares. The text stays in the row, and every lookup compares it too, so a
-- collision of hashes costs one more row read, never a wrong answer. Uniqueness of an event id
-- is kept by the tenant's ingest lock (every insert into these tables happens under it).
-- Re-runnable (the upgrade tests run migrations again).
ALTER TABLE event_ids ADD COLUMN IF NOT EXISTS id_hash BIGINT GENERATED ALWAYS AS (hashtextextended(event_id, 0)) STORED;
ALTER TABLE event_ids DROP CONSTRAINT IF EXISTS event_ids_pkey;
CREATE INDEX IF NOT EXISTS event_ids_by_hash ON event_ids (tenant_id, id_hash);
ALTER TABLE call_keys
    ADD COLUMN IF NOT EXISTS call_hash BIGINT GENERATED ALWAYS AS (hashtextextended(call_id, 0)) STORED,
    ADD COLUMN IF NOT EXISTS contact_hash BIGINT GENERATED ALWAYS AS (hashtextextended(contact_id, 0)) STORED;
ALTER TABLE call_keys DROP CONSTRAINT IF EXISTS call_keys_pkey;
DROP INDEX IF EXISTS call_keys_by_contact;
CREATE INDEX IF NOT EXISTS call_keys_by_hash ON call_keys (tenant_id, call_hash);
CREATE INDEX call_keys_by_contact ON call_keys (tenant_id, contact_hash) WHERE contact_id IS NOT NULL;
ALTER TABLE events ADD COLUMN IF NOT EXISTS record_hash BIGINT GENERATED ALWAYS AS (hashtextextended(record_key, 0)) STORED;
DROP INDEX IF EXISTS events_by_record;
CREATE INDEX events_by_record ON events (tenant_id, record_hash) WHERE record_key IS NOT NULL;
"#,
    r#"
-- Badges held (store::badges): one row per badge, rep and period ('' for once-ever badges).
-- Awarding inserts the row and revoking deletes it, each only if it was not already so: the
-- node whose statement changed the row announces it, so an award is announced once.
CREATE TABLE IF NOT EXISTS badge_awards (
    tenant_id BIGINT NOT NULL,
    badge TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    period TEXT NOT NULL,
    awarded_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, badge, agent_id, period)
);
"#,
    // Conversations newest first by opening, as SQLite's `conversations_by_time`: the
    // conversations drill-down (store::listing) reads along it a chunk at a time.
    "CREATE INDEX IF NOT EXISTS conversations_by_time ON conversations (tenant_id, opened_ns, conversation_id);",
    r#"
-- Each recipient's copy of a schedule run that the SMTP server accepted (store::schedules):
-- written before the next copy is sent, so a retry or another node's takeover of the run
-- sends only the copies not yet delivered.
CREATE TABLE IF NOT EXISTS schedule_deliveries (
    tenant_id BIGINT NOT NULL,
    schedule_id TEXT NOT NULL,
    scheduled_for BIGINT NOT NULL,
    recipient TEXT NOT NULL,
    size BIGINT NOT NULL,
    delivered_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, schedule_id, scheduled_for, recipient)
);
"#,
    r#"
-- When each schedule is next due (store::schedules), NULL while paused: the ticker reads only
-- the due ones through the index instead of every schedule of every tenant.
CREATE TABLE IF NOT EXISTS schedule_next_runs (
    tenant_id BIGINT NOT NULL,
    schedule_id TEXT NOT NULL,
    next_run BIGINT,
    PRIMARY KEY (tenant_id, schedule_id)
);
CREATE INDEX IF NOT EXISTS schedule_next_runs_due ON schedule_next_runs (next_run) WHERE next_run IS NOT NULL;
"#,
    r#"
-- Tenants whose history predates badges (store::badges::baselines): their first reconciliation
-- records what that history earned without announcing it. Marked once, on upgrade: every
-- tenant that holds no award yet; a tenant created later is never marked.
CREATE TABLE IF NOT EXISTS badge_baselines (tenant_id BIGINT PRIMARY KEY);
INSERT INTO badge_baselines (tenant_id)
    SELECT id FROM tenants WHERE id NOT IN (SELECT tenant_id FROM badge_awards)
    ON CONFLICT DO NOTHING;
"#,
    // Week and month cells of calls per agent (`cells::AGENT_WEEKS`): summed from its day
    // cells by `backfill_coarse`. Only a comment, which `AGENT_WEEKS_VERSION`'s test finds.
    "-- AGENT_WEEKS: the agent cuboid's week and month cells",
    r#"
-- Raw events in blocks (issue 24; pg/bodies.rs). An `events` row per event (its body, a key
-- by arrival, an index by record) was a heap tuple and two index entries beside the event's
-- `event_ids` row. Now `event_ids` says where each event is (the arrival of its transaction)
-- and whose version it is (its record, indexed by hash as the ids are), and the bodies of a
-- tenant's new events of one ingest transaction are one LZ4 block, stored as it comes
-- (`EXTERNAL`: PostgreSQL does not try to compress it again). `events` keeps the rows written
-- before this version; nothing is added to it.
ALTER TABLE event_ids
    ADD COLUMN IF NOT EXISTS received_ns BIGINT,
    ADD COLUMN IF NOT EXISTS record_key TEXT COLLATE "C",
    ADD COLUMN IF NOT EXISTS record_hash BIGINT GENERATED ALWAYS AS (hashtextextended(record_key, 0)) STORED;
CREATE INDEX IF NOT EXISTS event_ids_by_record ON event_ids (tenant_id, record_hash) WHERE record_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_blocks (
    tenant_id BIGINT NOT NULL,
    received_ns BIGINT NOT NULL,
    events INT NOT NULL,
    block BYTEA NOT NULL
);
ALTER TABLE event_blocks ALTER COLUMN block SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS event_blocks_by_arrival ON event_blocks (tenant_id, received_ns);
-- The drill-down indexes without the call id (36 bytes of text a UUID, in each of four entries
-- a call): calls of one value that start at the same nanosecond are put in id order when read,
-- as on SQLite.
DROP INDEX IF EXISTS calls_by_agent;
DROP INDEX IF EXISTS calls_by_campaign;
DROP INDEX IF EXISTS calls_by_team;
DROP INDEX IF EXISTS calls_by_disposition;
CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_ns);
CREATE INDEX calls_by_campaign ON calls (tenant_id, campaign_id, started_ns);
CREATE INDEX calls_by_team ON calls (tenant_id, team_id, started_ns);
CREATE INDEX calls_by_disposition ON calls (tenant_id, disposition, started_ns);
"#,
    r#"
-- The contacts that have any stage (issue 24): a filter in front of the writer's lookup of each
-- contact's first stages. `lead_stages` is partitioned by month, so that lookup probed the
-- index of every month's partition for every contact of a batch (11% of PostgreSQL's time
-- while ingesting), though most contacts have no stage at all; now only the contacts found
-- here are looked up. One row per contact, by the 64-bit hash of its id (as ids are, see the
-- migration of hashed keys): a collision, or a contact whose stages were since purged or
-- erased, costs one lookup that finds nothing, never a wrong answer, so the filter only ever
-- grows. Written by the transaction that stores the contact's first stage, under the tenant's
-- ingest lock.
CREATE TABLE IF NOT EXISTS staged_contacts (
    tenant_id BIGINT NOT NULL,
    contact_hash BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, contact_hash)
);
INSERT INTO staged_contacts (tenant_id, contact_hash)
    SELECT DISTINCT tenant_id, hashtextextended(contact_id, 0) FROM lead_stages
    ON CONFLICT DO NOTHING;
"#,
    r#"
-- Calls by agent, campaign, team and disposition in sorted runs (issue 24; pg/value_runs.rs)
-- instead of four B-tree indexes on the partitions of `calls`, each a descent per call. A run
-- per ingest transaction and tenant (`call_runs`: its level and the span of its calls' starts),
-- per value the distinct starts of its calls newest first in chunks (`call_run_chunks`), keyed
-- by run first: a transaction appends its chunks at the right edge of their one index. The
-- compaction job merges runs level by level. The runs of the calls already stored are built
-- below (value_runs::rebuild_sql, one top-level run per tenant), then the indexes go.
CREATE SEQUENCE IF NOT EXISTS call_run_seq;
CREATE TABLE IF NOT EXISTS call_runs (
    tenant_id BIGINT NOT NULL,
    run BIGINT NOT NULL,
    level SMALLINT NOT NULL,
    oldest_ns BIGINT NOT NULL,
    newest_ns BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, run)
);
CREATE TABLE IF NOT EXISTS call_run_chunks (
    tenant_id BIGINT NOT NULL,
    run BIGINT NOT NULL,
    field SMALLINT NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    oldest_ns BIGINT NOT NULL,
    entries BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, run, field, value, oldest_ns)
);
-- Starts in chunks under the TOAST threshold: kept in the row, uncompressed.
ALTER TABLE call_run_chunks ALTER COLUMN entries SET STORAGE MAIN;
DELETE FROM call_run_chunks;
DELETE FROM call_runs;
"#,
    r#"
-- Ids in generations behind the writer's filter (issue 24; pg/id_filter.rs). The indexes of
-- ids by hash are led by a generation (the tenant's count of ids logged before the row's
-- transaction, in units of 2^18), so a new id lands in the last generation's leaves instead of
-- anywhere in an index that grows with history; lookups descend once per generation, and the
-- writer looks up only the ids its in-memory filter may hold. `id_heads` counts each tenant's
-- ids and batches; `id_batches` holds each ingest transaction's hashes for the filters of the
-- other nodes, for an hour. The rows stored so far are generation 0 (`call_keys_by_contact`
-- is looked up by contact only: unchanged).
ALTER TABLE event_ids ADD COLUMN IF NOT EXISTS gen INT NOT NULL DEFAULT 0;
ALTER TABLE call_keys ADD COLUMN IF NOT EXISTS gen INT NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS event_ids_by_hash;
CREATE INDEX event_ids_by_hash ON event_ids (tenant_id, gen, id_hash);
DROP INDEX IF EXISTS event_ids_by_record;
CREATE INDEX event_ids_by_record ON event_ids (tenant_id, gen, record_hash) WHERE record_key IS NOT NULL;
DROP INDEX IF EXISTS call_keys_by_hash;
CREATE INDEX call_keys_by_hash ON call_keys (tenant_id, gen, call_hash);
CREATE TABLE IF NOT EXISTS id_heads (
    tenant_id BIGINT PRIMARY KEY,
    ids BIGINT NOT NULL,
    batches BIGINT NOT NULL
);
INSERT INTO id_heads (tenant_id, ids, batches)
    SELECT tenant_id, count(*), 0 FROM event_ids GROUP BY tenant_id
    ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS id_batches (
    tenant_id BIGINT NOT NULL,
    batch BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    events BIGINT[] NOT NULL,
    calls BIGINT[] NOT NULL,
    PRIMARY KEY (tenant_id, batch)
);
-- Random hashes do not compress: stored as they come.
ALTER TABLE id_batches ALTER COLUMN events SET STORAGE EXTERNAL, ALTER COLUMN calls SET STORAGE EXTERNAL;
"#,
];

/// The condition that finds the rows whose id `column` equals `value` (an SQL expression)
/// through the index on its hash `hash_column` (see the migration of hashed keys); the text is
/// compared too, so hashes that collide never match.
pub fn same_id(hash_column: &str, column: &str, value: &str) -> String {
    format!("{hash_column} = {} AND {column} = {value}", id_hash(value))
}

/// The 64-bit hash of the id `value` (an SQL expression) that the indexes of ids hold.
pub fn id_hash(value: &str) -> String {
    format!("hashtextextended(({value}) COLLATE \"C\", 0)")
}

/// The version that first keeps call cells by campaign and intent (`cells::CALL_INTENTS`).
pub const CALL_INTENTS_VERSION: usize = 6;
/// The version that first keeps week and month cells of calls per agent (`cells::AGENT_WEEKS`).
pub const AGENT_WEEKS_VERSION: usize = 18;
/// The version that first keeps calls by team and campaign in `cells::TEAM_CAMPAIGNS`.
pub const TEAM_CAMPAIGNS_VERSION: usize = 10;
/// The version that first indexes ids by their hash ([`same_id`]).
pub const HASHED_KEYS_VERSION: usize = 12;
/// The version that first keeps raw events in blocks (`event_blocks`, pg/bodies.rs).
pub const EVENT_BLOCKS_VERSION: usize = 19;
/// The version that first keeps the contacts with a stage in `staged_contacts`.
pub const STAGED_CONTACTS_VERSION: usize = 20;
/// The version that first lists calls by value in sorted runs (pg/value_runs.rs).
pub const VALUE_RUNS_VERSION: usize = 21;
/// The version that first marks the tenants whose badge history is recorded silently.
pub const BADGE_BASELINES_VERSION: usize = 17;

/// The advisory locks the nodes coordinate with, each held until its transaction ends.
#[derive(Debug, Clone, Copy)]
pub enum Lock {
    /// Migrating the schema.
    Migrate,
    /// Folding cell deltas into cells (the compaction job).
    Compact,
    /// Applying a tenant's events.
    Ingest(i64),
    /// Appending to a tenant's audit log (its next sequence number).
    Audit(i64),
}

impl Lock {
    /// The lock's two-part key.
    pub fn key(self) -> (i32, i32) {
        const DIAL: i32 = 0x6469_616c; // "dial"
        const AUDIT: i32 = 0x6469_6175; // "diau"
        match self {
            Lock::Migrate => (DIAL, -1),
            Lock::Compact => (DIAL, -2),
            // Tenant ids are positive: they never meet the negative keys above.
            Lock::Ingest(tenant) => (DIAL, tenant as i32),
            Lock::Audit(tenant) => (AUDIT, tenant as i32),
        }
    }

    /// Waits for the lock.
    pub fn take(self, tx: &mut postgres::Transaction) -> Result<()> {
        let (space, key) = self.key();
        tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&space, &key])?;
        Ok(())
    }

    /// Takes the lock if nobody holds it; `false` otherwise.
    pub fn try_take(self, tx: &mut postgres::Transaction) -> Result<bool> {
        let (space, key) = self.key();
        Ok(tx
            .query_one("SELECT pg_try_advisory_xact_lock($1, $2)", &[&space, &key])?
            .get(0))
    }
}

/// Migrates to the latest version under an advisory lock, so nodes starting together take
/// turns; returns the version the database had.
pub fn migrate(client: &mut Client) -> Result<usize> {
    client.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)")?;
    let mut tx = client.transaction()?;
    Lock::Migrate.take(&mut tx)?;
    let version: Option<i32> = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map(|r| r.get(0));
    let version = version.unwrap_or(0) as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(sql)?;
        if i + 1 == VALUE_RUNS_VERSION {
            // The runs of the calls stored so far, before their indexes go.
            tx.batch_execute(&super::value_runs::rebuild_sql())?;
            tx.batch_execute(
                "DROP INDEX IF EXISTS calls_by_agent; DROP INDEX IF EXISTS calls_by_campaign; \
                 DROP INDEX IF EXISTS calls_by_team; DROP INDEX IF EXISTS calls_by_disposition;",
            )?;
        }
    }
    if (1..TEAM_CAMPAIGNS_VERSION).contains(&version) {
        let since = [
            (CALL_INTENTS_VERSION, CALL_INTENTS),
            (TEAM_CAMPAIGNS_VERSION, TEAM_CAMPAIGNS),
        ];
        backfill_call_cuboids(&mut tx, &crate::cuboids_newer_than(version, &since))?;
    }
    if (1..AGENT_WEEKS_VERSION).contains(&version) {
        backfill_coarse(&mut tx)?;
    }
    tx.execute("DELETE FROM schema_version", &[])?;
    tx.execute("INSERT INTO schema_version VALUES ($1)", &[&(MIGRATIONS.len() as i32)])?;
    tx.commit()?;
    Ok(version)
}

/// Adds, as deltas the compaction folds, every current call's cells of `cuboids` (which a
/// database of an older version lacks), in the migration's transaction: nodes of this version
/// that start together compute them once.
fn backfill_call_cuboids(tx: &mut postgres::Transaction, cuboids: &[u8]) -> Result<()> {
    let tenants = tx.query("SELECT id, name, settings FROM tenants", &[])?;
    let calls = tx.prepare(&select_calls_with_analysis("calls c", "WHERE c.tenant_id = $1"))?;
    for tenant in tenants {
        let (id, name, settings): (i64, String, String) = (tenant.get(0), tenant.get(1), tenant.get(2));
        let settings = serde_json::from_str(&settings).map_err(|e| StoreError::Database(e.to_string()))?;
        let tenant = TenantInfo::new(id, name, settings)?;
        let mut deltas = DeltaMap::default();
        let portal = tx.bind(&calls, &[&id])?;
        loop {
            let rows = tx.query_portal(&portal, 10_000)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let (call, analysis) = call_with_analysis(row)?;
                for_each_call_cell(&tenant.clock, Grains::All, &call, analysis.as_ref(), |cell, stats| {
                    if cuboids.contains(&cell.cuboid) {
                        deltas.add(id, cell, stats, 1);
                    }
                });
            }
        }
        write_deltas(tx, &deltas)?;
    }
    Ok(())
}

/// Adds, as deltas the compaction folds, the week and month cells of `cells::AGENT_WEEKS`
/// that a database of an older version lacks, summed from its day cells and their deltas not
/// yet folded (`coarse`), in the migration's transaction.
fn backfill_coarse(tx: &mut postgres::Transaction) -> Result<()> {
    let tenants = tx.query("SELECT id, name, settings FROM tenants", &[])?;
    let days = tx.prepare(
        "SELECT bucket, block FROM cells WHERE tenant_id = $1 AND cuboid = $2 AND grain = $3 UNION ALL \
         SELECT bucket, block FROM cell_deltas WHERE tenant_id = $1 AND cuboid = $2 AND grain = $3 ORDER BY bucket",
    )?;
    let insert =
        tx.prepare("INSERT INTO cell_deltas (tenant_id, cuboid, grain, bucket, block) VALUES ($1, $2, $3, $4, $5)")?;
    // Whatever coarse cells are there (none, from an older version; but a database written by
    // this version and marked older must not end up with them twice) give way to the sums.
    for table in ["cells", "cell_deltas"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE cuboid = $1 AND grain IN ($2, $3)"),
            &[&(AGENT_WEEKS as i16), &(Grain::Week as i16), &(Grain::Month as i16)],
        )?;
    }
    for tenant in tenants {
        let (id, name, settings): (i64, String, String) = (tenant.get(0), tenant.get(1), tenant.get(2));
        let settings = serde_json::from_str(&settings).map_err(|e| StoreError::Database(e.to_string()))?;
        let tenant = TenantInfo::new(id, name, settings)?;
        let mut blocks = Vec::new();
        let mut sums = crate::coarse::CoarseSums::new(&tenant.clock);
        let portal = tx.bind(&days, &[&id, &(AGENT_WEEKS as i16), &(Grain::Day as i16)])?;
        loop {
            let rows = tx.query_portal(&portal, 1_000)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                sums.add_day(row.get(0), row.get(1), &mut blocks)?;
            }
            insert_blocks(tx, &insert, id, &mut blocks)?;
        }
        sums.finish(&mut blocks);
        insert_blocks(tx, &insert, id, &mut blocks)?;
    }
    Ok(())
}

/// Writes finished week and month blocks of `cells::AGENT_WEEKS` as deltas.
fn insert_blocks(
    tx: &mut postgres::Transaction,
    insert: &postgres::Statement,
    tenant: i64,
    blocks: &mut Vec<crate::coarse::CoarseBlock>,
) -> Result<()> {
    for (grain, bucket, block) in blocks.drain(..) {
        tx.execute(
            insert,
            &[&tenant, &(AGENT_WEEKS as i16), &(grain as i16), &bucket, &block],
        )?;
    }
    Ok(())
}

/// The tables partitioned by month (`events` only holds rows written before event blocks).
pub const PARTITIONED: [&str; 5] = ["events", "calls", "agent_status", "lead_stages", "csat"];

/// The UTC month holding `ns`: its first and next month's first instant (ns) and its name.
pub fn month_of(ns: i64) -> (i64, i64, String) {
    let t = jiff::Timestamp::from_nanosecond(ns as i128).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let d = t.to_zoned(jiff::tz::TimeZone::UTC).date().first_of_month();
    let ns_of = |d: jiff::civil::Date| {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_nanosecond() as i64)
            .unwrap_or(i64::MAX)
    };
    let next = d
        .checked_add(jiff::Span::new().months(1))
        .map(ns_of)
        .unwrap_or(i64::MAX);
    let name = format!("{}{:02}", d.year(), d.month()).replace('-', "m");
    (ns_of(d), next, name)
}

/// The monthly partitions known to exist. Made before the ingest transaction that needs them,
/// each in its own short transaction (creating a partition locks its parent briefly).
#[derive(Default)]
pub struct Partitions(HashSet<String>);

impl Partitions {
    pub fn load(client: &mut Client) -> Result<Partitions> {
        let rows = client.query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY($1)",
            &[&PARTITIONED.as_slice()],
        )?;
        Ok(Partitions(rows.iter().map(|r| r.get(0)).collect()))
    }

    /// Makes the partition of `table` holding `ns` unless it is known to exist.
    pub fn ensure(&mut self, client: &mut Client, table: &str, ns: i64) -> Result<()> {
        let (from, to, month) = month_of(ns);
        let name = format!("{table}_{month}");
        if self.0.contains(&name) {
            return Ok(());
        }
        let sql = format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ({from}) TO ({to})");
        if let Err(e) = client.batch_execute(&sql) {
            // Another node made it at the same moment.
            let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])?.get(0);
            if !exists {
                return Err(e.into());
            }
        }
        self.0.insert(name);
        Ok(())
    }
}

#[cfg(test)]
mod versions {
    #[test]
    fn the_badge_baselines_version_is_the_migration_that_brings_them() {
        assert!(super::MIGRATIONS[super::BADGE_BASELINES_VERSION - 1]
            .contains("CREATE TABLE IF NOT EXISTS badge_baselines"));
    }

    #[test]
    fn the_staged_contacts_version_is_the_migration_that_brings_them() {
        assert!(super::MIGRATIONS[super::STAGED_CONTACTS_VERSION - 1]
            .contains("CREATE TABLE IF NOT EXISTS staged_contacts"));
    }

    #[test]
    fn the_value_runs_version_is_the_migration_that_brings_them() {
        assert!(super::MIGRATIONS[super::VALUE_RUNS_VERSION - 1].contains("CREATE TABLE IF NOT EXISTS call_runs"));
    }

    #[test]
    fn the_id_generations_version_is_the_migration_that_brings_them() {
        assert!(super::MIGRATIONS[22 - 1].contains("CREATE TABLE IF NOT EXISTS id_heads"));
    }

    #[test]
    fn the_event_blocks_version_is_the_migration_that_brings_them() {
        assert!(super::MIGRATIONS[super::EVENT_BLOCKS_VERSION - 1].contains("CREATE TABLE IF NOT EXISTS event_blocks"));
    }

    /// The version the week and month cells are backfilled below is their migration's: one
    /// too low skipped the backfill for databases of the version just before.
    #[test]
    fn agent_weeks_version_is_the_version_its_migration_makes() {
        assert!(super::MIGRATIONS[super::AGENT_WEEKS_VERSION - 1].contains("AGENT_WEEKS"));
    }
}
